//! Each built-in rule fires on a crafted history and stays silent on a clean one.

use crate::support;

use support::*;

#[test]
fn a_clean_history_has_no_findings() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    ingest(
        &ledger,
        &[
            chunk_created(
                "c1",
                "chunk-1",
                &day(1),
                Some(("refund_days", "30")),
                "approved",
            ),
            chunk_created(
                "c2",
                "chunk-2",
                &day(1),
                Some(("shipping_days", "5")),
                "approved",
            ),
            relationship("r1", "edge-1", &day(1), "chunk-1", "chunk-2"),
            chunk_modified("m1", "chunk-1", &day(2), "h-c1", "h-m1"),
            link("l1", "linked", "conv-1", &day(1), None, Some("cust-1")),
            link(
                "l2",
                "relinked",
                "conv-1",
                &day(2),
                Some("cust-1"),
                Some("cust-2"),
            ),
            link("l3", "unlinked", "conv-1", &day(3), Some("cust-2"), None),
            popia("p1", "popia-1", "2026-03-01T10:00:00Z", "in_progress"),
            popia("p2", "popia-1", "2026-03-20T10:00:00Z", "completed"),
            breach("b1", "inc-1", "2026-03-01T10:00:00Z", None),
            breach(
                "b2",
                "inc-1",
                "2026-03-02T10:00:00Z",
                Some("2026-03-02T09:00:00Z"),
            ),
        ],
    );
    // Within the stale window: day 2 + 180 days is past 2026-08-29.
    let report = run_at(&ledger, "2026-08-01T00:00:00Z");
    assert!(report.integrity.ok, "{:?}", report.integrity);
    assert_eq!(report.findings, vec![], "{:#?}", report.findings);
    let runs = records_of(&ledger, "sealog.check_run");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["data"]["findings"], 0);
    assert_eq!(runs[0]["data"]["from_size"], 0);
    assert_eq!(runs[0]["data"]["tree_size"], 11);
}

#[test]
fn a_relink_that_names_the_wrong_previous_customer_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let seqs = ingest(
        &ledger,
        &[
            link("l1", "linked", "conv-1", &day(1), None, Some("cust-1")),
            link(
                "l2",
                "relinked",
                "conv-1",
                &day(2),
                Some("cust-9"),
                Some("cust-2"),
            ),
            // A relink of a conversation never linked, and an unlink of one never linked.
            link(
                "l3",
                "relinked",
                "conv-2",
                &day(2),
                Some("cust-4"),
                Some("cust-5"),
            ),
            link("l4", "unlinked", "conv-3", &day(2), Some("cust-4"), None),
            // A link over a current link, not made as a relink.
            link("l5", "linked", "conv-4", &day(1), None, Some("cust-1")),
            link("l6", "linked", "conv-4", &day(2), None, Some("cust-2")),
        ],
    );
    let report = run_at(&ledger, LATER);
    let relink = of(&report, "conversation.relink_mismatch");
    assert_eq!(relink.len(), 2, "{relink:#?}");
    assert_eq!(relink[0].subjects, vec!["conv-1"]);
    assert_eq!(relink[0].records[0].0, seqs[1]);
    assert_eq!(relink[1].subjects, vec!["conv-2"]);
    let unlink = of(&report, "conversation.unlink_without_link");
    assert_eq!(unlink.len(), 1);
    assert_eq!(unlink[0].subjects, vec!["conv-3"]);
    let over = of(&report, "conversation.link_over_link");
    assert_eq!(over.len(), 1);
    assert_eq!(over[0].records[0].0, seqs[5]);
    // Personal values never reach a conflict record.
    for c in records_of(&ledger, "sealog.conflict") {
        let text = c.to_string();
        assert!(!text.contains("cust-"), "{text}");
        assert_eq!(c["data"]["status"], "open");
        assert_eq!(c["tenant"], "instructor-42");
    }
}

