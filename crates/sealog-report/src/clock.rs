//! When a compliance deadline starts counting: the seed's own clock, the moment a POPIA
//! request was received or a breach discovered, as the subject's first record gives it.
//!
//! `sealog-check` judges the packs' deadline rules (`comms.popia_request_overdue`,
//! `comms.breach_not_notified`) from the same start, defined the same way in its `timed`
//! module: the dependency rules keep the two crates apart, and a report that called a request
//! overdue while the check found nothing would leave the officer not knowing which to trust.

use serde_json::Value;

use sealog_model::time::parse_rfc3339;

/// Where a type's records say when its deadline starts.
const CLOCKS: [(&str, &str); 2] = [
    ("comms.popia_request", "/data/request_timestamp"),
    ("comms.breach_incident", "/data/discovery_timestamp"),
];

/// When the deadline of the subject whose first record is `record` starts (ns): the record's
/// clock field when it holds a time, but never later than the record's own event time (a
/// request is received before it is recorded, and a later start would let the deadline slip);
/// the event time when the field is absent or not a time.
pub(crate) fn started(record: &Value) -> Option<i64> {
    let time_at = |pointer: &str| {
        record
            .pointer(pointer)
            .and_then(Value::as_str)
            .and_then(|t| parse_rfc3339(t).ok())
    };
    let event_time = time_at("/time");
    let clock = record
        .get("type")
        .and_then(Value::as_str)
        .and_then(|t| CLOCKS.iter().find(|(event_type, _)| *event_type == t))
        .and_then(|(_, pointer)| time_at(pointer));
    match (clock, event_time) {
        (Some(c), Some(t)) => Some(c.min(t)),
        (c, t) => c.or(t),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn popia(time: &str, requested: Value) -> Value {
        json!({"type": "comms.popia_request", "time": time,
               "data": {"request_timestamp": requested}})
    }

    #[test]
    fn a_request_counts_from_when_it_was_received_never_after_it_was_recorded() {
        let t = |s| parse_rfc3339(s).unwrap();
        let received = popia("2026-11-20T00:00:00Z", json!("2026-10-20T00:00:00Z"));
        assert_eq!(started(&received), Some(t("2026-10-20T00:00:00Z")));
        let after = popia("2026-11-20T00:00:00Z", json!("2026-11-21T00:00:00Z"));
        assert_eq!(started(&after), Some(t("2026-11-20T00:00:00Z")));
        let unreadable = popia("2026-11-20T00:00:00Z", json!("yesterday"));
        assert_eq!(started(&unreadable), Some(t("2026-11-20T00:00:00Z")));
        let breach = json!({"type": "comms.breach_incident", "time": "2026-11-20T00:00:00Z",
                            "data": {"discovery_timestamp": "2026-11-18T06:00:00Z"}});
        assert_eq!(started(&breach), Some(t("2026-11-18T06:00:00Z")));
    }
}
