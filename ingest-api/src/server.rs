//! Serving the router: the listening address rule, the broker probe behind readiness, and the
//! graceful shutdown sequence.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use tunix_schemas::{Encoder, Framing};

use crate::{AppState, IngestConfig};

/// Probes the broker every second and reports it as the `broker` readiness check.
fn spawn_broker_probe(state: Arc<AppState>, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {},
                _ = shutdown.cancelled() => return,
            }
            let probe = state.clone();
            let result = tokio::task::spawn_blocking(move || {
                probe.producer.broker_reachable(Duration::from_secs(2))
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            let was = state.readiness.check("broker");
            match result {
                Ok(()) => {
                    state.readiness.set("broker", true, "ok");
                    state.metrics.broker_up.set(1.0);
                    if was == Some(false) {
                        tracing::info!("broker reachable");
                    }
                }
                Err(e) => {
                    if was != Some(false) {
                        tracing::warn!(error = %e, "broker unreachable");
                    }
                    state.readiness.set("broker", false, e);
                    state.metrics.broker_up.set(0.0);
                }
            }
            state
                .metrics
                .queue_depth
                .set(state.producer.queue_depth() as f64);
        }
    });
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

/// The address to listen on: without API keys, only loopback unless explicitly allowed.
pub fn effective_addr(cfg: &IngestConfig) -> SocketAddr {
    let addr = cfg.api_addr;
    if cfg.api_keys.enabled() {
        tracing::info!("API key authentication is on");
        return addr;
    }
    if addr.ip().is_loopback() {
        tracing::warn!(%addr, "no API_KEYS configured: authentication is off, listening on loopback only");
        return addr;
    }
    if cfg.allow_unauthenticated_public {
        tracing::warn!(%addr, "no API_KEYS configured and ALLOW_UNAUTHENTICATED_PUBLIC=true: the API is open to anyone who can reach this address");
        return addr;
    }
    let loopback = SocketAddr::from(([127, 0, 0, 1], addr.port()));
    tracing::warn!(
        requested = %addr,
        listening = %loopback,
        "no API_KEYS configured: listening on loopback only; configure API_KEYS, or set ALLOW_UNAUTHENTICATED_PUBLIC=true to listen on {addr} without authentication"
    );
    loopback
}

/// Serves until `shutdown` is cancelled, then: readiness 503, (after `SHUTDOWN_DELAY_MS`) no new
/// connections, in-flight requests finish (bounded), and the producer is flushed.
pub async fn run(
    state: Arc<AppState>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let cfg = &state.cfg;
    tracing::info!(
        addr = %listener.local_addr()?,
        brokers = %cfg.kafka.brokers,
        topic = %cfg.kafka.topic,
        database = %cfg.db.redacted_url(),
        trace_max_bytes = cfg.trace_max_bytes,
        "ingest-api serving"
    );
    cfg.kafka.check_access().await?;
    register_schemas(&state, &shutdown).await?;
    spawn_broker_probe(state.clone(), shutdown.clone());
    tokio::spawn(crate::governance::run_operations(
        state.clone(),
        shutdown.clone(),
    ));

    let stop_accepting = CancellationToken::new();
    {
        let (shutdown, stop, readiness, delay) = (
            shutdown.clone(),
            stop_accepting.clone(),
            state.readiness.clone(),
            cfg.shutdown_delay,
        );
        tokio::spawn(async move {
            shutdown.cancelled().await;
            readiness.start_draining();
            tokio::time::sleep(delay).await;
            stop.cancel();
        });
    }
    let drained = tunix_pipeline::http::serve(
        listener,
        crate::router::app(state.clone()),
        stop_accepting,
        cfg.drain_timeout,
    )
    .await;
    let producer_state = state.clone();
    let flushed =
        tokio::task::spawn_blocking(move || producer_state.producer.flush(Duration::from_secs(5)))
            .await?;
    tracing::info!(drained, flushed = flushed.is_ok(), "ingest-api stopped");
    Ok(())
}
