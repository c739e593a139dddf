//! Service binaries as child processes that tests can kill and restart, and other programs run
//! to completion.

use std::fs::OpenOptions;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// Path of a workspace binary built by `cargo build --bins` (or `TUNIX_BIN_DIR`).
pub fn binary(name: &str) -> PathBuf {
    let dir = std::env::var("TUNIX_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| crate::repo_root().join("target/debug"));
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the service binaries first (cargo build --bins), or use ./infra/test.sh",
        path.display()
    );
    path
}

/// A running service process with a fixed environment, logging to `artifacts/logs/`.
pub struct Service {
    /// Short name for logs and messages.
    pub name: String,
    bin: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<Child>,
    /// Where stdout and stderr go (appended across restarts).
    pub log: PathBuf,
    /// How many times the process was started.
    pub starts: u32,
}

impl Service {
    /// Starts `bin` with exactly `env` added to a minimal environment.
    pub fn start(name: &str, bin: PathBuf, env: Vec<(String, String)>) -> Service {
        Service::start_with_args(name, bin, Vec::new(), env)
    }

    /// Like [`Service::start`], with command-line arguments.
    pub fn start_with_args(
        name: &str,
        bin: PathBuf,
        args: Vec<String>,
        env: Vec<(String, String)>,
    ) -> Service {
        let logs = crate::artifacts_dir().join("logs");
        std::fs::create_dir_all(&logs).expect("create log dir");
        let mut service = Service {
            log: logs.join(format!("{}.log", crate::unique(name))),
            name: name.to_owned(),
            bin,
            args,
            env,
            child: None,
            starts: 0,
        };
        service.spawn();
        service
    }

    fn spawn(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open service log");
        let mut cmd = Command::new(&self.bin);
        cmd.args(&self.args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "RUST_LOG",
                std::env::var("TUNIX_SERVICE_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("RUST_BACKTRACE", "1")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        self.child = Some(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", self.name)),
        );
        self.starts += 1;
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: no cleanup, no flush, no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits up to `timeout` for a clean exit (SIGKILL after that).
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sets (`Some`) or removes (`None`) a variable of the environment for the next start.
    pub fn set_env(&mut self, name: &str, value: Option<&str>) {
        self.env.retain(|(k, _)| k != name);
        if let Some(v) = value {
            self.env.push((name.to_owned(), v.to_owned()));
        }
    }

    /// Starts the process again after a kill or terminate.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Whether the process is still alive.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The last `n` lines of the log, for assertion messages.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `cmd` to completion and returns its output; panics with `what` and the standard error
/// unless it exited successfully (a tool a test drives: openssl, a Python client, tunix-admin).
pub fn run_ok(cmd: &mut Command, what: &str) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `bin` with exactly `env` (plus `PATH`) until it exits, for a program that must give up
/// rather than serve (a refused configuration). Returns whether it succeeded and its standard
/// output and error together; panics with `what` when it still runs after `timeout`.
pub async fn run_to_exit(
    bin: PathBuf,
    env: &[(String, String)],
    timeout: Duration,
    what: &str,
) -> (bool, String) {
    let mut cmd = tokio::process::Command::new(&bin);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(timeout, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{what}: {} still runs after {timeout:?}", bin.display()))
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
