//! Ids derived from an event's content, so that an event produced again (a replayed run, a
//! retried job) is the same event, answered `duplicate`, rather than a second record.

use sha2::{Digest, Sha256};

/// A UUID (version 8, RFC 9562) made of the first 128 bits of SHA-256 over `namespace`, a
/// zero byte, and the RFC 8785 canonical form of `event` without its `id` member. The
/// Python client computes the same id.
pub fn content_id(namespace: &str, event: &serde_json::Value) -> String {
    let mut v = event.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("id");
    }
    let canonical = sealog_model::jcs::to_vec(&v)
        .unwrap_or_else(|_| serde_json::to_vec(&v).unwrap_or_default());
    let mut h = Sha256::new();
    h.update(namespace.as_bytes());
    h.update([0u8]);
    h.update(&canonical);
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn the_id_follows_the_content_not_its_spelling_or_old_id() {
        let a = super::content_id(
            "c4",
            &json!({"id": "x", "type": "t", "data": {"b": 1, "a": 2}}),
        );
        let b = super::content_id(
            "c4",
            &json!({"data": {"a": 2, "b": 1}, "type": "t", "id": "y"}),
        );
        let c = super::content_id("c4", &json!({"data": {"a": 2, "b": 2}, "type": "t"}));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(
            a,
            super::content_id("other", &json!({"type": "t", "data": {"b": 1, "a": 2}}))
        );
        assert_eq!(&a[14..15], "8", "version 8: {a}");
        // The Python client's test (clients/python/tests/test_verify.py) pins the same vector.
        assert_eq!(
            super::content_id(
                "sealog-test",
                &json!({"type": "t", "data": {"n": 1.5, "s": "é"}, "id": "ignored"})
            ),
            "83c21163-ce43-8694-95e8-04abcbb605e1"
        );
    }
}
