//! Redaction at ingest: rules that replace personal data and secrets in a trace's text *before*
//! it is validated and appended, so they never reach the topic (and a replacement can never push
//! an accepted field past its length limit: the limits are checked on the redacted text).
//!
//! A rule is a built-in detector or a custom regular expression, applied to some of the fields
//! ([`TextField`]): the prompt, the final answer, the steps' content, and the string values of
//! `meta` (keys, numbers and the steps' `type` are left alone). Matches become the rule's
//! replacement, `[REDACTED:<rule name>]` by default. Rules run in their order, each on the text
//! the previous ones left.
//!
//! Built-in detectors, and what they deliberately do not match (`tests/contract/redaction.rs`
//! holds positives and near-misses for each):
//!
//! | detector | matches | not |
//! | --- | --- | --- |
//! | `email` | `name@host.tld` (TLD of 2+ letters) | `user@localhost`, `@handle`, `a@b.c` |
//! | `phone` | `+` and 8–15 digits; or 10–11 digits in 3–4 groups of 2–4 (split by space, `.`, `-`, `()`), the last of 4 | dates, times, IPv4 addresses, decimals, plain digit runs, lists of small numbers |
//! | `credit_card` | 13–19 digits (optionally grouped by spaces or `-`) passing the Luhn check | the same digits failing Luhn |
//! | `secret` | `sk-…` keys (20+ characters after the prefix), AWS access key ids (`AKIA`/`ASIA` + 16), `Bearer <token>` (16+), GitHub (`ghp_`…), Slack (`xox?-`), Google (`AIza`…) keys, PEM private keys | `sk-learn`, `bearer of bad news`, short look-alikes |
//!
//! The rules file (`REDACTION_RULES`, JSON):
//!
//! ```json
//! {"rules": [
//!   {"name": "emails", "detector": "email"},
//!   {"name": "tickets", "pattern": "TICKET-[0-9]{6}", "fields": ["prompt", "meta"], "replacement": "[ticket]"}
//! ]}
//! ```
//!
//! `fields` defaults to all four; `name` is what the 202 answer and the metrics count under.

use std::sync::LazyLock;

use regex::Regex;

/// Where a piece of text sits in a trace, for choosing the rules that apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextField {
    /// `prompt`.
    Prompt,
    /// `final_answer`.
    FinalAnswer,
    /// `steps[].content`.
    Steps,
    /// Every string value inside `meta` (not its keys).
    Meta,
}

impl TextField {
    const ALL: [TextField; 4] = [
        TextField::Prompt,
        TextField::FinalAnswer,
        TextField::Steps,
        TextField::Meta,
    ];

    fn index(self) -> usize {
        self as usize
    }

    fn name(self) -> &'static str {
        match self {
            TextField::Prompt => "prompt",
            TextField::FinalAnswer => "final_answer",
            TextField::Steps => "steps",
            TextField::Meta => "meta",
        }
    }
}

/// What parsing does to a trace's text before validating it.
pub trait Redact {
    /// Whether any rule applies to `field` (lets parsing skip work, e.g. rewriting `meta`).
    fn wants(&self, _field: TextField) -> bool {
        false
    }

    /// Rewrites `text` of `field` in place.
    fn redact(&mut self, _field: TextField, _text: &mut String) {}
}

/// Leaves every text as it is.
pub struct NoRedaction;

impl Redact for NoRedaction {}

/// A built-in detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Detector {
    Email,
    Phone,
    CreditCard,
    Secret,
}

impl Detector {
    fn parse(name: &str) -> Option<Detector> {
        match name {
            "email" => Some(Detector::Email),
            "phone" => Some(Detector::Phone),
            "credit_card" => Some(Detector::CreditCard),
            "secret" => Some(Detector::Secret),
            _ => None,
        }
    }

    fn regex(self) -> &'static Regex {
        static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(r"(?i)\b[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,24}\b")
                .expect("email regex")
        });
        static PHONE: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(r"\+[0-9][0-9 ().-]{6,22}[0-9]\b|\(?\b[0-9][0-9 ().-]{6,22}[0-9]\b")
                .expect("phone regex")
        });
        static CARD: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(r"\b[0-9](?:[ -]?[0-9]){12,18}\b").expect("card regex"));
        static SECRET: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(concat!(
                r"\bsk-(?:proj-|live_|test_|ant-)?[A-Za-z0-9_-]{20,}",
                r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
                r"|(?i:\bbearer)\s+[A-Za-z0-9._~+/-]{16,}=*",
                r"|\bgh[pousr]_[A-Za-z0-9]{30,}\b",
                r"|\bxox[abprs]-[A-Za-z0-9-]{10,}",
                r"|\bAIza[0-9A-Za-z_-]{35}",
                r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
            ))
            .expect("secret regex")
        });
        match self {
            Detector::Email => &EMAIL,
            Detector::Phone => &PHONE,
            Detector::CreditCard => &CARD,
            Detector::Secret => &SECRET,
        }
    }

    /// A cheap necessary condition, checked before the regex: most text has nothing to redact,
    /// and these scans (a byte search, a digit count, a literal-only pattern) cost a fraction of
    /// the full patterns.
    fn may_match(self, text: &str) -> bool {
        static SECRET_PREFIXES: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(r"sk-|AKIA|ASIA|(?i:bearer)|gh[pousr]_|xox[abprs]-|AIza|-----BEGIN")
                .expect("secret prefixes")
        });
        let digits = || text.bytes().filter(u8::is_ascii_digit).count();
        match self {
            Detector::Email => text.as_bytes().contains(&b'@'),
            Detector::Phone => digits() >= 8,
            Detector::CreditCard => digits() >= 13,
            Detector::Secret => SECRET_PREFIXES.is_match(text),
        }
    }

    /// Whether a regex match really is one (checks a regex cannot express).
    fn confirms(self, found: &str) -> bool {
        match self {
            Detector::Phone => is_phone(found),
            Detector::CreditCard => luhn(found),
            Detector::Email | Detector::Secret => true,
        }
    }
}

