//! Reports counted from the index agree with what was appended, stay within the caller's
//! reach, and judge POPIA requests and breaches by their deadlines.

use sealog_ledger::{
    Author, Durability, IngestResult, Ledger, LedgerConfig, Packs, StoreConfig, Undeclared,
};
use sealog_model::time::{format_micros, parse_rfc3339};
use sealog_report::{Name, Report, Request, Section, build};
use serde_json::{Value, json};

const HOUR: i64 = 3_600_000_000_000;
const DAY: i64 = 24 * HOUR;

fn open(dir: &std::path::Path) -> Ledger {
    Ledger::open(
        dir,
        LedgerConfig {
            store: StoreConfig {
                durability: Durability::Os,
                // Small memtables: counts cross flushed index runs and the memtable.
                memtable_records_max: 16,
                ..StoreConfig::default()
            },
            packs: Packs::builtin(),
            undeclared: Undeclared::Quarantine,
        },
    )
    .unwrap()
}

fn ingest(ledger: &Ledger, events: &[Value]) -> Vec<IngestResult> {
    let raw: Vec<Vec<u8>> = events.iter().map(|e| e.to_string().into_bytes()).collect();
    let raws: Vec<_> = raw.iter().map(|r| Ok(r.as_slice())).collect();
    ledger.ingest(&raws, &Author::ANYONE).unwrap()
}

/// A decision made half an hour ago.
fn decision(n: usize, tenant: &str, class: &str, decision: &str) -> Value {
    decision_at(n, tenant, class, decision, now() - HOUR / 2)
}

fn decision_at(n: usize, tenant: &str, class: &str, decision: &str, time: i64) -> Value {
    let time = format_micros(time);
    let mut data = json!({
        "envelope_id": format!("env-{n}"), "envelope_class": class, "decision": decision,
        "reason": "test", "decision_timestamp": time, "tenant_id": tenant,
    });
    match decision {
        "REJECTED" => data["conflicting_envelope_id"] = json!("env-0"),
        "PREEMPTED" => data["preempting_envelope_id"] = json!("env-0"),
        _ => {}
    }
    json!({"specversion": "1.0", "id": format!("d{n}"), "source": "c4", "type": "coordination.decision",
           "time": time, "tenant": tenant,
           "actor": {"type": "service", "id": "coordination-manager"}, "data": data})
}

fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    )
    .unwrap()
}

fn request(name: Name, from: i64, to: i64, tenant: Option<&str>) -> Request {
    Request {
        name,
        from: Some(from),
        to: Some(to),
        now: now(),
        filters: tenant
            .map(|t| vec![("tenant".to_string(), t.to_string())])
            .unwrap_or_default(),
    }
}

