//! The code's layout keeps the promises docs/ARCHITECTURE.md makes: every path it names exists,
//! and ingest-api stays a set of small files without import circles.
//!
//! No stack needed: these read the source tree.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest file allowed in `ingest-api/src` (lines).
const MAX_LINES: usize = 500;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Backticked tokens of `line` that name files or folders: `a/b.rs`, `a/b/`, or a bare `b.rs`.
/// A path whose first folder is not at the repository's root (`b.rs`, `events/c.rs`) is relative
/// to the folder of the last rooted path before it in the same section.
fn named_paths(line: &str) -> Vec<String> {
    line.split('`')
        .skip(1)
        .step_by(2)
        .filter(|t| !t.contains(' ') && !t.contains('*') && !t.contains('<'))
        .filter(|t| {
            t.ends_with(".rs")
                || t.ends_with(".md")
                || t.ends_with(".sql")
                || t.ends_with(".sh")
                || (t.ends_with('/') && t.len() > 1)
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_path_the_architecture_page_names_exists() {
    let doc = std::fs::read_to_string(repo().join("docs/ARCHITECTURE.md")).unwrap();
    let mut checked = 0;
    let mut missing = Vec::new();
    // A bare name (`store.rs`) lives in the folder of the last full path before it in its section.
    let mut folder: Option<PathBuf> = None;
    for (n, line) in doc.lines().enumerate() {
        if line.starts_with('#') {
            folder = None;
        }
        for token in named_paths(line) {
            if token.starts_with("../") {
                continue; // outside the repository (the product brief)
            }
            let trimmed = token.trim_end_matches('/');
            let rooted =
                token.contains('/') && repo().join(trimmed.split('/').next().unwrap()).is_dir();
            let path = if rooted {
                let p = PathBuf::from(trimmed);
                folder = p.parent().map(Path::to_path_buf);
                p
            } else {
                match &folder {
                    Some(dir) => dir.join(trimmed),
                    None => {
                        missing.push(format!("line {}: `{token}` has no folder before it", n + 1));
                        continue;
                    }
                }
            };
            checked += 1;
            if !repo().join(&path).exists() {
                missing.push(format!("line {}: {}", n + 1, path.display()));
            }
        }
    }
    assert!(
        checked > 50,
        "the page names only {checked} paths: did the parser break?"
    );
    assert!(
        missing.is_empty(),
        "docs/ARCHITECTURE.md names paths that do not exist:\n{}",
        missing.join("\n")
    );
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn ingest_api_files_stay_small() {
    let src = repo().join("ingest-api/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 20, "found only {} files", files.len());
    let long: Vec<String> = files
        .iter()
        .map(|f| (f, std::fs::read_to_string(f).unwrap().lines().count()))
        .filter(|(_, n)| *n > MAX_LINES)
        .map(|(f, n)| format!("{} ({n} lines)", f.strip_prefix(&src).unwrap().display()))
        .collect();
    assert!(long.is_empty(), "over {MAX_LINES} lines: {long:?}");
}

/// The module path of a file below `src` (`traces/read.rs` → `traces::read`; `lib.rs` → ``).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .filter(|p| p != "mod" && p != "lib" && p != "main")
        .collect();
    parts.join("::")
}

/// The modules `file` refers to through `crate::` and `super::` paths (comments and the
/// `tests` module left out), resolved to the longest existing module.
fn references(module: &str, source: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let code: String = source
        .split("#[cfg(test)]\nmod tests {")
        .next()
        .unwrap()
        .lines()
        .map(|l| l.split("//").next().unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeSet::new();
    let mut resolve = |path: Vec<String>| {
        for len in (1..=path.len()).rev() {
            let candidate = path[..len].join("::");
            if modules.contains(&candidate) {
                if candidate != module {
                    out.insert(candidate);
                }
                return;
            }
        }
    };
    let own: Vec<String> = module.split("::").map(str::to_owned).collect();
    let is_dir_module = |m: &str| modules.iter().any(|o| o.starts_with(&format!("{m}::")));
    for (at, _) in code
        .match_indices("crate::")
        .chain(code.match_indices("super::"))
    {
        let rest = &code[at..];
        let mut segments: Vec<String> = Vec::new();
        let mut base: Vec<String> = Vec::new();
        let mut tail = rest;
        if let Some(r) = tail.strip_prefix("crate::") {
            tail = r;
        } else {
            // `super` of `a::b` (a file) is `a`; of `a` holding children (a mod.rs) it is the parent too.
            base = own.clone();
            while let Some(r) = tail.strip_prefix("super::") {
                base.pop();
                tail = r;
            }
        }
        // `use crate::{a, b::c}`: each item.
        if let Some(group) = tail.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let first = item.trim().split("::").next().unwrap_or("").trim();
                if !first.is_empty() {
                    let mut p = base.clone();
                    p.push(first.to_owned());
                    resolve(p);
                }
            }
            continue;
        }
        for seg in tail.split("::") {
            let ident: String = seg
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if ident.is_empty() {
                break;
            }
            let last = ident.len() < seg.len();
            segments.push(ident);
            if last {
                break;
            }
        }
        let mut p = base;
        p.extend(segments);
        resolve(p);
    }
    // A folder module refers to its children by their bare names (`store::find`).
    if is_dir_module(module) || module.is_empty() {
        for child in modules.iter().filter(|m| {
            m.strip_prefix(&if module.is_empty() {
                String::new()
            } else {
                format!("{module}::")
            })
            .is_some_and(|rest| !rest.contains("::") && !rest.is_empty())
        }) {
            let name = child.rsplit("::").next().unwrap();
            let used = code
                .match_indices(&format!("{name}::"))
                .any(|(i, _)| !code[..i].ends_with("mod ") && !code[..i].ends_with("::"));
            if used {
                out.insert(child.clone());
            }
        }
    }
    out
}

#[test]
fn ingest_api_has_no_import_circles() {
    let src = repo().join("ingest-api/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let sources: BTreeMap<String, String> = files
        .iter()
        .map(|f| (module_of(&src, f), std::fs::read_to_string(f).unwrap()))
        .collect();
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    let graph: BTreeMap<String, BTreeSet<String>> = sources
        .iter()
        .map(|(m, s)| (m.clone(), references(m, s, &modules)))
        .collect();
    let edges: usize = graph.values().map(BTreeSet::len).sum();
    assert!(
        edges > 40,
        "only {edges} references found: did the parser break?"
    );
    // A circle is a module that reaches itself.
    let mut circles = Vec::new();
    for start in graph.keys() {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&String> = graph[start].iter().collect();
        while let Some(m) = todo.pop() {
            if m == start {
                circles.push(start.clone());
                break;
            }
            if seen.insert(m.clone()) {
                todo.extend(graph.get(m).into_iter().flatten());
            }
        }
    }
    assert!(
        circles.is_empty(),
        "these modules reach themselves through imports: {circles:?}"
    );
}
