//! A conversation (see [`super::messages`]) rendered as a reasoning trace's prompt, steps and
//! final answer. The rules, which the README's OTLP section repeats:
//!
//! - **prompt**: the system instructions and the input messages up to and including the last
//!   `user` message. A lone user message of text is its text; anything else is rendered as
//!   `role: text` blocks separated by a blank line, non-text parts in brackets
//!   (`[tool_call get_weather] {"city":"Paris"}`, `[tool_result call_1] 22C`, `[image/png]`).
//! - **steps**, in order: what the input holds after the last user message (an agent loop's
//!   earlier tool calls and results, assistant text as `assistant` steps), then the first output
//!   choice's non-text parts. `reasoning` parts are `reasoning` steps; `tool_call` parts are
//!   `tool_call` steps (JSON `{"id","name","arguments"}`); `tool_call_response` parts are
//!   `tool_result` steps (JSON `{"id","response"}`); reasoning with no readable text (redacted
//!   thinking, encrypted content, a bare signature) is a `reasoning.redacted` step saying how much
//!   opaque content it had; other parts are steps of their own type.
//! - A step longer than 20,000 characters is split into consecutive steps at character
//!   boundaries; the continuations have the type `<type>:continued`, so concatenating a step with
//!   the `:continued` steps after it gives the part back whole.
//! - **final_answer**: the text parts of the first output choice, joined by newlines. A turn that
//!   only calls tools answers with its calls, one per line: `tool_call: get_weather({"city":"Paris"})`.
//!   A turn with neither answers `(no answer text; finish_reason: <reason>)`.
//! - A turn with no reasoning, tool or other parts has one step, of type `answer`, holding the
//!   answer (a trace has at least one step); `meta.otel.has_reasoning` tells them apart.

use serde_json::{json, Value as Json};
use tunix_schemas::STEP_CONTENT_MAX_CHARS;

/// A trace's text, before validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// See the module's rules.
    pub prompt: String,
    /// `(type, content)` in order.
    pub steps: Vec<(String, String)>,
    /// See the module's rules.
    pub final_answer: String,
    /// Whether any step came from a reasoning part.
    pub has_reasoning: bool,
}

fn role(m: &Json) -> &str {
    m.get("role").and_then(Json::as_str).unwrap_or("user")
}

fn parts(m: &Json) -> &[Json] {
    m.get("parts")
        .and_then(Json::as_array)
        .map_or(&[], Vec::as_slice)
}

fn part_type(p: &Json) -> &str {
    p.get("type").and_then(Json::as_str).unwrap_or("text")
}

