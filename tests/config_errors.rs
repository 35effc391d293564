//! Bad configuration: the exit code for bad config and a message that
//! names the key; `config show` never prints a secret.

mod common;

use std::io::Write;

use common::{run, strata_command};

fn config_file(contents: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()
        .expect("temp file");
    file.write_all(contents.as_bytes()).expect("write config");
    file
}

/// Runs `strata ARGS` against a config file; returns (code, stdout, stderr).
fn strata_with(file: &tempfile::NamedTempFile, args: &[&str]) -> (Option<i32>, String, String) {
    let path = file.path().to_str().expect("utf-8 path");
    let mut all = vec!["--config", path];
    all.extend_from_slice(args);
    run(strata_command(&all))
}

/// `config show` output: a comment header, then TOML.
fn parse_shown(stdout: &str) -> toml::Value {
    let body: Vec<&str> = stdout.lines().filter(|l| !l.starts_with('#')).collect();
    toml::from_str(&body.join("\n")).expect("config show prints TOML")
}

#[test]
fn unknown_key_is_bad_config_naming_the_key() {
    let file = config_file("[postgres]\npool_sise = 3\n");
    for args in [
        &["config", "validate"][..],
        &["check"],
        &["serve"],
        &["migrate"],
    ] {
        let (code, _, stderr) = strata_with(&file, args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("postgres.pool_sise"), "{args:?}: {stderr}");
        assert!(stderr.contains("unknown key"), "{stderr}");
    }
}

#[test]
fn wrong_type_is_bad_config_naming_the_key_and_file() {
    let file = config_file("[boot]\ndependency_timeout_secs = \"soon\"\n");
    let (code, _, stderr) = strata_with(&file, &["config", "validate"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("boot.dependency_timeout_secs"), "{stderr}");
    assert!(
        stderr.contains(&file.path().display().to_string()),
        "names the file: {stderr}"
    );
}

#[test]
fn bad_url_is_bad_config_without_echoing_the_password() {
    let file = config_file("[mongo]\nurl = \"mysql://app:pw-in-url-123@db:3306/x\"\n");
    let (code, stdout, stderr) = strata_with(&file, &["check"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("mongo.url"), "{stderr}");
    assert!(stderr.contains("mysql"), "says what is wrong: {stderr}");
    assert!(
        !stderr.contains("pw-in-url-123") && !stdout.contains("pw-in-url-123"),
        "{stderr}"
    );

    let file = config_file("[s3]\nendpoint = \"not a url\"\n");
    let (code, _, stderr) = strata_with(&file, &["config", "validate"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("s3.endpoint"), "{stderr}");
}

#[test]
fn bad_environment_value_names_the_variable() {
    let mut command = strata_command(&["config", "validate"]);
    command.env("STRATA_POSTGRES__POOL_SIZE", "0");
    let (code, _, stderr) = run(command);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("postgres.pool_size"), "{stderr}");
    assert!(stderr.contains("STRATA_POSTGRES__POOL_SIZE"), "{stderr}");
}

#[test]
fn missing_explicit_file_is_bad_config() {
    let (code, _, stderr) = run(strata_command(&[
        "--config",
        "/nonexistent/strata.toml",
        "check",
    ]));
    assert_eq!(code, Some(2));
    assert!(stderr.contains("/nonexistent/strata.toml"), "{stderr}");
}

#[test]
fn config_show_redacts_every_secret() {
    let file = config_file(
        "[postgres]\nurl = \"postgres://app:file-pw-777@db:6432/strata\"\npgbouncer = true\n\
         direct_url = \"postgres://owner:direct-pw-888@db:5432/strata\"\n",
    );
    let path = file.path().to_str().expect("utf-8 path");
    let mut command = strata_command(&["--config", path, "config", "show"]);
    command
        .env(
            "STRATA_MONGO__URL",
            "mongodb://m:mongo-pw-999@mongo:27017/?authSource=admin",
        )
        .env("STRATA_S3__ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("STRATA_S3__SECRET_ACCESS_KEY", "s3-secret-555")
        .env(
            "STRATA_ADMIN__TOKEN_SHA256",
            strata::api::auth::token_sha256("admin-token-444"),
        );
    let (code, stdout, stderr) = run(command);
    assert_eq!(code, Some(0), "{stderr}");
    for secret in [
        "file-pw-777",
        "direct-pw-888",
        "mongo-pw-999",
        "s3-secret-555",
        "admin-token-444",
    ] {
        assert!(!stdout.contains(secret), "{secret} leaked:\n{stdout}");
        assert!(!stderr.contains(secret), "{secret} leaked:\n{stderr}");
    }
    // What is not secret is shown, so the output is useful.
    assert!(stdout.contains("db:6432"), "{stdout}");
    assert!(stdout.contains("AKIDEXAMPLE"), "{stdout}");
    let shown = parse_shown(&stdout);
    assert_eq!(shown["postgres"]["pgbouncer"].as_bool(), Some(true));
}

#[test]
fn example_config_is_valid_and_documents_every_key() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml");
    let (code, stdout, stderr) = run(strata_command(&["config", "validate", example]));
    assert_eq!(code, Some(0), "{stdout}{stderr}");

    // Every key of the effective configuration appears in the example.
    let text = std::fs::read_to_string(example).expect("read config.example.toml");
    let (_, shown, _) = run(strata_command(&["config", "show"]));
    let shown = parse_shown(&shown);
    for (section, keys) in shown.as_table().expect("table") {
        assert!(
            text.contains(&format!("[{section}]")),
            "section [{section}] missing"
        );
        for key in keys.as_table().expect("section table").keys() {
            let documented = text.lines().any(|l| {
                l.trim_start_matches('#')
                    .trim_start()
                    .starts_with(&format!("{key} ="))
            });
            assert!(documented, "{section}.{key} is not in config.example.toml");
        }
    }
}
