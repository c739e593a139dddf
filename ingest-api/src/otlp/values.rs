//! Reading OTLP attributes: lookups by key and the conversion of `AnyValue` to JSON.

use base64::Engine as _;
use serde_json::{Map, Number, Value as Json};

use super::proto::{AnyValue, KeyValue, Value};

/// A list of attributes (a span's, an event's, a resource's) with lookups by key. When a key is
/// repeated (the protocol forbids it, producers do it), the last value wins, as in the SDKs.
#[derive(Clone, Copy)]
pub struct Attrs<'a>(pub &'a [KeyValue]);

impl<'a> Attrs<'a> {
    /// The value of `key`; `None` when absent or sent without a value.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.0
            .iter()
            .rev()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    /// The string value of `key`, if it is a non-empty string.
    pub fn str(&self, key: &str) -> Option<&'a str> {
        match self.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Some(s),
            _ => None,
        }
    }

    /// The value of `key` as an integer: an int, an integral double, or a decimal string.
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.get(key)? {
            Value::Int(i) => Some(*i),
            Value::Double(d) if d.fract() == 0.0 && d.abs() < 9.0e15 => Some(*d as i64),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// The first of `keys` that has an integer value.
    pub fn first_int(&self, keys: &[&str]) -> Option<i64> {
        keys.iter().find_map(|k| self.int(k))
    }

    /// The first of `keys` that has a string value.
    pub fn first_str(&self, keys: &[&str]) -> Option<&'a str> {
        keys.iter().find_map(|k| self.str(k))
    }

    /// The value of `key` as JSON.
    pub fn json(&self, key: &str) -> Option<Json> {
        self.get(key).map(to_json)
    }

    /// Every attribute whose key starts with `prefix`, with the rest of the key, in order.
    pub fn with_prefix<'p>(
        &self,
        prefix: &'p str,
    ) -> impl Iterator<Item = (&'a str, &'a AnyValue)> + use<'a, 'p> {
        self.0.iter().filter_map(move |kv| {
            let rest = kv.key.strip_prefix(prefix)?;
            Some((rest, kv.value.as_ref()?))
        })
    }
}

/// An attribute value as JSON: strings, booleans and numbers as themselves, arrays and key-value
/// lists as arrays and objects (a repeated key: the last wins), bytes as base64, an absent value
/// or a non-finite double as `null`.
pub fn to_json(v: &Value) -> Json {
    match v {
        Value::String(s) => Json::String(s.clone()),
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::Number((*i).into()),
        Value::Double(d) => Number::from_f64(*d).map_or(Json::Null, Json::Number),
        Value::Array(a) => Json::Array(a.values.iter().map(any_to_json).collect()),
        Value::Kvlist(l) => {
            let mut map = Map::new();
            for kv in &l.values {
                map.insert(
                    kv.key.clone(),
                    kv.value.as_ref().map_or(Json::Null, any_to_json),
                );
            }
            Json::Object(map)
        }
        Value::Bytes(b) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
    }
}

/// [`to_json`] of an `AnyValue`, `null` when it holds nothing.
pub fn any_to_json(v: &AnyValue) -> Json {
    v.value.as_ref().map_or(Json::Null, to_json)
}

/// A scalar as text (strings as they are, numbers and booleans spelled), for attributes that
/// producers send with varying types (`llm.request.type`, token counts).
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Int(i) => Some(i.to_string()),
        Value::Double(d) => Some(d.to_string()),
        _ => None,
    }
}

/// Lower-case hex of an id.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_is_lower_case_two_digits_per_byte() {
        assert_eq!(super::hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(super::hex(&[]), "");
    }
}
