//! The Avro event format: lossless round trips, schema evolution, pinned fingerprints, framing.

use std::collections::BTreeSet;

use apache_avro::types::Value as Avro;
use apache_avro::Schema;
use chrono::{TimeZone, Utc};
use serde_json::{json, Value};
use tunix_schemas::{
    current_schema, dataset_key, key_partition, legacy_schema_fingerprints, partition_for,
    schema_fingerprints, DatasetCreated, DatasetDeleted, DatasetMember, DatasetMembers,
    DecodeError, EventKind, FrozenScore, ScoreRecorded, ScoreRetracted, Trace, TraceDeleted,
    TraceEvent, TraceSubmitted, SCHEMA_FILES, SINGLE_OBJECT_MAGIC,
};
use uuid::Uuid;

use crate::helpers::*;

fn submitted(trace: Trace, key: Option<&str>) -> TraceEvent {
    TraceEvent::Submitted(TraceSubmitted {
        id: Uuid::now_v7(),
        created_at: Utc.timestamp_micros(1_763_786_096_123_456).unwrap(),
        trace,
        idempotency_key: key.map(str::to_owned),
    })
}

fn round_trip(event: &TraceEvent) -> TraceEvent {
    let bytes = event.encode();
    assert_eq!(bytes[..2], SINGLE_OBJECT_MAGIC);
    assert_eq!(bytes[2..10], current_schema(event.kind()).2);
    TraceEvent::decode(&bytes).unwrap_or_else(|e| panic!("decode: {e}"))
}

#[test]
fn dataset_traces_round_trip_losslessly() {
    for (n, original) in dataset().iter().enumerate() {
        let event = submitted(parse(original).unwrap(), None);
        assert_eq!(round_trip(&event), event, "line {n}");
    }
}

