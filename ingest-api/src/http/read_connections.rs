//! Connections for the hottest reads (a trace by id, a list page), kept apart from sqlx's pool.
//!
//! sqlx's pool (0.8) pings every connection as it is released: one more round trip to
//! PostgreSQL after every query, and the connection is out of use until the answer comes. For a
//! GET by id that doubled the round trips and took ~17% of ingest-api's CPU (docs/BENCHMARKS.md,
//! "Speed"). Here a connection goes back to the idle list as soon as its caller read the answer
//! to the end ([`ReadConnection::release`]). One whose work did not finish (an error, a timeout,
//! a request dropped mid-query) is settled in the background instead, still counted against the
//! size: it goes back only once a round trip proves it ready again (its statement ended, at the
//! latest at the read limit), else it is closed. So at most `size` sessions ever exist, and none
//! is reused in an unknown state.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::db::QUERY_TIMEOUT;

/// An idle connection unused this long is closed instead of reused: PostgreSQL or a proxy may
/// have dropped it meanwhile (a restart, an idle timeout), and the read would fail on it.
const IDLE_MAX: Duration = Duration::from_secs(60);

/// Up to `size` connections, opened on first use with the read pool's options (statement
/// timeout, `jit = off`).
pub struct ReadConnections {
    inner: Arc<Inner>,
}

struct Inner {
    idle: Mutex<Vec<(PgConnection, Instant)>>,
    permits: Arc<Semaphore>,
    options: Arc<PgConnectOptions>,
    acquire_timeout: Duration,
}

impl Inner {
    fn put_back(&self, conn: PgConnection) {
        self.idle
            .lock()
            .expect("read connections")
            .push((conn, Instant::now()));
    }
}

impl ReadConnections {
    /// At most `size` connections with `options`; none is opened yet. Waiting for one longer
    /// than `acquire_timeout` (`DB_POOL_TIMEOUT`) fails with [`sqlx::Error::PoolTimedOut`].
    pub fn new(
        options: Arc<PgConnectOptions>,
        size: usize,
        acquire_timeout: Duration,
    ) -> ReadConnections {
        ReadConnections {
            inner: Arc::new(Inner {
                idle: Mutex::new(Vec::with_capacity(size)),
                permits: Arc::new(Semaphore::new(size)),
                options,
                acquire_timeout,
            }),
        }
    }

    /// An idle connection, or a new one while fewer than `size` are open; waits otherwise.
    pub async fn acquire(&self) -> Result<ReadConnection, sqlx::Error> {
        let permit = tokio::time::timeout(
            self.inner.acquire_timeout,
            self.inner.permits.clone().acquire_owned(),
        )
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)?
        .map_err(|_| sqlx::Error::PoolClosed)?;
        let conn = loop {
            let idle = self.inner.idle.lock().expect("read connections").pop();
            match idle {
                Some((conn, since)) if since.elapsed() < IDLE_MAX => break conn,
                // Stale: dropping it closes the socket.
                Some(_) => continue,
                None => break PgConnection::connect_with(&self.inner.options).await?,
            }
        };
        Ok(ReadConnection {
            conn: Some(conn),
            permit: Some(permit),
            owner: self.inner.clone(),
        })
    }
}

/// A connection taken from [`ReadConnections`]. Give it back with [`ReadConnection::release`]
/// once its answer was read to the end; dropped without that, it is settled in the background.
pub struct ReadConnection {
    conn: Option<PgConnection>,
    permit: Option<OwnedSemaphorePermit>,
    owner: Arc<Inner>,
}

impl ReadConnection {
    /// Returns the connection for the next read: its last statement completed.
    pub fn release(mut self) {
        if let Some(conn) = self.conn.take() {
            self.owner.put_back(conn);
        }
    }
}

impl Deref for ReadConnection {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        self.conn
            .as_ref()
            .expect("connection present until release")
    }
}

impl DerefMut for ReadConnection {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn
            .as_mut()
            .expect("connection present until release")
    }
}

impl Drop for ReadConnection {
    fn drop(&mut self) {
        let (Some(mut conn), Some(permit)) = (self.conn.take(), self.permit.take()) else {
            return;
        };
        let owner = self.owner.clone();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            // A ping waits until the connection is ready for a new query: the abandoned
            // statement ended (Postgres stops it at the read limit at the latest).
            let settled =
                tokio::time::timeout(QUERY_TIMEOUT + Duration::from_secs(1), conn.ping()).await;
            match settled {
                Ok(Ok(())) => owner.put_back(conn),
                _ => tracing::debug!("read connection closed: its abandoned work did not settle"),
            }
            drop(permit);
        });
    }
}
