//! The Confluent Schema Registry wire format: built-in ids and subjects are pinned, every kind
//! round-trips in both framings, external ids resolve through the caller, hostile frames fail.

use chrono::{TimeZone, Utc};
use tunix_schemas::{
    confluent_schema_id, schema_from_fingerprint_header, DatasetCreated, DatasetDeleted,
    DatasetMember, DatasetMembers, DecodeError, Encoder, EventKind, Framing, FrozenScore,
    ScoreRecorded, ScoreRetracted, ShippedSchema, TraceDeleted, TraceEvent, TraceSubmitted,
    BUILTIN_ID_RANGE, SCHEMA_FILES,
};
use uuid::Uuid;

use crate::helpers::*;

/// One event of every kind, with text that is easy to damage (unicode, NUL).
fn one_of_each() -> Vec<TraceEvent> {
    let at = Utc.timestamp_micros(1_764_000_000_000_001).unwrap();
    let id = Uuid::now_v7();
    let build_id = Uuid::now_v7();
    let mut trace = valid();
    trace["prompt"] = "Convert 68°F to Celsius — 東京 \u{0}".into();
    vec![
        TraceEvent::Submitted(TraceSubmitted {
            id,
            created_at: at,
            trace: parse(&trace).unwrap(),
            idempotency_key: Some("k-1".into()),
        }),
        TraceEvent::Deleted(TraceDeleted {
            id,
            deleted_at: at,
            reason: Some("GDPR ✓".into()),
        }),
        TraceEvent::ScoreRecorded(ScoreRecorded {
            trace_id: id,
            name: "correct".into(),
            value: 0.5,
            source: Some("grader".into()),
            comment: None,
            recorded_at: at,
        }),
        TraceEvent::ScoreRetracted(ScoreRetracted {
            trace_id: id,
            name: "correct".into(),
            retracted_at: at,
        }),
        TraceEvent::DatasetMembers(DatasetMembers {
            build_id,
            name: "math".into(),
            version: "1".into(),
            chunk: 0,
            first_position: 0,
            members: vec![DatasetMember {
                trace_id: id,
                eval: true,
                scores: vec![FrozenScore {
                    name: "correct".into(),
                    value: 1.0,
                    source: None,
                    recorded_at: at,
                }],
            }],
        }),
        TraceEvent::DatasetCreated(DatasetCreated {
            build_id,
            name: "math".into(),
            version: "1".into(),
            definition: "{}".into(),
            member_count: 1,
            eval_count: 1,
            chunks: 1,
            digest: "00".repeat(32),
            created_at: at,
        }),
        TraceEvent::DatasetDeleted(DatasetDeleted {
            build_id,
            name: "math".into(),
            version: "1".into(),
            deleted_at: at,
        }),
        TraceEvent::ErasureRequested(tunix_schemas::ErasureRequested {
            id: build_id,
            action: "bulk_delete".into(),
            requested_by: "key-0123456789ab".into(),
            requested_at: at,
            trace_id: None,
            filter: Some(r#"{"meta.run":["17"]}"#.into()),
            created_before: Some(at),
            count: Some(42),
            reason: None,
        }),
        TraceEvent::ErasureRequested(tunix_schemas::ErasureRequested {
            id: build_id,
            action: "delete".into(),
            requested_by: "anonymous".into(),
            requested_at: at,
            trace_id: Some(build_id),
            filter: None,
            created_before: None,
            count: Some(1),
            reason: Some("gdpr".into()),
        }),
    ]
}

/// The built-in registry's ids are a wire contract: events framed with them stay in topics. A
/// new schema file gets the next id; none ever changes.
#[test]
fn builtin_ids_are_pinned() {
    let ids: Vec<(&str, i32)> = SCHEMA_FILES
        .iter()
        .map(|f| (f.file, f.builtin_id))
        .collect();
    assert_eq!(
        ids,
        [
            ("trace_submitted.v1.avsc", 1_000_000_001),
            ("trace_submitted.v2.avsc", 1_000_000_002),
            ("trace_deleted.v1.avsc", 1_000_000_003),
            ("score_recorded.v1.avsc", 1_000_000_004),
            ("score_retracted.v1.avsc", 1_000_000_005),
            ("dataset_members.v1.avsc", 1_000_000_006),
            ("dataset_created.v1.avsc", 1_000_000_007),
            ("dataset_deleted.v1.avsc", 1_000_000_008),
            ("erasure_requested.v1.avsc", 1_000_000_009),
        ]
    );
    for (_, id) in &ids {
        assert!(BUILTIN_ID_RANGE.contains(id));
    }
    let readme = std::fs::read_to_string(repo_root().join("schemas/README.md")).unwrap();
    for (file, id) in ids {
        assert!(
            readme
                .lines()
                .any(|l| l.contains(file) && l.contains(&id.to_string())),
            "schemas/README.md has a line listing {file} with built-in id {id}"
        );
    }
}

#[test]
fn subjects_follow_the_topic_record_name_strategy() {
    let subjects: Vec<String> = EventKind::ALL.iter().map(|k| k.subject("traces")).collect();
    assert_eq!(
        subjects,
        [
            "traces-ai.tunix.events.TraceSubmitted",
            "traces-ai.tunix.events.TraceDeleted",
            "traces-ai.tunix.events.ScoreRecorded",
            "traces-ai.tunix.events.ScoreRetracted",
            "traces-ai.tunix.events.DatasetMembers",
            "traces-ai.tunix.events.DatasetCreated",
            "traces-ai.tunix.events.DatasetDeleted",
            "traces-ai.tunix.events.ErasureRequested",
        ]
    );
    // The record name in each subject is the one in the schema files.
    for file in SCHEMA_FILES {
        let schema: serde_json::Value = serde_json::from_str(file.text).unwrap();
        let full = format!(
            "{}.{}",
            schema["namespace"].as_str().unwrap(),
            schema["name"].as_str().unwrap()
        );
        assert_eq!(full, file.kind.record_name(), "{}", file.file);
    }
}

#[test]
fn every_kind_round_trips_in_both_framings() {
    let builtin = Encoder::confluent_builtin();
    assert_eq!(builtin.framing(), Framing::Confluent);
    for event in one_of_each() {
        let bytes = builtin.encode(&event);
        let id = confluent_schema_id(&bytes).expect("confluent frame");
        assert_eq!(bytes[0], 0);
        assert_eq!(id, ShippedSchema::current(event.kind()).file().builtin_id);
        // The datum after the frame is the same as in the single-object frame.
        let single = event.encode();
        assert_eq!(bytes[5..], single[10..], "{:?}", event.kind());
        assert_eq!(TraceEvent::decode(&bytes).unwrap(), event);
        assert_eq!(TraceEvent::decode(&single).unwrap(), event);
    }
}

#[test]
fn external_ids_resolve_through_the_caller_and_unknown_ones_are_named() {
    // An external registry numbering our current schemas 1..=8.
    let external = |schema: ShippedSchema| {
        EventKind::ALL
            .iter()
            .position(|k| ShippedSchema::current(*k) == schema)
            .map(|n| n as i32 + 1)
    };
    let encoder = Encoder::confluent(external).unwrap();
    let resolve = |id: i32| {
        EventKind::ALL
            .get((id - 1) as usize)
            .map(|k| ShippedSchema::current(*k))
    };
    for event in one_of_each() {
        let bytes = encoder.encode(&event);
        assert!((1..=EventKind::ALL.len() as i32).contains(&confluent_schema_id(&bytes).unwrap()));
        assert_eq!(TraceEvent::decode_with(&bytes, resolve).unwrap(), event);
        // Without the external registry the id means nothing.
        let err = TraceEvent::decode(&bytes).unwrap_err();
        assert_eq!(err.reason(), "unknown_schema", "{err}");
        assert!(err.to_string().contains("schema id"), "{err}");
    }
    // Records with external ids name their schema in a header; built-in ids need none.
    for kind in EventKind::ALL {
        let header = encoder
            .fingerprint_header(kind)
            .expect("external ids carry the header");
        assert_eq!(
            schema_from_fingerprint_header(header.as_bytes()),
            Some(ShippedSchema::current(kind))
        );
        assert_eq!(Encoder::confluent_builtin().fingerprint_header(kind), None);
        assert_eq!(Encoder::single_object().fingerprint_header(kind), None);
    }
    for bad in [&b""[..], b"zz", b"0123456789abcdeg", b"00000000000000000"] {
        assert_eq!(schema_from_fingerprint_header(bad), None);
    }
    // Built-in ids never ask the caller.
    let bytes = Encoder::confluent_builtin().encode(&one_of_each()[0]);
    assert!(TraceEvent::decode_with(&bytes, |_| panic!("asked for a built-in id")).is_ok());
    // An encoder needs an id for every kind.
    assert!(Encoder::confluent(|_| None).is_err());
}

#[test]
fn registry_text_is_matched_by_canonical_form() {
    for schema in ShippedSchema::all() {
        // A registry may drop docs and reformat: still the same schema.
        let mut json: serde_json::Value = serde_json::from_str(schema.file().text).unwrap();
        strip_docs(&mut json);
        let text = serde_json::to_string(&json).unwrap();
        assert_eq!(ShippedSchema::from_schema_text(&text), Some(schema));
        assert_eq!(
            ShippedSchema::by_builtin_id(schema.file().builtin_id),
            Some(schema)
        );
    }
    let foreign = r#"{"type":"record","name":"Other","fields":[{"name":"x","type":"int"}]}"#;
    assert_eq!(ShippedSchema::from_schema_text(foreign), None);
    assert_eq!(ShippedSchema::from_schema_text("not json"), None);
}

fn strip_docs(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            map.remove("doc");
            map.values_mut().for_each(strip_docs);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_docs),
        _ => {}
    }
}

