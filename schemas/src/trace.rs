//! The reasoning-trace model and its validation rules (the original service's contract).
//!
//! A [`Trace`] can only be obtained through validation ([`Trace::parse_json`],
//! [`Trace::from_parts`]), so code holding one never re-checks it. Validation never stops at the
//! first problem: it returns every error with its path, as FastAPI did.

use std::collections::HashMap;

use serde::de::{Deserialize, Deserializer};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::{ErrorKind, Loc, ValidationErrors};
use crate::meta::check_meta;
use crate::redact::{NoRedaction, Redact, TextField};

/// Longest `trace_version`, in Unicode characters.
pub const TRACE_VERSION_MAX_CHARS: usize = 64;
/// Longest `prompt` and `final_answer`, in Unicode characters.
pub const TEXT_MAX_CHARS: usize = 50_000;
/// Most steps in one trace.
pub const STEPS_MAX: usize = 1_000;
/// Longest `step.type`, in Unicode characters.
pub const STEP_TYPE_MAX_CHARS: usize = 64;
/// Longest `step.content`, in Unicode characters.
pub const STEP_CONTENT_MAX_CHARS: usize = 20_000;

/// A validated reasoning trace: what producers submit and what every read model stores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trace {
    trace_version: String,
    prompt: String,
    final_answer: String,
    steps: Vec<Step>,
    meta: Option<Meta>,
}

/// One numbered reasoning step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// The step's index: ≥ 0 and unique within its trace, not necessarily contiguous or sorted.
    pub i: i64,
    /// The step's kind, e.g. `"compute"` (the JSON field is `type`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The step's text.
    pub content: String,
}

/// The `meta` object, kept as the exact JSON text that was submitted.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Meta(Box<RawValue>);

impl Meta {
    /// The JSON text of the object.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// `meta` serialized from `doc`, an object built in memory from structs and `serde_json`
    /// values (what a mapping from another wire format builds), without scanning the text for
    /// the rules that serialization keeps by construction: a struct or a map cannot hold a key
    /// twice, serde_json writes finite numbers in their shortest form (and non-finite ones as
    /// `null`), and Rust strings are Unicode. So only the nesting depth is checked, by a scan
    /// that skips strings; when it is exceeded, the full check reports where. `doc` must
    /// serialize as an object and must not write a key twice (derived `Serialize`, `Map`,
    /// `BTreeMap` and `HashMap` never do); debug builds check the whole text as well.
    pub fn serialized<T: Serialize + ?Sized>(doc: &T) -> Result<Meta, ValidationErrors> {
        let raw = serde_json::value::to_raw_value(doc).expect("a meta document serializes");
        let loc = Loc::body().child("meta");
        let mut errs = ValidationErrors::default();
        if first_byte(&raw) != b'{' || crate::meta::nested_too_deep(raw.get()) {
            meta_is_kept(&raw, &loc, &mut errs);
            if errs.is_empty() {
                errs.push(
                    loc,
                    ErrorKind::DictType,
                    "Input should be a valid dictionary",
                );
            }
            return Err(errs);
        }
        if cfg!(debug_assertions) {
            check_meta(raw.get(), &loc, &mut errs);
            assert!(errs.is_empty(), "a serialized meta broke a rule: {errs:?}");
        }
        Ok(Meta(raw))
    }
}

impl PartialEq for Meta {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

/// The unvalidated fields of a trace, as decoded from an event or built by a test.
#[derive(Debug, Clone, Default)]
pub struct TraceParts {
    /// See [`Trace::trace_version`].
    pub trace_version: String,
    /// See [`Trace::prompt`].
    pub prompt: String,
    /// See [`Trace::final_answer`].
    pub final_answer: String,
    /// See [`Trace::steps`].
    pub steps: Vec<Step>,
    /// JSON text of `meta`; `None` for absent or null.
    pub meta: Option<String>,
}

impl Trace {
    /// The producer's schema version label, 1–64 characters.
    pub fn trace_version(&self) -> &str {
        &self.trace_version
    }
    /// The task given to the model, 1–50,000 characters.
    pub fn prompt(&self) -> &str {
        &self.prompt
    }
    /// The model's final answer, 1–50,000 characters.
    pub fn final_answer(&self) -> &str {
        &self.final_answer
    }
    /// The reasoning steps in submission order (1–1,000).
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }
    /// The free-form metadata object, if any.
    pub fn meta(&self) -> Option<&Meta> {
        self.meta.as_ref()
    }

