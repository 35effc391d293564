//! Configuration: built-in defaults < TOML file < `STRATA_*` environment.
//!
//! Every value is validated after extraction and every error names the key it
//! is about (`postgres.url`), where it came from (file or environment
//! variable) and what is wrong. Secrets are wrapped so that neither `Debug`
//! nor `Serialize` can print them: `config show` serializes the same struct
//! the server runs with, and gets the redacted form by construction.
//!
//! * [`secrets`]: the secret-bearing types (`Secret`, `SecretUrl`, `MongoUrl`);
//! * [`model`]: the sections, their keys and defaults;
//! * [`validate`]: what types alone cannot check;
//! * [`error`]: errors that name the key and where its value came from.

mod error;
mod model;
mod secrets;
mod validate;

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};

use error::{from_figment, is_reserved_env_key};

pub use error::{ConfigError, InvalidKey};
pub use model::*;
pub use secrets::{MongoUrl, Secret, SecretUrl};
pub use validate::{ACTIVITY_OUTPUT_TYPES, validate_bucket_name};

/// Where packages install the configuration file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/strata/strata.toml";
/// Prefix of configuration environment variables; `__` separates nesting.
pub const ENV_PREFIX: &str = "STRATA_";

/// Where the configuration file comes from.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// `--config FILE`: the file must exist.
    Explicit(PathBuf),
    /// The default path: used when present, skipped when absent.
    Default(PathBuf),
}

impl ConfigSource {
    pub fn from_arg(arg: Option<&Path>) -> Self {
        match arg {
            Some(p) => Self::Explicit(p.to_path_buf()),
            None => Self::Default(PathBuf::from(DEFAULT_CONFIG_PATH)),
        }
    }
    pub fn path(&self) -> &Path {
        match self {
            Self::Explicit(p) | Self::Default(p) => p,
        }
    }
}

impl Config {
    /// Loads defaults, then the file, then `STRATA_*` variables, and validates.
    pub fn load(source: &ConfigSource) -> Result<Self, ConfigError> {
        let figment = Self::figment(source)?;
        let config: Config = figment.extract().map_err(|e| from_figment(&figment, e))?;
        config.validate(&figment)?;
        Ok(config)
    }

    fn figment(source: &ConfigSource) -> Result<Figment, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        let path = source.path();
        match source {
            ConfigSource::Explicit(_) => {
                std::fs::metadata(path).map_err(|e| ConfigError::File {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?;
                figment = figment.merge(Toml::file_exact(path));
            }
            ConfigSource::Default(_) => {
                if path.exists() {
                    figment = figment.merge(Toml::file_exact(path));
                }
            }
        }
        Ok(figment.merge(
            Env::prefixed(ENV_PREFIX)
                .filter(|key| !is_reserved_env_key(key.as_str()))
                .split("__"),
        ))
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

#[cfg(test)]
mod tests;
