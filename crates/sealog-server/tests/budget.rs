//! The memory budget of request bodies, in process: a body is buffered only within the
//! server-wide cap, with or without a `Content-Length`; bodies past it wait their turn (503
//! with `Retry-After`) and nothing of them is stored; the `sealog_request_buffered_bytes`
//! gauge shows what is held and returns to 0; a body of tiny events pays for its results;
//! and a large body, committed in slices, still gets one durable result per event, in order.
//!
//! Requests are sent with a body the test feeds by hand, so that one can be held half-sent
//! while others arrive: that is what makes the budget's refusals certain rather than a race.
//! Only the first test reads the gauge: the metrics recorder is shared by the whole test
//! binary, and a scrape sets the gauge from the app that serves it.

mod support;

use axum::Router;
use axum::body::{Body, Bytes};
use http_body_util::{BodyExt, Channel};
use sealog_ledger::Undeclared;
use sealog_server::{App, Limits, ServerConfig};
use sealog_testkit::events::event;
use sealog_testkit::tempdir;
use serde_json::{Value, json};
use support::{assert_verifies, offline_records};
use tower::ServiceExt;

/// The budget of the tests that fill it: small, so that bodies past it are cheap to send.
const BUDGET: usize = 1 << 20;
/// What an append reserves per event besides the body (the README's figure).
const PER_EVENT: usize = 256;

struct Resp {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

impl Resp {
    /// The start of the body, for a failure message.
    fn brief(&self) -> String {
        self.body.to_string().chars().take(400).collect()
    }
}

async fn answer(router: &Router, req: axum::http::Request<Body>) -> Resp {
    let resp = router
        .clone()
        .oneshot(req)
        .await
        .expect("the router answers");
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().expect("text").to_string());
    let bytes = resp
        .into_body()
        .collect()
        .await
        .expect("the body")
        .to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Resp {
        status,
        retry_after,
        body,
    }
}

fn post(body: Body, length: Option<usize>) -> axum::http::Request<Body> {
    let mut req = axum::http::Request::builder()
        .method("POST")
        .uri("/v1/events")
        .header("Content-Type", "application/json");
    if let Some(n) = length {
        req = req.header("Content-Length", n);
    }
    req.body(body).expect("a request")
}

/// A JSON array of `n` events with ids `prefix-0…`.
fn array(prefix: &str, n: usize) -> Vec<u8> {
    let events: Vec<Value> = (0..n)
        .map(|i| {
            event(
                &format!("{prefix}-{i}"),
                Some("acme"),
                &format!("s{i}"),
                "t.budget",
            )
        })
        .collect();
    serde_json::to_vec(&events).expect("events serialize")
}

