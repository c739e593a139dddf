//! Waiting without blind sleeps: poll a condition until it holds, or fail at a deadline.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long an end-to-end test waits for the pipeline to converge: the read models catching up
/// with what was acknowledged, a deletion or a score applied, a replay finished. Generous for a
/// two-core machine running the whole stack; a healthy stack takes seconds.
pub const CONVERGE: Duration = Duration::from_secs(90);

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(10);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(250));
    }
}