#[test]
fn hard_text_round_trips_losslessly() {
    let nasty = "emoji 🧠🤖👩‍👩‍👧, CJK 推理, RTL שלום, combining e\u{301}, escapes \" \\ / \n\t\r \u{1}\u{1f}, zero-width \u{200b}, BOM \u{feff}";
    let deep_meta = format!(
        "{}{}",
        "{\"a\":[".repeat(31),
        "1".to_owned() + &"]}".repeat(31)
    );
    let big_meta = json!({
        "big_int": 123456789012345678901234567890_u128.to_string(),
        "list": (0..5_000).collect::<Vec<_>>(),
        "text": "x".repeat(100_000),
    })
    .to_string();
    let numbers_meta = r#"{"int": 12345678901234567890123, "neg": -0, "float": 0.1000000000000000055511151231257827, "exp": 6.02214076e23, "tiny": 5e-324, "max": 1.7976931348623157e308}"#;
    for meta in [
        deep_meta.as_str(),
        big_meta.as_str(),
        numbers_meta,
        "{}",
        r#"{"k": "\u0001\ud83e\udde0"}"#,
    ] {
        let body = json!({
            "trace_version": "2.0-β",
            "prompt": nasty,
            "final_answer": nasty,
            "steps": [
                {"i": 0, "type": "思考", "content": nasty},
                {"i": i64::MAX, "type": "t", "content": "c"},
                {"i": 3, "type": "t", "content": "c"}
            ]
        })
        .to_string();
        let body = format!("{},\"meta\":{meta}}}", &body[..body.len() - 1]);
        let trace = Trace::parse_json(body.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        for key in [None, Some("job-1/ключ")] {
            let event = submitted(trace.clone(), key);
            let back = round_trip(&event);
            assert_eq!(back, event);
            let TraceEvent::Submitted(s) = back else {
                panic!()
            };
            assert_eq!(
                s.trace.meta().unwrap().as_str(),
                meta,
                "meta text is byte-identical"
            );
        }
    }
}

#[test]
fn deletes_round_trip() {
    for reason in [None, Some("GDPR request #42 — ✓".to_owned())] {
        let event = TraceEvent::Deleted(TraceDeleted {
            id: Uuid::new_v4(),
            deleted_at: Utc.timestamp_micros(1_700_000_000_000_001).unwrap(),
            reason,
        });
        assert_eq!(round_trip(&event), event);
    }
}

#[test]
fn scores_round_trip_and_are_keyed_apart_from_their_trace() {
    let trace_id = Uuid::now_v7();
    for (name, value, source, comment) in [
        ("correct", 1.0, None, None),
        (
            "quality ✓ 质量",
            -0.125,
            Some("grader-v2".to_owned()),
            Some("close, but ß".to_owned()),
        ),
        ("n", f64::MAX, None, Some(String::new())),
    ] {
        let event = TraceEvent::ScoreRecorded(ScoreRecorded {
            trace_id,
            name: name.to_owned(),
            value,
            source,
            comment,
            recorded_at: Utc.timestamp_micros(1_764_000_000_123_456).unwrap(),
        });
        assert_eq!(round_trip(&event), event);
        assert_eq!(event.id(), trace_id);
        assert_eq!(event.key(), format!("{trace_id}/score/{name}"));
        let retracted = TraceEvent::ScoreRetracted(ScoreRetracted {
            trace_id,
            name: name.to_owned(),
            retracted_at: Utc.timestamp_micros(1_764_000_000_223_456).unwrap(),
        });
        assert_eq!(round_trip(&retracted), retracted);
        assert_eq!(
            retracted.key(),
            event.key(),
            "a retraction replaces the score"
        );
    }
    let submission = submitted(parse(&valid()).unwrap(), None);
    assert_eq!(submission.key(), submission.id().to_string());
}

/// A score event that decodes but breaks the score rules (a foreign producer) is refused.
#[test]
fn invalid_score_events_are_refused() {
    let bad = TraceEvent::ScoreRecorded(ScoreRecorded {
        trace_id: Uuid::new_v4(),
        name: String::new(),
        value: f64::NAN,
        source: None,
        comment: None,
        recorded_at: Utc::now(),
    });
    assert!(matches!(
        TraceEvent::decode(&bad.encode()),
        Err(DecodeError::Invalid(_))
    ));
}

/// The partitioner is librdkafka's default (`consistent_random`: CRC-32 of the key), which
/// placed every submission so far; scores computed with it land beside their trace. The
/// integration test in `ingest-api/tests/api/scores.rs` checks it against librdkafka itself.
#[test]
fn dataset_events_round_trip_share_the_dataset_partition_and_key_every_chunk_apart() {
    let at = Utc.timestamp_micros(1_764_000_000_000_001).unwrap();
    let build_id = Uuid::now_v7();
    let members = TraceEvent::DatasetMembers(DatasetMembers {
        build_id,
        name: "math-hard".into(),
        version: "3".into(),
        chunk: 7,
        first_position: 14_000,
        members: vec![
            DatasetMember {
                trace_id: Uuid::new_v4(),
                eval: true,
                scores: vec![
                    FrozenScore {
                        name: "correct\u{0}x".into(),
                        value: 1.0,
                        source: None,
                        recorded_at: at,
                    },
                    FrozenScore {
                        name: "quality".into(),
                        value: -0.25,
                        source: Some("grader".into()),
                        recorded_at: at,
                    },
                ],
            },
            DatasetMember {
                trace_id: Uuid::new_v4(),
                eval: false,
                scores: vec![],
            },
        ],
    });
    let created = TraceEvent::DatasetCreated(DatasetCreated {
        build_id,
        name: "math-hard".into(),
        version: "3".into(),
        definition: r#"{"filter":{},"selection":"latest","seed":null,"limit":null,"split":null}"#
            .into(),
        member_count: 14_002,
        eval_count: 1,
        chunks: 8,
        digest: "ab".repeat(32),
        created_at: at,
    });
    let deleted = TraceEvent::DatasetDeleted(DatasetDeleted {
        build_id,
        name: "math-hard".into(),
        version: "3".into(),
        deleted_at: at,
    });
    for event in [&members, &created, &deleted] {
        assert_eq!(&round_trip(event), event);
        assert_eq!(
            event.partition(6),
            key_partition(&dataset_key("math-hard", "3"), 6),
            "every event of a dataset in one partition"
        );
    }
    assert_eq!(members.key(), "dataset/math-hard/3/members/7");
    assert_eq!(created.key(), "dataset/math-hard/3");
    assert_eq!(
        deleted.key(),
        created.key(),
        "the deletion replaces the definition"
    );
    // A name that breaks the rules is refused on decode, like a bad trace.
    let mut bad = created.clone();
    if let TraceEvent::DatasetCreated(c) = &mut bad {
        c.name = "a/b".into();
    }
    assert!(matches!(
        TraceEvent::decode(&bad.encode()),
        Err(DecodeError::Invalid(_))
    ));
}

#[test]
fn partitions_follow_crc32_of_the_trace_id() {
    let id: Uuid = "0191d6e2-7b7a-7c3e-8f00-123456789abc".parse().unwrap();
    let crc = 0x4a93_758bu32; // crc32("0191d6e2-7b7a-7c3e-8f00-123456789abc"), pinned
    assert_eq!(crc32fast::hash(id.to_string().as_bytes()), crc);
    for n in [1, 3, 6, 7, 64] {
        assert_eq!(partition_for(&id, n), (crc % n as u32) as i32);
    }
}

/// Every `.avsc` in `schemas/avro/` is registered, and nothing is registered that is not there.
#[test]
fn every_schema_file_is_registered() {
    let dir = repo_root().join("schemas/avro");
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".avsc"))
        .collect();
    let registered: BTreeSet<String> = SCHEMA_FILES.iter().map(|f| f.file.to_owned()).collect();
    assert_eq!(on_disk, registered);
    for f in SCHEMA_FILES {
        let text = std::fs::read_to_string(dir.join(f.file)).unwrap();
        assert_eq!(text, f.text, "{} embedded copy is current", f.file);
    }
}

