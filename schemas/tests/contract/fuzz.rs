//! Property-based fuzzing of the two parsers that face untrusted bytes: JSON validation (the HTTP
//! body) and Avro decoding (any record on the topic). CI runs the default case count; run longer
//! with `PROPTEST_CASES=100000 cargo test -p tunix-schemas --release fuzz`.

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use tunix_schemas::{
    current_schema, EventKind, Meta, Step, Trace, TraceEvent, TraceParts, TraceSubmitted,
    SINGLE_OBJECT_MAGIC,
};
use uuid::Uuid;

use crate::helpers::*;

fn seeds() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = dataset()
        .iter()
        .take(20)
        .map(|v| serde_json::to_vec(v).unwrap())
        .collect();
    out.push(testdata("example-temperature.json").into_bytes());
    out.push(testdata("example-27x19.json").into_bytes());
    out
}

/// A mutation of a valid document: overwrite, insert or delete a few bytes.
fn mutated(seed: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = seed.len();
    prop::collection::vec((0..len.max(1), any::<u8>(), 0u8..3), 1..8).prop_map(move |edits| {
        let mut doc = seed.clone();
        for (pos, byte, op) in edits {
            let pos = pos.min(doc.len().saturating_sub(1));
            match op {
                0 if !doc.is_empty() => doc[pos] = byte,
                1 => doc.insert(pos, byte),
                _ if !doc.is_empty() => {
                    doc.remove(pos);
                }
                _ => {}
            }
        }
        doc
    })
}

fn any_seed_mutation() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(seeds()).prop_flat_map(mutated)
}

fn text(max: usize) -> impl Strategy<Value = String> {
    // Any character, NUL included (the seed stored it; so do we), with NUL made frequent.
    prop::collection::vec(prop_oneof![9 => any::<char>(), 1 => Just('\0')], 1..max)
        .prop_map(|v| v.into_iter().collect())
}

