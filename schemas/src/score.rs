//! Scores: the rules for a judgement of a trace, request bodies for recording them (one, or a
//! batch of up to [`SCORE_BATCH_MAX`]), and the original service's `baseline` criteria.
//!
//! | field | rule |
//! | --- | --- |
//! | `name` | string, 1–64 characters |
//! | `value` | a finite number |
//! | `source` | optional string, at most 128 characters |
//! | `comment` | optional string, at most 2,000 characters |
//!
//! Batch items also carry `trace_id` (a UUID). Errors come back all at once, with paths, like
//! trace validation; a batch is all or nothing.

use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::error::{ErrorKind, Loc, ValidationErrors};
use crate::trace::Trace;

/// Longest score name, in characters.
pub const NAME_MAX_CHARS: usize = 64;
/// Longest `source`, in characters.
pub const SOURCE_MAX_CHARS: usize = 128;
/// Longest `comment`, in characters.
pub const COMMENT_MAX_CHARS: usize = 2_000;
/// Most scores in one `POST /api/scores/batch`.
pub const SCORE_BATCH_MAX: usize = 1_000;

/// A validated score, as recorded for one trace.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreInput {
    /// The trace judged (from the path, or the batch item).
    pub trace_id: Uuid,
    /// What was judged.
    pub name: String,
    /// The value.
    pub value: f64,
    /// Who judged.
    pub source: Option<String>,
    /// Free text.
    pub comment: Option<String>,
}

fn text_rule(value: &str, loc: Loc, min: usize, max: usize, errs: &mut ValidationErrors) {
    let chars = value.chars().count();
    if chars < min {
        errs.push(
            loc,
            ErrorKind::StringTooShort,
            "String should have at least 1 character",
        );
    } else if chars > max {
        errs.push(
            loc,
            ErrorKind::StringTooLong,
            format!("String should have at most {max} characters"),
        );
    }
}

fn check_at(
    loc: &Loc,
    name: &str,
    value: f64,
    source: Option<&str>,
    comment: Option<&str>,
    errs: &mut ValidationErrors,
) {
    text_rule(name, loc.child("name"), 1, NAME_MAX_CHARS, errs);
    if !value.is_finite() {
        errs.push(
            loc.child("value"),
            ErrorKind::ValueError,
            "Value error, value must be a finite number",
        );
    }
    if let Some(s) = source {
        text_rule(s, loc.child("source"), 0, SOURCE_MAX_CHARS, errs);
    }
    if let Some(c) = comment {
        text_rule(c, loc.child("comment"), 0, COMMENT_MAX_CHARS, errs);
    }
}

/// Checks a score's fields (also applied to score events read from the topic).
pub fn check(
    name: &str,
    value: f64,
    source: Option<&str>,
    comment: Option<&str>,
) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::default();
    check_at(&Loc::body(), name, value, source, comment, &mut errs);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

/// Checks a score name (path parameters, retractions).
pub fn check_name(name: &str) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::default();
    text_rule(
        name,
        Loc::body().child("name"),
        1,
        NAME_MAX_CHARS,
        &mut errs,
    );
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

#[derive(Deserialize)]
struct RawScore {
    trace_id: Option<Value>,
    name: Option<Value>,
    value: Option<Value>,
    source: Option<Value>,
    comment: Option<Value>,
}

fn string_at(
    v: Option<Value>,
    loc: Loc,
    required: bool,
    errs: &mut ValidationErrors,
) -> Option<String> {
    match v {
        None | Some(Value::Null) if required => {
            errs.push(loc, ErrorKind::Missing, "Field required");
            None
        }
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            errs.push(loc, ErrorKind::StringType, "Input should be a valid string");
            None
        }
    }
}

