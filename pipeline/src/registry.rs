//! **Owns: Schema Registry ids.** What a Confluent-framed record's schema id means, for every
//! service: the built-in ids (constants in `tunix_schemas`), the ids an external registry assigned
//! (asked over its REST API, then remembered in Postgres), and registering our schemas there.
//!
//! - [`RegistryClient`] speaks the Confluent Schema Registry REST API (`POST
//!   /subjects/{subject}/versions`, `GET /schemas/ids/{id}`) with optional HTTP basic auth.
//! - [`SchemaResolver`] turns an id into a shipped schema for the consumers, without a network
//!   call per record. A record ingest-api framed with an external id names its schema in a
//!   header (`tunix_schemas::FINGERPRINT_HEADER`), which wins: no lookup at all, so such records
//!   stay readable after the registry is gone. Other records (other producers): a process cache,
//!   then the `schema_registry_ids` table, then the registry.
//!   An unreachable registry is an error to retry (an outage), never a verdict: only an id that
//!   nobody knows makes the record poison (`unknown_schema`).
//! - [`register_all`] registers every shipped schema under its subject and remembers the ids,
//!   refusing ids that already mean another schema on this topic (a move between registries
//!   must never make an old record mean something else).

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde_json::{json, Value};
use sqlx::PgPool;
use tunix_schemas::{ShippedSchema, BUILTIN_ID_RANGE};

use crate::config::{redact_url, Env, Secret};

/// The content type the Schema Registry API speaks.
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Where the external Schema Registry is, if any (`SCHEMA_REGISTRY_*`).
#[derive(Debug, Clone, Default)]
pub struct RegistrySettings {
    /// `SCHEMA_REGISTRY_URL`: an external registry; unset means the built-in ids.
    pub url: Option<String>,
    /// `SCHEMA_REGISTRY_USERNAME`: HTTP basic auth user (e.g. a Confluent Cloud API key).
    pub username: Option<String>,
    /// `SCHEMA_REGISTRY_PASSWORD`: HTTP basic auth password.
    pub password: Option<Secret>,
    /// `SCHEMA_REGISTRY_TIMEOUT_MS`: per request.
    pub timeout: Duration,
}

impl RegistrySettings {
    /// Reads the `SCHEMA_REGISTRY_*` variables.
    pub fn from_env(env: &mut Env) -> RegistrySettings {
        let url = env.optional("SCHEMA_REGISTRY_URL");
        if let Some(u) = &url {
            if !(u.starts_with("http://") || u.starts_with("https://")) || Url::parse(u).is_err() {
                env.error(format!(
                    "SCHEMA_REGISTRY_URL={} is not an http(s) URL",
                    redact_url(u)
                ));
            }
        }
        let username = env.optional("SCHEMA_REGISTRY_USERNAME");
        let password = env.optional("SCHEMA_REGISTRY_PASSWORD").map(Secret::new);
        if password.is_some() && username.is_none() {
            env.error("SCHEMA_REGISTRY_PASSWORD is set without SCHEMA_REGISTRY_USERNAME");
        }
        RegistrySettings {
            url,
            username,
            password,
            timeout: env.millis("SCHEMA_REGISTRY_TIMEOUT_MS", 5_000),
        }
    }

    /// A client for the external registry, if one is configured.
    pub fn client(&self) -> Option<RegistryClient> {
        let url = self.url.as_deref()?;
        Some(RegistryClient::new(
            url,
            self.username
                .clone()
                .map(|u| (u, self.password.clone().unwrap_or_else(|| Secret::new("")))),
            self.timeout,
        ))
    }
}

/// Why a registry call failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Not reachable, timed out, or a 5xx: retry later.
    #[error("schema registry {url} unavailable: {detail}")]
    Unavailable {
        /// The registry (no credentials).
        url: String,
        /// What happened.
        detail: String,
    },
    /// It answered, and said no (bad credentials, incompatible schema, ...).
    #[error("schema registry {url} refused {what}: HTTP {status}: {message}")]
    Refused {
        /// The registry (no credentials).
        url: String,
        /// The request.
        what: String,
        /// The HTTP status.
        status: u16,
        /// Its error message.
        message: String,
    },
}

/// A client of the Confluent Schema Registry REST API.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    base: Url,
    redacted: String,
    auth: Option<(String, Secret)>,
    http: reqwest::Client,
}

impl RegistryClient {
    /// A client for the registry at `url` (its base path included).
    pub fn new(url: &str, auth: Option<(String, Secret)>, timeout: Duration) -> RegistryClient {
        let mut base = Url::parse(url).unwrap_or_else(|_| Url::parse("http://invalid/").unwrap());
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        RegistryClient {
            redacted: redact_url(url),
            base,
            auth,
            http: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .expect("http client"),
        }
    }

    /// The registry's URL without credentials.
    pub fn url(&self) -> &str {
        &self.redacted
    }

    fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("http URL")
            .pop_if_empty()
            .extend(segments);
        url
    }

    async fn send(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Option<Value>, RegistryError> {
        let request = match &self.auth {
            Some((user, password)) => request.basic_auth(user, Some(password.expose())),
            None => request,
        };
        let unavailable = |detail: String| RegistryError::Unavailable {
            url: self.redacted.clone(),
            detail,
        };
        let response = request
            .header(reqwest::header::ACCEPT, CONTENT_TYPE)
            .send()
            .await
            .map_err(|e| unavailable(format!("{what}: {e}")))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(Some(body));
        }
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(unavailable(format!("{what}: HTTP {status}")));
        }
        // 40403 "schema not found", 40401 "subject not found".
        if status == StatusCode::NOT_FOUND
            && matches!(body["error_code"].as_i64(), Some(40403 | 40401) | None)
        {
            return Ok(None);
        }
        Err(RegistryError::Refused {
            url: self.redacted.clone(),
            what: what.to_owned(),
            status: status.as_u16(),
            message: body["message"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| body.to_string()),
        })
    }

    /// Registers `schema` under `subject` (or finds it there) and returns its id.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<i32, RegistryError> {
        let what = format!("registering under {subject}");
        let body = self
            .send(
                &what,
                self.http
                    .post(self.endpoint(&["subjects", subject, "versions"]))
                    .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
                    .body(json!({ "schema": schema }).to_string()),
            )
            .await?;
        body.as_ref()
            .and_then(|b| b["id"].as_i64())
            .and_then(|id| i32::try_from(id).ok())
            .ok_or_else(|| RegistryError::Refused {
                url: self.redacted.clone(),
                what,
                status: 200,
                message: format!("answer has no schema id: {body:?}"),
            })
    }

    /// The schema text with id `id`; `None` when the registry does not know the id.
    pub async fn schema_text(&self, id: i32) -> Result<Option<String>, RegistryError> {
        let body = self
            .send(
                &format!("looking up schema id {id}"),
                self.http
                    .get(self.endpoint(&["schemas", "ids", &id.to_string()])),
            )
            .await?;
        Ok(body.and_then(|b| b["schema"].as_str().map(str::to_owned)))
    }
}

/// An id that already means another schema.
#[derive(Debug, thiserror::Error)]
#[error(
    "schema id {id} from {registry} means {new}, but events on this topic already use it for \
     {old}: a registry that reuses ids would change what old records mean. Import the ids into \
     that registry with the same numbers, or use another one (see docs/CONSUMERS.md)"
)]
pub struct IdConflict {
    /// The id.
    pub id: i32,
    /// The registry that assigned it now.
    pub registry: String,
    /// What it assigns it to.
    pub new: String,
    /// What it already means.
    pub old: String,
}

/// For an id in the built-in range: `Ok(true)` when it is `schema`'s own built-in id (nothing to
/// remember), an [`IdConflict`] otherwise. `Ok(false)` for any other id.
fn check_builtin(id: i32, schema: ShippedSchema, registry: &str) -> Result<bool, IdConflict> {
    if !BUILTIN_ID_RANGE.contains(&id) {
        return Ok(false);
    }
    match ShippedSchema::by_builtin_id(id) {
        Some(builtin) if builtin == schema => Ok(true),
        other => Err(IdConflict {
            id,
            registry: registry.to_owned(),
            new: schema.file().file.to_owned(),
            old: other.map_or_else(
                || format!("a reserved built-in id ({BUILTIN_ID_RANGE:?})"),
                |o| o.file().file.to_owned(),
            ),
        }),
    }
}

/// Remembers that `id` means `schema` (assigned by `registry`); an id that already means another
/// schema is an [`IdConflict`].
pub async fn remember(
    pool: &PgPool,
    id: i32,
    schema: ShippedSchema,
    registry: &str,
) -> anyhow::Result<()> {
    if check_builtin(id, schema, registry)? {
        return Ok(());
    }
    let conflict = |old: String| IdConflict {
        id,
        registry: registry.to_owned(),
        new: schema.file().file.to_owned(),
        old,
    };
    let fingerprint = schema.fingerprint().to_vec();
    let stored = sqlx::query!(
        "INSERT INTO schema_registry_ids (schema_id, fingerprint, schema_file, registry) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (schema_id) DO NOTHING RETURNING schema_id",
        id,
        fingerprint,
        schema.file().file,
        registry
    )
    .fetch_optional(pool)
    .await?;
    if stored.is_some() {
        return Ok(());
    }
    let known = remembered(pool, id).await?;
    match known {
        Some(s) if s == schema => Ok(()),
        Some(other) => Err(conflict(other.file().file.to_owned()).into()),
        None => Err(conflict("a schema this build does not ship".to_owned()).into()),
    }
}

/// What a remembered external id means; `None` if it was never learned (or names a schema file
/// this build does not ship).
pub async fn remembered(pool: &PgPool, id: i32) -> sqlx::Result<Option<ShippedSchema>> {
    let row = sqlx::query_scalar!(
        "SELECT fingerprint FROM schema_registry_ids WHERE schema_id = $1",
        id
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|fp: Vec<u8>| ShippedSchema::by_fingerprint(&fp)))
}

