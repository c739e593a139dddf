//! The Avro specification's Parsing Canonical Form and its CRC-64-AVRO (Rabin) fingerprint.
//!
//! Single-object encoding frames every event with the fingerprint of its writer schema's Parsing
//! Canonical Form (PCF), so that any reader (fastavro, Java's `BinaryMessageDecoder`, ...) can find
//! the schema by computing the same fingerprint over the same `.avsc`. The form is built here from
//! the schema's JSON text, exactly as the specification's transformation rules say, because
//! apache-avro's `canonical_form` keeps `logicalType` attributes that the specification strips
//! (\[STRIP\] keeps only `type`, `name`, `fields`, `symbols`, `items`, `values` and `size`); events
//! framed with that library's fingerprint stay readable (`events::catalogue::legacy_fingerprint`).
//!
//! Specification: <https://avro.apache.org/docs/1.11.1/specification/#parsing-canonical-form-for-schemas>.

use serde_json::{Map, Value};

/// The eight primitive type names: [PRIMITIVES] reduces `{"type": "string", ...}` to `"string"`.
const PRIMITIVES: [&str; 8] = [
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

/// Why a schema text has no canonical form.
#[derive(Debug, thiserror::Error)]
#[error("not an Avro schema: {0}")]
pub struct CanonicalError(String);

/// The Parsing Canonical Form of the schema in `schema_json`.
pub fn parsing_canonical_form(schema_json: &str) -> Result<String, CanonicalError> {
    let value: Value =
        serde_json::from_str(schema_json).map_err(|e| CanonicalError(e.to_string()))?;
    let mut out = String::with_capacity(schema_json.len());
    write_schema(&value, None, &mut out)?;
    Ok(out)
}

/// The CRC-64-AVRO fingerprint of `bytes`, as the specification defines it (the value; its wire
/// form in single-object encoding is the little-endian bytes).
pub fn crc64_avro(bytes: &[u8]) -> u64 {
    const EMPTY: u64 = 0xc15d_213a_a4d7_a795;
    static TABLE: std::sync::LazyLock<[u64; 256]> = std::sync::LazyLock::new(|| {
        let mut table = [0u64; 256];
        for (i, slot) in table.iter_mut().enumerate() {
            let mut fp = i as u64;
            for _ in 0..8 {
                fp = (fp >> 1) ^ (EMPTY & (fp & 1).wrapping_neg());
            }
            *slot = fp;
        }
        table
    });
    let mut fp = EMPTY;
    for b in bytes {
        fp = (fp >> 8) ^ TABLE[((fp ^ u64::from(*b)) & 0xff) as usize];
    }
    fp
}

/// [FULLNAMES]: a name with a dot is already full; otherwise the namespace in scope prefixes it.
fn fullname(name: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if !name.contains('.') && !ns.is_empty() => format!("{ns}.{name}"),
        _ => name.to_owned(),
    }
}

fn quoted(s: &str, out: &mut String) {
    // [STRINGS]: serde_json escapes only what JSON requires, and Avro names and symbols are
    // ASCII identifiers, so this is the literal text.
    out.push_str(&serde_json::to_string(s).expect("a string serializes"));
}

fn str_attr<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key).and_then(Value::as_str)
}

fn write_schema(
    value: &Value,
    namespace: Option<&str>,
    out: &mut String,
) -> Result<(), CanonicalError> {
    match value {
        Value::String(name) if PRIMITIVES.contains(&name.as_str()) => quoted(name, out),
        Value::String(name) => quoted(&fullname(name, namespace), out),
        Value::Array(branches) => {
            out.push('[');
            for (n, branch) in branches.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                write_schema(branch, namespace, out)?;
            }
            out.push(']');
        }
        Value::Object(map) => write_object(map, namespace, out)?,
        other => return Err(CanonicalError(format!("unexpected {other}"))),
    }
    Ok(())
}

