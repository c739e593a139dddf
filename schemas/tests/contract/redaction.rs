//! Redaction at ingest: every built-in detector against positives and near-misses, the rules
//! file's errors, meta rewritten without disturbing anything else, and validation of the
//! redacted text.

use serde_json::{json, Value};
use tunix_schemas::redact::{map_json_strings, RedactionRules};
use tunix_schemas::Trace;

fn rules(detector: &str) -> RedactionRules {
    RedactionRules::parse(&format!(
        r#"{{"rules": [{{"name": "{detector}", "detector": "{detector}"}}]}}"#
    ))
    .unwrap()
}

/// Redacts `text` as a prompt with one detector; returns the result and the count.
fn redact(detector: &str, text: &str) -> (String, u64) {
    let rules = rules(detector);
    let mut session = rules.session();
    let body = json!({"trace_version": "1", "prompt": text, "final_answer": "a",
                      "steps": [{"i": 0, "type": "t", "content": "c"}]});
    let trace = Trace::parse_json_redacted(body.to_string().as_bytes(), &mut session).unwrap();
    (trace.prompt().to_owned(), session.total())
}

fn check(detector: &str, positives: &[&str], near_misses: &[&str]) {
    for p in positives {
        let text = format!("before {p} after");
        let (out, n) = redact(detector, &text);
        assert_eq!(n, 1, "{detector} should match {p:?}: {out}");
        assert_eq!(out, format!("before [REDACTED:{detector}] after"), "{p:?}");
    }
    for m in near_misses {
        let text = format!("before {m} after");
        let (out, n) = redact(detector, &text);
        assert_eq!(
            (out.as_str(), n),
            (text.as_str(), 0),
            "{detector} must not match {m:?}"
        );
    }
}

#[test]
fn email() {
    check(
        "email",
        &[
            "jane.doe@example.com",
            "J.Doe+tag@mail.example.co.uk",
            "x_1@sub-domain.io",
        ],
        &[
            "user@localhost",
            "@handle",
            "a@b.c",
            "email me at home",
            "1@2.3",
        ],
    );
}

#[test]
fn phone() {
    check(
        "phone",
        &[
            "+1 415 555 2671",
            "+44 20 7946 0958",
            "+4915112345678",
            "(415) 555-2671",
            "415-555-2671",
            "415.555.2671",
            "020 7946 0958",
        ],
        &[
            "2026-11-30",
            "2026-11-30 10:20",
            "192.168.100.200",
            "3.14159265358",
            "1234567890",
            "10 20 30 40 50",
            "555-2671",
            "v1.2.3",
            "100 × 9/5 + 32 = 212",
        ],
    );
}

#[test]
fn credit_card() {
    check(
        "credit_card",
        &[
            "4111111111111111",
            "4111 1111 1111 1111",
            "5500-0000-0000-0004",
            "378282246310005",
        ],
        &[
            "4111111111111112",
            "4111 1111 1111 1112",
            "123456789012",
            "12345678901234567890123",
        ],
    );
}

#[test]
fn secret() {
    check(
        "secret",
        &[
            "sk-abcdefghijklmnopqrstuvwxyz012345",
            "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx_yz-0123",
            "AKIAIOSFODNN7EXAMPLE",
            "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc",
            "ghp_0123456789abcdefghijABCDEFGHIJ012345",
            "xoxb-1234567890-abcdefghij",
            "AIzaSyA-0123456789abcdefghijklmnopqrstu",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAK\n-----END RSA PRIVATE KEY-----",
        ],
        &[
            "sk-learn",
            "sk-short-key",
            "AKIA1234",
            "akiaiosfodnn7example",
            "bearer of bad news",
            "ghp_short",
            "-----BEGIN PUBLIC KEY-----",
        ],
    );
}

#[test]
fn rules_apply_to_their_fields_only_and_count_per_rule() {
    let rules = RedactionRules::parse(
        r#"{"rules": [
            {"name": "emails", "detector": "email", "fields": ["prompt", "meta"]},
            {"name": "tickets", "pattern": "TICKET-[0-9]{6}", "fields": ["steps", "final_answer"], "replacement": "[ticket]"}
        ]}"#,
    )
    .unwrap();
    // 1e400 is refused by validation: redaction ran first and left the number alone.
    let text = r#"{"trace_version": "1", "prompt": "a@example.com", "final_answer": "a",
        "steps": [{"i": 0, "type": "t", "content": "c"}], "meta": {"o": "c@example.com", "n": 1e400}}"#;
    let errors = Trace::parse_json_redacted(text.as_bytes(), &mut rules.session()).unwrap_err();
    let errors = format!("{errors:?}");
    assert!(errors.contains("meta"), "{errors}");

    let body = json!({
        "trace_version": "1",
        "prompt": "mail a@example.com about TICKET-123456",
        "final_answer": "done: TICKET-654321, cc b@example.com",
        "steps": [{"i": 0, "type": "a@example.com", "content": "see TICKET-000001 and TICKET-000002"}],
        "meta": {"owner": "c@example.com", "a@example.com": 1, "list": ["d@example.org", 5]}
    });
    let mut session = rules.session();
    let trace = Trace::parse_json_redacted(body.to_string().as_bytes(), &mut session).unwrap();
    assert_eq!(trace.prompt(), "mail [REDACTED:emails] about TICKET-123456");
    assert_eq!(trace.final_answer(), "done: [ticket], cc b@example.com");
    assert_eq!(trace.steps()[0].content, "see [ticket] and [ticket]");
    assert_eq!(
        trace.steps()[0].kind,
        "a@example.com",
        "step types are not redacted"
    );
    let meta: Value = serde_json::from_str(trace.meta().unwrap().as_str()).unwrap();
    assert_eq!(
        meta,
        json!({"owner": "[REDACTED:emails]", "a@example.com": 1, "list": ["[REDACTED:emails]", 5]}),
        "values redacted, keys and numbers kept"
    );
    let counts: Vec<(&str, u64)> = session.counts().collect();
    assert_eq!(counts, [("emails", 3), ("tickets", 3)]);
}

