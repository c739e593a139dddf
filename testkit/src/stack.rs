//! Databases, and private Postgres clusters for tests that stop and restart them.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};
use tunix_pipeline::db::with_database;

/// A fresh, migrated database on the test server, dropped when the value is dropped.
pub struct TestDb {
    /// A pool on the database.
    pub pool: PgPool,
    /// Its name.
    pub name: String,
    /// A URL for services (`DATABASE_URL`).
    pub url: String,
    admin_url: String,
}

impl TestDb {
    /// Creates and migrates a database on the suite's server.
    pub async fn new() -> TestDb {
        TestDb::on(&crate::database_url()).await
    }

    /// Creates and migrates a database on the server at `admin_url`.
    pub async fn on(admin_url: &str) -> TestDb {
        let name = crate::unique("test");
        let admin = PgConnectOptions::from_str(admin_url).expect("admin url");
        let mut conn = admin.connect().await.expect("connect to the test Postgres");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let url = with_database(admin_url, &name);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect(&url)
            .await
            .expect("connect to the test database");
        tunix_pipeline::db::migrate(&pool).await.expect("migrate");
        TestDb {
            pool,
            name,
            url,
            admin_url: admin_url.to_owned(),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::env::var_os("TUNIX_KEEP_TEST_DB").is_some() {
            eprintln!(
                "TUNIX_KEEP_TEST_DB: keeping database {} ({})",
                self.name, self.url
            );
            return;
        }
        let admin = self.admin_url.clone();
        let name = self.name.clone();
        // Drop may run inside a runtime; do the cleanup on a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = PgConnectOptions::from_str(&admin)
                    .ok()?
                    .connect()
                    .await
                    .ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

fn pg_bindir() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs.pop()
        .expect("no PostgreSQL server binaries: run ./infra/test.sh, which installs them")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a Postgres tool as the unprivileged cluster owner when we are root.
fn pg_command(tool: &str) -> Command {
    let bin = pg_bindir().join(tool);
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

/// A private Postgres cluster that a test may stop and start.
pub struct PgCluster {
    dir: tempfile::TempDir,
    /// Its port on 127.0.0.1.
    pub port: u16,
    tls: bool,
}

impl PgCluster {
    /// initdb and start a cluster on a free port.
    pub fn start() -> PgCluster {
        PgCluster::create(false)
    }

    /// Like [`PgCluster::start`], with TLS on (a self-signed certificate), for `sslmode=require`.
    pub fn start_with_tls() -> PgCluster {
        PgCluster::create(true)
    }

    fn create(tls: bool) -> PgCluster {
        let dir = tempfile::Builder::new()
            .prefix("tunix-pg-")
            .tempdir_in("/tmp")
            .expect("tempdir");
        if is_root() {
            Command::new("chown")
                .args(["-R", "nobody"])
                .arg(dir.path())
                .status()
                .expect("chown cluster dir");
        }
        let data = dir.path().join("data");
        crate::run_ok(
            pg_command("initdb")
                .arg("-D")
                .arg(&data)
                .args([
                    "-U",
                    "tunix",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ])
                .stdout(Stdio::null()),
            "initdb",
        );
        if tls {
            let status = Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                ])
                .args(["-subj", "/CN=127.0.0.1"])
                .arg("-keyout")
                .arg(data.join("server.key"))
                .arg("-out")
                .arg(data.join("server.crt"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run openssl");
            assert!(status.success(), "openssl req failed");
            Command::new("chmod")
                .arg("600")
                .arg(data.join("server.key"))
                .status()
                .expect("chmod key");
            if is_root() {
                Command::new("chown")
                    .arg("nobody")
                    .arg(data.join("server.key"))
                    .arg(data.join("server.crt"))
                    .status()
                    .expect("chown key");
            }
        }
        let cluster = PgCluster {
            dir,
            port: crate::free_port(),
            tls,
        };
        cluster.start_again();
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the (stopped) cluster and waits until it accepts connections.
    pub fn start_again(&self) {
        let log = self.dir.path().join("postgres.log");
        let status = pg_command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o"])
            .arg(format!(
                "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=100{}",
                self.port,
                self.data().display(),
                if self.tls {
                    " -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key"
                } else {
                    ""
                }
            ))
            .arg("start")
            .stdout(Stdio::null())
            .status()
            .expect("run pg_ctl start");
        assert!(
            status.success(),
            "pg_ctl start failed; see {}",
            log.display()
        );
    }

    /// Stops the cluster (fast mode: connections are cut, like a crash to clients).
    pub fn stop(&self) {
        let status = pg_command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "stop"])
            .stdout(Stdio::null())
            .status()
            .expect("run pg_ctl stop");
        assert!(status.success(), "pg_ctl stop failed");
    }

    /// Admin URL (database `postgres`).
    pub fn admin_url(&self) -> String {
        format!("postgres://tunix@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = pg_command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
