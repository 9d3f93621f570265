//! Personal data over HTTP (PRODUCT §8, §9): who reads personal fields in clear (admins,
//! auditors, the data subject's own key) and who sees a marker (readers, writers), erasure
//! through `POST /v1/erasures` with its role matrix and bad requests, and what stays true
//! after it: records, proofs and `verify`, and no customer id in clear anywhere — not in the
//! records Sealog writes about reads, keys and erasures, not in any file.

use crate::support;

use sealog_testkit::events::examples;
use sealog_testkit::files::files_holding;
use sealog_testkit::{Api, InProcess, Resp, tempdir};
use serde_json::{Value, json};
use support::{access_of, all_pages, assert_verifies, offline_records, post_one};

const CUSTOMER: &str = "cust-private-9031";
const NAME: &str = "Ayanda Privatename";

fn email(id: &str, tenant: &str, customer: &str) -> Value {
    let mut e = examples()
        .into_iter()
        .find(|e| e["id"] == "comms-email-1")
        .expect("the email example");
    e["id"] = json!(id);
    e["tenant"] = json!(tenant);
    e["data"]["email_id"] = json!(format!("<{id}@shop.example>"));
    e["data"]["recipient_details"]["customer_id"] = json!(customer);
    e["data"]["recipient_details"]["name"] = json!(NAME);
    e
}

