//! Retention over HTTP on a server whose packs keep some types a second, so that records are
//! due at an instant that has come: `POST /v1/retention/apply` refuses a `now` past the
//! server's clock (422 `INVALID_ARGUMENT`, nothing pruned) while the status and a dry run may
//! look ahead; an application prunes to stubs that keep their proofs, answered 410 to a key
//! that reaches them and like an absent record to one that does not; and thousands of due
//! records interleaved with held ones are pruned over several applications, never a 500.

mod support;

use std::path::Path;
use std::sync::OnceLock;

use sealog_ledger::Packs;

use sealog_testkit::files::files_holding;
use sealog_testkit::{Api, InProcess, tempdir};
use serde_json::{Value, json};
use support::assert_verifies;

const CUSTOMER: &str = "cust-private-9031";
const NAME: &str = "Ayanda Privatename";
/// What the `brief` pack keeps its records.
const BRIEF: i64 = 1_000_000_000;
const LATER: &str = "2099-01-01T00:00:00Z";

/// The built-in packs and `brief`, whose `brief.email` is checked as `comms.email` is and
/// kept a second.
fn brief_packs() -> Packs {
    static PACKS: OnceLock<Packs> = OnceLock::new();
    PACKS
        .get_or_init(|| {
            let comms =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../sealog-packs/packs/customer-comms");
            let manifest: Value = serde_json::from_str(
                &std::fs::read_to_string(comms.join("manifest.json")).unwrap(),
            )
            .unwrap();
            let email = manifest["types"]["comms.email"].clone();
            let schema = email["schema"].as_str().unwrap();
            let dir = tempfile::tempdir().unwrap();
            std::fs::copy(comms.join(schema), dir.path().join(schema)).unwrap();
            let brief = json!({"pack": "brief", "retention": "PT1S",
                               "types": {"brief.email": email}});
            std::fs::write(dir.path().join("manifest.json"), brief.to_string()).unwrap();
            Packs::load(&[dir.path()]).unwrap_or_else(|e| panic!("the brief pack: {e}"))
        })
        .clone()
}

fn email(id: &str, tenant: &str, customer: &str) -> Value {
    let mut e = sealog_testkit::events::examples()
        .into_iter()
        .find(|e| e["id"] == "comms-email-1")
        .expect("the email example");
    e["type"] = json!("brief.email");
    e["id"] = json!(id);
    e["tenant"] = json!(tenant);
    e["data"]["email_id"] = json!(format!("<{id}@shop.example>"));
    e["data"]["recipient_details"]["customer_id"] = json!(customer);
    e["data"]["recipient_details"]["name"] = json!(NAME);
    e
}

