//! Generators of hostile but plausible trace bodies, shared by the validator's fuzz targets and by
//! the storage oracle (every body the validator accepts must be stored by the writer's real
//! statement and read back equal).
//!
//! They aim at the class "JSON the parser accepts that a storage layer may refuse": NUL and other
//! control characters anywhere (also in object keys), escapes of every kind (`\u0000`, surrogate
//! pairs, lone surrogates), number literals with huge or tiny exponents (beyond PostgreSQL's
//! `numeric`), integers beyond 64 bits, deep and wide `meta`, and text in many scripts.

use proptest::prelude::*;

/// Characters that stress storage: NUL, controls, the `pg_text` escape, quotes and backslashes,
/// non-Latin scripts, combining marks, noncharacters and astral code points.
fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => any::<char>(),
        2 => Just('\0'),
        1 => prop::sample::select(vec![
            '\u{1}', '\t', '\n', '\r', '\u{1f}', '\u{7f}', '\u{2400}', '"', '\\', '/', 'é', 'ß',
            'Ж', '数', '学', 'の', '\u{301}', '\u{200b}', '\u{feff}', '\u{fffd}', '\u{fffe}',
            '\u{ffff}', '😀', '\u{10ffff}',
        ]),
        3 => prop::char::range('a', 'z'),
    ]
}

/// A string of 1..`max` tricky characters.
pub fn tricky_text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(tricky_char(), 1..max.max(2)).prop_map(|v| v.into_iter().collect())
}

/// A JSON string literal for `s`, sometimes with every non-ASCII character written as `\u`
/// escapes (surrogate pairs for astral ones), as other JSON encoders do.
fn string_literal(s: String, escape_all: bool) -> String {
    if !escape_all {
        return serde_json::to_string(&s).expect("strings serialize");
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

/// A JSON number literal: ordinary values and the edges (exponents far beyond PostgreSQL's
/// `numeric`, tiny values that round to zero, integers beyond 64 bits, negative zero).
pub fn number_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| f.to_string()),
        (0u8..10, -99_999i64..99_999).prop_map(|(d, e)| format!("{d}e{e}")),
        (0u8..10, 0u32..99_999_999).prop_map(|(d, e)| format!("{d}.5e-{e}")),
        Just("0e-99999".to_owned()),
        Just("-0.0".to_owned()),
        Just("1e-400".to_owned()),
        Just("123456789012345678901234567890".to_owned()),
        Just("1.7976931348623157e308".to_owned()),
        Just("1e400".to_owned()),
        Just("1E+2".to_owned()),
    ]
}

/// A JSON value as text: scalars, tricky strings, arrays and objects nested up to `depth`.
pub fn json_value(depth: u32) -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        number_literal(),
        (tricky_text(12), any::<bool>()).prop_map(|(s, e)| string_literal(s, e)),
        Just("\"\\ud800\"".to_owned()), // a lone surrogate: refused
    ];
    leaf.prop_recursive(depth, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(((tricky_text(6), any::<bool>()), inner), 0..5).prop_map(
                |fields| {
                    let fields: Vec<String> = fields
                        .into_iter()
                        .map(|((k, e), v)| format!("{}:{v}", string_literal(k, e)))
                        .collect();
                    format!("{{{}}}", fields.join(","))
                }
            ),
        ]
    })
}

/// A whole trace body as JSON text. Most are valid; some break a rule (an empty string, a lone
/// surrogate, a number beyond double range, a duplicate key), so the validator's "accept" side is
/// exercised at its edges.
pub fn trace_body() -> impl Strategy<Value = String> {
    let step = (
        prop_oneof![
            4 => (0i64..1_000_000).prop_map(|i| i.to_string()),
            1 => Just("9223372036854775807".to_owned()),
            1 => Just("2.0".to_owned()),
        ],
        (tricky_text(8), any::<bool>()),
        (tricky_text(40), any::<bool>()),
    );
    (
        (tricky_text(10), any::<bool>()),
        (tricky_text(60), any::<bool>()),
        (tricky_text(30), any::<bool>()),
        prop::collection::vec(step, 1..5),
        prop::option::of(json_value(4)),
    )
        .prop_map(|(version, prompt, answer, steps, meta)| {
            let steps: Vec<String> = steps
                .into_iter()
                .enumerate()
                .map(|(n, (i, kind, content))| {
                    // Distinct indices most of the time: n is mixed in.
                    let i = if i.contains('.') || i.len() > 10 {
                        i
                    } else {
                        (i.parse::<i64>().unwrap_or(0) * 8 + n as i64).to_string()
                    };
                    format!(
                        r#"{{"i":{i},"type":{},"content":{}}}"#,
                        string_literal(kind.0, kind.1),
                        string_literal(content.0, content.1)
                    )
                })
                .collect();
            let meta = meta.map_or(String::new(), |m| {
                // meta must be an object: wrap whatever was generated.
                format!(r#","meta":{{"m":{m}}}"#)
            });
            format!(
                r#"{{"trace_version":{},"prompt":{},"final_answer":{},"steps":[{}]{meta}}}"#,
                string_literal(version.0, version.1),
                string_literal(prompt.0, prompt.1),
                string_literal(answer.0, answer.1),
                steps.join(",")
            )
        })
}
