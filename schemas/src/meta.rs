//! Rules for the free-form `meta` object.
//!
//! `meta` is kept as the exact JSON text the producer sent (no float rounding, no key reordering,
//! escapes such as `\u0000` untouched), and the writer stores the payload in a PostgreSQL `json`
//! column, which keeps that text as it is. So any JSON PostgreSQL's `json` type accepts would be
//! storable; the rules here are the few places where we deliberately refuse what the original service
//! accepted, each to protect downstream readers (README, "Deliberate differences"):
//!
//! - nesting deeper than [`META_MAX_DEPTH`] (also bounds the stack of every recursive consumer);
//! - duplicate keys in one object (RFC 8259 leaves their meaning undefined; parsers disagree);
//! - numbers beyond the IEEE-754 double range (`1e400`: common parsers read them as infinity, which
//!   JSON cannot express), and number literals longer than [`META_MAX_NUMBER_CHARS`] characters;
//! - lone surrogate escapes (`"\ud800"`), which are not Unicode text.
//!
//! Numbers that are merely tiny (`1e-400`, `0e-99999`) are accepted and kept verbatim.
//!
//! The scanner is iterative, so a 100,000-level document is refused without recursion.

use std::collections::HashSet;

use crate::error::{ErrorKind, Loc, ValidationErrors};

/// Deepest allowed nesting of objects and arrays inside `meta` (`meta` itself is level 1).
pub const META_MAX_DEPTH: usize = 64;

/// Longest allowed number literal inside `meta`, in characters.
pub const META_MAX_NUMBER_CHARS: usize = 256;

/// Stop scanning after this many problems: the client has enough to fix, and the answer stays small.
const MAX_ERRORS: usize = 10;

/// The keys seen in one object: a list while small (most objects have a handful of keys, and
/// comparing a few strings is cheaper than hashing), a set beyond [`Keys::SMALL`].
#[derive(Default)]
enum Keys {
    #[default]
    Empty,
    Small(Vec<String>),
    Large(HashSet<String>),
}

impl Keys {
    const SMALL: usize = 16;

    /// Adds `k`; false when it was already there.
    fn insert(&mut self, k: &str) -> bool {
        match self {
            Keys::Empty => {
                *self = Keys::Small(vec![k.to_owned()]);
                true
            }
            Keys::Small(list) => {
                if list.iter().any(|seen| seen == k) {
                    return false;
                }
                if list.len() < Keys::SMALL {
                    list.push(k.to_owned());
                } else {
                    let mut set: HashSet<String> = std::mem::take(list).into_iter().collect();
                    set.insert(k.to_owned());
                    *self = Keys::Large(set);
                }
                true
            }
            Keys::Large(set) => set.insert(k.to_owned()),
        }
    }
}

enum Frame {
    Object {
        keys: Keys,
        /// The key whose value is being read; used for error paths.
        key: Option<String>,
        expect_key: bool,
    },
    Array {
        index: usize,
    },
}

