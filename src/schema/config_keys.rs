//! Values in the embedded schema files that come from the configuration:
//! a TTL in days, a retention period or mode. The file names a key
//! (`"mongo.tool_call_logs_ttl_days"`); the key is looked up in the
//! configuration as `config show` serializes it, so every key of the
//! model is reachable without a list of keys to keep in step with it.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::SchemaError;
use crate::config::Config;

/// A setting of a schema file: a literal value, or the dotted name of the
/// configuration key that holds it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Setting<T> {
    Literal(T),
    Key(String),
}

impl<T: DeserializeOwned + Clone> Setting<T> {
    /// The value; `file` names the schema file in errors.
    pub fn resolve(&self, config: &Config, file: &str) -> Result<T, SchemaError> {
        match self {
            Setting::Literal(value) => Ok(value.clone()),
            Setting::Key(key) => lookup(config, file, key),
        }
    }
}

/// The value of the configuration key `key` (e.g. `s3.abort_multipart_days`)
/// as a `T`.
pub fn lookup<T: DeserializeOwned>(
    config: &Config,
    file: &str,
    key: &str,
) -> Result<T, SchemaError> {
    let error = |reason: String| SchemaError::Embedded {
        file: file.to_string(),
        reason: format!("configuration key {key}: {reason}"),
    };
    let tree = serde_json::to_value(config)
        .map_err(|e| error(format!("the configuration cannot be read: {e}")))?;
    let mut node = &tree;
    for part in key.split('.') {
        node = node
            .as_object()
            .and_then(|fields| fields.get(part))
            .ok_or_else(|| error("no such key".into()))?;
    }
    if node.is_object() {
        return Err(error("is a section, not a value".into()));
    }
    T::deserialize(node).map_err(|e| {
        error(format!(
            "has the value {node}, which is not usable here: {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RetentionMode;

    const FILE: &str = "test/file.toml";

    #[test]
    fn numbers_and_enums_resolve_from_the_configuration() {
        let mut config = Config::default();
        config.mongo.tool_call_logs_ttl_days = 45;
        config.s3.contracts_retention_mode = RetentionMode::Governance;
        assert_eq!(
            lookup::<u32>(&config, FILE, "mongo.tool_call_logs_ttl_days").expect("u32"),
            45
        );
        assert_eq!(
            lookup::<RetentionMode>(&config, FILE, "s3.contracts_retention_mode").expect("mode"),
            RetentionMode::Governance
        );
        let days: Setting<u32> = Setting::Key("s3.abort_multipart_days".into());
        assert_eq!(
            days.resolve(&config, FILE).expect("resolves"),
            config.s3.abort_multipart_days
        );
    }

    #[test]
    fn literals_need_no_configuration() {
        let config = Config::default();
        assert_eq!(
            Setting::Literal(7_u32)
                .resolve(&config, FILE)
                .expect("literal"),
            7
        );
    }

    #[test]
    fn schema_files_spell_literals_and_keys_alike() {
        let parsed: Vec<Setting<u32>> =
            serde_json::from_str(r#"[3, "mongo.entity_diffs_ttl_days"]"#).expect("parse");
        assert_eq!(
            parsed,
            vec![
                Setting::Literal(3),
                Setting::Key("mongo.entity_diffs_ttl_days".into())
            ]
        );
        let mode: Setting<RetentionMode> = serde_json::from_str(r#""compliance""#).expect("parse");
        assert_eq!(mode, Setting::Literal(RetentionMode::Compliance));
        let mode: Setting<RetentionMode> =
            serde_json::from_str(r#""s3.contracts_retention_mode""#).expect("parse");
        assert_eq!(mode, Setting::Key("s3.contracts_retention_mode".into()));
    }

    #[test]
    fn a_missing_key_names_the_file_and_the_key() {
        let config = Config::default();
        for key in [
            "mongo.nope",
            "nope.tool_call_logs_ttl_days",
            "mongo.tool_call_logs_ttl_days.x",
            "",
        ] {
            let err = lookup::<u32>(&config, FILE, key).expect_err("missing");
            let text = err.to_string();
            assert!(
                text.contains(FILE) && text.contains(&format!("key {key}:")),
                "{text}"
            );
            assert!(text.contains("no such key"), "{text}");
        }
    }

    #[test]
    fn a_value_of_the_wrong_type_is_refused_by_name() {
        let config = Config::default();
        let err =
            lookup::<u32>(&config, FILE, "s3.contracts_retention_mode").expect_err("not a number");
        let text = err.to_string();
        assert!(
            text.contains("s3.contracts_retention_mode") && text.contains("\"compliance\""),
            "{text}"
        );
        let err = lookup::<u32>(&config, FILE, "mongo").expect_err("a section");
        assert!(err.to_string().contains("is a section"), "{err}");
        // Out of the target type's range.
        let mut config = Config::default();
        config.mongo.entity_diffs_ttl_days = u32::MAX;
        assert!(lookup::<i16>(&config, FILE, "mongo.entity_diffs_ttl_days").is_err());
    }
}
