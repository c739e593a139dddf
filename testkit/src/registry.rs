//! A real external Schema Registry for tests: Apicurio Registry (fetched by `infra/test.sh`, see
//! `ensure_apicurio` in `infra/lib.sh`), spoken to through its Confluent-compatible API.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::broker::java;
use crate::{free_port, Service};

/// The Confluent-compatible API's base path on an Apicurio Registry 3 server.
const CCOMPAT_PATH: &str = "/apis/ccompat/v7";
/// Group and artifact id of the dummy artifact that carries the id floor (a group of its own, so
/// the Confluent API's `/subjects` never lists it).
const FLOOR_ARTIFACT: &str = "apicurio-id-floor";
/// The dummy artifact's content: the smallest Avro record.
const FLOOR_SCHEMA: &str =
    r#"{"type":"record","name":"ApicurioIdFloor","namespace":"apicurio.internal","fields":[]}"#;
/// The database version of Apicurio Registry 3.0.x's export format.
const EXPORT_DB_VERSION: &str = "101";
/// How long a start or restart may take before the test fails (the JVM is ready in ~4 s on an
/// idle machine; a test stack starting beside it on two cores slows it down several times).
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// A real Apicurio Registry process, the external Confluent-compatible Schema Registry of the
/// tests.
///
/// Each one has its own port on 127.0.0.1 and its own temporary folder: the configuration (with
/// the basic-auth user, so no password appears on a command line) and an H2 database on disk
/// written at every commit, so [`kill`](Self::kill) and [`restart`](Self::restart) keep every
/// subject and id. The process is killed and the folder deleted when it is dropped.
///
/// Ids are Apicurio's *content ids*: one per distinct schema text, counting up from 1 (or from
/// `first_id`), shared by every subject that registers the same text, as Confluent's are shared.
/// Unlike Confluent's, they compare schemas by their text, not canonically, and skip numbers
/// (docs/CONSUMERS.md, "Tested against Apicurio Registry").
pub struct ApicurioRegistry {
    /// The Confluent-compatible API's base URL, `http://127.0.0.1:PORT/apis/ccompat/v7`: what
    /// `SCHEMA_REGISTRY_URL` and confluent-kafka's `url` get.
    pub url: String,
    /// The server's root, `http://127.0.0.1:PORT` (health at `/health/ready`, Apicurio's own API
    /// at `/apis/registry/v3`).
    pub root: String,
    /// The `user:password` it demands (HTTP basic auth), if any.
    pub user_info: Option<String>,
    // Declared before `dir`: the process dies before its folder is deleted.
    service: Service,
    http: reqwest::Client,
    dir: tempfile::TempDir,
}

impl ApicurioRegistry {
    /// Starts a registry and waits until it is ready. With `first_id` above 1, the next schema
    /// registered gets that id (the "id floor": Apicurio has no setting for it, so a dummy
    /// artifact with id `first_id - 1` is imported through its admin API). With `user_info`
    /// (`user:password`), every API but health and metrics demands that HTTP basic auth.
    ///
    /// Panics, naming `./infra/test.sh`, when `TUNIX_APICURIO_HOME` is not set.
    pub async fn start(first_id: i32, user_info: Option<&str>) -> ApicurioRegistry {
        assert!(first_id >= 1, "schema ids start at 1, not {first_id}");
        let (jar, version) = runner_jar();
        let dir = tempfile::Builder::new()
            .prefix("apicurio-")
            .tempdir()
            .expect("create the registry's folder");
        let port = free_port();
        let config = dir.path().join("application.properties");
        write_config(&config, port, &dir.path().join("data"), user_info);
        let args = vec![
            // Small and quick on a shared two-core machine: ~4 s to ready, ~150-180 MB.
            "-Xms32m".to_owned(),
            "-Xmx128m".to_owned(),
            "-XX:+UseSerialGC".to_owned(),
            "-XX:TieredStopAtLevel=1".to_owned(),
            "-Xss512k".to_owned(),
            format!("-Dquarkus.config.locations={}", config.display()),
            "-jar".to_owned(),
            jar.display().to_string(),
        ];
        let root = format!("http://127.0.0.1:{port}");
        let mut registry = ApicurioRegistry {
            url: format!("{root}{CCOMPAT_PATH}"),
            root,
            user_info: user_info.map(str::to_owned),
            service: Service::start_with_args("apicurio", java(), args, Vec::new()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
            dir,
        };
        registry.wait_ready().await;
        if first_id > 1 {
            registry.set_id_floor(first_id, &version).await;
        }
        registry
    }

    /// `SCHEMA_REGISTRY_URL`, and `SCHEMA_REGISTRY_USERNAME`/`_PASSWORD` with basic auth: the
    /// environment that points tunix-rt's services and tools at this registry.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![("SCHEMA_REGISTRY_URL".to_owned(), self.url.clone())];
        if let Some((user, password)) = self.credentials() {
            env.push(("SCHEMA_REGISTRY_USERNAME".to_owned(), user.to_owned()));
            env.push(("SCHEMA_REGISTRY_PASSWORD".to_owned(), password.to_owned()));
        }
        env
    }