/// Checks `text`, which must be syntactically valid JSON, against the `meta` rules. Errors are
/// appended to `errs` with paths under `base`.
pub(crate) fn check_meta(text: &str, base: &Loc, errs: &mut ValidationErrors) {
    let bytes = text.as_bytes();
    let mut stack: Vec<Frame> = Vec::new();
    let mut pos = 0;
    let mut found = 0;

    let path = |stack: &[Frame]| -> Loc {
        let mut loc = base.clone();
        for frame in stack {
            match frame {
                Frame::Object { key: Some(k), .. } => loc = loc.child(k.clone()),
                Frame::Object { key: None, .. } => {}
                Frame::Array { index } => loc = loc.child(*index),
            }
        }
        loc
    };

    while pos < bytes.len() {
        match bytes[pos] {
            b' ' | b'\t' | b'\n' | b'\r' | b':' => pos += 1,
            b'{' | b'[' => {
                if stack.len() >= META_MAX_DEPTH {
                    errs.push(
                        path(&stack),
                        ErrorKind::ValueError,
                        format!(
                            "Value error, meta is nested more than {META_MAX_DEPTH} levels deep"
                        ),
                    );
                    return;
                }
                stack.push(if bytes[pos] == b'{' {
                    Frame::Object {
                        keys: Keys::default(),
                        key: None,
                        expect_key: true,
                    }
                } else {
                    Frame::Array { index: 0 }
                });
                pos += 1;
            }
            b'}' | b']' => {
                stack.pop();
                pos += 1;
            }
            b',' => {
                match stack.last_mut() {
                    Some(Frame::Object { expect_key, .. }) => *expect_key = true,
                    Some(Frame::Array { index }) => *index += 1,
                    None => {}
                }
                pos += 1;
            }
            b'"' => {
                let end = string_end(bytes, pos);
                let raw = &text[pos..end];
                let decoded: std::borrow::Cow<'_, str> = if raw.contains('\\') {
                    // The caller checked the syntax but not the escapes: a lone surrogate
                    // (`"\ud800"`) is refused here, as `jsonb` would refuse it.
                    match serde_json::from_str::<String>(raw) {
                        Ok(s) => std::borrow::Cow::Owned(s),
                        Err(e) => {
                            errs.push(
                                path(&stack),
                                ErrorKind::JsonInvalid,
                                format!("JSON decode error: {e}"),
                            );
                            return;
                        }
                    }
                } else {
                    std::borrow::Cow::Borrowed(&raw[1..raw.len() - 1])
                };
                let is_key = matches!(
                    stack.last(),
                    Some(Frame::Object {
                        expect_key: true,
                        ..
                    })
                );
                if is_key {
                    let k = decoded.into_owned();
                    let mut duplicate = false;
                    if let Some(Frame::Object {
                        keys,
                        key,
                        expect_key,
                    }) = stack.last_mut()
                    {
                        *expect_key = false;
                        duplicate = !keys.insert(&k);
                        *key = Some(k.clone());
                    }
                    if duplicate {
                        found += 1;
                        errs.push(
                            path(&stack),
                            ErrorKind::ValueError,
                            format!("Value error, duplicate key {k:?} in meta"),
                        );
                    }
                }
                pos = end;
            }
            b't' => pos += 4,
            b'f' => pos += 5,
            b'n' => pos += 4,
            _ => {
                let start = pos;
                while pos < bytes.len()
                    && matches!(bytes[pos], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                {
                    pos += 1;
                }
                if pos == start {
                    // Not reachable for valid JSON; never loop forever on anything else.
                    pos += 1;
                    continue;
                }
                if let Some(msg) = number_problem(&text[start..pos]) {
                    found += 1;
                    errs.push(path(&stack), ErrorKind::ValueError, msg);
                }
            }
        }
        if found >= MAX_ERRORS {
            return;
        }
    }
}