    /// The trace as the JSON payload stored in Postgres and returned by `GET /api/traces/{id}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a validated trace always serializes")
    }

    /// Parses and validates one trace from a request body.
    pub fn parse_json(body: &[u8]) -> Result<Trace, ValidationErrors> {
        Trace::parse_json_redacted(body, &mut NoRedaction)
    }

    /// Like [`Trace::parse_json`], with `redact` applied to the text fields after they are read
    /// and before they are validated (see [`crate::redact`]).
    pub fn parse_json_redacted(
        body: &[u8],
        redact: &mut dyn Redact,
    ) -> Result<Trace, ValidationErrors> {
        let text = json_text(body)?;
        let raw = parse_raw(text)?;
        Trace::from_raw_redacted(raw, &Loc::body(), redact)
    }

    /// Validates one trace given as a JSON value already split out of a larger document (a batch
    /// item), reporting errors under `loc`.
    pub fn from_raw(raw: &RawValue, loc: &Loc) -> Result<Trace, ValidationErrors> {
        Trace::from_raw_redacted(raw, loc, &mut NoRedaction)
    }

    /// Like [`Trace::from_raw`], with `redact` applied before validation.
    pub fn from_raw_redacted(
        raw: &RawValue,
        loc: &Loc,
        redact: &mut dyn Redact,
    ) -> Result<Trace, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        if first_byte(raw) != b'{' {
            errs.push(
                loc.clone(),
                ErrorKind::ModelType,
                "Input should be a valid dictionary or object to extract fields from",
            );
            return Err(errs);
        }
        let fields: RawTrace<'_> = match serde_json::from_str(raw.get()) {
            Ok(f) => f,
            Err(e) => {
                errs.push(loc.clone(), ErrorKind::ValueError, data_error_msg(&e));
                return Err(errs);
            }
        };

        let trace_version = string_field(
            fields.trace_version.0,
            loc,
            "trace_version",
            TRACE_VERSION_MAX_CHARS,
            &mut errs,
        );
        let mut text = |raw, name, field| {
            let loc = loc.child(name);
            let mut value = typed_string(raw, &loc, &mut errs)?;
            redact.redact(field, &mut value);
            check_str(&value, &loc, TEXT_MAX_CHARS, &mut errs);
            Some(value)
        };
        let prompt = text(fields.prompt.0, "prompt", TextField::Prompt);
        let final_answer = text(
            fields.final_answer.0,
            "final_answer",
            TextField::FinalAnswer,
        );
        let steps = steps_field(fields.steps.0, loc, &mut errs, redact);
        let meta = match fields.meta.0 {
            Some(raw) if redact.wants(TextField::Meta) && first_byte(raw) == b'{' => {
                let mut text = raw.get().to_owned();
                redact.redact(TextField::Meta, &mut text);
                match RawValue::from_string(text) {
                    Ok(redacted) => meta_field(Some(&redacted), loc, &mut errs),
                    Err(_) => meta_field(Some(raw), loc, &mut errs),
                }
            }
            other => meta_field(other, loc, &mut errs),
        };

        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Trace {
            trace_version: trace_version.unwrap_or_default(),
            prompt: prompt.unwrap_or_default(),
            final_answer: final_answer.unwrap_or_default(),
            steps: steps.unwrap_or_default(),
            meta,
        })
    }

    /// Validates already-typed fields (from a decoded event) with the same rules as the API.
    pub fn from_parts(mut parts: TraceParts) -> Result<Trace, ValidationErrors> {
        let loc = Loc::body();
        let mut errs = ValidationErrors::default();
        let meta = match parts.meta.take() {
            None => None,
            Some(text) => match RawValue::from_string(text) {
                Ok(raw) => meta_is_kept(&raw, &loc.child("meta"), &mut errs).then_some(Meta(raw)),
                Err(e) => {
                    errs.push(
                        loc.child("meta"),
                        ErrorKind::JsonInvalid,
                        format!("JSON decode error: {e}"),
                    );
                    None
                }
            },
        };
        Trace::checked(parts, meta, errs)
    }

    /// Like [`Trace::from_parts`], with `meta` already checked ([`Meta::serialized`]);
    /// `parts.meta` must be `None`.
    pub fn from_parts_with_meta(parts: TraceParts, meta: Meta) -> Result<Trace, ValidationErrors> {
        debug_assert!(parts.meta.is_none(), "meta is given once");
        Trace::checked(parts, Some(meta), ValidationErrors::default())
    }

    /// Checks every field but `meta`, which the caller checked: its errors, `meta_errs`, come
    /// last, in the order of the fields.
    fn checked(
        parts: TraceParts,
        meta: Option<Meta>,
        meta_errs: ValidationErrors,
    ) -> Result<Trace, ValidationErrors> {
        let loc = Loc::body();
        let mut errs = ValidationErrors::default();
        check_str(
            &parts.trace_version,
            &loc.child("trace_version"),
            TRACE_VERSION_MAX_CHARS,
            &mut errs,
        );
        check_str(
            &parts.prompt,
            &loc.child("prompt"),
            TEXT_MAX_CHARS,
            &mut errs,
        );
        check_str(
            &parts.final_answer,
            &loc.child("final_answer"),
            TEXT_MAX_CHARS,
            &mut errs,
        );
        let steps_loc = loc.child("steps");
        if check_steps_len(parts.steps.len(), &steps_loc, &mut errs) {
            for (n, step) in parts.steps.iter().enumerate() {
                let step_loc = steps_loc.child(n);
                check_i(step.i, &step_loc.child("i"), &mut errs);
                check_str(
                    &step.kind,
                    &step_loc.child("type"),
                    STEP_TYPE_MAX_CHARS,
                    &mut errs,
                );
                check_str(
                    &step.content,
                    &step_loc.child("content"),
                    STEP_CONTENT_MAX_CHARS,
                    &mut errs,
                );
            }
            check_unique_indices(parts.steps.iter().map(|s| Some(s.i)), &steps_loc, &mut errs);
        }
        errs.0.extend(meta_errs.0);
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Trace {
            trace_version: parts.trace_version,
            prompt: parts.prompt,
            final_answer: parts.final_answer,
            steps: parts.steps,
            meta,
        })
    }

    /// The fields of this trace, for building events and test fixtures.
    pub fn into_parts(self) -> TraceParts {
        TraceParts {
            trace_version: self.trace_version,
            prompt: self.prompt,
            final_answer: self.final_answer,
            steps: self.steps,
            meta: self.meta.map(|m| m.as_str().to_owned()),
        }
    }
}