#[test]
fn changes_to_unknown_or_deleted_chunks_and_lost_updates_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    ingest(
        &ledger,
        &[
            chunk_modified("m0", "ghost", &day(1), "h-x", "h-y"),
            chunk_deleted("d0", "ghost-2", &day(1)),
            chunk_created("c1", "chunk-1", &day(1), None, "draft"),
            chunk_deleted("d1", "chunk-1", &day(2)),
            chunk_modified("m1", "chunk-1", &day(3), "h-c1", "h-m1"),
            chunk_created("c2", "chunk-2", &day(1), None, "draft"),
            chunk_modified("m2", "chunk-2", &day(2), "h-c2", "h-m2"),
            // Made over m2 without seeing it.
            chunk_modified("m3", "chunk-2", &day(3), "h-c2", "h-m3"),
        ],
    );
    let report = run_at(&ledger, "2026-04-01T00:00:00Z");
    let subjects = |rule| -> Vec<String> {
        of(&report, rule)
            .iter()
            .flat_map(|f| f.subjects.clone())
            .collect()
    };
    assert_eq!(subjects("knowledge.modified_unknown_chunk"), vec!["ghost"]);
    assert_eq!(subjects("knowledge.deleted_unknown_chunk"), vec!["ghost-2"]);
    assert_eq!(subjects("knowledge.changed_deleted_chunk"), vec!["chunk-1"]);
    assert_eq!(subjects("knowledge.lost_update"), vec!["chunk-2"]);
    let high = of(&report, "knowledge.changed_deleted_chunk")[0];
    assert_eq!(high.criticality.as_str(), "high");
}

#[test]
fn a_relationship_to_a_missing_or_deleted_chunk_is_found_when_either_side_changes() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    ingest(
        &ledger,
        &[
            chunk_created("c1", "chunk-1", &day(1), None, "draft"),
            chunk_created("c2", "chunk-2", &day(1), None, "draft"),
            relationship("r1", "edge-1", &day(1), "chunk-1", "chunk-2"),
            relationship("r2", "edge-2", &day(1), "chunk-1", "nowhere"),
        ],
    );
    let first = run_at(&ledger, &day(1));
    let found = of(&first, "knowledge.relationship_to_missing_chunk");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].subjects, vec!["edge-2", "nowhere"]);
    // The target goes later: the next (incremental) run sees the edge through its target.
    ingest(&ledger, &[chunk_deleted("d2", "chunk-2", &day(2))]);
    let second = run_at(&ledger, &day(2));
    assert_eq!(second.from_size, first.tree_size);
    let found = of(&second, "knowledge.relationship_to_missing_chunk");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].subjects, vec!["chunk-2", "edge-1"]);
    assert!(found[0].new);
    // Deleting the dangling edge settles nothing already recorded, and finds nothing new.
    ingest(&ledger, &[relationship_deleted("rd2", "edge-2", &day(3))]);
    let third = run_at(&ledger, &day(3));
    assert!(
        third.new_findings().next().is_none(),
        "{:#?}",
        third.findings
    );
}

#[test]
fn orphans_are_chunks_without_a_live_relationship_a_day_after_creation() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    ingest(
        &ledger,
        &[
            chunk_created("c1", "chunk-1", "2026-03-01T08:00:00Z", None, "draft"),
            chunk_created("c2", "chunk-2", "2026-03-01T08:00:00Z", None, "draft"),
            chunk_created("c3", "chunk-3", "2026-03-01T08:00:00Z", None, "draft"),
            relationship("r1", "edge-1", "2026-03-01T09:00:00Z", "chunk-1", "chunk-2"),
        ],
    );
    // Not a day old yet: nothing.
    let early = run_at(&ledger, "2026-03-02T07:00:00Z");
    assert!(of(&early, "knowledge.orphan_chunk").is_empty());
    // A day later chunk-3 is an orphan; the incremental run finds it by its closed window.
    let later = run_at(&ledger, "2026-03-02T09:00:00Z");
    assert_eq!(later.from_size, early.tree_size);
    let orphans = of(&later, "knowledge.orphan_chunk");
    assert_eq!(orphans.len(), 1, "{orphans:#?}");
    assert_eq!(orphans[0].subjects, vec!["chunk-3"]);
    // The edge goes: both its ends are orphans now.
    ingest(
        &ledger,
        &[relationship_deleted(
            "rd1",
            "edge-1",
            "2026-03-03T08:00:00Z",
        )],
    );
    let after = run_at(&ledger, "2026-03-03T09:00:00Z");
    let mut subjects: Vec<String> = of(&after, "knowledge.orphan_chunk")
        .iter()
        .filter(|f| f.new)
        .flat_map(|f| f.subjects.clone())
        .collect();
    subjects.sort();
    assert_eq!(subjects, vec!["chunk-1", "chunk-2"]);
}

