//! Documentation is part of the contract: the README's configuration table lists every variable
//! every service reads, and its metrics table lists every metric name.

use std::collections::BTreeSet;

fn readme() -> String {
    std::fs::read_to_string(tunix_testkit::repo_root().join("README.md")).expect("README.md")
}

/// Variables named in a README table row (`| \`NAME\` | ...`).
fn documented_variables(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| l.split('`').nth(1))
        .filter(|name| {
            name.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_owned)
        .collect()
}

fn code_variables() -> BTreeSet<String> {
    tunix_ingest_api::IngestConfig::variables()
        .into_iter()
        .chain(tunix_writer::variables())
        .chain(tunix_projector::variables())
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_configuration_variable_is_documented() {
    let documented = documented_variables(&readme());
    let missing: Vec<String> = code_variables().difference(&documented).cloned().collect();
    assert!(
        missing.is_empty(),
        "README configuration table lacks: {missing:?}"
    );
}

#[test]
fn every_metric_name_is_documented() {
    let text = readme();
    let mut names: Vec<String> = tunix_ingest_api::http::metrics::names::ALL
        .iter()
        .map(|s| s.to_string())
        .collect();
    names.extend(
        [
            tunix_writer::metric_names::ROWS_INSERTED,
            tunix_writer::metric_names::DUPLICATES_SKIPPED,
            tunix_writer::metric_names::ROWS_DELETED,
            tunix_writer::metric_names::INSERT_LATENCY,
            tunix_writer::metric_names::IDEMPOTENCY_CONFLICTS,
            tunix_projector::metric_names::VIEW_VERSION,
            tunix_projector::metric_names::REBUILD_IN_PROGRESS,
            tunix_projector::metric_names::REBUILD_PROGRESS,
            tunix_projector::metric_names::REBUILD_LAG,
            tunix_projector::metric_names::SCORES_APPLIED,
            tunix_projector::metric_names::SCORES_IGNORED,
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    for suffix in [
        "records_consumed_total",
        "records_applied_total",
        "batches_total",
        "batch_size",
        "batch_latency_seconds",
        "lag_records",
        "lag_seconds",
        "dlq_total",
        "postgres_errors_total",
        "fenced_total",
        "rebalances_total",
        "assigned_partitions",
        "gaps_total",
        "broker_requests_total",
    ] {
        names.push(format!("<svc>_{suffix}"));
    }
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !text.contains(&format!("`{n}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "README metrics table lacks: {missing:?}"
    );
}

/// Every variable `infra/compose.yaml` sets for a tunix-rt service is one the services read and
/// the README documents.
#[test]
fn compose_sets_only_documented_variables() {
    let text =
        std::fs::read_to_string(tunix_testkit::repo_root().join("infra/compose.yaml")).unwrap();
    let mut compose: serde_yaml::Value = serde_yaml::from_str(&text).expect("compose.yaml parses");
    compose.apply_merge().expect("merge keys resolve");
    let documented = documented_variables(&readme());
    let code = code_variables();
    let services = compose["services"].as_mapping().expect("services");
    let mut checked = 0;
    for (name, service) in services {
        let ours = service["image"].as_str() == Some("tunix-rt:local");
        if !ours {
            continue;
        }
        let mut service = service.clone();
        service.apply_merge().unwrap();
        let env = service["environment"]
            .as_mapping()
            .unwrap_or_else(|| panic!("{name:?} has an environment"));
        for key in env.keys() {
            let key = key.as_str().unwrap();
            assert!(
                documented.contains(key),
                "compose sets {key} for {name:?}, but the README table does not list it"
            );
            assert!(
                code.contains(key) || key == "RUST_LOG",
                "compose sets {key} for {name:?}, but no service reads it"
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "checked {checked} variables");
    for service in [
        "ingest-api",
        "writer",
        "projector",
        "init",
        "kafka",
        "postgres",
    ] {
        assert!(services.contains_key(service), "compose runs {service}");
    }
    assert!(
        text.contains("KAFKA_PROCESS_ROLES: broker,controller"),
        "Kafka runs in KRaft mode"
    );
}

/// The README's authentication table lists every `/api` route with the scope the router enforces
/// (`ingest-api/tests/api/auth.rs` proves the enforcement).
#[test]
fn every_api_route_is_listed_with_its_scope() {
    let text = readme();
    for (method, path, scope) in tunix_ingest_api::router::ROUTE_SCOPES {
        let scope = match scope {
            Some(tunix_ingest_api::http::auth::Scope::Ingest) => "`ingest`",
            Some(tunix_ingest_api::http::auth::Scope::Read) => "`read`",
            Some(tunix_ingest_api::http::auth::Scope::Admin) => "`admin`",
            None => "any valid key",
        };
        let row = format!("| `{method} {path}` | {scope} |");
        assert!(text.contains(&row), "README lacks the row {row}");
    }
}

/// `infra/compose.yaml` runs the Apache Kafka major version that the scripts and tests fetch
/// (`infra/kafka/pom.xml`), with every shared broker setting (`infra/kafka/broker.properties`)
/// as the image's `KAFKA_*` variable of the same value.
#[test]
fn compose_runs_the_kafka_the_tests_run() {
    let root = tunix_testkit::repo_root();
    let text = std::fs::read_to_string(root.join("infra/compose.yaml")).unwrap();
    let compose: serde_yaml::Value = serde_yaml::from_str(&text).expect("compose.yaml parses");
    let kafka = &compose["services"]["kafka"];
    let pom = std::fs::read_to_string(root.join("infra/kafka/pom.xml")).unwrap();
    let pinned = pom
        .split("<kafka.version>")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("the pom pins kafka.version");
    let image = kafka["image"].as_str().expect("kafka image");
    let tag = image.rsplit(':').next().unwrap();
    assert_eq!(
        tag.split('.').next(),
        pinned.split('.').next(),
        "compose runs {image}, the scripts and tests Kafka {pinned}"
    );
    let env = kafka["environment"]
        .as_mapping()
        .expect("kafka environment");
    let value = |v: &serde_yaml::Value| match v {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        other => panic!("unexpected value {other:?}"),
    };
    let shared = std::fs::read_to_string(root.join("infra/kafka/broker.properties")).unwrap();
    let mut checked = 0;
    for line in shared.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, expected) = line.split_once('=').expect("key=value");
        let var = format!("KAFKA_{}", key.to_uppercase().replace('.', "_"));
        let got = env
            .get(serde_yaml::Value::String(var.clone()))
            .unwrap_or_else(|| panic!("compose's kafka lacks {var} ({key}={expected})"));
        assert_eq!(
            value(got),
            expected,
            "{var} in compose vs {key} in broker.properties"
        );
        checked += 1;
    }
    assert!(checked >= 8, "checked {checked} settings");
}
