//! `tunix-admin datasets ...`: a client of ingest-api's dataset routes, so the API's rules and
//! authentication apply to it as to any other client.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use futures::StreamExt;
use serde_json::{json, Map, Value};

/// Where the API is.
#[derive(Args)]
pub struct Api {
    /// ingest-api's base URL.
    #[arg(long, env = "TUNIX_API", default_value = "http://127.0.0.1:8080")]
    api: String,
    /// A bearer key (`admin` to create or delete, `read` to list or export).
    #[arg(long, env = "TUNIX_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
}

/// The dataset commands.
#[derive(Subcommand)]
pub enum Datasets {
    /// Create (freeze) a dataset from list filters.
    Create {
        /// Name (letters, digits, '.', '_', '-').
        name: String,
        /// Version.
        version: String,
        /// A list filter, repeatable: `meta.run=17`, `tag=math`, `q=paris`, `score.correct=1`.
        #[arg(long = "filter", value_name = "PARAM=VALUE")]
        filters: Vec<String>,
        /// `latest` or `random`.
        #[arg(long, default_value = "latest")]
        selection: String,
        /// Seed of a random selection.
        #[arg(long)]
        seed: Option<i64>,
        /// At most this many traces.
        #[arg(long)]
        limit: Option<i64>,
        /// Fraction of the members in the eval split.
        #[arg(long, requires = "split_seed")]
        eval_fraction: Option<f64>,
        /// Seed of the split.
        #[arg(long)]
        split_seed: Option<i64>,
        #[command(flatten)]
        api: Api,
    },
    /// List the datasets with their sizes and split counts.
    List {
        #[command(flatten)]
        api: Api,
    },
    /// Export a dataset to a file (or `-` for stdout), with progress on stderr.
    Export {
        /// Name.
        name: String,
        /// Version.
        version: String,
        /// trace, tunix_sft, training_example, chat or parquet.
        #[arg(long, default_value = "trace")]
        format: String,
        /// all, train or eval.
        #[arg(long, default_value = "all")]
        split: String,
        /// Output file; `-` writes to stdout.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        api: Api,
    },
    /// Delete a dataset (its traces stay; its name and version are never reused).
    Delete {
        /// Name.
        name: String,
        /// Version.
        version: String,
        #[command(flatten)]
        api: Api,
    },
}

impl Api {
    /// The base URL.
    pub fn base(&self) -> &str {
        &self.api
    }

    /// A request to `path`, with the key if one is set.
    pub fn request(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        let req = client.request(method, format!("{}{path}", self.api.trim_end_matches('/')));
        match &self.api_key {
            Some(k) => req.bearer_auth(k),
            None => req,
        }
    }
}

/// `--filter PARAM=VALUE` flags as the API's JSON filter (a repeated parameter becomes an
/// array): the one encoding datasets and bulk deletes share.
pub fn filter_json(filters: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut filter = Map::new();
    for f in filters {
        let Some((k, v)) = f.split_once('=') else {
            bail!("--filter {f:?}: write PARAM=VALUE, e.g. meta.run=17");
        };
        match filter.get_mut(k) {
            Some(Value::Array(a)) => a.push(json!(v)),
            Some(prev) => *prev = json!([prev.clone(), v]),
            None => {
                filter.insert(k.to_owned(), json!(v));
            }
        }
    }
    Ok(filter)
}

/// Turns a non-2xx answer into an error carrying the API's `detail`.
pub async fn check(resp: reqwest::Response) -> anyhow::Result<reqwest::Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let detail = match &body["detail"] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    bail!("{status}: {detail}")
}

fn human_bytes(n: f64) -> String {
    if n >= 1e9 {
        format!("{:.2} GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1} MB", n / 1e6)
    } else {
        format!("{:.0} KB", n / 1e3)
    }
}

fn summary_line(d: &Value) -> String {
    format!(
        "{}@{}  {}  {} members ({} train, {} eval)  digest {}",
        d["name"].as_str().unwrap_or("?"),
        d["version"].as_str().unwrap_or("?"),
        d["state"].as_str().unwrap_or("?"),
        d["member_count"],
        d["train_count"],
        d["eval_count"],
        d["digest"]
            .as_str()
            .map(|s| &s[..12.min(s.len())])
            .unwrap_or("-"),
    )
}

