//! Serving the router: the listening address rule, the broker probe behind readiness, and the
//! graceful shutdown sequence.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

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
    crate::registry::register_schemas(&state, &shutdown).await?;
    spawn_broker_probe(state.clone(), shutdown.clone());
    tokio::spawn(crate::governance::runner::run_operations(
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
