//! Conflicts from detection to resolution (seed 003 §5.3), runs that are incremental yet
//! agree with a full run, findings recorded once, and reconciliation with the domain.

use crate::support;

use std::collections::BTreeSet;

use sealog_check::{
    CONFLICT_TYPE, Filter, Resolution, RunReport, Status, conflicts, parse_domain, resolve,
};
use serde_json::json;
use support::*;

fn escalated_only() -> Filter<'static> {
    Filter {
        status: Some(Status::Escalated),
        ..Filter::default()
    }
}

fn tenant_only(tenant: &str) -> Filter<'_> {
    Filter {
        tenant: Some(tenant),
        ..Filter::default()
    }
}

#[test]
fn contradictory_chunks_are_settled_by_authority_and_the_loser_is_superseded() {
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
                &day(2),
                Some(("refund_days", "14")),
                "draft",
            ),
            relationship("r1", "edge-1", &day(2), "chunk-1", "chunk-2"),
        ],
    );
    let report = run_at(&ledger, &day(3));
    let found = of(&report, "knowledge.contradiction");
    assert_eq!(found.len(), 1, "{:#?}", report.findings);
    let f = found[0];
    assert_eq!(f.subjects, vec!["chunk-1", "chunk-2"]);
    assert_eq!(f.key.as_deref(), Some("refund_days"));
    assert_eq!(f.auto_resolution.as_deref(), Some("authority_wins"));
    // Recorded, then settled by a record: nothing edited.
    let all = conflicts(&ledger, &Filter::default()).unwrap();
    let c = all.iter().find(|c| c.id() == f.conflict_id).unwrap();
    assert_eq!(c.status(), Status::Resolved);
    assert_eq!(c.record["data"]["status"], "open");
    let resolution = &c.resolutions[0]["data"];
    assert_eq!(resolution["winner"], "chunk-1");
    assert_eq!(resolution["losers"], json!(["chunk-2"]));
    assert_eq!(resolution["automatic"], true);
    let edges = records_of(&ledger, "knowledge.relationship_created");
    let superseded: Vec<_> = edges
        .iter()
        .filter(|e| e["data"]["relationshipType"] == "SUPERSEDED_BY")
        .collect();
    assert_eq!(superseded.len(), 1);
    assert_eq!(superseded[0]["data"]["from"], "chunk-2");
    assert_eq!(superseded[0]["data"]["to"], "chunk-1");
    assert_eq!(
        resolution["superseded_by"][0], superseded[0]["record_id"],
        "the resolution names the relationship record"
    );
    // A redundant pair is advisory, and a contradiction in immutable chunks is critical.
    ingest(
        &ledger,
        &[
            chunk_created("c3", "chunk-3", &day(3), Some(("ship_days", "5")), "draft"),
            chunk_created("c4", "chunk-4", &day(3), Some(("ship_days", "5")), "draft"),
        ],
    );
    let mut immutable = chunk_created("c5", "chunk-5", &day(3), Some(("vat", "15")), "approved");
    immutable["data"]["mutability"] = json!("immutable");
    let mut other = chunk_created("c6", "chunk-6", &day(4), Some(("vat", "14")), "approved");
    other["data"]["mutability"] = json!("mutable");
    ingest(&ledger, &[immutable, other]);
    let next = run_at(&ledger, &day(5));
    let redundant = of(&next, "knowledge.redundancy");
    assert_eq!(redundant.len(), 1);
    assert_eq!(redundant[0].criticality.as_str(), "info");
    let vat = of(&next, "knowledge.contradiction");
    assert_eq!(vat.len(), 1);
    assert_eq!(vat[0].criticality.as_str(), "critical");
    // Same authority: the more recent change wins.
    assert_eq!(vat[0].auto_resolution.as_deref(), Some("recency_wins"));
}

