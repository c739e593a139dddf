//! Datasets over the real pipeline: created from the list's filters, frozen (later traces,
//! later scores and a rebuild of the read models change no byte of an export), split
//! deterministically, exported in every JSONL format, deleted members omitted and counted, the
//! original service's build and export paths, and the membership surviving a replay of the topic
//! into an empty database.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};
use tunix_e2e::{Stack, StackOptions};
use tunix_testkit::{eventually, run_ok, TestDb, CONVERGE};
use uuid::Uuid;

/// Posts with an Idempotency-Key (deterministic ids); returns the id.
async fn post(stack: &Stack, trace: &Value, key: &str) -> Uuid {
    let (status, body) = stack.client().post_keyed("/api/traces", trace, key).await;
    assert_eq!(status, 202, "{body}");
    body["id"].as_str().unwrap().parse().unwrap()
}

async fn score(stack: &Stack, id: &Uuid, name: &str, value: f64) {
    let path = format!("/api/traces/{id}/scores");
    let body = json!({"name": name, "value": value, "source": "grader"});
    assert_eq!(stack.client().post(&path, &body).await.0, 202);
}

async fn create(stack: &Stack, body: &Value) -> (u16, Value) {
    stack.client().post("/api/datasets", body).await
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
    let out = run_ok(
        std::process::Command::new(tunix_testkit::python())
            .arg(tunix_testkit::repo_root().join("tests/python/read_parquet.py"))
            .arg(&file),
        "read_parquet.py",
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
        let out = run_ok(
            std::process::Command::new(tunix_testkit::binary("tunix-admin"))
                .arg("datasets")
                .args(args)
                .args(["--api", &stack.url("")]),
            &format!("tunix-admin datasets {args:?}"),
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

// ---------------------------------------------------------------------------------------------
// Datasets are frozen, split and exported, and survive a replay.
// ---------------------------------------------------------------------------------------------

/// What the main scenario posted, and the members of the `tasks@1` dataset it freezes.
struct Posted {
    /// The 150 bodies posted, by id.
    by_id: HashMap<String, Value>,
    /// Their ids in posting order; every third is scored `correct` = 1.
    ids: Vec<Uuid>,
    /// The most common task type among them: the dataset's filter.
    task: String,
    /// What the list API answers for that filter, newest first: the dataset's members.
    want: Vec<String>,
}

impl Posted {
    /// The `tasks@1` dataset's member count.
    fn n(&self) -> i64 {
        self.want.len() as i64
    }

    /// Its eval split's size (a quarter, rounded).
    fn eval(&self) -> i64 {
        (0.25 * self.n() as f64).round() as i64
    }
}

/// The `tasks@1` definition: the task filter, the latest traces, a quarter for eval.
fn tasks_definition(task: &str) -> Value {
    json!({
        "name": "tasks", "version": "1",
        "filter": {"meta.task_type": task},
        "selection": "latest",
        "split": {"eval_fraction": 0.25, "seed": 3},
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn datasets_are_frozen_split_and_exported_and_survive_a_replay() {
    let stack = Stack::start(StackOptions::default()).await;
    let p = posted_and_scored_traces_select_several_by_task(&stack).await;
    bad_definitions_answer_422_with_the_field_path(&stack).await;
    let ds = a_definition_freezes_a_split_dataset_of_the_filters_matches(&stack, &p).await;
    the_same_definition_is_idempotent_and_colliding_keys_conflict(&stack, &p, &ds).await;
    every_format_exports_the_members_in_order_with_scores_and_split(&stack, &p).await;
    let (all_before, _) = export(&stack, "/api/datasets/tasks/1/export").await;
    parquet_equals_the_jsonl_export(&stack, "tasks/1", &all_before).await;
    cli_exports_and_creates_like_the_api(&stack, &all_before, &p.task).await;
    accept_encoding_compresses_the_same_bytes(&stack, &all_before).await;
    later_traces_scores_and_a_rebuild_change_no_byte(&stack, &p, &all_before).await;
    a_deleted_member_is_omitted_and_counted(&stack, &p).await;
    random_selection_is_seeded_and_limited(&stack).await;
    the_original_services_build_and_export_paths(&stack, &p.task).await;
    a_deleted_dataset_is_gone_and_its_name_never_reused(&stack).await;
    a_replay_into_an_empty_database_restores_every_dataset(&stack).await;
}

/// 150 dataset traces posted with keys, every third scored; the most common task type among them
/// selects several through the list API.
async fn posted_and_scored_traces_select_several_by_task(stack: &Stack) -> Posted {
    let traces = tunix_testkit::dataset();
    let mut by_id: HashMap<String, Value> = HashMap::new();
    let mut ids = Vec::new();
    for (n, t) in traces.iter().take(150).enumerate() {
        let id = post(stack, t, &format!("datasets-test-{n}")).await;
        by_id.insert(id.to_string(), t.clone());
        ids.push(id);
    }
    stack.wait_converged(ids.len(), CONVERGE).await;
    for id in ids.iter().step_by(3) {
        score(stack, id, "correct", 1.0).await;
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
    for t in by_id.values() {
        if let Some(task) = t["meta"]["task_type"].as_str() {
            *counts.entry(task.to_owned()).or_default() += 1;
        }
    }
    let (task, _) = counts
        .into_iter()
        .max_by_key(|(k, n)| (*n, k.clone()))
        .unwrap();
    let want = listed(stack, &format!("meta.task_type={task}")).await;
    assert!(
        want.len() >= 4,
        "the filter selects several: {}",
        want.len()
    );
    Posted {
        by_id,
        ids,
        task,
        want,
    }
}

/// Bad definitions: 422 with the field path; never 5xx.
async fn bad_definitions_answer_422_with_the_field_path(stack: &Stack) {
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
        let (status, answer) = create(stack, &body).await;
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
}

/// `tasks@1`: created ready (201) with every listed match as a member and a quarter for eval.
/// Returns the dataset.
async fn a_definition_freezes_a_split_dataset_of_the_filters_matches(
    stack: &Stack,
    p: &Posted,
) -> Value {
    let (status, ds) = create(stack, &tasks_definition(&p.task)).await;
    assert_eq!(status, 201, "{ds}");
    assert_eq!(ds["state"], "ready");
    assert_eq!(ds["key"], "tasks-1");
    let n = p.n();
    assert_eq!(ds["member_count"], n);
    let eval = p.eval();
    assert_eq!(ds["eval_count"], eval);
    assert_eq!(ds["train_count"], n - eval);
    ds
}

/// Same definition: idempotent; another one: 409; a colliding key: 409.
async fn the_same_definition_is_idempotent_and_colliding_keys_conflict(
    stack: &Stack,
    p: &Posted,
    ds: &Value,
) {
    let definition = tasks_definition(&p.task);
    let (status, again) = create(stack, &definition).await;
    assert_eq!(status, 200);
    assert_eq!(again["digest"], ds["digest"]);
    let mut other = definition.clone();
    other["limit"] = json!(2);
    assert_eq!(create(stack, &other).await.0, 409);
    assert_eq!(
        create(stack, &json!({"name": "tasks-1", "version": "x"}))
            .await
            .0,
        201
    );
    assert_eq!(
        create(stack, &json!({"name": "tasks", "version": "1-x"}))
            .await
            .0,
        409,
        "tasks + 1-x has the key tasks-1-x, taken by tasks-1 + x"
    );
}

/// Exports: the members in order, every format's shape, scores and split with each row.
async fn every_format_exports_the_members_in_order_with_scores_and_split(
    stack: &Stack,
    p: &Posted,
) {
    let (n, eval) = (p.n(), p.eval());
    let (trace_rows, omitted) = export(stack, "/api/datasets/tasks/1/export?format=trace").await;
    assert_eq!(omitted, 0);
    let trace_rows = rows(&trace_rows);
    let got: Vec<String> = trace_rows
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, p.want, "newest first, like the list");
    let mut evals = 0;
    for r in &trace_rows {
        let t = &p.by_id[r["id"].as_str().unwrap()];
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
        let scored = p.ids.iter().position(|x| *x == id).unwrap() % 3 == 0;
        assert_eq!(
            r["scores"]["correct"]["value"].as_f64(),
            scored.then_some(1.0)
        );
        evals += usize::from(r["split"] == "eval");
    }
    assert_eq!(evals as i64, eval);
    let (sft, _) = export(stack, "/api/datasets/tasks/1/export?format=tunix_sft").await;
    for r in rows(&sft) {
        let t = &p.by_id[r["id"].as_str().unwrap()];
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
        stack,
        "/api/datasets/tasks/1/export?format=training_example",
    )
    .await;
    let (te_again, _) = export(
        stack,
        "/api/datasets/tasks/1/export?format=training_example",
    )
    .await;
    assert_eq!(te, te_again, "deterministic ids: the same bytes");
    for r in rows(&te) {
        let t = &p.by_id[r["metadata"]["source_trace_id"].as_str().unwrap()];
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
    let (chat, _) = export(stack, "/api/datasets/tasks/1/export?format=chat&split=eval").await;
    let chat = rows(&chat);
    assert_eq!(chat.len() as i64, eval);
    assert!(chat.iter().all(|r| r["split"] == "eval"));
    assert_eq!(chat[0]["messages"][0]["role"], "user");
    let (train, _) = export(stack, "/api/datasets/tasks/1/export?split=train").await;
    assert_eq!(rows(&train).len() as i64, n - eval);
}

/// Accept-Encoding: the same bytes, compressed.
async fn accept_encoding_compresses_the_same_bytes(stack: &Stack, all_before: &str) {
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
}

/// Frozen: new matching traces, new scores and a rebuild change nothing.
async fn later_traces_scores_and_a_rebuild_change_no_byte(
    stack: &Stack,
    p: &Posted,
    all_before: &str,
) {
    let template = p.by_id[&p.want[0]].clone();
    let late = post(stack, &template, "datasets-test-late").await;
    stack.wait_converged(p.ids.len() + 1, CONVERGE).await;
    score(stack, &late, "correct", 0.0).await;
    score(stack, &p.ids[1], "quality", 0.5).await;
    stack.rebuild_into(&stack.db.url).await;
    assert_eq!(
        listed(stack, &format!("meta.task_type={}", p.task))
            .await
            .len(),
        p.want.len() + 1,
        "the late trace matches the filter"
    );
    let (all_after, _) = export(stack, "/api/datasets/tasks/1/export").await;
    assert_eq!(
        all_after, all_before,
        "byte-identical after new traces, scores and a rebuild"
    );
}

/// Deletion wins: a deleted member is omitted and counted.
async fn a_deleted_member_is_omitted_and_counted(stack: &Stack, p: &Posted) {
    let doomed = &p.want[1];
    let path = format!("/api/traces/{doomed}");
    assert_eq!(stack.client().delete(&path).await.0, 202);
    eventually(CONVERGE, "the trace is gone", || async {
        (stack.get(&path).await.0 == 404).then_some(())
    })
    .await;
    let (after_delete, omitted) = export(stack, "/api/datasets/tasks/1/export").await;
    assert_eq!(omitted, 1);
    assert_eq!(rows(&after_delete).len(), p.want.len() - 1);
    assert!(!after_delete.contains(doomed.as_str()));
}

/// Random selection: seeded, limited, the same membership for the same seed.
async fn random_selection_is_seeded_and_limited(stack: &Stack) {
    let random = |name: &str, seed: i64| json!({"name": name, "version": "1", "selection": "random", "seed": seed, "limit": 20});
    let (_, r1) = create(stack, &random("rand-a", 9)).await;
    let (_, r2) = create(stack, &random("rand-b", 9)).await;
    let (_, r3) = create(stack, &random("rand-c", 10)).await;
    assert_eq!(r1["member_count"], 20);
    assert_eq!(r1["digest"], r2["digest"]);
    assert_ne!(r1["digest"], r3["digest"]);
}

/// The original service's paths: `POST /api/datasets/build` and `export.jsonl`.
async fn the_original_services_build_and_export_paths(stack: &Stack, task: &str) {
    let (status, built) = stack
        .client()
        .post(
            "/api/datasets/build",
            &json!({"dataset_name": "orig", "dataset_version": "1",
                    "filters": {"task_type": task}, "limit": 3}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(built["dataset_key"], "orig-1");
    assert_eq!(built["trace_count"], 3);
    assert_eq!(built["manifest_path"], "/api/datasets/orig/1");
    let (orig, _) = export(stack, "/api/datasets/orig-1/export.jsonl?format=tunix_sft").await;
    assert_eq!(rows(&orig).len(), 3);
}

/// The listing, then deleting a dataset: gone, and its name is never reused.
async fn a_deleted_dataset_is_gone_and_its_name_never_reused(stack: &Stack) {
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
    assert_eq!(stack.client().delete("/api/datasets/orig/1").await.0, 202);
    assert_eq!(stack.get("/api/datasets/orig/1").await.0, 404);
    assert_eq!(
        create(stack, &json!({"name": "orig", "version": "1"}))
            .await
            .0,
        409
    );
}

/// Every dataset's (name, version, state, member count, digest, members) in `db`.
async fn dataset_summary(
    db: &TestDb,
) -> Vec<(String, String, String, Option<i64>, Option<String>, i64)> {
    sqlx::query_as(
        "SELECT d.name, d.version, d.state, d.member_count, d.digest,
                (SELECT count(*) FROM dataset_members m WHERE m.build_id = d.build_id)
         FROM datasets d ORDER BY d.name, d.version",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

/// The `tasks` dataset's members in `db`: (position, trace, eval, scores).
async fn tasks_members(db: &TestDb) -> Vec<(i64, Uuid, bool, String)> {
    sqlx::query_as(
        "SELECT m.position, m.trace_id, m.eval, m.scores::text FROM dataset_members m
         JOIN datasets d ON d.build_id = m.build_id
         WHERE d.name = 'tasks' ORDER BY m.position",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

/// Replaying the topic into an empty database restores every dataset and its membership.
async fn a_replay_into_an_empty_database_restores_every_dataset(stack: &Stack) {
    eventually(CONVERGE, "the deletion applied", || async {
        let s = dataset_summary(&stack.db).await;
        s.iter()
            .any(|r| r.0 == "orig" && r.2 == "deleted" && r.5 == 0)
            .then_some(())
    })
    .await;
    let original = dataset_summary(&stack.db).await;
    let fresh = TestDb::new().await;
    stack.rebuild_into(&fresh.url).await;
    assert_eq!(dataset_summary(&fresh).await, original);
    assert_eq!(tasks_members(&fresh).await, tasks_members(&stack.db).await);
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
    let body = tunix_testkit::dataset_jsonl();
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
    let trace = &tunix_testkit::dataset()[0];
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
