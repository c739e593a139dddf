//! Messages in the older chat shapes (OpenAI's and Anthropic's: `content` as text or content
//! blocks, `tool_calls`, `tool_call_id`, `reasoning_content`, `thinking`, `tool_use`,
//! `tool_result`) converted to the GenAI semantic conventions' `{"role", "parts"}` messages;
//! messages already in that shape pass through.

use serde_json::{json, Map, Value as Json};

/// One message in the semconv shape; older chat shapes are converted.
pub fn message(v: Json) -> Json {
    let Json::Object(mut m) = v else {
        // A bare string or number: the content of a message of unknown role.
        return json!({"role": "user", "parts": [part_of(v)]});
    };
    if m.get("parts").is_some_and(Json::is_array) {
        return Json::Object(m);
    }
    let mut parts = Vec::new();
    if let Some(r) = m
        .remove("reasoning_content")
        .or_else(|| m.remove("reasoning"))
    {
        if !r.is_null() && r != "" {
            parts.push(json!({"type": "reasoning", "content": r}));
        }
    }
    match m.remove("content") {
        None | Some(Json::Null) => {}
        Some(Json::Array(blocks)) => parts.extend(blocks.into_iter().map(part_of)),
        Some(Json::String(s)) if m.get("role").and_then(Json::as_str) == Some("tool") => {
            let id = m.get("tool_call_id").cloned().unwrap_or(Json::Null);
            parts.push(json!({"type": "tool_call_response", "id": id, "response": s}));
        }
        Some(other) => parts.push(part_of(other)),
    }
    if let Some(Json::Array(calls)) = m.remove("tool_calls") {
        parts.extend(calls.into_iter().map(tool_call));
    }
    let mut out = Map::new();
    out.insert(
        "role".into(),
        m.remove("role")
            .unwrap_or_else(|| Json::String("user".into())),
    );
    out.insert("parts".into(), Json::Array(parts));
    // Whatever else the message carried (name, finish_reason, tool_call_id, ...) stays.
    out.extend(m);
    Json::Object(out)
}

/// A part in the semconv shape, from a semconv part, a content block of the older chat APIs
/// (OpenAI, Anthropic), or a bare value.
pub fn part_of(v: Json) -> Json {
    let Json::Object(mut p) = v else {
        return match v {
            Json::String(s) => json!({"type": "text", "content": s}),
            other => json!({"type": "text", "content": other.to_string()}),
        };
    };
    match p.get("type").and_then(Json::as_str).unwrap_or("") {
        "text" | "input_text" | "output_text" if !p.contains_key("content") => {
            let text = p.remove("text").unwrap_or(Json::Null);
            p.insert("type".into(), "text".into());
            p.insert("content".into(), text);
        }
        "reasoning" if !p.contains_key("content") && p.contains_key("text") => {
            let text = p.remove("text").unwrap_or(Json::Null);
            p.insert("content".into(), text);
        }
        "thinking" => {
            let text = p.remove("thinking").unwrap_or(Json::Null);
            p.insert("type".into(), "reasoning".into());
            p.insert("content".into(), text);
        }
        "tool_use" => {
            let input = p.remove("input").unwrap_or(Json::Null);
            p.insert("type".into(), "tool_call".into());
            p.insert("arguments".into(), input);
        }
        "tool_result" => {
            let content = p.remove("content").unwrap_or(Json::Null);
            let id = p.remove("tool_use_id").unwrap_or(Json::Null);
            p.insert("type".into(), "tool_call_response".into());
            p.insert("id".into(), id);
            p.insert("response".into(), content);
        }
        _ => {}
    }
    Json::Object(p)
}

/// An OpenAI-style `{"id", "type": "function", "function": {"name", "arguments"}}` as a part.
fn tool_call(v: Json) -> Json {
    let Json::Object(mut c) = v else {
        return json!({"type": "tool_call", "arguments": v});
    };
    if c.get("type").and_then(Json::as_str) == Some("tool_call") {
        return Json::Object(c);
    }
    let (name, arguments) = match c.remove("function") {
        Some(Json::Object(mut f)) => (
            f.remove("name").unwrap_or(Json::Null),
            f.remove("arguments").unwrap_or(Json::Null),
        ),
        _ => (
            c.remove("name").unwrap_or(Json::Null),
            c.remove("arguments").unwrap_or(Json::Null),
        ),
    };
    json!({"type": "tool_call", "id": c.remove("id").unwrap_or(Json::Null), "name": name, "arguments": arguments})
}
