//! `log.target = "file"` with `format = "json"`: serve writes JSON lines to
//! a rolling file in `log.directory`, and no secret reaches them.

mod common;

use std::time::Duration;

use common::serve::Served;
use common::{Fixture, deps};

#[tokio::test]
async fn serve_logs_json_to_rolling_files_without_secrets() {
    let fixture = Fixture::new("logs").await;
    let directory = tempfile::tempdir().expect("log dir");
    let mut command = fixture.strata(&["serve"]);
    command
        .env("STRATA_LOG__TARGET", "file")
        .env("STRATA_LOG__FORMAT", "json")
        .env("STRATA_LOG__LEVEL", "debug")
        .env("STRATA_LOG__DIRECTORY", directory.path());
    let mut served = Served::start(command, fixture.admin_addr(), fixture.api_addr());
    assert!(
        served.wait_notification("READY=1", Duration::from_secs(120)),
        "{}",
        served.stderr()
    );
    // SIGTERM flushes the non-blocking writer before exit.
    assert_eq!(served.stop(), Some(0));

    let files: Vec<_> = std::fs::read_dir(directory.path())
        .expect("read log dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().and_then(|n| n.to_str()).unwrap_or("");
    assert!(
        name.starts_with("strata.") && name.ends_with(".log"),
        "{name}"
    );
    let text = std::fs::read_to_string(&files[0]).expect("read log");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect();
    assert!(
        lines.iter().any(|l| l["fields"]["message"] == "ready"),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l["level"] == "DEBUG"),
        "log.level applies: {text}"
    );
    let d = deps();
    for secret in [&d.pg_app_password, &d.s3_secret_key] {
        assert!(!text.contains(secret.as_str()), "a secret reached the log");
    }
}
