//! Where an inference span's messages are, in each convention, read into one shape: the GenAI
//! semantic conventions' `{"role": ..., "parts": [...], "finish_reason": ...}` messages.
//!
//! Sources, in precedence order. Each of the three sides (system instructions, input, output)
//! comes from the first source that has it:
//!
//! | # | source | system | input | output |
//! | --- | --- | --- | --- | --- |
//! | 1 | span attributes (GenAI semconv) | `gen_ai.system_instructions` | `gen_ai.input.messages` | `gen_ai.output.messages` |
//! | 2 | event `gen_ai.client.inference.operation.details` | the same attributes on the event | | |
//! | 3 | OpenInference attributes | | `llm.input_messages.N.message.*` | `llm.output_messages.N.message.*` |
//! | 4 | Traceloop / OpenLLMetry attributes | | `gen_ai.prompt.N.*` | `gen_ai.completion.N.*` |
//! | 5 | deprecated events | | `gen_ai.{system,user,assistant,tool}.message`, `gen_ai.content.prompt` | `gen_ai.choice`, `gen_ai.content.completion` |
//!
//! Reasoning missing from every source but present in OpenInference's raw response
//! (`output.value`: a chat completion whose message has `reasoning_content`) is added as the first
//! choice's leading `reasoning` part.
//!
//! Messages in the older chat shape (`content` as text or content blocks, `tool_calls`,
//! `tool_call_id`, `reasoning_content`) are converted to parts: text, `reasoning` (also from
//! Anthropic's `thinking`), `tool_call` (also `tool_use`), `tool_call_response` (also
//! `tool_result`). Parts of other types (`redacted_thinking`, media, anything new) are kept as
//! they came. A message attribute whose value is a string that is not JSON is an error: the span
//! is refused with that message, never stored with its content missing.

use serde_json::{json, Map, Value as Json};

use super::chat_shape::{message, part_of};
use super::flattened::{self, Layout};
use super::proto::Event;
use super::values::{to_json, Attrs};

/// The messages of one inference span, in the semconv shape.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Conversation {
    /// System instructions, as parts.
    pub system: Vec<Json>,
    /// Input messages (chat history), oldest first.
    pub input: Vec<Json>,
    /// Output messages: one per choice.
    pub output: Vec<Json>,
}

/// The details event of the current semconv.
pub const DETAILS_EVENT: &str = "gen_ai.client.inference.operation.details";

/// Reads every source, in precedence order.
pub fn read(attrs: Attrs<'_>, events: &[Event]) -> Result<Conversation, String> {
    let mut c = Conversation::default();
    let details = events.iter().find(|e| e.name == DETAILS_EVENT);
    for source in [Some(attrs), details.map(|e| Attrs(&e.attributes))]
        .into_iter()
        .flatten()
    {
        fill(&mut c.system, || {
            semconv(source, "gen_ai.system_instructions")
        })?;
        fill(&mut c.input, || semconv(source, "gen_ai.input.messages"))?;
        fill(&mut c.output, || semconv(source, "gen_ai.output.messages"))?;
    }
    fill(&mut c.input, || {
        flattened::read(attrs, "llm.input_messages.", Layout::OpenInference)
    })?;
    fill(&mut c.output, || {
        flattened::read(attrs, "llm.output_messages.", Layout::OpenInference)
    })?;
    fill(&mut c.input, || {
        flattened::read(attrs, "gen_ai.prompt.", Layout::Traceloop)
    })?;
    fill(&mut c.output, || {
        flattened::read(attrs, "gen_ai.completion.", Layout::Traceloop)
    })?;
    fill(&mut c.input, || deprecated_events(events, Side::Input))?;
    fill(&mut c.output, || deprecated_events(events, Side::Output))?;
    raw_reasoning(attrs, &mut c);
    // OpenInference keeps the finish reason beside the messages, in `llm.finish_reason`.
    if let (Some(Json::Object(first)), Some(reason)) =
        (c.output.first_mut(), attrs.str("llm.finish_reason"))
    {
        first
            .entry("finish_reason")
            .or_insert_with(|| reason.into());
    }
    // System instructions given as messages (role "system") stay in the input, where they were.
    Ok(c)
}

