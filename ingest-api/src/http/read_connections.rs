//! Connections for the hottest reads (a trace by id, a list page), kept apart from sqlx's pool.
//!
//! sqlx's pool (0.8) pings every connection as it is released: one more round trip to
//! PostgreSQL after every query, and the connection is out of use until the answer comes. For a
//! GET by id that doubled the round trips and took ~17% of ingest-api's CPU (docs/BENCHMARKS.md,
//! "Speed"). Here a connection goes back to the idle list as soon as its caller read the answer
//! to the end ([`ReadConnection::release`]); one whose work did not finish (an error, a timeout,
//! a request dropped mid-query) is closed instead, so none is reused in an unknown state.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;
use tokio::sync::{Semaphore, SemaphorePermit};

/// Up to `size` connections, opened on first use with the read pool's options (statement
/// timeout, `jit = off`).
pub struct ReadConnections {
    idle: Mutex<Vec<PgConnection>>,
    permits: Semaphore,
    options: Arc<PgConnectOptions>,
}

impl ReadConnections {
    /// At most `size` connections with `options`; none is opened yet.
    pub fn new(options: Arc<PgConnectOptions>, size: usize) -> ReadConnections {
        ReadConnections {
            idle: Mutex::new(Vec::with_capacity(size)),
            permits: Semaphore::new(size),
            options,
        }
    }

    /// An idle connection, or a new one while fewer than `size` are open; waits otherwise.
    /// Callers bound the wait (`http::db::bounded`).
    pub async fn acquire(&self) -> Result<ReadConnection<'_>, sqlx::Error> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let idle = self.idle.lock().expect("read connections").pop();
        let conn = match idle {
            Some(conn) => conn,
            None => PgConnection::connect_with(&self.options).await?,
        };
        Ok(ReadConnection {
            conn: Some(conn),
            owner: self,
            _permit: permit,
        })
    }
}

/// A connection taken from [`ReadConnections`]. Give it back with [`ReadConnection::release`]
/// once its answer was read to the end; dropped without that, it is closed.
pub struct ReadConnection<'a> {
    conn: Option<PgConnection>,
    owner: &'a ReadConnections,
    _permit: SemaphorePermit<'a>,
}

impl ReadConnection<'_> {
    /// Returns the connection for the next read: its last statement completed.
    pub fn release(mut self) {
        if let Some(conn) = self.conn.take() {
            self.owner.idle.lock().expect("read connections").push(conn);
        }
    }
}

impl Deref for ReadConnection<'_> {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        self.conn
            .as_ref()
            .expect("connection present until release")
    }
}

impl DerefMut for ReadConnection<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn
            .as_mut()
            .expect("connection present until release")
    }
}

impl Drop for ReadConnection<'_> {
    fn drop(&mut self) {
        if self.conn.take().is_some() {
            // Dropping the socket ends the backend's session (and any statement still running
            // in it, at its next attempt to send).
            tracing::debug!("read connection closed: its work did not finish");
        }
    }
}
