//! Text search (`q`): how a trace's text is split into index terms, and how a query is.
//!
//! **Semantics.** `q` finds the traces whose prompt, final answer or step contents contain every
//! term of `q`, in any order and any field:
//!
//! - letters and digits of alphabetic scripts (Latin, Cyrillic, Greek, ...) form *words*; case and
//!   accents are ignored (`Café` = `cafe`, `ПРИВЕТ` = `привет`); a query word matches every word
//!   that *starts with* it (`pari` finds `Paris`);
//! - Chinese, Japanese and Korean text has no spaces, so it is indexed by *character pairs*
//!   (bigrams) and single characters: a query of CJK text matches where all its adjacent pairs
//!   occur (`推理` finds `…推理…`; one character finds that character);
//! - everything else (punctuation, symbols, whitespace) only separates terms. Phrases and
//!   quotes have no special meaning.
//!
//! **Bounds.** A trace is indexed by its first [`MAX_TERMS`] distinct terms (fields in the order
//! prompt, final answer, steps); words are cut to [`MAX_WORD_CHARS`] characters. A query holds at
//! most [`MAX_QUERY_TERMS`] terms.
//!
//! The terms go to PostgreSQL as a `tsvector` (indexed with GIN) and the query as a `tsquery`
//! built here, never parsed by PostgreSQL's text-search configurations, so the rules above are
//! the whole story on every database.

use std::collections::BTreeSet;

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Most distinct terms indexed per trace.
pub const MAX_TERMS: usize = 20_000;
/// Longest indexed word, in characters (longer words are cut).
pub const MAX_WORD_CHARS: usize = 64;
/// Most terms in one query.
pub const MAX_QUERY_TERMS: usize = 32;

/// Chinese, Japanese and Korean characters: indexed by pairs, not words.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF   // Hiragana, Katakana
        | 0x3400..=0x4DBF // CJK Extension A
        | 0x4E00..=0x9FFF // CJK Unified Ideographs
        | 0xF900..=0xFAFF // CJK Compatibility Ideographs
        | 0xAC00..=0xD7AF // Hangul syllables
        | 0x1100..=0x11FF // Hangul Jamo
        | 0x3130..=0x318F // Hangul compatibility Jamo
        | 0x31F0..=0x31FF // Katakana extensions
        | 0xFF66..=0xFF9F // half-width Katakana
        | 0x20000..=0x2FA1F // CJK Extensions B-F, compatibility supplement
    )
}

/// A term of a query.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum QueryTerm {
    /// A word: matches index words starting with it.
    Prefix(String),
    /// A CJK character or pair: matches exactly.
    Exact(String),
}

/// Splits text into runs, calling `word` for each alphabetic word (normalised) and `cjk` for each
/// run of CJK characters.
fn runs(text: &str, mut word: impl FnMut(String), mut cjk: impl FnMut(&[char])) {
    let mut w = String::new();
    let mut w_chars = 0;
    let mut c: Vec<char> = Vec::new();
    let flush_word = |w: &mut String, n: &mut usize, word: &mut dyn FnMut(String)| {
        if !w.is_empty() {
            word(std::mem::take(w));
        }
        *n = 0;
    };
    for original in text.chars() {
        if is_cjk(original) {
            // Kept as written: decomposing would split Hangul syllables and voiced kana.
            flush_word(&mut w, &mut w_chars, &mut word);
            c.push(original);
            continue;
        }
        if !c.is_empty() {
            cjk(&c);
            c.clear();
        }
        if original.is_ascii() {
            // The common case, and the same result as below: ASCII lower-cases to ASCII and
            // has no decomposition or combining marks.
            if original.is_ascii_alphanumeric() {
                if w_chars < MAX_WORD_CHARS {
                    w.push(original.to_ascii_lowercase());
                    w_chars += 1;
                }
            } else {
                flush_word(&mut w, &mut w_chars, &mut word);
            }
            continue;
        }
        // Lower-case, then decompose and drop combining marks (accents).
        for ch in original.to_lowercase().nfd() {
            if is_combining_mark(ch) {
                continue;
            }
            if ch.is_alphanumeric() {
                if w_chars < MAX_WORD_CHARS {
                    w.push(ch);
                    w_chars += 1;
                }
            } else {
                flush_word(&mut w, &mut w_chars, &mut word);
            }
        }
    }
    flush_word(&mut w, &mut w_chars, &mut word);
    if !c.is_empty() {
        cjk(&c);
    }
}

/// The index terms of a trace's texts (in field order), distinct, at most [`MAX_TERMS`].
pub fn index_terms<'a>(texts: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    let mut terms = BTreeSet::new();
    for text in texts {
        if terms.len() >= MAX_TERMS {
            break;
        }
        let mut add = |t: String| {
            if terms.len() < MAX_TERMS {
                terms.insert(t);
            }
        };
        let mut words = Vec::new();
        let mut grams = Vec::new();
        runs(
            text,
            |w| words.push(w),
            |run| {
                for (n, ch) in run.iter().enumerate() {
                    grams.push(ch.to_string());
                    if let Some(next) = run.get(n + 1) {
                        grams.push(format!("{ch}{next}"));
                    }
                }
            },
        );
        // Interleave in text order is not needed: the set is what counts. Words first keeps the
        // cap deterministic and words of mixed texts indexed.
        for t in words.into_iter().chain(grams) {
            add(t);
        }
    }
    terms
}