/// `meta` text whose numbers sit at the edges: exponents far beyond PostgreSQL's numeric, values
/// that round to zero, integers beyond 64 bits. All of them are kept verbatim.
fn edge_number_meta() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            (0u8..10, -99_999i64..99_999).prop_map(|(d, e)| format!("{d}e{e}")),
            (1u8..10, 324i64..99_999).prop_map(|(d, e)| format!("-{d}.25e-{e}")),
            Just("0e-99999".to_owned()),
            Just("123456789012345678901234567890".to_owned()),
        ],
        1..6,
    )
    .prop_map(|numbers| format!(r#"{{"n":[{}]}}"#, numbers.join(",")))
}

/// Any JSON value: strings of any character, numbers of every kind, objects and arrays nested up
/// to 80 levels (past the 64 allowed).
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text(20).prop_map(Value::from),
    ];
    leaf.prop_recursive(80, 400, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(text(8), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A chain of `levels` objects around `value`.
fn nested(levels: usize, value: serde_json::Value) -> serde_json::Value {
    (0..levels).fold(value, |v, _| serde_json::json!({ "a": v }))
}

fn trace_strategy() -> impl Strategy<Value = Trace> {
    (
        text(64),
        text(200),
        text(200),
        prop::collection::btree_set(0i64..i64::MAX, 1..20),
        prop::option::of(prop::collection::btree_map(text(10), any::<i32>(), 0..5)),
    )
        .prop_flat_map(|(version, prompt, answer, indices, meta)| {
            let n = indices.len();
            (prop::collection::vec((text(64), text(300)), n..=n)).prop_map(move |steps| {
                let steps = indices
                    .iter()
                    .zip(steps)
                    .map(|(i, (kind, content))| Step {
                        i: *i,
                        kind,
                        content,
                    })
                    .collect();
                Trace::from_parts(TraceParts {
                    trace_version: version.clone(),
                    prompt: prompt.clone(),
                    final_answer: answer.clone(),
                    steps,
                    meta: meta.as_ref().map(|m| serde_json::to_string(m).unwrap()),
                })
                .expect("generated traces follow the rules")
            })
        })
}

proptest! {
    #[test]
    fn serialized_meta_agrees_with_the_check_of_its_text(value in json_value(), levels in 0usize..70) {
        let doc = nested(levels, serde_json::json!({ "v": value }));
        let text = serde_json::to_string(&doc).unwrap();
        let parts = |meta| TraceParts {
            trace_version: "1".into(),
            prompt: "p".into(),
            final_answer: "a".into(),
            steps: vec![Step { i: 0, kind: "t".into(), content: "c".into() }],
            meta,
        };
        let checked = Trace::from_parts(parts(Some(text.clone())));
        match Meta::serialized(&doc) {
            Ok(meta) => {
                prop_assert_eq!(meta.as_str(), text.as_str());
                let trace = Trace::from_parts_with_meta(parts(None), meta).unwrap();
                prop_assert_eq!(Ok(trace), checked);
            }
            Err(errs) => prop_assert_eq!(Some(errs), checked.err()),
        }
    }

    #[test]
    fn json_validation_never_panics_on_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Trace::parse_json(&body);
    }

    #[test]
    fn json_validation_of_mutated_traces_is_stable(body in any_seed_mutation()) {
        if let Ok(trace) = Trace::parse_json(&body) {
            // Whatever is accepted re-serializes to something that validates to the same trace.
            let again = Trace::parse_json(trace.to_json().as_bytes()).expect("re-validates");
            prop_assert_eq!(again, trace);
        }
    }

    #[test]
    fn generated_traces_round_trip_through_avro_and_json(trace in trace_strategy(), micros in 0i64..4_102_444_800_000_000) {
        let event = TraceEvent::Submitted(TraceSubmitted {
            id: Uuid::new_v4(),
            created_at: Utc.timestamp_micros(micros).unwrap(),
            trace: trace.clone(),
            idempotency_key: None,
        });
        prop_assert_eq!(TraceEvent::decode(&event.encode()).unwrap(), event);
        prop_assert_eq!(Trace::parse_json(trace.to_json().as_bytes()).unwrap(), trace);
    }

    #[test]
    fn numbers_at_the_edges_are_accepted_and_kept_verbatim(meta in edge_number_meta()) {
        let body = format!(
            r#"{{"trace_version":"1","prompt":"p","final_answer":"a","steps":[{{"i":0,"type":"t","content":"c"}}],"meta":{meta}}}"#
        );
        let parsed = Trace::parse_json(body.as_bytes());
        // Only a literal whose magnitude overflows a double is refused (1e400 and the like).
        let overflows = meta.split(['[', ',', ']']).any(|n| {
            n.parse::<f64>().is_ok_and(|f| f.is_infinite())
        });
        match parsed {
            Ok(trace) => {
                prop_assert!(!overflows, "{meta}");
                prop_assert_eq!(trace.meta().unwrap().as_str(), meta.as_str());
            }
            Err(e) => prop_assert!(overflows, "{meta}: {e}"),
        }
    }

    #[test]
    fn avro_decoding_never_panics_on_arbitrary_datums(datum in prop::collection::vec(any::<u8>(), 0..256), kind in prop::sample::select(EventKind::ALL.to_vec())) {
        let mut bytes = SINGLE_OBJECT_MAGIC.to_vec();
        bytes.extend_from_slice(&current_schema(kind).2);
        bytes.extend(datum);
        let _ = TraceEvent::decode(&bytes);
    }

    #[test]
    fn avro_decoding_of_mutated_events_is_stable(edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let trace = Trace::parse_json(testdata("example-27x19.json").as_bytes()).unwrap();
        let mut bytes = TraceEvent::Submitted(TraceSubmitted {
            id: Uuid::new_v4(),
            created_at: Utc::now(),
            trace,
            idempotency_key: Some("k".into()),
        })
        .encode();
        for (idx, byte) in edits {
            let at = 10 + idx.index(bytes.len() - 10);
            bytes[at] = byte;
        }
        if let Ok(event) = TraceEvent::decode(&bytes) {
            prop_assert_eq!(TraceEvent::decode(&event.encode()).unwrap(), event);
        }
    }
}