/// Checks that `body` is UTF-8 JSON text; a JSON syntax error is reported like FastAPI does.
pub fn json_text(body: &[u8]) -> Result<&str, ValidationErrors> {
    std::str::from_utf8(body).map_err(|e| {
        let mut errs = ValidationErrors::default();
        errs.push(
            Loc::body(),
            ErrorKind::JsonInvalid,
            format!(
                "JSON decode error: invalid UTF-8 at byte {}",
                e.valid_up_to()
            ),
        );
        errs
    })
}

/// Parses JSON text into an unparsed value, mapping syntax errors to a `json_invalid` error.
pub fn parse_raw(text: &str) -> Result<&RawValue, ValidationErrors> {
    serde_json::from_str::<&RawValue>(text).map_err(|e| {
        let mut errs = ValidationErrors::default();
        errs.push(
            Loc::body(),
            ErrorKind::JsonInvalid,
            format!("JSON decode error: {e}"),
        );
        errs
    })
}

/// The first significant byte of a JSON value: `{`, `[`, `"`, `n`, `t`, `f`, `-` or a digit.
pub(crate) fn first_byte(raw: &RawValue) -> u8 {
    raw.get()
        .bytes()
        .find(|b| !b.is_ascii_whitespace())
        .unwrap_or(b' ')
}

/// A field that distinguishes "absent" (`None`) from "present, possibly null" (`Some`).
#[derive(Default)]
struct Field<'a>(Option<&'a RawValue>);

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <&'a RawValue>::deserialize(deserializer).map(|raw| Field(Some(raw)))
    }
}

#[derive(serde::Deserialize)]
struct RawTrace<'a> {
    #[serde(default, borrow)]
    trace_version: Field<'a>,
    #[serde(default, borrow)]
    prompt: Field<'a>,
    #[serde(default, borrow)]
    final_answer: Field<'a>,
    #[serde(default, borrow)]
    steps: Field<'a>,
    #[serde(default, borrow)]
    meta: Field<'a>,
}

#[derive(serde::Deserialize)]
struct RawStep<'a> {
    #[serde(default, borrow)]
    i: Field<'a>,
    #[serde(default, borrow, rename = "type")]
    kind: Field<'a>,
    #[serde(default, borrow)]
    content: Field<'a>,
}