#[test]
fn equal_authority_and_time_go_to_the_human_then_to_a_person() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    ingest(
        &ledger,
        &[
            chunk_created_by("c1", "chunk-1", &day(1), ("k", "a"), ("human", "editor-3")),
            chunk_created_by("c2", "chunk-2", &day(1), ("k", "b"), ("agent", "bot-1")),
            chunk_created_by("c3", "chunk-3", &day(1), ("j", "a"), ("human", "editor-3")),
            chunk_created_by("c4", "chunk-4", &day(1), ("j", "b"), ("human", "editor-4")),
        ],
    );
    let report = run_at(&ledger, &day(1));
    let by_key = |k: &str| {
        of(&report, "knowledge.contradiction")
            .into_iter()
            .find(|f| f.key.as_deref() == Some(k))
            .unwrap()
            .clone()
    };
    assert_eq!(by_key("k").auto_resolution.as_deref(), Some("human_wins"));
    let escalated = by_key("j");
    assert_eq!(escalated.auto_resolution.as_deref(), Some("escalate"));
    let open: Vec<_> = conflicts(&ledger, &escalated_only())
        .unwrap()
        .into_iter()
        .map(|c| c.id().to_string())
        .collect();
    assert_eq!(open, vec![escalated.conflict_id.clone()]);
    // A person settles it; a criterion that does not decide is refused, not guessed.
    let refused = resolve(
        &ledger,
        &escalated.conflict_id,
        (Resolution::AuthorityWins, "same level"),
        &act(),
        None,
    )
    .unwrap_err();
    assert!(refused.to_string().contains("does not decide"), "{refused}");
    let record = resolve(
        &ledger,
        &escalated.conflict_id,
        (Resolution::Dismissed, "both are right in their regions"),
        &act(),
        None,
    )
    .unwrap();
    assert_eq!(record["type"], "sealog.conflict_resolved");
    assert_eq!(record["actor"]["id"], "auditor-1");
    assert_eq!(record["data"]["reason"], "both are right in their regions");
    let again = resolve(
        &ledger,
        &escalated.conflict_id,
        (Resolution::Dismissed, "twice"),
        &act(),
        None,
    )
    .unwrap_err();
    assert!(again.to_string().contains("already resolved"), "{again}");
    assert!(conflicts(&ledger, &escalated_only()).unwrap().is_empty());
    let unknown = resolve(
        &ledger,
        "cf-nope",
        (Resolution::Dismissed, "x"),
        &act(),
        None,
    );
    assert!(unknown.unwrap_err().to_string().contains("no conflict"));
    // A tenant sees only its own conflicts.
    assert!(
        resolve(
            &ledger,
            &by_key("k").conflict_id,
            (Resolution::Dismissed, "x"),
            &act(),
            Some("other-tenant")
        )
        .is_err()
    );
    assert_eq!(
        conflicts(&ledger, &tenant_only("other-tenant"))
            .unwrap()
            .len(),
        0
    );
    assert_eq!(conflicts(&ledger, &tenant_only("kb")).unwrap().len(), 2);
}

/// A history whose findings do not depend on where runs cut it.
fn history() -> Vec<serde_json::Value> {
    vec![
        chunk_created(
            "c1",
            "chunk-1",
            &day(1),
            Some(("refund_days", "30")),
            "approved",
        ),
        chunk_created("c2", "chunk-2", &day(1), None, "draft"),
        relationship("r1", "edge-1", &day(1), "chunk-1", "chunk-2"),
        link("l1", "linked", "conv-1", &day(1), None, Some("cust-1")),
        chunk_modified("m0", "ghost", &day(2), "h-x", "h-y"),
        link(
            "l2",
            "relinked",
            "conv-1",
            &day(2),
            Some("cust-9"),
            Some("cust-2"),
        ),
        relationship("r2", "edge-2", &day(2), "chunk-1", "nowhere"),
        chunk_created(
            "c3",
            "chunk-3",
            &day(3),
            Some(("refund_days", "14")),
            "draft",
        ),
        relationship("r3", "edge-3", &day(3), "chunk-3", "chunk-2"),
        popia("p1", "popia-1", &day(3), "in_progress"),
        link("l3", "unlinked", "conv-2", &day(4), Some("cust-4"), None),
        chunk_deleted("d2", "chunk-2", &day(5)),
    ]
}

