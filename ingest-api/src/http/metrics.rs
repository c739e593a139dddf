//! ingest-api metrics. Names are constants because dashboards and alerts depend on them; the
//! README lists them and a test pins the list.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};

/// Every metric name ingest-api exports.
pub mod names {
    /// Requests by `route` (the path template) and `status`.
    pub const REQUESTS: &str = "tunix_ingest_requests_total";
    /// Request duration by `route`.
    pub const REQUEST_DURATION: &str = "tunix_ingest_request_duration_seconds";
    /// Requests being served now.
    pub const IN_FLIGHT: &str = "tunix_ingest_in_flight_requests";
    /// Validation errors by `reason` (the pydantic-style error type, e.g. `string_too_long`).
    pub const VALIDATION_FAILURES: &str = "tunix_ingest_validation_failures_total";
    /// Request body bytes read from the wire on the ingest routes.
    pub const BYTES_IN: &str = "tunix_ingest_bytes_in_total";
    /// Traces acknowledged by the broker (2xx answered).
    pub const TRACES_ACCEPTED: &str = "tunix_ingest_traces_accepted_total";
    /// Time from handing events to the producer until the broker acknowledged them.
    pub const PRODUCE_LATENCY: &str = "tunix_ingest_produce_latency_seconds";
    /// Failed appends by `reason` (`too_large`, `queue_full`, `timeout`, `broker`).
    pub const PRODUCE_ERRORS: &str = "tunix_ingest_produce_errors_total";
    /// Events handed to the producer and not yet acknowledged.
    pub const PRODUCER_QUEUE_DEPTH: &str = "tunix_ingest_producer_queue_depth";
    /// 1 while the broker answers metadata requests, else 0.
    pub const BROKER_UP: &str = "tunix_ingest_broker_up";
    /// Replacements made by redaction rules (`REDACTION_RULES`), by `rule`, in accepted traces.
    pub const REDACTIONS: &str = "tunix_ingest_redactions_total";
    /// Traces erased, by `via` (`delete`, `bulk_delete`, `retention`).
    pub const TRACES_ERASED: &str = "tunix_ingest_traces_erased_total";
    /// Traces that running bulk deletes still have to erase.
    pub const BULK_DELETE_REMAINING: &str = "tunix_ingest_bulk_delete_remaining";
    /// Completed retention sweeps (`RETENTION_DAYS`).
    pub const RETENTION_SWEEPS: &str = "tunix_ingest_retention_sweeps_total";
    /// Traces past the retention period not yet erased, as of the current sweep's last round.
    pub const RETENTION_BACKLOG: &str = "tunix_ingest_retention_backlog";

    /// OTLP spans received on `POST /v1/traces`, by `outcome`: `stored`, `not_inference`,
    /// `duplicate` (accepted), `bad_ids`, `no_content`, `invalid`, `too_large`, `deleted` (refused).
    pub const OTLP_SPANS: &str = "tunix_ingest_otlp_spans_total";

    /// Requests the producer sent to the brokers, by `request` (`produce`, `fetch`, `other`),
    /// from librdkafka's statistics.
    pub const BROKER_REQUESTS: &str = "tunix_ingest_broker_requests_total";

    /// All of the above, for documentation tests.
    pub const ALL: &[&str] = &[
        REQUESTS,
        REQUEST_DURATION,
        IN_FLIGHT,
        VALIDATION_FAILURES,
        BYTES_IN,
        TRACES_ACCEPTED,
        PRODUCE_LATENCY,
        PRODUCE_ERRORS,
        PRODUCER_QUEUE_DEPTH,
        BROKER_UP,
        REDACTIONS,
        TRACES_ERASED,
        BULK_DELETE_REMAINING,
        RETENTION_SWEEPS,
        RETENTION_BACKLOG,
        BROKER_REQUESTS,
        OTLP_SPANS,
    ];
}

/// Counts the replacements of one accepted request, by rule.
pub fn count_redactions<'a>(counts: impl IntoIterator<Item = (&'a str, u64)>) {
    for (rule, n) in counts {
        if n > 0 {
            counter!(names::REDACTIONS, "rule" => rule.to_owned()).increment(n);
        }
    }
}

/// Handles to the hot-path metrics.
#[derive(Clone)]
pub struct IngestMetrics {
    /// See [`names::PRODUCE_LATENCY`].
    pub produce_latency: Histogram,
    /// See [`names::PRODUCER_QUEUE_DEPTH`].
    pub queue_depth: Gauge,
    /// See [`names::BYTES_IN`].
    pub bytes_in: Counter,
    /// See [`names::TRACES_ACCEPTED`].
    pub accepted: Counter,
    /// See [`names::BROKER_UP`].
    pub broker_up: Gauge,
    /// See [`names::BROKER_REQUESTS`].
    pub broker_requests: Arc<tunix_pipeline::broker_requests::BrokerRequests>,
}