fn hex(fp: &[u8]) -> String {
    fp.iter().map(|b| format!("{b:02x}")).collect()
}

/// The fingerprints are a wire contract: downstream consumers look them up. `schemas/README.md`
/// lists them (current and legacy), and this test keeps the list honest.
#[test]
fn fingerprints_are_pinned_in_the_readme() {
    let readme = std::fs::read_to_string(repo_root().join("schemas/README.md")).unwrap();
    for (file, fp) in schema_fingerprints()
        .into_iter()
        .chain(legacy_schema_fingerprints())
    {
        let hex = hex(&fp);
        assert!(
            readme.lines().any(|l| l.contains(file) && l.contains(&hex)),
            "schemas/README.md has a line listing {file} with fingerprint {hex}"
        );
    }
}

/// What producers wrote before 2026-11 (apache-avro's fingerprints): these bytes are in topics
/// and stay readable forever.
const LEGACY: [(&str, &str); 3] = [
    ("trace_submitted.v1.avsc", "a77d23b190d00a55"),
    ("trace_submitted.v2.avsc", "c8980753878a30ac"),
    ("trace_deleted.v1.avsc", "e8f86ae0c8e452e1"),
];

#[test]
fn legacy_fingerprints_are_pinned_and_still_decode() {
    let legacy: Vec<(&str, String)> = legacy_schema_fingerprints()
        .into_iter()
        .map(|(f, fp)| (f, hex(&fp)))
        .collect();
    let pinned: Vec<(&str, String)> = LEGACY.iter().map(|(f, h)| (*f, h.to_string())).collect();
    assert_eq!(legacy, pinned, "legacy fingerprints never change");
    let current: Vec<String> = schema_fingerprints()
        .iter()
        .map(|(_, fp)| hex(fp))
        .collect();
    for (_, h) in LEGACY {
        assert!(!current.contains(&h.to_owned()), "{h} is no longer written");
    }

    let trace = Trace::parse_json(testdata("example-27x19.json").as_bytes()).unwrap();
    let deleted = TraceEvent::Deleted(TraceDeleted {
        id: Uuid::new_v4(),
        deleted_at: Utc.timestamp_micros(1_764_000_000_000_000).unwrap(),
        reason: None,
    });
    for (event, legacy_hex) in [
        (submitted(trace, Some("k")), LEGACY[1].1),
        (deleted, LEGACY[2].1),
    ] {
        let mut bytes = event.encode();
        for (n, b) in (0..8)
            .map(|n| u8::from_str_radix(&legacy_hex[2 * n..2 * n + 2], 16).unwrap())
            .enumerate()
        {
            bytes[2 + n] = b;
        }
        assert_eq!(TraceEvent::decode(&bytes).unwrap(), event, "{legacy_hex}");
    }
}