/// Validates one score object at `loc`; `trace_id` comes from the path unless `in_body`.
fn score_at(
    item: Value,
    loc: &Loc,
    path_id: Option<Uuid>,
    errs: &mut ValidationErrors,
) -> Option<ScoreInput> {
    if !item.is_object() {
        errs.push(
            loc.clone(),
            ErrorKind::ModelType,
            "Input should be a valid dictionary or object to extract fields from",
        );
        return None;
    }
    let raw: RawScore = serde_json::from_value(item).ok()?;
    let before = errs.errors().len();
    let trace_id = match path_id {
        Some(id) => Some(id),
        None => match raw.trace_id {
            None | Some(Value::Null) => {
                errs.push(loc.child("trace_id"), ErrorKind::Missing, "Field required");
                None
            }
            Some(Value::String(s)) => match Uuid::parse_str(s.trim()) {
                Ok(id) => Some(id),
                Err(e) => {
                    errs.push(
                        loc.child("trace_id"),
                        ErrorKind::ValueError,
                        format!("Input should be a valid UUID, {e}"),
                    );
                    None
                }
            },
            Some(_) => {
                errs.push(
                    loc.child("trace_id"),
                    ErrorKind::StringType,
                    "Input should be a valid string",
                );
                None
            }
        },
    };
    let name = string_at(raw.name, loc.child("name"), true, errs);
    let value = match raw.value {
        None | Some(Value::Null) => {
            errs.push(loc.child("value"), ErrorKind::Missing, "Field required");
            None
        }
        Some(Value::Number(n)) => n.as_f64(),
        Some(_) => {
            errs.push(
                loc.child("value"),
                ErrorKind::ValueError,
                "Input should be a valid number",
            );
            None
        }
    };
    let source = string_at(raw.source, loc.child("source"), false, errs);
    let comment = string_at(raw.comment, loc.child("comment"), false, errs);
    if let Some(name) = &name {
        text_rule(name, loc.child("name"), 1, NAME_MAX_CHARS, errs);
    }
    if let Some(s) = &source {
        text_rule(s, loc.child("source"), 0, SOURCE_MAX_CHARS, errs);
    }
    if let Some(c) = &comment {
        text_rule(c, loc.child("comment"), 0, COMMENT_MAX_CHARS, errs);
    }
    if errs.errors().len() != before {
        return None;
    }
    Some(ScoreInput {
        trace_id: trace_id?,
        name: name?,
        value: value?,
        source,
        comment,
    })
}

fn parse_value(body: &[u8]) -> Result<Value, ValidationErrors> {
    let text = crate::trace::json_text(body)?;
    serde_json::from_str(text).map_err(|e| {
        let mut errs = ValidationErrors::default();
        errs.push(
            Loc::body(),
            ErrorKind::JsonInvalid,
            format!("JSON decode error: {e}"),
        );
        errs
    })
}

/// Parses `POST /api/traces/{id}/scores`: `{name, value, source?, comment?}`.
pub fn parse_score(body: &[u8], trace_id: Uuid) -> Result<ScoreInput, ValidationErrors> {
    let value = parse_value(body)?;
    let mut errs = ValidationErrors::default();
    match score_at(value, &Loc::body(), Some(trace_id), &mut errs) {
        Some(score) if errs.is_empty() => Ok(score),
        _ => Err(errs),
    }
}

/// Why a score batch was refused.
#[derive(Debug)]
pub enum ScoreBatchError {
    /// Not an array, or items break the rules: 422 with every error.
    Invalid(ValidationErrors),
    /// An empty array: 400.
    Empty,
    /// More than [`SCORE_BATCH_MAX`] items: 413.
    TooMany(usize),
}

/// Parses `POST /api/scores/batch`: a JSON array of `{trace_id, name, value, source?, comment?}`,
/// all or nothing, errors under `["body", n, field]`.
pub fn parse_score_batch(body: &[u8]) -> Result<Vec<ScoreInput>, ScoreBatchError> {
    let value = parse_value(body).map_err(ScoreBatchError::Invalid)?;
    let Value::Array(items) = value else {
        let mut errs = ValidationErrors::default();
        errs.push(
            Loc::body(),
            ErrorKind::ListType,
            "Input should be a valid list",
        );
        return Err(ScoreBatchError::Invalid(errs));
    };
    if items.is_empty() {
        return Err(ScoreBatchError::Empty);
    }
    if items.len() > SCORE_BATCH_MAX {
        return Err(ScoreBatchError::TooMany(items.len()));
    }
    let mut errs = ValidationErrors::default();
    let mut scores = Vec::with_capacity(items.len());
    for (n, item) in items.into_iter().enumerate() {
        if let Some(s) = score_at(item, &Loc::body().child(n), None, &mut errs) {
            scores.push(s);
        }
    }
    if errs.is_empty() {
        Ok(scores)
    } else {
        Err(ScoreBatchError::Invalid(errs))
    }
}

/// The original service's `baseline` criteria and its details.
#[derive(Debug, Clone, PartialEq)]
pub struct Baseline {
    /// `step_score + length_score`, 0–100.
    pub score: f64,
    /// Number of steps.
    pub step_count: usize,
    /// Average step content length in characters.
    pub avg_step_length: f64,
    /// Characters of all step contents.
    pub total_chars: usize,
    /// `min(step_count / 10, 1) * 50`.
    pub step_score: f64,
    /// `min(avg_step_length / 500, 1) * 50`.
    pub length_score: f64,
}