/// Whether `text`, JSON written by serde_json, nests objects and arrays deeper than
/// [`META_MAX_DEPTH`] (the object itself is level 1). One pass over the bytes, strings skipped.
pub(crate) fn nested_too_deep(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => i = string_end(bytes, i) - 1,
            b'{' | b'[' => {
                depth += 1;
                if depth > META_MAX_DEPTH {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    false
}

/// Index one past the closing quote of the string starting at `start` (which is a `"`).
fn string_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

fn number_problem(literal: &str) -> Option<String> {
    if literal.len() > META_MAX_NUMBER_CHARS {
        return Some(format!(
            "Value error, number literal longer than {META_MAX_NUMBER_CHARS} characters"
        ));
    }
    let value: f64 = literal.parse().ok()?;
    if !value.is_finite() {
        return Some(format!(
            "Value error, number {literal} is outside the range of a 64-bit float"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Vec<(String, String)> {
        let mut errs = ValidationErrors::default();
        check_meta(text, &Loc::body().child("meta"), &mut errs);
        errs.0
            .into_iter()
            .map(|e| (e.loc.to_string(), e.msg))
            .collect()
    }

    #[test]
    fn accepts_ordinary_objects() {
        assert!(
            check(r#"{"a": 1, "b": [1, 2.5, -3e10, {"c": null}], "d": "x\"y", "e": true}"#)
                .is_empty()
        );
        assert!(check("{}").is_empty());
        assert!(
            check(r#"{"big": 1.7976931348623157e308, "small": 2.2250738585072014e-308}"#)
                .is_empty()
        );
    }

    #[test]
    fn depth_limit_is_exact() {
        let ok = format!(
            "{}{}",
            "{\"a\":".repeat(63),
            "{}".to_owned() + &"}".repeat(63)
        );
        assert!(check(&ok).is_empty(), "64 levels must pass");
        let too_deep = format!(
            "{}{}",
            "{\"a\":".repeat(64),
            "{}".to_owned() + &"}".repeat(64)
        );
        let errs = check(&too_deep);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].1.contains("nested more than 64"), "{errs:?}");
    }

    #[test]
    fn the_depth_scan_skips_strings_and_agrees_with_the_full_check() {
        let nested = |levels: usize, inner: &str| {
            format!(
                "{}{inner}{}",
                "{\"a\":".repeat(levels - 1),
                "}".repeat(levels - 1)
            )
        };
        // Brackets and escaped quotes inside strings are text, not structure.
        let tricky = r#""[[[{{\"]]\\""#;
        for levels in [1, 2, 63, 64, 65, 200] {
            for inner in ["{}", &format!("{{\"s\":{tricky}}}")] {
                let text = nested(levels, inner);
                assert_eq!(
                    nested_too_deep(&text),
                    !check(&text).is_empty(),
                    "{levels} levels, {inner}"
                );
            }
        }
        assert!(!nested_too_deep(&format!(
            r#"{{"s":"{}"}}"#,
            "[".repeat(500)
        )));
        assert!(nested_too_deep(&format!("[{}", "[".repeat(64))));
    }

    #[test]
    fn very_deep_nesting_does_not_recurse() {
        let deep = format!("{{\"x\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        let errs = check(&deep);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].0.starts_with("body.meta.x.0.0"));
    }

    #[test]
    fn duplicate_keys_are_reported_with_their_path() {
        let errs = check(r#"{"a": {"k": 1, "k": 2}}"#);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].0, "body.meta.a.k");
        // An escaped spelling of the same key is the same key.
        let errs = check(r#"{"k": 1, "\u006b": 2}"#);
        assert_eq!(errs.len(), 1, "{errs:?}");
        // In a large object (past the small list), early and late keys alike.
        let keys: Vec<String> = (0..40).map(|i| format!("\"k{i}\": {i}")).collect();
        assert!(check(&format!("{{{}}}", keys.join(","))).is_empty());
        let errs = check(&format!("{{{}, \"k3\": 0, \"k39\": 0}}", keys.join(",")));
        assert_eq!(errs.len(), 2, "{errs:?}");
    }

    #[test]
    fn nul_is_accepted_in_values_and_keys() {
        assert!(check(r#"{"a": "x\u0000y", "a\u0000": ["ok", "\u0000"]}"#).is_empty());
    }

    #[test]
    fn lone_surrogates_are_refused() {
        let errs = check(r#"{"a": ["ok", "\ud800"]}"#);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].0, "body.meta.a.1");
        assert!(
            check(r#"{"a": "\ud83d\ude00"}"#).is_empty(),
            "a pair is fine"
        );
    }

    #[test]
    fn numbers_beyond_double_range_are_refused_tiny_ones_are_kept() {
        assert_eq!(check(r#"{"n": 1e400}"#).len(), 1);
        assert_eq!(check(r#"{"n": -1e400}"#).len(), 1);
        // Beyond what PostgreSQL's numeric holds, but fine for json and for every double parser.
        assert!(check(r#"{"n": 1e-400, "z": 0e-99999, "m": -0.0e-2147483648}"#).is_empty());
        assert!(check(r#"{"n": 0e-400, "z": 0.000}"#).is_empty());
        let long = format!("{{\"n\": 1.{}}}", "0".repeat(300));
        assert_eq!(check(&long).len(), 1);
        // Integers beyond 2^64 are kept verbatim: they fit a double's range.
        assert!(check(r#"{"n": 123456789012345678901234567890}"#).is_empty());
    }

    #[test]
    fn error_count_is_capped() {
        let many: Vec<String> = (0..50).map(|_| "\"k\": 1".to_owned()).collect();
        let errs = check(&format!("{{{}}}", many.join(",")));
        assert_eq!(errs.len(), MAX_ERRORS);
    }
}
