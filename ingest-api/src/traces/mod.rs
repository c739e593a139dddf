//! `/api/traces`: submitting traces ([`write`](mod@write)), reading them ([`read`]), and the list filter:
//! its parameters ([`filter`]), its JSON object form ([`filter_object`]) and the SQL it selects
//! with ([`filter_sql`]); the charts' statistics ([`stats`]: its statements in [`stats_sql`], its answer in [`stats_answer`]). Deleting a trace is governance's (`crate::governance::erase`).

pub mod filter;
pub mod filter_object;
pub mod filter_sql;
pub mod read;
pub mod stats;
pub mod stats_answer;
pub mod stats_sql;
pub mod write;