impl IngestMetrics {
    /// Registers the metrics, exporting zeros for every labelled series known up front.
    pub fn new() -> IngestMetrics {
        IngestMetrics::with_redaction_rules(&[])
    }

    /// Like [`IngestMetrics::new`], with a zero series per redaction rule.
    pub fn with_redaction_rules(rules: &[&str]) -> IngestMetrics {
        for rule in rules {
            counter!(names::REDACTIONS, "rule" => rule.to_string()).absolute(0);
        }
        for kind in tunix_schemas::ErrorKind::ALL {
            counter!(names::VALIDATION_FAILURES, "reason" => kind.as_str()).absolute(0);
        }
        for reason in ["too_large", "queue_full", "timeout", "broker"] {
            counter!(names::PRODUCE_ERRORS, "reason" => reason).absolute(0);
        }
        gauge!(names::IN_FLIGHT).set(0.0);
        for via in ["delete", "bulk_delete", "retention"] {
            counter!(names::TRACES_ERASED, "via" => via).absolute(0);
        }
        gauge!(names::BULK_DELETE_REMAINING).set(0.0);
        counter!(names::RETENTION_SWEEPS).absolute(0);
        gauge!(names::RETENTION_BACKLOG).set(0.0);
        IngestMetrics {
            produce_latency: histogram!(names::PRODUCE_LATENCY),
            queue_depth: gauge!(names::PRODUCER_QUEUE_DEPTH),
            bytes_in: counter!(names::BYTES_IN),
            accepted: counter!(names::TRACES_ACCEPTED),
            broker_up: gauge!(names::BROKER_UP),
            broker_requests: Arc::new(tunix_pipeline::broker_requests::BrokerRequests::new(
                names::BROKER_REQUESTS,
            )),
        }
    }

    /// Counts one validation error.
    pub fn validation_failure(&self, reason: &'static str) {
        counter!(names::VALIDATION_FAILURES, "reason" => reason).increment(1);
    }

    /// Counts erased traces, by how (`delete`, `bulk_delete`, `retention`).
    pub fn erased(&self, via: &'static str, n: u64) {
        counter!(names::TRACES_ERASED, "via" => via).increment(n);
    }

    /// Counts one failed append.
    pub fn produce_error(&self, reason: &'static str) {
        counter!(names::PRODUCE_ERRORS, "reason" => reason).increment(1);
    }
}

impl Default for IngestMetrics {
    fn default() -> Self {
        IngestMetrics::new()
    }
}

/// Keeps the in-flight gauge right even when a request future is dropped (client went away).
struct InFlight(&'static Gauge);

impl InFlight {
    fn enter() -> InFlight {
        static GAUGE: std::sync::OnceLock<Gauge> = std::sync::OnceLock::new();
        let g = GAUGE.get_or_init(|| gauge!(names::IN_FLIGHT));
        g.increment(1.0);
        InFlight(g)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// The request counter and duration histogram of one route, by status, registered once.
struct RouteMetrics {
    name: String,
    duration: Histogram,
    by_status: std::sync::Mutex<HashMap<u16, Counter>>,
}

/// Handles per route template: a request then costs no label allocation or registry lookup.
/// Bounded by the router's templates (plus `unmatched`).
fn route_metrics(route: &str) -> Arc<RouteMetrics> {
    static ROUTES: std::sync::OnceLock<std::sync::RwLock<HashMap<String, Arc<RouteMetrics>>>> =
        std::sync::OnceLock::new();
    let routes = ROUTES.get_or_init(Default::default);
    if let Some(m) = routes.read().expect("route metrics").get(route) {
        return m.clone();
    }
    routes
        .write()
        .expect("route metrics")
        .entry(route.to_owned())
        .or_insert_with(|| {
            Arc::new(RouteMetrics {
                name: route.to_owned(),
                duration: histogram!(names::REQUEST_DURATION, "route" => route.to_owned()),
                by_status: Default::default(),
            })
        })
        .clone()
}

/// Middleware: in-flight gauge, and requests and durations by route template and status.
pub async fn track(request: Request, next: Next) -> Response {
    let route = route_metrics(
        request
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", |p| p.as_str()),
    );
    let started = Instant::now();
    let guard = InFlight::enter();
    let response = next.run(request).await;
    drop(guard);
    let status = response.status().as_u16();
    route
        .by_status
        .lock()
        .expect("route metrics")
        .entry(status)
        .or_insert_with(|| {
            counter!(names::REQUESTS, "route" => route.name.clone(), "status" => status.to_string())
        })
        .increment(1);
    route.duration.record(started.elapsed().as_secs_f64());
    response
}