    /// GETs `path` of the Confluent-compatible API (e.g. `/subjects`) with the registry's
    /// credentials; returns the status and the JSON body (`Null` when there is none).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .authorized(self.http.get(format!("{}{path}", self.url)))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path} on the registry: {e}"));
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// SIGKILL: the registry is gone at once (its data stays for [`restart`](Self::restart)).
    pub fn kill(&mut self) {
        self.service.kill();
    }

    /// SIGTERM, and waits up to 30 s for a clean exit (then SIGKILL).
    pub fn stop(&mut self) {
        self.service.terminate(Duration::from_secs(30));
    }

    /// Starts it again (killing it first if it runs) on the same port with the same data, and
    /// waits until it is ready.
    pub async fn restart(&mut self) {
        self.service.restart();
        self.wait_ready().await;
    }

    /// Whether the process is alive.
    pub fn is_running(&mut self) -> bool {
        self.service.is_running()
    }

    /// The last `n` lines of the registry's log, for assertion messages.
    pub fn log_tail(&self, n: usize) -> String {
        self.service.log_tail(n)
    }

    /// The registry's folder (configuration and H2 database).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Waits until `GET /health/ready` answers 200 (open without credentials); panics with the
    /// log's tail when the process exits or after two minutes.
    pub async fn wait_ready(&mut self) {
        let started = Instant::now();
        let ready = format!("{}/health/ready", self.root);
        loop {
            if let Ok(resp) = self.http.get(&ready).send().await {
                if resp.status() == 200 {
                    return;
                }
            }
            assert!(
                self.service.is_running(),
                "Apicurio Registry exited before it was ready; its log ({}) ends with:\n{}",
                self.service.log.display(),
                self.service.log_tail(30)
            );
            assert!(
                started.elapsed() < READY_TIMEOUT,
                "Apicurio Registry not ready after {READY_TIMEOUT:?}; its log ({}) ends with:\n{}",
                self.service.log.display(),
                self.service.log_tail(30)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `(user, password)` of `user_info`.
    fn credentials(&self) -> Option<(&str, &str)> {
        self.user_info.as_deref().and_then(|u| u.split_once(':'))
    }

    fn authorized(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.credentials() {
            Some((user, password)) => req.basic_auth(user, Some(password)),
            None => req,
        }
    }

    /// Makes `first_id` the next id: imports (Apicurio's `/admin/import`, keeping the ids in the
    /// file) a dummy artifact whose content id and global id are `first_id - 1`; Apicurio then
    /// moves its counters past them. Does nothing when the floor is already there.
    async fn set_id_floor(&self, first_id: i32, version: &str) {
        let floor = format!(
            "{}/apis/registry/v3/groups/{FLOOR_ARTIFACT}/artifacts/{FLOOR_ARTIFACT}",
            self.root
        );
        let existing = self
            .authorized(self.http.get(&floor))
            .send()
            .await
            .expect("ask the registry for the id floor");
        if existing.status() == 200 {
            return;
        }
        let resp = self
            .authorized(self.http.post(format!(
                "{}/apis/registry/v3/admin/import?requireEmptyRegistry=false",
                self.root
            )))
            .header("Content-Type", "application/zip")
            .header("X-Registry-Preserve-GlobalId", "true")
            .header("X-Registry-Preserve-ContentId", "true")
            .body(floor_export(first_id - 1, version))
            .send()
            .await
            .expect("import the id floor");
        let status = resp.status();
        assert!(
            status.is_success(),
            "importing the id floor {first_id}: HTTP {status}: {}",
            resp.text().await.unwrap_or_default()
        );
    }
}

/// The runner jar in `TUNIX_APICURIO_HOME` and its version.
fn runner_jar() -> (PathBuf, String) {
    let home = std::env::var("TUNIX_APICURIO_HOME").unwrap_or_else(|_| {
        panic!("TUNIX_APICURIO_HOME is not set: run the suite with ./infra/test.sh, which fetches Apicurio Registry")
    });
    let entries = std::fs::read_dir(&home)
        .unwrap_or_else(|e| panic!("TUNIX_APICURIO_HOME={home}: {e} (run ./infra/test.sh)"));
    entries
        .filter_map(|e| e.ok())
        .find_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let version = name
                .strip_prefix("apicurio-registry-app-")?
                .strip_suffix("-runner.jar")?
                .to_owned();
            Some((e.path(), version))
        })
        .unwrap_or_else(|| {
            panic!("no apicurio-registry-app-*-runner.jar in TUNIX_APICURIO_HOME={home} (run ./infra/test.sh)")
        })
}

/// Writes the Quarkus configuration: loopback only, no access log, H2 on disk with every
/// commit written at once (`WRITE_DELAY=0`: nothing is lost to a SIGKILL), and basic auth
/// with one embedded user when `user_info` is given. Readable by its owner only.
fn write_config(path: &Path, port: u16, data: &Path, user_info: Option<&str>) {
    let mut text = format!(
        "quarkus.http.host=127.0.0.1\n\
         quarkus.http.port={port}\n\
         quarkus.http.access-log.enabled=false\n\
         apicurio.datasource.url=jdbc:h2:file:{}/registry;WRITE_DELAY=0\n",
        data.display()
    );
    if let Some(user_info) = user_info {
        let (user, password) = user_info
            .split_once(':')
            .unwrap_or_else(|| panic!("user_info is user:password, not {user_info:?}"));
        text.push_str(&format!(
            "quarkus.http.auth.basic=true\n\
             quarkus.security.users.embedded.enabled=true\n\
             quarkus.security.users.embedded.plain-text=true\n\
             quarkus.security.users.embedded.users.{user}={password}\n\
             quarkus.security.users.embedded.roles.{user}=sr-admin\n"
        ));
    }
    let mut file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .expect("create the registry's configuration")
    };
    file.write_all(text.as_bytes())
        .expect("write the registry's configuration");
}