#[test]
fn a_chunk_unchanged_for_its_window_is_stale() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    ingest(
        &ledger,
        &[
            chunk_created("c1", "chunk-1", "2026-01-01T00:00:00Z", None, "draft"),
            chunk_created("c2", "chunk-2", "2026-01-01T00:00:00Z", None, "draft"),
            chunk_modified("m2", "chunk-2", "2026-05-01T00:00:00Z", "h-c2", "h-m2"),
            relationship("r1", "edge-1", "2026-01-01T00:00:00Z", "chunk-1", "chunk-2"),
        ],
    );
    let before = run_at(&ledger, "2026-06-29T00:00:00Z");
    assert!(of(&before, "knowledge.stale_chunk").is_empty());
    let after = run_at(&ledger, "2026-07-01T00:00:00Z");
    let stale = of(&after, "knowledge.stale_chunk");
    assert_eq!(stale.len(), 1, "{stale:#?}");
    assert_eq!(stale[0].subjects, vec!["chunk-1"]);
    assert_eq!(stale[0].criticality.as_str(), "low");
}

#[test]
fn popia_requests_open_past_thirty_days_are_overdue() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    ingest(
        &ledger,
        &[
            popia("p1", "popia-late", "2026-03-01T10:00:00Z", "in_progress"),
            popia("p2", "popia-done", "2026-03-01T10:00:00Z", "in_progress"),
            popia("p3", "popia-done", "2026-03-25T10:00:00Z", "completed"),
            // Completed, but after its thirty days.
            popia("p4", "popia-slow", "2026-03-01T10:00:00Z", "in_progress"),
            popia("p5", "popia-slow", "2026-04-05T10:00:00Z", "completed"),
        ],
    );
    let early = run_at(&ledger, "2026-03-30T10:00:00Z");
    assert!(of(&early, "comms.popia_request_overdue").is_empty());
    let due = run_at(&ledger, "2026-04-01T10:00:00Z");
    let mut late: Vec<String> = of(&due, "comms.popia_request_overdue")
        .iter()
        .flat_map(|f| f.subjects.clone())
        .collect();
    late.sort();
    assert_eq!(late, vec!["popia-late", "popia-slow"]);
    assert_eq!(
        of(&due, "comms.popia_request_overdue")[0]
            .criticality
            .as_str(),
        "high"
    );
}

/// An event whose request was received, or breach discovered, at `at`: its own clock.
fn started_at(mut e: serde_json::Value, at: &str) -> serde_json::Value {
    let field = match e["type"].as_str() {
        Some("comms.breach_incident") => "discovery_timestamp",
        _ => "request_timestamp",
    };
    e["data"][field] = serde_json::json!(at);
    e
}

/// The same history as the report's test of that name: the two must call the same requests
/// overdue.
#[test]
fn deadlines_run_from_when_a_request_was_received_or_a_breach_discovered() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let received = "2026-10-20T00:00:00Z";
    // Recorded twelve days after it was received: due on 2026-11-19, not 12-01.
    ingest(
        &ledger,
        &[started_at(
            popia("p1", "req-pending", "2026-11-01T00:00:00Z", "in_progress"),
            received,
        )],
    );
    let before = run_at(&ledger, "2026-11-02T00:00:00Z");
    assert!(of(&before, "comms.popia_request_overdue").is_empty());
    ingest(
        &ledger,
        &[
            // Recorded 31 days after it was received: overdue when it arrived.
            started_at(
                popia(
                    "p2",
                    "req-logged-late",
                    "2026-11-20T00:00:00Z",
                    "in_progress",
                ),
                received,
            ),
            // Recorded four days after its discovery, never notified.
            started_at(
                breach("b1", "inc-logged-late", "2026-11-20T00:00:00Z", None),
                "2026-11-16T00:00:00Z",
            ),
        ],
    );
    let after = run_at(&ledger, "2026-11-21T00:00:00Z");
    let mut found: Vec<String> = after
        .findings
        .iter()
        .filter(|f| f.kind == "deadline")
        .flat_map(|f| f.subjects.clone())
        .collect();
    found.sort();
    assert_eq!(
        found,
        ["inc-logged-late", "req-logged-late", "req-pending"],
        "{:?}",
        after.findings
    );
    // A full run agrees with the incremental ones.
    let full = run_with(&ledger, "2026-11-21T00:00:00Z", |o| o.full = true);
    assert_eq!(full.new_findings().count(), 0);
}

