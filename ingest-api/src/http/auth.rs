//! API keys with scopes.
//!
//! Configured with `API_KEYS` (`key:scope+scope,key:scope`) and/or `API_KEYS_FILE` (one
//! `key scope scope` per line, `#` comments). Scopes: `ingest` (POST traces), `read` (GET), `admin`
//! (DELETE; includes the other two). Keys are kept only as SHA-256 digests and compared in
//! constant time against every configured key, so neither timing nor logs reveal them. A key is
//! presented as `Authorization: Bearer <key>`, or as the password of HTTP basic auth (any user
//! name), which is how Schema Registry clients authenticate.

use std::fmt;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tunix_pipeline::config::Env;

use super::error::ApiError;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Submit traces.
    Ingest,
    /// Read traces and lists.
    Read,
    /// Delete traces; implies the other scopes.
    Admin,
}

impl Scope {
    /// The scope's name in `API_KEYS` and in answers.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "ingest" => Ok(Scope::Ingest),
            "read" => Ok(Scope::Read),
            "admin" => Ok(Scope::Admin),
            other => Err(format!(
                "unknown scope {other:?} (expected ingest, read or admin)"
            )),
        }
    }
}

#[derive(Clone)]
struct Key {
    digest: [u8; 32],
    scopes: Vec<Scope>,
}