/// Reasoning that instrumentations leave out of their message attributes but keep in the raw
/// response (OpenInference's `output.value`, an OpenAI-compatible chat completion whose message
/// carries `reasoning_content` or `reasoning`, as DeepSeek and vLLM send): added as the first
/// choice's leading `reasoning` part when that choice has none.
fn raw_reasoning(attrs: Attrs<'_>, c: &mut Conversation) {
    let Some(Json::Object(first)) = c.output.first_mut() else {
        return;
    };
    let Some(Json::Array(parts)) = first.get_mut("parts") else {
        return;
    };
    if parts
        .iter()
        .any(|p| p.get("type").and_then(Json::as_str) == Some("reasoning"))
    {
        return;
    }
    let Some(raw) = attrs
        .str("output.value")
        .filter(|v| v.starts_with('{'))
        .and_then(|v| serde_json::from_str::<Json>(v).ok())
    else {
        return;
    };
    let message = &raw["choices"][0]["message"];
    let text = ["reasoning_content", "reasoning"].iter().find_map(|k| {
        message
            .get(*k)
            .and_then(Json::as_str)
            .filter(|t| !t.is_empty())
    });
    if let Some(text) = text {
        parts.insert(0, json!({"type": "reasoning", "content": text}));
    }
}

fn fill(
    side: &mut Vec<Json>,
    read: impl FnOnce() -> Result<Vec<Json>, String>,
) -> Result<(), String> {
    if side.is_empty() {
        *side = read()?;
    }
    Ok(())
}

/// A semconv attribute: a JSON string or a structured value. System instructions are a list of
/// parts; the others a list of messages.
fn semconv(attrs: Attrs<'_>, key: &str) -> Result<Vec<Json>, String> {
    let Some(value) = attrs.json(key) else {
        return Ok(Vec::new());
    };
    let value = parse_if_text(value, key)?;
    let items = match value {
        Json::Array(items) => items,
        Json::Null => Vec::new(),
        other => vec![other],
    };
    if key == "gen_ai.system_instructions" {
        return Ok(items.into_iter().map(part_of).collect());
    }
    Ok(items.into_iter().map(message).collect())
}

