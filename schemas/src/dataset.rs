//! Datasets: frozen selections of traces, and the rows they export.
//!
//! Pure rules, no I/O: what a dataset's name and version may hold, its definition in canonical
//! form (two requests define the same dataset exactly when their canonical forms are equal), the
//! train/eval split, the membership digest, and the row of each export format.
//!
//! **Split.** With `split = {eval_fraction, seed}`, the eval members are the `round(eval_fraction
//! × n)` members with the smallest `sha256("<seed>:<trace id>")`, so the assignment depends on
//! neither the order of the members nor the machine.
//!
//! **Metadata in exports.** Each row's `metadata` holds the fixed keys of its format
//! (`created_at`, `trace_version`, and `format` or `source_trace_id`) and then the trace's `meta`
//! keys in sorted order. A `meta` key equal to a fixed key never overwrites it (the original
//! service let `meta` win): it is kept as `meta.<key>` instead.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{ErrorKind, Loc, ValidationErrors};

/// Longest dataset name, in characters.
pub const NAME_MAX_CHARS: usize = 64;
/// Longest dataset version, in characters.
pub const VERSION_MAX_CHARS: usize = 32;
/// Most members written in one `DatasetMembers` event.
pub const CHUNK_MEMBERS: usize = 2_000;

/// Namespace of the deterministic ids of `training_example` rows.
const TRAINING_EXAMPLE_NAMESPACE: Uuid = Uuid::from_u128(0x8c1f_3f0e_5d6a_4c52_9a7e_2b1d_77e4_a9c3);

fn name_chars_ok(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Checks a dataset's name (1–64 of `A-Za-z0-9._-`) and version (1–32, the same characters).
pub fn check_name_version(name: &str, version: &str) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    for (field, value, max) in [
        ("name", name, NAME_MAX_CHARS),
        ("version", version, VERSION_MAX_CHARS),
    ] {
        let n = value.chars().count();
        if n == 0 || n > max || !name_chars_ok(value) {
            errors.push(
                Loc::body().child(field),
                ErrorKind::ValueError,
                format!("{field} must be 1-{max} characters of letters, digits, '.', '_' and '-'"),
            );
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The original service's identifier of a dataset: `<name>-<version>`.
pub fn dataset_key_text(name: &str, version: &str) -> String {
    format!("{name}-{version}")
}

/// How members are chosen among the traces that match the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// Newest first (`created_at`, then id, descending).
    Latest,
    /// In the order of `md5("<seed>:<trace id>")`: a seeded shuffle.
    Random,
}

/// A deterministic train/eval split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Split {
    /// Fraction of the members in the eval split, 0..=1.
    pub eval_fraction: f64,
    /// The seed of the assignment.
    pub seed: i64,
}

/// What defines a dataset's membership; its canonical JSON is what `DatasetCreated` carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    /// List filter parameters (`GET /api/traces` names) and their values, sorted.
    pub filter: BTreeMap<String, Vec<String>>,
    /// How members are chosen.
    pub selection: Selection,
    /// The seed of a random selection.
    pub seed: Option<i64>,
    /// At most this many members (all matches when absent).
    pub limit: Option<i64>,
    /// The split, if any.
    pub split: Option<Split>,
}

impl Definition {
    /// The canonical JSON text (fields and filter keys in a fixed order).
    pub fn canonical(&self) -> String {
        serde_json::to_string(self).expect("a definition serializes")
    }
}

/// `sha256("<seed>:<trace id>")`, the split's rank key.
fn split_rank(seed: i64, id: &Uuid) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(format!("{seed}:{id}").as_bytes());
    h.finalize().into()
}

/// Number of eval members of `n` for `fraction`: `round(fraction × n)`, half away from zero.
pub fn eval_count(n: usize, fraction: f64) -> usize {
    ((fraction * n as f64).round() as usize).min(n)
}