/// Runs a dataset command.
pub async fn run(cmd: Datasets) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()?;
    match cmd {
        Datasets::Create {
            name,
            version,
            filters,
            selection,
            seed,
            limit,
            eval_fraction,
            split_seed,
            api,
        } => {
            let filter = filter_json(&filters)?;
            let mut body = json!({"name": name, "version": version, "filter": filter,
                                  "selection": selection, "seed": seed, "limit": limit});
            if let (Some(f), Some(s)) = (eval_fraction, split_seed) {
                body["split"] = json!({"eval_fraction": f, "seed": s});
            }
            eprintln!("creating {name}@{version} (selecting and freezing the members)...");
            let started = Instant::now();
            let resp = api
                .request(&client, reqwest::Method::POST, "/api/datasets")
                .json(&body)
                .send()
                .await
                .with_context(|| format!("POST {}/api/datasets", api.api))?;
            let status = resp.status();
            let d: Value = check(resp).await?.json().await?;
            let what = match status.as_u16() {
                201 => "created",
                200 => "already exists with this definition",
                _ => "accepted; still being built",
            };
            println!("{}", summary_line(&d));
            eprintln!("{what} in {:.1} s", started.elapsed().as_secs_f64());
        }
        Datasets::List { api } => {
            let resp = api
                .request(&client, reqwest::Method::GET, "/api/datasets")
                .send()
                .await
                .with_context(|| format!("GET {}/api/datasets", api.api))?;
            let list: Vec<Value> = check(resp).await?.json().await?;
            if list.is_empty() {
                eprintln!("no datasets");
            }
            for d in &list {
                println!("{}", summary_line(d));
            }
        }
        Datasets::Delete { name, version, api } => {
            let resp = api
                .request(
                    &client,
                    reqwest::Method::DELETE,
                    &format!("/api/datasets/{name}/{version}"),
                )
                .send()
                .await?;
            check(resp).await?;
            println!("deleted {name}@{version}");
        }
        Datasets::Export {
            name,
            version,
            format,
            split,
            out,
            api,
        } => {
            let info: Value = check(
                api.request(
                    &client,
                    reqwest::Method::GET,
                    &format!("/api/datasets/{name}/{version}"),
                )
                .send()
                .await?,
            )
            .await?
            .json()
            .await?;
            let expected = match split.as_str() {
                "train" => info["train_count"].as_u64(),
                "eval" => info["eval_count"].as_u64(),
                _ => info["member_count"].as_u64(),
            };
            let resp = check(
                api.request(
                    &client,
                    reqwest::Method::GET,
                    &format!("/api/datasets/{name}/{version}/export"),
                )
                .query(&[("format", &format), ("split", &split)])
                .send()
                .await?,
            )
            .await?;
            let omitted: u64 = resp
                .headers()
                .get("x-tunix-omitted")
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(0);
            let expected = expected.map(|n| n.saturating_sub(omitted));
            let mut sink: Box<dyn Write> = if out.as_os_str() == "-" {
                Box::new(std::io::stdout().lock())
            } else {
                Box::new(std::io::BufWriter::new(
                    std::fs::File::create(&out)
                        .with_context(|| format!("create {}", out.display()))?,
                ))
            };
            let jsonl = format != "parquet";
            let tty = std::io::stderr().is_terminal();
            let started = Instant::now();
            let mut last = Instant::now();
            let (mut rows, mut bytes) = (0u64, 0u64);
            let mut body = resp.bytes_stream();
            let progress = |rows: u64, bytes: u64, done: bool| {
                let secs = started.elapsed().as_secs_f64().max(1e-3);
                let rate = rows as f64 / secs;
                let eta = match (expected, jsonl) {
                    (Some(n), true) if rate > 0.0 && n > rows => {
                        format!(", ETA {:.0} s", (n - rows) as f64 / rate)
                    }
                    _ => String::new(),
                };
                let of = expected
                    .filter(|_| jsonl)
                    .map(|n| format!("/{n}"))
                    .unwrap_or_default();
                let line = if jsonl {
                    format!(
                        "{rows}{of} rows, {}, {rate:.0} rows/s{eta}",
                        human_bytes(bytes as f64)
                    )
                } else {
                    format!(
                        "{} ({}/s)",
                        human_bytes(bytes as f64),
                        human_bytes(bytes as f64 / secs)
                    )
                };
                if tty {
                    eprint!("\r\x1b[2K{line}");
                    if done {
                        eprintln!();
                    }
                } else if done {
                    eprintln!("{line}");
                } else {
                    eprintln!("  {line}");
                }
            };
            while let Some(chunk) = body.next().await {
                let chunk = chunk.context("the export stream broke off")?;
                if jsonl {
                    rows += chunk.iter().filter(|b| **b == b'\n').count() as u64;
                }
                bytes += chunk.len() as u64;
                sink.write_all(&chunk)?;
                let every = if tty {
                    Duration::from_millis(200)
                } else {
                    Duration::from_secs(5)
                };
                if last.elapsed() >= every {
                    progress(rows, bytes, false);
                    last = Instant::now();
                }
            }
            sink.flush()?;
            progress(rows, bytes, true);
            let secs = started.elapsed().as_secs_f64();
            let target = if out.as_os_str() == "-" {
                "stdout".to_owned()
            } else {
                out.display().to_string()
            };
            eprintln!(
                "exported {name}@{version} ({format}, split {split}) to {target}: {}{} in {secs:.1} s; {omitted} member(s) omitted (trace deleted)",
                if jsonl { format!("{rows} rows, ") } else { String::new() },
                human_bytes(bytes as f64),
            );
            if let (true, Some(n)) = (jsonl, expected) {
                if rows != n {
                    bail!("expected {n} rows, got {rows}");
                }
            }
        }
    }
    Ok(())
}
