//! The original service's extra routes, kept so its clients keep working: the `baseline` score
//! and the side-by-side comparison ([`scores`]), the dataset build and the export by key
//! ([`datasets`]), and the RediAI upstream health check ([`redi`]). The original service is the
//! Python (FastAPI) tunix-rt this one replaced; see the glossary in docs/ARCHITECTURE.md.

pub mod datasets;
pub mod redi;
pub mod scores;