/// Whether a candidate is a phone number: `+` and 8–15 digits in any grouping; otherwise 10 or 11
/// digits in 3 or 4 groups of 2–4 digits, the last of 4 (`415-555-2671`, `(415) 555 2671`,
/// `020 7946 0958`). So dates, times, IPv4 addresses, decimals, plain digit runs and lists of
/// small numbers are not phones; national formats in pairs (`01 23 45 67 89`) need their `+33`.
fn is_phone(found: &str) -> bool {
    let digits = found.bytes().filter(u8::is_ascii_digit).count();
    if found.starts_with('+') {
        return (8..=15).contains(&digits);
    }
    if !(10..=11).contains(&digits) {
        return false;
    }
    let groups: Vec<&str> = found
        .split(|c: char| !c.is_ascii_digit())
        .filter(|g| !g.is_empty())
        .collect();
    (3..=4).contains(&groups.len())
        && groups.last().is_some_and(|g| g.len() == 4)
        && groups.iter().all(|g| (2..=4).contains(&g.len()))
}

/// The Luhn check over the digits of `found` (13–19 of them).
fn luhn(found: &str) -> bool {
    let digits: Vec<u32> = found.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(n, &d)| {
            if n % 2 == 1 {
                let d2 = d * 2;
                if d2 > 9 {
                    d2 - 9
                } else {
                    d2
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[derive(Debug)]
struct Rule {
    name: String,
    fields: [bool; 4],
    regex: Regex,
    detector: Option<Detector>,
    replacement: String,
}

/// The configured rules (immutable; one [`Redaction`] per request counts the matches).
#[derive(Debug, Default)]
pub struct RedactionRules {
    rules: Vec<Rule>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    rules: Vec<RuleSpec>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: Option<String>,
    detector: Option<String>,
    pattern: Option<String>,
    fields: Option<Vec<String>>,
    replacement: Option<String>,
}

/// The largest compiled custom pattern (bytes): a bound on memory and matching time.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

impl RedactionRules {
    /// Parses a rules file (see the module docs), reporting every problem at once.
    pub fn parse(text: &str) -> Result<RedactionRules, Vec<String>> {
        let file: RulesFile = serde_json::from_str(text).map_err(|e| vec![format!("{e}")])?;
        let mut errors = Vec::new();
        let mut rules = Vec::new();
        for (n, spec) in file.rules.into_iter().enumerate() {
            let what = format!("rule {}", n + 1);
            let Some(name) = spec.name.filter(|s| !s.trim().is_empty()) else {
                errors.push(format!("{what}: needs a name"));
                continue;
            };
            let what = format!("{what} ({name})");
            if name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
            {
                errors.push(format!(
                    "{what}: a name is 1-64 characters of letters, digits, '_', '-' or '.'"
                ));
                continue;
            }
            if rules.iter().any(|r: &Rule| r.name == name) {
                errors.push(format!("{what}: the name is used by an earlier rule"));
                continue;
            }
            let mut fields = [false; 4];
            match spec.fields {
                None => fields = [true; 4],
                Some(list) if list.is_empty() => {
                    errors.push(format!("{what}: fields is empty"));
                    continue;
                }
                Some(list) => {
                    for f in list {
                        match TextField::ALL.iter().find(|t| t.name() == f) {
                            Some(t) => fields[t.index()] = true,
                            None => errors.push(format!(
                                "{what}: unknown field {f:?} (prompt, final_answer, steps, meta)"
                            )),
                        }
                    }
                }
            }
            let (regex, detector) = match (spec.detector, spec.pattern) {
                (Some(d), None) => match Detector::parse(&d) {
                    Some(d) => (d.regex().clone(), Some(d)),
                    None => {
                        errors.push(format!(
                            "{what}: unknown detector {d:?} (email, phone, credit_card, secret)"
                        ));
                        continue;
                    }
                },
                (None, Some(p)) => match regex::RegexBuilder::new(&p)
                    .size_limit(PATTERN_SIZE_LIMIT)
                    .build()
                {
                    Ok(r) if r.is_match("") => {
                        errors.push(format!("{what}: the pattern matches the empty string"));
                        continue;
                    }
                    Ok(r) => (r, None),
                    Err(e) => {
                        errors.push(format!("{what}: the pattern does not compile: {e}"));
                        continue;
                    }
                },
                _ => {
                    errors.push(format!("{what}: give exactly one of detector or pattern"));
                    continue;
                }
            };
            let replacement = spec
                .replacement
                .unwrap_or_else(|| format!("[REDACTED:{name}]"));
            rules.push(Rule {
                name,
                fields,
                regex,
                detector,
                replacement,
            });
        }
        if rules.is_empty() && errors.is_empty() {
            errors.push("no rules: remove REDACTION_RULES to run without redaction".to_owned());
        }
        if errors.is_empty() {
            Ok(RedactionRules { rules })
        } else {
            Err(errors)
        }
    }

    /// Every built-in detector on every field, named after the detector (what
    /// `infra/redaction-rules.example.json` configures).
    pub fn builtin() -> RedactionRules {
        RedactionRules::parse(
            r#"{"rules": [
                {"name": "secret", "detector": "secret"},
                {"name": "credit_card", "detector": "credit_card"},
                {"name": "email", "detector": "email"},
                {"name": "phone", "detector": "phone"}
            ]}"#,
        )
        .expect("built-in rules")
    }

    /// The rule names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.name.as_str())
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// A redaction pass for one request, counting matches per rule.
    pub fn session(&self) -> Redaction<'_> {
        Redaction {
            wants: TextField::ALL.map(|f| self.rules.iter().any(|r| r.fields[f.index()])),
            counts: vec![0; self.rules.len()],
            rules: self,
        }
    }
}

/// One request's redaction: applies the rules and counts what they replaced.
#[derive(Debug)]
pub struct Redaction<'a> {
    rules: &'a RedactionRules,
    wants: [bool; 4],
    counts: Vec<u64>,
}