/// Which of `ids` are in the eval split: exactly [`eval_count`] of them, those with the smallest
/// rank keys (ties, impossible in practice, broken by the id).
pub fn assign_eval(ids: &[Uuid], split: Option<&Split>) -> Vec<bool> {
    let Some(split) = split else {
        return vec![false; ids.len()];
    };
    let k = eval_count(ids.len(), split.eval_fraction);
    let mut ranked: Vec<([u8; 32], usize)> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| (split_rank(split.seed, id), n))
        .collect();
    ranked.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(ids[a.1].cmp(&ids[b.1])));
    let mut eval = vec![false; ids.len()];
    for (_, n) in ranked.into_iter().take(k) {
        eval[n] = true;
    }
    eval
}

/// The membership digest: sha256 (hex) over `<trace id> <e|t>\n` per member, in order.
#[derive(Default)]
pub struct MembershipDigest(Sha256);

impl MembershipDigest {
    /// Adds the next member.
    pub fn add(&mut self, id: &Uuid, eval: bool) {
        self.0
            .update(format!("{id} {}\n", if eval { 'e' } else { 't' }).as_bytes());
    }

    /// The hex digest.
    pub fn finish(self) -> String {
        let mut out = String::with_capacity(64);
        for b in self.0.finalize() {
            let _ = write!(out, "{b:02x}");
        }
        out
    }
}

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The original's trace row.
    Trace,
    /// The original's Gemma-template row for Tunix SFT.
    TunixSft,
    /// The original's prompt/response row (with a deterministic id).
    TrainingExample,
    /// Chat messages plus the reasoning steps.
    Chat,
}

impl Format {
    /// Parses a `format` parameter.
    pub fn parse(v: &str) -> Option<Format> {
        Some(match v {
            "trace" => Format::Trace,
            "tunix_sft" => Format::TunixSft,
            "training_example" => Format::TrainingExample,
            "chat" => Format::Chat,
            _ => return None,
        })
    }

    /// The parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Trace => "trace",
            Format::TunixSft => "tunix_sft",
            Format::TrainingExample => "training_example",
            Format::Chat => "chat",
        }
    }
}

/// The part of a stored payload an export reads.
#[derive(Deserialize)]
pub struct ExportTrace<'a> {
    /// The prompt.
    pub prompt: String,
    /// The final answer.
    pub final_answer: String,
    /// The steps, in stored order.
    pub steps: Vec<ExportStep>,
    /// `meta`, its values kept as their exact text.
    #[serde(borrow, default)]
    pub meta: Option<BTreeMap<String, &'a RawValue>>,
}

/// A step as exported.
#[derive(Deserialize)]
pub struct ExportStep {
    /// The step's content.
    pub content: String,
}

/// What an export row says about its trace besides the payload.
pub struct RowContext<'a> {
    /// The trace id.
    pub id: Uuid,
    /// When it was accepted.
    pub created_at: DateTime<Utc>,
    /// Its `trace_version`.
    pub trace_version: &'a str,
    /// Its frozen scores (a JSON object), exported with the row.
    pub scores: &'a RawValue,
    /// `"train"` or `"eval"`.
    pub split: &'static str,
}

