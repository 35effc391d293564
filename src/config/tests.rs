//! Unit tests of loading, validation and redaction.
// figment::Error (the Jail closures' error) is large; fine in tests.
#![allow(clippy::result_large_err)]

use super::secrets::is_sensitive_option;
use super::*;
use figment::Jail;

/// A jail with no inherited environment: the test suite itself runs
/// with STRATA_* settings exported.
fn in_jail(f: impl FnOnce(&mut Jail) -> figment::error::Result<()>) {
    Jail::expect_with(|jail| {
        jail.clear_env();
        f(jail)
    });
}

fn load_in_jail(jail: &Jail, file: Option<&str>) -> Result<Config, ConfigError> {
    let source = match file {
        Some(contents) => {
            jail.create_file("strata.toml", contents)
                .map_err(|e| ConfigError::File {
                    path: "strata.toml".into(),
                    reason: e.to_string(),
                })?;
            ConfigSource::Explicit(jail.directory().join("strata.toml"))
        }
        None => ConfigSource::Default(jail.directory().join("absent.toml")),
    };
    Config::load(&source)
}

fn invalid_keys(err: ConfigError) -> Vec<InvalidKey> {
    match err {
        ConfigError::Invalid(keys) => keys,
        other => panic!("expected invalid keys, got {other}"),
    }
}

#[test]
fn defaults_are_valid_and_admin_is_loopback() {
    in_jail(|jail| {
        let config = load_in_jail(jail, None).map_err(|e| e.to_string())?;
        assert!(config.admin.listen.ip().is_loopback());
        assert_eq!(config.postgres.pool_size, 16);
        assert_eq!(config.s3.bucket_name("contracts"), "strata-contracts");
        Ok(())
    });
}

#[test]
fn file_overrides_defaults_and_env_overrides_file() {
    in_jail(|jail| {
        jail.set_env("STRATA_POSTGRES__POOL_SIZE", "42");
        jail.set_env("STRATA_LOG__FORMAT", "json");
        let config = load_in_jail(
            jail,
            Some("[postgres]\npool_size = 7\nconnect_timeout_secs = 9\n[log]\nformat = \"text\"\nlevel = \"debug\"\n"),
        )
        .map_err(|e| e.to_string())?;
        // env beats file
        assert_eq!(config.postgres.pool_size, 42);
        assert_eq!(config.log.format, LogFormat::Json);
        // file beats defaults
        assert_eq!(config.postgres.connect_timeout_secs, 9);
        assert_eq!(config.log.level, "debug");
        // untouched keys keep defaults
        assert_eq!(config.mongo.database, "strata");
        Ok(())
    });
}

#[test]
fn unknown_key_is_named_with_its_source() {
    in_jail(|jail| {
        let err = load_in_jail(jail, Some("[postgres]\npool_sise = 3\n")).expect_err("unknown key");
        let keys = invalid_keys(err);
        assert_eq!(keys[0].key, "postgres.pool_sise");
        assert!(keys[0].reason.contains("unknown key"), "{:?}", keys[0]);
        Ok(())
    });
}

#[test]
fn unknown_env_key_is_named() {
    in_jail(|jail| {
        jail.set_env("STRATA_MONGO__DATABSE", "x");
        let keys = invalid_keys(load_in_jail(jail, None).expect_err("unknown key"));
        assert_eq!(keys[0].key, "mongo.databse");
        Ok(())
    });
}

#[test]
fn wrong_type_names_key() {
    in_jail(|jail| {
        let keys = invalid_keys(
            load_in_jail(jail, Some("[postgres]\npool_size = \"many\"\n")).expect_err("wrong type"),
        );
        assert_eq!(keys[0].key, "postgres.pool_size");
        assert!(
            keys[0]
                .source
                .as_deref()
                .unwrap_or("")
                .ends_with("strata.toml"),
            "{:?}",
            keys[0]
        );
        Ok(())
    });
}

#[test]
fn semantic_errors_name_key_and_env_source() {
    in_jail(|jail| {
        jail.set_env("STRATA_POSTGRES__URL", "mysql://u:p@h/db");
        jail.set_env("STRATA_POSTGRES__POOL_SIZE", "0");
        let keys = invalid_keys(load_in_jail(jail, None).expect_err("bad values"));
        let url = keys
            .iter()
            .find(|k| k.key == "postgres.url")
            .expect("url named");
        assert!(url.reason.contains("mysql"));
        assert_eq!(url.source.as_deref(), Some("STRATA_POSTGRES__URL"));
        assert!(keys.iter().any(|k| k.key == "postgres.pool_size"));
        Ok(())
    });
}

