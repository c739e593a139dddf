//! Governance: bulk deletes by filter, retention sweeps, and the audit log.
//!
//! Both kinds of mass erasure are *operations* (`erasure_operations`): a filter, a `created_before`
//! cutoff, the number of traces that matched, and how many are erased so far. A background
//! runner ([`runner::run_operations`]) erases them page by page through the same path as `DELETE`
//! (`erase::erase`), at most `ERASURE_RATE_PER_SECOND`. Each page skips ids already
//! recorded as deleted, so an operation interrupted by a crash resumes where it stopped when any
//! ingest-api instance starts its runner; a Postgres advisory lock keeps two instances from
//! running the same one.
//!
//! - **Bulk delete** (`POST /api/deletions`, `admin`): a dry run answers the count and a
//!   confirmation token bound to the filter, the cutoff taken at the dry run and that count
//!   (valid [`deletions::TOKEN_TTL_SECONDS`]); the confirmation with the token starts the operation, unless
//!   the count under the same cutoff changed (409). `GET /api/deletions/{id}` shows progress;
//!   `DELETE /api/deletions/{id}` cancels after the current page.
//! - **Retention** (`RETENTION_DAYS`): every `RETENTION_SWEEP_INTERVAL_SECONDS`, an operation
//!   with the cutoff now − `RETENTION_DAYS` and no other filter.
//! - **Audit**: every delete, bulk delete and sweep appends an `ErasureRequested` event naming
//!   who asked (an API key id, never the key) and when; the projector stores them and
//!   `GET /api/audit` lists them.

//!
//! Where: [`erase`] (the one erasure path, and `DELETE /api/traces/{id}`), [`deletions`] (bulk
//! delete requests), [`operations`] (the `erasure_operations` table), [`runner`], [`audit`],
//! [`deleted`] (the "is this id deleted?" check of keyed submissions).

pub mod audit;
pub mod deleted;
pub mod deletions;
pub mod erase;
pub mod operations;
pub mod runner;