impl Redaction<'_> {
    /// Replacements per rule name, in rule order (zeros included).
    pub fn counts(&self) -> impl Iterator<Item = (&str, u64)> {
        self.rules.names().zip(self.counts.iter().copied())
    }

    /// Replacements in all.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    fn apply(&mut self, field: TextField, text: &mut String) {
        for (n, rule) in self.rules.rules.iter().enumerate() {
            if !rule.fields[field.index()]
                || !rule.detector.is_none_or(|d| d.may_match(text))
                || !rule.regex.is_match(text)
            {
                continue;
            }
            let mut replaced = 0;
            let out = rule.regex.replace_all(text, |caps: &regex::Captures<'_>| {
                let found = &caps[0];
                if rule.detector.is_none_or(|d| d.confirms(found)) {
                    replaced += 1;
                    rule.replacement.clone()
                } else {
                    found.to_owned()
                }
            });
            if replaced > 0 {
                *text = out.into_owned();
                self.counts[n] += replaced;
            }
        }
    }
}

impl Redact for Redaction<'_> {
    fn wants(&self, field: TextField) -> bool {
        self.wants[field.index()]
    }

    fn redact(&mut self, field: TextField, text: &mut String) {
        if field == TextField::Meta {
            if let Some(rewritten) = map_json_strings(text, |s| {
                let before = self.total();
                self.apply(TextField::Meta, s);
                self.total() != before
            }) {
                *text = rewritten;
            }
        } else {
            self.apply(field, text);
        }
    }
}

/// Rewrites the string *values* of the JSON text `json` with `f` (which says whether it changed
/// the string), copying everything else byte for byte (keys, numbers, spacing, key order).
/// `None` when nothing changed, or when the text is not well-formed enough to rewrite.
pub fn map_json_strings(json: &str, mut f: impl FnMut(&mut String) -> bool) -> Option<String> {
    let bytes = json.as_bytes();
    let mut out = String::new();
    let (mut copied, mut i, mut changed) = (0, 0, false);
    while i < bytes.len() {
        if bytes[i] != b'"' {
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        while i < bytes.len() && bytes[i] != b'"' {
            i += if bytes[i] == b'\\' { 2 } else { 1 };
        }
        if i >= bytes.len() {
            return None;
        }
        let end = i + 1;
        i = end;
        let next = bytes[end..].iter().find(|b| !b.is_ascii_whitespace());
        if next == Some(&b':') {
            continue; // a key
        }
        let Ok(mut value) = serde_json::from_str::<String>(&json[start..end]) else {
            continue; // a bad escape: validation reports it
        };
        if f(&mut value) {
            out.push_str(&json[copied..start]);
            out.push_str(&serde_json::to_string(&value).expect("a string serializes"));
            copied = end;
            changed = true;
        }
    }
    changed.then(|| {
        out.push_str(&json[copied..]);
        out
    })
}