fn series<'a>(r: &'a Report, id: &str) -> &'a [sealog_report::Series] {
    r.sections
        .iter()
        .find_map(|s| match s {
            Section::Series { id: i, series, .. } if *i == id => Some(series.as_slice()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no series section {id}"))
}

fn total(r: &Report, id: &str, name: &str) -> u64 {
    series(r, id)
        .iter()
        .find(|s| s.name == name)
        .map_or(0, sealog_report::Series::total)
}

fn table<'a>(r: &'a Report, id: &str) -> &'a [Vec<Value>] {
    r.sections
        .iter()
        .find_map(|s| match s {
            Section::Table { id: i, rows, .. } if *i == id => Some(rows.as_slice()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no table section {id}"))
}

const CLASSES: [&str; 4] = ["SAFETY", "RELIABILITY", "COST", "PERFORMANCE"];
const DECISIONS: [&str; 3] = ["APPLIED", "REJECTED", "PREEMPTED"];

#[test]
fn coordination_decisions_are_counted_by_class_and_outcome_within_the_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let start = now();
    let mut events = Vec::new();
    let mut want = std::collections::BTreeMap::new();
    for n in 0..60 {
        let (class, d) = (CLASSES[n % 4], DECISIONS[n % 5 % 3]);
        let tenant = if n % 6 == 0 { "tenant-b" } else { "tenant-a" };
        if tenant == "tenant-a" {
            *want.entry((class, d)).or_insert(0u64) += 1;
        }
        events.push(decision(n, tenant, class, d));
    }
    // Refused by the pack: quarantined, never counted as decisions.
    events.push(decision(99, "tenant-a", "NOT_A_CLASS", "APPLIED"));
    for chunk in events.chunks(7) {
        ingest(&ledger, chunk);
    }
    let end = now() + HOUR;
    let r = build(
        &ledger,
        &request(Name::Coordination, start - DAY, end, Some("tenant-a")),
    )
    .unwrap();
    for class in CLASSES {
        let expected: u64 = DECISIONS
            .iter()
            .map(|d| want.get(&(class, *d)).copied().unwrap_or(0))
            .sum();
        assert_eq!(total(&r, "by_class", class), expected, "{class}");
    }
    for d in DECISIONS {
        let expected: u64 = CLASSES
            .iter()
            .map(|c| want.get(&(*c, d)).copied().unwrap_or(0))
            .sum();
        assert_eq!(total(&r, "by_decision", d), expected, "{d}");
    }
    for row in table(&r, "matrix") {
        let class = row[0].as_str().unwrap();
        for (i, d) in DECISIONS.iter().enumerate() {
            assert_eq!(
                row[i + 1],
                json!(want.get(&(class, *d)).copied().unwrap_or(0)),
                "{class} {d}"
            );
        }
    }
    // Unscoped, tenant-b's decisions are counted too.
    let all = build(
        &ledger,
        &request(Name::Coordination, start - DAY, end, None),
    )
    .unwrap();
    let every: u64 = CLASSES.iter().map(|c| total(&all, "by_class", c)).sum();
    assert_eq!(every, 60);
    // A window before anything was ingested counts nothing.
    let before = build(
        &ledger,
        &request(Name::Coordination, start - 3 * DAY, start - 2 * DAY, None),
    )
    .unwrap();
    assert_eq!(
        CLASSES
            .iter()
            .map(|c| total(&before, "by_class", c))
            .sum::<u64>(),
        0
    );
}

#[test]
fn daily_activity_counts_every_record_and_every_quarantined_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let start = now();
    let mut events: Vec<Value> = (0..25)
        .map(|n| decision(n, "tenant-a", "COST", "APPLIED"))
        .collect();
    for n in 0..4 {
        events.push(decision(100 + n, "tenant-a", "BAD", "APPLIED"));
    }
    events.push(
        json!({"specversion": "1.0", "id": "u1", "source": "s", "type": "no.such.type",
                       "time": "2026-11-28T14:00:00Z", "data": {}}),
    );
    ingest(&ledger, &events);
    let r = build(
        &ledger,
        &request(Name::Daily, start - HOUR, now() + HOUR, None),
    )
    .unwrap();
    assert_eq!(r.window.period.as_str(), "hour");
    assert_eq!(total(&r, "appended", "coordination.decision"), 25);
    let appended: u64 = series(&r, "appended")
        .iter()
        .map(sealog_report::Series::total)
        .sum();
    assert_eq!(appended, ledger.len());
    assert_eq!(total(&r, "quarantined", "SCHEMA_VIOLATION"), 4);
    assert_eq!(total(&r, "quarantined", "UNKNOWN_EVENT_TYPE"), 1);
    let quarantined: u64 = series(&r, "quarantined")
        .iter()
        .map(sealog_report::Series::total)
        .sum();
    assert_eq!(quarantined, ledger.quarantine_len());
    assert_eq!(r.log_size, ledger.len());
    // Every series has one value per period.
    for s in r.sections.iter().filter_map(|s| match s {
        Section::Series { series, .. } => Some(series),
        Section::Table { .. } => None,
    }) {
        assert!(s.iter().all(|s| s.values.len() == r.window.starts.len()));
    }
}

fn popia(id: &str, request: &str, requested: i64, completed: Option<i64>) -> Value {
    let mut timeline = json!({"target_completion": format_micros(requested + 30 * DAY),
                              "status": if completed.is_some() { "completed" } else { "in_progress" }});
    if let Some(c) = completed {
        timeline["actual_completion"] = json!(format_micros(c));
    }
    json!({
        "specversion": "1.0", "id": id, "source": "shop-comms", "type": "comms.popia_request",
        "time": format_micros(completed.unwrap_or(requested)), "tenant": "shop-za",
        "actor": {"type": "human", "id": "agent-5"},
        "data": {"request_id": request, "request_type": "access", "customer_id": "cust-23",
            "request_timestamp": format_micros(requested), "request_channel": "email",
            "verification_status": "verified", "processing_timeline": timeline},
    })
}

fn breach(id: &str, incident: &str, discovered: i64, notified: Option<i64>) -> Value {
    let mut e = json!({
        "specversion": "1.0", "id": id, "source": "shop-comms", "type": "comms.breach_incident",
        "time": format_micros(discovered), "tenant": "shop-za", "actor": {"type": "human", "id": "dpo-1"},
        "data": {"incident_id": incident, "discovery_timestamp": format_micros(discovered),
            "incident_type": "unauthorized_access", "affected_records": {"count": 3}},
    });
    if let Some(n) = notified {
        e["data"]["notification_timeline"] = json!({"regulator_notification": format_micros(n)});
    }
    e
}

#[test]
fn weekly_compliance_judges_popia_requests_and_breaches_by_their_deadlines() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let t = now();
    let results = ingest(
        &ledger,
        &[
            popia("p1", "req-overdue", t - 40 * DAY, None),
            popia("p2", "req-open", t - 3 * DAY, None),
            popia("p3", "req-done", t - 5 * DAY, None),
            popia("p4", "req-late", t - 45 * DAY, None),
            breach(
                "b1",
                "inc-in-time",
                t - 2 * DAY,
                Some(t - 2 * DAY + 10 * HOUR),
            ),
            breach("b2", "inc-overdue", t - 6 * DAY, None),
            breach("b3", "inc-pending", t - 10 * HOUR, None),
        ],
    );
    assert!(results.iter().all(|r| r.seq().is_some()), "{results:?}");
    // Completions supersede nothing: they update the request's state.
    let done = ingest(
        &ledger,
        &[
            popia("p3b", "req-done", t - 5 * DAY, Some(t - DAY)),
            popia("p4b", "req-late", t - 45 * DAY, Some(t - 2 * DAY)),
        ],
    );
    assert!(done.iter().all(|r| r.seq().is_some()), "{done:?}");
    let r = build(
        &ledger,
        &request(Name::Weekly, t - 7 * DAY, now() + HOUR, Some("shop-za")),
    )
    .unwrap();
    let standing = |id: &str| -> String {
        table(&r, "popia_requests")
            .iter()
            .find(|row| row[0] == json!(id))
            .map(|row| row[7].as_str().unwrap().to_string())
            .unwrap_or_else(|| "absent".into())
    };
    assert_eq!(standing("req-overdue"), "overdue");
    assert_eq!(standing("req-open"), "open");
    assert_eq!(standing("req-done"), "completed");
    assert_eq!(standing("req-late"), "completed late");
    let summary = table(&r, "popia_summary");
    assert!(
        summary.contains(&vec![json!("overdue"), json!(1)]),
        "{summary:?}"
    );
    let breach_standing = |id: &str| -> String {
        table(&r, "breaches")
            .iter()
            .find(|row| row[0] == json!(id))
            .map(|row| row[6].as_str().unwrap().to_string())
            .unwrap_or_else(|| "absent".into())
    };
    assert_eq!(breach_standing("inc-in-time"), "notified in time");
    assert_eq!(breach_standing("inc-overdue"), "not notified, overdue");
    assert_eq!(breach_standing("inc-pending"), "not notified yet");
    let hours = table(&r, "breaches")
        .iter()
        .find(|row| row[0] == json!("inc-in-time"))
        .unwrap()[5]
        .clone();
    assert_eq!(hours, json!(10.0));
    // Another tenant's key sees none of it.
    let other = build(
        &ledger,
        &request(Name::Weekly, t - 7 * DAY, now() + HOUR, Some("elsewhere")),
    )
    .unwrap();
    assert!(table(&other, "popia_requests").is_empty());
    assert!(table(&other, "breaches").is_empty());
}

