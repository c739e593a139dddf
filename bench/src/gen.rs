//! Trace generators: the 550 seed traces (about 0.5 KB each) and seeded long traces shaped like
//! real reasoning traces (a few KB to hundreds of KB, 20-200 steps).

use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// What to post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The seed dataset, round robin (about 0.5 KB per trace).
    Dataset,
    /// Generated traces of about this many bytes, with 20-200 steps.
    Long(usize),
}

impl std::str::FromStr for Shape {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "dataset" | "0.5k" => Ok(Shape::Dataset),
            "8k" => Ok(Shape::Long(8 * 1024)),
            "100k" => Ok(Shape::Long(100 * 1024)),
            other => other
                .strip_suffix('k')
                .and_then(|n| n.parse::<usize>().ok())
                .map(|n| Shape::Long(n * 1024))
                .ok_or_else(|| format!("unknown shape {other:?} (dataset, 8k, 100k or <N>k)")),
        }
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shape::Dataset => f.write_str("dataset (~0.5 KB)"),
            Shape::Long(n) => write!(f, "generated {} KB", n / 1024),
        }
    }
}

/// Loads `testdata/dev-reasoning-v2.jsonl` from the repository.
pub fn dataset(repo_root: &Path) -> Vec<Value> {
    let path = repo_root.join("testdata/dev-reasoning-v2.jsonl");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("dataset line is JSON"))
        .collect()
}

const WORDS: &[&str] = &[
    "therefore",
    "consider",
    "the",
    "equation",
    "implies",
    "we",
    "substitute",
    "value",
    "check",
    "result",
    "assume",
    "step",
    "hence",
    "sum",
    "product",
    "factor",
    "prime",
    "derivative",
    "integral",
    "probability",
    "expected",
    "case",
    "contradiction",
    "lemma",
    "bound",
    "≤",
    "≥",
    "∑",
    "π",
    "√2",
    "因此",
    "検証",
    "🧮",
];

/// A reproducible long trace of about `target` bytes with 20-200 steps.
pub fn long_trace(rng: &mut StdRng, target: usize) -> Value {
    let steps_n = rng.random_range(20..=200usize);
    let per_step = (target.saturating_sub(600) / steps_n).clamp(16, 19_000);
    let mut text = |n: usize| {
        let mut s = String::with_capacity(n + 16);
        while s.len() < n {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(WORDS[rng.random_range(0..WORDS.len())]);
        }
        s
    };
    let steps: Vec<Value> = (0..steps_n)
        .map(|i| {
            let kind = ["think", "compute", "verify", "recall"][i % 4];
            json!({"i": i, "type": kind, "content": text(per_step)})
        })
        .collect();
    json!({
        "trace_version": "bench-1",
        "prompt": text(200),
        "final_answer": text(60),
        "steps": steps,
        "meta": {"generator": "tunix-bench", "target_bytes": target, "steps": steps_n}
    })
}

/// An endless, reproducible supply of trace bodies (JSON bytes) of one shape.
pub struct Bodies {
    shape: Shape,
    dataset: Vec<Vec<u8>>,
    pool: Vec<Vec<u8>>,
    next: usize,
}

impl Bodies {
    /// Pre-renders bodies: the dataset, or 64 distinct generated traces from `seed`.
    pub fn new(shape: Shape, repo_root: &Path, seed: u64) -> Bodies {
        let dataset: Vec<Vec<u8>> = dataset(repo_root)
            .iter()
            .map(|v| serde_json::to_vec(v).expect("serialize"))
            .collect();
        let pool = match shape {
            Shape::Dataset => Vec::new(),
            Shape::Long(target) => {
                let mut rng = StdRng::seed_from_u64(seed);
                (0..64)
                    .map(|_| serde_json::to_vec(&long_trace(&mut rng, target)).expect("serialize"))
                    .collect()
            }
        };
        Bodies {
            shape,
            dataset,
            pool,
            next: 0,
        }
    }

    /// The next body, round robin.
    pub fn next_body(&mut self) -> &[u8] {
        let list = if self.shape == Shape::Dataset {
            &self.dataset
        } else {
            &self.pool
        };
        let body = &list[self.next % list.len()];
        self.next += 1;
        body
    }

    /// Average body size in bytes.
    pub fn mean_size(&self) -> usize {
        let list = if self.shape == Shape::Dataset {
            &self.dataset
        } else {
            &self.pool
        };
        list.iter().map(Vec::len).sum::<usize>() / list.len().max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_traces_are_valid_and_near_their_target() {
        let mut rng = StdRng::seed_from_u64(7);
        for target in [8 * 1024, 100 * 1024] {
            let v = long_trace(&mut rng, target);
            let bytes = serde_json::to_vec(&v).unwrap();
            tunix_schemas::Trace::parse_json(&bytes).expect("valid");
            let steps = v["steps"].as_array().unwrap().len();
            assert!((20..=200).contains(&steps));
            assert!(
                bytes.len() > target / 2 && bytes.len() < target * 2,
                "{} vs {target}",
                bytes.len()
            );
        }
        let a = long_trace(&mut StdRng::seed_from_u64(1), 8192);
        let b = long_trace(&mut StdRng::seed_from_u64(1), 8192);
        assert_eq!(a, b, "seeded");
    }
}
