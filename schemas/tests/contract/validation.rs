//! Every seed validation rule, at both sides of each limit, plus the shared datasets.

use serde_json::{json, Value};
use tunix_schemas::{
    parse_batch, BatchError, BatchFormat, Trace, BATCH_MAX_ITEMS, DEFAULT_TRACE_MAX_BYTES,
};

use crate::helpers::*;

fn with(field: &str, value: Value) -> Value {
    let mut v = valid();
    v[field] = value;
    v
}

fn with_step(field: &str, value: Value) -> Value {
    let mut v = valid();
    v["steps"][0][field] = value;
    v
}

fn without(field: &str) -> Value {
    let mut v = valid();
    v.as_object_mut().unwrap().remove(field);
    v
}

fn without_step(field: &str) -> Value {
    let mut v = valid();
    v["steps"][0].as_object_mut().unwrap().remove(field);
    v
}

#[test]
fn the_minimal_trace_is_valid() {
    let t = parse(&valid()).expect("valid");
    assert_eq!(t.trace_version(), "1.0");
    assert_eq!(t.steps().len(), 1);
    assert_eq!(t.meta().unwrap().as_str(), r#"{"source":"test"}"#);
}

#[test]
fn trace_version_is_1_to_64_characters() {
    assert_eq!(
        errors_of(&with("trace_version", json!(""))),
        err("body.trace_version", "string_too_short")
    );
    assert!(errors_of(&with("trace_version", json!("v"))).is_empty());
    assert!(errors_of(&with("trace_version", json!("v".repeat(64)))).is_empty());
    assert_eq!(
        errors_of(&with("trace_version", json!("v".repeat(65)))),
        err("body.trace_version", "string_too_long")
    );
    // Characters, not bytes: 64 two-byte characters pass, 65 fail.
    assert!(errors_of(&with("trace_version", json!("é".repeat(64)))).is_empty());
    assert_eq!(
        errors_of(&with("trace_version", json!("é".repeat(65)))),
        err("body.trace_version", "string_too_long")
    );
    assert_eq!(
        errors_of(&without("trace_version")),
        err("body.trace_version", "missing")
    );
    assert_eq!(
        errors_of(&with("trace_version", json!(1.0))),
        err("body.trace_version", "string_type")
    );
    assert_eq!(
        errors_of(&with("trace_version", Value::Null)),
        err("body.trace_version", "string_type")
    );
}

#[test]
fn prompt_and_final_answer_are_1_to_50000_characters() {
    for field in ["prompt", "final_answer"] {
        let loc = format!("body.{field}");
        assert_eq!(
            errors_of(&with(field, json!(""))),
            err(&loc, "string_too_short")
        );
        assert!(errors_of(&with(field, json!("x"))).is_empty());
        assert!(errors_of(&with(field, json!("x".repeat(50_000)))).is_empty());
        assert_eq!(
            errors_of(&with(field, json!("x".repeat(50_001)))),
            err(&loc, "string_too_long")
        );
        // 50,000 four-byte emoji are 200,000 bytes but 50,000 characters.
        assert!(errors_of(&with(field, json!("🧠".repeat(50_000)))).is_empty());
        assert_eq!(
            errors_of(&with(field, json!("🧠".repeat(50_001)))),
            err(&loc, "string_too_long")
        );
        assert_eq!(errors_of(&without(field)), err(&loc, "missing"));
        assert_eq!(
            errors_of(&with(field, json!(["a"]))),
            err(&loc, "string_type")
        );
        assert_eq!(
            errors_of(&with(field, Value::Null)),
            err(&loc, "string_type")
        );
    }
}

#[test]
fn steps_are_1_to_1000_items() {
    let step = |i: usize| json!({"i": i, "type": "t", "content": "c"});
    assert_eq!(
        errors_of(&with("steps", json!([]))),
        err("body.steps", "too_short")
    );
    assert!(errors_of(&with("steps", json!([step(0)]))).is_empty());
    let thousand: Vec<Value> = (0..1000).map(step).collect();
    assert!(errors_of(&with("steps", json!(thousand))).is_empty());
    let too_many: Vec<Value> = (0..1001).map(step).collect();
    assert_eq!(
        errors_of(&with("steps", json!(too_many))),
        err("body.steps", "too_long")
    );
    assert_eq!(errors_of(&without("steps")), err("body.steps", "missing"));
    assert_eq!(
        errors_of(&with("steps", json!({"i": 0}))),
        err("body.steps", "list_type")
    );
    assert_eq!(
        errors_of(&with("steps", Value::Null)),
        err("body.steps", "list_type")
    );
    assert_eq!(
        errors_of(&with("steps", json!(["step"]))),
        err("body.steps.0", "model_type")
    );
}

#[test]
fn step_index_is_a_unique_non_negative_integer() {
    assert!(errors_of(&with_step("i", json!(0))).is_empty());
    assert_eq!(
        errors_of(&with_step("i", json!(-1))),
        err("body.steps.0.i", "greater_than_equal")
    );
    assert!(errors_of(&with_step("i", json!(i64::MAX))).is_empty());
    assert_eq!(
        errors_of_bytes(br#"{"trace_version":"1","prompt":"p","final_answer":"a","steps":[{"i":9223372036854775808,"type":"t","content":"c"}]}"#),
        err("body.steps.0.i", "less_than_equal")
    );
    assert_eq!(
        errors_of(&with_step("i", json!("1"))),
        err("body.steps.0.i", "int_type")
    );
    assert_eq!(
        errors_of(&with_step("i", json!(1.5))),
        err("body.steps.0.i", "int_type")
    );
    assert_eq!(
        errors_of(&with_step("i", json!(true))),
        err("body.steps.0.i", "int_type")
    );
    assert_eq!(
        errors_of(&with_step("i", Value::Null)),
        err("body.steps.0.i", "int_type")
    );
    assert_eq!(
        errors_of(&without_step("i")),
        err("body.steps.0.i", "missing")
    );
    // Integral floats were accepted by the seed (pydantic lax mode) and still are.
    assert_eq!(parse(&with_step("i", json!(2.0))).unwrap().steps()[0].i, 2);

    // Neither contiguous nor sorted is required...
    let steps = json!([
        {"i": 7, "type": "t", "content": "a"},
        {"i": 2, "type": "t", "content": "b"},
        {"i": 40, "type": "t", "content": "c"}
    ]);
    let t = parse(&with("steps", steps)).unwrap();
    assert_eq!(
        t.steps().iter().map(|s| s.i).collect::<Vec<_>>(),
        vec![7, 2, 40]
    );
    // ...but uniqueness is, and the error points at the second use.
    let dup = json!([
        {"i": 1, "type": "t", "content": "a"},
        {"i": 2, "type": "t", "content": "b"},
        {"i": 1, "type": "t", "content": "c"}
    ]);
    assert_eq!(
        errors_of(&with("steps", dup)),
        err("body.steps.2.i", "value_error")
    );
}

#[test]
fn step_type_is_1_to_64_and_content_1_to_20000_characters() {
    assert_eq!(
        errors_of(&with_step("type", json!(""))),
        err("body.steps.0.type", "string_too_short")
    );
    assert!(errors_of(&with_step("type", json!("t".repeat(64)))).is_empty());
    assert_eq!(
        errors_of(&with_step("type", json!("t".repeat(65)))),
        err("body.steps.0.type", "string_too_long")
    );
    assert_eq!(
        errors_of(&without_step("type")),
        err("body.steps.0.type", "missing")
    );
    assert_eq!(
        errors_of(&with_step("type", json!(3))),
        err("body.steps.0.type", "string_type")
    );

    assert_eq!(
        errors_of(&with_step("content", json!(""))),
        err("body.steps.0.content", "string_too_short")
    );
    assert!(errors_of(&with_step("content", json!("c"))).is_empty());
    assert!(errors_of(&with_step("content", json!("ç".repeat(20_000)))).is_empty());
    assert_eq!(
        errors_of(&with_step("content", json!("ç".repeat(20_001)))),
        err("body.steps.0.content", "string_too_long")
    );
    assert_eq!(
        errors_of(&without_step("content")),
        err("body.steps.0.content", "missing")
    );
}

#[test]
fn meta_is_an_optional_object_or_null() {
    assert!(parse(&without("meta")).unwrap().meta().is_none());
    assert!(parse(&with("meta", Value::Null)).unwrap().meta().is_none());
    assert!(errors_of(&with("meta", json!({}))).is_empty());
    assert!(errors_of(&with("meta", json!({"nested": {"deep": [1, {"x": null}]}}))).is_empty());
    for bad in [json!([]), json!("x"), json!(1), json!(true)] {
        assert_eq!(errors_of(&with("meta", bad)), err("body.meta", "dict_type"));
    }
}

#[test]
fn meta_is_kept_verbatim() {
    let body = br#"{"trace_version":"1","prompt":"p","final_answer":"a","steps":[{"i":0,"type":"t","content":"c"}],"meta":{"z": 1.10, "a": 12345678901234567890123, "e": "\u00e9"}}"#;
    let t = Trace::parse_json(body).unwrap();
    assert_eq!(
        t.meta().unwrap().as_str(),
        r#"{"z": 1.10, "a": 12345678901234567890123, "e": "\u00e9"}"#
    );
}

#[test]
fn unknown_fields_are_ignored() {
    let mut v = valid();
    v["extra"] = json!({"anything": [1, 2, 3]});
    v["steps"][0]["score"] = json!(0.9);
    assert!(errors_of(&v).is_empty());
    // Even absurdly deep unknown fields are skipped without recursion.
    let deep = format!(
        r#"{{"trace_version":"1","prompt":"p","final_answer":"a","steps":[{{"i":0,"type":"t","content":"c"}}],"junk":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(errors_of_bytes(deep.as_bytes()).is_empty());
}

#[test]
fn every_error_is_reported_with_its_path() {
    let v = json!({
        "trace_version": "",
        "prompt": 5,
        "steps": [
            {"i": 0, "type": "t", "content": "ok"},
            {"i": -2, "type": "", "content": "ok"},
            {"i": 0, "type": "t"}
        ],
        "meta": []
    });
    let errs = errors_of(&v);
    let expected: Vec<(String, String)> = [
        ("body.trace_version", "string_too_short"),
        ("body.prompt", "string_type"),
        ("body.final_answer", "missing"),
        ("body.steps.1.i", "greater_than_equal"),
        ("body.steps.1.type", "string_too_short"),
        ("body.steps.2.content", "missing"),
        ("body.steps.2.i", "value_error"),
        ("body.meta", "dict_type"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(errs, expected);
}

#[test]
fn malformed_bodies_are_json_invalid() {
    assert_eq!(errors_of_bytes(b""), err("body", "json_invalid"));
    assert_eq!(
        errors_of_bytes(b"{\"prompt\": "),
        err("body", "json_invalid")
    );
    assert_eq!(
        errors_of_bytes(b"{\"a\":1} trailing"),
        err("body", "json_invalid")
    );
    assert_eq!(errors_of_bytes(b"\xff\xfe{}"), err("body", "json_invalid"));
    // A lone surrogate escape is not a Unicode scalar value.
    assert_eq!(
        errors_of_bytes(br#"{"trace_version":"\ud800","prompt":"p","final_answer":"a","steps":[{"i":0,"type":"t","content":"c"}]}"#),
        err("body.trace_version", "json_invalid")
    );
    assert_eq!(
        errors_of_bytes(br#"{"trace_version":"1","prompt":"p","final_answer":"a","steps":[{"i":0,"type":"t","content":"c"}],"meta":{"k":"\udc00"}}"#),
        err("body.meta.k", "json_invalid")
    );
    assert_eq!(errors_of_bytes(b"[1,2]"), err("body", "model_type"));
    assert_eq!(errors_of_bytes(b"\"text\""), err("body", "model_type"));
    assert_eq!(errors_of_bytes(b"null"), err("body", "model_type"));
}

#[test]
fn duplicate_keys_are_refused() {
    let body = br#"{"trace_version":"1","prompt":"p","prompt":"q","final_answer":"a","steps":[{"i":0,"type":"t","content":"c"}]}"#;
    assert_eq!(errors_of_bytes(body), err("body", "value_error"));
    let body = br#"{"trace_version":"1","prompt":"p","final_answer":"a","steps":[{"i":0,"i":1,"type":"t","content":"c"}]}"#;
    assert_eq!(errors_of_bytes(body), err("body.steps.0", "value_error"));
    let body = br#"{"trace_version":"1","prompt":"p","final_answer":"a","steps":[{"i":0,"type":"t","content":"c"}],"meta":{"k":1,"k":2}}"#;
    assert_eq!(errors_of_bytes(body), err("body.meta.k", "value_error"));
}

/// The seed API stored NUL anywhere (its payload column was `json`), and so do we: the writer's
/// `json` column keeps `\u0000`, and text columns of the read models escape it (`pg_text`).
#[test]
fn nul_characters_are_accepted_everywhere_and_kept() {
    let mut body = with("prompt", json!("a\u{0}b"));
    body["trace_version"] = json!("v\u{0}");
    body["final_answer"] = json!("\u{0}");
    body["steps"][0]["type"] = json!("t\u{0}");
    body["steps"][0]["content"] = json!("\u{0}c");
    body["meta"] = json!({"k\u{0}": ["\u{0}", {"x": "\u{0}\u{0}"}]});
    let trace = parse(&body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(trace.prompt(), "a\u{0}b");
    assert_eq!(trace.trace_version(), "v\u{0}");
    let stored: Value = serde_json::from_str(&trace.to_json()).unwrap();
    assert_eq!(stored, body);
    assert!(
        trace.to_json().contains("\\u0000"),
        "NUL travels as the JSON escape"
    );
}

/// What the seed accepted and we still refuse, at the door with 422 (README, "Deliberate
/// differences"): step indices beyond 64 bits, numbers beyond double range, deep or duplicate
/// meta, lone surrogates.
#[test]
fn deliberate_differences_are_refused_with_a_path() {
    let i = br#"{"trace_version":"1","prompt":"p","final_answer":"a","steps":[{"i":9223372036854775808,"type":"t","content":"c"}]}"#;
    assert_eq!(errors_of_bytes(i), err("body.steps.0.i", "less_than_equal"));
    let big = br#"{"trace_version":"1","prompt":"p","final_answer":"a","steps":[{"i":0,"type":"t","content":"c"}],"meta":{"n":[1e400]}}"#;
    assert_eq!(errors_of_bytes(big), err("body.meta.n.0", "value_error"));
    let lone = br#"{"trace_version":"1","prompt":"\ud800","final_answer":"a","steps":[{"i":0,"type":"t","content":"c"}]}"#;
    assert_eq!(errors_of_bytes(lone), err("body.prompt", "json_invalid"));
    // Tiny numbers, even beyond what PostgreSQL's numeric holds, are kept verbatim.
    let tiny = br#"{"trace_version":"1","prompt":"p","final_answer":"a","steps":[{"i":0,"type":"t","content":"c"}],"meta":{"z":0e-99999,"t":1e-400}}"#;
    let trace = Trace::parse_json(tiny).unwrap();
    assert_eq!(
        trace.meta().unwrap().as_str(),
        r#"{"z":0e-99999,"t":1e-400}"#
    );
}

#[test]
fn seed_examples_are_valid() {
    for name in ["example-temperature.json", "example-27x19.json"] {
        let text = testdata(name);
        let t = Trace::parse_json(text.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let original: Value = serde_json::from_str(&text).unwrap();
        let stored: Value = serde_json::from_str(&t.to_json()).unwrap();
        assert_eq!(
            stored, original,
            "{name} survives parse and re-serialization"
        );
    }
    let t = Trace::parse_json(testdata("example-27x19.json").as_bytes()).unwrap();
    assert_eq!(t.prompt(), "What is 27 × 19?");
    assert_eq!(t.final_answer(), "513");
}

#[test]
fn all_550_dataset_traces_are_valid_and_round_trip_as_json() {
    let data = dataset();
    assert_eq!(data.len(), 550);
    for (n, original) in data.iter().enumerate() {
        let t = parse(original).unwrap_or_else(|e| panic!("line {n}: {e}"));
        let stored: Value = serde_json::from_str(&t.to_json()).unwrap();
        assert_eq!(&stored, original, "line {n}");
    }
}

#[test]
fn batches_are_all_or_nothing() {
    let data = dataset();
    let body = serde_json::to_vec(&data[..10]).unwrap();
    let traces = parse_batch(&body, BatchFormat::JsonArray, DEFAULT_TRACE_MAX_BYTES).unwrap();
    assert_eq!(traces.len(), 10);

    let mut items: Vec<Value> = data[..10].to_vec();
    items[7]["steps"][0]["i"] = json!(-1);
    let body = serde_json::to_vec(&items).unwrap();
    match parse_batch(&body, BatchFormat::JsonArray, DEFAULT_TRACE_MAX_BYTES) {
        Err(BatchError::Invalid(e)) => {
            let json = serde_json::to_value(e.errors()).unwrap();
            assert_eq!(json[0]["loc"], json!(["body", 7, "steps", 0, "i"]));
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn batch_limits() {
    assert_eq!(
        parse_batch(b"[]", BatchFormat::JsonArray, 1 << 20),
        Err(BatchError::Empty)
    );
    assert_eq!(
        parse_batch(b"\n\n", BatchFormat::Ndjson, 1 << 20),
        Err(BatchError::Empty)
    );
    let one = serde_json::to_string(&valid()).unwrap();
    let max: Vec<&str> = std::iter::repeat_n(one.as_str(), BATCH_MAX_ITEMS).collect();
    let body = format!("[{}]", max.join(","));
    assert_eq!(
        parse_batch(body.as_bytes(), BatchFormat::JsonArray, 1 << 20)
            .unwrap()
            .len(),
        1000
    );
    let over = format!("[{},{}]", max.join(","), one);
    assert_eq!(
        parse_batch(over.as_bytes(), BatchFormat::JsonArray, 1 << 20),
        Err(BatchError::TooMany {
            got: 1001,
            max: 1000
        })
    );
    let ndjson_over = std::iter::repeat_n(one.as_str(), 1001)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(matches!(
        parse_batch(ndjson_over.as_bytes(), BatchFormat::Ndjson, 1 << 20),
        Err(BatchError::TooMany { .. })
    ));
    let small_limit = parse_batch(format!("[{one}]").as_bytes(), BatchFormat::JsonArray, 10);
    assert!(matches!(
        small_limit,
        Err(BatchError::ItemTooLarge { index: 0, .. })
    ));
    assert!(matches!(
        parse_batch(b"{}", BatchFormat::JsonArray, 1 << 20),
        Err(BatchError::Invalid(_))
    ));
}

#[test]
fn ndjson_batches_report_line_indices() {
    let good = serde_json::to_string(&valid()).unwrap();
    let body = format!("{good}\n\n{good}\n{{\"broken\": \n{good}\n");
    match parse_batch(body.as_bytes(), BatchFormat::Ndjson, 1 << 20) {
        Err(BatchError::Invalid(e)) => {
            assert_eq!(e.errors().len(), 1);
            assert_eq!(e.errors()[0].loc.to_string(), "body.2");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    let body = format!("{good}\n{good}\n");
    assert_eq!(
        parse_batch(body.as_bytes(), BatchFormat::Ndjson, 1 << 20)
            .unwrap()
            .len(),
        2
    );
}