/// A value as text: strings as they are, anything else as JSON.
fn text_of(v: Option<&Json>) -> String {
    match v {
        None | Some(Json::Null) => String::new(),
        Some(Json::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The readable text of a reasoning part, if any.
fn reasoning_text(p: &Json) -> String {
    for key in ["content", "text", "thinking"] {
        let t = text_of(p.get(key));
        if !t.is_empty() {
            return t;
        }
    }
    // OpenAI's reasoning summaries: [{"type": "summary_text", "text": ...}].
    if let Some(Json::Array(items)) = p.get("summary") {
        let texts: Vec<String> = items.iter().map(|i| text_of(i.get("text"))).collect();
        return texts.join("\n");
    }
    String::new()
}

/// How much opaque reasoning a part carries.
fn opaque_chars(p: &Json) -> usize {
    ["encrypted_content", "data", "signature", "redacted_content"]
        .iter()
        .map(|k| text_of(p.get(*k)).chars().count())
        .sum()
}

fn tool_call_json(p: &Json) -> String {
    let args = match p.get("arguments") {
        // Arguments sent as a JSON string are kept as the string they were.
        Some(a) => a.clone(),
        None => Json::Null,
    };
    json!({"id": p.get("id").cloned().unwrap_or(Json::Null), "name": p.get("name").cloned().unwrap_or(Json::Null), "arguments": args})
        .to_string()
}

fn tool_result_json(p: &Json) -> String {
    json!({"id": p.get("id").cloned().unwrap_or(Json::Null), "response": p.get("response").cloned().unwrap_or(Json::Null)})
        .to_string()
}

/// A part as one step `(type, content)`; `None` for a part with nothing in it (an empty text, a
/// reasoning part with neither text nor opaque content), which a step could not hold.
fn step_of(p: &Json) -> Option<(String, String)> {
    let opaque = |n: usize| {
        format!("(opaque reasoning: {n} characters of encrypted or signed content, kept in meta.otel.messages)")
    };
    Some(match part_type(p) {
        "reasoning" | "thinking" => {
            let text = reasoning_text(p);
            match (text.is_empty(), opaque_chars(p)) {
                (false, _) => ("reasoning".into(), text),
                (true, 0) => return None,
                (true, n) => ("reasoning.redacted".into(), opaque(n)),
            }
        }
        "redacted_thinking" | "redacted_reasoning" | "encrypted_reasoning" => {
            ("reasoning.redacted".into(), opaque(opaque_chars(p)))
        }
        "tool_call" | "server_tool_call" => ("tool_call".into(), tool_call_json(p)),
        "tool_call_response" | "server_tool_call_response" => {
            ("tool_result".into(), tool_result_json(p))
        }
        "text" => {
            let text = text_of(p.get("content"));
            if text.is_empty() {
                return None;
            }
            ("assistant".into(), text)
        }
        other => {
            // Room for a `:continued` suffix within a step type's 64 characters.
            let kind: String = other.chars().take(MAX_PART_TYPE_CHARS).collect();
            let kind = if kind.is_empty() {
                "part".to_owned()
            } else {
                kind
            };
            (kind, media_summary(p))
        }
    })
}

/// Longest part type kept as a step type: 64 minus `:continued`.
const MAX_PART_TYPE_CHARS: usize = 54;

/// A media or unknown part in brackets: its MIME type or modality, and where it is.
fn media_summary(p: &Json) -> String {
    let what = p
        .get("mime_type")
        .or_else(|| p.get("modality"))
        .map(|v| text_of(Some(v)))
        .unwrap_or_else(|| part_type(p).to_owned());
    let at = if let Some(u) = p.get("uri") {
        format!(" {}", text_of(Some(u)))
    } else if let Some(f) = p.get("file_id") {
        format!(" file {}", text_of(Some(f)))
    } else if let Some(c) = p.get("content") {
        format!(" ({} characters inline)", text_of(Some(c)).chars().count())
    } else {
        format!(" {p}")
    };
    format!("[{what}{at}]")
}

/// One part as prompt text.
fn prompt_part(p: &Json) -> String {
    match part_type(p) {
        "text" => text_of(p.get("content")),
        "tool_call" | "server_tool_call" => format!(
            "[tool_call {}] {}",
            text_of(p.get("name")),
            text_of(p.get("arguments"))
        ),
        "tool_call_response" | "server_tool_call_response" => format!(
            "[tool_result {}] {}",
            text_of(p.get("id")),
            text_of(p.get("response"))
        ),
        "reasoning" | "thinking" => format!("[reasoning] {}", reasoning_text(p)),
        _ => media_summary(p),
    }
}

fn render_prompt(system: &[Json], input: &[Json]) -> String {
    if system.is_empty() {
        if let [only] = input {
            if role(only) == "user" && parts(only).iter().all(|p| part_type(p) == "text") {
                return parts(only)
                    .iter()
                    .map(prompt_part)
                    .collect::<Vec<_>>()
                    .join("\n");
            }
        }
    }
    let mut blocks = Vec::new();
    if !system.is_empty() {
        let text: Vec<String> = system.iter().map(prompt_part).collect();
        blocks.push(format!("system: {}", text.join("\n")));
    }
    for m in input {
        let text: Vec<String> = parts(m).iter().map(prompt_part).collect();
        blocks.push(format!("{}: {}", role(m), text.join("\n")));
    }
    blocks.join("\n\n")
}

/// Splits `content` into chunks of at most `STEP_CONTENT_MAX_CHARS` characters.
fn push_split(steps: &mut Vec<(String, String)>, kind: String, content: String) {
    if content.chars().count() <= STEP_CONTENT_MAX_CHARS {
        steps.push((kind, content));
        return;
    }
    let chars: Vec<char> = content.chars().collect();
    for (n, chunk) in chars.chunks(STEP_CONTENT_MAX_CHARS).enumerate() {
        let t = if n == 0 {
            kind.clone()
        } else {
            format!("{kind}:continued")
        };
        steps.push((t, chunk.iter().collect()));
    }
}

/// Renders a conversation; `None` when there is nothing to make a trace of (no input or no output).
pub fn render(system: &[Json], input: &[Json], output: &[Json]) -> Result<Rendered, &'static str> {
    if input.is_empty() && system.is_empty() {
        return Err("no input messages");
    }
    let Some(choice) = output.first() else {
        return Err("no output messages");
    };
    let last_user = input.iter().rposition(|m| role(m) == "user");
    let (asked, tail) = match last_user {
        Some(i) => input.split_at(i + 1),
        None => (input, &[][..]),
    };
    let prompt = render_prompt(system, asked);

    let mut steps = Vec::new();
    let mut has_reasoning = false;
    let mut add = |steps: &mut Vec<(String, String)>, p: &Json| {
        let Some((kind, content)) = step_of(p) else {
            return;
        };
        has_reasoning |= kind.starts_with("reasoning");
        push_split(steps, kind, content);
    };
    for m in tail {
        for p in parts(m) {
            if role(m) == "tool" && part_type(p) == "text" {
                let result = json!({"id": m.get("tool_call_id").cloned().unwrap_or(Json::Null), "response": text_of(p.get("content"))});
                push_split(&mut steps, "tool_result".into(), result.to_string());
            } else {
                add(&mut steps, p);
            }
        }
    }
    let mut answer = Vec::new();
    let mut calls = Vec::new();
    for p in parts(choice) {
        match part_type(p) {
            "text" => {
                let text = text_of(p.get("content"));
                if !text.is_empty() {
                    answer.push(text);
                }
            }
            t => {
                if t == "tool_call" {
                    calls.push(format!(
                        "tool_call: {}({})",
                        text_of(p.get("name")),
                        text_of(p.get("arguments"))
                    ));
                }
                add(&mut steps, p);
            }
        }
    }
    let final_answer = if !answer.is_empty() {
        answer.join("\n")
    } else if !calls.is_empty() {
        calls.join("\n")
    } else {
        let reason = choice
            .get("finish_reason")
            .map(|r| text_of(Some(r)))
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "none".into());
        format!("(no answer text; finish_reason: {reason})")
    };
    if steps.is_empty() {
        push_split(&mut steps, "answer".into(), final_answer.clone());
    }
    Ok(Rendered {
        prompt,
        steps,
        final_answer,
        has_reasoning,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: &str, parts: Json) -> Json {
        json!({"role": role, "parts": parts})
    }

    #[test]
    fn reasoning_and_tool_calls_become_steps_and_text_the_answer() {
        let r = render(
            &[json!({"type":"text","content":"Be terse."})],
            &[msg("user", json!([{"type":"text","content":"Weather?"}]))],
            &[msg(
                "assistant",
                json!([{"type":"reasoning","content":"Need a tool."},
                {"type":"tool_call","id":"c1","name":"get_weather","arguments":{"city":"Paris"}}]),
            )],
        )
        .unwrap();
        assert_eq!(r.prompt, "system: Be terse.\n\nuser: Weather?");
        assert_eq!(
            r.steps,
            vec![
                ("reasoning".into(), "Need a tool.".into()),
                (
                    "tool_call".into(),
                    r#"{"arguments":{"city":"Paris"},"id":"c1","name":"get_weather"}"#.into()
                ),
            ]
        );
        assert_eq!(
            r.final_answer,
            r#"tool_call: get_weather({"city":"Paris"})"#
        );
        assert!(r.has_reasoning);
    }

    #[test]
    fn an_agent_loops_history_after_the_last_user_message_is_steps() {
        let r = render(
            &[],
            &[
                msg("user", json!([{"type":"text","content":"Weather?"}])),
                msg(
                    "assistant",
                    json!([{"type":"tool_call","id":"c1","name":"w","arguments":"{}"}]),
                ),
                msg(
                    "tool",
                    json!([{"type":"tool_call_response","id":"c1","response":"22C"}]),
                ),
            ],
            &[msg("assistant", json!([{"type":"text","content":"22C"}]))],
        )
        .unwrap();
        assert_eq!(r.prompt, "Weather?");
        assert_eq!(r.steps[0].0, "tool_call");
        assert_eq!(
            r.steps[1],
            (
                "tool_result".into(),
                r#"{"id":"c1","response":"22C"}"#.into()
            )
        );
        assert_eq!(r.final_answer, "22C");
        assert!(!r.has_reasoning);
    }

    #[test]
    fn long_parts_split_whole_opaque_reasoning_is_typed_and_plain_answers_get_one_step() {
        let long = "é".repeat(STEP_CONTENT_MAX_CHARS * 2 + 5);
        let r = render(
            &[],
            &[msg("user", json!([{"type":"text","content":"q"}]))],
            &[msg(
                "assistant",
                json!([{"type":"reasoning","content":long},
                {"type":"redacted_thinking","data":"abcd"},{"type":"text","content":"a"}]),
            )],
        )
        .unwrap();
        let kinds: Vec<&str> = r.steps.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "reasoning",
                "reasoning:continued",
                "reasoning:continued",
                "reasoning.redacted"
            ]
        );
        let joined: String = r.steps[..3].iter().map(|s| s.1.as_str()).collect();
        assert_eq!(joined, long);
        assert!(r.steps[3].1.contains("4 characters"));

        // Empty parts (an assistant turn's "" beside its tool calls) make no step.
        let r = render(
            &[],
            &[
                msg("user", json!([{"type":"text","content":"q"}])),
                msg("assistant", json!([{"type":"text","content":""},{"type":"tool_call","id":"c","name":"f","arguments":{}}])),
                msg("tool", json!([{"type":"tool_call_response","id":"c","response":"r"}])),
            ],
            &[msg("assistant", json!([{"type":"reasoning","content":""},{"type":"text","content":""},{"type":"text","content":"a"}]))],
        )
        .unwrap();
        let kinds: Vec<&str> = r.steps.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(kinds, ["tool_call", "tool_result"]);
        assert_eq!(r.final_answer, "a");

        let plain = render(
            &[],
            &[msg("user", json!([{"type":"text","content":"q"}]))],
            &[msg("assistant", json!([{"type":"text","content":"a"}]))],
        )
        .unwrap();
        assert_eq!(plain.steps, vec![("answer".into(), "a".into())]);
        assert!(render(&[], &[msg("user", json!([]))], &[]).is_err());
    }
}