/// The gauge as `/metrics` renders it (open mode: no key needed).
async fn buffered(router: &Router) -> f64 {
    let req = axum::http::Request::builder()
        .uri("/metrics")
        .body(Body::empty())
        .expect("a request");
    let resp = router
        .clone()
        .oneshot(req)
        .await
        .expect("the router answers");
    let text = resp
        .into_body()
        .collect()
        .await
        .expect("metrics")
        .to_bytes();
    String::from_utf8_lossy(&text)
        .lines()
        .find_map(|l| l.strip_prefix("sealog_request_buffered_bytes "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the gauge is rendered")
}

/// Polls the gauge until it holds `want`, for at most 10 s.
async fn gauge_reaches(router: &Router, want: f64) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let got = buffered(router).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gauge stayed at {got}, not {want}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

async fn app(dir: &std::path::Path, limits: Limits) -> App {
    let ledger = sealog_testkit::app::open_ledger(dir, Undeclared::Accept);
    let config = ServerConfig {
        limits,
        ..ServerConfig::default()
    };
    App::new(&config, ledger).await.expect("build the app")
}

#[test]
fn bodies_past_the_budget_wait_their_turn_and_none_of_them_is_stored() {
    let dir = tempdir();
    let rt = runtime();
    rt.block_on(async {
        let app = app(
            dir.path(),
            Limits {
                body_bytes_max: BUDGET,
                buffered_bytes_max: BUDGET,
                ..Limits::default()
            },
        )
        .await;
        let router = app.router();
        assert_eq!(buffered(&router).await, 0.0);
        let refused = array("refused", 2100);
        let refused_needs = refused.len() + 2100 * PER_EVENT;
        for declared in [true, false] {
            let held = array(
                if declared {
                    "held-declared"
                } else {
                    "held-chunked"
                },
                2000,
            );
            let (head, tail) = held.split_at(held.len() / 2);
            // With a Content-Length, the whole length is reserved before anything is read;
            // without one, what has arrived is.
            let reserved = if declared { held.len() } else { head.len() };
            // The held body fits the budget; each refused one would too, alone (it is early,
            // not too large), but not beside the held one.
            assert!(held.len() + 2000 * PER_EVENT <= BUDGET);
            assert!(refused_needs <= BUDGET && reserved + refused_needs > BUDGET);
            // One body half sent.
            let (mut tx, channel) = Channel::<Bytes>::new(1);
            let length = declared.then_some(held.len());
            let held_req = tokio::spawn({
                let router = router.clone();
                async move { answer(&router, post(Body::new(channel), length)).await }
            });
            tx.send_data(Bytes::copy_from_slice(head))
                .await
                .expect("send");
            gauge_reaches(&router, reserved as f64).await;

            let mut waiting = Vec::new();
            for _ in 0..4 {
                let (router, body) = (router.clone(), refused.clone());
                let n = body.len();
                waiting.push(tokio::spawn(async move {
                    answer(&router, post(Body::from(body), Some(n))).await
                }));
            }
            // Without a Content-Length: refused as soon as what arrived does not fit (it is
            // not even JSON: it is never read as events).
            let unfit = vec![b' '; BUDGET - reserved + 1];
            let chunked = answer(&router, post(Body::from(unfit), None)).await;
            for r in futures_results(waiting).await.into_iter().chain([chunked]) {
                assert_eq!(r.status, 503, "{}", r.brief());
                assert_eq!(r.body["error"]["code"], "BUSY");
                assert_eq!(r.retry_after.as_deref(), Some("1"));
            }
            assert_eq!(
                buffered(&router).await,
                reserved as f64,
                "refused bodies hold nothing"
            );
            // Small bodies still fit beside the held one.
            let small = event(&format!("small-{declared}"), Some("acme"), "s", "t.budget");
            let small = serde_json::to_vec(&small).expect("an event");
            let r = answer(&router, post(Body::from(small.clone()), Some(small.len()))).await;
            assert_eq!(r.status, 200, "{}", r.brief());

            // The held body ends: every event of it is answered, in order.
            tx.send_data(Bytes::copy_from_slice(tail))
                .await
                .expect("send");
            drop(tx);
            let r = held_req.await.expect("the held request");
            assert_eq!(r.status, 200, "{}", r.brief());
            let results = r.body["results"].as_array().expect("results").clone();
            assert_eq!(results.len(), 2000);
            assert!(results.iter().all(|x| x["status"] == "appended"));
            gauge_reaches(&router, 0.0).await;
        }
        // A body larger than the whole budget is too large, not early.
        let huge = array("huge", 3000);
        let r = answer(&router, post(Body::from(huge.clone()), Some(huge.len()))).await;
        assert_eq!(
            (r.status, r.body["error"]["code"].clone()),
            (413, json!("TOO_LARGE"))
        );
        drop(router);
        app.close().await.expect("close");
    });
    let ids: Vec<String> = offline_records(dir.path())
        .iter()
        .filter(|r| r["source"] != "sealog-server")
        .map(|r| r["id"].as_str().expect("an id").to_string())
        .collect();
    assert!(
        !ids.iter()
            .any(|id| id.starts_with("refused") || id.starts_with("huge")),
        "nothing of a refused body is stored"
    );
    assert_eq!(ids.len(), 2 * 2000 + 2);
    assert_verifies(dir.path());
}

async fn futures_results(handles: Vec<tokio::task::JoinHandle<Resp>>) -> Vec<Resp> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("a request"));
    }
    out
}