#[test]
fn reserved_env_variables_are_not_config_keys() {
    in_jail(|jail| {
        jail.set_env("STRATA_CONFIG", "/etc/strata/other.toml");
        jail.set_env("STRATA_TEST_PG_PORT", "1");
        load_in_jail(jail, None).map_err(|e| e.to_string())?;
        Ok(())
    });
}

#[test]
fn admin_token_hash_must_be_a_hash() {
    in_jail(|jail| {
        jail.set_env("STRATA_ADMIN__TOKEN_SHA256", "plain-token-by-mistake");
        let keys = invalid_keys(load_in_jail(jail, None).expect_err("not a hash"));
        assert_eq!(keys[0].key, "admin.token_sha256");
        assert!(!keys[0].reason.contains("plain-token-by-mistake"));
        Ok(())
    });
}

#[test]
fn pgbouncer_requires_direct_url() {
    in_jail(|jail| {
        jail.set_env("STRATA_POSTGRES__PGBOUNCER", "true");
        let keys = invalid_keys(load_in_jail(jail, None).expect_err("missing direct url"));
        assert_eq!(keys[0].key, "postgres.direct_url");
        Ok(())
    });
}

#[test]
fn numeric_looking_secret_from_env_is_a_string() {
    in_jail(|jail| {
        jail.set_env("STRATA_S3__ACCESS_KEY_ID", "12345");
        jail.set_env("STRATA_S3__SECRET_ACCESS_KEY", "67890");
        let config = load_in_jail(jail, None).map_err(|e| e.to_string())?;
        assert_eq!(config.s3.secret_access_key.expose(), "67890");
        assert_eq!(config.s3.access_key_id, "12345");
        Ok(())
    });
}

#[test]
fn secrets_are_redacted_in_debug_and_toml() {
    in_jail(|jail| {
        jail.set_env(
            "STRATA_POSTGRES__URL",
            "postgres://app:hunter2pw@db:5432/strata?password=qpw",
        );
        jail.set_env("STRATA_S3__ACCESS_KEY_ID", "AKID");
        jail.set_env("STRATA_S3__SECRET_ACCESS_KEY", "s3cr3tkey");
        let config = load_in_jail(jail, None).map_err(|e| e.to_string())?;
        let shown = format!("{}{:?}", config.to_redacted_toml(), config);
        for secret in ["hunter2pw", "s3cr3tkey", "qpw"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        assert!(shown.contains("db:5432"));
        assert_eq!(
            config.postgres.url.expose(),
            "postgres://app:hunter2pw@db:5432/strata?password=qpw"
        );
        Ok(())
    });
}

#[test]
fn wrong_typed_secret_is_not_echoed() {
    in_jail(|jail| {
        let err = load_in_jail(
            jail,
            Some("[s3]\nsecret_access_key = [\"topsecretvalue\"]\n"),
        )
        .expect_err("wrong type");
        let text = err.to_string();
        assert!(text.contains("s3.secret_access_key"), "{text}");
        assert!(!text.contains("topsecretvalue"), "{text}");
        Ok(())
    });
}

#[test]
fn a_replica_set_seed_list_is_a_valid_mongo_url() {
    in_jail(|jail| {
        jail.set_env(
            "STRATA_MONGO__URL",
            "mongodb://app:s3cr3t-pw@h1:27017,h2:27017,h3:27018/?replicaSet=rs0&authSource=admin",
        );
        let config = load_in_jail(jail, None).map_err(|e| e.to_string())?;
        assert_eq!(config.mongo.url.address(), "h1:27017,h2:27017,h3:27018");
        let shown = format!(
            "{} {:?} {}",
            config.mongo.url,
            config.mongo.url,
            config.to_redacted_toml()
        );
        assert!(!shown.contains("s3cr3t-pw"), "{shown}");
        assert!(
            shown.contains("replicaSet=rs0") && shown.contains("app:<redacted>@h1"),
            "{shown}"
        );
        assert!(config.mongo.url.expose().contains("s3cr3t-pw"));
        Ok(())
    });
}

#[test]
fn mongo_url_errors_name_the_key_and_hide_the_password() {
    in_jail(|jail| {
        jail.set_env("STRATA_MONGO__URL", "mongodb://app:pw-777@h1:notaport/");
        let keys = invalid_keys(load_in_jail(jail, None).expect_err("bad port"));
        assert_eq!(keys[0].key, "mongo.url");
        assert!(!keys[0].reason.contains("pw-777"), "{:?}", keys[0]);
        jail.set_env("STRATA_MONGO__URL", "postgres://h1/");
        let keys = invalid_keys(load_in_jail(jail, None).expect_err("bad scheme"));
        assert!(keys[0].reason.contains("scheme"), "{:?}", keys[0]);
        Ok(())
    });
}

#[test]
fn sensitive_mongo_options_are_redacted() {
    let url = MongoUrl::parse("mongodb+srv://cluster.example.com/?appName=strata").expect("valid");
    assert_eq!(url.address(), "cluster.example.com");
    assert!(url.redacted().contains("appName=strata"));
    for key in [
        "authMechanismProperties",
        "tlsCertificateKeyFilePassword",
        "sessionToken",
    ] {
        assert!(is_sensitive_option(key), "{key}");
    }
    assert!(!is_sensitive_option("replicaSet"));
}

#[test]
fn bucket_names_follow_s3_rules() {
    assert!(validate_bucket_name("strata-content").is_ok());
    assert!(validate_bucket_name("Strata").is_err());
    assert!(validate_bucket_name("-abc").is_err());
    assert!(validate_bucket_name("ab").is_err());
}

#[test]
fn content_limits_name_their_keys() {
    in_jail(|jail| {
        let err = load_in_jail(
            jail,
            Some(
                "[content]\npresign_expiry_secs = 7200\npart_size_bytes = 1024\n\
                 activity_output_max_bytes = 0\nactivity_output_types = [\"text/html\"]\n",
            ),
        )
        .expect_err("invalid content limits");
        let keys: Vec<String> = invalid_keys(err).into_iter().map(|k| k.key).collect();
        for key in [
            "content.presign_expiry_secs",
            "content.part_size_bytes",
            "content.activity_output_max_bytes",
            "content.activity_output_types",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key} in {keys:?}");
        }
        Ok(())
    });
}