#[test]
fn a_breach_without_a_regulator_notification_within_72_hours_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    ingest(
        &ledger,
        &[
            breach("b1", "inc-told", "2026-03-01T10:00:00Z", None),
            breach(
                "b2",
                "inc-told",
                "2026-03-02T10:00:00Z",
                Some("2026-03-02T09:00:00Z"),
            ),
            breach("b3", "inc-silent", "2026-03-01T10:00:00Z", None),
            breach("b4", "inc-late", "2026-03-01T10:00:00Z", None),
            breach(
                "b5",
                "inc-late",
                "2026-03-06T10:00:00Z",
                Some("2026-03-06T09:00:00Z"),
            ),
        ],
    );
    let report = run_at(&ledger, "2026-03-10T00:00:00Z");
    let mut found: Vec<String> = of(&report, "comms.breach_not_notified")
        .iter()
        .flat_map(|f| f.subjects.clone())
        .collect();
    found.sort();
    assert_eq!(found, vec!["inc-late", "inc-silent"]);
    assert_eq!(
        of(&report, "comms.breach_not_notified")[0]
            .criticality
            .as_str(),
        "critical"
    );
}

#[test]
fn a_burst_of_refusals_by_one_key_is_one_finding() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let at = |s: u32| format!("2026-03-01T10:{:02}:{:02}Z", s / 60, s % 60);
    // 25 refusals within two minutes by key-bad; 10 by key-ok spread over an hour.
    let mut events: Vec<_> = (0..25)
        .map(|i| access(i, "key-bad", "denied", &at(i as u32 * 4), None, &[]))
        .collect();
    events.extend(
        (0..10).map(|i| access(100 + i, "key-ok", "denied", &at(i as u32 * 300), None, &[])),
    );
    own(&ledger, &events[..12]);
    let first = run_at(&ledger, LATER);
    assert!(of(&first, "audit.denied_burst").is_empty());
    // The burst crosses the threshold in the next run's records.
    own(&ledger, &events[12..]);
    let second = run_at(&ledger, LATER);
    let bursts = of(&second, "audit.denied_burst");
    assert_eq!(bursts.len(), 1, "{bursts:#?}");
    assert_eq!(bursts[0].key.as_deref(), Some("key-bad"));
    assert_eq!(bursts[0].records.len(), 20);
}

#[test]
fn one_key_reading_many_data_subjects_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let names: Vec<String> = (0..150).map(|i| format!("ps-{i}")).collect();
    let events: Vec<_> = (0..150)
        .map(|i| {
            access(
                i,
                "key-scraper",
                "allowed",
                &format!("2026-03-01T10:{:02}:00Z", i / 30),
                None,
                &[names[i].as_str()],
            )
        })
        .chain((0..50).map(|i| {
            access(
                200 + i,
                "key-app",
                "allowed",
                "2026-03-01T10:00:00Z",
                None,
                &["ps-1"],
            )
        }))
        .collect();
    own(&ledger, &events);
    let report = run_at(&ledger, LATER);
    let found = of(&report, "audit.read_spread");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].key.as_deref(), Some("key-scraper"));
}

#[test]
fn a_key_used_from_a_new_address_is_found_but_not_its_first_use() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    own(
        &ledger,
        &[
            access(1, "key-a", "allowed", &day(1), Some("10.0.0.1"), &[]),
            access(2, "key-a", "allowed", &day(1), Some("10.0.0.1"), &[]),
        ],
    );
    let first = run_at(&ledger, LATER);
    assert!(of(&first, "audit.new_source").is_empty());
    let seqs = own(
        &ledger,
        &[
            access(3, "key-a", "allowed", &day(2), Some("203.0.113.9"), &[]),
            access(4, "key-a", "allowed", &day(2), Some("203.0.113.9"), &[]),
            access(5, "key-b", "allowed", &day(2), Some("203.0.113.9"), &[]),
        ],
    );
    let second = run_at(&ledger, LATER);
    let found = of(&second, "audit.new_source");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].key.as_deref(), Some("key-a"));
    assert_eq!(found[0].records[0].0, seqs[0]);
}