/// An Apicurio Registry 3 export (a zip) holding one dummy Avro artifact whose content id and
/// global id are both `id`, in the group [`FLOOR_ARTIFACT`].
fn floor_export(id: i32, version: &str) -> Vec<u8> {
    let hash = format!("{:x}", Sha256::digest(FLOOR_SCHEMA.as_bytes()));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64;
    let (group, artifact) = (FLOOR_ARTIFACT, FLOOR_ARTIFACT);
    let meta = |mut v: Value| {
        let fields = v.as_object_mut().expect("an object");
        fields.insert("owner".into(), json!(""));
        fields.insert("createdOn".into(), json!(now));
        fields.insert("modifiedBy".into(), json!(""));
        fields.insert("modifiedOn".into(), json!(now));
        v.to_string().into_bytes()
    };
    let files: Vec<(String, Vec<u8>)> = vec![
        (
            "manifest-x.Manifest.json".into(),
            json!({"systemVersion": version, "exportVersion": "3.0", "exportedOn": now,
                   "exportedBy": "", "dbVersion": EXPORT_DB_VERSION})
            .to_string()
            .into_bytes(),
        ),
        (
            format!("groups/{group}.Group.json"),
            meta(
                json!({"groupId": group, "description": null, "artifactsType": null,
                        "labels": null}),
            ),
        ),
        (
            format!("content/{hash}.Content.json"),
            json!({"contentId": id, "canonicalHash": hash, "contentHash": hash,
                   "artifactType": null, "contentType": "application/json",
                   "serializedReferences": null})
            .to_string()
            .into_bytes(),
        ),
        (
            format!("content/{hash}.Content.data"),
            FLOOR_SCHEMA.as_bytes().to_vec(),
        ),
        (
            format!("groups/{group}/artifacts/{artifact}/MetaData.Artifact.json"),
            meta(json!({"groupId": group, "artifactId": artifact, "artifactType": "AVRO"})),
        ),
        (
            format!("groups/{group}/artifacts/{artifact}/versions/1.ArtifactVersion.json"),
            meta(
                json!({"globalId": id, "groupId": group, "artifactId": artifact,
                        "version": "1", "versionOrder": 1, "state": "ENABLED",
                        "contentId": id}),
            ),
        ),
        (
            format!("groups/{group}/artifacts/{artifact}/branches/latest.Branch.json"),
            meta(
                json!({"groupId": group, "artifactId": artifact, "branchId": "latest",
                        "systemDefined": true, "versions": ["1"]}),
            ),
        ),
    ];
    stored_zip(&files)
}