/// Posts events and returns their results (the request itself must succeed).
fn post(app: &InProcess, key: &str, events: &[Value]) -> Vec<Value> {
    let r = app.post_json("/v1/events", Some(key), &json!(events));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["results"].as_array().unwrap().clone()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// Waits until a record ingested at `ingested_at` is a second old, by the clock the server
/// reads too.
fn wait_past(ingested_at: &str) {
    let t = sealog_model::time::parse_rfc3339(ingested_at).unwrap();
    sealog_testkit::wait_for(10, "the record to be a second old", || {
        (now() > t + BRIEF).then_some(())
    });
}

/// Retention through the API: admin only, a dry run changes nothing and, like the status,
/// may look ahead, an application at a `now` to come is refused, one at the server's clock
/// prunes, a pruned record is answered 410 with its id while its inclusion proof still
/// verifies, and verify passes.
#[test]
fn retention_through_the_api_prunes_to_stubs_that_keep_their_proofs() {
    let dir = tempdir();
    let app = InProcess::start_with_packs(dir.path(), brief_packs());
    let (admin, _) = app.create_key(&["admin"], None, None);
    let (auditor, _) = app.create_key(&["auditor"], None, None);
    let r = post(&app, &admin, &[email("m-old", "shop-za", CUSTOMER)]).remove(0);
    let seq = r["seq"].as_u64().unwrap();

    let status = app.get(&format!("/v1/retention?now={LATER}"), Some(&admin));
    assert_eq!(status.status, 200, "{}", status.text());
    let due = status.json();
    assert_eq!(due["pruned"], 1, "{due}");
    assert_eq!(due["due"][0]["event_type"], "brief.email", "{due}");
    for bad in [
        "/v1/retention?now=tomorrow",
        "/v1/retention?when=2099-01-01T00:00:00Z",
    ] {
        let r = app.get(bad, Some(&admin));
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
    for body in [
        json!({"now": "not a time"}),
        json!({"dry_run": "yes"}),
        json!({"prune": true}),
    ] {
        let r = app.post_json("/v1/retention/apply", Some(&admin), &body);
        assert_eq!(r.status, 400, "{body}: {}", r.text());
    }
    let dry = app.post_json(
        "/v1/retention/apply",
        Some(&admin),
        &json!({"now": LATER, "dry_run": true}),
    );
    assert_eq!(
        (dry.status, dry.json()["seq"].clone()),
        (200, Value::Null),
        "{}",
        dry.text()
    );
    let refused = app.post_json("/v1/retention/apply", Some(&admin), &json!({"now": LATER}));
    assert_eq!(
        (refused.status, refused.code()),
        (422, "INVALID_ARGUMENT".to_string()),
        "{}",
        refused.text()
    );
    let read = app.get(&format!("/v1/records/{seq}"), Some(&auditor));
    assert_eq!(read.status, 200, "nothing was pruned: {}", read.text());

    wait_past(read.json()["ingested_at"].as_str().unwrap());
    let done = app.post_json("/v1/retention/apply", Some(&admin), &json!({}));
    assert_eq!(done.status, 200, "{}", done.text());
    let done = done.json();
    // The email; the records of the reads since keep their seven years.
    assert_eq!(done["pruned"], 1, "{done}");
    assert!(done["seq"].is_u64(), "{done}");
    let gone = app.get(&format!("/v1/records/{seq}"), Some(&auditor));
    assert_eq!(
        (gone.status, gone.code()),
        (410, "PRUNED_BY_RETENTION".to_string()),
        "{}",
        gone.text()
    );
    assert_eq!(
        gone.json()["pruned"],
        json!({"seq": seq, "record_id": r["record_id"]}),
        "{}",
        gone.text()
    );
    let proof = app.get(&format!("/v1/proofs/inclusion?seq={seq}"), Some(&auditor));
    assert_eq!(proof.status, 200, "{}", proof.text());
    app.stop();
    assert_verifies(dir.path());
    assert!(files_holding(dir.path(), "m-old@shop.example").is_empty());
}

/// A `now` past the server's clock, even by a minute: refused with the API's error shape, the
/// refusal recorded, nothing pruned; a `now` that has come, given explicitly, applies.
#[test]
fn an_application_at_a_now_to_come_is_refused_and_prunes_nothing() {
    let dir = tempdir();
    let app = InProcess::start_with_packs(dir.path(), brief_packs());
    let (admin, _) = app.create_key(&["admin"], None, None);
    let r = post(&app, &admin, &[email("m-1", "shop-za", "cust-1")]).remove(0);
    let seq = r["seq"].as_u64().unwrap();
    let minute_ahead = sealog_model::time::format_micros(now() + 60 * BRIEF);
    for ahead in [LATER, "2034-01-01T00:00:00Z", minute_ahead.as_str()] {
        let r = app.post_json("/v1/retention/apply", Some(&admin), &json!({"now": ahead}));
        assert_eq!(r.status, 422, "{ahead}: {}", r.text());
        let body = r.json();
        assert_eq!(body["error"]["code"], "INVALID_ARGUMENT", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("later than this log's clock"), "{message}");
        // A dry run at the same instant says what would be due then: the email, and by 2034
        // the records of the requests before.
        let dry = app.post_json(
            "/v1/retention/apply",
            Some(&admin),
            &json!({"now": ahead, "dry_run": true}),
        );
        assert_eq!(dry.status, 200, "{}", dry.text());
        let would = dry.json()["pruned"].as_u64().unwrap();
        assert!(
            would == 1 || (would > 1 && ahead != minute_ahead),
            "{}",
            dry.text()
        );
    }
    let read = app.get(&format!("/v1/records/{seq}"), Some(&admin));
    assert_eq!(read.status, 200, "{}", read.text());
    let ingested_at = read.json()["ingested_at"].as_str().unwrap().to_string();
    let applied = app.get("/v1/records?type=audit.retention_applied", Some(&admin));
    assert_eq!(applied.json()["records"], json!([]), "{}", applied.text());
    let refusals = app.get("/v1/records?type=audit.access&limit=1000", Some(&admin));
    let refused = refusals.json()["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["data"]["action"] == "retention.apply" && r["data"]["outcome"] == "invalid")
        .count();
    assert_eq!(refused, 3, "each refusal is recorded: {}", refusals.text());

    wait_past(&ingested_at);
    let at = sealog_model::time::format_micros(now());
    let done = app.post_json("/v1/retention/apply", Some(&admin), &json!({"now": at}));
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(done.json()["pruned"], 1, "{}", done.text());
    app.stop();
    assert_verifies(dir.path());
}

/// A record pruned by retention leaves a stub that names no tenant and no data subject, so
/// only a key that reaches every record is told it was pruned (410 with its ids); a key of
/// one tenant or one customer that could not reach the record is answered, by seq or by
/// record id, exactly as for a record the log does not have, before pruning and after.
#[test]
fn a_pruned_record_out_of_a_keys_reach_answers_like_an_absent_one() {
    let dir = tempdir();
    let app = InProcess::start_with_packs(dir.path(), brief_packs());
    let (admin, _) = app.create_key(&["admin"], None, None);
    let (writer_b, _) = app.create_key(&["writer"], Some("shop-b"), None);
    let (reader_a, _) = app.create_key(&["reader"], Some("shop-a"), None);
    let (own_a, _) = app.create_key(&["subject"], Some("shop-a"), Some("cust-a"));
    let r = post(&app, &writer_b, &[email("m-b", "shop-b", "cust-b")]).remove(0);
    assert_eq!(r["status"], "appended", "{r}");
    let seq = r["seq"].as_u64().unwrap();
    let rid = r["record_id"].as_str().unwrap().to_string();
    let refs = [seq.to_string(), rid.clone()];
    let answer = |key: &str, id: &str| {
        let got = app.get(&format!("/v1/records/{id}"), Some(key));
        (got.status, got.json())
    };
    let absent =
        |id: &str| json!({"error": {"code": "NOT_FOUND", "message": format!("no record {id}")}});
    for key in [&reader_a, &own_a] {
        for id in &refs {
            assert_eq!(answer(key, id), (404, absent(id)), "before retention");
        }
    }

    let (_, record) = answer(&admin, &refs[0]);
    wait_past(record["ingested_at"].as_str().unwrap());
    let done = app.post_json("/v1/retention/apply", Some(&admin), &json!({}));
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(done.json()["pruned"], 1, "{}", done.text());

    for key in [&reader_a, &own_a] {
        for id in &refs {
            assert_eq!(answer(key, id), (404, absent(id)), "after retention");
        }
    }
    for id in &refs {
        let (status, body) = answer(&admin, id);
        assert_eq!(status, 410, "{body}");
        assert_eq!(
            body["pruned"],
            json!({"seq": seq, "record_id": rid}),
            "{body}"
        );
    }
}

/// 12,000 emails alternating two tenants, one of them held: each application prunes what its
/// record can list, answering 200 with `more` until the last, and the held tenant's records
/// are all kept.
#[test]
fn due_records_interleaved_with_held_ones_are_pruned_over_several_applications() {
    const RECORDS: usize = 12_000;
    let dir = tempdir();
    let app = InProcess::start_with_packs(dir.path(), brief_packs());
    let (admin, _) = app.create_key(&["admin"], None, None);
    let events: Vec<Value> = (0..RECORDS)
        .map(|i| email(&format!("m-{i}"), &format!("t{}", i % 2), &format!("c-{i}")))
        .collect();
    let mut seqs = Vec::new();
    for chunk in events.chunks(1000) {
        seqs.extend(
            post(&app, &admin, chunk)
                .iter()
                .map(|r| r["seq"].as_u64().unwrap()),
        );
    }
    let hold = app.post_json(
        "/v1/holds",
        Some(&admin),
        &json!({"tenant": "t0", "reason": "litigation 2026-9"}),
    );
    assert_eq!(hold.status, 201, "{}", hold.text());
    let last = app.get(&format!("/v1/records/{}", seqs[RECORDS - 1]), Some(&admin));
    wait_past(last.json()["ingested_at"].as_str().unwrap());

    let (mut pruned, mut applications) = (0, 0);
    loop {
        let r = app.post_json("/v1/retention/apply", Some(&admin), &json!({}));
        assert_eq!(r.status, 200, "{}", r.text());
        let r = r.json();
        applications += 1;
        pruned += r["pruned"].as_u64().unwrap();
        if r["more"] == false {
            assert_eq!(r["held"].as_u64(), Some(RECORDS as u64 / 2), "{r}");
            break;
        }
        assert!(applications < 10, "no end: {r}");
    }
    assert!(applications >= 2, "{applications} applications");
    assert_eq!(pruned, RECORDS as u64 / 2);
    for (i, seq) in seqs.iter().enumerate().step_by(997) {
        let got = app.get(&format!("/v1/records/{seq}"), Some(&admin));
        let expected = if i % 2 == 0 { 200 } else { 410 };
        assert_eq!(got.status, expected, "record {seq}: {}", got.text());
    }
    app.stop();
    assert_verifies(dir.path());
}
