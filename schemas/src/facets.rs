//! Metadata filters: the *facets* a trace's `meta` is indexed by, and the facets a filter
//! `meta.<path>=<value>` (or `tag=<t>`) looks for.
//!
//! A facet is one scalar leaf of `meta`: its path (object keys joined by `.`; array elements take
//! their array's path, so `{"tags": ["a", "b"]}` gives `tags` = `a` and `tags` = `b`), a type and
//! the value: `path␟s:text` for strings, `path␟n:<canonical number>` for numbers, `path␟b:true`
//! for booleans (`␟` is U+241F). Numbers are canonical (`17`, `17.0` and `1.7e1` are one facet),
//! exactly, without going through a float. `null` leaves and empty containers give no facet.
//!
//! A filter value matches a JSON string equal to it, and also the number or boolean it spells:
//! `meta.run=17` looks for `run␟s:17` or `run␟n:1.7e1`; `meta.ok=true` for `ok␟s:true` or
//! `ok␟b:true`. `tag=t` is `meta.tags=t`.
//!
//! Bounds, so that one trace's index entry stays small: paths at most [`MAX_PATH_DEPTH`] keys,
//! string values at most [`MAX_VALUE_CHARS`] characters, at most [`MAX_FACETS`] facets per trace
//! (the first in document order). Leaves beyond them are not filterable. Facets are
//! `pg_text`-encoded, so NUL is safe anywhere.

use std::collections::BTreeSet;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::pg_text;

/// Deepest path (object keys) that is indexed.
pub const MAX_PATH_DEPTH: usize = 8;
/// Longest string value that is indexed, in characters.
pub const MAX_VALUE_CHARS: usize = 256;
/// Most facets indexed per trace.
pub const MAX_FACETS: usize = 256;
/// Separates the path from the typed value.
pub const SEPARATOR: char = '\u{241F}';

fn facet(path: &str, kind: char, value: &str) -> String {
    pg_text::encode(&format!("{path}{SEPARATOR}{kind}:{value}")).into_owned()
}

/// The canonical form of a JSON number literal: `[-]d[.ddd]e<exp>` with no redundant zeros, or
/// `0`. Exact for any literal (no float rounding); exponents beyond ±10^18 saturate.
pub fn canonical_number(literal: &str) -> Option<String> {
    let (negative, rest) = match literal.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, literal),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, "0"),
    };
    let exp: i128 = {
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => (-1, d),
            None => (1, exp.strip_prefix('+').unwrap_or(exp)),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digits = digits.trim_start_matches('0');
        let magnitude: i128 = if digits.len() > 18 {
            1_000_000_000_000_000_000
        } else if digits.is_empty() {
            0
        } else {
            digits.parse().ok()?
        };
        sign * magnitude
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, f),
        None => (mantissa, ""),
    };
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let all: String = format!("{int}{frac}");
    let lead = all.len() - all.trim_start_matches('0').len();
    let digits = all.trim_start_matches('0').trim_end_matches('0');
    if digits.is_empty() {
        return Some("0".to_owned());
    }
    // value = 0.<all> * 10^(int.len() + exp); the first significant digit is `lead` places in.
    let sci = int.len() as i128 - lead as i128 - 1 + exp;
    let mut out = String::with_capacity(digits.len() + 8);
    if negative {
        out.push('-');
    }
    out.push_str(&digits[..1]);
    if digits.len() > 1 {
        out.push('.');
        out.push_str(&digits[1..]);
    }
    out.push('e');
    out.push_str(&sci.to_string());
    Some(out)
}

/// Whether `text` is a JSON number literal (the values a filter may "spell").
fn is_json_number(text: &str) -> bool {
    let t = text.strip_prefix('-').unwrap_or(text);
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(int)
        && (int == "0" || !int.starts_with('0'))
        && frac.is_none_or(digits)
        && exp.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)))
}

/// An object's members in document order, values unparsed.
struct Entries<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Entries<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Entries<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, &'a RawValue>()? {
                    out.push(entry);
                }
                Ok(Entries(out))
            }
        }
        deserializer.deserialize_map(V(PhantomData))
    }
}

struct Collector {
    out: BTreeSet<String>,
    seen: usize,
}

impl Collector {
    fn walk(&mut self, raw: &RawValue, path: &mut Vec<String>) {
        if self.seen >= MAX_FACETS {
            return;
        }
        let text = raw.get().trim();
        match text.as_bytes().first() {
            Some(b'{') => {
                if path.len() >= MAX_PATH_DEPTH {
                    return;
                }
                let Ok(Entries(fields)) = serde_json::from_str::<Entries<'_>>(text) else {
                    return;
                };
                for (key, value) in fields {
                    path.push(key);
                    self.walk(value, path);
                    path.pop();
                }
            }
            Some(b'[') => {
                if let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(text) {
                    for item in items {
                        self.walk(item, path);
                    }
                }
            }
            Some(b'"') => {
                let Ok(s) = serde_json::from_str::<String>(text) else {
                    return;
                };
                if s.chars().count() <= MAX_VALUE_CHARS {
                    self.add(path, 's', &s);
                }
            }
            Some(b't') => self.add(path, 'b', "true"),
            Some(b'f') => self.add(path, 'b', "false"),
            Some(b'n') | None => {}
            Some(_) => {
                if let Some(n) = canonical_number(text) {
                    self.add(path, 'n', &n);
                }
            }
        }
    }

    fn add(&mut self, path: &[String], kind: char, value: &str) {
        if path.is_empty() {
            return;
        }
        self.seen += 1;
        self.out.insert(facet(&path.join("."), kind, value));
    }
}

