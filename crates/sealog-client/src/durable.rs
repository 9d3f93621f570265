//! The answer to one `emit_durable`: a one-shot slot the sender fills, read either as a
//! future (any executor) or by blocking with a deadline.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::{Ack, Error};

#[derive(Default)]
struct State {
    value: Option<Result<Ack, Error>>,
    waker: Option<Waker>,
}

#[derive(Default)]
pub(crate) struct Slot {
    state: Mutex<State>,
    filled: Condvar,
}

impl Slot {
    pub(crate) fn fill(&self, value: Result<Ack, Error>) {
        let mut s = self.state.lock().unwrap();
        if s.value.is_none() {
            s.value = Some(value);
            if let Some(w) = s.waker.take() {
                w.wake();
            }
            self.filled.notify_all();
        }
    }
}

/// The pending result of [`Emitter::emit_durable`](crate::Emitter::emit_durable): `.await`
/// it, or [`Durable::wait`] for it from synchronous code.
#[must_use = "the event's fate is known only once this is awaited"]
pub struct Durable {
    pub(crate) slot: Arc<Slot>,
}

impl Durable {
    pub(crate) fn ready(value: Result<Ack, Error>) -> Self {
        let slot = Arc::new(Slot::default());
        slot.fill(value);
        Durable { slot }
    }

    /// Blocks until the server has answered or `timeout` has passed (then
    /// [`Error::Timeout`]: the event may still be appended later, or not at all).
    pub fn wait(self, timeout: Duration) -> Result<Ack, Error> {
        let deadline = Instant::now() + timeout;
        let mut s = self.slot.state.lock().unwrap();
        loop {
            if let Some(v) = s.value.take() {
                return v;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout);
            }
            s = self.slot.filled.wait_timeout(s, left).unwrap().0;
        }
    }
}

impl Future for Durable {
    type Output = Result<Ack, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.slot.state.lock().unwrap();
        match s.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
