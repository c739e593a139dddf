//! Managed Kafka's way in: TLS to the broker, then a SASL SCRAM login. A Kafka node whose client
//! listener is `SASL_SSL` (a certificate from a CA made here, SCRAM users created when its
//! storage is formatted) carries the whole pipeline; a wrong password and a CA that does not
//! sign the broker's certificate each stop a service at start-up with the setting to fix,
//! instead of librdkafka retrying forever.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tunix_e2e::{kv, Stack, StackOptions};
use tunix_testkit::{dataset, run_ok, ClusterOptions, KafkaCluster};

const USER: &str = "tunix";
const PASSWORD: &str = "tunix-secret-0123";

fn openssl(args: &[&str], dir: &Path) {
    run_ok(
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null()),
        &format!("openssl {args:?}"),
    );
}

/// A CA, the broker's certificate (for 127.0.0.1) signed by it in a PEM keystore (key, leaf,
/// CA), and an unrelated CA. Returns (ca.pem, other-ca.pem, broker-keystore.pem).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    for (name, cn) in [("ca", "tunix test CA"), ("other-ca", "someone else's CA")] {
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={cn}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
            dir,
        );
    }
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "broker.key",
            "-out",
            "broker.csr",
        ],
        dir,
    );
    std::fs::write(
        dir.join("broker.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "broker.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-sha256",
            "-extfile",
            "broker.ext",
            "-out",
            "broker.crt",
        ],
        dir,
    );
    // Kafka's PEM keystore: the unencrypted PKCS#8 key, then the chain from the leaf up.
    let keystore: String = ["broker.key", "broker.crt", "ca.pem"]
        .iter()
        .map(|f| std::fs::read_to_string(dir.join(f)).unwrap())
        .collect();
    std::fs::write(dir.join("broker-keystore.pem"), keystore).unwrap();
    (
        dir.join("ca.pem"),
        dir.join("other-ca.pem"),
        dir.join("broker-keystore.pem"),
    )
}

/// A one-node Kafka whose client listener takes SASL_SSL with SCRAM-SHA-256/512.
fn secured_kafka(keystore: &Path) -> KafkaCluster {
    let scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;";
    KafkaCluster::start_with(ClusterOptions {
        nodes: 1,
        client_protocol: Some("SASL_SSL".into()),
        extra_properties: vec![
            kv(
                "listener.name.client.sasl.enabled.mechanisms",
                "SCRAM-SHA-256,SCRAM-SHA-512",
            ),
            kv("listener.name.client.scram-sha-256.sasl.jaas.config", scram),
            kv("listener.name.client.scram-sha-512.sasl.jaas.config", scram),
            kv("listener.name.client.ssl.keystore.type", "PEM"),
            kv(
                "listener.name.client.ssl.keystore.location",
                keystore.display().to_string(),
            ),
            kv("listener.name.client.ssl.client.auth", "none"),
        ],
        format_args: vec![
            "--add-scram".into(),
            format!("SCRAM-SHA-512=[name={USER},password={PASSWORD}]"),
            "--add-scram".into(),
            format!("SCRAM-SHA-256=[name={USER},password={PASSWORD}]"),
        ],
    })
}

fn security_env(ca: &Path, mechanism: &str, password: &str) -> Vec<(String, String)> {
    vec![
        kv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
        kv("KAFKA_SASL_MECHANISM", mechanism),
        kv("KAFKA_SASL_USERNAME", USER),
        kv("KAFKA_SASL_PASSWORD", password),
        kv("KAFKA_SSL_CA_LOCATION", ca.display().to_string()),
    ]
}

/// Runs `binary` with `env` until it exits (it must, within 60 s); returns success and output.
async fn run_to_exit(binary: &str, env: &[(String, String)]) -> (bool, String) {
    tunix_testkit::run_to_exit(
        tunix_testkit::binary(binary),
        env,
        Duration::from_secs(60),
        "a refused login stops start-up instead of retrying forever",
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pipeline_runs_over_sasl_ssl_and_bad_credentials_stop_start_up() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, other_ca, keystore) = certificates(certs.path());
    let kafka = secured_kafka(&keystore);

    // The whole pipeline, logged in with SCRAM-SHA-512 and verifying the broker with our CA.
    let stack = Stack::start(StackOptions {
        brokers: Some(kafka.brokers()),
        service_env: security_env(&ca, "SCRAM-SHA-512", PASSWORD),
        ..StackOptions::default()
    })
    .await;
    let data = dataset();
    let mut ids = Vec::new();
    for trace in &data[..20] {
        let (status, body) = stack.post(trace).await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    stack.wait_converged(20, Duration::from_secs(60)).await;
    let (status, body) = stack.get(&format!("/api/traces/{}", ids[0])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["payload"]["prompt"], data[0]["prompt"]);

    // What a misconfigured service says, and that it says it at once.
    let db = tunix_testkit::TestDb::new().await;
    let base = |security: Vec<(String, String)>| {
        let mut env = vec![
            kv("KAFKA_BROKERS", kafka.brokers()),
            kv("KAFKA_TOPIC", stack.topic.name()),
            kv("DATABASE_URL", db.url.clone()),
            kv(
                "API_ADDR",
                format!("127.0.0.1:{}", tunix_testkit::free_port()),
            ),
            kv(
                "WRITER_OPS_ADDR",
                format!("127.0.0.1:{}", tunix_testkit::free_port()),
            ),
        ];
        env.extend(security);
        env
    };
    for binary in ["tunix-ingest-api", "tunix-writer"] {
        let (ok, text) = run_to_exit(
            binary,
            &base(security_env(&ca, "SCRAM-SHA-512", "wrong-password")),
        )
        .await;
        assert!(!ok, "{binary} must not start with a wrong password: {text}");
        assert!(
            text.contains("KAFKA_SASL_PASSWORD") && text.contains("refused the login"),
            "{binary} names the setting: {text}"
        );
        assert!(
            !text.contains("wrong-password"),
            "the password is never printed: {text}"
        );
    }
    let (ok, text) = run_to_exit(
        "tunix-ingest-api",
        &base(security_env(&other_ca, "SCRAM-SHA-512", PASSWORD)),
    )
    .await;
    assert!(!ok, "{text}");
    assert!(
        text.contains("KAFKA_SSL_CA_LOCATION") && text.contains("certificate verify failed"),
        "an unknown CA names the setting: {text}"
    );
    // SCRAM-SHA-256 works as well (a user has one credential per mechanism).
    let mut cmd = tokio::process::Command::new(tunix_testkit::binary("tunix-admin"));
    cmd.arg("create-topics")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KAFKA_BROKERS", kafka.brokers())
        .env("KAFKA_TOPIC", tunix_testkit::unique("scram256"))
        .env("DATABASE_URL", &db.url)
        .envs(security_env(&ca, "SCRAM-SHA-256", PASSWORD));
    let out = cmd.output().await.unwrap();
    assert!(
        out.status.success(),
        "SCRAM-SHA-256: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("topics ready"));
}
