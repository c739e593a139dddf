//! `tunix-bench`: benchmarks for tunix-rt (see `docs/BENCHMARKS.md`).

fn main() {
    eprintln!("tunix-bench: see docs/BENCHMARKS.md");
}