/// Rounds to two decimals, as the original service reported lengths and scores.
pub fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Scores `trace` by the original service's `baseline` criteria.
pub fn baseline(trace: &Trace) -> Baseline {
    let step_count = trace.steps().len();
    let total_chars: usize = trace
        .steps()
        .iter()
        .map(|s| s.content.chars().count())
        .sum();
    let avg = if step_count == 0 {
        0.0
    } else {
        total_chars as f64 / step_count as f64
    };
    let step_score = (step_count as f64 / 10.0).min(1.0) * 50.0;
    let length_score = (avg / 500.0).min(1.0) * 50.0;
    Baseline {
        score: round2(step_score + length_score),
        step_count,
        avg_step_length: round2(avg),
        total_chars,
        step_score: round2(step_score),
        length_score: round2(length_score),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(e: ValidationErrors) -> Vec<(String, &'static str)> {
        e.0.into_iter()
            .map(|e| (e.loc.to_string(), e.kind.as_str()))
            .collect()
    }

    #[test]
    fn a_score_is_a_name_a_finite_value_and_optional_text() {
        let id = Uuid::new_v4();
        let ok = parse_score(br#"{"name":"correct","value":1,"source":"grader"}"#, id).unwrap();
        assert_eq!(
            (ok.trace_id, ok.name.as_str(), ok.value),
            (id, "correct", 1.0)
        );
        assert_eq!(ok.source.as_deref(), Some("grader"));
        let err = parse_score(br#"{"name":"","value":"x","comment":7}"#, id).unwrap_err();
        assert_eq!(
            kinds(err),
            vec![
                ("body.value".into(), "value_error"),
                ("body.comment".into(), "string_type"),
                ("body.name".into(), "string_too_short"),
            ]
        );
        let err = parse_score(br#"{"name":"n","value":1e400}"#, id).unwrap_err();
        assert_eq!(
            kinds(err),
            vec![("body".into(), "json_invalid")],
            "beyond double range"
        );
        let err = parse_score(
            &format!(r#"{{"name":"{}","value":1}}"#, "é".repeat(65)).into_bytes(),
            id,
        )
        .unwrap_err();
        assert_eq!(kinds(err), vec![("body.name".into(), "string_too_long")]);
        assert!(parse_score(
            &format!(r#"{{"name":"{}","value":-0.5}}"#, "é".repeat(64)).into_bytes(),
            id
        )
        .is_ok());
        assert!(check("n", f64::NAN, None, None).is_err());
        assert!(check("n", f64::INFINITY, None, None).is_err());
    }

    #[test]
    fn batches_are_all_or_nothing_with_item_paths() {
        let id = Uuid::new_v4();
        let ok = parse_score_batch(
            format!(r#"[{{"trace_id":"{id}","name":"a","value":1}},{{"trace_id":"{id}","name":"b","value":0.5}}]"#).as_bytes(),
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        match parse_score_batch(
            format!(
                r#"[{{"trace_id":"{id}","name":"a","value":1}},{{"trace_id":"nope","value":1}}]"#
            )
            .as_bytes(),
        ) {
            Err(ScoreBatchError::Invalid(e)) => assert_eq!(
                kinds(e),
                vec![
                    ("body.1.trace_id".into(), "value_error"),
                    ("body.1.name".into(), "missing")
                ]
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_score_batch(b"[]"),
            Err(ScoreBatchError::Empty)
        ));
        let many = format!(
            "[{}]",
            vec![format!(r#"{{"trace_id":"{id}","name":"a","value":1}}"#); 1001].join(",")
        );
        assert!(matches!(
            parse_score_batch(many.as_bytes()),
            Err(ScoreBatchError::TooMany(1001))
        ));
    }

    #[test]
    fn baseline_follows_the_original_formula() {
        let steps: Vec<String> = (0..4)
            .map(|i| format!(r#"{{"i":{i},"type":"t","content":"{}"}}"#, "x".repeat(250)))
            .collect();
        let body = format!(
            r#"{{"trace_version":"1","prompt":"p","final_answer":"a","steps":[{}]}}"#,
            steps.join(",")
        );
        let b = baseline(&Trace::parse_json(body.as_bytes()).unwrap());
        // 4 steps: 0.4 * 50 = 20; average 250 chars: 0.5 * 50 = 25.
        assert_eq!(
            (b.step_count, b.total_chars, b.avg_step_length),
            (4, 1000, 250.0)
        );
        assert_eq!((b.step_score, b.length_score, b.score), (20.0, 25.0, 45.0));
    }
}