#[test]
fn batch_limits_are_validated_naming_their_keys() {
    in_jail(|jail| {
        let config = load_in_jail(jail, None).map_err(|e| e.to_string())?;
        assert_eq!(
            (
                config.api.max_batch_items,
                config.api.max_batch_body_bytes,
                config.api.max_payload_bytes
            ),
            (1000, 16 * 1024 * 1024, 256 * 1024)
        );
        jail.set_env("STRATA_API__MAX_BATCH_ITEMS", "0");
        jail.set_env("STRATA_API__MAX_BATCH_BODY_BYTES", "1000");
        jail.set_env("STRATA_API__MAX_PAYLOAD_BYTES", "20000000");
        let keys = invalid_keys(load_in_jail(jail, None).expect_err("out of range"));
        let named: Vec<&str> = keys.iter().map(|k| k.key.as_str()).collect();
        assert_eq!(
            named,
            vec![
                "api.max_batch_items",
                "api.max_batch_body_bytes",
                "api.max_payload_bytes"
            ]
        );
        Ok(())
    });
}

#[test]
fn the_reconcile_grace_stays_below_the_noncurrent_expiry() {
    in_jail(|jail| {
        jail.set_env("STRATA_S3__NONCURRENT_VERSION_EXPIRY_DAYS", "2");
        jail.set_env("STRATA_CONTENT__RECONCILE_GRACE_HOURS", "47");
        let keys = invalid_keys(load_in_jail(jail, None).expect_err("grace too long"));
        assert_eq!(keys[0].key, "content.reconcile_grace_hours", "{keys:?}");
        assert!(keys[0].reason.contains("noncurrent"), "{keys:?}");
        jail.set_env("STRATA_CONTENT__RECONCILE_GRACE_HOURS", "24");
        load_in_jail(jail, None).map_err(|e| e.to_string())?;
        // No periodic pass: nothing to keep below.
        jail.set_env("STRATA_CONTENT__RECONCILE_GRACE_HOURS", "47");
        jail.set_env("STRATA_CONTENT__RECONCILE_INTERVAL_SECS", "0");
        load_in_jail(jail, None).map_err(|e| e.to_string())?;
        Ok(())
    });
}
