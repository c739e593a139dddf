//! OTLP/JSON (`Content-Type: application/json`) decoded into the protobuf messages of
//! [`super::proto`], following the OTLP specification's JSON mapping:
//!
//! - keys are lowerCamelCase (`resourceSpans`, `traceId`); unknown keys are ignored;
//! - `traceId`, `spanId` and `parentSpanId` are hex (not base64, as the generic protobuf JSON
//!   mapping would have them): anything else is refused with the field's path, saying so;
//! - 64-bit integers (`intValue`, `*TimeUnixNano`) are accepted as strings or numbers;
//! - enums (`kind`, `status.code`) are integers;
//! - an `AnyValue` with no variant (`{}`) or `null` is an absent value, not an error;
//! - `bytesValue` is base64, as in the generic mapping.
//!
//! Errors name the path of the offending field, e.g.
//! `resourceSpans[0].scopeSpans[0].spans[3].traceId`.

use base64::Engine as _;
use serde_json::{Map, Value as Json};

use super::proto::{
    AnyValue, ArrayValue, Event, ExportTraceServiceRequest, InstrumentationScope, KeyValue,
    KeyValueList, Resource, ResourceSpans, ScopeSpans, Span, Status, Value,
};

/// Why a JSON body is not an OTLP request; the message names the field.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JsonError(String);

type Result<T> = std::result::Result<T, JsonError>;

fn err(path: &str, what: impl std::fmt::Display) -> JsonError {
    JsonError(format!("{path}: {what}"))
}

/// Decodes an OTLP/JSON `ExportTraceServiceRequest`.
pub fn decode(body: &[u8]) -> Result<ExportTraceServiceRequest> {
    let root: Json =
        serde_json::from_slice(body).map_err(|e| JsonError(format!("invalid JSON: {e}")))?;
    let root = object(&root, "body")?;
    Ok(ExportTraceServiceRequest {
        resource_spans: list(root, "resourceSpans", "", resource_spans)?,
    })
}

fn object<'a>(v: &'a Json, path: &str) -> Result<&'a Map<String, Json>> {
    v.as_object()
        .ok_or_else(|| err(path, format!("expected an object, got {}", kind(v))))
}

fn kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// `obj[key]` as a list of `item`s; absent or `null` is empty.
fn list<T>(
    obj: &Map<String, Json>,
    key: &str,
    path: &str,
    item: impl Fn(&Json, &str) -> Result<T>,
) -> Result<Vec<T>> {
    let path = child(path, key);
    match obj.get(key) {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| item(v, &format!("{path}[{i}]")))
            .collect(),
        Some(other) => Err(err(
            &path,
            format!("expected an array, got {}", kind(other)),
        )),
    }
}

fn string(obj: &Map<String, Json>, key: &str, path: &str) -> Result<String> {
    match obj.get(key) {
        None | Some(Json::Null) => Ok(String::new()),
        Some(Json::String(s)) => Ok(s.clone()),
        Some(other) => Err(err(
            &child(path, key),
            format!("expected a string, got {}", kind(other)),
        )),
    }
}

/// A 64-bit integer given as a number or a decimal string.
fn int64(v: &Json, path: &str) -> Result<i64> {
    match v {
        Json::Number(n) => n
            .as_i64()
            .ok_or_else(|| err(path, format!("{n} is not a 64-bit integer"))),
        Json::String(s) => s
            .trim()
            .parse()
            .map_err(|_| err(path, format!("{s:?} is not a 64-bit integer"))),
        other => Err(err(
            path,
            format!("expected an integer, got {}", kind(other)),
        )),
    }
}

fn nanos(obj: &Map<String, Json>, key: &str, path: &str) -> Result<u64> {
    match obj.get(key) {
        None | Some(Json::Null) => Ok(0),
        Some(Json::Number(n)) => n.as_u64().ok_or_else(|| {
            err(
                &child(path, key),
                format!("{n} is not an unsigned 64-bit integer"),
            )
        }),
        Some(Json::String(s)) => s.trim().parse().map_err(|_| {
            err(
                &child(path, key),
                format!("{s:?} is not an unsigned 64-bit integer"),
            )
        }),
        Some(other) => Err(err(
            &child(path, key),
            format!("expected an integer, got {}", kind(other)),
        )),
    }
}

