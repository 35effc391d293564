//! Configuration errors that name the key, and where its value came from.

use std::fmt;
use std::path::PathBuf;

use figment::Figment;

use super::ENV_PREFIX;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{}", format_invalid(.0))]
    Invalid(Vec<InvalidKey>),
}

/// One bad configuration value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidKey {
    /// Dotted key, e.g. `postgres.pool_size`.
    pub key: String,
    pub reason: String,
    /// The file or environment variable the value came from, when known.
    pub source: Option<String>,
}

impl fmt::Display for InvalidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid configuration key `{}`: {}",
            self.key, self.reason
        )?;
        if let Some(source) = &self.source {
            write!(f, " (from {source})")?;
        }
        Ok(())
    }
}

pub(super) fn format_invalid(keys: &[InvalidKey]) -> String {
    keys.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// `STRATA_*` variables that are not configuration keys: `STRATA_CONFIG`
/// (the `--config` flag) and the test suite's `STRATA_TEST_*`.
pub(super) fn is_reserved_env_key(key: &str) -> bool {
    key.eq_ignore_ascii_case("config") || key.to_ascii_lowercase().starts_with("test_")
}

/// Keys whose values must not appear in error messages.
pub(super) fn is_secret_key(key: &str) -> bool {
    key.ends_with("url")
        || key.contains("secret")
        || key.contains("password")
        || key.contains("token")
}

pub(super) fn source_of(figment: &Figment, key: &str) -> Option<String> {
    let md = figment.find_metadata(key)?;
    Some(describe_source(md, key))
}

/// Names where a value came from: the file, or the exact variable name
/// (figment's own interpolation would say `POSTGRES.URL`).
pub(super) fn describe_source(md: &figment::Metadata, key: &str) -> String {
    match &md.source {
        Some(figment::Source::File(path)) => path.display().to_string(),
        _ if md.name.contains("environment") => {
            format!(
                "{ENV_PREFIX}{}",
                key.replace('.', "__").to_ascii_uppercase()
            )
        }
        _ => md.name.to_string(),
    }
}

pub(super) fn from_figment(figment: &Figment, error: figment::Error) -> ConfigError {
    use figment::error::Kind;
    let keys = error
        .into_iter()
        .map(|e| {
            let mut key = e.path.join(".");
            let reason = match &e.kind {
                Kind::UnknownField(field, expected) => {
                    // figment already put the field at the end of the path.
                    key = if e.path.last() == Some(field) {
                        key
                    } else if key.is_empty() {
                        field.clone()
                    } else {
                        format!("{key}.{field}")
                    };
                    format!("unknown key; expected one of: {}", expected.join(", "))
                }
                Kind::InvalidType(actual, expected) if is_secret_key(&key) => {
                    let _ = actual;
                    format!("wrong type, expected {expected}")
                }
                Kind::InvalidValue(_, expected) if is_secret_key(&key) => {
                    format!("invalid value, expected {expected}")
                }
                kind => kind.to_string(),
            };
            let source = e
                .metadata
                .as_ref()
                .map(|md| describe_source(md, &key))
                .or_else(|| source_of(figment, &key));
            InvalidKey {
                key: if key.is_empty() { "(root)".into() } else { key },
                reason,
                source,
            }
        })
        .collect();
    ConfigError::Invalid(keys)
}
