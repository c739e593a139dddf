//! Messages spread over indexed attributes, one attribute per field: OpenInference's
//! `llm.input_messages.N.message.*` / `llm.output_messages.N.message.*` and Traceloop's
//! (OpenLLMetry's) `gen_ai.prompt.N.*` / `gen_ai.completion.N.*`, rebuilt as chat-shaped
//! messages and converted to the semconv shape by [`super::chat_shape`].

use std::collections::BTreeMap;

use serde_json::{json, Map, Value as Json};

use super::chat_shape::message;
use super::proto::AnyValue;
use super::values::{any_to_json, Attrs};

/// Which convention's field names.
#[derive(Clone, Copy, PartialEq)]
pub enum Layout {
    /// `llm.input_messages.N.message.role`, `.message.content`, `.message.contents.M.message_content.{type,text}`,
    /// `.message.tool_calls.K.tool_call.{id,function.name,function.arguments}`, `.message.tool_call_id`.
    OpenInference,
    /// `gen_ai.prompt.N.role`, `.content`, `.tool_calls.K.{id,name,arguments}`, `.tool_call_id`,
    /// `.finish_reason`, `.reasoning`.
    Traceloop,
}

/// Messages spread over indexed attributes, rebuilt as chat-shaped messages and converted.
pub fn read(attrs: Attrs<'_>, prefix: &str, layout: Layout) -> Result<Vec<Json>, String> {
    let mut by_index: BTreeMap<usize, Vec<(&str, &AnyValue)>> = BTreeMap::new();
    for (rest, value) in attrs.with_prefix(prefix) {
        let Some((n, field)) = rest.split_once('.') else {
            continue;
        };
        let Ok(n) = n.parse::<usize>() else { continue };
        let field = match layout {
            Layout::OpenInference => match field.strip_prefix("message.") {
                Some(f) => f,
                None => continue,
            },
            Layout::Traceloop => field,
        };
        by_index.entry(n).or_default().push((field, value));
    }
    let mut out = Vec::with_capacity(by_index.len());
    for fields in by_index.into_values() {
        let mut m = Map::new();
        let mut contents: BTreeMap<usize, Map<String, Json>> = BTreeMap::new();
        let mut calls: BTreeMap<usize, Map<String, Json>> = BTreeMap::new();
        for (field, value) in fields {
            let v = any_to_json(value);
            if let Some(rest) = field.strip_prefix("contents.") {
                // OpenInference: contents.M.message_content.{type,text,image.image.url}
                if let Some((j, key)) = rest.split_once(".message_content.") {
                    if let Ok(j) = j.parse() {
                        contents.entry(j).or_default().insert(key.to_owned(), v);
                    }
                }
            } else if let Some(rest) = field.strip_prefix("tool_calls.") {
                if let Some((k, key)) = rest.split_once('.') {
                    if let Ok(k) = k.parse() {
                        let key = key.strip_prefix("tool_call.").unwrap_or(key);
                        let key = key.strip_prefix("function.").unwrap_or(key);
                        calls.entry(k).or_default().insert(key.to_owned(), v);
                    }
                }
            } else {
                m.insert(field.to_owned(), v);
            }
        }
        if layout == Layout::Traceloop {
            // Traceloop sends Anthropic's content blocks as a JSON string in `content`.
            if let Some(Json::String(s)) = m.get("content") {
                if let Ok(Json::Array(blocks)) = serde_json::from_str::<Json>(s) {
                    if !blocks.is_empty() && blocks.iter().all(|b| b.get("type").is_some()) {
                        m.insert("content".into(), Json::Array(blocks));
                    }
                }
            }
        }
        if !contents.is_empty() {
            let blocks: Vec<Json> = contents
                .into_values()
                .map(|mut c| {
                    if let Some(url) = c.remove("image.image.url") {
                        c.insert("type".into(), "uri".into());
                        c.insert("modality".into(), "image".into());
                        c.insert("uri".into(), url);
                    }
                    Json::Object(c)
                })
                .collect();
            let mut parts: Vec<Json> = match m.remove("content") {
                Some(Json::Null) | None => Vec::new(),
                Some(text) => vec![text],
            };
            parts.extend(blocks);
            m.insert("content".into(), Json::Array(parts));
        }
        if !calls.is_empty() {
            let calls = calls
                .into_values()
                .map(|mut c| {
                    let args = c.remove("arguments").unwrap_or(Json::Null);
                    json!({"type": "tool_call", "id": c.remove("id").unwrap_or(Json::Null),
                           "name": c.remove("name").unwrap_or(Json::Null), "arguments": args})
                })
                .collect();
            m.insert("tool_calls".into(), Json::Array(calls));
        }
        out.push(message(Json::Object(m)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::messages::read as read_all;
    use crate::otlp::proto::{KeyValue, Value};

    fn s(key: &str, v: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(Value::String(v.into())),
            }),
        }
    }

    #[test]
    fn traceloop_and_chat_shapes_become_parts() {
        let attrs = vec![
            s("gen_ai.prompt.0.role", "user"),
            s("gen_ai.prompt.0.content", "q"),
            s("gen_ai.prompt.1.role", "tool"),
            s("gen_ai.prompt.1.content", "22C"),
            s("gen_ai.prompt.1.tool_call_id", "c1"),
            s("gen_ai.completion.0.role", "assistant"),
            s(
                "gen_ai.completion.0.content",
                r#"[{"type":"thinking","thinking":"hmm","signature":"x"},{"type":"text","text":"a"}]"#,
            ),
            s("gen_ai.completion.0.finish_reason", "stop"),
        ];
        let c = read_all(Attrs(&attrs), &[]).unwrap();
        assert_eq!(
            c.input[1]["parts"],
            json!([{"type":"tool_call_response","id":"c1","response":"22C"}])
        );
        assert_eq!(
            c.output[0]["parts"],
            json!([{"type":"reasoning","content":"hmm","signature":"x"},{"type":"text","content":"a"}])
        );
        assert_eq!(c.output[0]["finish_reason"], "stop");
    }
}