/// Only data errors reach here (the text was already parsed once): duplicate fields, mostly.
fn data_error_msg(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let text = text
        .split(" at line ")
        .next()
        .unwrap_or(text.as_str())
        .to_owned();
    format!("Value error, {text}")
}

fn missing(loc: &Loc, errs: &mut ValidationErrors) {
    errs.push(loc.clone(), ErrorKind::Missing, "Field required");
}

fn string_field(
    raw: Option<&RawValue>,
    parent: &Loc,
    name: &'static str,
    max: usize,
    errs: &mut ValidationErrors,
) -> Option<String> {
    let loc = parent.child(name);
    let value = typed_string(raw, &loc, errs)?;
    check_str(&value, &loc, max, errs);
    Some(value)
}

fn typed_string(raw: Option<&RawValue>, loc: &Loc, errs: &mut ValidationErrors) -> Option<String> {
    let Some(raw) = raw else {
        missing(loc, errs);
        return None;
    };
    if first_byte(raw) != b'"' {
        errs.push(
            loc.clone(),
            ErrorKind::StringType,
            "Input should be a valid string",
        );
        return None;
    }
    // Syntax was checked when the document was split into raw values, but escapes were not: a
    // lone surrogate (`"\ud800"`) only fails here.
    match serde_json::from_str::<String>(raw.get()) {
        Ok(s) => Some(s),
        Err(e) => {
            errs.push(
                loc.clone(),
                ErrorKind::JsonInvalid,
                format!("JSON decode error: {e}"),
            );
            None
        }
    }
}

/// The length rule (in characters, 1..=max) shared by every string field. Any character is
/// allowed, NUL included: the payload is stored as `json`, which keeps it (see [`crate::pg_text`]).
fn check_str(value: &str, loc: &Loc, max: usize, errs: &mut ValidationErrors) {
    if value.is_empty() {
        errs.push(
            loc.clone(),
            ErrorKind::StringTooShort,
            "String should have at least 1 character",
        );
        return;
    }
    // Byte length bounds the character count from above, so most strings skip the count.
    if value.len() > max && value.chars().count() > max {
        errs.push(
            loc.clone(),
            ErrorKind::StringTooLong,
            format!("String should have at most {max} characters"),
        );
    }
}

/// Returns whether the items are worth checking one by one.
fn check_steps_len(len: usize, loc: &Loc, errs: &mut ValidationErrors) -> bool {
    if len == 0 {
        errs.push(
            loc.clone(),
            ErrorKind::TooShort,
            "List should have at least 1 item after validation, not 0",
        );
        return false;
    }
    if len > STEPS_MAX {
        errs.push(
            loc.clone(),
            ErrorKind::TooLong,
            format!("List should have at most {STEPS_MAX} items after validation, not {len}"),
        );
        return false;
    }
    true
}

fn steps_field(
    raw: Option<&RawValue>,
    parent: &Loc,
    errs: &mut ValidationErrors,
    redact: &mut dyn Redact,
) -> Option<Vec<Step>> {
    let loc = parent.child("steps");
    let Some(raw) = raw else {
        missing(&loc, errs);
        return None;
    };
    if first_byte(raw) != b'[' {
        errs.push(loc, ErrorKind::ListType, "Input should be a valid list");
        return None;
    }
    let items: Vec<&RawValue> = serde_json::from_str(raw.get()).ok()?;
    if !check_steps_len(items.len(), &loc, errs) {
        return None;
    }
    let before = errs.0.len();
    let mut steps = Vec::with_capacity(items.len());
    let mut indices = Vec::with_capacity(items.len());
    for (n, item) in items.iter().enumerate() {
        let step_loc = loc.child(n);
        let (i, step) = step_item(item, &step_loc, errs, redact);
        indices.push(i);
        if let Some(step) = step {
            steps.push(step);
        }
    }
    check_unique_indices(indices.into_iter(), &loc, errs);
    (errs.0.len() == before).then_some(steps)
}

