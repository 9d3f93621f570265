//! The workloads' data, generated deterministically from a seed: every engine sees the same
//! bytes in the same order, and a query's target can be recomputed from its event number.

use sealog_model::time::format_micros;

/// A small deterministic generator (xorshift64*).
#[derive(Debug, Clone)]
pub struct Gen(u64);

impl Gen {
    pub fn new(seed: u64) -> Self {
        Gen(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The generator of event `i`, independent of how producers interleave.
fn gen_for(seed: u64, i: u64) -> Gen {
    Gen::new(seed ^ i.wrapping_mul(0x9E37_79B9))
}

/// Event time of the first bulk event, seconds since the epoch (2026-01-03T00:26:40Z).
pub const EPOCH_SECS: i64 = 1_767_400_000;
/// Bulk events per second of event time: event `i` happens in second `i / EVENTS_PER_SECOND`.
pub const EVENTS_PER_SECOND: u64 = 50;
/// Distinct runs (tenants) the decision events are spread over.
pub const RUNS: u64 = 64;
/// Distinct accounts in `feature_keys_used`: about `events / ACCOUNTS` decisions per account.
pub const ACCOUNTS: u64 = 100_000;
/// Bytes of every key/value-like entry, key and value together.
pub const ENTRY_BYTES: usize = 100;

/// First event number of the single-event workload: far above any bulk event, so the two
/// never collide; each writer count gets its own range above it.
pub const SINGLE_BASE: u64 = 1 << 40;
/// Event numbers each single-event level may use.
pub const SINGLE_LEVEL_SPAN: u64 = 1 << 32;

/// One decision-log event as a producer would send it, and what the queries need of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionEvent {
    pub text: String,
    pub subject: String,
    /// `(key_type, key_id)` of every `feature_keys_used` entry.
    pub feature_keys: Vec<(String, String)>,
    /// Event time, nanoseconds since the epoch.
    pub time_ns: i64,
}

/// Event time of event `i`, nanoseconds, as the generator assigns it.
pub fn event_time_ns(seed: u64, i: u64) -> i64 {
    let mut g = gen_for(seed, i);
    time_of(i, g.next_u64())
}

/// Bulk events (below 2^32) follow each other at `EVENTS_PER_SECOND`; each further range of
/// 2^32 event numbers (the single-event levels, the ingest-method trial) starts a day later.
fn time_of(i: u64, r: u64) -> i64 {
    let secs =
        EPOCH_SECS + ((i & 0xFFFF_FFFF) / EVENTS_PER_SECOND) as i64 + (i >> 32) as i64 * 86_400;
    secs * 1_000_000_000 + (r % 1_000_000) as i64 * 1000
}

/// Decision-log event number `i`: a Sealog envelope around the seed's `AuditDecisionRecord`
/// (Appendix A.1 without the two fields the log sets itself, `audit_record_id` and
/// `ingested_at_utc`), with every field group of §5.4: context pins, the identical
/// decision/request/event ids, the event reference, the degrade block with its full
/// capabilities mask, the features block (keys, snapshot hash, group versions, freshness,
/// input basis), the IEG block (used with a graph version, or not used with a reason), the
/// outcome and actions with idempotency keys, and the DF provenance with timings.
/// Compact, keys in producer order (not canonical).
pub fn decision_event(seed: u64, i: u64) -> DecisionEvent {
    const OUTCOMES: [(&str, &str, &str); 4] = [
        ("APPROVE", "APPROVE_TRANSACTION", "risk_below_threshold"),
        ("DECLINE", "DECLINE_TRANSACTION", "risk_above_threshold"),
        ("REVIEW", "QUEUE_CASE", "fraud_ops"),
        ("STEP_UP", "REQUEST_STEP_UP", "otp"),
    ];
    const MODES: [&str; 3] = ["NORMAL", "DEGRADED_1", "DEGRADED_2"];
    let mut g = gen_for(seed, i);
    let r = g.next_u64();
    let t_ns = time_of(i, r);
    let run = r % RUNS;
    let part = (r >> 4) % 4;
    let offset = 9_000_000 + i;
    let mode = MODES[((r >> 8) % 3) as usize];
    let (outcome, action, reason) = OUTCOMES[((r >> 24) % 4) as usize];
    let account = (r >> 32) % ACCOUNTS;
    let id = format!("evt_txn_{i:012}");
    let t = format_micros(t_ns);
    let seen = format_micros(t_ns - 2_000_000 - (r % 997) as i64 * 1_000_000);
    let ended = format_micros(t_ns + 1_000_000 + (r % 31_000) as i64 * 1000);
    let stale_age = 1 + (r >> 40) % 600;
    let last_update = format_micros(t_ns - stale_age as i64 * 1_000_000_000);
    let mut feature_keys = vec![("account".to_string(), format!("e_account_{account:06x}"))];
    if (r >> 48).is_multiple_of(2) {
        let device = (r >> 20) % (ACCOUNTS * 3);
        feature_keys.push(("device".to_string(), format!("e_device_{device:06x}")));
    }
    let keys_json: Vec<String> = feature_keys
        .iter()
        .map(|(t, id)| format!(r#"{{"key_type":"{t}","key_id":"{id}"}}"#))
        .collect();
    let ieg = if (r >> 50).is_multiple_of(4) {
        r#"{"used":false,"reason":"NOT_REQUIRED"}"#.to_string()
    } else {
        format!(
            r#"{{"used":true,"graph_version":{{"graph_version":"gv_run_{run:04}_{gv:06}","stream_name":"admitted_events","watermark_basis":{{"partition_{part}":{offset}}}}}}}"#,
            gv = i / 1000,
        )
    };
    let (allow_ieg, triggers) = if mode == "NORMAL" {
        ("true", "[]".to_string())
    } else {
        (
            "false",
            format!(r#"[{{"trigger":"ofp_lag","observed_at_utc":"{seen}"}}]"#),
        )
    };
    let text = format!(
        concat!(
            r#"{{"specversion":"1.0","id":"{id}","source":"decision-fabric","type":"decision-log.audit_decision_record","#,
            r#""time":"{t}","tenant":"run_{run:04}","subject":"{id}","actor":{{"type":"system","id":"df-{df}"}},"#,
            r#""data":{{"kind":"audit_decision_record","contract_version":"dla_public_contracts_v0","#,
            r#""context_pins":{{"scenario_id":"scn_baseline_v1","run_id":"run_{run:04}","manifest_fingerprint":"mf_{mf:08x}","parameter_hash":"ph_{ph:08x}"}},"#,
            r#""decision_id":"{id}","request_id":"{id}","event_id":"{id}","#,
            r#""event":{{"event_ref":"eb://admitted_events/partition={part}/offset={offset}","event_time_utc":"{seen}","event_type":"transaction_event"}},"#,
            r#""degrade":{{"mode":"{mode}","capabilities_mask":{{"allow_ieg":{allow_ieg},"allowed_feature_groups":["*"],"allow_model_primary":true,"allow_model_stage2":true,"allow_fallback_heuristics":true,"action_posture":"{mode}"}},"triggers":{triggers}}},"#,
            r#""features":{{"feature_keys_used":[{keys}],"feature_snapshot_hash":"fsh_{fsh:016x}","#,
            r#""group_versions_used":[{{"group_name":"txn_velocity","group_version":"1.0"}}],"#,
            r#""freshness":[{{"group_name":"txn_velocity","group_version":"1.0","ttl_seconds":600,"last_update_event_time":"{last_update}","age_seconds":{age},"stale":{stale}}}],"#,
            r#""input_basis":{{"stream_name":"admitted_events","watermark_basis":{{"partition_{part}":{offset}}}}}}},"#,
            r#""ieg":{ieg},"#,
            r#""decision":{{"decision_outcome":"{outcome}","actions":[{{"action_type":"{action}","idempotency_key":"ik_{idem:016x}","parameters":{{"reason":"{reason}"}}}}]}},"#,
            r#""df_provenance":{{"df_policy_ref":"df_policy_v0","stage_summary":[{{"stage":"stage0_guardrails","status":"ran"}},{{"stage":"stage1_primary","status":"ran"}}],"#,
            r#""timings":{{"started_at_utc":"{t}","ended_at_utc":"{ended}"}}}}}}}}"#
        ),
        id = id,
        t = t,
        run = run,
        df = r % 8,
        mf = run * 7919,
        ph = run * 104_729,
        part = part,
        offset = offset,
        seen = seen,
        mode = mode,
        allow_ieg = allow_ieg,
        triggers = triggers,
        keys = keys_json.join(","),
        fsh = g.next_u64(),
        last_update = last_update,
        age = stale_age,
        stale = stale_age > 600,
        ieg = ieg,
        outcome = outcome,
        action = action,
        reason = reason,
        idem = g.next_u64(),
        ended = ended,
    );
    DecisionEvent {
        text,
        subject: id,
        feature_keys,
        time_ns: t_ns,
    }
}

/// Key/value-like entry number `i`: a 16-byte key and an 84-byte value, `ENTRY_BYTES` in
/// all. The peers store the key and value as they are; Sealog stores them as the smallest
/// event its envelope allows, the key as its id and the value as `data.v`.
pub fn entry(seed: u64, i: u64) -> Entry {
    let key = format!("k{i:015}");
    let mut g = gen_for(seed ^ 0x5EED_0000_0000_0001, i);
    let mut value = String::with_capacity(ENTRY_BYTES);
    while value.len() < ENTRY_BYTES - key.len() {
        value.push_str(&format!("{:016x}", g.next_u64()));
    }
    value.truncate(ENTRY_BYTES - key.len());
    let text = format!(
        r#"{{"id":"{key}","source":"kv","type":"kv.put","time":"2026-01-03T00:00:00Z","data":{{"v":"{value}"}}}}"#
    );
    Entry { key, value, text }
}

/// One key/value-like entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    /// The entry as a Sealog event.
    pub text: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_deterministic_and_valid_envelopes() {
        for i in [0, 1, 49, 50, 999_999, SINGLE_BASE + 7] {
            let a = decision_event(3, i);
            assert_eq!(a, decision_event(3, i));
            assert_ne!(a.text, decision_event(4, i).text);
            let v: serde_json::Value = serde_json::from_str(&a.text).expect("valid JSON");
            assert_eq!(v["subject"], a.subject.as_str());
            let data = &v["data"];
            assert_eq!(data["decision_id"], data["event_id"]);
            assert_eq!(data["request_id"], data["event_id"]);
            assert_eq!(data["context_pins"]["run_id"], v["tenant"]);
            let keys = data["features"]["feature_keys_used"].as_array().unwrap();
            assert_eq!(keys.len(), a.feature_keys.len());
            assert_eq!(keys[0]["key_id"], a.feature_keys[0].1.as_str());
            for group in [
                "context_pins",
                "event",
                "degrade",
                "features",
                "ieg",
                "decision",
                "df_provenance",
            ] {
                assert!(data[group].is_object(), "{group} missing");
            }
            assert_eq!(
                sealog_model::time::parse_rfc3339(v["time"].as_str().unwrap()).unwrap(),
                a.time_ns
            );
            assert_eq!(event_time_ns(3, i), a.time_ns);
            accepted(&a.text);
        }
    }

    /// Sealog takes it as an event: one JSON object with a valid envelope and a canonical form.
    fn accepted(text: &str) {
        let tree = sealog_model::json::Json::parse(text.as_bytes()).expect("JSON");
        sealog_model::Envelope::parse(&tree).expect("a valid envelope");
        sealog_model::Canonical::of_event(&tree).expect("a canonical form");
    }

    #[test]
    fn entries_are_100_bytes_and_accepted() {
        for i in [0, 1, 12345] {
            let e = entry(1, i);
            assert_eq!(e.key.len() + e.value.len(), ENTRY_BYTES);
            assert_eq!(e, entry(1, i));
            accepted(&e.text);
        }
    }
}