/// The `R` of the Gemma template: `Reasoning:\n1. {step}\n2. {step}\n...`, empty without steps.
fn reasoning(steps: &[ExportStep]) -> String {
    if steps.is_empty() {
        return String::new();
    }
    let mut r = String::from("Reasoning:\n");
    for (n, s) in steps.iter().enumerate() {
        let _ = writeln!(r, "{}. {}", n + 1, s.content);
    }
    r
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

/// `{fixed..., meta...}` with meta keys equal to a fixed key kept as `meta.<key>`.
fn metadata(fixed: &[(&str, String)], meta: &Option<BTreeMap<String, &RawValue>>) -> String {
    let mut out = String::from("{");
    let mut first = true;
    let mut push = |out: &mut String, k: &str, v: &str| {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(&json_str(k));
        out.push(':');
        out.push_str(v);
    };
    for (k, v) in fixed {
        push(&mut out, k, v);
    }
    if let Some(meta) = meta {
        for (k, v) in meta {
            if fixed.iter().any(|(f, _)| f == k) || meta_collides(k, fixed, meta) {
                push(&mut out, &format!("meta.{k}"), v.get());
            } else {
                push(&mut out, k, v.get());
            }
        }
    }
    out.push('}');
    out
}

/// Whether `k` is itself a renamed key's new name (`meta.created_at` present as a real meta key
/// next to `created_at`): then it too is kept under a further prefix, so no key appears twice.
fn meta_collides(k: &str, fixed: &[(&str, String)], meta: &BTreeMap<String, &RawValue>) -> bool {
    let mut base = k;
    while let Some(rest) = base.strip_prefix("meta.") {
        if fixed.iter().any(|(f, _)| *f == rest) && meta.contains_key(rest) {
            return true;
        }
        base = rest;
    }
    false
}

fn rfc3339(t: &DateTime<Utc>) -> String {
    json_str(&t.to_rfc3339_opts(SecondsFormat::Micros, true))
}

/// The id of the `training_example` row of trace `id`: a UUIDv5 of the trace id, so a re-export
/// gives the same ids (the original drew a random one per row).
pub fn training_example_id(id: &Uuid) -> Uuid {
    Uuid::new_v5(&TRAINING_EXAMPLE_NAMESPACE, id.as_bytes())
}

/// One JSONL row (without the newline) of `format` for a stored trace.
pub fn export_row(format: Format, cx: &RowContext<'_>, t: &ExportTrace<'_>) -> String {
    let id = json_str(&cx.id.to_string());
    let created = rfc3339(&cx.created_at);
    let version = json_str(cx.trace_version);
    let tail = format!(
        ",\"scores\":{},\"split\":{}}}",
        cx.scores.get(),
        json_str(cx.split)
    );
    match format {
        Format::Trace => {
            let steps: Vec<&str> = t.steps.iter().map(|s| s.content.as_str()).collect();
            format!(
                "{{\"id\":{id},\"prompts\":{},\"trace_steps\":{},\"final_answer\":{},\"metadata\":{}{tail}",
                json_str(&t.prompt),
                serde_json::to_string(&steps).expect("strings serialize"),
                json_str(&t.final_answer),
                metadata(&[("created_at", created), ("trace_version", version)], &t.meta),
            )
        }
        Format::TunixSft => {
            let prompts = format!(
                "<start_of_turn>user\n{}<end_of_turn>\n<start_of_turn>model\n{}Answer: {}<end_of_turn>",
                t.prompt,
                reasoning(&t.steps),
                t.final_answer
            );
            format!(
                "{{\"id\":{id},\"prompts\":{},\"final_answer\":{},\"metadata\":{}{tail}",
                json_str(&prompts),
                json_str(&t.final_answer),
                metadata(
                    &[
                        ("created_at", created),
                        ("trace_version", version),
                        ("format", json_str("tunix_sft")),
                    ],
                    &t.meta
                ),
            )
        }
        Format::TrainingExample => {
            let prompt = format!("{}\n\nPlease show your reasoning steps.", t.prompt);
            let response = format!("{}Answer: {}", reasoning(&t.steps), t.final_answer);
            format!(
                "{{\"id\":{},\"prompt\":{},\"response\":{},\"metadata\":{}{tail}",
                json_str(&training_example_id(&cx.id).to_string()),
                json_str(&prompt),
                json_str(&response),
                metadata(
                    &[
                        ("source_trace_id", id),
                        ("created_at", created),
                        ("trace_version", version),
                    ],
                    &t.meta
                ),
            )
        }
        Format::Chat => {
            let steps: Vec<&str> = t.steps.iter().map(|s| s.content.as_str()).collect();
            format!(
                "{{\"id\":{id},\"messages\":[{{\"role\":\"user\",\"content\":{}}},{{\"role\":\"assistant\",\"content\":{}}}],\"reasoning\":{},\"metadata\":{}{tail}",
                json_str(&t.prompt),
                json_str(&t.final_answer),
                serde_json::to_string(&steps).expect("strings serialize"),
                metadata(&[("created_at", created), ("trace_version", version)], &t.meta),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u128) -> Vec<Uuid> {
        (0..n).map(|i| Uuid::from_u128(i * 7919 + 13)).collect()
    }

    #[test]
    fn the_split_is_exact_deterministic_and_independent_of_order() {
        let split = Split {
            eval_fraction: 0.2,
            seed: 7,
        };
        let a = ids(1001);
        let eval = assign_eval(&a, Some(&split));
        assert_eq!(
            eval.iter().filter(|e| **e).count(),
            200,
            "round(0.2 × 1001)"
        );
        let mut reversed = a.clone();
        reversed.reverse();
        let eval_rev = assign_eval(&reversed, Some(&split));
        for (n, id) in a.iter().enumerate() {
            let m = reversed.iter().position(|x| x == id).unwrap();
            assert_eq!(eval[n], eval_rev[m], "{id}");
        }
        let other = assign_eval(
            &a,
            Some(&Split {
                eval_fraction: 0.2,
                seed: 8,
            }),
        );
        assert_ne!(eval, other, "another seed, another split");
        assert_eq!(eval_count(3, 0.5), 2, "half away from zero");
        assert!(assign_eval(&a, None).iter().all(|e| !e));
    }

    #[test]
    fn names_and_versions_are_checked() {
        assert!(check_name_version("math-hard", "3").is_ok());
        assert!(check_name_version("", "3").is_err());
        assert!(check_name_version("a/b", "3").is_err());
        assert!(check_name_version("a", &"9".repeat(33)).is_err());
    }

    fn row(format: Format, meta: &str) -> serde_json::Value {
        let payload = format!(
            r#"{{"trace_version":"v1","prompt":"P","final_answer":"A","steps":[{{"i":0,"type":"t","content":"s1"}},{{"i":1,"type":"t","content":"s2"}}],"meta":{meta}}}"#
        );
        let t: ExportTrace = serde_json::from_str(&payload).unwrap();
        let scores = RawValue::from_string("{}".into()).unwrap();
        let cx = RowContext {
            id: Uuid::from_u128(1),
            created_at: DateTime::parse_from_rfc3339("2026-01-02T03:04:05.123456Z")
                .unwrap()
                .into(),
            trace_version: "v1",
            scores: &scores,
            split: "train",
        };
        serde_json::from_str(&export_row(format, &cx, &t)).unwrap()
    }

    #[test]
    fn formats_follow_the_original_rows() {
        let r = row(Format::TunixSft, r#"{"run":17}"#);
        assert_eq!(
            r["prompts"],
            "<start_of_turn>user\nP<end_of_turn>\n<start_of_turn>model\nReasoning:\n1. s1\n2. s2\nAnswer: A<end_of_turn>"
        );
        assert_eq!(r["metadata"]["format"], "tunix_sft");
        assert_eq!(r["metadata"]["run"], 17);
        let r = row(Format::TrainingExample, "null");
        assert_eq!(r["prompt"], "P\n\nPlease show your reasoning steps.");
        assert_eq!(r["response"], "Reasoning:\n1. s1\n2. s2\nAnswer: A");
        assert_eq!(
            r["id"],
            training_example_id(&Uuid::from_u128(1)).to_string()
        );
        assert_eq!(
            r["metadata"]["source_trace_id"],
            Uuid::from_u128(1).to_string()
        );
        let r = row(Format::Trace, "{}");
        assert_eq!(r["trace_steps"], serde_json::json!(["s1", "s2"]));
        assert_eq!(r["metadata"]["created_at"], "2026-01-02T03:04:05.123456Z");
        let r = row(Format::Chat, "{}");
        assert_eq!(r["messages"][1]["content"], "A");
        assert_eq!(r["reasoning"][0], "s1");
    }

    #[test]
    fn meta_never_overwrites_the_fixed_keys() {
        let r = row(
            Format::TunixSft,
            r#"{"created_at":"x","format":"y","meta.created_at":"z","k":1}"#,
        );
        let m = &r["metadata"];
        assert_eq!(m["created_at"], "2026-01-02T03:04:05.123456Z");
        assert_eq!(m["format"], "tunix_sft");
        assert_eq!(m["meta.created_at"], "x");
        assert_eq!(m["meta.format"], "y");
        assert_eq!(m["meta.meta.created_at"], "z");
        assert_eq!(m["k"], 1);
    }
}
