//! Randomized tenant isolation: many tenants, many keys, random queries, gets, proofs and
//! cursors. No record of another tenant (or, for a subject key, of another subject) is ever
//! returned; records out of reach answer exactly like records that do not exist; every read
//! and every refusal has its `audit.access` record, in the caller's own tenant.
//!
//! The seed is printed on failure; replay with `SEALOG_ISOLATION_SEED`.

mod http_support;

use std::collections::HashMap;

use http_support::*;
use serde_json::{Value, json};

const TENANTS: usize = 5;
const SUBJECTS: usize = 4;
const TYPES: usize = 3;

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
        .unwrap_or_else(|| rand_u64() % 1_000_000)
}

#[test]
fn no_tenant_ever_sees_another_tenants_records() {
    let seed = seed();
    eprintln!("isolation seed {seed} (replay with SEALOG_ISOLATION_SEED={seed})");
    let mut rng = Rng(seed);
    let dir = tempdir();
    let data = dir.path().join("data");
    let (admin, _) = create_key(&data, &["admin"], None, None);
    let mut keys: Vec<Key> = Vec::new();
    let mut writers: HashMap<String, String> = HashMap::new();
    for t in 0..TENANTS {
        let tenant = format!("tenant-{t}");
        for role in ["reader", "auditor"] {
            let (secret, _) = create_key(&data, &[role], Some(&tenant), None);
            keys.push(Key {
                secret,
                role,
                tenant: tenant.clone(),
                subject: None,
            });
        }
        let subject = format!("s{}", rng.below(SUBJECTS as u64));
        let (secret, _) = create_key(&data, &["subject"], Some(&tenant), Some(&subject));
        keys.push(Key {
            secret,
            role: "subject",
            tenant: tenant.clone(),
            subject: Some(subject),
        });
        writers.insert(
            tenant.clone(),
            create_key(&data, &["writer"], Some(&tenant), None).0,
        );
    }
    let srv = Server::start(&data);

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
        let r = srv.post_json("/v1/events", Some(&writers[&tenant]), &json!(batch));
        assert_eq!(r.status, 200, "{}", r.text());
        let other = format!("tenant-{}", (t + 1) % TENANTS);
        let bad = json!([
            event("x1", Some(&other), "s0", "ty0"),
            event("x2", None, "s0", "ty0")
        ]);
        let r = srv.post_json("/v1/events", Some(&writers[&tenant]), &bad);
        assert_eq!(r.status, 403);
        assert!(
            r.json()["results"]
                .as_array()
                .unwrap()
                .iter()
                .all(|x| x["error"]["code"] == "FORBIDDEN_TENANT")
        );
    }
    let unscoped: Vec<Value> = (0..10)
        .map(|i| event(&format!("u{i}"), None, "s0", "ty0"))
        .collect();
    assert_eq!(
        srv.post_json("/v1/events", Some(&admin), &json!(unscoped))
            .status,
        200
    );

    // Ground truth of the non-audit records, read with the unscoped admin key.
    let truth: Vec<Value> = srv.get("/v1/records?limit=10000", Some(&admin)).json()["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["type"].as_str().unwrap().starts_with("ty"))
        .cloned()
        .collect();
    assert_eq!(truth.len(), TENANTS * 25 + 10);
    let log_len = truth
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .max()
        .unwrap()
        + 1;

    let in_reach = |k: &Key, r: &Value| {
        r["tenant"].as_str() == Some(k.tenant.as_str())
            && k.subject
                .as_deref()
                .is_none_or(|s| r["subject"].as_str() == Some(s))
    };
    let mut request_ids: Vec<(String, String)> = Vec::new();
    let ops = 250;
    for _ in 0..ops {
        let k = &keys[rng.below(keys.len() as u64) as usize];
        let track = |r: &Resp, ids: &mut Vec<(String, String)>| {
            ids.push((
                r.header("x-request-id").unwrap().to_string(),
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
                    let r = srv.get(&path, Some(&k.secret));
                    track(&r, &mut request_ids);
                    assert_eq!(r.status, 200, "{path}: {}", r.text());
                    let page = r.json();
                    for rec in page["records"].as_array().unwrap() {
                        assert!(
                            in_reach(k, rec),
                            "{} key of {} got {rec} for {path}",
                            k.role,
                            k.tenant
                        );
                        got.push(rec["seq"].as_u64().unwrap());
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
                    .map(|r| r["seq"].as_u64().unwrap())
                    .collect();
                assert_eq!(got, want, "{path} for {} of {}", k.role, k.tenant);
            }
            // Get any record by seq or record_id: in reach it is served, else it does not exist.
            2 | 3 => {
                let r = &truth[rng.below(truth.len() as u64) as usize];
                let by_id = rng.below(2) == 0;
                let id = if by_id {
                    r["record_id"].as_str().unwrap().to_string()
                } else {
                    r["seq"].to_string()
                };
                let resp = srv.get(&format!("/v1/records/{id}"), Some(&k.secret));
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
                let seq = r["seq"].as_u64().unwrap();
                let resp = srv.get(&format!("/v1/proofs/inclusion?seq={seq}"), Some(&k.secret));
                track(&resp, &mut request_ids);
                match (k.role, in_reach(k, r)) {
                    ("auditor", true) => assert_eq!(resp.status, 200, "{}", resp.text()),
                    ("auditor", false) => {
                        assert_eq!((resp.status, resp.code()), (404, "NOT_FOUND".into()))
                    }
                    _ => assert_eq!(resp.status, 403),
                }
            }
            // Whole-log reads and foreign cursors.
            _ => {
                let resp = srv.get("/tile/entries/000.p/1", Some(&k.secret));
                track(&resp, &mut request_ids);
                assert_eq!(
                    resp.status, 403,
                    "entry bundles hold every tenant's records"
                );
                let other = &keys[rng.below(keys.len() as u64) as usize];
                let page = srv.get("/v1/records?type=ty0&limit=1", Some(&other.secret));
                request_ids.push((
                    page.header("x-request-id").unwrap().to_string(),
                    other.tenant.clone(),
                ));
                if let Some(c) = page.json()["next_cursor"].as_str() {
                    let resp = srv.get(
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
    srv.stop();

    // Every read and refusal is recorded, in the caller's tenant and nowhere else.
    let access: HashMap<String, Value> = all_records(&data)
        .into_iter()
        .filter(|r| r["type"] == "audit.access")
        .map(|r| (r["data"]["request_id"].as_str().unwrap().to_string(), r))
        .collect();
    for (id, tenant) in &request_ids {
        let rec = access
            .get(id)
            .unwrap_or_else(|| panic!("request {id} has no access record"));
        assert_eq!(rec["tenant"].as_str(), Some(tenant.as_str()));
    }
    assert_verifies(&data);
}

fn matches_filters(r: &Value, filters: &[String]) -> bool {
    filters.iter().all(|f| {
        let (k, v) = f.split_once('=').unwrap();
        match k {
            "type" => r["type"] == v,
            "tenant" => r["tenant"] == v,
            "axis.subject" => r["subject"] == v,
            "as_of" => r["seq"].as_u64().unwrap() < v.parse::<u64>().unwrap(),
            _ => unreachable!(),
        }
    })
}