/// A message attribute sent as a JSON string is parsed; anything else is taken as it is.
fn parse_if_text(value: Json, key: &str) -> Result<Json, String> {
    match value {
        Json::String(text) => serde_json::from_str(&text)
            .map_err(|e| format!("{key} is not valid JSON ({e}); its content was not stored")),
        other => Ok(other),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Input,
    Output,
}

/// The deprecated per-message events: `gen_ai.{system,user,assistant,tool}.message` (input),
/// `gen_ai.choice` (output), each with the message's fields as attributes (`content`,
/// `tool_calls`, `id`, or the whole body as JSON in `body`/`message`); and the older
/// `gen_ai.content.prompt`/`.completion` events with a JSON list in `gen_ai.prompt`/`.completion`.
fn deprecated_events(events: &[Event], side: Side) -> Result<Vec<Json>, String> {
    let mut out = Vec::new();
    for e in events {
        let attrs = Attrs(&e.attributes);
        let role = match (side, e.name.as_str()) {
            (Side::Input, "gen_ai.system.message") => "system",
            (Side::Input, "gen_ai.user.message") => "user",
            (Side::Input, "gen_ai.assistant.message") => "assistant",
            (Side::Input, "gen_ai.tool.message") => "tool",
            (Side::Output, "gen_ai.choice") => "assistant",
            (Side::Input, "gen_ai.content.prompt")
            | (Side::Output, "gen_ai.content.completion") => {
                let key = if side == Side::Input {
                    "gen_ai.prompt"
                } else {
                    "gen_ai.completion"
                };
                if let Some(v) = attrs.json(key) {
                    match parse_if_text(v, key)? {
                        Json::Array(items) => out.extend(items.into_iter().map(message)),
                        other => out.push(message(other)),
                    }
                }
                continue;
            }
            _ => continue,
        };
        let mut m = Map::new();
        for kv in &e.attributes {
            if let Some(v) = kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                m.insert(kv.key.clone(), to_json(v));
            }
        }
        // The body, when the producer put it in one attribute (`message` for choices).
        for key in ["body", "message", "gen_ai.event.content"] {
            if let Some(body) = m.remove(key) {
                if let Json::Object(b) = parse_if_text(body, key)? {
                    m.extend(b);
                }
            }
        }
        for key in ["tool_calls", "content"] {
            if let Some(Json::String(s)) = m.get(key) {
                if let Ok(v @ (Json::Array(_) | Json::Object(_))) = serde_json::from_str::<Json>(s)
                {
                    m.insert(key.to_owned(), v);
                }
            }
        }
        if role == "tool" {
            if let Some(id) = m.remove("id") {
                m.insert("tool_call_id".into(), id);
            }
        }
        m.entry("role").or_insert_with(|| role.into());
        m.remove("gen_ai.system");
        m.remove("index");
        out.push(message(Json::Object(m)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::proto::{AnyValue, KeyValue, Value};

    fn kv(key: &str, v: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(v) }),
        }
    }
    fn s(key: &str, v: &str) -> KeyValue {
        kv(key, Value::String(v.into()))
    }

    #[test]
    fn semconv_attributes_come_first_and_older_shapes_are_converted() {
        let attrs = vec![
            s(
                "gen_ai.input.messages",
                r#"[{"role":"user","parts":[{"type":"text","content":"hi"}]}]"#,
            ),
            s("llm.input_messages.0.message.role", "user"),
            s(
                "llm.input_messages.0.message.content",
                "ignored: semconv wins",
            ),
            s("llm.output_messages.0.message.role", "assistant"),
            s(
                "llm.output_messages.0.message.contents.0.message_content.type",
                "reasoning",
            ),
            s(
                "llm.output_messages.0.message.contents.0.message_content.text",
                "think",
            ),
            s(
                "llm.output_messages.0.message.contents.1.message_content.type",
                "text",
            ),
            s(
                "llm.output_messages.0.message.contents.1.message_content.text",
                "hello",
            ),
            s(
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.name",
                "f",
            ),
            s(
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments",
                "{}",
            ),
        ];
        let c = read(Attrs(&attrs), &[]).unwrap();
        assert_eq!(
            c.input,
            vec![json!({"role":"user","parts":[{"type":"text","content":"hi"}]})]
        );
        assert_eq!(
            c.output[0]["parts"],
            json!([{"type":"reasoning","content":"think"},{"type":"text","content":"hello"},
                   {"type":"tool_call","id":null,"name":"f","arguments":"{}"}])
        );
    }

    #[test]
    fn invalid_json_in_a_message_attribute_is_an_error_that_names_it() {
        let attrs = vec![s("gen_ai.output.messages", "[{\"role\": ")];
        let e = read(Attrs(&attrs), &[]).unwrap_err();
        assert!(
            e.contains("gen_ai.output.messages is not valid JSON"),
            "{e}"
        );
    }

    #[test]
    fn details_event_and_deprecated_events_are_read() {
        let details = Event {
            time_unix_nano: 0,
            name: DETAILS_EVENT.into(),
            attributes: vec![s(
                "gen_ai.output.messages",
                r#"[{"role":"assistant","parts":[{"type":"text","content":"x"}]}]"#,
            )],
        };
        let user = Event {
            time_unix_nano: 0,
            name: "gen_ai.user.message".into(),
            attributes: vec![s("content", "question")],
        };
        let c = read(Attrs(&[]), &[user, details]).unwrap();
        assert_eq!(c.output[0]["parts"][0]["content"], "x");
        assert_eq!(
            c.input,
            vec![json!({"role":"user","parts":[{"type":"text","content":"question"}]})]
        );
    }
}
