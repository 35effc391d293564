//! The command line itself: version, help, exit codes.

mod common;

use common::{run, strata_command};

#[test]
fn version_reports_build_and_schema() {
    let (code, stdout, _) = run(strata_command(&["version", "--json"]));
    assert_eq!(code, Some(0));
    let info: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert!(info["git_commit"].as_str().is_some_and(|c| !c.is_empty()));
    assert!(
        info["build_date"]
            .as_str()
            .is_some_and(|d| d.starts_with("20"))
    );
    assert!(info["schema"].is_object(), "{info}");

    let (code, stdout, _) = run(strata_command(&["version"]));
    assert_eq!(code, Some(0));
    assert!(
        stdout.starts_with(&format!("strata {}", env!("CARGO_PKG_VERSION"))),
        "{stdout}"
    );
}

#[test]
fn help_documents_exit_codes() {
    let (code, stdout, _) = run(strata_command(&["--help"]));
    assert_eq!(code, Some(0));
    for line in [
        "2  invalid configuration",
        "3  a dependency",
        "5  the schema upgrade",
    ] {
        assert!(stdout.contains(line), "--help lacks {line:?}:\n{stdout}");
    }
    let (_, stdout, _) = run(strata_command(&["check", "--help"]));
    assert!(stdout.contains("Exit codes"), "{stdout}");
}

#[test]
fn token_new_prints_a_token_and_its_hash() {
    let (code, stdout, _) = run(strata_command(&["token", "new"]));
    assert_eq!(code, Some(0));
    let token = stdout
        .lines()
        .find_map(|l| l.strip_prefix("token:"))
        .map(str::trim)
        .expect("token line");
    let hash = strata::api::auth::token_sha256(token);
    assert!(
        stdout.contains(&format!("token_sha256 = \"{hash}\"")),
        "{stdout}"
    );
}
