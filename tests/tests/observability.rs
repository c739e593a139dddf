//! Prometheus (Debian's package, a real one) scrapes every service with the shipped
//! `infra/prometheus.yml`, and every metric the Grafana dashboard queries exists.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use tunix_e2e::{Stack, StackOptions};
use tunix_testkit::{dataset, eventually, free_port, Service, CONVERGE};

fn dashboard_exprs() -> Vec<String> {
    let text =
        std::fs::read_to_string(tunix_testkit::repo_root().join("infra/grafana/tunix-rt.json"))
            .unwrap();
    let dash: Value = serde_json::from_str(&text).expect("dashboard JSON parses");
    dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect()
}

fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if expr[i..].starts_with("tunix_")
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'))
        {
            let end = expr[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(expr.len(), |e| i + e);
            names.insert(expr[i..end].to_owned());
            i = end;
        } else {
            i += 1;
        }
    }
    names
}

/// GET `path` with `query` from Prometheus' HTTP API at `base`; `None` until it answers JSON.
async fn prometheus(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    query: &[(&str, &str)],
) -> Option<Value> {
    let resp = http.get(format!("{base}{path}")).query(query).send().await;
    resp.ok()?.json().await.ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_every_service_and_every_dashboard_metric_exists() {
    let stack = Stack::start(StackOptions::default()).await;
    // Traffic: accepted, rejected and deleted traces.
    let data = dataset();
    for body in &data[..20] {
        assert_eq!(stack.post(body).await.0, 202);
    }
    assert_eq!(stack.post(&serde_json::json!({"prompt": ""})).await.0, 422);
    stack.wait_converged(20, CONVERGE).await;

    let shipped =
        std::fs::read_to_string(tunix_testkit::repo_root().join("infra/prometheus.yml")).unwrap();
    let config = shipped
        .replace("127.0.0.1:8080", &stack.api_addr)
        .replace("127.0.0.1:9101", &stack.writer_ops)
        .replace("127.0.0.1:9102", &stack.projector_ops);
    assert_ne!(
        config, shipped,
        "the shipped config targets the local stack's addresses"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    let port = free_port();
    let _prometheus = Service::start_with_args(
        "prometheus",
        "prometheus".into(),
        vec![
            format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ],
        Vec::new(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    eventually(Duration::from_secs(60), "all three targets up", || async {
        let targets = prometheus(&http, &base, "/api/v1/targets", &[]).await?;
        let active = targets["data"]["activeTargets"].as_array()?;
        let up: BTreeSet<String> = active
            .iter()
            .filter(|t| t["health"] == "up")
            .map(|t| t["labels"]["job"].as_str().unwrap_or_default().to_owned())
            .collect();
        (up.len() == 3).then_some(())
    })
    .await;

    let exprs = dashboard_exprs();
    assert!(exprs.len() >= 10, "the dashboard has its panels");
    let names: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    for required in [
        "tunix_ingest_traces_accepted_total",
        "tunix_ingest_produce_latency_seconds_bucket",
        "tunix_writer_lag_records",
        "tunix_projector_lag_seconds",
        "tunix_writer_batch_latency_seconds_bucket",
        "tunix_writer_dlq_total",
    ] {
        assert!(names.contains(required), "the dashboard queries {required}");
    }
    for name in &names {
        eventually(
            Duration::from_secs(60),
            &format!("Prometheus has series for {name}"),
            || async {
                let series = prometheus(
                    &http,
                    &base,
                    "/api/v1/series",
                    &[("match[]", name.as_str())],
                )
                .await?;
                (!series["data"].as_array()?.is_empty()).then_some(())
            },
        )
        .await;
    }
    for expr in &exprs {
        let result = prometheus(&http, &base, "/api/v1/query", &[("query", expr.as_str())])
            .await
            .expect("a query answer");
        assert_eq!(result["status"], "success", "{expr}: {result}");
    }
    let up = prometheus(
        &http,
        &base,
        "/api/v1/query",
        &[("query", "up{job=~\"tunix-.*\"}")],
    )
    .await
    .expect("a query answer");
    let values: Vec<&str> = up["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"][1].as_str().unwrap())
        .collect();
    assert_eq!(values, vec!["1", "1", "1"], "every service is up");
}