/// A zip archive of `files`, uncompressed ("stored"), sizes and CRCs in the local headers.
fn stored_zip(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    const DOS_TIME: u16 = 0; // 00:00:00
    const DOS_DATE: u16 = (1 << 5) | 1; // 1980-01-01
    let u16le = |out: &mut Vec<u8>, v: u16| out.extend_from_slice(&v.to_le_bytes());
    let u32le = |out: &mut Vec<u8>, v: u32| out.extend_from_slice(&v.to_le_bytes());
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in files {
        let crc = crc32fast::hash(data);
        let size = u32::try_from(data.len()).expect("small files");
        let offset = u32::try_from(out.len()).expect("a small archive");
        let name_len = u16::try_from(name.len()).expect("short names");
        // Local file header.
        u32le(&mut out, 0x0403_4b50);
        for v in [20, 0, 0, DOS_TIME, DOS_DATE] {
            u16le(&mut out, v); // version needed, flags, method (stored), time, date
        }
        for v in [crc, size, size] {
            u32le(&mut out, v);
        }
        u16le(&mut out, name_len);
        u16le(&mut out, 0); // extra field length
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        // Its central directory entry.
        u32le(&mut central, 0x0201_4b50);
        for v in [20, 20, 0, 0, DOS_TIME, DOS_DATE] {
            u16le(&mut central, v); // made by, needed, flags, method, time, date
        }
        for v in [crc, size, size] {
            u32le(&mut central, v);
        }
        for v in [name_len, 0, 0, 0, 0] {
            u16le(&mut central, v); // name, extra, comment lengths, disk, internal attributes
        }
        u32le(&mut central, 0); // external attributes
        u32le(&mut central, offset);
        central.extend_from_slice(name.as_bytes());
    }
    let central_offset = u32::try_from(out.len()).expect("a small archive");
    let central_size = u32::try_from(central.len()).expect("a small archive");
    let count = u16::try_from(files.len()).expect("few files");
    out.extend_from_slice(&central);
    // End of central directory.
    u32le(&mut out, 0x0605_4b50);
    for v in [0, 0, count, count] {
        u16le(&mut out, v); // this disk, the directory's disk, entries here, entries in all
    }
    u32le(&mut out, central_size);
    u32le(&mut out, central_offset);
    u16le(&mut out, 0); // comment length
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The id floor's archive is a zip that others read: its frame is checked here, and its
    /// content with Python's `zipfile` when `python3` is on the machine.
    #[test]
    fn the_floor_export_is_a_valid_zip() {
        let zip = floor_export(499, "3.0.9");
        assert_eq!(&zip[..4], b"PK\x03\x04");
        let end = zip.len() - 22;
        assert_eq!(&zip[end..end + 4], b"PK\x05\x06");
        assert_eq!(u16::from_le_bytes([zip[end + 10], zip[end + 11]]), 7);
        let Ok(mut python) = std::process::Command::new("python3")
            .args([
                "-c",
                "import sys, io, json, zipfile\n\
                 z = zipfile.ZipFile(io.BytesIO(sys.stdin.buffer.read()))\n\
                 assert z.testzip() is None\n\
                 v = [n for n in z.namelist() if n.endswith('ArtifactVersion.json')][0]\n\
                 print(json.loads(z.read(v))['contentId'])",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
        else {
            return;
        };
        python.stdin.take().unwrap().write_all(&zip).unwrap();
        let out = python.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "499");
    }
}