#[test]
fn a_request_completed_without_a_completion_time_counts_from_the_record_that_completed_it() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let t = now();
    let without_completion_time = |id: &str, request: &str, requested: i64, completed: i64| {
        let mut e = popia(id, request, requested, Some(completed));
        e["data"]["processing_timeline"]
            .as_object_mut()
            .unwrap()
            .remove("actual_completion");
        e
    };
    let results = ingest(
        &ledger,
        &[
            popia("q1", "req-in-time", t - 20 * DAY, None),
            popia("q2", "req-after-due", t - 50 * DAY, None),
            without_completion_time("q1b", "req-in-time", t - 20 * DAY, t - 16 * DAY),
            without_completion_time("q2b", "req-after-due", t - 50 * DAY, t - 10 * DAY),
        ],
    );
    assert!(results.iter().all(|r| r.seq().is_some()), "{results:?}");
    let row = |r: &Report, id: &str| -> Vec<Value> {
        table(r, "popia_requests")
            .iter()
            .find(|row| row[0] == json!(id))
            .cloned()
            .unwrap_or_else(|| panic!("{id} not listed"))
    };
    let first = build(
        &ledger,
        &request(Name::Popia, t - 60 * DAY, t + HOUR, Some("shop-za")),
    )
    .unwrap();
    let in_time = row(&first, "req-in-time");
    assert_eq!(in_time[7], json!("completed"));
    assert_eq!(in_time[6], json!(format_micros(t - 16 * DAY)));
    let after_due = row(&first, "req-after-due");
    assert_eq!(after_due[7], json!("completed late"));
    assert_eq!(after_due[6], json!(format_micros(t - 10 * DAY)));
    // Judged again later, the same log gives the same rows: nothing is the report's own clock.
    let again = build(
        &ledger,
        &request(Name::Popia, t - 60 * DAY, t + HOUR, Some("shop-za")),
    )
    .unwrap();
    assert_eq!(row(&again, "req-in-time"), in_time);
    assert_eq!(row(&again, "req-after-due"), after_due);
}