#[test]
fn personal_fields_are_read_in_clear_only_by_those_allowed_and_erased_through_the_api() {
    let dir = tempdir();
    let app = InProcess::start(dir.path());
    let (admin, _) = app.create_key(&["admin"], None, None);
    let (writer, _) = app.create_key(&["writer"], None, None);
    let (reader, _) = app.create_key(&["reader"], None, None);
    let (auditor, _) = app.create_key(&["auditor"], None, None);
    let (tenant_admin, _) = app.create_key(&["admin"], Some("shop-za"), None);
    let (other_admin, _) = app.create_key(&["admin"], Some("shop-ke"), None);
    let (own, _) = app.create_key(&["subject"], Some("shop-za"), Some(CUSTOMER));
    let (stranger, _) = app.create_key(&["subject"], Some("shop-za"), Some("cust-other"));

    let r = post_one(&app, Some(&writer), &email("m-1", "shop-za", CUSTOMER));
    assert_eq!(r["status"], "appended", "{r}");
    let seq = r["seq"].as_u64().unwrap();
    let other = post_one(&app, Some(&writer), &email("m-2", "shop-za", "cust-other"));
    assert_eq!(other["status"], "appended", "{other}");

    // Who reads what.
    let name_as = |key: &str| -> (u16, Value) {
        let resp = app.get(&format!("/v1/records/{seq}"), Some(key));
        let v = if resp.status == 200 {
            resp.json()
        } else {
            Value::Null
        };
        (resp.status, v["data"]["recipient_details"]["name"].clone())
    };
    assert_eq!(name_as(&admin), (200, json!(NAME)));
    assert_eq!(name_as(&auditor), (200, json!(NAME)));
    assert_eq!(name_as(&own), (200, json!(NAME)));
    assert_eq!(name_as(&reader), (200, json!({"$personal": "hidden"})));
    assert_eq!(
        name_as(&stranger).0,
        404,
        "another customer's record is not theirs"
    );
    let listed = app
        .get("/v1/records?type=comms.email", Some(&reader))
        .json();
    let names: Vec<&Value> = listed["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["data"]["recipient_details"]["customer_id"])
        .collect();
    assert_eq!(names, [&json!({"$personal": "hidden"}); 2], "{listed}");
    // As stored: the bytes the proof covers, for those who may see personal data anyway.
    let stored = app.get(&format!("/v1/records/{seq}?form=sealed"), Some(&auditor));
    assert_eq!(stored.status, 200, "{}", stored.text());
    let sealed = stored.json();
    let id = sealed["data"]["recipient_details"]["customer_id"]
        .as_str()
        .unwrap();
    assert!(id.starts_with("sealed:v1:"), "{sealed}");
    let proof = app
        .get(&format!("/v1/proofs/inclusion?seq={seq}"), Some(&auditor))
        .json();
    let b64 = |v: &Value| -> sealog_merkle::Hash {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap()
    };
    let hashes: Vec<sealog_merkle::Hash> = proof["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(b64)
        .collect();
    sealog_merkle::verify_inclusion(
        &sealog_merkle::leaf_hash(&stored.body),
        seq,
        proof["tree_size"].as_u64().unwrap(),
        &b64(&proof["root"]),
        &hashes,
    )
    .expect("the stored form is the leaf");
    let listed = app
        .get("/v1/records?type=comms.email&form=sealed", Some(&admin))
        .json();
    assert_eq!(listed["records"][0], sealed);
    for key in [&reader, &own] {
        let r = app.get(&format!("/v1/records/{seq}?form=sealed"), Some(key));
        assert_eq!(r.status, 403, "{}", r.text());
    }
    let r = app.get(&format!("/v1/records/{seq}?form=raw"), Some(&auditor));
    assert_eq!(r.status, 400, "{}", r.text());

    // Subject access: the customer exports their own records; the file is the sealed, proven
    // form, and streamed opened it holds their values in clear and nobody else's.
    let exported = app.post_json(
        "/v1/exports",
        Some(&own),
        &json!({"format": "jsonl", "filters": {}}),
    );
    assert_eq!(exported.status, 201, "{}", exported.text());
    let export_id = exported.json()["id"].as_str().unwrap().to_string();
    let file = app.get(&format!("/v1/exports/{export_id}"), Some(&own));
    assert_eq!(file.status, 200, "{}", file.text());
    assert!(!file.text().contains(NAME) && file.text().contains("sealed:v1:"));
    let opened = app.get(&format!("/v1/exports/{export_id}?form=opened"), Some(&own));
    assert_eq!(opened.status, 200, "{}", opened.text());
    assert_eq!(opened.header("x-sealog-form"), Some("opened"));
    let lines: Vec<Value> = opened
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["data"]["recipient_details"]["name"], NAME);
    assert_eq!(
        lines[0]["data"]["recipient_details"]["customer_id"],
        CUSTOMER
    );
    let r = app.get(&format!("/v1/exports/{export_id}?form=raw"), Some(&own));
    assert_eq!(r.status, 400, "{}", r.text());
    // An auditor's bundle of the customer: its files and its audit.export record name them
    // by pseudonym (the search of every file at the end covers DATA/exports too).
    let bundle = app.post_json(
        "/v1/exports",
        Some(&auditor),
        &json!({"format": "bundle", "filters": {"data_subject": CUSTOMER}}),
    );
    assert_eq!(bundle.status, 201, "{}", bundle.text());
    let bundle = bundle.json();
    assert_eq!(bundle["count"], 1, "{bundle}");
    assert!(
        bundle["filters"]["data_subject"]
            .as_str()
            .unwrap()
            .starts_with("ps:"),
        "{bundle}"
    );

    // A query by the customer: found by the keyed hash, echoed by it in the access record.
    let found = app
        .get(
            &format!("/v1/records?data_subject={CUSTOMER}"),
            Some(&auditor),
        )
        .json();
    assert_eq!(found["records"].as_array().unwrap().len(), 1, "{found}");
    let found = app
        .get(
            &format!("/v1/records?axis.customer_id={CUSTOMER}"),
            Some(&auditor),
        )
        .json();
    assert_eq!(found["records"].as_array().unwrap().len(), 1, "{found}");

    // Erasure: admins only, a tenant admin in its own tenant only.
    let body = |s: &str| json!({"data_subject": s, "reason": "POPIA s24 request 88"});
    for key in [&writer, &reader, &auditor, &own] {
        let r = app.post_json("/v1/erasures", Some(key), &body(CUSTOMER));
        assert_eq!(
            (r.status, r.code()),
            (403, "FORBIDDEN".into()),
            "{}",
            r.text()
        );
    }
    let r = app.post_json("/v1/erasures", None, &body(CUSTOMER));
    assert_eq!(r.status, 401, "{}", r.text());
    let mut cross = body(CUSTOMER);
    cross["tenant"] = json!("shop-za");
    let r = app.post_json("/v1/erasures", Some(&other_admin), &cross);
    assert_eq!(r.status, 403, "{}", r.text());
    // Bad requests change nothing.
    for (content_type, bytes, status) in [
        ("text/plain", body(CUSTOMER).to_string().into_bytes(), 415),
        ("application/json", b"{not json".to_vec(), 400),
        (
            "application/json",
            br#"{"data_subject": "x"}"#.to_vec(),
            400,
        ),
        (
            "application/json",
            br#"{"data_subject": "", "reason": "r"}"#.to_vec(),
            400,
        ),
        (
            "application/json",
            br#"{"data_subject": "x", "reason": "r", "extra": 1}"#.to_vec(),
            400,
        ),
        ("application/json", vec![b' '; 3 << 20], 413),
    ] {
        let r = app.req(
            "POST",
            "/v1/erasures",
            Some(&admin),
            Some((content_type, &bytes)),
        );
        assert_eq!(r.status, status, "{content_type}: {}", r.text());
    }
    assert_eq!(
        name_as(&auditor),
        (200, json!(NAME)),
        "nothing was erased yet"
    );
    let r = app.post_json("/v1/erasures", Some(&admin), &body("cust-never-seen"));
    assert_eq!(r.status, 404, "{}", r.text());

    // A legal hold keeps the customer from erasure until it is released.
    let hold = app.post_json(
        "/v1/holds",
        Some(&tenant_admin),
        &json!({"data_subject": CUSTOMER, "reason": "litigation 2026-7"}),
    );
    assert_eq!(hold.status, 201, "{}", hold.text());
    let hold = hold.json();
    assert_eq!(
        hold["tenant"], "shop-za",
        "a tenant admin's hold is in its tenant"
    );
    let r = app.post_json(
        "/v1/holds",
        Some(&other_admin),
        &json!({"tenant": "shop-za", "reason": "not theirs"}),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    let r = app.post_json(
        "/v1/holds",
        Some(&admin),
        &json!({"reason": "nothing named"}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let held = app.post_json("/v1/erasures", Some(&admin), &body(CUSTOMER));
    assert_eq!(
        (held.status, held.code()),
        (409, "LEGAL_HOLD".into()),
        "{}",
        held.text()
    );
    assert_eq!(held.json()["hold_id"], hold["hold_id"]);
    let listed = app.get("/v1/holds", Some(&auditor)).json();
    assert_eq!(listed["holds"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(
        app.get("/v1/holds", Some(&other_admin)).json()["holds"],
        json!([])
    );
    let r = app.post_json(
        "/v1/holds/release",
        Some(&other_admin),
        &json!({"hold_id": hold["hold_id"], "reason": "not theirs"}),
    );
    assert_eq!(r.status, 404, "{}", r.text());
    let r = app.post_json(
        "/v1/holds/release",
        Some(&admin),
        &json!({"hold_id": hold["hold_id"], "reason": "settled"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        app.get("/v1/holds", Some(&admin)).json()["holds"],
        json!([])
    );
    let all = app.get("/v1/holds?all=true", Some(&admin)).json();
    assert_eq!(all["holds"].as_array().unwrap().len(), 1, "{all}");
    assert_eq!(app.get("/v1/holds?all=maybe", Some(&admin)).status, 400);
    // A hold of no tenant, placed by an admin of every tenant: a tenant admin's erasure is
    // refused without the hold's id or reason, which that tenant's readers would read in
    // the refusal's access record.
    let global = app.post_json(
        "/v1/holds",
        Some(&admin),
        &json!({"data_subject": CUSTOMER, "reason": "subpoena re shop-b 77"}),
    );
    assert_eq!(global.status, 201, "{}", global.text());
    let global_id = global.json()["hold_id"].as_str().unwrap().to_string();
    let r = app.post_json("/v1/erasures", Some(&tenant_admin), &body(CUSTOMER));
    assert_eq!(
        (r.status, r.code()),
        (409, "LEGAL_HOLD".into()),
        "{}",
        r.text()
    );
    assert!(
        !r.text().contains("subpoena") && !r.text().contains(&global_id),
        "{}",
        r.text()
    );
    let r = app.post_json(
        "/v1/holds/release",
        Some(&admin),
        &json!({"hold_id": global_id, "reason": "withdrawn"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());

    let done = app.post_json("/v1/erasures", Some(&tenant_admin), &body(CUSTOMER));
    assert_eq!(done.status, 201, "{}", done.text());
    let done = done.json();
    assert_eq!(done["records_affected"], 1, "{done}");
    assert_eq!(done["tenants"], json!(["shop-za"]));
    let again = app.post_json("/v1/erasures", Some(&admin), &body(CUSTOMER));
    assert_eq!(
        (again.status, again.code()),
        (409, "ALREADY_ERASED".into()),
        "{}",
        again.text()
    );

    // The record is still there and reads as erased, for everyone allowed to read it.
    assert_eq!(name_as(&auditor), (200, json!({"$personal": "erased"})));
    assert_eq!(name_as(&own), (200, json!({"$personal": "erased"})));
    let found = app
        .get(
            &format!("/v1/records?data_subject={CUSTOMER}"),
            Some(&auditor),
        )
        .json();
    assert_eq!(found["records"], json!([]), "found by nothing: {found}");
    // The other customer is untouched.
    let other_seq = other["seq"].as_u64().unwrap();
    let theirs = app
        .get(&format!("/v1/records/{other_seq}"), Some(&stranger))
        .json();
    assert_eq!(
        theirs["data"]["recipient_details"]["customer_id"],
        "cust-other"
    );
    // Re-sent after erasure: refused into quarantine, the personal values kept nowhere.
    let resent = post_one(&app, Some(&writer), &email("m-1", "shop-za", CUSTOMER));
    assert_eq!(resent["reason_code"], "DATA_SUBJECT_ERASED", "{resent}");
    app.stop();

    assert_verifies(dir.path());
    let records = offline_records(dir.path());
    let erasure = records
        .iter()
        .find(|r| r["type"] == "audit.legal_erasure")
        .expect("the erasure record");
    assert_eq!(
        erasure["data"]["data_subject_pseudonym"],
        done["data_subject_pseudonym"]
    );
    assert_eq!(erasure["tenant"], "shop-za");
    assert_eq!(erasure["data"]["reason"], "POPIA s24 request 88");
    // Key records, access records (their echoed filters) and the erasure record name the
    // customer by pseudonym only; no file holds the customer id or the name in clear.
    for needle in [CUSTOMER, NAME] {
        let found = files_holding(dir.path(), needle);
        assert!(found.is_empty(), "{needle:?} is in clear in {found:?}");
    }
    let key_records: Vec<&Value> = records
        .iter()
        .filter(|r| r["type"] == "audit.key_created" && !r["data"]["data_subject"].is_null())
        .collect();
    assert_eq!(key_records.len(), 2);
    assert!(
        key_records.iter().all(|r| r["data"]["data_subject"]
            .as_str()
            .unwrap()
            .starts_with("ps:")),
        "{key_records:?}"
    );
}

/// A request that does not parse (a filter without its `axis.` prefix, a stray member in an
/// export request, a body that is not JSON) is recorded by its parameters' and members'
/// names with every value by its keyed hash: the access record still says which customer
/// was asked for, as the pseudonym that names them everywhere else, but no reader of the
/// tenant reads the customer id in it and no file holds it in clear.
#[test]
fn a_request_that_does_not_parse_is_recorded_without_the_values_it_sent() {
    let dir = tempdir();
    let app = InProcess::start_packs(dir.path());
    let (writer, _) = app.create_key(&["writer"], Some("shop-za"), None);
    let (reader, _) = app.create_key(&["reader"], Some("shop-za"), None);
    let (auditor, _) = app.create_key(&["auditor"], Some("shop-za"), None);
    let r = post_one(&app, Some(&writer), &email("m-1", "shop-za", CUSTOMER));
    assert_eq!(r["status"], "appended", "{r}");

    let unprefixed = format!("customer_id={CUSTOMER}");
    let queried: Vec<_> = [
        "/v1/records",
        "/v1/quarantine",
        "/v1/subjects/conv-1/state",
        "/v1/proofs/inclusion",
        "/v1/reports/daily",
        "/v1/conflicts",
    ]
    .into_iter()
    .map(|route| {
        let got = app.get(&format!("{route}?{unprefixed}"), Some(&auditor));
        assert_eq!(got.status, 400, "{route}: {}", got.text());
        got
    })
    .collect();
    let export = |body: &[u8]| {
        let auth = format!("Bearer {auditor}");
        let got = app.send(
            "POST",
            "/v1/exports",
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ],
            Some(body),
        );
        assert_eq!(got.status, 400, "{}", got.text());
        got
    };
    // An axis under a wrong name parses, and is refused as unknown: its value is kept by
    // its keyed hash too.
    let misnamed = app.get(
        &format!("/v1/records?axis.customer={CUSTOMER}"),
        Some(&auditor),
    );
    assert_eq!(
        (misnamed.status, misnamed.code().as_str()),
        (400, "UNKNOWN_AXIS"),
        "{}",
        misnamed.text()
    );
    let misnamed_axis =
        json!({"format": "jsonl", "filters": {"axes": {"customer_email": CUSTOMER}}});
    export(misnamed_axis.to_string().as_bytes());
    let stray = json!({"format": "jsonl", "filters": {"data_subject": CUSTOMER}, "note": 7});
    let with_stray_member = export(stray.to_string().as_bytes());
    let form_encoded = format!("data_subject={CUSTOMER}");
    let not_json = export(form_encoded.as_bytes());

    let access = all_pages(
        &app,
        Some(&reader),
        "/v1/records?type=audit.access&limit=1000",
    );
    let in_clear: Vec<&Value> = access
        .iter()
        .filter(|a| a.to_string().contains(CUSTOMER))
        .map(|a| &a["data"]["resource"])
        .collect();
    assert!(
        in_clear.is_empty(),
        "a reader reads the customer id in {in_clear:?}"
    );
    let resource = |resp: &Resp| access_of(&access, resp)["data"]["resource"].clone();
    let query_of = |resp: &Resp| resource(resp)["query"].clone();
    let stray_body = resource(&with_stray_member)["body"].clone();
    let misnamed_query = resource(&misnamed)["filter"].clone();
    assert_eq!(
        resource(&not_json)["body"],
        json!({"bytes": form_encoded.len()})
    );
    app.stop();

    let pseudonym = sealog_ledger::pseudonym_in(dir.path(), CUSTOMER).unwrap();
    for resp in &queried {
        assert_eq!(query_of(resp), json!([["customer_id", pseudonym]]));
    }
    assert_eq!(
        misnamed_query,
        json!({"axis.customer": pseudonym}),
        "the misnamed axis's value by its keyed hash"
    );
    assert_eq!(stray_body["bytes"], stray.to_string().len());
    let shape = &stray_body["json"];
    assert_eq!(shape["filters"]["data_subject"], pseudonym, "{shape}");
    assert!(
        ["format", "note"]
            .iter()
            .all(|m| shape[m].as_str().is_some_and(|h| h.starts_with("ps:"))),
        "{shape}"
    );
    let found = files_holding(dir.path(), CUSTOMER);
    assert!(found.is_empty(), "the customer id is in clear in {found:?}");
}