fn enum_int(obj: &Map<String, Json>, key: &str, path: &str) -> Result<i32> {
    match obj.get(key) {
        None | Some(Json::Null) => Ok(0),
        Some(v @ Json::Number(_)) => int64(v, &child(path, key))?
            .try_into()
            .map_err(|_| err(&child(path, key), "out of range")),
        Some(other) => Err(err(
            &child(path, key),
            format!(
                "expected an integer (OTLP/JSON sends enums as integers), got {}",
                kind(other)
            ),
        )),
    }
}

/// A hex id of `len` bytes; empty (or absent) is allowed and left empty for the mapping to judge.
fn hex_id(obj: &Map<String, Json>, key: &str, path: &str, len: usize) -> Result<Vec<u8>> {
    let path = child(path, key);
    let text = match obj.get(key) {
        None | Some(Json::Null) => return Ok(Vec::new()),
        Some(Json::String(s)) => s.as_str(),
        Some(other) => {
            return Err(err(
                &path,
                format!("expected a hex string, got {}", kind(other)),
            ))
        }
    };
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let hex_digits = text.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex_digits || text.len() % 2 != 0 {
        let hint = if base64::engine::general_purpose::STANDARD
            .decode(text)
            .is_ok()
        {
            " (it looks like base64; OTLP/JSON ids are hex)"
        } else {
            ""
        };
        return Err(err(
            &path,
            format!("expected {} hex digits, got {text:?}{hint}", len * 2),
        ));
    }
    Ok((0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("checked hex"))
        .collect())
}

fn resource_spans(v: &Json, path: &str) -> Result<ResourceSpans> {
    let obj = object(v, path)?;
    let resource = match obj.get("resource") {
        None | Some(Json::Null) => None,
        Some(r) => {
            let rp = child(path, "resource");
            Some(Resource {
                attributes: list(object(r, &rp)?, "attributes", &rp, key_value)?,
            })
        }
    };
    Ok(ResourceSpans {
        resource,
        scope_spans: list(obj, "scopeSpans", path, scope_spans)?,
    })
}

fn scope_spans(v: &Json, path: &str) -> Result<ScopeSpans> {
    let obj = object(v, path)?;
    let scope = match obj.get("scope") {
        None | Some(Json::Null) => None,
        Some(s) => {
            let sp = child(path, "scope");
            let s = object(s, &sp)?;
            Some(InstrumentationScope {
                name: string(s, "name", &sp)?,
                version: string(s, "version", &sp)?,
            })
        }
    };
    Ok(ScopeSpans {
        scope,
        spans: list(obj, "spans", path, span)?,
    })
}

fn span(v: &Json, path: &str) -> Result<Span> {
    let obj = object(v, path)?;
    let status = match obj.get("status") {
        None | Some(Json::Null) => None,
        Some(s) => {
            let sp = child(path, "status");
            let s = object(s, &sp)?;
            Some(Status {
                message: string(s, "message", &sp)?,
                code: enum_int(s, "code", &sp)?,
            })
        }
    };
    Ok(Span {
        trace_id: hex_id(obj, "traceId", path, 16)?,
        span_id: hex_id(obj, "spanId", path, 8)?,
        parent_span_id: hex_id(obj, "parentSpanId", path, 8)?,
        name: string(obj, "name", path)?,
        kind: enum_int(obj, "kind", path)?,
        start_time_unix_nano: nanos(obj, "startTimeUnixNano", path)?,
        end_time_unix_nano: nanos(obj, "endTimeUnixNano", path)?,
        attributes: list(obj, "attributes", path, key_value)?,
        events: list(obj, "events", path, event)?,
        status,
    })
}

fn event(v: &Json, path: &str) -> Result<Event> {
    let obj = object(v, path)?;
    Ok(Event {
        time_unix_nano: nanos(obj, "timeUnixNano", path)?,
        name: string(obj, "name", path)?,
        attributes: list(obj, "attributes", path, key_value)?,
    })
}

fn key_value(v: &Json, path: &str) -> Result<KeyValue> {
    let obj = object(v, path)?;
    let value = match obj.get("value") {
        None | Some(Json::Null) => None,
        Some(v) => Some(any_value(v, &child(path, "value"))?),
    };
    Ok(KeyValue {
        key: string(obj, "key", path)?,
        value,
    })
}

