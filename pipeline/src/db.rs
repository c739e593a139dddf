//! PostgreSQL settings, pools and migrations.
//!
//! Pool variables keep the original service's names and meaning (SQLAlchemy's): `DB_POOL_SIZE` connections are
//! kept open, up to `DB_MAX_OVERFLOW` more are opened under load, and `DB_POOL_TIMEOUT` bounds the
//! wait for a connection. TLS follows `DATABASE_URL` (`?sslmode=require`, `verify-full`, ...).

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use crate::config::{redact_url, Env, Secret};

/// The local stack's database (see `infra/up.sh`).
pub const DEFAULT_DATABASE_URL: &str = "postgres://tunix@127.0.0.1:55432/tunix";

/// The migrations in the repository's `migrations/` folder, embedded at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// How to reach Postgres.
#[derive(Debug, Clone)]
pub struct DbSettings {
    /// `DATABASE_URL`.
    pub url: Secret,
    /// `DB_POOL_SIZE`: connections kept open.
    pub pool_size: u32,
    /// `DB_MAX_OVERFLOW`: extra connections allowed under load.
    pub max_overflow: u32,
    /// `DB_POOL_TIMEOUT`: longest wait for a connection before the caller gets an error.
    pub pool_timeout: Duration,
    /// Postgres `statement_timeout` for every connection of the pool (none by default). The read
    /// API sets it to its query limit, so a query it gave up on stops in Postgres too instead of
    /// running on (a deep offset scan can take minutes).
    pub statement_timeout: Option<Duration>,
    /// Settings for interactive reads, which the read API sets: no JIT compilation (`jit = off`:
    /// it costs tens of milliseconds per query and pays off only for long analytical scans,
    /// which the read API never runs; a floored estimate can still push a cheap query over the
    /// JIT threshold). Plans are cached as usual (`plan_cache_mode = auto`): a keyed read reuses
    /// its generic plan instead of planning every time (planning was 85% of a GET by id's
    /// database time). Statements whose best plan depends on their values (filtered pages, deep
    /// offsets) run unnamed instead, so PostgreSQL plans each for its values (see
    /// `traces/filter_sql.rs` in ingest-api).
    pub interactive: bool,
}

impl DbSettings {
    /// Reads `DATABASE_URL`, `DB_POOL_SIZE`, `DB_MAX_OVERFLOW`, `DB_POOL_TIMEOUT`.
    pub fn from_env(env: &mut Env) -> DbSettings {
        let url = env.string("DATABASE_URL", DEFAULT_DATABASE_URL);
        if let Err(e) = PgConnectOptions::from_str(&url) {
            env.error(format!("DATABASE_URL={}: {e}", redact_url(&url)));
        }
        DbSettings {
            url: Secret::new(url),
            pool_size: env.bounded("DB_POOL_SIZE", 5, 1, 1000),
            max_overflow: env.bounded("DB_MAX_OVERFLOW", 10, 0, 1000),
            pool_timeout: env.seconds("DB_POOL_TIMEOUT", 5.0),
            statement_timeout: None,
            interactive: false,
        }
    }

    /// Settings for `url` with the defaults (tests and tools).
    pub fn for_url(url: &str) -> DbSettings {
        DbSettings {
            url: Secret::new(url),
            pool_size: 2,
            max_overflow: 8,
            pool_timeout: Duration::from_secs(5),
            statement_timeout: None,
            interactive: false,
        }
    }

    /// The URL with its password masked, for logs.
    pub fn redacted_url(&self) -> String {
        redact_url(self.url.expose())
    }