/// The same event in another tenant, recorded at another time.
fn elsewhere(mut e: Value, tenant: &str, id: &str) -> Value {
    e["tenant"] = json!(tenant);
    e["id"] = json!(id);
    e
}

fn recorded_at(mut e: Value, time: i64) -> Value {
    e["time"] = json!(format_micros(time));
    e
}

/// A table's rows as (id, scope, column `at`).
fn rows_by_place(r: &Report, id: &str, at: usize) -> Vec<(String, String, Value)> {
    let mut rows: Vec<_> = table(r, id)
        .iter()
        .map(|row| {
            (
                row[0].as_str().unwrap().to_string(),
                row[1].as_str().unwrap().to_string(),
                row[at].clone(),
            )
        })
        .collect();
    rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    rows
}

#[test]
fn a_request_id_used_in_two_tenants_is_a_row_in_each() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let t = now();
    let results = ingest(
        &ledger,
        &[
            popia("p1", "REQ-1", t - 40 * DAY, None),
            elsewhere(popia("p2", "REQ-1", t - 40 * DAY, None), "shop-uk", "p2"),
            popia("p3", "REQ-2", t - 40 * DAY, None),
            breach("b1", "INC-1", t - 5 * DAY, None),
            elsewhere(breach("b2", "INC-1", t - 5 * DAY, None), "shop-uk", "b2"),
        ],
    );
    assert!(results.iter().all(|r| r.seq().is_some()), "{results:?}");
    let r = build(
        &ledger,
        &request(Name::Weekly, t - 7 * DAY, now() + HOUR, None),
    )
    .unwrap();
    let overdue = json!("overdue");
    assert_eq!(
        rows_by_place(&r, "popia_requests", 7),
        [
            ("REQ-1".into(), "shop-uk".into(), overdue.clone()),
            ("REQ-1".into(), "shop-za".into(), overdue.clone()),
            ("REQ-2".into(), "shop-za".into(), overdue),
        ]
    );
    let summary = table(&r, "popia_summary");
    assert!(
        summary.contains(&vec![json!("overdue"), json!(3)]),
        "{summary:?}"
    );
    let late = json!("not notified, overdue");
    assert_eq!(
        rows_by_place(&r, "breaches", 6),
        [
            ("INC-1".into(), "shop-uk".into(), late.clone()),
            ("INC-1".into(), "shop-za".into(), late),
        ]
    );
    // A tenant's key sees its own row of the shared id.
    let za = build(
        &ledger,
        &request(Name::Popia, t - 7 * DAY, now() + HOUR, Some("shop-za")),
    )
    .unwrap();
    assert_eq!(
        rows_by_place(&za, "popia_requests", 1)
            .into_iter()
            .map(|(id, scope, _)| (id, scope))
            .collect::<Vec<_>>(),
        [
            ("REQ-1".to_string(), "shop-za".to_string()),
            ("REQ-2".into(), "shop-za".into())
        ]
    );
}

