//! Both clocks over HTTP: `as_of=` (what the log knew) and `valid_at=` (what had happened) on
//! `GET /v1/records` and `GET /v1/subjects/{s}/state`, alone and together, their paging, and
//! malformed values.

use sealog_testkit::Api;
use sealog_testkit::events::example;
use sealog_testkit::{InProcess, tempdir};
use serde_json::Value;

fn ids(page: &Value) -> Vec<String> {
    page["records"]
        .as_array()
        .unwrap_or_else(|| panic!("a page: {page}"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn records_and_state_travel_on_both_clocks() {
    let dir = tempdir();
    let app = InProcess::start_packs(dir.path());
    let (writer, _) = app.create_key(&["writer"], None, None);
    let (reader, _) = app.create_key(&["reader"], Some("kb-main"), None);
    // Logged out of order: the deletion (03-05) first, then the creation (03-01) and the
    // modification (03-02).
    let mut seqs = Vec::new();
    for kind in [
        "knowledge.chunk_deleted",
        "knowledge.chunk_created",
        "knowledge.chunk_modified",
    ] {
        let r = app.post_json("/v1/events", Some(&writer), &example(kind));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["results"][0]["status"], "appended", "{}", r.text());
        seqs.push(r.json()["results"][0]["seq"].as_u64().unwrap());
    }
    let get = |path: &str| {
        let r = app.get(path, Some(&reader));
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        r.json()
    };
    let records = |q: &str| ids(&get(&format!("/v1/records?subject=chunk-7{q}")));
    assert_eq!(records(""), ["ka-4", "ka-1", "ka-2"]);
    assert_eq!(records("&valid_at=2026-03-02T12:00:00Z"), ["ka-1", "ka-2"]);
    assert_eq!(records("&valid_at=2026-03-01"), Vec::<String>::new());
    let knew_two = format!("&as_of={}&valid_at=2026-03-02T12:00:00Z", seqs[1] + 1);
    assert_eq!(records(&knew_two), ["ka-1"]);

    let state = |q: &str| get(&format!("/v1/subjects/chunk-7/state?{q}"));
    let now = state("");
    assert_eq!(now["status"], "deleted", "{now}");
    assert_eq!(now["anomalies"], serde_json::json!([]), "{now}");
    let late: Vec<u64> = now["arrived_late"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(late, seqs[1..]);
    let then = state("valid_at=2026-03-04");
    assert_eq!(then["status"], "active", "{then}");
    assert_eq!(then["version"], 2, "{then}");
    assert_eq!(then["valid_at"], "2026-03-04T00:00:00.000000Z");
    let knew = state(&format!("as_of={}&valid_at=2026-03-04", seqs[1] + 1));
    assert_eq!(knew["version"], 1, "{knew}");
    assert_eq!(knew["as_of_size"], seqs[1] + 1);

    // A cursor belongs to its query: the same filters on another valid_at are another query.
    let first = get("/v1/records?subject=chunk-7&valid_at=2026-03-06&limit=1");
    assert_eq!(ids(&first), ["ka-4"]);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let next = get(&format!(
        "/v1/records?subject=chunk-7&valid_at=2026-03-06&limit=1&cursor={cursor}"
    ));
    assert_eq!(ids(&next), ["ka-1"]);
    let other = app.get(
        &format!("/v1/records?subject=chunk-7&valid_at=2026-03-07&limit=1&cursor={cursor}"),
        Some(&reader),
    );
    assert_eq!(other.status, 400, "{}", other.text());
    assert_eq!(other.code(), "BAD_CURSOR");

    for path in [
        "/v1/records?valid_at=yesterday",
        "/v1/records?valid_at=",
        "/v1/subjects/chunk-7/state?valid_at=2026-13-01",
    ] {
        let r = app.get(path, Some(&reader));
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert_eq!(r.code(), "BAD_PARAMETER", "{path}");
    }
}

/// Follows `next_cursor` from `first` to the end, reading each page with `key`.
fn pages_after(app: &InProcess, key: &str, path: &str, first: &Value) -> Vec<String> {
    let mut got = Vec::new();
    let mut page = first.clone();
    while let Some(c) = page["next_cursor"].as_str() {
        let r = app.get(&format!("{path}&cursor={c}"), Some(key));
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        page = r.json();
        got.extend(ids(&page));
    }
    got
}

#[test]
fn every_page_of_an_answer_reads_the_log_at_its_first_pages_size() {
    let dir = tempdir();
    let app = InProcess::start_packs(dir.path());
    let (writer, _) = app.create_key(&["writer"], None, None);
    let (reader, _) = app.create_key(&["reader"], Some("kb-main"), None);
    let mut ids_of = Vec::new();
    for i in 0..6 {
        let mut e = example("knowledge.chunk_created");
        e["id"] = format!("c{i}").into();
        e["data"]["resourceId"] = format!("chunk-{i}").into();
        let r = app.post_json("/v1/events", Some(&writer), &e);
        assert_eq!(r.json()["results"][0]["status"], "appended", "{}", r.text());
        ids_of.push((e, r.json()["results"][0]["record_id"].clone()));
    }
    let path = "/v1/records?type=knowledge.chunk_created&view=current&limit=3";
    let first = app.get(path, Some(&reader));
    assert_eq!(first.status, 200, "{}", first.text());
    let first = first.json();
    assert_eq!(ids(&first), ["c0", "c1", "c2"]);
    // chunk-1 corrected while the pages are read: the answer stays the one its first page
    // began, so chunk-1 is not shown twice (its old head, then its correction).
    let (mut fixed, target) = ids_of[1].clone();
    fixed["id"] = "c1-fixed".into();
    fixed["supersedes"] = target;
    fixed["data"]["authority"] = "approved".into();
    let r = app.post_json("/v1/events", Some(&writer), &fixed);
    assert_eq!(r.json()["results"][0]["status"], "appended", "{}", r.text());
    assert_eq!(pages_after(&app, &reader, path, &first), ["c3", "c4", "c5"]);
    let now = app.get(path, Some(&reader)).json();
    assert_eq!(
        ids(&now),
        ["c0", "c2", "c3"],
        "a new answer reads the log now"
    );

    // `as_of` given as a time after the newest record: the size it names is fixed at the
    // first page, though every read appends an access record.
    let path = "/v1/records?type=knowledge.chunk_created&limit=2&as_of=2200-01-01T00:00:00Z";
    let first = app.get(path, Some(&reader));
    assert_eq!(first.status, 200, "{}", first.text());
    let first = first.json();
    assert_eq!(ids(&first), ["c0", "c1"]);
    assert_eq!(
        pages_after(&app, &reader, path, &first),
        ["c2", "c3", "c4", "c5", "c1-fixed"]
    );

    // A size the log never had is no moment of it.
    for path in [
        "/v1/records?as_of=999999",
        "/v1/subjects/chunk-1/state?as_of=999999",
    ] {
        let r = app.get(path, Some(&reader));
        assert_eq!(
            (r.status, r.code()),
            (409, "AS_OF_PAST_END".to_string()),
            "{path}: {}",
            r.text()
        );
        assert!(
            r.text().contains("past the end of the log"),
            "{path}: {}",
            r.text()
        );
    }
}