#[test]
fn hostile_confluent_frames_are_errors() {
    let good = Encoder::confluent_builtin().encode(&one_of_each()[0]);
    for short in [&good[..1], &good[..4]] {
        assert!(matches!(
            TraceEvent::decode(short),
            Err(DecodeError::TooShort(_))
        ));
    }
    assert!(matches!(
        TraceEvent::decode(&good[..5]),
        Err(DecodeError::Avro(_))
    ));
    assert!(matches!(
        TraceEvent::decode(&good[..good.len() / 2]),
        Err(DecodeError::Avro(_))
    ));
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(matches!(
        TraceEvent::decode(&trailing),
        Err(DecodeError::TrailingBytes(1))
    ));
    let mut unknown = good.clone();
    unknown[1..5].copy_from_slice(&1_000_099_999i32.to_be_bytes());
    assert!(matches!(
        TraceEvent::decode(&unknown),
        Err(DecodeError::UnknownSchema(_))
    ));
    assert!(matches!(
        TraceEvent::decode(&[7, 1, 2, 3, 4, 5]),
        Err(DecodeError::BadMagic)
    ));
}

#[test]
fn the_encoding_setting_parses() {
    assert_eq!("confluent".parse::<Framing>(), Ok(Framing::Confluent));
    assert_eq!(
        "single-object".parse::<Framing>(),
        Ok(Framing::SingleObject)
    );
    assert_eq!(Framing::default(), Framing::Confluent);
    assert!("avro"
        .parse::<Framing>()
        .unwrap_err()
        .contains("confluent or single-object"));
    assert_eq!(Encoder::single_object().framing(), Framing::SingleObject);
}