/// The same history as the checker's `deadlines_run_from_when_a_request_was_received_or_a_breach_discovered`:
/// the two must call the same requests overdue.
#[test]
fn deadlines_run_from_when_a_request_was_received_or_a_breach_discovered() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let t = now();
    let received = t - 48 * DAY;
    let discovered = t - 5 * DAY;
    let results = ingest(
        &ledger,
        &[
            // Recorded 31 days after it was received: already overdue when it arrived.
            recorded_at(
                popia("p1", "req-logged-late", received, None),
                received + 31 * DAY,
            ),
            // A breach recorded four days after its discovery, never notified.
            recorded_at(breach("b1", "inc-logged-late", discovered, None), t - DAY),
        ],
    );
    assert!(results.iter().all(|r| r.seq().is_some()), "{results:?}");
    let r = build(
        &ledger,
        &request(Name::Weekly, t - 7 * DAY, now() + HOUR, Some("shop-za")),
    )
    .unwrap();
    let row = &table(&r, "popia_requests")[0];
    assert_eq!(row[3], json!(format_micros(received)), "{row:?}");
    assert_eq!(row[4], json!(format_micros(received + 30 * DAY)), "{row:?}");
    assert_eq!(row[7], json!("overdue"), "{row:?}");
    let row = &table(&r, "breaches")[0];
    assert_eq!(row[3], json!(format_micros(discovered)), "{row:?}");
    assert_eq!(row[6], json!("not notified, overdue"), "{row:?}");
}

fn at(text: &str) -> i64 {
    parse_rfc3339(text).unwrap()
}

/// PRODUCT §6: a report's window is on the event clock. An event appended today about a day
/// in January is January's, and today's report does not count it; a quarantined event is
/// counted when it was quarantined, its own time being the one part of it not to trust.
#[test]
fn a_back_filled_event_is_counted_in_the_window_it_happened_in_not_the_day_it_was_appended() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let happened = at("2026-01-15T10:20:00Z");
    let results = ingest(
        &ledger,
        &[
            decision(1, "tenant-a", "COST", "APPLIED"),
            decision_at(2, "tenant-a", "SAFETY", "APPLIED", happened),
            decision_at(3, "tenant-a", "NOT_A_CLASS", "APPLIED", happened),
        ],
    );
    assert_eq!(
        results.iter().filter(|r| r.seq().is_some()).count(),
        2,
        "{results:?}"
    );
    let january = |name| {
        let r = build(
            &ledger,
            &request(
                name,
                at("2026-01-15T00:00:00Z"),
                at("2026-01-16T00:00:00Z"),
                None,
            ),
        )
        .unwrap();
        assert_eq!(r.log_size, ledger.len(), "counted in the log as it is now");
        r
    };
    let today = |name| build(&ledger, &request(name, now() - DAY, now() + HOUR, None)).unwrap();

    let then = january(Name::Coordination);
    assert_eq!(total(&then, "by_class", "SAFETY"), 1);
    assert_eq!(total(&then, "by_class", "COST"), 0);
    let safety = series(&then, "by_class")
        .iter()
        .find(|s| s.name == "SAFETY")
        .unwrap();
    let hour = (happened - then.window.from) / HOUR;
    assert_eq!(safety.values[hour as usize], 1, "in the hour it happened");
    let recent = today(Name::Coordination);
    assert_eq!(total(&recent, "by_class", "SAFETY"), 0);
    assert_eq!(total(&recent, "by_class", "COST"), 1);

    let then = january(Name::Daily);
    assert_eq!(total(&then, "appended", "coordination.decision"), 1);
    assert_eq!(total(&then, "quarantined", "SCHEMA_VIOLATION"), 0);
    let recent = today(Name::Daily);
    assert_eq!(total(&recent, "appended", "coordination.decision"), 1);
    assert_eq!(total(&recent, "quarantined", "SCHEMA_VIOLATION"), 1);
}

/// `sealog demo`'s examples happened in the past: their two coordination decisions are counted
/// on the day they were made, 2025-12-28.
#[test]
fn the_examples_decisions_are_counted_on_the_day_they_were_made() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let examples: Vec<Value> = include_str!("../../../examples/events.ndjson")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    ingest(&ledger, &examples);
    let r = build(
        &ledger,
        &request(
            Name::Coordination,
            at("2025-12-28T00:00:00Z"),
            at("2025-12-29T00:00:00Z"),
            None,
        ),
    )
    .unwrap();
    let decisions: u64 = series(&r, "by_class")
        .iter()
        .map(sealog_report::Series::total)
        .sum();
    assert_eq!(decisions, 2);
    assert_eq!(total(&r, "by_decision", "PREEMPTED"), 1);
    assert_eq!(total(&r, "by_decision", "REJECTED"), 1);
    assert_eq!(r.log_size, ledger.len());
}

