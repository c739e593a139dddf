//! Trace ids: time-ordered when the server picks them, deterministic under an `Idempotency-Key`.
//!
//! A retried request with the same key maps to the same id, so it lands on the same row: the
//! writer's `ON CONFLICT (id) DO UPDATE` keeps the last submission of an id (as compaction does)
//! and writes nothing when its `created_at` and payload are unchanged.

use uuid::Uuid;

/// Namespace for UUIDv5 ids derived from idempotency keys. Changing it would make retries across
/// the change create second traces, so it is pinned by a test.
pub const IDEMPOTENCY_NAMESPACE: Uuid = Uuid::from_u128(0x7c1c_5a0e_2b7d_4f4e_9a57_41d8_7e0b_3f21);

/// A fresh, time-ordered id (UUIDv7).
pub fn new_trace_id() -> Uuid {
    Uuid::now_v7()
}

/// The id for a single POST carrying `Idempotency-Key: key`.
pub fn idempotent_trace_id(key: &str) -> Uuid {
    Uuid::new_v5(&IDEMPOTENCY_NAMESPACE, key.as_bytes())
}

/// The id for item `index` (0-based) of a batch POST carrying `Idempotency-Key: key`.
pub fn idempotent_batch_item_id(key: &str, index: usize) -> Uuid {
    Uuid::new_v5(&IDEMPOTENCY_NAMESPACE, format!("{key}\n{index}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_pinned() {
        // These values are a contract: producers rely on retries mapping to the same id.
        assert_eq!(
            idempotent_trace_id("job-42/trace-7").to_string(),
            Uuid::new_v5(&IDEMPOTENCY_NAMESPACE, b"job-42/trace-7").to_string()
        );
        assert_eq!(
            IDEMPOTENCY_NAMESPACE.to_string(),
            "7c1c5a0e-2b7d-4f4e-9a57-41d87e0b3f21"
        );
        assert_eq!(idempotent_trace_id("k"), idempotent_trace_id("k"));
        assert_ne!(
            idempotent_batch_item_id("k", 0),
            idempotent_batch_item_id("k", 1)
        );
        assert_ne!(idempotent_batch_item_id("k", 0), idempotent_trace_id("k"));
        assert_eq!(idempotent_trace_id("k").get_version_num(), 5);
    }

    #[test]
    fn server_ids_are_time_ordered() {
        let a = new_trace_id();
        let b = new_trace_id();
        assert_eq!(a.get_version_num(), 7);
        assert!(a < b, "UUIDv7 ids sort by creation time");
    }
}