fn decisions(ledger: &sealog_ledger::Ledger, valid: usize, invalid: usize, tag: &str) {
    let mut events = Vec::new();
    for i in 0..valid {
        let mut e = sealog_testkit::events::example("coordination.decision");
        e["id"] = serde_json::json!(format!("{tag}-ok-{i}"));
        e["data"]["envelope_id"] = serde_json::json!(format!("{tag}-env-{i}"));
        events.push(e);
    }
    for i in 0..invalid {
        let mut e = sealog_testkit::events::example("coordination.decision");
        e["id"] = serde_json::json!(format!("{tag}-bad-{i}"));
        e["data"] = serde_json::json!({"envelope_id": format!("{tag}-bad-{i}")});
        events.push(e);
    }
    let prepared = events
        .iter()
        .map(|e| ledger.prepare_value(e, &sealog_ledger::Author::ANYONE))
        .collect();
    let results = ledger.commit(prepared).unwrap();
    let quarantined = results
        .iter()
        .filter(|r| r.to_json()["status"] == "quarantined")
        .count();
    assert_eq!(quarantined, invalid);
}

#[test]
fn more_than_one_percent_of_decisions_quarantined_within_an_hour_is_one_finding() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    // 1 of 151: under the rate.
    decisions(&ledger, 150, 1, "a");
    let under = run_at(&ledger, LATER);
    assert!(of(&under, "coordination.audit_failure_rate").is_empty());
    // Three more, in one commit (one ingest time): the window crosses 1% at the first of
    // them, the one finding; the others stay over.
    decisions(&ledger, 0, 3, "b");
    let over = run_at(&ledger, LATER);
    let found = of(&over, "coordination.audit_failure_rate");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0]
            .key
            .as_deref()
            .unwrap()
            .contains("4 of 154 quarantined"),
        "{found:#?}"
    );
    let again = run_at(&ledger, LATER);
    assert!(of(&again, "coordination.audit_failure_rate").is_empty());
}

/// A user pack whose claims must be settled within ten days of being filed.
fn claims_pack(dir: &std::path::Path) -> sealog_packs::Packs {
    let manifest = serde_json::json!({
        "pack": "acme",
        "types": {"acme.claim": {
            "schema": "claim.schema.json", "subject": "/data/claim_id",
            "required": ["/data/claim_id", "/data/status"],
            "state": {"op": "update", "set": {"status": "/data/status"}}}},
        "checks": [{"name": "acme.claim_unsettled", "kind": "deadline", "criticality": "high",
            "message": "a claim was not settled within 10 days of being filed",
            "types": ["acme.claim"], "within": "P10D", "from": "/data/filed_at",
            "done": {"field": "status", "equals": "settled"}}],
    });
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    std::fs::write(
        dir.join("claim.schema.json"),
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object"}"#,
    )
    .unwrap();
    sealog_packs::Packs::load(&[dir]).unwrap()
}

fn claim(id: &str, claim_id: &str, time: &str, filed_at: &str) -> serde_json::Value {
    serde_json::json!({
        "specversion": "1.0", "id": id, "source": "claims", "type": "acme.claim",
        "time": time, "tenant": "acme", "actor": {"type": "human", "id": "clerk-1"},
        "data": {"claim_id": claim_id, "status": "open", "filed_at": filed_at},
    })
}

/// A deadline runs from where its own rule's `from` says, for a pack Sealog knows nothing of:
/// a claim filed on 03-01 and recorded on 03-08 is late on 03-11, not on 03-18.
#[test]
fn a_user_packs_deadline_runs_from_the_field_its_rule_names() {
    let tmp = tempfile::tempdir().unwrap();
    let packs = claims_pack(&tmp.path().join("acme"));
    let ledger = open_with(&tmp.path().join("log"), packs);
    ingest(
        &ledger,
        &[
            claim(
                "c1",
                "claim-filed-early",
                "2026-03-08T00:00:00Z",
                "2026-03-01T00:00:00Z",
            ),
            claim(
                "c2",
                "claim-filed-now",
                "2026-03-08T00:00:00Z",
                "2026-03-08T00:00:00Z",
            ),
        ],
    );
    let before = run_at(&ledger, "2026-03-09T00:00:00Z");
    assert!(of(&before, "acme.claim_unsettled").is_empty());
    let after = run_at(&ledger, "2026-03-12T00:00:00Z");
    let found: Vec<_> = of(&after, "acme.claim_unsettled")
        .iter()
        .flat_map(|f| f.subjects.clone())
        .collect();
    assert_eq!(found, ["claim-filed-early"], "{:?}", after.findings);
    let full = run_with(&ledger, "2026-03-12T00:00:00Z", |o| o.full = true);
    assert_eq!(full.new_findings().count(), 0);
}