/// Validates one step. The index is returned on its own when it is valid, so that uniqueness is
/// checked even for steps with other problems.
fn step_item(
    raw: &RawValue,
    loc: &Loc,
    errs: &mut ValidationErrors,
    redact: &mut dyn Redact,
) -> (Option<i64>, Option<Step>) {
    if first_byte(raw) != b'{' {
        errs.push(
            loc.clone(),
            ErrorKind::ModelType,
            "Input should be a valid dictionary or instance of Step",
        );
        return (None, None);
    }
    let fields: RawStep<'_> = match serde_json::from_str(raw.get()) {
        Ok(f) => f,
        Err(e) => {
            errs.push(loc.clone(), ErrorKind::ValueError, data_error_msg(&e));
            return (None, None);
        }
    };
    let i = int_field(fields.i.0, &loc.child("i"), errs);
    let kind = string_field(fields.kind.0, loc, "type", STEP_TYPE_MAX_CHARS, errs);
    let content_loc = loc.child("content");
    let content = typed_string(fields.content.0, &content_loc, errs).map(|mut content| {
        redact.redact(TextField::Steps, &mut content);
        check_str(&content, &content_loc, STEP_CONTENT_MAX_CHARS, errs);
        content
    });
    let step = match (i, kind, content) {
        (Some(i), Some(kind), Some(content)) => Some(Step { i, kind, content }),
        _ => None,
    };
    (i, step)
}

fn int_field(raw: Option<&RawValue>, loc: &Loc, errs: &mut ValidationErrors) -> Option<i64> {
    let Some(raw) = raw else {
        missing(loc, errs);
        return None;
    };
    let text = raw.get().trim();
    if !matches!(first_byte(raw), b'-' | b'0'..=b'9') {
        errs.push(
            loc.clone(),
            ErrorKind::IntType,
            "Input should be a valid integer",
        );
        return None;
    }
    let value = match text.parse::<i64>() {
        Ok(v) => v,
        Err(_) => {
            // Seed clients sometimes send integral floats (`2.0`); pydantic accepted them.
            let f: f64 = text.parse().unwrap_or(f64::NAN);
            // A non-zero literal that rounds to 0.0 (1e-400) is a fraction, not the integer 0.
            let mantissa = text.split(['e', 'E']).next().unwrap_or(text);
            let underflow = f == 0.0 && mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b));
            if (f.is_finite() && f.fract() != 0.0) || underflow {
                errs.push(
                    loc.clone(),
                    ErrorKind::IntType,
                    "Input should be a valid integer, got a number with a fractional part",
                );
                return None;
            }
            // 2^63: the first float above i64::MAX.
            if f >= 9_223_372_036_854_775_808.0 {
                errs.push(
                    loc.clone(),
                    ErrorKind::LessThanEqual,
                    format!("Input should be less than or equal to {}", i64::MAX),
                );
                return None;
            }
            if f < -9_223_372_036_854_775_808.0 || !f.is_finite() {
                errs.push(
                    loc.clone(),
                    ErrorKind::GreaterThanEqual,
                    "Input should be greater than or equal to 0",
                );
                return None;
            }
            f as i64
        }
    };
    check_i(value, loc, errs).then_some(value)
}

fn check_i(value: i64, loc: &Loc, errs: &mut ValidationErrors) -> bool {
    if value < 0 {
        errs.push(
            loc.clone(),
            ErrorKind::GreaterThanEqual,
            "Input should be greater than or equal to 0",
        );
        return false;
    }
    true
}

/// `step.i` must be unique; the second and later uses of an index are reported.
fn check_unique_indices(
    indices: impl Iterator<Item = Option<i64>>,
    steps_loc: &Loc,
    errs: &mut ValidationErrors,
) {
    let mut first_seen: HashMap<i64, usize> = HashMap::new();
    for (n, i) in indices.enumerate() {
        let Some(i) = i else { continue };
        if let Some(first) = first_seen.get(&i) {
            errs.push(
                steps_loc.child(n).child("i"),
                ErrorKind::ValueError,
                format!("Value error, duplicate step index {i} (already used by steps[{first}]); step.i must be unique within a trace"),
            );
        } else {
            first_seen.insert(i, n);
        }
    }
}

fn meta_field(raw: Option<&RawValue>, parent: &Loc, errs: &mut ValidationErrors) -> Option<Meta> {
    let raw = raw?;
    meta_is_kept(raw, &parent.child("meta"), errs).then(|| Meta(raw.to_owned()))
}

/// Whether a present `meta` is kept: `null` is no meta; an object is kept when it keeps the
/// rules of [`crate::meta`]; anything else is an error.
fn meta_is_kept(raw: &RawValue, loc: &Loc, errs: &mut ValidationErrors) -> bool {
    match first_byte(raw) {
        b'n' => false,
        b'{' => {
            let before = errs.0.len();
            check_meta(raw.get(), loc, errs);
            errs.0.len() == before
        }
        _ => {
            errs.push(
                loc.clone(),
                ErrorKind::DictType,
                "Input should be a valid dictionary",
            );
            false
        }
    }
}