/// A request received and answered in June but recorded only today is June's: listed in June's
/// report, judged by its own times, and absent from this month's.
#[test]
fn a_request_recorded_late_is_listed_in_the_window_it_was_received_and_answered_in() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let requested = at("2026-06-03T09:00:00Z");
    let results = ingest(
        &ledger,
        &[popia(
            "p1",
            "req-june",
            requested,
            Some(requested + 10 * DAY),
        )],
    );
    assert!(results.iter().all(|r| r.seq().is_some()), "{results:?}");
    let june = build(
        &ledger,
        &request(
            Name::Popia,
            at("2026-06-01T00:00:00Z"),
            at("2026-07-01T00:00:00Z"),
            None,
        ),
    )
    .unwrap();
    assert_eq!(
        rows_by_place(&june, "popia_requests", 7),
        [("req-june".into(), "shop-za".into(), json!("completed"))]
    );
    let recent = build(
        &ledger,
        &request(Name::Popia, now() - 30 * DAY, now() + HOUR, None),
    )
    .unwrap();
    assert!(table(&recent, "popia_requests").is_empty());
}

#[test]
fn csv_and_markdown_hold_every_section_and_quote_what_needs_it() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let start = now();
    ingest(&ledger, &[decision(1, "tenant-a", "SAFETY", "APPLIED")]);
    let r = build(
        &ledger,
        &request(Name::Monthly, start - 30 * DAY, now() + HOUR, None),
    )
    .unwrap();
    let csv = r.to_csv();
    let first: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    assert_eq!(first, ["section", "what", "count"]);
    assert!(csv.contains("summary,records,1\r\n"), "{csv}");
    assert!(csv.contains("appended,total,1\r\n"), "{csv}");
    let md = r.to_markdown();
    assert!(md.starts_with("# Monthly audit summary"));
    assert!(md.contains("| records | 1 |"), "{md}");
    let json = r.to_json();
    assert_eq!(json["report"], "monthly");
    assert_eq!(
        json["periods"].as_array().unwrap().len(),
        r.window.starts.len()
    );
    assert!(parse_rfc3339(json["from"].as_str().unwrap()).is_ok());
}

#[test]
fn windows_that_cannot_be_reported_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let t = now();
    assert!(build(&ledger, &request(Name::Daily, t, t, None)).is_err());
    assert!(build(&ledger, &request(Name::Daily, t, t - DAY, None)).is_err());
    assert!(build(&ledger, &request(Name::Daily, t - 500 * DAY, t, None)).is_err());
    assert_eq!(Name::parse("weekly"), Some(Name::Weekly));
    assert_eq!(Name::parse("yearly"), None);
}

/// Back-filled events interleave with live ones, so a period's seqs are many runs of one;
/// its counts are still exactly the records whose time falls in it.
#[test]
fn a_period_of_many_scattered_records_is_counted_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let (then, classes) = (
        at("2026-01-15T10:00:00Z"),
        ["SAFETY", "COST", "RELIABILITY"],
    );
    let events: Vec<Value> = (0..300)
        .map(|n| {
            let class = classes[n % 3];
            if n % 2 == 0 {
                decision_at(n, "tenant-a", class, "APPLIED", then)
            } else {
                decision(n, "tenant-a", class, "APPLIED")
            }
        })
        .collect();
    assert!(ingest(&ledger, &events).iter().all(|r| r.seq().is_some()));
    let r = build(
        &ledger,
        &request(
            Name::Coordination,
            at("2026-01-15T00:00:00Z"),
            at("2026-01-16T00:00:00Z"),
            None,
        ),
    )
    .unwrap();
    // Of the 150 back-filled, every third of each class's turn: 50 each.
    for class in classes {
        assert_eq!(total(&r, "by_class", class), 50, "{class}");
    }
    let recent = build(
        &ledger,
        &request(Name::Coordination, now() - DAY, now() + HOUR, None),
    )
    .unwrap();
    for class in classes {
        assert_eq!(total(&recent, "by_class", class), 50, "{class}");
    }
}
