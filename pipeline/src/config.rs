//! Reading typed configuration from environment variables.
//!
//! Every service builds one config struct through an [`Env`], which records each variable it reads
//! and every problem it finds, so a bad deployment fails at start-up with *all* its mistakes listed
//! rather than one per restart. Tests build configs from a map and never touch the process
//! environment.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A source of configuration values with error collection.
pub struct Env {
    values: BTreeMap<String, String>,
    read: BTreeSet<&'static str>,
    errors: Vec<String>,
}

/// Loads a program's configuration from the process environment, or prints every problem and
/// exits with status 2 (for `main`).
pub fn load_or_exit<T>(program: &str, load: impl FnOnce(Env) -> Result<T, ConfigError>) -> T {
    match load(Env::from_process()) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("{program}: {e}");
            std::process::exit(2);
        }
    }
}

/// All configuration problems found at once.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

impl Env {
    /// Reads from the process environment.
    pub fn from_process() -> Env {
        Env::from_map(std::env::vars())
    }

    /// Reads from explicit pairs (tests).
    pub fn from_map<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Env {
        Env {
            values: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            read: BTreeSet::new(),
            errors: Vec::new(),
        }
    }

    fn raw(&mut self, name: &'static str) -> Option<String> {
        self.read.insert(name);
        self.values
            .get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// An optional string.
    pub fn optional(&mut self, name: &'static str) -> Option<String> {
        self.raw(name)
    }

    /// A string with a default.
    pub fn string(&mut self, name: &'static str, default: &str) -> String {
        self.raw(name).unwrap_or_else(|| default.to_owned())
    }

    /// A parsed value with a default; a value that does not parse is recorded as an error.
    pub fn parse<T>(&mut self, name: &'static str, default: T) -> T
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.raw(name) {
            None => default,
            Some(v) => match v.parse() {
                Ok(parsed) => parsed,
                Err(e) => {
                    self.errors.push(format!("{name}={v:?}: {e}"));
                    default
                }
            },
        }
    }

    /// An integer that must lie in `range`.
    pub fn bounded<T>(&mut self, name: &'static str, default: T, min: T, max: T) -> T
    where
        T: FromStr + PartialOrd + Copy + fmt::Display,
        T::Err: fmt::Display,
    {
        let v = self.parse(name, default);
        if v < min || v > max {
            self.errors
                .push(format!("{name}={v}: must be between {min} and {max}"));
            return default;
        }
        v
    }

    /// A duration given in milliseconds.
    pub fn millis(&mut self, name: &'static str, default_ms: u64) -> Duration {
        Duration::from_millis(self.parse(name, default_ms))
    }

    /// A duration given in (possibly fractional) seconds.
    pub fn seconds(&mut self, name: &'static str, default_s: f64) -> Duration {
        let v: f64 = self.parse(name, default_s);
        if !(v.is_finite() && v >= 0.0) {
            self.errors.push(format!(
                "{name}={v}: must be a non-negative number of seconds"
            ));
            return Duration::from_secs_f64(default_s);
        }
        Duration::from_secs_f64(v)
    }

    /// A boolean: `1/true/yes/on` or `0/false/no/off`.
    pub fn flag(&mut self, name: &'static str, default: bool) -> bool {
        match self.raw(name).map(|v| v.to_ascii_lowercase()) {
            None => default,
            Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => true,
            Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => false,
            Some(v) => {
                self.errors
                    .push(format!("{name}={v:?}: expected true or false"));
                default
            }
        }
    }

    /// Records a problem found by the caller while interpreting values.
    pub fn error(&mut self, msg: impl Into<String>) {
        self.errors.push(msg.into());
    }

    /// The names of every variable read so far (for documentation tests).
    pub fn names_read(&self) -> Vec<&'static str> {
        self.read.iter().copied().collect()
    }

    /// Ends reading: `Err` lists every problem.
    pub fn finish(self) -> Result<(), ConfigError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(self.errors))
        }
    }
}

/// A secret string that never appears in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Replaces the password in a URL with `***` for logging.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let Some(at) = rest.find('@') else {
        return url.to_owned();
    };
    let userinfo = &rest[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &userinfo[..colon],
            &rest[at..]
        ),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_every_error() {
        let mut env = Env::from_map([("A", "x"), ("B", "-1"), ("C", "maybe")]);
        let _: u32 = env.parse("A", 1);
        let _: i64 = env.bounded("B", 5, 0, 10);
        let _ = env.flag("C", false);
        assert_eq!(env.string("D", "dflt"), "dflt");
        let err = env.finish().unwrap_err();
        assert_eq!(err.0.len(), 3, "{err}");
    }

    #[test]
    fn empty_values_mean_default() {
        let mut env = Env::from_map([("A", "  ")]);
        assert_eq!(env.parse("A", 7u32), 7);
        assert!(env.finish().is_ok());
    }

    #[test]
    fn secrets_and_urls_are_redacted() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
        assert_eq!(
            redact_url("postgres://u:pw@h:5432/db?sslmode=require"),
            "postgres://u:***@h:5432/db?sslmode=require"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
    }
}