fn any_value(v: &Json, path: &str) -> Result<AnyValue> {
    let obj = match v {
        Json::Null => return Ok(AnyValue { value: None }),
        other => object(other, path)?,
    };
    // The first variant present wins; `{}` (no variant) is an absent value.
    for (key, v) in obj {
        let vp = child(path, key);
        let value = match (key.as_str(), v) {
            (_, Json::Null) => continue,
            ("stringValue", Json::String(s)) => Value::String(s.clone()),
            ("boolValue", Json::Bool(b)) => Value::Bool(*b),
            ("intValue", v) => Value::Int(int64(v, &vp)?),
            ("doubleValue", Json::Number(n)) => Value::Double(n.as_f64().unwrap_or(f64::NAN)),
            ("doubleValue", Json::String(s)) => Value::Double(match s.as_str() {
                "NaN" => f64::NAN,
                "Infinity" => f64::INFINITY,
                "-Infinity" => f64::NEG_INFINITY,
                other => other
                    .parse()
                    .map_err(|_| err(&vp, format!("{other:?} is not a number")))?,
            }),
            ("arrayValue", Json::Object(a)) => Value::Array(ArrayValue {
                values: list(a, "values", &vp, any_value)?,
            }),
            ("kvlistValue", Json::Object(l)) => Value::Kvlist(KeyValueList {
                values: list(l, "values", &vp, key_value)?,
            }),
            ("bytesValue", Json::String(s)) => Value::Bytes(
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(|e| err(&vp, format!("not base64: {e}")))?,
            ),
            (
                "stringValue" | "boolValue" | "doubleValue" | "arrayValue" | "kvlistValue"
                | "bytesValue",
                other,
            ) => return Err(err(&vp, format!("unexpected {}", kind(other)))),
            _ => continue, // unknown keys are ignored
        };
        return Ok(AnyValue { value: Some(value) });
    }
    Ok(AnyValue { value: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_span(span: &str) -> Result<Span> {
        let body = format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{span}]}}]}}]}}"#);
        decode(body.as_bytes()).map(|r| r.resource_spans[0].scope_spans[0].spans[0].clone())
    }

    #[test]
    fn ids_are_hex_and_base64_is_refused_with_the_path() {
        let s = one_span(
            r#"{"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"eee19b7ec3c1b174"}"#,
        )
        .unwrap();
        assert_eq!(s.trace_id.len(), 16);
        assert_eq!(
            s.span_id,
            vec![0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74]
        );
        let e = one_span(r#"{"traceId":"W47/95gDgQPSabYzgT/GDA=="}"#).unwrap_err();
        assert!(
            e.0.starts_with("resourceSpans[0].scopeSpans[0].spans[0].traceId:")
                && e.0.contains("base64"),
            "{e}"
        );
    }

    #[test]
    fn integers_come_as_strings_or_numbers_and_empty_values_are_absent() {
        let s = one_span(
            r#"{"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":1700000000000000001,
                "kind":3,"unknownField":{"x":1},
                "attributes":[{"key":"a","value":{"intValue":"12"}},{"key":"b","value":{"intValue":7}},
                              {"key":"c","value":{}},{"key":"d"},{"key":"e","value":{"doubleValue":"NaN"}}]}"#,
        )
        .unwrap();
        assert_eq!(s.start_time_unix_nano, 1_700_000_000_000_000_000);
        assert_eq!(s.end_time_unix_nano, 1_700_000_000_000_000_001);
        assert_eq!(s.kind, 3);
        assert_eq!(
            s.attributes[0].value.as_ref().unwrap().value,
            Some(Value::Int(12))
        );
        assert_eq!(
            s.attributes[1].value.as_ref().unwrap().value,
            Some(Value::Int(7))
        );
        assert_eq!(s.attributes[2].value.as_ref().unwrap().value, None);
        assert!(s.attributes[3].value.is_none());
    }

    #[test]
    fn enums_as_strings_and_wrong_types_name_their_field() {
        let e = one_span(r#"{"kind":"SPAN_KIND_CLIENT"}"#).unwrap_err();
        assert!(
            e.0.contains("spans[0].kind") && e.0.contains("integers"),
            "{e}"
        );
        let e = one_span(r#"{"attributes":[{"key":"a","value":{"stringValue":5}}]}"#).unwrap_err();
        assert!(e.0.contains("attributes[0].value.stringValue"), "{e}");
        let e = decode(b"[1]").unwrap_err();
        assert!(e.0.contains("expected an object"), "{e}");
    }
}