fn write_object(
    map: &Map<String, Value>,
    namespace: Option<&str>,
    out: &mut String,
) -> Result<(), CanonicalError> {
    let ty = match map.get("type") {
        Some(Value::String(t)) => t.as_str(),
        // `{"type": {...}}`: the attributes around a nested schema carry no parsing meaning.
        Some(nested) => return write_schema(nested, namespace, out),
        None => return Err(CanonicalError("an object without \"type\"".into())),
    };
    match ty {
        t if PRIMITIVES.contains(&t) => quoted(t, out),
        "record" | "error" | "enum" | "fixed" => {
            let name = str_attr(map, "name")
                .ok_or_else(|| CanonicalError(format!("a {ty} without a name")))?;
            let own_ns = str_attr(map, "namespace").or(namespace);
            let full = fullname(name, own_ns);
            // Names nested inside take this type's namespace.
            let inner_ns = full.rsplit_once('.').map(|(ns, _)| ns.to_owned());
            out.push_str("{\"name\":");
            quoted(&full, out);
            out.push_str(",\"type\":");
            quoted(ty, out);
            match ty {
                "enum" => {
                    out.push_str(",\"symbols\":[");
                    let symbols = map.get("symbols").and_then(Value::as_array);
                    for (n, s) in symbols.into_iter().flatten().enumerate() {
                        if n > 0 {
                            out.push(',');
                        }
                        quoted(s.as_str().unwrap_or_default(), out);
                    }
                    out.push(']');
                }
                "fixed" => {
                    // [INTEGERS]: no quotes, no leading zeros.
                    let size = match map.get("size") {
                        Some(Value::Number(n)) => n.as_u64(),
                        Some(Value::String(s)) => s.trim().parse().ok(),
                        _ => None,
                    }
                    .ok_or_else(|| CanonicalError("a fixed without a size".into()))?;
                    out.push_str(&format!(",\"size\":{size}"));
                }
                _ => {
                    out.push_str(",\"fields\":[");
                    let fields = map.get("fields").and_then(Value::as_array);
                    for (n, field) in fields.into_iter().flatten().enumerate() {
                        if n > 0 {
                            out.push(',');
                        }
                        let field = field.as_object().ok_or_else(|| {
                            CanonicalError("a field that is not an object".into())
                        })?;
                        out.push_str("{\"name\":");
                        quoted(str_attr(field, "name").unwrap_or_default(), out);
                        out.push_str(",\"type\":");
                        let field_type = field
                            .get("type")
                            .ok_or_else(|| CanonicalError("a field without a type".into()))?;
                        write_schema(field_type, inner_ns.as_deref(), out)?;
                        out.push('}');
                    }
                    out.push(']');
                }
            }
            out.push('}');
        }
        "array" => {
            out.push_str("{\"type\":\"array\",\"items\":");
            let items = map
                .get("items")
                .ok_or_else(|| CanonicalError("an array without items".into()))?;
            write_schema(items, namespace, out)?;
            out.push('}');
        }
        "map" => {
            out.push_str("{\"type\":\"map\",\"values\":");
            let values = map
                .get("values")
                .ok_or_else(|| CanonicalError("a map without values".into()))?;
            write_schema(values, namespace, out)?;
            out.push('}');
        }
        // A reference to a named type, written as {"type": "Name"}.
        name => quoted(&fullname(name, namespace), out),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_logical_types_and_attributes_are_stripped() {
        let pcf = parsing_canonical_form(
            r#"{"type": "record", "name": "R", "namespace": "a.b", "doc": "x", "fields": [
                {"name": "id", "type": {"type": "string", "logicalType": "uuid"}, "doc": "d"},
                {"name": "t", "type": {"type": "long", "logicalType": "timestamp-micros"}},
                {"name": "o", "type": ["null", "string"], "default": null},
                {"name": "xs", "type": {"type": "array", "items": {"type": "record", "name": "S",
                    "fields": [{"name": "i", "type": "long"}]}}},
                {"name": "again", "type": "S"},
                {"name": "e", "type": {"type": "enum", "name": "c.E", "symbols": ["A", "B"]}},
                {"name": "f", "type": {"type": "fixed", "name": "F", "size": "016"}},
                {"name": "m", "type": {"type": "map", "values": {"type": "int"}}}
            ]}"#,
        )
        .unwrap();
        assert_eq!(
            pcf,
            concat!(
                r#"{"name":"a.b.R","type":"record","fields":["#,
                r#"{"name":"id","type":"string"},"#,
                r#"{"name":"t","type":"long"},"#,
                r#"{"name":"o","type":["null","string"]},"#,
                r#"{"name":"xs","type":{"type":"array","items":{"name":"a.b.S","type":"record","fields":[{"name":"i","type":"long"}]}}},"#,
                r#"{"name":"again","type":"a.b.S"},"#,
                r#"{"name":"e","type":{"name":"c.E","type":"enum","symbols":["A","B"]}},"#,
                r#"{"name":"f","type":{"name":"a.b.F","type":"fixed","size":16}},"#,
                r#"{"name":"m","type":{"type":"map","values":"int"}}]}"#
            )
        );
    }

    #[test]
    fn crc64_matches_the_specifications_reference_values() {
        // Java's SchemaNormalization.fingerprint64 of the canonical forms of two primitives, as
        // published in Avro's test data (share/test/data/schema-tests.txt).
        assert_eq!(crc64_avro(br#""int""#) as i64, 8247732601305521295);
        assert_eq!(crc64_avro(br#""null""#) as i64, 7195948357588979594);
        assert_eq!(crc64_avro(b""), 0xc15d_213a_a4d7_a795);
        for (input, canonical, fingerprint) in [
            (
                r#"{"type":"fixed","name":"foo","size":15}"#,
                r#"{"name":"foo","type":"fixed","size":15}"#,
                1756455273707447556i64,
            ),
            (
                r#"{"type":"record","name":"foo","fields":[{"name":"f1","type":"boolean"}]}"#,
                r#"{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"}]}"#,
                7843277075252814651,
            ),
            (r#"{"type":"null"}"#, r#""null""#, 7195948357588979594),
        ] {
            let pcf = parsing_canonical_form(input).unwrap();
            assert_eq!(pcf, canonical);
            assert_eq!(crc64_avro(pcf.as_bytes()) as i64, fingerprint, "{input}");
        }
    }
}
