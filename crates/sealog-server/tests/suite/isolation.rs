//! Randomized tenant isolation: many tenants, many keys, random queries, gets, proofs and
//! cursors. No record of another tenant (or, for a subject key, of another subject) is ever
//! returned; records out of reach answer exactly like records that do not exist; every read
//! and every refusal has its `audit.access` record, in the caller's own tenant.
//!
//! The seed is fixed and printed; try others with `SEALOG_ISOLATION_SEED`.

use crate::support;

use std::collections::HashMap;

use sealog_testkit::Api;
use sealog_testkit::events::event;
use sealog_testkit::{InProcess, Resp, Rng, tempdir};
use serde_json::{Value, json};
use support::{assert_verifies, offline_records};

const TENANTS: usize = 5;
const SUBJECTS: usize = 4;
const TYPES: usize = 3;
const SEED: u64 = 20_260_103;

struct Key {
    secret: String,
    role: &'static str,
    tenant: String,
    subject: Option<String>,
}

fn seed() -> u64 {
    std::env::var("SEALOG_ISOLATION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED)
}

#[test]
fn no_tenant_ever_sees_another_tenants_records() {
    let seed = seed();
    eprintln!("isolation seed {seed} (replay with SEALOG_ISOLATION_SEED={seed})");
    let mut rng = Rng::new(seed);
    let dir = tempdir();
    let app = InProcess::start(dir.path());
    let (admin, _) = app.create_key(&["admin"], None, None);
    let mut keys: Vec<Key> = Vec::new();
    let mut writers: HashMap<String, String> = HashMap::new();
    for t in 0..TENANTS {
        let tenant = format!("tenant-{t}");
        for role in ["reader", "auditor"] {
            let (secret, _) = app.create_key(&[role], Some(&tenant), None);
            keys.push(Key {
                secret,
                role,
                tenant: tenant.clone(),
                subject: None,
            });
        }
        let subject = format!("s{}", rng.below(SUBJECTS as u64));
        let (secret, _) = app.create_key(&["subject"], Some(&tenant), Some(&subject));
        keys.push(Key {
            secret,
            role: "subject",
            tenant: tenant.clone(),
            subject: Some(subject),
        });
        writers.insert(
            tenant.clone(),
            app.create_key(&["writer"], Some(&tenant), None).0,
        );
    }

    // Each tenant writes its events; unscoped records exist too; cross-tenant writes fail.
    for t in 0..TENANTS {
        let tenant = format!("tenant-{t}");
        let batch: Vec<Value> = (0..25)
            .map(|i| {
                event(
                    &format!("{tenant}-{i}"),
                    Some(&tenant),
                    &format!("s{}", rng.below(SUBJECTS as u64)),
                    &format!("ty{}", rng.below(TYPES as u64)),
                )
            })
            .collect();
        let r = app.post_json("/v1/events", Some(&writers[&tenant]), &json!(batch));
        assert_eq!(r.status, 200, "{}", r.text());
        let other = format!("tenant-{}", (t + 1) % TENANTS);
        let bad = json!([
            event("x1", Some(&other), "s0", "ty0"),
            event("x2", None, "s0", "ty0")
        ]);
        let r = app.post_json("/v1/events", Some(&writers[&tenant]), &bad);
        assert_eq!(r.status, 403);
        let results = r.json()["results"].clone();
        assert!(
            results
                .as_array()
                .expect("results")
                .iter()
                .all(|x| x["error"]["code"] == "FORBIDDEN_TENANT"),
            "{results}"
        );
    }
    let unscoped: Vec<Value> = (0..10)
        .map(|i| event(&format!("u{i}"), None, "s0", "ty0"))
        .collect();
    assert_eq!(
        app.post_json("/v1/events", Some(&admin), &json!(unscoped))
            .status,
        200
    );

    // Ground truth of the non-audit records, read with the unscoped admin key.
    let truth: Vec<Value> = app.get("/v1/records?limit=10000", Some(&admin)).json()["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["type"].as_str().is_some_and(|t| t.starts_with("ty")))
        .cloned()
        .collect();
    assert_eq!(truth.len(), TENANTS * 25 + 10);
    let log_len = support::seqs(&truth).into_iter().max().expect("records") + 1;

    // A subject key reads the records whose pack-derived data subject is its own; these ad-hoc
    // types have no pack, so they are nobody's (tests/suite/subject_role.rs covers the role itself).
    let in_reach =
        |k: &Key, r: &Value| r["tenant"].as_str() == Some(k.tenant.as_str()) && k.subject.is_none();
    let mut request_ids: Vec<(String, String)> = Vec::new();
    let ops = 250;
    for _ in 0..ops {
        let k = &keys[rng.below(keys.len() as u64) as usize];
        let track = |r: &Resp, ids: &mut Vec<(String, String)>| {
            ids.push((
                r.header("x-request-id").expect("a request id").to_string(),
                k.tenant.clone(),
            ));
        };
        match rng.below(6) {
            // A filtered query, paged to the end.
            0 | 1 => {
                let mut filters = vec![format!("type=ty{}", rng.below(TYPES as u64))];
                if rng.below(2) == 0 {
                    filters.push(format!("tenant=tenant-{}", rng.below(TENANTS as u64)));
                }
                if rng.below(2) == 0 {
                    filters.push(format!("axis.subject=s{}", rng.below(SUBJECTS as u64)));
                }
                if rng.below(3) == 0 {
                    filters.push(format!("as_of={}", rng.below(log_len + 5)));
                }
                let base = format!(
                    "/v1/records?{}&limit={}",
                    filters.join("&"),
                    1 + rng.below(6)
                );
                let mut got = Vec::new();
                let mut path = base.clone();
                loop {
                    let r = app.get(&path, Some(&k.secret));
                    track(&r, &mut request_ids);
                    assert_eq!(r.status, 200, "{path}: {}", r.text());
                    let page = r.json();
                    for rec in page["records"].as_array().expect("records") {
                        assert!(
                            in_reach(k, rec),
                            "{} key of {} got {rec} for {path}",
                            k.role,
                            k.tenant
                        );
                        got.push(rec["seq"].as_u64().expect("a seq"));
                    }
                    match page["next_cursor"].as_str() {
                        Some(c) => path = format!("{base}&cursor={c}"),
                        None => break,
                    }
                }
                // Complete, too: exactly the ground truth within reach that matches.
                let want: Vec<u64> = truth
                    .iter()
                    .filter(|r| in_reach(k, r) && matches_filters(r, &filters))
                    .map(|r| r["seq"].as_u64().expect("a seq"))
                    .collect();
                assert_eq!(got, want, "{path} for {} of {}", k.role, k.tenant);
            }
            // Get any record by seq or record_id: in reach it is served, else it does not exist.
            2 | 3 => {
                let r = &truth[rng.below(truth.len() as u64) as usize];
                let id = if rng.below(2) == 0 {
                    r["record_id"].as_str().expect("a record_id").to_string()
                } else {
                    r["seq"].to_string()
                };
                let resp = app.get(&format!("/v1/records/{id}"), Some(&k.secret));
                track(&resp, &mut request_ids);
                if in_reach(k, r) {
                    assert_eq!(resp.json(), *r);
                } else {
                    assert_eq!(
                        (resp.status, resp.json()),
                        (
                            404,
                            json!({"error": {"code": "NOT_FOUND", "message": format!("no record {id}")}})
                        )
                    );
                }
            }
            // Inclusion proofs name one record: the same rule.
            4 => {
                let r = &truth[rng.below(truth.len() as u64) as usize];
                let seq = r["seq"].as_u64().expect("a seq");
                let resp = app.get(&format!("/v1/proofs/inclusion?seq={seq}"), Some(&k.secret));
                track(&resp, &mut request_ids);
                match (k.role, in_reach(k, r)) {
                    ("auditor", true) => assert_eq!(resp.status, 200, "{}", resp.text()),
                    ("auditor", false) => {
                        assert_eq!((resp.status, resp.code()), (404, "NOT_FOUND".into()))
                    }
                    _ => assert_eq!(resp.status, 403),
                }
                // Named by record_id, a writer too has the proof of a record in its reach,
                // with the record as stored; out of reach it does not exist.
                let id = r["record_id"].as_str().expect("a record id");
                let resp = app.get(
                    &format!("/v1/proofs/inclusion?record_id={id}"),
                    Some(&k.secret),
                );
                track(&resp, &mut request_ids);
                match (k.role, in_reach(k, r)) {
                    ("auditor" | "writer", true) => {
                        assert_eq!(resp.status, 200, "{}", resp.text());
                        assert_eq!(resp.json()["leaf_index"], r["seq"]);
                        assert!(resp.json()["record"].is_string());
                    }
                    ("auditor" | "writer", false) => {
                        assert_eq!((resp.status, resp.code()), (404, "NOT_FOUND".into()))
                    }
                    _ => assert_eq!(resp.status, 403),
                }
            }
            // Whole-log reads and foreign cursors.
            _ => {
                let resp = app.get("/tile/entries/000.p/1", Some(&k.secret));
                track(&resp, &mut request_ids);
                assert_eq!(
                    resp.status, 403,
                    "entry bundles hold every tenant's records"
                );
                let other = &keys[rng.below(keys.len() as u64) as usize];
                let page = app.get("/v1/records?type=ty0&limit=1", Some(&other.secret));
                request_ids.push((
                    page.header("x-request-id")
                        .expect("a request id")
                        .to_string(),
                    other.tenant.clone(),
                ));
                if let Some(c) = page.json()["next_cursor"].as_str() {
                    let resp = app.get(
                        &format!("/v1/records?type=ty0&limit=1&cursor={c}"),
                        Some(&k.secret),
                    );
                    track(&resp, &mut request_ids);
                    let same_scope = other.tenant == k.tenant && other.subject == k.subject;
                    if !same_scope {
                        assert_eq!((resp.status, resp.code()), (400, "BAD_CURSOR".into()));
                    }
                }
            }
        }
    }
    app.stop();

    // Every read and refusal is recorded, in the caller's tenant and nowhere else.
    let access: HashMap<String, Value> = offline_records(dir.path())
        .into_iter()
        .filter(|r| r["type"] == "audit.access")
        .map(|r| {
            (
                r["data"]["request_id"]
                    .as_str()
                    .expect("a request id")
                    .to_string(),
                r,
            )
        })
        .collect();
    for (id, tenant) in &request_ids {
        let rec = access
            .get(id)
            .unwrap_or_else(|| panic!("request {id} has no access record"));
        assert_eq!(rec["tenant"].as_str(), Some(tenant.as_str()));
    }
    assert_verifies(dir.path());
}

fn matches_filters(r: &Value, filters: &[String]) -> bool {
    filters.iter().all(|f| {
        let (k, v) = f.split_once('=').expect("name=value");
        match k {
            "type" => r["type"] == v,
            "tenant" => r["tenant"] == v,
            "axis.subject" => r["subject"] == v,
            "as_of" => r["seq"].as_u64().expect("a seq") < v.parse::<u64>().expect("a size"),
            _ => unreachable!("no other filter is generated"),
        }
    })
}