/// Every remembered external id, by id.
pub async fn all_remembered(pool: &PgPool) -> sqlx::Result<Vec<(i32, ShippedSchema)>> {
    let rows =
        sqlx::query!("SELECT schema_id, fingerprint FROM schema_registry_ids ORDER BY schema_id")
            .fetch_all(pool)
            .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| Some((r.schema_id, ShippedSchema::by_fingerprint(&r.fingerprint)?)))
        .collect())
}

/// One schema registered in an external registry.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The shipped schema.
    pub schema: ShippedSchema,
    /// Its subject.
    pub subject: String,
    /// The id the registry assigned.
    pub id: i32,
}

/// Registers every shipped schema (oldest first within each subject) in `client`'s registry
/// under its subject on `topic`, and remembers the ids in `pool` when given. Fails on the first
/// refusal or id conflict.
pub async fn register_all(
    client: &RegistryClient,
    pool: Option<&PgPool>,
    topic: &str,
) -> anyhow::Result<Vec<Registration>> {
    let mut out = Vec::new();
    for schema in ShippedSchema::all() {
        let subject = schema.file().kind.subject(topic);
        let id = client.register(&subject, schema.file().text).await?;
        match pool {
            Some(pool) => remember(pool, id, schema, client.url()).await?,
            None => {
                check_builtin(id, schema, client.url())?;
            }
        }
        out.push(Registration {
            schema,
            subject,
            id,
        });
    }
    Ok(out)
}

/// Why an id could not be resolved yet (retry: it is an outage, not a verdict on the record).
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The registry did not answer usefully.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Postgres did not answer.
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
}

/// Resolves the schema ids of Confluent-framed records for a consumer (see the module docs).
#[derive(Debug)]
pub struct SchemaResolver {
    client: Option<RegistryClient>,
    pool: PgPool,
    cache: RwLock<HashMap<i32, ShippedSchema>>,
}

impl SchemaResolver {
    /// A resolver asking `client` (when an external registry is configured) and remembering in
    /// `pool`.
    pub fn new(client: Option<RegistryClient>, pool: PgPool) -> SchemaResolver {
        SchemaResolver {
            client,
            pool,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// The schema of an external id resolved before (no I/O).
    pub fn cached(&self, id: i32) -> Option<ShippedSchema> {
        self.cache.read().expect("schema cache").get(&id).copied()
    }

    /// The id of `value`'s frame if it must be resolved before decoding: Confluent-framed, not a
    /// built-in id, not cached, and the record does not name its schema in a header.
    pub fn unresolved(&self, value: &[u8], named: Option<ShippedSchema>) -> Option<i32> {
        let id = tunix_schemas::confluent_schema_id(value)?;
        (named.is_none() && !BUILTIN_ID_RANGE.contains(&id) && self.cached(id).is_none())
            .then_some(id)
    }

    /// Resolves `id`: the table of remembered ids, then the registry. `Ok(None)`: nobody knows
    /// it (or it is not one of our schemas), so its records are poison.
    pub async fn resolve(&self, id: i32) -> Result<Option<ShippedSchema>, ResolveError> {
        if let Some(s) = self.cached(id) {
            return Ok(Some(s));
        }
        let mut found = remembered(&self.pool, id).await?;
        if found.is_none() {
            if let Some(client) = &self.client {
                let text = client.schema_text(id).await?;
                found = text.as_deref().and_then(ShippedSchema::from_schema_text);
                if let Some(schema) = found {
                    if let Err(e) = remember(&self.pool, id, schema, client.url()).await {
                        // Someone else's meaning is already recorded: decode with that one.
                        tracing::error!(error = %e, "schema id conflict");
                        found = remembered(&self.pool, id).await?;
                    }
                }
            }
        }
        if let Some(schema) = found {
            self.cache.write().expect("schema cache").insert(id, schema);
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_need_an_http_url_and_a_user_for_a_password() {
        let mut env = Env::from_map([
            ("SCHEMA_REGISTRY_URL", "localhost:8081"),
            ("SCHEMA_REGISTRY_PASSWORD", "p"),
        ]);
        RegistrySettings::from_env(&mut env);
        let errors = env.finish().unwrap_err().0;
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("not an http(s) URL"), "{errors:?}");
        assert!(errors[1].contains("without SCHEMA_REGISTRY_USERNAME"));

        let mut env = Env::from_map(Vec::<(String, String)>::new());
        let settings = RegistrySettings::from_env(&mut env);
        assert!(settings.client().is_none());
        assert_eq!(settings.timeout, Duration::from_secs(5));
    }

    #[test]
    fn endpoints_keep_the_base_path_and_escape_segments() {
        let c = RegistryClient::new(
            "https://user:secret@sr.example/base",
            None,
            Duration::from_secs(1),
        );
        assert_eq!(c.url(), "https://user:***@sr.example/base");
        assert_eq!(
            c.endpoint(&["subjects", "a b/c", "versions"]).path(),
            "/base/subjects/a%20b%2Fc/versions"
        );
        let c = RegistryClient::new("http://h:1/", None, Duration::from_secs(1));
        assert_eq!(
            c.endpoint(&["schemas", "ids", "7"]).path(),
            "/schemas/ids/7"
        );
    }
}
