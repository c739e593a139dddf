//! **Owns: how every client proves itself to Kafka** (TLS and SASL settings), and the start-up
//! check that turns a refused credential or an unverifiable certificate into one clear error.
//!
//! Managed Kafka (Confluent Cloud, MSK, Aiven) and most company clusters demand `SASL_SSL`:
//! TLS to the broker, then a SASL login, SCRAM-SHA-256/512 or PLAIN. librdkafka implements both
//! itself on top of OpenSSL (no libsasl2; GSSAPI/Kerberos is not built in).
//!
//! librdkafka never gives up on a broker: a wrong password or a CA that does not sign the
//! broker's certificate is retried about once a second, forever, and surfaces only in its error
//! callback. A service would then run unready with no reason anyone sees, so each service asks
//! for metadata once at start-up ([`check_access`]) and stops with the setting to fix.
//! A broker that is merely unreachable is not a configuration error: services start and report
//! it through readiness until it answers.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::config::{Env, Secret};

/// `KAFKA_SECURITY_PROTOCOL`: how clients connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecurityProtocol {
    /// No TLS, no login (the local stack).
    #[default]
    Plaintext,
    /// TLS, no login.
    Ssl,
    /// A SASL login without TLS (the password crosses the network as the mechanism sends it).
    SaslPlaintext,
    /// TLS, then a SASL login: what managed Kafka asks for.
    SaslSsl,
}

impl SecurityProtocol {
    /// librdkafka's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// `KAFKA_SASL_MECHANISM`: the SASL login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    /// Salted challenge-response; the password never crosses the wire.
    ScramSha256,
    /// The same with SHA-512 (Confluent Platform's and MSK's usual choice).
    ScramSha512,
    /// The password itself, inside TLS (Confluent Cloud API keys).
    Plain,
}

impl SaslMechanism {
    /// librdkafka's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::Plain => "PLAIN",
        }
    }
}

/// A SASL login.
#[derive(Debug, Clone)]
pub struct SaslLogin {
    /// `KAFKA_SASL_MECHANISM`.
    pub mechanism: SaslMechanism,
    /// `KAFKA_SASL_USERNAME`.
    pub username: String,
    /// `KAFKA_SASL_PASSWORD` (never logged).
    pub password: Secret,
}

/// How clients authenticate to the brokers and verify them.
#[derive(Debug, Clone, Default)]
pub struct KafkaSecurity {
    /// `KAFKA_SECURITY_PROTOCOL`.
    pub protocol: SecurityProtocol,
    /// The login, with a `SASL_*` protocol.
    pub sasl: Option<SaslLogin>,
    /// `KAFKA_SSL_CA_LOCATION`: the CA certificate(s) (PEM) that sign the brokers'
    /// certificates; the system's CAs when unset (a public CA, as managed services use).
    pub ca_location: Option<PathBuf>,
}