/// The terms of a query; an error when it has none or too many.
pub fn query_terms(q: &str) -> Result<Vec<QueryTerm>, String> {
    let terms = std::cell::RefCell::new(Vec::new());
    runs(
        q,
        |w| terms.borrow_mut().push(QueryTerm::Prefix(w)),
        |run| {
            let mut terms = terms.borrow_mut();
            if run.len() == 1 {
                terms.push(QueryTerm::Exact(run[0].to_string()));
            }
            for pair in run.windows(2) {
                terms.push(QueryTerm::Exact(pair.iter().collect()));
            }
        },
    );
    let mut terms = terms.into_inner();
    let mut seen = BTreeSet::new();
    terms.retain(|t| seen.insert(t.clone()));
    if terms.is_empty() {
        return Err("q has no searchable term (letters, digits or CJK characters)".to_owned());
    }
    if terms.len() > MAX_QUERY_TERMS {
        return Err(format!(
            "q has {} terms; at most {MAX_QUERY_TERMS} are allowed",
            terms.len()
        ));
    }
    Ok(terms)
}

/// Quotes a term for `tsvector`/`tsquery` input. Terms hold only letters and digits, but quotes
/// and backslashes are escaped anyway.
fn quoted(term: &str) -> String {
    let mut out = String::with_capacity(term.len() + 2);
    out.push('\'');
    for c in term.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// The `tsvector` input text of a set of terms (cast with `::tsvector`; no positions).
pub fn tsvector_text(terms: &BTreeSet<String>) -> String {
    terms
        .iter()
        .map(|t| quoted(t))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `tsquery` input text of query terms: all required, words as prefixes.
pub fn tsquery_text(terms: &[QueryTerm]) -> String {
    terms
        .iter()
        .map(|t| match t {
            QueryTerm::Prefix(w) => format!("{}:*", quoted(w)),
            QueryTerm::Exact(g) => quoted(g),
        })
        .collect::<Vec<_>>()
        .join(" & ")
}

/// Whether `terms` (from [`index_terms`]) match a query: the reference the tests compare
/// PostgreSQL's answers with.
pub fn matches(terms: &BTreeSet<String>, query: &[QueryTerm]) -> bool {
    query.iter().all(|q| match q {
        QueryTerm::Exact(g) => terms.contains(g),
        QueryTerm::Prefix(w) => terms
            .range(w.clone()..)
            .next()
            .is_some_and(|t| t.starts_with(w.as_str())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finds(text: &str, q: &str) -> bool {
        matches(&index_terms([text]), &query_terms(q).unwrap())
    }

    #[test]
    fn words_ignore_case_and_accents_and_match_by_prefix() {
        assert!(finds("The answer is Paris.", "paris"));
        assert!(finds("The answer is Paris.", "PARI"));
        assert!(
            !finds("The answer is Paris.", "aris"),
            "prefixes, not substrings"
        );
        assert!(finds("un café crème", "cafe creme"));
        assert!(finds("Crème brûlée", "BRULEE"));
        assert!(finds("Привет, МИР!", "мир привет"));
        assert!(finds("Ελληνικά κείμενα", "ελληνικα"));
        assert!(!finds("one two", "one three"), "every term is required");
        assert!(finds("27 × 19 = 513", "513"));
    }

    #[test]
    fn cjk_text_is_found_by_character_pairs_and_single_characters() {
        let text = "这是一个数学推理问题。答案是五百一十三";
        assert!(finds(text, "推理"), "two characters");
        assert!(finds(text, "数学推理"), "longer runs: every pair");
        assert!(finds(text, "推"), "one character");
        assert!(!finds(text, "理推"), "pairs are ordered");
        assert!(finds("日本語の文章です", "文章"));
        assert!(finds("한국어 문장입니다", "문장"));
        assert!(finds("mixed 推理 text", "推理 mixed"));
    }

    #[test]
    fn queries_without_terms_or_with_too_many_are_refused() {
        assert!(query_terms("  ,.!? ").is_err());
        let many = (0..40)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert!(query_terms(&many).is_err());
        assert_eq!(
            query_terms("a a A").unwrap().len(),
            1,
            "duplicates collapse"
        );
    }

    #[test]
    fn terms_render_as_postgres_input() {
        let terms = index_terms(["Paris 推理"]);
        assert_eq!(tsvector_text(&terms), "'paris' '推' '推理' '理'");
        let q = query_terms("pari 推理").unwrap();
        assert_eq!(tsquery_text(&q), "'pari':* & '推理'");
    }

    #[test]
    fn the_ascii_fast_path_splits_like_the_unicode_rules() {
        // The general rule for one character: lower-case, decompose, drop marks, keep
        // alphanumerics; anything else separates words.
        let reference = |text: &str| -> BTreeSet<String> {
            let mut out = BTreeSet::new();
            let mut w = String::new();
            for ch in text.chars().flat_map(|c| c.to_lowercase().nfd()) {
                if is_combining_mark(ch) {
                    continue;
                }
                if ch.is_alphanumeric() {
                    if w.chars().count() < MAX_WORD_CHARS {
                        w.push(ch);
                    }
                } else if !w.is_empty() {
                    out.insert(std::mem::take(&mut w));
                }
            }
            if !w.is_empty() {
                out.insert(w);
            }
            out
        };
        let text: String = (0u8..128).flat_map(|b| ['x', b as char, 'Y']).collect();
        assert_eq!(index_terms([text.as_str()]), reference(&text));
        let mixed = "Ab9-Café_É x\u{0301}y ZÜRICH";
        assert_eq!(index_terms([mixed]), reference(mixed));
    }

    #[test]
    fn index_terms_are_bounded() {
        let text: String = (0..MAX_TERMS + 100).map(|i| format!("w{i} ")).collect();
        assert_eq!(index_terms([text.as_str()]).len(), MAX_TERMS);
        let long = "x".repeat(500);
        let terms = index_terms([long.as_str()]);
        assert_eq!(terms.iter().next().unwrap().chars().count(), MAX_WORD_CHARS);
    }
}
