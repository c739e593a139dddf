//! Validation errors in the shape FastAPI (pydantic v2) renders as `422 {"detail":[...]}`.
//!
//! The original service's clients parse `detail[].loc` to highlight fields, so every error carries the full
//! path from the request root, for example `["body","steps",3,"content"]`.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::ser::{SerializeSeq, Serializer};
use serde::Serialize;

/// One segment of an error location: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocPart {
    /// An object key, e.g. `"steps"` (field names are borrowed; only keys taken from the
    /// request, such as meta keys, are allocated).
    Key(Cow<'static, str>),
    /// An array index, e.g. `3`.
    Index(usize),
}

impl Serialize for LocPart {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            LocPart::Key(k) => serializer.serialize_str(k),
            LocPart::Index(i) => serializer.serialize_u64(*i as u64),
        }
    }
}

impl From<&'static str> for LocPart {
    fn from(value: &'static str) -> Self {
        LocPart::Key(Cow::Borrowed(value))
    }
}

impl From<String> for LocPart {
    fn from(value: String) -> Self {
        LocPart::Key(Cow::Owned(value))
    }
}

impl From<usize> for LocPart {
    fn from(value: usize) -> Self {
        LocPart::Index(value)
    }
}

/// A path into the request, rendered as a JSON array.
///
/// Validation builds one for every field it visits, and almost none ends up in an error, so a
/// child is one shared node pointing at its parent (no copy of the path) and the segments are
/// collected only when an error is rendered.
#[derive(Clone, Default)]
pub struct Loc(Option<Arc<LocNode>>);

struct LocNode {
    parent: Loc,
    part: LocPart,
}

impl Loc {
    /// The root of a request body: `["body"]`.
    pub fn body() -> Self {
        Loc::default().child("body")
    }

    /// This path extended by one segment.
    pub fn child(&self, part: impl Into<LocPart>) -> Self {
        Loc(Some(Arc::new(LocNode {
            parent: self.clone(),
            part: part.into(),
        })))
    }

    /// The segments, from the root.
    pub fn parts(&self) -> Vec<&LocPart> {
        let mut parts = Vec::new();
        let mut at = self;
        while let Some(node) = &at.0 {
            parts.push(&node.part);
            at = &node.parent;
        }
        parts.reverse();
        parts
    }
}

impl PartialEq for Loc {
    fn eq(&self, other: &Loc) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for Loc {}

impl fmt::Debug for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.parts()).finish()
    }
}

impl Serialize for Loc {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let parts = self.parts();
        let mut seq = serializer.serialize_seq(Some(parts.len()))?;
        for part in parts {
            seq.serialize_element(part)?;
        }
        seq.end()
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, part) in self.parts().into_iter().enumerate() {
            if n > 0 {
                f.write_str(".")?;
            }
            match part {
                LocPart::Key(k) => f.write_str(k)?,
                LocPart::Index(i) => write!(f, "{i}")?,
            }
        }
        Ok(())
    }
}

/// The machine-readable reason of a validation error (pydantic v2's `type`).
///
/// The string forms are part of the HTTP contract and are also used as the `reason` label of the
/// ingest validation-failure metric, so they never change without a test noticing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The body is not valid JSON (or not UTF-8).
    JsonInvalid,
    /// A required field is absent.
    Missing,
    /// Expected a JSON string.
    StringType,
    /// String shorter than its minimum (in Unicode characters).
    StringTooShort,
    /// String longer than its maximum (in Unicode characters).
    StringTooLong,
    /// Expected a JSON array.
    ListType,
    /// Array with fewer items than allowed.
    TooShort,
    /// Array with more items than allowed.
    TooLong,
    /// Expected an object for a nested model (the request body or a step).
    ModelType,
    /// Expected a JSON integer.
    IntType,
    /// Integer below its minimum.
    GreaterThanEqual,
    /// Integer above its maximum.
    LessThanEqual,
    /// Expected a JSON object (for `meta`).
    DictType,
    /// A rule that is not about a single type or bound (duplicate keys, NUL characters, ...).
    ValueError,
}

impl ErrorKind {
    /// The wire name, as pydantic spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::JsonInvalid => "json_invalid",
            ErrorKind::Missing => "missing",
            ErrorKind::StringType => "string_type",
            ErrorKind::StringTooShort => "string_too_short",
            ErrorKind::StringTooLong => "string_too_long",
            ErrorKind::ListType => "list_type",
            ErrorKind::TooShort => "too_short",
            ErrorKind::TooLong => "too_long",
            ErrorKind::ModelType => "model_type",
            ErrorKind::IntType => "int_type",
            ErrorKind::GreaterThanEqual => "greater_than_equal",
            ErrorKind::LessThanEqual => "less_than_equal",
            ErrorKind::DictType => "dict_type",
            ErrorKind::ValueError => "value_error",
        }
    }

    /// Every kind, for tests and metric pre-registration.
    pub const ALL: [ErrorKind; 14] = [
        ErrorKind::JsonInvalid,
        ErrorKind::Missing,
        ErrorKind::StringType,
        ErrorKind::StringTooShort,
        ErrorKind::StringTooLong,
        ErrorKind::ListType,
        ErrorKind::TooShort,
        ErrorKind::TooLong,
        ErrorKind::ModelType,
        ErrorKind::IntType,
        ErrorKind::GreaterThanEqual,
        ErrorKind::LessThanEqual,
        ErrorKind::DictType,
        ErrorKind::ValueError,
    ];
}

impl Serialize for ErrorKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One FastAPI-style `detail` entry: `{"loc": [...], "msg": "...", "type": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationError {
    /// Where in the request the problem is.
    pub loc: Loc,
    /// A human-readable explanation.
    pub msg: String,
    /// The machine-readable reason.
    #[serde(rename = "type")]
    pub kind: ErrorKind,
}

impl ValidationError {
    /// Builds an error.
    pub fn new(loc: Loc, kind: ErrorKind, msg: impl Into<String>) -> Self {
        ValidationError {
            loc,
            msg: msg.into(),
            kind,
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.loc, self.msg, self.kind.as_str())
    }
}

/// Every problem found in one request, in document order. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl ValidationErrors {
    /// True when no error was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Records an error.
    pub fn push(&mut self, loc: Loc, kind: ErrorKind, msg: impl Into<String>) {
        self.0.push(ValidationError::new(loc, kind, msg));
    }

    /// The errors as a slice.
    pub fn errors(&self) -> &[ValidationError] {
        &self.0
    }

    /// Appends all errors from `other`.
    pub fn extend(&mut self, other: ValidationErrors) {
        self.0.extend(other.0);
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, e) in self.0.iter().enumerate() {
            if n > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_serializes_in_fastapi_shape() {
        let e = ValidationError::new(
            Loc::body().child("steps").child(3).child("content"),
            ErrorKind::StringTooShort,
            "String should have at least 1 character",
        );
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "loc": ["body", "steps", 3, "content"],
                "msg": "String should have at least 1 character",
                "type": "string_too_short"
            })
        );
        assert_eq!(e.loc.to_string(), "body.steps.3.content");
    }
}