/// The configured keys. Empty means authentication is off.
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Vec<Key>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeys({} keys)", self.keys.len())
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization: Bearer` header, or an unknown key: 401.
    Unauthenticated,
    /// A valid key without the needed scope: 403.
    Forbidden(Scope),
    /// `Authorization` sent on more than one line: which key was meant is ambiguous (400).
    Ambiguous,
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl ApiKeys {
    /// Reads `API_KEYS` and `API_KEYS_FILE`.
    pub fn from_env(env: &mut Env) -> ApiKeys {
        let mut keys = ApiKeys::default();
        if let Some(list) = env.optional("API_KEYS") {
            for (n, entry) in list
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .enumerate()
            {
                match entry.rsplit_once(':') {
                    Some((key, scopes)) => keys.add(
                        key,
                        scopes.split('+'),
                        env,
                        &format!("API_KEYS entry {}", n + 1),
                    ),
                    None => env.error(format!(
                        "API_KEYS entry {} has no scopes (expected key:scope+scope)",
                        n + 1
                    )),
                }
            }
        }
        if let Some(path) = env.optional("API_KEYS_FILE") {
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    for (n, line) in text.lines().enumerate() {
                        let line = line.trim();
                        if line.is_empty() || line.starts_with('#') {
                            continue;
                        }
                        let mut parts = line.split_whitespace();
                        let key = parts.next().unwrap_or_default();
                        keys.add(key, parts, env, &format!("{path} line {}", n + 1));
                    }
                }
                Err(e) => env.error(format!("API_KEYS_FILE={path}: {e}")),
            }
        }
        keys
    }

    fn add<'a>(
        &mut self,
        key: &str,
        scopes: impl Iterator<Item = &'a str>,
        env: &mut Env,
        what: &str,
    ) {
        let key = key.trim();
        if key.len() < 16 {
            env.error(format!("{what}: keys must be at least 16 characters"));
            return;
        }
        let mut parsed = Vec::new();
        for s in scopes {
            match s.parse::<Scope>() {
                Ok(scope) => parsed.push(scope),
                Err(e) => {
                    env.error(format!("{what}: {e}"));
                    return;
                }
            }
        }
        if parsed.is_empty() {
            env.error(format!("{what}: at least one scope is required"));
            return;
        }
        self.keys.push(Key {
            digest: digest(key),
            scopes: parsed,
        });
    }

    /// Keys given directly (tests).
    pub fn from_pairs(pairs: &[(&str, &[Scope])]) -> ApiKeys {
        ApiKeys {
            keys: pairs
                .iter()
                .map(|(k, s)| Key {
                    digest: digest(k),
                    scopes: s.to_vec(),
                })
                .collect(),
        }
    }

    /// Whether authentication is on.
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Checks the request's bearer token for `needed` (or for any valid key when `None`);
    /// returns who is calling.
    pub fn check(&self, headers: &HeaderMap, needed: Option<Scope>) -> Result<Caller, AuthError> {
        if !self.enabled() {
            return Ok(Caller::anonymous());
        }
        let mut lines = headers.get_all(axum::http::header::AUTHORIZATION).iter();
        let first = lines.next();
        if lines.next().is_some() {
            return Err(AuthError::Ambiguous);
        }
        let token = first
            .and_then(|v| v.to_str().ok())
            .and_then(presented_key)
            .ok_or(AuthError::Unauthenticated)?;
        let presented = digest(&token);
        // Compare against every key, without stopping at a match.
        let mut matched: Option<&Key> = None;
        for key in &self.keys {
            if bool::from(key.digest.ct_eq(&presented)) {
                matched = Some(key);
            }
        }
        let key = matched.ok_or(AuthError::Unauthenticated)?;
        match needed {
            Some(scope) if !key.scopes.contains(&scope) && !key.scopes.contains(&Scope::Admin) => {
                Err(AuthError::Forbidden(scope))
            }
            _ => Ok(Caller::of(&key.digest)),
        }
    }
}

/// Who made a request, as audit records name them: `key-` and the first 12 hex digits of the
/// API key's SHA-256 (stable, not secret: the key cannot be recovered from it), or `anonymous`
/// when authentication is off. Set as a request extension by [`enforce`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub String);

impl Caller {
    /// The caller when authentication is off.
    pub fn anonymous() -> Caller {
        Caller("anonymous".to_owned())
    }

    fn of(digest: &[u8; 32]) -> Caller {
        let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        Caller(format!("key-{hex}"))
    }

    /// The id of `key` (for operators matching audit records to their keys).
    pub fn of_key(key: &str) -> Caller {
        Caller::of(&digest(key))
    }
}

/// The key in an `Authorization` value: `Bearer <key>`, or HTTP basic auth with the key as the
/// password and any user name (what Schema Registry clients send: `basic.auth.user.info`).
fn presented_key(value: &str) -> Option<String> {
    use base64::Engine;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(token.to_owned());
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (_user, password) = text.split_once(':')?;
    Some(password.to_owned())
}

/// How a refused key is answered: 401, 403, or 400 for two `Authorization` lines.
impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthenticated => ApiError::Unauthenticated,
            AuthError::Forbidden(scope) => ApiError::Forbidden(scope.as_str()),
            AuthError::Ambiguous => ApiError::BadRequest(
                "the Authorization header was sent more than once; send it once".into(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn parses_keys_and_checks_scopes() {
        let mut env = Env::from_map([(
            "API_KEYS",
            "ingest-key-0123456789:ingest, reader-key-0123456789:read+ingest,admin-key-0123456789:admin",
        )]);
        let keys = ApiKeys::from_env(&mut env);
        env.finish().unwrap();
        assert!(keys.enabled());
        let ingest = headers("Bearer ingest-key-0123456789");
        let ingest_id = Caller::of_key("ingest-key-0123456789");
        assert_eq!(
            keys.check(&ingest, Some(Scope::Ingest)),
            Ok(ingest_id.clone())
        );
        assert!(
            ingest_id.0.starts_with("key-") && ingest_id.0.len() == 16,
            "{ingest_id:?}"
        );
        assert!(!ingest_id.0.contains("0123456789"), "never the key itself");
        assert_eq!(
            keys.check(&ingest, Some(Scope::Read)),
            Err(AuthError::Forbidden(Scope::Read))
        );
        assert_eq!(
            keys.check(&headers("bearer reader-key-0123456789"), Some(Scope::Read)),
            Ok(Caller::of_key("reader-key-0123456789"))
        );
        assert_eq!(
            keys.check(&headers("Bearer admin-key-0123456789"), Some(Scope::Read)),
            Ok(Caller::of_key("admin-key-0123456789"))
        );
        assert_eq!(
            keys.check(&headers("Bearer nope-nope-nope-nope"), None),
            Err(AuthError::Unauthenticated)
        );
        assert_eq!(
            keys.check(&headers("Basic abc"), None),
            Err(AuthError::Unauthenticated)
        );
        assert_eq!(
            keys.check(&HeaderMap::new(), None),
            Err(AuthError::Unauthenticated)
        );
        // Basic auth: any user, the key as the password (Schema Registry clients).
        let basic = |userinfo: &str| {
            use base64::Engine;
            headers(&format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(userinfo)
            ))
        };
        assert_eq!(
            keys.check(&basic("sr:reader-key-0123456789"), Some(Scope::Read)),
            Ok(Caller::of_key("reader-key-0123456789"))
        );
        assert_eq!(
            keys.check(&basic("ingest-key-0123456789:"), Some(Scope::Read)),
            Err(AuthError::Unauthenticated),
            "the key is the password, not the user"
        );
        assert_eq!(
            keys.check(&basic("x:ingest-key-0123456789"), Some(Scope::Read)),
            Err(AuthError::Forbidden(Scope::Read))
        );
        assert_eq!(format!("{keys:?}"), "ApiKeys(3 keys)", "keys never print");
        let mut twice = headers("Bearer admin-key-0123456789");
        twice.append(
            "authorization",
            HeaderValue::from_static("Bearer ingest-key-0123456789"),
        );
        assert_eq!(keys.check(&twice, None), Err(AuthError::Ambiguous));
    }

    #[test]
    fn bad_entries_are_reported() {
        let mut env = Env::from_map([(
            "API_KEYS",
            "short:ingest,long-enough-key-123:wizard,noscope-0123456789abc",
        )]);
        let _ = ApiKeys::from_env(&mut env);
        let err = env.finish().unwrap_err();
        assert_eq!(err.0.len(), 3, "{err}");
    }

    #[test]
    fn no_keys_means_open() {
        assert_eq!(
            ApiKeys::default().check(&HeaderMap::new(), Some(Scope::Admin)),
            Ok(Caller::anonymous())
        );
    }
}

/// What a group of routes demands: a key with `scope`, or any valid key when `scope` is `None`.
#[derive(Clone)]
pub struct Requirement {
    keys: Arc<ApiKeys>,
    scope: Option<Scope>,
}

impl Requirement {
    /// A requirement checked against `keys`.
    pub fn new(keys: Arc<ApiKeys>, scope: Option<Scope>) -> Requirement {
        Requirement { keys, scope }
    }
}

/// Route-layer middleware (`from_fn_with_state(requirement, enforce)`): admits the request only
/// when its key meets the requirement; 401 or 403 otherwise (400 for two `Authorization` lines).
/// With authentication off it admits everything.
pub async fn enforce(
    State(requirement): State<Requirement>,
    request: Request,
    next: Next,
) -> Response {
    let mut request = request;
    match requirement.keys.check(request.headers(), requirement.scope) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}