impl KafkaSecurity {
    /// Reads the `KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_*` and `KAFKA_SSL_CA_LOCATION` variables;
    /// contradictions are errors that name the variable.
    pub fn from_env(env: &mut Env) -> KafkaSecurity {
        let protocol = match env
            .string("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
            .to_ascii_uppercase()
            .as_str()
        {
            "PLAINTEXT" => SecurityProtocol::Plaintext,
            "SSL" => SecurityProtocol::Ssl,
            "SASL_PLAINTEXT" => SecurityProtocol::SaslPlaintext,
            "SASL_SSL" => SecurityProtocol::SaslSsl,
            other => {
                env.error(format!(
                    "KAFKA_SECURITY_PROTOCOL={other:?}: expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
                ));
                SecurityProtocol::Plaintext
            }
        };
        let mechanism = env.optional("KAFKA_SASL_MECHANISM");
        let username = env.optional("KAFKA_SASL_USERNAME");
        let password = env.optional("KAFKA_SASL_PASSWORD").map(Secret::new);
        let ca_location = env.optional("KAFKA_SSL_CA_LOCATION").map(PathBuf::from);
        let sasl = if protocol.sasl() {
            let mechanism = match mechanism
                .as_deref()
                .unwrap_or("SCRAM-SHA-512")
                .to_ascii_uppercase()
                .as_str()
            {
                "SCRAM-SHA-256" => SaslMechanism::ScramSha256,
                "SCRAM-SHA-512" => SaslMechanism::ScramSha512,
                "PLAIN" => SaslMechanism::Plain,
                other => {
                    env.error(format!(
                        "KAFKA_SASL_MECHANISM={other:?}: expected SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN (GSSAPI and OAUTHBEARER are not built in)"
                    ));
                    SaslMechanism::ScramSha512
                }
            };
            match (username, password) {
                (Some(username), Some(password)) => Some(SaslLogin {
                    mechanism,
                    username,
                    password,
                }),
                (username, password) => {
                    let missing: Vec<&str> = [
                        username.is_none().then_some("KAFKA_SASL_USERNAME"),
                        password.is_none().then_some("KAFKA_SASL_PASSWORD"),
                    ]
                    .into_iter()
                    .flatten()
                    .collect();
                    env.error(format!(
                        "KAFKA_SECURITY_PROTOCOL={} needs {}",
                        protocol.as_str(),
                        missing.join(" and ")
                    ));
                    None
                }
            }
        } else {
            for (name, set) in [
                ("KAFKA_SASL_MECHANISM", mechanism.is_some()),
                ("KAFKA_SASL_USERNAME", username.is_some()),
                ("KAFKA_SASL_PASSWORD", password.is_some()),
            ] {
                if set {
                    env.error(format!(
                        "{name} is set but KAFKA_SECURITY_PROTOCOL={} logs in with no SASL (use SASL_SSL)",
                        protocol.as_str()
                    ));
                }
            }
            None
        };
        if let Some(path) = &ca_location {
            if !protocol.tls() {
                env.error(format!(
                    "KAFKA_SSL_CA_LOCATION is set but KAFKA_SECURITY_PROTOCOL={} uses no TLS (use SSL or SASL_SSL)",
                    protocol.as_str()
                ));
            } else {
                match std::fs::read_to_string(path) {
                    Ok(pem) if pem.contains("-----BEGIN CERTIFICATE-----") => {}
                    Ok(_) => env.error(format!(
                        "KAFKA_SSL_CA_LOCATION={}: holds no PEM certificate",
                        path.display()
                    )),
                    Err(e) => env.error(format!(
                        "KAFKA_SSL_CA_LOCATION={}: cannot read it: {e}",
                        path.display()
                    )),
                }
            }
        }
        KafkaSecurity {
            protocol,
            sasl,
            ca_location,
        }
    }

    /// Sets the librdkafka properties for these settings on `cfg`.
    pub fn apply(&self, cfg: &mut ClientConfig) {
        if self.protocol == SecurityProtocol::Plaintext {
            return;
        }
        cfg.set("security.protocol", self.protocol.as_str());
        if let Some(login) = &self.sasl {
            cfg.set("sasl.mechanisms", login.mechanism.as_str())
                .set("sasl.username", &login.username)
                .set("sasl.password", login.password.expose());
        }
        if let Some(ca) = &self.ca_location {
            cfg.set("ssl.ca.location", ca.display().to_string());
        }
    }

    /// Whether there is anything the brokers could refuse (a login or a certificate to verify).
    pub fn needs_check(&self) -> bool {
        self.protocol != SecurityProtocol::Plaintext
    }
}

/// Why the brokers cannot be used with these settings.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The broker refused the SASL login.
    #[error("Kafka refused the login of KAFKA_SASL_USERNAME={username} with KAFKA_SASL_MECHANISM={mechanism}: check KAFKA_SASL_PASSWORD, the user and the mechanism the cluster enables ({reason})")]
    Login {
        /// The user.
        username: String,
        /// The mechanism.
        mechanism: &'static str,
        /// librdkafka's words.
        reason: String,
    },
    /// TLS could not verify the broker.
    #[error("Kafka's TLS certificate could not be verified: check KAFKA_SSL_CA_LOCATION ({ca}) and that the certificate names the broker address in KAFKA_BROKERS ({reason})")]
    Certificate {
        /// Where the CA came from.
        ca: String,
        /// librdkafka's words.
        reason: String,
    },
    /// The client could not be created (e.g. a property librdkafka refuses).
    #[error("cannot create a Kafka client: {0}")]
    Client(#[from] KafkaError),
}

/// Records what librdkafka reports through its error callback.
#[derive(Default)]
struct Recorder(Mutex<Vec<(RDKafkaErrorCode, String)>>);

impl ClientContext for Recorder {
    fn error(&self, error: KafkaError, reason: &str) {
        if let Some(code) = error.rdkafka_error_code() {
            self.0
                .lock()
                .expect("recorder lock")
                .push((code, reason.to_owned()));
        }
    }
}

impl ConsumerContext for Recorder {}

/// Asks the brokers for metadata once with `cfg` (the settings' own client config). `Ok` when
/// they answered or could not be reached at all (not a configuration error); an error naming
/// the setting when they refused the login or TLS could not verify them. Blocking: up to
/// `timeout`, and only when [`KafkaSecurity::needs_check`].
pub fn check_access(
    security: &KafkaSecurity,
    cfg: &ClientConfig,
    timeout: Duration,
) -> Result<(), AccessError> {
    if !security.needs_check() {
        return Ok(());
    }
    let consumer: BaseConsumer<Recorder> = cfg.create_with_context(Recorder::default())?;
    if consumer.fetch_metadata(None, timeout).is_ok() {
        return Ok(());
    }
    // The cause reaches the error callback only when the client's queue is served.
    let deadline = Instant::now() + Duration::from_secs(1);
    let refused = loop {
        let _ = consumer.poll(Duration::from_millis(50));
        let seen = consumer.context().0.lock().expect("recorder lock").clone();
        let refused = seen.into_iter().find(|(code, _)| {
            matches!(
                code,
                RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SSL
            )
        });
        if refused.is_some() || Instant::now() > deadline {
            break refused;
        }
    };
    match refused {
        Some((RDKafkaErrorCode::Authentication, reason)) => {
            let login = security.sasl.as_ref();
            Err(AccessError::Login {
                username: login.map(|l| l.username.clone()).unwrap_or_default(),
                mechanism: login.map_or("", |l| l.mechanism.as_str()),
                reason,
            })
        }
        Some((_, reason)) => Err(AccessError::Certificate {
            ca: security.ca_location.as_ref().map_or_else(
                || "unset: the system's CAs".to_owned(),
                |p| p.display().to_string(),
            ),
            reason,
        }),
        None => {
            tracing::warn!("Kafka is not reachable yet; starting anyway, unready until it answers");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> (KafkaSecurity, Result<(), String>) {
        let mut env = Env::from_map(pairs.iter().copied());
        let s = KafkaSecurity::from_env(&mut env);
        (s, env.finish().map_err(|e| e.to_string()))
    }

    #[test]
    fn plaintext_is_the_default_and_sets_nothing() {
        let (s, ok) = read(&[]);
        assert!(ok.is_ok());
        assert!(!s.needs_check());
        let mut cfg = ClientConfig::new();
        s.apply(&mut cfg);
        assert_eq!(cfg.get("security.protocol"), None);
    }

    #[test]
    fn sasl_ssl_sets_the_login_and_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let (s, ok) = read(&[
            ("KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
            ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-256"),
            ("KAFKA_SASL_USERNAME", "alice"),
            ("KAFKA_SASL_PASSWORD", "pw"),
            ("KAFKA_SSL_CA_LOCATION", ca.to_str().unwrap()),
        ]);
        ok.unwrap();
        let mut cfg = ClientConfig::new();
        s.apply(&mut cfg);
        assert_eq!(cfg.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(cfg.get("sasl.mechanisms"), Some("SCRAM-SHA-256"));
        assert_eq!(cfg.get("sasl.username"), Some("alice"));
        assert_eq!(cfg.get("sasl.password"), Some("pw"));
        assert_eq!(cfg.get("ssl.ca.location"), ca.to_str());
        assert!(
            !format!("{s:?}").contains("pw\""),
            "the password is not in Debug"
        );
    }

    #[test]
    fn contradictions_name_the_variable() {
        let (_, err) = read(&[("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")]);
        let err = err.unwrap_err();
        assert!(
            err.contains("KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"),
            "{err}"
        );
        let (_, err) = read(&[("KAFKA_SASL_USERNAME", "alice")]);
        assert!(err.unwrap_err().contains("KAFKA_SASL_USERNAME is set but"));
        let (_, err) = read(&[
            ("KAFKA_SECURITY_PROTOCOL", "SSL"),
            ("KAFKA_SSL_CA_LOCATION", "/nonexistent/ca.pem"),
        ]);
        assert!(err
            .unwrap_err()
            .contains("KAFKA_SSL_CA_LOCATION=/nonexistent/ca.pem"));
        let (_, err) = read(&[("KAFKA_SECURITY_PROTOCOL", "kerberos")]);
        assert!(err.unwrap_err().contains("KAFKA_SECURITY_PROTOCOL"));
        let (_, err) = read(&[
            ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
            ("KAFKA_SASL_MECHANISM", "GSSAPI"),
            ("KAFKA_SASL_USERNAME", "a"),
            ("KAFKA_SASL_PASSWORD", "b"),
        ]);
        assert!(err.unwrap_err().contains("KAFKA_SASL_MECHANISM"));
    }
}