#[test]
fn a_body_of_tiny_events_pays_for_their_results() {
    let dir = tempdir();
    let rt = runtime();
    rt.block_on(async {
        let app = app(
            dir.path(),
            Limits {
                buffered_bytes_max: BUDGET,
                ..Limits::default()
            },
        )
        .await;
        let router = app.router();
        // 2 bytes each in the body, but a result of about 100 bytes each in the answer.
        let tiny = |n: usize| {
            let mut b = vec![b'['];
            b.extend(std::iter::repeat_n(&b"1,"[..], n).flatten());
            *b.last_mut().expect("a byte") = b']';
            b
        };
        let over = tiny(BUDGET / 256);
        let r = answer(&router, post(Body::from(over.clone()), Some(over.len()))).await;
        assert_eq!(r.status, 413, "{}", r.brief());
        assert!(
            r.body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("events")),
            "{}",
            r.body
        );
        let within = tiny(1000);
        let r = answer(
            &router,
            post(Body::from(within.clone()), Some(within.len())),
        )
        .await;
        assert_eq!(
            (r.status, r.body["error"]["code"].clone()),
            (422, json!("NO_VALID_EVENTS"))
        );
        assert_eq!(r.body["results"].as_array().map(Vec::len), Some(1000));
        drop(router);
        app.close().await.expect("close");
    });
}

#[test]
fn a_large_body_is_committed_in_slices_and_every_event_is_answered_in_order() {
    let dir = tempdir();
    let rt = runtime();
    // More events than one slice holds (4096), with refusals and a duplicate across slices.
    const N: usize = 10_000;
    let events: Vec<Value> = (0..N)
        .map(|i| match i {
            _ if i % 997 == 5 => json!({"id": format!("bad-{i}")}),
            9_000 => event("big-10", Some("acme"), "s10", "t.big"),
            _ => event(&format!("big-{i}"), Some("acme"), &format!("s{i}"), "t.big"),
        })
        .collect();
    let mut body = Vec::new();
    for e in &events {
        body.extend_from_slice(e.to_string().as_bytes());
        body.push(b'\n');
    }
    let results = rt.block_on(async {
        let app = app(dir.path(), Limits::default()).await;
        let router = app.router();
        let req = axum::http::Request::builder()
            .method("POST")
            .uri("/v1/events")
            .header("Content-Type", "application/x-ndjson")
            .body(Body::from(body))
            .expect("a request");
        let r = answer(&router, req).await;
        assert_eq!(r.status, 200, "{}", r.brief());
        drop(router);
        app.close().await.expect("close");
        r.body["results"].as_array().expect("results").clone()
    });
    assert_eq!(results.len(), N, "one result per event");
    let records = offline_records(dir.path());
    let mut last_seq = None;
    for (i, (e, r)) in events.iter().zip(&results).enumerate() {
        match r["status"].as_str() {
            Some("appended") => {
                let seq = r["seq"].as_u64().expect("a seq");
                assert!(last_seq < Some(seq), "seqs follow the request order at {i}");
                last_seq = Some(seq);
                assert_eq!(
                    records[seq as usize]["id"], e["id"],
                    "result {i} is its event's"
                );
            }
            Some("rejected") => assert_eq!(i % 997, 5, "{i}: {r}"),
            Some("duplicate") => {
                assert_eq!(i, 9_000);
                assert_eq!(
                    records[r["seq"].as_u64().expect("a seq") as usize]["id"],
                    "big-10"
                );
            }
            other => panic!("{i}: {other:?} {r}"),
        }
    }
    assert_verifies(dir.path());
}