#[test]
fn incremental_runs_agree_with_a_full_run_and_record_each_finding_once() {
    let events = history();
    let clocks = ["2026-03-02T12:00:00Z", "2026-03-04T12:00:00Z", LATER];
    // One log checked three times as it grows.
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let mut incremental = BTreeSet::new();
    for (part, clock) in [&events[..4], &events[4..9], &events[9..]]
        .iter()
        .zip(clocks)
    {
        ingest(&ledger, part);
        let report = run_at(&ledger, clock);
        assert!(report.integrity.ok);
        for f in report.new_findings() {
            assert!(incremental.insert(f.conflict_id.clone()), "recorded twice");
        }
    }
    // A full re-run of the log finds exactly what the incremental runs found, and records
    // nothing new.
    let again = run_with(&ledger, LATER, |o| o.full = true);
    assert_eq!(again.from_size, 0);
    assert_eq!(again.new_findings().count(), 0, "{:#?}", again.findings);
    let ids: BTreeSet<String> = again
        .findings
        .iter()
        .map(|f| f.conflict_id.clone())
        .collect();
    assert!(ids.len() >= 10, "{ids:?}");
    assert_eq!(ids, incremental);
    assert_eq!(records_of(&ledger, "sealog.conflict").len(), ids.len());
    // The same events checked once in another directory give the same findings (their ids
    // differ where personal values are sealed under that directory's own keys).
    let other = tempfile::tempdir().unwrap();
    let fresh = open(other.path());
    ingest(&fresh, &events);
    let what =
        |fs: &mut dyn Iterator<Item = &sealog_check::Finding>| -> BTreeSet<(String, Vec<String>)> {
            fs.map(|f| (f.rule.clone(), f.subjects.clone())).collect()
        };
    assert_eq!(
        what(&mut run_at(&fresh, LATER).findings.iter()),
        what(&mut again.findings.iter())
    );
    // Runs are records, each from where the last complete one ended.
    let runs = records_of(&ledger, "sealog.check_run");
    assert_eq!(runs.len(), 4);
    assert_eq!(runs[1]["data"]["from_size"], runs[0]["data"]["tree_size"]);
    assert_eq!(runs[2]["data"]["from_size"], runs[1]["data"]["tree_size"]);
    assert_eq!(runs[3]["data"]["full"], true);
}

#[test]
fn a_partial_run_does_not_move_where_the_next_run_starts() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    ingest(&ledger, &history()[..6]);
    let first = run_at(&ledger, LATER);
    ingest(&ledger, &history()[6..]);
    let partial = run_with(&ledger, LATER, |o| {
        o.rules = vec!["conversation.unlink_without_link".into()]
    });
    assert!(partial.partial);
    assert_eq!(partial.rules, vec!["conversation.unlink_without_link"]);
    assert_eq!(partial.findings.len(), 1);
    let by_subject = run_with(&ledger, LATER, |o| o.subject = Some("edge-2".into()));
    assert_eq!(by_subject.findings.len(), 1, "{:#?}", by_subject.findings);
    assert_eq!(by_subject.findings[0].subjects, vec!["edge-2", "nowhere"]);
    let next = run_at(&ledger, LATER);
    assert_eq!(next.from_size, first.tree_size);
    let unknown = sealog_check::run(
        &ledger,
        &sealog_check::RunOptions {
            rules: vec!["no.such_rule".into()],
            subject: None,
            full: false,
            now: t(LATER),
            act: act(),
            domain: None,
        },
    );
    assert!(
        unknown
            .unwrap_err()
            .to_string()
            .contains("no rule no.such_rule")
    );
}

