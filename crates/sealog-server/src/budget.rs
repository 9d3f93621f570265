//! The memory budget of request bodies: every byte a request buffers is first reserved
//! here, against one server-wide cap (`--buffered-bytes-max`), and given back when the
//! request's work is done.
//!
//! A body with a `Content-Length` reserves it before its first byte is read; a body without
//! one reserves as its chunks arrive. An append then reserves a fixed share per event it
//! holds (its place in the body and its result, [`EVENT_OVERHEAD_BYTES`]) before preparing
//! any. When the cap is reached, the request is answered 503 with `Retry-After` instead of
//! being buffered: backpressure, like a full append queue. What a request holds besides
//! (the prepared events of one slice, see `routes::events`) is bounded per request and is at
//! most a small multiple of what it reserved, so the cap bounds the server's memory under
//! any mix of bodies, not only the bodies themselves.
//!
//! *Invariant*: the reserved total never exceeds the cap; a reservation is given back
//! exactly once, when its [`Reservation`] is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// What one event of an append costs besides its own bytes: its place in the split body
/// (a 32-byte range) and its result in the response (about 100 bytes, more with evidence),
/// rounded up for the growth of the buffers that hold them. A body of tiny events (`[1,1,…]`)
/// costs far more memory than its size; this share is what makes it pay for it.
pub(crate) const EVENT_OVERHEAD_BYTES: usize = 256;

/// Reservations at least this large ask for the allocator's free memory to be returned to
/// the system once they are given back (see `Budget::take_trim_request`).
const TRIM_AFTER_BYTES: usize = 1 << 20;

pub(crate) struct Budget {
    cap: usize,
    used: AtomicUsize,
    /// Set when a large reservation was given back since the last trim.
    trim_wanted: AtomicBool,
}

impl Budget {
    pub(crate) fn new(cap: usize) -> Arc<Self> {
        Arc::new(Budget {
            cap,
            used: AtomicUsize::new(0),
            trim_wanted: AtomicBool::new(false),
        })
    }

    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// Bytes reserved now, by every request together.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// An empty reservation, to grow as bytes arrive.
    pub(crate) fn empty(self: &Arc<Self>) -> Reservation {
        Reservation {
            budget: self.clone(),
            bytes: 0,
        }
    }

    fn take(&self, n: usize) -> bool {
        if n == 0 {
            return true;
        }
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&total| total <= self.cap)
            })
            .is_ok()
    }

    fn give(&self, n: usize) {
        if n > 0 {
            self.used.fetch_sub(n, Ordering::AcqRel);
        }
    }

    /// Whether a large reservation was given back since the last call.
    pub(crate) fn take_trim_request(&self) -> bool {
        self.trim_wanted.swap(false, Ordering::AcqRel)
    }
}

/// Bytes one request holds of the budget; given back when dropped.
pub(crate) struct Reservation {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Reservation {
    /// Reserves `n` more bytes; false (and nothing reserved) if the budget has no room.
    pub(crate) fn grow(&mut self, n: usize) -> bool {
        let ok = self.budget.take(n);
        if ok {
            self.bytes += n;
        }
        ok
    }

    /// Gives back all but `n` bytes (a request that holds less than it reserved).
    pub(crate) fn shrink_to(&mut self, n: usize) {
        if n < self.bytes {
            self.release(self.bytes - n);
        }
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The budget's cap.
    pub(crate) fn cap(&self) -> usize {
        self.budget.cap
    }

    fn release(&mut self, n: usize) {
        self.budget.give(n);
        if n >= TRIM_AFTER_BYTES {
            self.budget.trim_wanted.store(true, Ordering::Release);
        }
        self.bytes -= n;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.release(self.bytes);
    }
}

/// Gives the allocator's free memory back to the system.
///
/// glibc's malloc keeps memory it has freed: a large body's buffer, once freed, raises its
/// mmap threshold (up to 32 MiB), so the next large buffers come from the arenas instead of
/// their own mappings, and an arena returns free memory to the system only from its top —
/// the many small allocations of a big append (prepared events, results) leave its middle
/// free but mapped. A server that answered a few large bodies would otherwise keep their
/// peak resident for good (hundreds of MiB), although the budget bounds what is in use.
/// `malloc_trim(0)` releases the free pages of every arena. It walks every arena (and holds
/// each one's lock meanwhile), so the server calls it at most once a second, and only in the
/// few seconds after a large reservation was given back.
#[allow(unsafe_code)]
pub(crate) fn return_free_memory() {
    // SAFETY: malloc_trim takes glibc's arena locks and releases free pages only; it may be
    // called at any time from any thread.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    let _ = unsafe { libc::malloc_trim(0) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_never_exceed_the_cap_and_are_given_back_once() {
        let b = Budget::new(100);
        let mut r1 = b.empty();
        assert!(r1.grow(60));
        let mut r2 = b.empty();
        assert!(!r2.grow(41), "over the cap");
        assert_eq!(b.used(), 60);
        assert!(r2.grow(40));
        assert_eq!(b.used(), 100);
        r1.shrink_to(10);
        assert_eq!((r1.bytes(), b.used()), (10, 50));
        drop(r1);
        drop(r2);
        assert_eq!(b.used(), 0);
        assert!(
            !b.take_trim_request(),
            "small reservations do not ask for a trim"
        );
        let big = Budget::new(8 << 20);
        let mut r = big.empty();
        assert!(r.grow(4 << 20));
        drop(r);
        assert!(big.take_trim_request());
        assert!(!big.take_trim_request());
    }
}
