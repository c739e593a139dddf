//! Where the suite runs: the servers and the Python interpreter `infra/test.sh` provides (through
//! the environment), the repository's paths, and unique names for per-test resources.

use std::path::PathBuf;

/// The value of `var`, which `infra/test.sh` sets up and exports for `what`.
fn set_by_test_sh(var: &str, what: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the suite with ./infra/test.sh, which {what}")
    })
}

/// The Postgres server tests create their databases on (an admin URL, any database).
pub fn database_url() -> String {
    set_by_test_sh("TUNIX_TEST_DATABASE_URL", "starts Postgres and the broker")
}

/// The broker tests create their topics on.
pub fn kafka_brokers() -> String {
    set_by_test_sh("TUNIX_TEST_KAFKA_BROKERS", "starts Postgres and the broker")
}

/// The Python interpreter with the clients from `tests/python/requirements.txt`.
pub fn python() -> String {
    set_by_test_sh("TUNIX_TEST_PYTHON", "installs the Python clients")
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives in the workspace")
        .to_path_buf()
}

/// Where tests leave files worth keeping (logs of killed services, screenshots).
pub fn artifacts_dir() -> PathBuf {
    let dir = std::env::var("TUNIX_ARTIFACTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("artifacts"));
    std::fs::create_dir_all(&dir).expect("create artifacts dir");
    dir
}

/// A short random suffix for names of databases, topics and groups.
pub fn unique(prefix: &str) -> String {
    use rand::Rng;
    let n: u64 = rand::rng().random();
    format!("{prefix}_{:012x}", n & 0xffff_ffff_ffff)
}
