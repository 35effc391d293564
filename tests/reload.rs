//! SIGHUP reloads without a restart: `log.level` at once, MongoDB TTLs
//! reconciled with the new value (the data kept); a file that does not
//! load is refused naming the key, and the process serves on.

mod common;

use std::time::{Duration, Instant};

use common::Fixture;
use common::serve::Served;
use mongodb::bson::Document;

fn write_config(path: &std::path::Path, level: &str, ttl_days: &str) {
    std::fs::write(
        path,
        format!("[log]\nlevel = \"{level}\"\n\n[mongo]\ntool_call_logs_ttl_days = {ttl_days}\n"),
    )
    .expect("write config");
}

async fn ttl_secs(fixture: &Fixture) -> Option<i64> {
    let client = mongodb::Client::with_uri_str(&common::deps().mongo_url)
        .await
        .expect("mongo");
    let collection = client
        .database(&fixture.mongo_database)
        .collection::<Document>("tool_call_logs");
    let mut cursor = collection.list_indexes().await.expect("indexes");
    let mut found = None;
    while cursor.advance().await.expect("next index") {
        let index = cursor.deserialize_current().expect("index");
        if let Some(options) = index.options
            && let Some(expire) = options.expire_after
        {
            found = Some(expire.as_secs() as i64);
        }
    }
    found
}

fn hangup(served: &Served) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &served.child.id().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(status.success());
}

async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_applies_log_level_and_ttls_and_refuses_a_bad_file() {
    let fixture = Fixture::new("reload").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("strata.toml");
    write_config(&file, "info", "30");
    let mut command = common::strata_command(&["--config", file.to_str().expect("utf-8"), "serve"]);
    command.envs(fixture.env());
    // The file decides these two, not the fixture's environment.
    command.env_remove("STRATA_LOG__LEVEL");
    let mut served = Served::start(command, fixture.admin_addr(), fixture.api_addr());
    assert!(
        served.wait_notification("READY=1", Duration::from_secs(120)),
        "{}",
        served.stderr()
    );
    assert_eq!(ttl_secs(&fixture).await, Some(30 * 86_400));
    assert!(!served.stderr().contains(" DEBUG "), "info level at first");

    write_config(&file, "debug", "7");
    hangup(&served);
    until("the TTL to follow the file", async || {
        ttl_secs(&fixture).await == Some(7 * 86_400)
    })
    .await;
    until("debug lines after the reload", async || {
        let stderr = served.stderr();
        stderr
            .split("SIGHUP: log level applied")
            .nth(1)
            .is_some_and(|after| after.contains(" DEBUG "))
    })
    .await;
    // Nothing else of the process changed: it is still ready.
    let (status, _) = served.admin_get("/readyz").await;
    assert_eq!(status, 200);

    // A file that does not load is refused as a whole, naming the key.
    std::fs::write(&file, "[jobs]\nlease_secs = 1\n").expect("write");
    hangup(&served);
    until("the refusal", async || {
        served.stderr().contains("jobs.lease_secs")
    })
    .await;
    assert_eq!(
        ttl_secs(&fixture).await,
        Some(7 * 86_400),
        "the running settings stay"
    );
    let (status, _) = served.admin_get("/readyz").await;
    assert_eq!(status, 200, "{}", served.stderr());
    assert_eq!(served.stop(), Some(0));
}
