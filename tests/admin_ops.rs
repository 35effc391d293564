//! The operator's admin endpoints: `/admin/migrations` (the schema history
//! of all three stores), `/admin/config` (effective, secrets redacted),
//! `/admin/jobs` (who holds each job), TTLs in `/admin/status`; all behind
//! the admin token.

mod common;

use common::api::Api;
use serde_json::Value;

async fn admin(api: &Api, path: &str, token: Option<&str>) -> (u16, Value, String) {
    let reply = api
        .admin_call(reqwest::Method::GET, path, token, None, &[])
        .await;
    (reply.status, reply.body, reply.text)
}

#[tokio::test(flavor = "multi_thread")]
async fn migrations_config_jobs_and_ttls_for_the_operator() {
    let (token, hash) = strata::api::auth::new_token().expect("random token");
    let api = Api::start(
        "admin-ops",
        &[
            ("STRATA_ADMIN__TOKEN_SHA256", &hash),
            ("STRATA_MONGO__TOOL_CALL_LOGS_TTL_DAYS", "12"),
        ],
    )
    .await;
    for path in ["/admin/migrations", "/admin/config", "/admin/jobs"] {
        let (status, body, _) = admin(&api, path, None).await;
        assert_eq!(status, 401, "{path}: {body}");
    }

    let (status, history, _) = admin(&api, "/admin/migrations", Some(&token)).await;
    assert_eq!(status, 200, "{history}");
    let shipped = strata::schema::postgres::embedded_migrations().expect("migrations");
    let applied = history["postgres"].as_array().expect("postgres history");
    assert_eq!(applied.len(), shipped.len());
    assert_eq!(applied[0]["checksum"], shipped[0].checksum.as_str());
    assert!(
        applied[0]["appliedBy"]
            .as_str()
            .is_some_and(|b| b.starts_with("strata "))
    );
    assert!(applied[0]["executionMs"].is_i64());
    for store in ["mongo", "s3"] {
        assert!(
            history[store].as_array().is_some_and(|c| !c.is_empty()),
            "{store}: {history}"
        );
    }

    let (status, config, text) = admin(&api, "/admin/config", Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(config["mongo"]["tool_call_logs_ttl_days"], 12, "{config}");
    // No secret in the answer: not the S3 secret key, not a database password.
    let d = common::deps();
    assert!(!text.contains(&d.s3_secret_key), "S3 secret shown");
    assert!(
        !text.contains(&d.pg_app_password),
        "PostgreSQL password shown"
    );
    assert!(!text.contains(&hash), "the admin token's hash shown");

    // The purge job is held by this (only) instance.
    let holder = format!(":{}:", api.served.child.id());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (status, jobs, _) = admin(&api, "/admin/jobs", Some(&token)).await;
        assert_eq!(status, 200, "{jobs}");
        let purge = jobs["jobs"]
            .as_array()
            .and_then(|all| all.iter().find(|j| j["name"] == "tenant_purge").cloned());
        if let Some(purge) = purge
            && purge["holder"]
                .as_str()
                .is_some_and(|h| h.contains(&holder))
        {
            assert!(purge["nextRunOn"].is_string());
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no holder: {jobs}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let (status, report, _) = admin(&api, "/admin/status", Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(report["ttl_days"]["tool_call_logs"], 12, "{report}");
}