#[test]
fn reconciliation_finds_unaudited_links_and_audited_links_missing_from_the_domain() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    ingest(
        &ledger,
        &[
            link("l1", "linked", "conv-ok", &day(1), None, Some("cust-1")),
            link("l2", "linked", "conv-gone", &day(1), None, Some("cust-2")),
            link("l3", "linked", "conv-moved", &day(1), None, Some("cust-3")),
            link("l4", "linked", "conv-undone", &day(1), None, Some("cust-4")),
            link(
                "l5",
                "unlinked",
                "conv-undone",
                &day(2),
                Some("cust-4"),
                None,
            ),
        ],
    );
    let snapshot = [
        r#"{"tenant":"instructor-42","conversation_id":"conv-ok","customer_id":"cust-1"}"#,
        r#"{"tenant":"instructor-42","conversation_id":"conv-moved","customer_id":"cust-9"}"#,
        r#"{"tenant":"instructor-42","conversation_id":"conv-secret","customer_id":"cust-5"}"#,
        r#"{"tenant":"instructor-42","conversation_id":"conv-undone","customer_id":null}"#,
        "",
    ]
    .join("\n");
    let rows = parse_domain(&snapshot).unwrap();
    let report = run_with(&ledger, LATER, |o| o.domain = Some(rows));
    let subjects = |rule| -> Vec<String> {
        let mut s: Vec<String> = of(&report, rule)
            .iter()
            .flat_map(|f| f.subjects.clone())
            .collect();
        s.sort();
        s
    };
    assert_eq!(
        subjects("conversation.unaudited_link"),
        vec!["conv-moved", "conv-secret"]
    );
    assert_eq!(
        subjects("conversation.link_missing_from_domain"),
        vec!["conv-gone", "conv-moved"]
    );
    assert_eq!(
        of(&report, "conversation.unaudited_link")[0]
            .criticality
            .as_str(),
        "critical"
    );
    // Without a snapshot the reconcile rules do not run.
    let plain = run_at(&ledger, LATER);
    assert!(!plain.rules.iter().any(|r| r.contains("unaudited")));
    // A snapshot that is not NDJSON objects is refused with its line.
    let long = format!("{{\"conversation_id\":\"{}\"}}", "x".repeat(70_000));
    for (bad, line) in [
        ("{\"a\":1}\n[1]", "line 2"),
        ("not json", "line 1"),
        (long.as_str(), "longer than"),
    ] {
        let e = parse_domain(bad).unwrap_err().to_string();
        assert!(e.contains(line), "{e}");
    }
    let twice = parse_domain(
        "{\"conversation_id\":\"c\",\"customer_id\":\"a\"}\n{\"conversation_id\":\"c\",\"customer_id\":\"b\"}",
    )
    .unwrap();
    let e = sealog_check::run(
        &ledger,
        &sealog_check::RunOptions {
            rules: Vec::new(),
            subject: None,
            full: false,
            now: t(LATER),
            act: act(),
            domain: Some(twice),
        },
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("linked differently on line 1"),
        "{e}"
    );
}

fn reconciled(ledger: &sealog_ledger::Ledger, snapshot: &[&str]) -> RunReport {
    let rows = parse_domain(&snapshot.join("\n")).unwrap();
    run_with(ledger, LATER, |o| o.domain = Some(rows))
}

fn reconcile_findings(report: &RunReport) -> Vec<&sealog_check::Finding> {
    let mut found = of(report, "conversation.unaudited_link");
    found.extend(of(report, "conversation.link_missing_from_domain"));
    found
}

