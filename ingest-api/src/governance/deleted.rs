//! Is this id a deleted trace's? The check a keyed POST makes before appending (410 if so).
//!
//! One lookup per request would cost a Postgres round trip and sqlx's per-query overhead on every
//! keyed POST. Instead, requests queue their ids and one task answers everything queued with one
//! `= ANY($1)` query on a connection it keeps, so under load one query serves many requests.

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Requests answered by one query at most.
const MAX_BATCH: usize = 512;

type Pending = (Vec<Uuid>, oneshot::Sender<Option<Vec<Uuid>>>);

/// The batched deletion check.
pub struct DeletedCheck {
    pool: PgPool,
    timeout: Duration,
    tx: OnceLock<mpsc::Sender<Pending>>,
}

impl DeletedCheck {
    /// A check on `pool`'s database; each query gives up after `timeout`.
    pub fn new(pool: PgPool, timeout: Duration) -> DeletedCheck {
        DeletedCheck {
            pool,
            timeout,
            tx: OnceLock::new(),
        }
    }

    /// Which of `ids` are recorded as deleted; `None` when Postgres did not answer in time.
    pub async fn deleted_among(&self, ids: Vec<Uuid>) -> Option<Vec<Uuid>> {
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::channel(4096);
            tokio::spawn(run(self.pool.clone(), self.timeout, rx));
            tx
        });
        let (answer, answered) = oneshot::channel();
        tx.send((ids, answer)).await.ok()?;
        answered.await.ok().flatten()
    }
}

async fn run(pool: PgPool, timeout: Duration, mut rx: mpsc::Receiver<Pending>) {
    let mut conn: Option<PoolConnection<Postgres>> = None;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let ids: Vec<Uuid> = batch
            .iter()
            .flat_map(|(ids, _)| ids.iter().copied())
            .collect();
        let found = tokio::time::timeout(timeout, async {
            if conn.is_none() {
                conn = Some(pool.acquire().await?);
            }
            let c = conn.as_mut().expect("connected");
            tunix_pipeline::erasure::deleted_among(c, &ids).await
        })
        .await;
        let found: Option<HashSet<Uuid>> = match found {
            Ok(Ok(found)) => Some(found.into_iter().collect()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "deletion check failed; keyed POSTs answer 503");
                conn = None;
                None
            }
            Err(_) => {
                conn = None;
                None
            }
        };
        for (ids, answer) in batch {
            let _ = answer.send(
                found
                    .as_ref()
                    .map(|f| ids.into_iter().filter(|id| f.contains(id)).collect()),
            );
        }
    }
}
