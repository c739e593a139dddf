//! How trace strings are kept in PostgreSQL `text` columns of the read models.
//!
//! A trace may hold the NUL character anywhere (the original service stored it, in a `json` column), but a
//! PostgreSQL `text` value cannot. The stored trace keeps every string exactly as sent (the payload
//! is a `json` column, where NUL stays the escape `\u0000`); the columns that read models copy out
//! of it for filtering and listing (`trace_version`, `prompt_preview`) hold [`encode`]d text:
//!
//! - NUL becomes the two characters `␀0` (U+2400 SYMBOL FOR NULL, then the digit zero);
//! - a literal `␀` becomes `␀␀`;
//! - everything else is unchanged, so for ordinary text the column holds the value itself.
//!
//! The mapping is injective, so equality on encoded values is equality on the originals (a
//! `trace_version` filter encodes its value and matches exactly), and [`decode`] restores the
//! original for API answers. Only SQL readers of those columns see the escaped form.

use std::borrow::Cow;

/// The escape character: U+2400 SYMBOL FOR NULL.
pub const ESCAPE: char = '\u{2400}';

/// The text-column form of `value`.
pub fn encode(value: &str) -> Cow<'_, str> {
    if !value.contains(['\0', ESCAPE]) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '\0' => {
                out.push(ESCAPE);
                out.push('0');
            }
            ESCAPE => {
                out.push(ESCAPE);
                out.push(ESCAPE);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The original of an [`encode`]d value. An escape not followed by `0` or `␀` (never produced by
/// `encode`, only by a hand-edited row) is kept as it is.
pub fn decode(stored: &str) -> Cow<'_, str> {
    if !stored.contains(ESCAPE) {
        return Cow::Borrowed(stored);
    }
    let mut out = String::with_capacity(stored.len());
    let mut chars = stored.chars().peekable();
    while let Some(c) = chars.next() {
        if c != ESCAPE {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('0') => {
                chars.next();
                out.push('\0');
            }
            Some(&ESCAPE) => {
                chars.next();
                out.push(ESCAPE);
            }
            _ => out.push(ESCAPE),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_text_is_unchanged_and_borrowed() {
        for s in ["", "1.0", "héllo wörld", "数学推理", "a\\0b"] {
            assert!(matches!(encode(s), Cow::Borrowed(_)), "{s:?}");
            assert!(matches!(decode(s), Cow::Borrowed(_)), "{s:?}");
        }
    }

    #[test]
    fn nul_and_the_escape_round_trip() {
        let cases = [
            ("\0", "␀0"),
            ("a\0b", "a␀0b"),
            ("␀", "␀␀"),
            ("␀0", "␀␀0"),
            ("\0␀\0", "␀0␀␀␀0"),
            ("\0\0", "␀0␀0"),
        ];
        for (original, stored) in cases {
            assert_eq!(encode(original), stored, "{original:?}");
            assert_eq!(decode(stored), original, "{stored:?}");
            assert!(!stored.contains('\0'));
        }
    }

    #[test]
    fn encoding_is_injective_on_a_small_alphabet() {
        // Every string of length <= 4 over {NUL, ␀, '0', 'a'}: distinct inputs, distinct outputs.
        let alphabet = ['\0', ESCAPE, '0', 'a'];
        let mut all = vec![String::new()];
        let mut frontier = vec![String::new()];
        for _ in 0..4 {
            let mut next = Vec::new();
            for s in &frontier {
                for c in alphabet {
                    let mut t = s.clone();
                    t.push(c);
                    next.push(t);
                }
            }
            all.extend(next.iter().cloned());
            frontier = next;
        }
        let mut seen = std::collections::HashMap::new();
        for s in &all {
            let e = encode(s).into_owned();
            assert_eq!(decode(&e), s.as_str());
            if let Some(other) = seen.insert(e.clone(), s.clone()) {
                panic!("{other:?} and {s:?} both encode to {e:?}");
            }
        }
    }
}