/// The wire fingerprint is the specification's: CRC-64-AVRO of the Parsing Canonical Form, which
/// strips `doc`, `default` and `logicalType`. (The same is checked with fastavro, an independent
/// implementation, in `tests/tests/interop.rs`.)
#[test]
fn wire_fingerprints_follow_the_specification() {
    for f in SCHEMA_FILES {
        let pcf = tunix_schemas::canonical::parsing_canonical_form(f.text).unwrap();
        assert!(!pcf.contains("logicalType") && !pcf.contains("doc") && !pcf.contains(' '));
        assert!(pcf.starts_with(r#"{"name":"ai.tunix.events."#), "{pcf}");
        let fp = tunix_schemas::canonical::crc64_avro(pcf.as_bytes()).to_le_bytes();
        let (_, wire) = schema_fingerprints()
            .into_iter()
            .find(|(file, _)| *file == f.file)
            .unwrap();
        assert_eq!(fp, wire, "{}", f.file);
    }
    // Every event starts with its kind's current fingerprint.
    let trace = Trace::parse_json(testdata("example-temperature.json").as_bytes()).unwrap();
    let bytes = submitted(trace, None).encode();
    assert_eq!(bytes[2..10], current_schema(EventKind::Submitted).2);
}

/// Takes a datum written with the current schema and re-encodes it with an older writer schema,
/// keeping the fields the older schema has.
fn reencode_with(older: &Schema, current: &Schema, datum: &[u8]) -> Vec<u8> {
    let value = apache_avro::from_avro_datum(current, &mut &datum[..], None).unwrap();
    let Avro::Record(fields) = value else {
        panic!("record")
    };
    let Schema::Record(old) = older else {
        panic!("record schema")
    };
    let kept: Vec<(String, Avro)> = fields
        .into_iter()
        .filter(|(name, _)| old.lookup.contains_key(name))
        .collect();
    apache_avro::to_avro_datum(older, Avro::Record(kept)).unwrap()
}

#[test]
fn current_reader_reads_every_earlier_schema() {
    let trace = Trace::parse_json(testdata("example-27x19.json").as_bytes()).unwrap();
    let samples = [
        submitted(trace, Some("retry-key")),
        TraceEvent::Deleted(TraceDeleted {
            id: Uuid::new_v4(),
            deleted_at: Utc::now(),
            reason: Some("test".into()),
        }),
    ];
    let mut checked = 0;
    for sample in &samples {
        let kind = sample.kind();
        let (current_file, current, _) = current_schema(kind);
        let datum = &sample.encode()[10..];
        for file in SCHEMA_FILES
            .iter()
            .filter(|f| f.kind == kind && f.file != current_file)
        {
            let older = Schema::parse_str(file.text).unwrap();
            let spec = schema_fingerprints()
                .into_iter()
                .find(|(f, _)| *f == file.file)
                .unwrap()
                .1;
            let legacy = older.fingerprint::<apache_avro::rabin::Rabin>().bytes;
            // Framed as producers write today, and as they wrote before 2026-11.
            for fingerprint in [&spec[..], &legacy[..8]] {
                let mut bytes = SINGLE_OBJECT_MAGIC.to_vec();
                bytes.extend_from_slice(fingerprint);
                bytes.extend(reencode_with(&older, current, datum));
                let decoded = TraceEvent::decode(&bytes)
                    .unwrap_or_else(|e| panic!("{} data read with current schema: {e}", file.file));
                let mut expected = sample.clone();
                if let (TraceEvent::Submitted(e), 1) = (&mut expected, file.version) {
                    // Added in v2 with a null default.
                    e.idempotency_key = None;
                }
                assert_eq!(decoded, expected, "{}", file.file);
                checked += 1;
            }
        }
    }
    assert!(checked >= 1, "at least one earlier schema is exercised");
}

#[test]
fn hostile_values_are_errors_not_panics() {
    let good = submitted(parse(&valid()).unwrap(), None).encode();
    assert!(matches!(
        TraceEvent::decode(&[]),
        Err(DecodeError::TooShort(0))
    ));
    assert!(matches!(
        TraceEvent::decode(b"{\"json\": true}"),
        Err(DecodeError::BadMagic)
    ));
    let mut unknown = good.clone();
    unknown[5] ^= 0xff;
    assert!(matches!(
        TraceEvent::decode(&unknown),
        Err(DecodeError::UnknownSchema(_))
    ));
    // (Cutting only the final byte, a trailing null union, still decodes: apache-avro reads a union
    // index at end-of-input as null, which is the same value.)
    for cut in [11, good.len() / 2, good.len() - 2] {
        let r = TraceEvent::decode(&good[..cut]);
        assert!(
            matches!(r, Err(DecodeError::Avro(_))),
            "cut at {cut}: {r:?}"
        );
    }
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(matches!(
        TraceEvent::decode(&trailing),
        Err(DecodeError::TrailingBytes(1))
    ));

    // A string claiming to be 2^62 bytes long must not be allocated.
    let mut huge = good[..10].to_vec();
    huge.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    assert!(TraceEvent::decode(&huge).is_err());

    // A valid encoding of an invalid trace (empty prompt) is refused with the trace rules.
    let (_, schema, fp) = current_schema(EventKind::Submitted);
    let record = Avro::Record(vec![
        ("id".into(), Avro::Uuid(Uuid::new_v4())),
        ("created_at".into(), Avro::TimestampMicros(0)),
        ("trace_version".into(), Avro::String("1".into())),
        ("prompt".into(), Avro::String(String::new())),
        ("final_answer".into(), Avro::String("a".into())),
        ("steps".into(), Avro::Array(vec![])),
        ("meta".into(), Avro::Union(0, Box::new(Avro::Null))),
        (
            "idempotency_key".into(),
            Avro::Union(0, Box::new(Avro::Null)),
        ),
    ]);
    let mut bytes = SINGLE_OBJECT_MAGIC.to_vec();
    bytes.extend_from_slice(&fp);
    bytes.extend(apache_avro::to_avro_datum(schema, record).unwrap());
    match TraceEvent::decode(&bytes) {
        Err(DecodeError::Invalid(e)) => assert_eq!(e.errors().len(), 2, "{e}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn decoded_payload_json_matches_what_was_submitted() {
    let original: Value = serde_json::from_str(&testdata("example-temperature.json")).unwrap();
    let event = submitted(parse(&original).unwrap(), None);
    let TraceEvent::Submitted(back) = round_trip(&event) else {
        panic!()
    };
    let json: Value = serde_json::from_str(&back.trace.to_json()).unwrap();
    assert_eq!(json, original);
}