    /// A pool that connects lazily, so a service starts (and reports not-ready) while Postgres is
    /// down instead of crashing.
    pub fn pool(&self) -> Result<PgPool, sqlx::Error> {
        let mut options =
            PgConnectOptions::from_str(self.url.expose())?.application_name("tunix-rt");
        if let Some(limit) = self.statement_timeout {
            options = options.options([("statement_timeout", limit.as_millis().to_string())]);
        }
        if self.interactive {
            options = options.options([("jit", "off"), ("plan_cache_mode", "auto")]);
        }
        Ok(PgPoolOptions::new()
            .min_connections(0)
            .max_connections(self.pool_size + self.max_overflow)
            .acquire_timeout(self.pool_timeout)
            // Connections above the pool size are closed when idle, like SQLAlchemy's overflow.
            .idle_timeout(Some(Duration::from_secs(60)))
            .test_before_acquire(false)
            .connect_lazy_with(options))
    }
}

/// Applies pending migrations. Safe to run concurrently from several processes: sqlx serializes
/// them with an advisory lock.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// Applies migrations at service start-up, waiting for Postgres if it is not up yet (readiness
/// reports why), until done or shutdown.
pub async fn migrate_with_retry(
    pool: &PgPool,
    readiness: &crate::ops::Readiness,
    shutdown: &tokio_util::sync::CancellationToken,
) {
    let mut delay = std::time::Duration::from_millis(200);
    loop {
        match migrate(pool).await {
            Ok(()) => return,
            Err(e) => {
                readiness.set("postgres", false, format!("migrations: {e}"));
                tracing::warn!(error = %e, ?delay, "cannot apply migrations yet; retrying");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {},
            _ = shutdown.cancelled() => return,
        }
        delay = (delay * 2).min(std::time::Duration::from_secs(5));
    }
}

/// Whether an error means "the database is unreachable or overloaded" (retry later) rather than
/// "this statement or data is wrong".
pub fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => match db.code() {
            // 08: connection exception, 53: insufficient resources, 57: operator intervention
            // (admin shutdown, crash shutdown, cannot connect now), 40: serialization/deadlock,
            // 55P03: lock not available, 58: system error (I/O).
            Some(code) => {
                let code = code.as_ref();
                ["08", "53", "57", "40", "58"]
                    .iter()
                    .any(|c| code.starts_with(c))
                    || code == "55P03"
            }
            None => false,
        },
        _ => false,
    }
}

/// Whether a database error is about the data of a statement (a row Postgres refuses), so that
/// retrying the same rows can never succeed.
pub fn is_data_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            let code = code.as_ref();
            // 22: data exception, 23: integrity violation, 54: program limit exceeded.
            code.starts_with("22") || code.starts_with("23") || code.starts_with("54")
        }),
        _ => false,
    }
}

/// What a failed query says about its cause, for answering clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCause {
    /// The database is unreachable, overloaded or restarting: retry later (503).
    Unavailable,
    /// The statement ran into `statement_timeout` (SQLSTATE 57014): retrying the same query will
    /// likely time out again, but it is a load limit, not a mistake in the request (503).
    TimedOut,
    /// The values sent with the statement are outside what PostgreSQL can represent (SQLSTATE
    /// classes 22, data exception, and 54, program limit exceeded): the request is wrong (4xx).
    Input,
    /// Anything else (an unknown column, a decoding mismatch): a bug in this program.
    Internal,
}

/// Classifies a query error by cause. Callers must validate parameters before the query, so
/// [`ErrorCause::Input`] is a safety net, not the way input errors are normally found.
pub fn cause(e: &sqlx::Error) -> ErrorCause {
    if let sqlx::Error::Database(db) = e {
        if db.code().as_deref() == Some("57014") {
            return ErrorCause::TimedOut;
        }
    }
    if is_transient(e) {
        ErrorCause::Unavailable
    } else if is_data_error(e) {
        ErrorCause::Input
    } else {
        ErrorCause::Internal
    }
}

/// `url` with its database name replaced by `db` (query parameters kept): how the tests and
/// benchmarks reach the scratch databases they create on one server.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{}", &base[..host_end], db);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_is_replaced_in_urls() {
        assert_eq!(
            with_database("postgres://u@h:5/postgres?sslmode=disable", "x"),
            "postgres://u@h:5/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h:5", "x"), "postgres://u@h:5/x");
    }
}
