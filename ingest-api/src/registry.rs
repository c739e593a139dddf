//! Schema Registries, both sides. At start-up, [`register_schemas`] registers our schemas with an
//! external registry (if configured). The handlers serve the *built-in* one: the read-only part of
//! the Confluent Schema Registry REST API for the schemas this build ships, under
//! `/api/registry`, so a downstream client's `schema.registry.url` can be
//! `http://<ingest-api>/api/registry`.
//!
//! Ids: each shipped file's built-in id (`SchemaFile::builtin_id`, pinned forever), plus every id
//! an external registry ever assigned to one of our schemas (remembered in
//! `schema_registry_ids`), so records framed while an external registry was in use stay
//! resolvable here after a move back. Subjects follow TopicRecordNameStrategy on this topic:
//! `<topic>-ai.tunix.events.<Record>`, one version per shipped file of that record.
//!
//! Errors use the registry's shape, `{"error_code": 40403, "message": ...}`, which its clients
//! parse. Authentication is the `read` scope; clients send the key as the basic-auth password.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tunix_schemas::{Encoder, EventKind, Framing, ShippedSchema, BUILTIN_ID_RANGE};

use crate::AppState;

/// The media type of the Schema Registry API.
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

fn answer(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        body.to_string(),
    )
        .into_response()
}

fn error(status: StatusCode, code: u32, message: impl Into<String>) -> Response {
    answer(
        status,
        json!({ "error_code": code, "message": message.into() }),
    )
}

/// The kind whose subject on `topic` is `subject`.
fn kind_of(topic: &str, subject: &str) -> Option<EventKind> {
    EventKind::ALL
        .into_iter()
        .find(|k| k.subject(topic) == subject)
}

/// The built-in versions of `kind`'s subject, oldest first.
fn versions(kind: EventKind) -> Vec<ShippedSchema> {
    let mut out: Vec<ShippedSchema> = ShippedSchema::all()
        .filter(|s| s.file().kind == kind)
        .collect();
    out.sort_by_key(|s| s.file().version);
    out
}

#[utoipa::path(
    get,
    path = "/api/registry/schemas/ids/{id}",
    tag = "schema registry",
    summary = "A schema by id (Confluent Schema Registry API)",
    description = "`{\"schema\": \"<Avro schema text>\"}` for a built-in id (1000000001 and up; see schemas/README.md) or an id an external registry assigned to one of our schemas while it was configured. 404 with error_code 40403 for any other id. Query parameters of newer clients (`subject`, `format`) are accepted and ignored.",
    params(("id" = i32, Path)),
    responses(
        (status = 200, body = Object, content_type = "application/vnd.schemaregistry.v1+json"),
        (status = 404, body = Object),
        (status = 503, body = Object),
    )
)]
/// `GET /api/registry/schemas/ids/{id}`.
pub async fn schema_by_id(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i32>() else {
        return error(StatusCode::NOT_FOUND, 40403, "Schema not found");
    };
    let schema = if BUILTIN_ID_RANGE.contains(&id) {
        ShippedSchema::by_builtin_id(id)
    } else {
        match tunix_pipeline::registry::remembered(&state.pool, id).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "registry: cannot read remembered schema ids");
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    50003,
                    "database unavailable; retry later",
                );
            }
        }
    };
    match schema {
        Some(s) => answer(StatusCode::OK, json!({ "schema": s.file().text })),
        None => error(StatusCode::NOT_FOUND, 40403, "Schema not found"),
    }
}

#[utoipa::path(
    get,
    path = "/api/registry/subjects",
    tag = "schema registry",
    summary = "Subjects (Confluent Schema Registry API)",
    description = "One subject per event type on the topic: `<topic>-ai.tunix.events.<Record>` (TopicRecordNameStrategy).",
    responses((status = 200, body = Vec<String>, content_type = "application/vnd.schemaregistry.v1+json"))
)]
/// `GET /api/registry/subjects`.
pub async fn subjects(State(state): State<Arc<AppState>>) -> Response {
    let topic = &state.cfg.kafka.topic;
    let list: Vec<String> = EventKind::ALL.iter().map(|k| k.subject(topic)).collect();
    answer(StatusCode::OK, json!(list))
}

#[utoipa::path(
    get,
    path = "/api/registry/subjects/{subject}/versions",
    tag = "schema registry",
    summary = "A subject's versions (Confluent Schema Registry API)",
    params(("subject" = String, Path)),
    responses(
        (status = 200, body = Vec<u32>, content_type = "application/vnd.schemaregistry.v1+json"),
        (status = 404, body = Object),
    )
)]
/// `GET /api/registry/subjects/{subject}/versions`.
pub async fn subject_versions(
    State(state): State<Arc<AppState>>,
    Path(subject): Path<String>,
) -> Response {
    match kind_of(&state.cfg.kafka.topic, &subject) {
        Some(kind) => {
            let list: Vec<u32> = versions(kind).iter().map(|s| s.file().version).collect();
            answer(StatusCode::OK, json!(list))
        }
        None => error(StatusCode::NOT_FOUND, 40401, "Subject not found"),
    }
}

