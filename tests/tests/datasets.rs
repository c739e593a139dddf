//! Datasets over the real pipeline: created from the list's filters, frozen (later traces,
//! later scores and a rebuild of the read models change no byte of an export), split
//! deterministically, exported in every JSONL format, deleted members omitted and counted, the
//! original service's build and export paths, and the membership surviving a replay of the topic
//! into an empty database.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};
use tunix_e2e::{Stack, StackOptions};
use tunix_testkit::{eventually, TestDb};
use uuid::Uuid;

const CONVERGE: Duration = Duration::from_secs(90);

fn dataset_traces() -> Vec<Value> {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/dev-reasoning-v2.jsonl"),
    )
    .unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Posts with an Idempotency-Key (deterministic ids); returns the id.
async fn post(stack: &Stack, trace: &Value, key: &str) -> Uuid {
    let resp = stack
        .http
        .post(stack.url("/api/traces"))
        .header("Idempotency-Key", key)
        .json(trace)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    body["id"].as_str().unwrap().parse().unwrap()
}

async fn score(stack: &Stack, id: &Uuid, name: &str, value: f64) {
    let resp = stack
        .http
        .post(stack.url(&format!("/api/traces/{id}/scores")))
        .json(&json!({"name": name, "value": value, "source": "grader"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
}

async fn create(stack: &Stack, body: &Value) -> (u16, Value) {
    let resp = stack
        .http
        .post(stack.url("/api/datasets"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The export's body and its `X-Tunix-Omitted` count.
async fn export(stack: &Stack, path: &str) -> (String, i64) {
    let resp = stack.http.get(stack.url(path)).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/x-ndjson"
    );
    let omitted = resp.headers()["x-tunix-omitted"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    (resp.text().await.unwrap(), omitted)
}

fn rows(jsonl: &str) -> Vec<Value> {
    jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every trace whose list filter matches, newest first, through the list API.
async fn listed(stack: &Stack, query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = stack
            .get(&format!("/api/traces?limit=100&{query}{cursor}"))
            .await;
        assert_eq!(status, 200);
        for item in page["data"].as_array().unwrap() {
            out.push(item["id"].as_str().unwrap().to_owned());
        }
        match page["pagination"]["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return out,
        }
    }
}

/// The Parquet export, read by pyarrow (from PyPI, `tests/python/read_parquet.py`), holds the
/// same rows as the JSONL `trace` export, with typed columns.
async fn parquet_equals_the_jsonl_export(stack: &Stack, dataset: &str, jsonl: &str) {
    let resp = stack
        .http
        .get(stack.url(&format!("/api/datasets/{dataset}/export?format=parquet")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/vnd.apache.parquet"
    );
    let bytes = resp.bytes().await.unwrap();
    let file = tunix_testkit::artifacts_dir().join(format!("export-{}.parquet", Uuid::new_v4()));
    std::fs::write(&file, &bytes).unwrap();
    let python = std::env::var("TUNIX_TEST_PYTHON")
        .expect("TUNIX_TEST_PYTHON: run the suite with ./infra/test.sh");
    let out = std::process::Command::new(python)
        .arg(tunix_testkit::repo_root().join("tests/python/read_parquet.py"))
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(&file);
    let read: Value = serde_json::from_slice(&out.stdout).unwrap();
    let schema = &read["schema"];
    assert_eq!(schema["created_at"], "timestamp[us, tz=UTC]");
    assert_eq!(
        schema["steps"],
        "list<element: struct<i: int64 not null, type: string not null, content: string not null> not null>"
    );
    assert!(schema["scores"]
        .as_str()
        .unwrap()
        .contains("value: double not null"));
    let parquet_rows = read["rows"].as_array().unwrap();
    let jsonl_rows = rows(jsonl);
    assert_eq!(parquet_rows.len(), jsonl_rows.len());
    for (p, j) in parquet_rows.iter().zip(&jsonl_rows) {
        assert_eq!(p["id"], j["id"]);
        assert_eq!(p["prompt"], j["prompts"]);
        assert_eq!(p["final_answer"], j["final_answer"]);
        assert_eq!(p["trace_version"], j["metadata"]["trace_version"]);
        assert_eq!(p["split"], j["split"]);
        let contents: Vec<&Value> = p["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| &s["content"])
            .collect();
        assert_eq!(json!(contents), j["trace_steps"]);
        let meta: Value = p["meta"]
            .as_str()
            .map_or(Value::Null, |m| serde_json::from_str(m).unwrap());
        for (k, v) in meta.as_object().into_iter().flatten() {
            if !["created_at", "trace_version", "format"].contains(&k.as_str()) {
                assert_eq!(&j["metadata"][k], v, "meta.{k}");
            }
        }
        let scores: HashMap<String, f64> = p["scores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap().to_owned(),
                    s["value"].as_f64().unwrap(),
                )
            })
            .collect();
        let want: HashMap<String, f64> = j["scores"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v["value"].as_f64().unwrap()))
            .collect();
        assert_eq!(scores, want);
        let created =
            chrono::DateTime::parse_from_rfc3339(p["created_at"].as_str().unwrap()).unwrap();
        let want_created =
            chrono::DateTime::parse_from_rfc3339(j["metadata"]["created_at"].as_str().unwrap())
                .unwrap();
        assert_eq!(created, want_created);
    }
}

/// `tunix-admin datasets`, a client of the HTTP API: export to a file equals the API's bytes
/// (with a closing summary on stderr), create with filters, list.
async fn cli_exports_and_creates_like_the_api(stack: &Stack, jsonl: &str, task: &str) {
    let admin = |args: &[&str]| {
        let out = std::process::Command::new(tunix_testkit::binary("tunix-admin"))
            .arg("datasets")
            .args(args)
            .args(["--api", &stack.url("")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tunix-admin datasets {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let file = tunix_testkit::artifacts_dir().join(format!("cli-{}.jsonl", Uuid::new_v4()));
    let (_, stderr) = admin(&[
        "export",
        "tasks",
        "1",
        "--format",
        "trace",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), jsonl);
    let _ = std::fs::remove_file(&file);
    let n = jsonl.lines().count();
    assert!(
        stderr.contains("exported tasks@1 (trace, split all)")
            && stderr.contains(&format!("{n} rows")),
        "{stderr}"
    );
    let filter = format!("meta.task_type={task}");
    let (created, _) = admin(&["create", "cli", "1", "--filter", &filter, "--limit", "2"]);
    assert!(created.contains("cli@1  ready  2 members"), "{created}");
    let (listed, _) = admin(&["list"]);
    assert!(
        listed.contains("tasks@1") && listed.contains("cli@1"),
        "{listed}"
    );
}

fn reasoning(steps: &[Value]) -> String {
    steps
        .iter()
        .enumerate()
        .map(|(n, s)| format!("{}. {}\n", n + 1, s["content"].as_str().unwrap()))
        .collect::<String>()
}

#[tokio::test(flavor = "multi_thread")]
async fn datasets_are_frozen_split_and_exported_and_survive_a_replay() {
    let stack = Stack::start(StackOptions::default()).await;
    let traces = dataset_traces();
    let mut posted: HashMap<String, Value> = HashMap::new();
    let mut ids = Vec::new();
    for (n, t) in traces.iter().take(150).enumerate() {
        let id = post(&stack, t, &format!("datasets-test-{n}")).await;
        posted.insert(id.to_string(), t.clone());
        ids.push(id);
    }
    stack.wait_converged(ids.len(), CONVERGE).await;
    for id in ids.iter().step_by(3) {
        score(&stack, id, "correct", 1.0).await;
    }
    eventually(CONVERGE, "scores applied", || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM trace_scores")
            .fetch_one(&stack.db.pool)
            .await
            .ok()?;
        (n == ids.len().div_ceil(3) as i64).then_some(())
    })
    .await;
    // The most common task type among the posted traces.
    let mut counts: HashMap<String, usize> = HashMap::new();
    for t in posted.values() {
        if let Some(task) = t["meta"]["task_type"].as_str() {
            *counts.entry(task.to_owned()).or_default() += 1;
        }
    }
    let (task, _) = counts
        .into_iter()
        .max_by_key(|(k, n)| (*n, k.clone()))
        .unwrap();
    let want = listed(&stack, &format!("meta.task_type={task}")).await;
    assert!(
        want.len() >= 4,
        "the filter selects several: {}",
        want.len()
    );

    // Bad definitions: 422 with the field path; never 5xx.
    for (body, loc) in [
        (
            json!({"name": "x/y", "version": "1"}),
            json!(["body", "name"]),
        ),
        (
            json!({"name": "x", "version": "1", "filter": {"meta.": "1"}}),
            json!(["body", "filter", "meta."]),
        ),
        (
            json!({"name": "x", "version": "1", "selection": "random"}),
            json!(["body", "seed"]),
        ),
        (
            json!({"name": "x", "version": "1", "split": {"eval_fraction": 2, "seed": 1}}),
            json!(["body", "split", "eval_fraction"]),
        ),
        (
            json!({"name": "x", "version": "1", "filter": {"limit": 5}}),
            json!(["body", "filter", "limit"]),
        ),
    ] {
        let (status, answer) = create(&stack, &body).await;
        assert_eq!(status, 422, "{body} -> {answer}");
        assert!(
            answer["detail"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["loc"] == loc),
            "{body} -> {answer}"
        );
    }

    let definition = json!({
        "name": "tasks", "version": "1",
        "filter": {"meta.task_type": task},
        "selection": "latest",
        "split": {"eval_fraction": 0.25, "seed": 3},
    });
    let (status, ds) = create(&stack, &definition).await;
    assert_eq!(status, 201, "{ds}");
    assert_eq!(ds["state"], "ready");
    assert_eq!(ds["key"], "tasks-1");
    let n = want.len() as i64;
    assert_eq!(ds["member_count"], n);
    let eval = (0.25 * n as f64).round() as i64;
    assert_eq!(ds["eval_count"], eval);
    assert_eq!(ds["train_count"], n - eval);

    // Same definition: idempotent; another one: 409; a colliding key: 409.
    let (status, again) = create(&stack, &definition).await;
    assert_eq!(status, 200);
    assert_eq!(again["digest"], ds["digest"]);
    let mut other = definition.clone();
    other["limit"] = json!(2);
    assert_eq!(create(&stack, &other).await.0, 409);
    assert_eq!(
        create(&stack, &json!({"name": "tasks-1", "version": "x"}))
            .await
            .0,
        201
    );
    assert_eq!(
        create(&stack, &json!({"name": "tasks", "version": "1-x"}))
            .await
            .0,
        409,
        "tasks + 1-x has the key tasks-1-x, taken by tasks-1 + x"
    );

    // Exports: the members in order, every format's shape, scores and split with each row.
    let (trace_rows, omitted) = export(&stack, "/api/datasets/tasks/1/export?format=trace").await;
    assert_eq!(omitted, 0);
    let trace_rows = rows(&trace_rows);
    let got: Vec<String> = trace_rows
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, want, "newest first, like the list");
    let mut evals = 0;
    for r in &trace_rows {
        let t = &posted[r["id"].as_str().unwrap()];
        assert_eq!(r["prompts"], t["prompt"]);
        assert_eq!(r["final_answer"], t["final_answer"]);
        let steps: Vec<Value> = t["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["content"].clone())
            .collect();
        assert_eq!(r["trace_steps"], json!(steps));
        assert_eq!(r["metadata"]["trace_version"], t["trace_version"]);
        assert_eq!(r["metadata"]["task_type"], t["meta"]["task_type"]);
        let id: Uuid = r["id"].as_str().unwrap().parse().unwrap();
        let scored = ids.iter().position(|x| *x == id).unwrap() % 3 == 0;
        assert_eq!(
            r["scores"]["correct"]["value"].as_f64(),
            scored.then_some(1.0)
        );
        evals += usize::from(r["split"] == "eval");
    }
    assert_eq!(evals as i64, eval);
    let (sft, _) = export(&stack, "/api/datasets/tasks/1/export?format=tunix_sft").await;
    for r in rows(&sft) {
        let t = &posted[r["id"].as_str().unwrap()];
        let want = format!(
            "<start_of_turn>user\n{}<end_of_turn>\n<start_of_turn>model\nReasoning:\n{}Answer: {}<end_of_turn>",
            t["prompt"].as_str().unwrap(),
            reasoning(t["steps"].as_array().unwrap()),
            t["final_answer"].as_str().unwrap()
        );
        assert_eq!(r["prompts"], want);
        assert_eq!(r["metadata"]["format"], "tunix_sft");
    }
    let (te, _) = export(
        &stack,
        "/api/datasets/tasks/1/export?format=training_example",
    )
    .await;
    let (te_again, _) = export(
        &stack,
        "/api/datasets/tasks/1/export?format=training_example",
    )
    .await;
    assert_eq!(te, te_again, "deterministic ids: the same bytes");
    for r in rows(&te) {
        let t = &posted[r["metadata"]["source_trace_id"].as_str().unwrap()];
        assert_eq!(
            r["response"],
            format!(
                "Reasoning:\n{}Answer: {}",
                reasoning(t["steps"].as_array().unwrap()),
                t["final_answer"].as_str().unwrap()
            )
        );
        assert_ne!(r["id"], r["metadata"]["source_trace_id"]);
    }
    let (chat, _) = export(
        &stack,
        "/api/datasets/tasks/1/export?format=chat&split=eval",
    )
    .await;
    let chat = rows(&chat);
    assert_eq!(chat.len() as i64, eval);
    assert!(chat.iter().all(|r| r["split"] == "eval"));
    assert_eq!(chat[0]["messages"][0]["role"], "user");
    let (train, _) = export(&stack, "/api/datasets/tasks/1/export?split=train").await;
    assert_eq!(rows(&train).len() as i64, n - eval);
    let (all_before, _) = export(&stack, "/api/datasets/tasks/1/export").await;
    parquet_equals_the_jsonl_export(&stack, "tasks/1", &all_before).await;
    cli_exports_and_creates_like_the_api(&stack, &all_before, &task).await;
    // Accept-Encoding: the same bytes, compressed.
    for (accept, coding) in [
        ("gzip", "gzip"),
        ("gzip, zstd", "zstd"),
        ("zstd;q=0, gzip", "gzip"),
    ] {
        let resp = stack
            .http
            .get(stack.url("/api/datasets/tasks/1/export"))
            .header("Accept-Encoding", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["content-encoding"], coding, "{accept}");
        let body = resp.bytes().await.unwrap();
        let plain = match coding {
            "gzip" => {
                let mut out = String::new();
                std::io::Read::read_to_string(
                    &mut flate2::read::GzDecoder::new(&body[..]),
                    &mut out,
                )
                .unwrap();
                out
            }
            _ => String::from_utf8(zstd::decode_all(&body[..]).unwrap()).unwrap(),
        };
        assert_eq!(plain, all_before, "{accept}");
    }

    // Frozen: new matching traces, new scores and a rebuild change nothing.
    let template = posted[&want[0]].clone();
    let late = post(&stack, &template, "datasets-test-late").await;
    stack.wait_converged(ids.len() + 1, CONVERGE).await;
    score(&stack, &late, "correct", 0.0).await;
    score(&stack, &ids[1], "quality", 0.5).await;
    stack.rebuild_into(&stack.db.url).await;
    assert_eq!(
        listed(&stack, &format!("meta.task_type={task}"))
            .await
            .len(),
        want.len() + 1,
        "the late trace matches the filter"
    );
    let (all_after, _) = export(&stack, "/api/datasets/tasks/1/export").await;
    assert_eq!(
        all_after, all_before,
        "byte-identical after new traces, scores and a rebuild"
    );

    // Deletion wins: a deleted member is omitted and counted.
    let doomed = &want[1];
    let resp = stack
        .http
        .delete(stack.url(&format!("/api/traces/{doomed}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    eventually(CONVERGE, "the trace is gone", || async {
        (stack.get(&format!("/api/traces/{doomed}")).await.0 == 404).then_some(())
    })
    .await;
    let (after_delete, omitted) = export(&stack, "/api/datasets/tasks/1/export").await;
    assert_eq!(omitted, 1);
    assert_eq!(rows(&after_delete).len(), want.len() - 1);
    assert!(!after_delete.contains(doomed.as_str()));

    // Random selection: seeded, limited, the same membership for the same seed.
    let random = |name: &str, seed: i64| json!({"name": name, "version": "1", "selection": "random", "seed": seed, "limit": 20});
    let (_, r1) = create(&stack, &random("rand-a", 9)).await;
    let (_, r2) = create(&stack, &random("rand-b", 9)).await;
    let (_, r3) = create(&stack, &random("rand-c", 10)).await;
    assert_eq!(r1["member_count"], 20);
    assert_eq!(r1["digest"], r2["digest"]);
    assert_ne!(r1["digest"], r3["digest"]);

    // The original service's paths.
    let resp = stack
        .http
        .post(stack.url("/api/datasets/build"))
        .json(&json!({"dataset_name": "orig", "dataset_version": "1",
                      "filters": {"task_type": task}, "limit": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let built: Value = resp.json().await.unwrap();
    assert_eq!(built["dataset_key"], "orig-1");
    assert_eq!(built["trace_count"], 3);
    assert_eq!(built["manifest_path"], "/api/datasets/orig/1");
    let (orig, _) = export(&stack, "/api/datasets/orig-1/export.jsonl?format=tunix_sft").await;
    assert_eq!(rows(&orig).len(), 3);

    // The listing, then deleting a dataset: gone, and its name is never reused.
    let (_, list) = stack.get("/api/datasets").await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["key"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"tasks-1") && names.contains(&"orig-1"),
        "{names:?}"
    );
    let resp = stack
        .http
        .delete(stack.url("/api/datasets/orig/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(stack.get("/api/datasets/orig/1").await.0, 404);
    assert_eq!(
        create(&stack, &json!({"name": "orig", "version": "1"}))
            .await
            .0,
        409
    );

    // Replaying the topic into an empty database restores every dataset and its membership.
    let summary = |db: &TestDb| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_as::<_, (String, String, String, Option<i64>, Option<String>, i64)>(
                "SELECT d.name, d.version, d.state, d.member_count, d.digest,
                        (SELECT count(*) FROM dataset_members m WHERE m.build_id = d.build_id)
                 FROM datasets d ORDER BY d.name, d.version",
            )
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    eventually(CONVERGE, "the deletion applied", || async {
        let s = summary(&stack.db).await;
        s.iter()
            .any(|r| r.0 == "orig" && r.2 == "deleted" && r.5 == 0)
            .then_some(())
    })
    .await;
    let original = summary(&stack.db).await;
    let fresh = TestDb::new().await;
    stack.rebuild_into(&fresh.url).await;
    assert_eq!(summary(&fresh).await, original);
    let members = |db: &TestDb| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_as::<_, (i64, Uuid, bool, String)>(
                "SELECT m.position, m.trace_id, m.eval, m.scores::text FROM dataset_members m
                 JOIN datasets d ON d.build_id = m.build_id
                 WHERE d.name = 'tasks' ORDER BY m.position",
            )
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(members(&fresh).await, members(&stack.db).await);
}

/// Replaces the server-assigned instants (`created_at` in `metadata`) with a mask.
fn masked(jsonl: &str) -> String {
    jsonl
        .lines()
        .map(|l| {
            let mut row: Value = serde_json::from_str(l).unwrap();
            row["metadata"]["created_at"] = json!("<created_at>");
            let mut line = serde_json::to_string(&row).unwrap();
            line.push('\n');
            line
        })
        .collect()
}

/// Golden files: the 550 dataset traces, posted in one batch with an Idempotency-Key (so their
/// ids are deterministic), frozen with a seeded random selection and a split, exported in every
/// JSONL format, equal the fixtures in `tests/golden/datasets/` with `created_at` masked; the
/// Parquet file, read by pyarrow, equals the JSONL export. `UPDATE_GOLDEN=1` rewrites the
/// fixtures (review the diff before committing it).
#[tokio::test(flavor = "multi_thread")]
async fn exports_of_the_550_dataset_traces_equal_the_golden_files() {
    let stack = Stack::start(StackOptions::default()).await;
    let body: String = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/dev-reasoning-v2.jsonl"),
    )
    .unwrap();
    let n = body.lines().count();
    assert_eq!(n, 550);
    let resp = stack
        .http
        .post(stack.url("/api/traces/batch"))
        .header("Content-Type", "application/x-ndjson")
        .header("Idempotency-Key", "golden-dataset-v2")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    stack.wait_converged(n, CONVERGE).await;
    let (status, ds) = create(
        &stack,
        &json!({"name": "golden", "version": "1", "selection": "random", "seed": 2026,
                "split": {"eval_fraction": 0.2, "seed": 5}}),
    )
    .await;
    assert_eq!(status, 201, "{ds}");
    assert_eq!(ds["member_count"], 550);
    assert_eq!(ds["eval_count"], 110);
    let dir = tunix_testkit::repo_root().join("tests/golden/datasets");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    for format in ["trace", "tunix_sft", "training_example", "chat"] {
        let (jsonl, omitted) = export(
            &stack,
            &format!("/api/datasets/golden/1/export?format={format}"),
        )
        .await;
        assert_eq!(omitted, 0);
        let got = masked(&jsonl);
        let path = dir.join(format!("{format}.jsonl"));
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &got).unwrap();
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
        assert!(
            got == want,
            "{format}: the export differs from {} (first differing line: {:?})",
            path.display(),
            got.lines()
                .zip(want.lines())
                .find(|(a, b)| a != b)
                .map(|(a, _)| a.chars().take(200).collect::<String>())
        );
        if format == "trace" {
            parquet_equals_the_jsonl_export(&stack, "golden/1", &jsonl).await;
        }
    }
}

/// Active export queries of this test's database.
async fn active_exports(stack: &Stack) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND state = 'active'
           AND query LIKE '%FROM dataset_members m JOIN traces t%'
           AND pid <> pg_backend_pid()",
    )
    .fetch_one(&stack.db.pool)
    .await
    .unwrap()
}

/// An export whose client goes away stops its query in Postgres (the connection is closed, not
/// drained: draining the rest of three million members takes seconds, closing takes none).
#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_disconnects_stops_the_export_query() {
    let stack = Stack::start(StackOptions::default()).await;
    let trace = &dataset_traces()[0];
    let id = post(&stack, trace, "disconnect-test").await;
    stack.wait_converged(1, CONVERGE).await;
    let (status, ds) = create(&stack, &json!({"name": "big", "version": "1"})).await;
    assert_eq!(status, 201, "{ds}");
    let build: Uuid = ds["build_id"].as_str().unwrap().parse().unwrap();
    sqlx::query(
        "INSERT INTO dataset_members (build_id, position, trace_id, eval, scores)
         SELECT $1, g, $2, false, '{}' FROM generate_series(1, 3000000) g",
    )
    .bind(build)
    .bind(id)
    .execute(&stack.db.pool)
    .await
    .unwrap();
    let mut resp = stack
        .http
        .get(stack.url("/api/datasets/big/1/export"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.chunk().await.unwrap().is_some(),
        "the first bytes arrive"
    );
    assert_eq!(
        active_exports(&stack).await,
        1,
        "the export query is running"
    );
    drop(resp);
    eventually(
        Duration::from_secs(2),
        "the export query stops after the client left",
        || async { (active_exports(&stack).await == 0).then_some(()) },
    )
    .await;
}
