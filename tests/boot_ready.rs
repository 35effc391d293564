//! All dependencies up: `serve` boots, tells systemd READY=1 (only after
//! the boot), pings the watchdog, answers `/readyz` 200, and stops cleanly.

mod common;

use std::time::Duration;

use common::Fixture;
use common::serve::{Served, get_json};

const BOOT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn serve_becomes_ready_through_pgbouncer_and_notifies_systemd() {
    let fixture = Fixture::new("ready").await;
    let mut command = fixture.strata(&["serve"]);
    command.env("WATCHDOG_USEC", "400000");
    let mut served = Served::start(command, fixture.admin_addr(), fixture.api_addr());

    assert!(
        served.wait_notification("READY=1", BOOT),
        "no READY=1; notifications {:?}; stderr:\n{}",
        served.notifications,
        served.stderr()
    );
    // Boot progress came as STATUS= lines before READY=1.
    let ready_at = served
        .notifications
        .iter()
        .position(|n| n.contains("READY=1"));
    let status_at = served
        .notifications
        .iter()
        .position(|n| n.contains("STATUS=boot:"));
    assert!(
        status_at.is_some() && status_at < ready_at,
        "{:?}",
        served.notifications
    );

    let (status, body) = served.admin_get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ready"], true);
    for dependency in ["postgres", "mongo", "s3"] {
        assert_eq!(body["dependencies"][dependency]["ok"], true, "{body}");
    }
    assert!(
        body["dependencies"]["postgres"]["version"]
            .as_str()
            .unwrap_or("")
            .starts_with("16"),
        "{body}"
    );
    for step in body["steps"].as_array().expect("steps") {
        assert_eq!(step["state"], "done", "{body}");
    }

    // WATCHDOG_USEC set: the watchdog is pinged after READY.
    assert!(
        served.wait_notification("WATCHDOG=1", Duration::from_secs(5)),
        "{:?}",
        served.notifications
    );

    let (status, body) = served.admin_get("/livez").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("alive")));

    // After boot the data API answers an unknown route with a problem (RFC 9457).
    let (status, body) = get_json(&format!("{}/v1/nothing-here", served.api)).await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "not_found");

    // A wrong method is a problem (RFC 9457) with a code too, on both listeners.
    let client = reqwest::Client::new();
    for url in [
        format!("{}/livez", served.admin),
        format!("{}/admin/status", served.admin),
    ] {
        let response = client.post(&url).send().await.expect("request");
        assert_eq!(response.status().as_u16(), 405, "{url}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{url}"
        );
        let body: serde_json::Value = response.json().await.expect("JSON body");
        assert_eq!(body["code"], "method_not_allowed", "{url}");
        assert_eq!(body["status"], 405, "{url}");
    }

    assert_eq!(served.stop(), Some(0), "SIGTERM ends serve cleanly");
}

#[tokio::test]
async fn admin_status_needs_the_admin_token() {
    let fixture = Fixture::new("status").await;
    let (token, hash) = strata::api::auth::new_token().expect("random token");
    let mut command = fixture.strata(&["serve"]);
    command.env("STRATA_ADMIN__TOKEN_SHA256", &hash);
    let mut served = Served::start(command, fixture.admin_addr(), fixture.api_addr());
    assert!(
        served.wait_notification("READY=1", BOOT),
        "{}",
        served.stderr()
    );

    let url = format!("{}/admin/status", served.admin);
    let (status, body) = get_json(&url).await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "unauthorized");
    assert_eq!(body["type"], "urn:strata:problem:unauthorized");

    let client = reqwest::Client::new();
    let wrong = client
        .get(&url)
        .bearer_auth("strata_wrong")
        .send()
        .await
        .expect("request");
    assert_eq!(wrong.status().as_u16(), 401);

    let response = client
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["build"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["ready"], true);
    assert!(body["uptime_secs"].is_u64(), "{body}");
    assert!(
        body["dependencies"]["mongo"]["version"].is_string(),
        "{body}"
    );
    assert!(
        body["dependencies"]["s3"]["ok"].as_bool().unwrap_or(false),
        "{body}"
    );
    // Neither the token nor its hash shows up in what strata logs.
    let logged = served.stderr();
    let _ = served.stop();
    assert!(
        !logged.contains(&token) && !logged.contains(&hash),
        "{logged}"
    );
}
