use std::path::PathBuf;

use serde_json::{json, Value};
use tunix_schemas::{Trace, ValidationErrors};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn testdata(name: &str) -> String {
    let path = repo_root().join("testdata").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The 550 real traces from the seed project.
pub fn dataset() -> Vec<Value> {
    testdata("dev-reasoning-v2.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("dataset line is JSON"))
        .collect()
}

/// A minimal valid trace that tests mutate one field at a time.
pub fn valid() -> Value {
    json!({
        "trace_version": "1.0",
        "prompt": "What is 2 + 2?",
        "final_answer": "4",
        "steps": [{"i": 0, "type": "compute", "content": "2 + 2 = 4"}],
        "meta": {"source": "test"}
    })
}

pub fn parse(v: &Value) -> Result<Trace, ValidationErrors> {
    Trace::parse_json(serde_json::to_string(v).unwrap().as_bytes())
}

/// `(loc, type)` pairs of every error, e.g. `("body.steps.0.i", "missing")`.
pub fn errors_of(v: &Value) -> Vec<(String, String)> {
    match parse(v) {
        Ok(_) => vec![],
        Err(e) => e
            .errors()
            .iter()
            .map(|e| (e.loc.to_string(), e.kind.as_str().to_owned()))
            .collect(),
    }
}

pub fn errors_of_bytes(body: &[u8]) -> Vec<(String, String)> {
    match Trace::parse_json(body) {
        Ok(_) => vec![],
        Err(e) => e
            .errors()
            .iter()
            .map(|e| (e.loc.to_string(), e.kind.as_str().to_owned()))
            .collect(),
    }
}

pub fn err(loc: &str, kind: &str) -> Vec<(String, String)> {
    vec![(loc.to_owned(), kind.to_owned())]
}