#[test]
fn a_snapshot_row_without_a_tenant_means_the_one_tenant_holding_its_conversation() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    ingest(
        &ledger,
        &[link(
            "l1",
            "linked",
            "conv-881",
            &day(1),
            None,
            Some("cust-23"),
        )],
    );
    let report = reconciled(
        &ledger,
        &[r#"{"conversation_id":"conv-881","customer_id":"cust-23"}"#],
    );
    assert!(
        reconcile_findings(&report).is_empty(),
        "{:?}",
        report.findings
    );
    // The same conversation id in a second tenant: a row must say which it means.
    let mut other = link("l2", "linked", "conv-881", &day(2), None, Some("cust-7"));
    other["tenant"] = json!("instructor-7");
    other["data"]["instructor_id"] = json!("instructor-7");
    ingest(&ledger, &[other]);
    let ambiguous = [
        r#"{"tenant":"instructor-7","conversation_id":"conv-881","customer_id":"cust-7"}"#,
        r#"{"conversation_id":"conv-881","customer_id":"cust-23"}"#,
    ];
    let rows = parse_domain(&ambiguous.join("\n")).unwrap();
    let e = sealog_check::run(
        &ledger,
        &sealog_check::RunOptions {
            rules: Vec::new(),
            subject: None,
            full: false,
            now: t(LATER),
            act: act(),
            domain: Some(rows),
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("line 2") && e.contains("\"tenant\"") && e.contains("instructor-7"),
        "{e}"
    );
    assert!(records_of(&ledger, CONFLICT_TYPE).is_empty());
    let named = reconciled(
        &ledger,
        &[
            r#"{"tenant":"instructor-7","conversation_id":"conv-881","customer_id":"cust-7"}"#,
            r#"{"tenant":"instructor-42","conversation_id":"conv-881","customer_id":"cust-23"}"#,
        ],
    );
    assert!(
        reconcile_findings(&named).is_empty(),
        "{:?}",
        named.findings
    );
}

#[test]
fn a_log_that_no_longer_extends_the_last_checked_root_is_a_critical_finding() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    ingest(&ledger, &history()[..3]);
    let first = run_at(&ledger, LATER);
    assert!(first.integrity.ok);
    assert_eq!(first.integrity.records, 3);
    // As if the log had been rewritten since: the last run's record names another root.
    let forged = json!({
        "run_id": "run-forged", "tree_size": first.tree_size, "from_size": 0,
        "root": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "checked_at": LATER, "integrity": {"ok": true}, "findings": 0,
    });
    ledger
        .append_own(
            "run-forged".into(),
            "sealog.check_run",
            &act(),
            None,
            forged,
        )
        .unwrap()
        .unwrap();
    let report = run_at(&ledger, LATER);
    assert!(!report.integrity.ok);
    assert!(
        report
            .integrity
            .message
            .as_deref()
            .unwrap()
            .contains("does not extend"),
        "{:?}",
        report.integrity
    );
    let found = of(&report, sealog_check::INTEGRITY_RULE);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].criticality.as_str(), "critical");
    assert_eq!(report.worst(true).unwrap().as_str(), "critical");
}

#[test]
fn records_pruned_by_retention_still_check_against_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let packs_dir = tempfile::tempdir().unwrap();
    // Retention prunes only what is due at an instant that has come: records of a type kept a
    // second, beside the history's, kept seven years.
    let manifest = json!({"pack": "brief", "retention": "PT1S",
        "types": {"brief.note": {"schema": "note.schema.json"}}});
    std::fs::write(packs_dir.path().join("manifest.json"), manifest.to_string()).unwrap();
    std::fs::write(
        packs_dir.path().join("note.schema.json"),
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object"}"#,
    )
    .unwrap();
    let ledger = open_with(
        dir.path(),
        sealog_packs::Packs::load(&[packs_dir.path()]).unwrap(),
    );
    ingest(&ledger, &history()[..4]);
    let notes: Vec<_> = (0..4)
        .map(|i| {
            json!({"specversion": "1.0", "id": format!("note-{i}"), "source": "tests",
                   "type": "brief.note", "time": day(1), "data": {"i": i}})
        })
        .collect();
    let seqs = ingest(&ledger, &notes);
    let newest: serde_json::Value =
        serde_json::from_slice(&ledger.get(seqs[3]).unwrap().unwrap()).unwrap();
    let newest = t(newest["ingested_at"].as_str().unwrap());
    let now = sealog_testkit::wait_for(10, "the notes to be a second old", || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        (now > newest + 1_000_000_000).then_some(now)
    });
    let pruned = ledger.apply_retention(now, false, &act()).unwrap();
    assert_eq!(pruned.pruned, 4);
    let report = run_with(&ledger, "2034-06-01T00:00:00Z", |o| o.full = true);
    assert!(report.integrity.ok, "{:?}", report.integrity);
    assert!(report.integrity.records >= 8);
}