#[utoipa::path(
    get,
    path = "/api/registry/subjects/{subject}/versions/{version}",
    tag = "schema registry",
    summary = "One version of a subject (Confluent Schema Registry API)",
    description = "`{subject, version, id, schema}`; `version` is a number or `latest`.",
    params(("subject" = String, Path), ("version" = String, Path)),
    responses(
        (status = 200, body = Object, content_type = "application/vnd.schemaregistry.v1+json"),
        (status = 404, body = Object),
        (status = 422, body = Object),
    )
)]
/// `GET /api/registry/subjects/{subject}/versions/{version}`.
pub async fn subject_version(
    State(state): State<Arc<AppState>>,
    Path((subject, version)): Path<(String, String)>,
) -> Response {
    let Some(kind) = kind_of(&state.cfg.kafka.topic, &subject) else {
        return error(StatusCode::NOT_FOUND, 40401, "Subject not found");
    };
    let all = versions(kind);
    let found = if version == "latest" || version == "-1" {
        all.last().copied()
    } else {
        match version.parse::<u32>() {
            Ok(v) if v >= 1 => all.iter().copied().find(|s| s.file().version == v),
            _ => {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    42202,
                    "The specified version is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"",
                )
            }
        }
    };
    match found {
        Some(s) => answer(
            StatusCode::OK,
            json!({
                "subject": subject,
                "version": s.file().version,
                "id": s.file().builtin_id,
                "schema": s.file().text,
            }),
        ),
        None => error(StatusCode::NOT_FOUND, 40402, "Version not found"),
    }
}

/// Makes the producer frame with the ids of the configured Schema Registry.
///
/// `EVENT_ENCODING=single-object` needs no ids; Confluent framing without `SCHEMA_REGISTRY_URL`
/// uses the built-in ids. With an external registry, every shipped schema is registered under its
/// subject (TopicRecordNameStrategy) and its ids are used from then on; an unreachable registry is
/// retried briefly, then start-up fails, as does a refusal (bad credentials, incompatible
/// schema). The ids are remembered in Postgres so records framed with them stay readable after
/// a move; an id that already means another schema on this topic fails start-up too. Postgres
/// being down does not stop ingestion: remembering is then retried in the background.
pub async fn register_schemas(
    state: &Arc<AppState>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    use tunix_pipeline::registry::{register_all, remember, RegistryError};
    let cfg = &state.cfg;
    if cfg.event_encoding == Framing::SingleObject {
        tracing::info!(
            "EVENT_ENCODING=single-object: events carry schema fingerprints, no registry ids"
        );
        return Ok(());
    }
    let Some(client) = cfg.kafka.registry.client() else {
        tracing::info!("events carry the built-in registry's schema ids (served at /api/registry)");
        return Ok(());
    };
    let mut attempt = 0;
    let registered = loop {
        attempt += 1;
        match register_all(&client, None, &cfg.kafka.topic).await {
            Ok(r) => break r,
            Err(e) if attempt < 4 && matches!(e.downcast_ref(), Some(RegistryError::Unavailable { .. })) => {
                tracing::warn!(error = %e, attempt, "schema registry not reachable yet; retrying");
                tokio::time::sleep(Duration::from_secs(attempt)).await;
            }
            Err(e) => {
                return Err(e.context(format!(
                    "cannot register the event schemas in SCHEMA_REGISTRY_URL={} (unset it to use the built-in registry, or set EVENT_ENCODING=single-object)",
                    client.url()
                )))
            }
        }
    };
    let ids: std::collections::HashMap<_, _> =
        registered.iter().map(|r| (r.schema, r.id)).collect();
    state
        .producer
        .set_encoder(Encoder::confluent(|s| ids.get(&s).copied()).map_err(anyhow::Error::msg)?);
    for r in &registered {
        tracing::info!(subject = %r.subject, file = r.schema.file().file, id = r.id, registry = client.url(), "schema registered");
    }
    // Remember the ids: at once when Postgres answers (a conflict stops start-up), else later.
    let remember_all = {
        let (pool, url) = (state.pool.clone(), client.url().to_owned());
        move || {
            let (pool, url, registered) = (pool.clone(), url.clone(), registered.clone());
            async move {
                for r in &registered {
                    remember(&pool, r.id, r.schema, &url).await?;
                }
                anyhow::Ok(())
            }
        }
    };
    match tokio::time::timeout(Duration::from_secs(5), remember_all()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) if e.downcast_ref::<sqlx::Error>().is_none() => Err(e),
        _ => {
            tracing::warn!(
                "postgres unavailable: remembering the registry's schema ids in the background"
            );
            let shutdown = shutdown.clone();
            let readiness = state.readiness.clone();
            tokio::spawn(async move {
                loop {
                    match remember_all().await {
                        Ok(()) => return,
                        Err(e) if e.downcast_ref::<sqlx::Error>().is_none() => {
                            tracing::error!(error = %e, "schema id conflict");
                            readiness.set("schema_registry", false, e.to_string());
                            return;
                        }
                        Err(_) => {}
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                        _ = shutdown.cancelled() => return,
                    }
                }
            });
            Ok(())
        }
    }
}