/// The facets of a `meta` object's JSON text (sorted, distinct, `pg_text`-encoded).
pub fn facets(meta_json: &str) -> Vec<String> {
    let Ok(raw) = serde_json::from_str::<&RawValue>(meta_json) else {
        return Vec::new();
    };
    let mut c = Collector {
        out: BTreeSet::new(),
        seen: 0,
    };
    c.walk(raw, &mut Vec::new());
    c.out.into_iter().collect()
}

/// A `meta.<path>` filter's path: keys separated by dots, none empty, at most
/// [`MAX_PATH_DEPTH`].
pub fn parse_path(path: &str) -> Result<Vec<&str>, String> {
    let keys: Vec<&str> = path.split('.').collect();
    if keys.iter().any(|k| k.is_empty()) {
        return Err(format!(
            "meta filter path {path:?} has an empty key; write meta.<key>[.<key>...]=<value>"
        ));
    }
    if keys.len() > MAX_PATH_DEPTH {
        return Err(format!(
            "meta filter path {path:?} is deeper than {MAX_PATH_DEPTH} keys"
        ));
    }
    Ok(keys)
}

/// The facets a filter `meta.<keys>=<value>` matches (any of them): the string, and the number
/// or boolean `value` spells.
pub fn filter_facets(keys: &[&str], value: &str) -> Vec<String> {
    let path = keys.join(".");
    let mut out = vec![facet(&path, 's', value)];
    if value == "true" || value == "false" {
        out.push(facet(&path, 'b', value));
    } else if is_json_number(value) {
        if let Some(n) = canonical_number(value) {
            out.push(facet(&path, 'n', &n));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(facets: Vec<String>) -> Vec<String> {
        facets
            .into_iter()
            .map(|f| pg_text::decode(&f).replace(SEPARATOR, "|"))
            .collect()
    }

    #[test]
    fn numbers_have_one_exact_canonical_form() {
        for (a, b) in [
            ("17", "17.0"),
            ("17", "1.7e1"),
            ("17", "170E-1"),
            ("0.5", "5e-1"),
            ("-0.0", "0"),
            ("0e-99999", "0"),
            ("100", "1e2"),
        ] {
            assert_eq!(canonical_number(a), canonical_number(b), "{a} = {b}");
        }
        assert_eq!(canonical_number("17").unwrap(), "1.7e1");
        assert_eq!(canonical_number("-0.00250").unwrap(), "-2.5e-3");
        assert_eq!(canonical_number("0").unwrap(), "0");
        // Beyond f64 precision, still exact.
        assert_ne!(
            canonical_number("123456789012345678901234567890"),
            canonical_number("123456789012345678901234567891")
        );
        assert_ne!(canonical_number("17"), canonical_number("18"));
        assert_eq!(canonical_number("1e-400").unwrap(), "1e-400");
    }

    #[test]
    fn leaves_become_typed_facets_and_arrays_are_transparent() {
        let f = plain(facets(
            r#"{"run": 17, "ok": true, "model": {"name": "m\u0000", "temp": 0.7}, "tags": ["a", "b", 3], "none": null, "empty": {}}"#,
        ));
        assert_eq!(
            f,
            vec![
                "model.name|s:m\0",
                "model.temp|n:7e-1",
                "ok|b:true",
                "run|n:1.7e1",
                "tags|n:3e0",
                "tags|s:a",
                "tags|s:b",
            ]
        );
        for encoded in facets(r#"{"k": "a\u0000b"}"#) {
            assert!(!encoded.contains('\0'), "pg_text-encoded");
        }
    }

    #[test]
    fn filters_match_the_string_and_what_it_spells() {
        let f = |k: &[&str], v: &str| plain(filter_facets(k, v));
        assert_eq!(f(&["run"], "17"), vec!["run|s:17", "run|n:1.7e1"]);
        assert_eq!(f(&["run"], "17.0"), vec!["run|s:17.0", "run|n:1.7e1"]);
        assert_eq!(f(&["ok"], "true"), vec!["ok|s:true", "ok|b:true"]);
        assert_eq!(f(&["a", "b"], "x"), vec!["a.b|s:x"]);
        assert_eq!(f(&["n"], "017"), vec!["n|s:017"], "not a JSON number");
        // Each matching pair meets in a facet.
        let data = facets(r#"{"run": 17, "ok": "true", "a": {"b": "x"}}"#);
        for (k, v) in [
            (&["run"][..], "17"),
            (&["run"], "1.7e1"),
            (&["ok"], "true"),
            (&["a", "b"], "x"),
        ] {
            assert!(
                filter_facets(k, v).iter().any(|c| data.contains(c)),
                "{k:?}={v}"
            );
        }
        assert!(!filter_facets(&["run"], "18")
            .iter()
            .any(|c| data.contains(c)));
        assert!(parse_path("a..b").is_err());
        assert!(parse_path(&["k"; 9].join(".")).is_err());
    }

    #[test]
    fn bounds_keep_an_index_entry_small() {
        let wide = format!(
            "{{{}}}",
            (0..1000)
                .map(|i| format!("\"k{i}\": {i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(facets(&wide).len(), MAX_FACETS);
        let long = format!(r#"{{"s": "{}"}}"#, "x".repeat(MAX_VALUE_CHARS + 1));
        assert!(facets(&long).is_empty());
        let deep = format!("{}1{}", "{\"a\":".repeat(10), "}".repeat(10));
        assert!(facets(&deep).is_empty(), "beyond {MAX_PATH_DEPTH} keys");
    }
}
