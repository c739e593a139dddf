//! # tunix-bench
//!
//! Owns load generation and benchmarks. The library part ([`gen`], [`load`]) is also what the
//! end-to-end tests drive the stack with; the `tunix-bench` binary runs the benchmarks and prints
//! tables, one [`suites`] module per subcommand (see `docs/BENCHMARKS.md` for the commands and
//! the latest results).

pub mod gen;
pub mod load;
pub mod report;
pub mod suites;
