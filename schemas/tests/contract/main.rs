//! Contract tests for tunix-schemas: every seed validation rule, the shared datasets, and the Avro
//! event format (round trips, schema evolution, pinned fingerprints, hostile input).

mod events;
mod framing;
mod fuzz;
mod helpers;
mod redaction;
mod validation;