#[test]
fn meta_keeps_its_exact_text_around_the_redacted_values() {
    let meta =
        r#"{ "z": 1.50, "who" :"x@example.com", "esc": "\u00e9\n", "k": ["y@example.com"] }"#;
    let rules = rules("email");
    let mut session = rules.session();
    let out = map_json_strings(meta, |s| {
        use tunix_schemas::redact::Redact;
        let before = s.clone();
        session.redact(tunix_schemas::redact::TextField::Prompt, s);
        *s != before
    })
    .unwrap();
    assert_eq!(
        out,
        r#"{ "z": 1.50, "who" :"[REDACTED:email]", "esc": "\u00e9\n", "k": ["[REDACTED:email]"] }"#
    );
    assert_eq!(map_json_strings(meta, |_| false), None, "unchanged: None");
    assert_eq!(map_json_strings(r#"{"a": "unterminated"#, |_| true), None);
}

#[test]
fn validation_sees_the_redacted_text() {
    // A prompt at the limit whose e-mail becomes a longer replacement is refused at the door,
    // never accepted and then too long.
    let filler = "x".repeat(50_000 - "a@b.co".len() - 1);
    let body = json!({"trace_version": "1", "prompt": format!("{filler} a@b.co"), "final_answer": "a",
                      "steps": [{"i": 0, "type": "t", "content": "c"}]});
    assert!(Trace::parse_json(body.to_string().as_bytes()).is_ok());
    let rules = rules("email");
    let errors =
        Trace::parse_json_redacted(body.to_string().as_bytes(), &mut rules.session()).unwrap_err();
    let text = format!("{errors:?}");
    assert!(
        text.contains("prompt") && text.contains("at most 50000"),
        "{text}"
    );
}

#[test]
fn bad_rules_are_all_reported() {
    let errors = RedactionRules::parse(
        r#"{"rules": [
            {"detector": "email"},
            {"name": "a", "detector": "ssn"},
            {"name": "b", "pattern": "(unclosed"},
            {"name": "c", "pattern": "x*"},
            {"name": "d", "detector": "email", "pattern": "x"},
            {"name": "e", "detector": "email", "fields": ["prompt", "answer"]},
            {"name": "f", "detector": "email", "fields": []},
            {"name": "g", "detector": "email"},
            {"name": "g", "detector": "phone"},
            {"name": "bad name!", "detector": "email"}
        ]}"#,
    )
    .unwrap_err();
    let expected = [
        "rule 1: needs a name",
        "rule 2 (a): unknown detector \"ssn\"",
        "rule 3 (b): the pattern does not compile",
        "rule 4 (c): the pattern matches the empty string",
        "rule 5 (d): give exactly one of detector or pattern",
        "rule 6 (e): unknown field \"answer\"",
        "rule 7 (f): fields is empty",
        "rule 9 (g): the name is used by an earlier rule",
        "rule 10 (bad name!): a name is",
    ];
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
    for (e, want) in errors.iter().zip(expected) {
        assert!(e.starts_with(want), "{e:?} should start with {want:?}");
    }
    assert!(RedactionRules::parse("{\"rules\": []}").unwrap_err()[0].contains("no rules"));
    assert!(RedactionRules::parse("{\"rulez\": []}").is_err());
    assert_eq!(
        RedactionRules::builtin().names().collect::<Vec<_>>(),
        ["secret", "credit_card", "email", "phone"]
    );
}

#[test]
fn the_example_rules_file_parses() {
    let text = std::fs::read_to_string(
        crate::helpers::repo_root().join("infra/redaction-rules.example.json"),
    )
    .unwrap();
    let rules = RedactionRules::parse(&text).unwrap();
    assert_eq!(
        rules.names().collect::<Vec<_>>(),
        ["secret", "credit_card", "email", "phone", "ticket"]
    );
}
