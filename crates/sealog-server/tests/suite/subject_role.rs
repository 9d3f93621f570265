//! The subject role, as a customer's key meets it: emails, orders, tickets and calls of two
//! customers of one shop, and a key per customer (`keys create --role subject --data-subject
//! S`). A key reads exactly its customer's records — listed, fetched by seq or record id, and
//! folded into state — and every other record answers exactly like one that does not exist;
//! proofs and the quarantine log are refused, as the role table says.
//!
//! The order events are appended in a shuffled order; the seed is printed, and others can be
//! tried with `SEALOG_SUBJECT_SEED`.

use crate::support;

use sealog_testkit::events::examples;
use sealog_testkit::{Api, InProcess, Rng, tempdir};
use serde_json::{Value, json};
use support::{all_pages, assert_verifies, post_one, seqs};

const TENANT: &str = "shop-za";
const A: &str = "cust-a";
const B: &str = "cust-b";

fn seed() -> u64 {
    std::env::var("SEALOG_SUBJECT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_260_410)
}

fn envelope(id: &str, kind: &str, time: &str, data: Value) -> Value {
    json!({"specversion": "1.0", "id": id, "source": "shop-comms", "type": kind, "time": time,
           "tenant": TENANT, "actor": {"type": "system", "id": "crm"}, "data": data})
}

/// The example of a type whose id is `id`, as a baseline.
fn example(id: &str) -> Value {
    examples()
        .into_iter()
        .find(|e| e["id"] == id)
        .unwrap_or_else(|| panic!("no example {id}"))
}

/// One customer's email, order (placed, then shipped), support ticket and phone call.
fn customer_events(customer: &str, tag: &str) -> Vec<Value> {
    let mut placed = example("comms-order-1");
    placed["id"] = json!(format!("ord-{tag}-placed"));
    placed["data"]["order_id"] = json!(format!("ord-{tag}"));
    placed["data"]["customer_id"] = json!(customer);
    let mut shipped = example("comms-order-2");
    shipped["id"] = json!(format!("ord-{tag}-shipped"));
    shipped["data"]["order_id"] = json!(format!("ord-{tag}"));
    shipped["data"]["customer_id"] = json!(customer);
    let mut email = example("comms-email-1");
    email["id"] = json!(format!("mail-{tag}"));
    email["data"]["email_id"] = json!(format!("<m-{tag}@shop.example>"));
    email["data"]["recipient_details"]["customer_id"] = json!(customer);
    let ticket = envelope(
        &format!("ticket-{tag}"),
        "comms.support_ticket",
        "2026-04-12T09:00:00Z",
        json!({"ticket_id": format!("tk-{tag}"), "customer_id": customer,
               "initial_contact_method": "email", "issue_category": "billing",
               "priority_level": "low",
               "status_history": [{"timestamp": "2026-04-12T09:00:00Z", "new_status": "open"}]}),
    );
    let call = envelope(
        &format!("call-{tag}"),
        "comms.phone_call",
        "2026-04-12T10:00:00Z",
        json!({"call_id": format!("call-{tag}"), "customer_id": customer,
               "call_timestamp": "2026-04-12T10:00:00Z", "call_direction": "inbound",
               "staff_member": "agent-5", "call_purpose": "support"}),
    );
    vec![placed, shipped, email, ticket, call]
}

/// Whose record this is, read the way the customer-comms pack's README says (independently
/// of the pack): the email's recipient, every other type's `customer_id`.
fn owner(record: &Value) -> Option<&str> {
    match record["type"].as_str()? {
        "comms.email" => record["data"]["recipient_details"]["customer_id"].as_str(),
        t if t.starts_with("comms.") => record["data"]["customer_id"].as_str(),
        _ => None,
    }
}

fn not_found(id: &str) -> (u16, Value) {
    (
        404,
        json!({"error": {"code": "NOT_FOUND", "message": format!("no record {id}")}}),
    )
}

/// Which seqs a state answer folded, in seq order (the fold's own order is event time).
fn history(state: &Value) -> Vec<u64> {
    let mut seqs: Vec<u64> = state["history"]
        .as_array()
        .unwrap_or_else(|| panic!("a history: {state}"))
        .iter()
        .map(|h| h["seq"].as_u64().expect("a seq"))
        .collect();
    seqs.sort_unstable();
    seqs
}

/// A shop with two customers' records, its keys, and every record as the unscoped admin
/// reads it.
struct Shop {
    dir: tempfile::TempDir,
    app: InProcess,
    writer: String,
    reader: String,
    auditor: String,
    key_a: String,
    key_b: String,
    /// Customer A's key in another tenant.
    key_a_elsewhere: String,
    truth: Vec<Value>,
    mine: Vec<Value>,
    theirs: Vec<Value>,
}

fn shop() -> Shop {
    let seed = seed();
    eprintln!("subject role seed {seed} (replay with SEALOG_SUBJECT_SEED={seed})");
    let mut rng = Rng::new(seed);
    let dir = tempdir();
    let app = InProcess::start_packs(dir.path());
    let (admin, _) = app.create_key(&["admin"], None, None);
    let (writer, _) = app.create_key(&["writer"], Some(TENANT), None);
    let (reader, _) = app.create_key(&["reader"], Some(TENANT), None);
    let (auditor, _) = app.create_key(&["auditor"], Some(TENANT), None);
    let (key_a, _) = app.create_key(&["subject"], Some(TENANT), Some(A));
    let (key_b, _) = app.create_key(&["subject"], Some(TENANT), Some(B));
    // The same customer id in another shop is another person.
    let (key_a_elsewhere, _) = app.create_key(&["subject"], Some("other-shop"), Some(A));

    let mut events = customer_events(A, "a");
    events.extend(customer_events(B, "b"));
    // A call with no known customer is nobody's.
    events.push(envelope(
        "call-anon",
        "comms.phone_call",
        "2026-04-12T11:00:00Z",
        json!({"call_id": "call-anon", "customer_id": null,
               "call_timestamp": "2026-04-12T11:00:00Z", "call_direction": "inbound",
               "staff_member": "agent-5"}),
    ));
    // One order id under two customers (an order moved between accounts): each customer's
    // record of it is theirs alone.
    let mut shared_a = example("comms-order-1");
    shared_a["id"] = json!("shared-placed");
    shared_a["data"]["order_id"] = json!("ord-shared");
    shared_a["data"]["customer_id"] = json!(A);
    let mut shared_b = example("comms-order-2");
    shared_b["id"] = json!("shared-moved");
    shared_b["data"]["order_id"] = json!("ord-shared");
    shared_b["data"]["customer_id"] = json!(B);
    shared_b["data"]["event_type"] = json!("confirmed");
    shared_b["data"]["new_status"] = json!("confirmed");
    events.extend([shared_a, shared_b]);
    rng.shuffle(&mut events);
    for e in &events {
        let r = post_one(&app, Some(&writer), e);
        assert_eq!(r["status"], "appended", "{}: {r}", e["id"]);
    }

    let truth = all_pages(&app, Some(&admin), "/v1/records?limit=1000");
    let of = |who: Option<&str>| -> Vec<Value> {
        truth.iter().filter(|r| owner(r) == who).cloned().collect()
    };
    let (mine, theirs) = (of(Some(A)), of(Some(B)));
    assert_eq!((mine.len(), theirs.len()), (6, 6), "{truth:?}");
    for kind in [
        "comms.email",
        "comms.order",
        "comms.support_ticket",
        "comms.phone_call",
    ] {
        assert!(mine.iter().any(|r| r["type"] == kind), "{kind}");
    }
    Shop {
        dir,
        app,
        writer,
        reader,
        auditor,
        key_a,
        key_b,
        key_a_elsewhere,
        truth,
        mine,
        theirs,
    }
}

#[test]
fn a_subject_key_reads_exactly_its_customers_records() {
    let Shop {
        dir,
        app,
        writer,
        reader,
        auditor,
        key_a,
        key_b,
        key_a_elsewhere,
        truth,
        mine,
        theirs,
    } = shop();

    // Listing: exactly the customer's own records, whatever the page size.
    for (key, own) in [(&key_a, &mine), (&key_b, &theirs)] {
        for limit in [1, 4, 1000] {
            let got = all_pages(&app, Some(key), &format!("/v1/records?limit={limit}"));
            assert_eq!(&got, own, "limit {limit}");
        }
    }
    let only = |pred: &dyn Fn(&Value) -> bool| -> Vec<u64> {
        seqs(&mine.iter().filter(|r| pred(r)).cloned().collect::<Vec<_>>())
    };
    let filtered: Vec<(&str, Vec<u64>)> = vec![
        ("type=comms.order", only(&|r| r["type"] == "comms.order")),
        ("subject=ord-a", only(&|r| r["data"]["order_id"] == "ord-a")),
        (
            "subject=ord-shared",
            only(&|r| r["data"]["order_id"] == "ord-shared"),
        ),
        ("subject=ord-b", vec![]),
        ("axis.customer_id=cust-b", vec![]),
        ("data_subject=cust-b", vec![]),
        ("axis.data_subject=cust-a", seqs(&mine)),
        ("view=current", seqs(&mine)),
    ];
    for (query, want) in &filtered {
        let got = all_pages(&app, Some(&key_a), &format!("/v1/records?{query}&limit=2"));
        assert_eq!(&seqs(&got), want, "{query}");
    }
    // The axis is an index like any other: a reader of the shop finds a customer's records by it
    // (by its keyed hash), but reads the customer's personal fields as hidden.
    let by_axis = all_pages(
        &app,
        Some(&reader),
        "/v1/records?data_subject=cust-a&limit=1000",
    );
    assert_eq!(seqs(&by_axis), seqs(&mine));
    for (theirs, own) in by_axis.iter().zip(&mine) {
        assert_eq!(theirs["record_id"], own["record_id"]);
        let text = theirs.to_string();
        assert!(
            !text.contains("cust-a"),
            "a reader sees no customer id: {text}"
        );
        assert!(text.contains(r#"{"$personal":"hidden"}"#), "{text}");
    }
    let elsewhere = all_pages(&app, Some(&key_a_elsewhere), "/v1/records?limit=1000");
    assert_eq!(elsewhere, Vec::<Value>::new());

    // Fetching: own records by seq and by record id; any other answers like no record at all.
    let absent_seq = truth.last().expect("records")["seq"]
        .as_u64()
        .expect("a seq")
        + 1000;
    let absent_id = format!("sha256:{}", "0".repeat(64));
    for id in [absent_seq.to_string(), absent_id] {
        let r = app.get(&format!("/v1/records/{id}"), Some(&key_a));
        assert_eq!((r.status, r.json()), not_found(&id));
    }
    for r in &truth {
        for id in [
            r["seq"].to_string(),
            r["record_id"].as_str().expect("an id").to_string(),
        ] {
            let got = app.get(&format!("/v1/records/{id}"), Some(&key_a));
            if owner(r) == Some(A) {
                assert_eq!((got.status, got.json()), (200, r.clone()), "{id}");
            } else {
                assert_eq!((got.status, got.json()), not_found(&id), "{id}: {r}");
            }
            let got = app.get(&format!("/v1/records/{id}"), Some(&key_a_elsewhere));
            assert_eq!((got.status, got.json()), not_found(&id));
        }
    }

    // Proofs: refused to the role for every record alike, so refusal tells nothing.
    let (a_seq, b_seq) = (seqs(&mine)[0], seqs(&theirs)[0]);
    let proof =
        |key: &str, seq: u64| app.get(&format!("/v1/proofs/inclusion?seq={seq}"), Some(key));
    let (own, other) = (proof(&key_a, a_seq), proof(&key_a, b_seq));
    assert_eq!((own.status, own.code()), (403, "FORBIDDEN".into()));
    assert_eq!((other.status, other.json()), (own.status, own.json()));
    assert_eq!(proof(&auditor, b_seq).status, 200);
    assert_eq!(app.get("/checkpoint", Some(&key_a)).status, 403);

    // Quarantine: a refused email of the customer's stays with auditors.
    let mut bad = example("comms-email-1");
    bad["id"] = json!("mail-bad");
    bad["data"]["event_type"] = json!("teleported");
    bad["data"]["recipient_details"]["customer_id"] = json!(A);
    let q = post_one(&app, Some(&writer), &bad);
    assert_eq!(q["status"], "quarantined", "{q}");
    let seen = all_pages(
        &app,
        Some(&auditor),
        "/v1/quarantine?type=comms.email&limit=10",
    );
    assert_eq!(seen.len(), 1, "{seen:?}");
    let payload = seen[0]["data"]["payload_ref"].as_str().expect("a payload");
    for path in [
        "/v1/quarantine?limit=10".to_string(),
        format!("/v1/quarantine/payloads/{payload}"),
    ] {
        let r = app.get(&path, Some(&key_a));
        assert_eq!((r.status, r.code()), (403, "FORBIDDEN".into()), "{path}");
    }

    app.stop();
    assert_verifies(dir.path());
}

#[test]
fn state_folds_only_the_keys_own_records_of_a_subject() {
    let Shop {
        dir,
        app,
        reader,
        key_a,
        key_b,
        mine,
        theirs,
        ..
    } = shop();

    let state = |key: &str, subject: &str| {
        let r = app.get(&format!("/v1/subjects/{subject}/state"), Some(key));
        assert_eq!(r.status, 200, "{subject}: {}", r.text());
        r.json()
    };
    let seqs_of = |records: &[Value], order: &str| -> Vec<u64> {
        seqs(
            &records
                .iter()
                .filter(|r| r["data"]["order_id"] == order)
                .cloned()
                .collect::<Vec<_>>(),
        )
    };
    let own_order = state(&key_a, "ord-a");
    assert_eq!(history(&own_order), seqs_of(&mine, "ord-a"), "{own_order}");
    assert_eq!(own_order["state"]["status"], "shipped", "{own_order}");
    let shared = |key: &str| state(key, "ord-shared");
    let (for_a, for_b, for_reader) = (shared(&key_a), shared(&key_b), shared(&reader));
    assert_eq!(history(&for_a), seqs_of(&mine, "ord-shared"), "{for_a}");
    assert_eq!(for_a["state"]["customer_id"], A, "{for_a}");
    assert_eq!(history(&for_b), seqs_of(&theirs, "ord-shared"), "{for_b}");
    assert_eq!(for_b["state"]["customer_id"], B, "{for_b}");
    assert_eq!(history(&for_reader).len(), 2, "{for_reader}");
    // Another customer's order reads exactly like an order that does not exist.
    let mut foreign = state(&key_a, "ord-b");
    let mut unknown = state(&key_a, "ord-never");
    // The log grows by each read's own access record, so its size differs between them.
    for s in [&mut foreign, &mut unknown] {
        s["subject"] = Value::Null;
        s["as_of_size"] = Value::Null;
    }
    assert_eq!(foreign, unknown);
    assert_eq!(foreign["status"], "absent", "{foreign}");
    assert_eq!(history(&state(&reader, "ord-b")).len(), 2);

    app.stop();
    assert_verifies(dir.path());
}
