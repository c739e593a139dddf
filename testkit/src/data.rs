//! The real data set (`testdata/dev-reasoning-v2.jsonl`: 550 traces from the original service)
//! as tests want it, and trace events built for direct produce.

use crate::repo_root;

/// The data set's file as it is: one trace per line.
pub fn dataset_jsonl() -> String {
    std::fs::read_to_string(repo_root().join("testdata/dev-reasoning-v2.jsonl"))
        .expect("read testdata/dev-reasoning-v2.jsonl")
}

/// The 550 traces as JSON values.
pub fn dataset() -> Vec<serde_json::Value> {
    dataset_jsonl()
        .lines()
        .map(|l| serde_json::from_str(l).expect("dataset line is JSON"))
        .collect()
}

/// The traces as validated [`tunix_schemas::Trace`]s.
pub fn dataset_traces() -> Vec<tunix_schemas::Trace> {
    dataset()
        .iter()
        .map(|v| {
            tunix_schemas::Trace::parse_json(serde_json::to_string(v).unwrap().as_bytes())
                .expect("dataset traces are valid")
        })
        .collect()
}

/// A submitted event for `trace` with a fresh id.
pub fn submitted(trace: tunix_schemas::Trace) -> tunix_schemas::TraceEvent {
    tunix_schemas::TraceEvent::Submitted(tunix_schemas::TraceSubmitted {
        id: tunix_schemas::ids::new_trace_id(),
        created_at: tunix_schemas::truncate_to_micros(chrono::Utc::now()),
        trace,
        idempotency_key: None,
    })
}

/// A tombstone for `id`.
pub fn deleted(id: uuid::Uuid) -> tunix_schemas::TraceEvent {
    tunix_schemas::TraceEvent::Deleted(tunix_schemas::TraceDeleted {
        id,
        deleted_at: tunix_schemas::truncate_to_micros(chrono::Utc::now()),
        reason: Some("test".into()),
    })
}
