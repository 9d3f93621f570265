//! Ordered streams: a producer that keeps two append requests in flight, and needs them
//! committed in the order it sent them, names each request's place with `Sealog-Stream:
//! <stream id>/<n>` (n = 1, 2, …). Request n is read and prepared at once, beside request
//! n − 1, but committed only after request n − 1 of the same stream was; so the server's
//! preparing of one request overlaps the commit of the one before, and the log still holds
//! the events in the producer's order.
//!
//! A request whose predecessor fails (anything short of its events committed) fails too, and
//! so does every later one of that stream: the producer starts a new stream for what it
//! sends again. A predecessor that never arrives is waited for `stream_wait`, then the request
//! is refused, nothing committed. A stream is the key's that sends it: the same stream id sent
//! by another key names another stream, so no key can fail another's stream or take a place
//! in it. Streams live in memory only: a restart fails every request in flight anyway, and a
//! producer starts a new stream after any failure, so nothing needs to survive one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use tokio::sync::Notify;

use crate::error::ApiError;

/// The request header naming a request's place in its stream.
pub(crate) const HEADER: &str = "sealog-stream";

/// Streams idle this long are forgotten.
const IDLE_FORGET: Duration = Duration::from_secs(600);

#[derive(Default)]
struct Stream {
    /// Requests 1..=done are committed.
    done: u64,
    failed: bool,
    seen: Option<Instant>,
}

#[derive(Default)]
pub(crate) struct Streams {
    streams: Mutex<HashMap<StreamOf, Stream>>,
    changed: Notify,
}

/// A stream: the id of the key that sends it, and the stream id it names.
type StreamOf = (String, String);

/// One request's place: its stream, and n.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Place {
    stream: StreamOf,
    n: u64,
}

/// Reads the header, if present: `<id>/<n>`, the id 1 to 64 of `[A-Za-z0-9_-]`, n ≥ 1; the
/// place is in the stream of that id sent by the key `key_id`.
pub(crate) fn place(headers: &HeaderMap, key_id: &str) -> Result<Option<Place>, ApiError> {
    let Some(v) = headers.get(HEADER) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad_request(
            "BAD_STREAM",
            "Sealog-Stream is <stream id>/<n>: an id of 1 to 64 letters, digits, '-' or '_', and n from 1",
        )
    };
    let text = v.to_str().map_err(|_| bad())?.trim();
    if text.is_empty() {
        // An empty header names no stream, as if it were absent.
        return Ok(None);
    }
    let (id, n) = text.split_once('/').ok_or_else(bad)?;
    let n: u64 = crate::params::parse_u64(n)
        .filter(|n| *n >= 1)
        .ok_or_else(bad)?;
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(bad());
    }
    Ok(Some(Place {
        stream: (key_id.to_string(), id.to_string()),
        n,
    }))
}

/// A request's turn in its stream, held from before its first commit to its answer; dropped
/// without [`Turn::committed`], it fails the stream.
pub(crate) struct Turn<'a> {
    streams: &'a Streams,
    place: Place,
    ok: bool,
}

impl Turn<'_> {
    pub(crate) fn committed(mut self) {
        self.ok = true;
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let Place { stream, n } = &self.place;
        {
            let mut all = self.streams.streams.lock().unwrap();
            let s = all.entry(stream.clone()).or_default();
            if self.ok && !s.failed {
                s.done = s.done.max(*n);
            } else {
                s.failed = true;
            }
            s.seen = Some(Instant::now());
            all.retain(|_, s| s.seen.is_some_and(|t| t.elapsed() < IDLE_FORGET));
        }
        self.streams.changed.notify_waiters();
    }
}

impl Streams {
    /// Fails a stream from its request `place` on (a request refused before its turn).
    pub(crate) fn fail(&self, place: &Place) {
        let mut all = self.streams.lock().unwrap();
        let s = all.entry(place.stream.clone()).or_default();
        if s.done < place.n {
            s.failed = true;
        }
        s.seen = Some(Instant::now());
        drop(all);
        self.changed.notify_waiters();
    }

