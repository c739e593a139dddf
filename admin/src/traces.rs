//! `tunix-admin traces delete --filter ... [--yes]`: a bulk delete through ingest-api's
//! `/api/deletions` (dry run, confirmation, then progress until done).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Subcommand;
use serde_json::{json, Value};

use crate::datasets::{check, filter_json, Api};

/// The trace commands.
#[derive(Subcommand)]
pub enum Traces {
    /// Delete every trace that matches the filters (erased from every read model, and from the
    /// topic once the broker compacts it). Without --yes, only counts them.
    Delete {
        /// A list filter, repeatable: `meta.run=17`, `tag=math`, `q=paris`,
        /// `created_before=2026-01-01T00:00:00Z`, `score.correct=lt:0.5`. None matches every trace.
        #[arg(long = "filter", value_name = "PARAM=VALUE")]
        filters: Vec<String>,
        /// Delete them (without it: a dry run).
        #[arg(long)]
        yes: bool,
        /// Recorded in the audit log.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        api: Api,
    },
}

fn bar(done: i64, total: i64, started: Instant) -> String {
    let width = 30;
    let frac = if total > 0 {
        (done as f64 / total as f64).clamp(0.0, 1.0)
    } else {
        1.0
    };
    let filled = (frac * width as f64).round() as usize;
    let secs = started.elapsed().as_secs_f64().max(1e-3);
    let rate = done as f64 / secs;
    let eta = if rate > 0.0 && total > done {
        format!(", ETA {:.0} s", (total - done) as f64 / rate)
    } else {
        String::new()
    };
    format!(
        "[{}{}] {done}/{total} ({:.0}%), {rate:.0}/s{eta}",
        "#".repeat(filled),
        "-".repeat(width - filled),
        frac * 100.0
    )
}

/// Runs a trace command.
pub async fn run(cmd: Traces) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()?;
    let Traces::Delete {
        filters,
        yes,
        reason,
        api,
    } = cmd;
    let filter = filter_json(&filters)?;
    let resp = api
        .request(&client, reqwest::Method::POST, "/api/deletions")
        .json(&json!({"filter": filter, "dry_run": true}))
        .send()
        .await
        .with_context(|| format!("POST {}/api/deletions", api.base()))?;
    let plan: Value = check(resp).await?.json().await?;
    let matched = plan["matched"].as_i64().unwrap_or(0);
    eprintln!(
        "{matched} traces match (created before {})",
        plan["created_before"].as_str().unwrap_or("?")
    );
    if !yes {
        eprintln!("dry run: nothing deleted; run again with --yes to delete them");
        return Ok(());
    }
    let resp = api
        .request(&client, reqwest::Method::POST, "/api/deletions")
        .json(&json!({"filter": filter, "token": plan["token"], "reason": reason}))
        .send()
        .await?;
    let op: Value = check(resp).await?.json().await?;
    let id = op["id"]
        .as_str()
        .context("the answer has no operation id")?
        .to_owned();
    eprintln!("deletion {id} started");
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut last_line = Instant::now() - Duration::from_secs(10);
    loop {
        let resp = api
            .request(
                &client,
                reqwest::Method::GET,
                &format!("/api/deletions/{id}"),
            )
            .send()
            .await?;
        let op: Value = check(resp).await?.json().await?;
        let (deleted, total) = (
            op["deleted"].as_i64().unwrap_or(0),
            op["matched"].as_i64().unwrap_or(0),
        );
        let state = op["state"].as_str().unwrap_or("?");
        if tty {
            eprint!("\r{}", bar(deleted, total, started));
        } else if last_line.elapsed() >= Duration::from_secs(5) || state != "running" {
            eprintln!("{}", bar(deleted, total, started));
            last_line = Instant::now();
        }
        match state {
            "running" => tokio::time::sleep(Duration::from_millis(500)).await,
            "done" => {
                if tty {
                    eprintln!();
                }
                println!("deleted {deleted} traces ({id})");
                return Ok(());
            }
            other => {
                if tty {
                    eprintln!();
                }
                bail!(
                    "deletion {id} is {other}: {}",
                    op["error"].as_str().unwrap_or("no reason given")
                );
            }
        }
    }
}