    /// Waits until request `n − 1` of the stream is committed (at once for `n = 1`), for at
    /// most `wait`. Refused (409, nothing committed) when the stream failed or the
    /// predecessor did not come in time.
    pub(crate) async fn turn(&self, place: Place, wait: Duration) -> Result<Turn<'_>, ApiError> {
        let deadline = tokio::time::Instant::now() + wait;
        let Place { stream, n } = &place;
        let id = &stream.1;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut all = self.streams.lock().unwrap();
                let s = all.entry(stream.clone()).or_default();
                s.seen = Some(Instant::now());
                if s.failed {
                    return Err(refused(format!(
                        "stream {id} failed before request {n}: start a new stream"
                    )));
                }
                if s.done >= *n {
                    return Err(refused(format!(
                        "request {n} of stream {id} was already answered"
                    )));
                }
                if *n == 1 || s.done == n - 1 {
                    drop(all);
                    return Ok(Turn {
                        streams: self,
                        place,
                        ok: false,
                    });
                }
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                let mut all = self.streams.lock().unwrap();
                all.entry(stream.clone()).or_default().failed = true;
                drop(all);
                self.changed.notify_waiters();
                return Err(refused(format!(
                    "request {} of stream {id} did not come within {} s",
                    n - 1,
                    wait.as_secs_f64()
                )));
            }
        }
    }
}

fn refused(message: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "STREAM_ORDER", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    /// A place in a stream of key `k1`.
    fn p(id: &str, n: u64) -> Place {
        p_of("k1", id, n)
    }

    fn p_of(key_id: &str, id: &str, n: u64) -> Place {
        Place {
            stream: (key_id.to_string(), id.to_string()),
            n,
        }
    }

    #[test]
    fn a_request_waits_for_the_one_before_it() {
        rt().block_on(async {
            let s = Streams::default();
            let wait = Duration::from_secs(30);
            let second = s.turn(p("a", 2), wait);
            let first = async {
                let t = s.turn(p("a", 1), wait).await.unwrap();
                t.committed();
            };
            let (second, ()) = tokio::join!(second, first);
            second.unwrap().committed();
            // Another stream is independent; a replayed place is refused.
            s.turn(p("b", 1), wait).await.unwrap().committed();
            assert_eq!(
                s.turn(p("a", 2), wait).await.err().unwrap().code,
                "STREAM_ORDER"
            );
        });
    }

    #[test]
    fn a_failed_or_missing_predecessor_fails_the_rest_of_the_stream() {
        rt().block_on(async {
            let s = Streams::default();
            let wait = Duration::from_millis(50);
            drop(s.turn(p("a", 1), wait).await.unwrap()); // not committed
            assert!(s.turn(p("a", 2), wait).await.is_err());
            // Request 1 never comes: 2 is refused once the wait is over, and so is 3.
            assert!(s.turn(p("b", 2), wait).await.is_err());
            assert!(s.turn(p("b", 1), wait).await.is_err());
            s.fail(&p("c", 1));
            assert!(s.turn(p("c", 2), wait).await.is_err());
        });
    }

    #[test]
    fn the_same_stream_id_sent_by_two_keys_names_two_streams() {
        rt().block_on(async {
            let s = Streams::default();
            let wait = Duration::from_millis(50);
            s.turn(p_of("k1", "a", 1), wait).await.unwrap().committed();
            s.fail(&p_of("k2", "a", 2));
            s.turn(p_of("k1", "a", 2), wait).await.unwrap().committed();
            // k2's refusal failed its own stream `a`, and k1's went on.
            assert!(s.turn(p_of("k2", "a", 3), wait).await.is_err());
            s.turn(p_of("k1", "a", 3), wait).await.unwrap().committed();
        });
    }

    #[test]
    fn the_header_is_read_strictly() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(HEADER, v.parse().unwrap());
            place(&m, "k1")
        };
        assert_eq!(h("abc-1_Z/7").unwrap(), Some(p("abc-1_Z", 7)));
        for bad in [
            "abc",
            "abc/0",
            "/1",
            "a b/1",
            "abc/-1",
            "abc/1/2",
            &format!("{}/1", "x".repeat(65)),
        ] {
            assert!(h(bad).is_err(), "{bad}");
        }
        assert_eq!(place(&HeaderMap::new(), "k1").unwrap(), None);
    }
}
