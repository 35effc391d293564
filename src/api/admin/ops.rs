//! `/admin/migrations`, `/admin/config`, `/admin/jobs`: what an operator
//! asks of a running installation.

use axum::Json;
use axum::extract::State;

use super::AdminState;
use crate::api::problem::Problem;

pub const TAG: &str = "operations";

fn store_problem(e: sqlx::Error) -> Problem {
    Problem::from(crate::records::RecordError::from(e))
}

/// The schema history of the three stores
///
/// PostgreSQL: every migration (version, name, checksum, applied when, by
/// which strata version, how long, declared compatible). MongoDB and S3:
/// every reconcile that changed something (the steps, the definitions'
/// hash, when, by which strata version, how long).
#[utoipa::path(
    get,
    path = "/admin/migrations",
    tag = TAG,
    operation_id = "getMigrations",
    responses(
        (status = 200, description = "The history per store", body = serde_json::Value),
        (status = 503, description = "Still booting", body = Problem,
         content_type = "application/problem+json"),
    )
)]
pub async fn migrations(
    State(state): State<AdminState>,
) -> Result<Json<serde_json::Value>, Problem> {
    let history = crate::schema::history(state.postgres()?)
        .await
        .map_err(store_problem)?;
    Ok(Json(serde_json::to_value(history).unwrap_or_default()))
}

/// The effective configuration, secrets redacted
///
/// After a SIGHUP reload, the configuration in force (settings that need a
/// restart show their running values).
#[utoipa::path(
    get,
    path = "/admin/config",
    tag = TAG,
    operation_id = "getConfig",
    responses((status = 200, description = "The effective configuration", body = serde_json::Value))
)]
pub async fn config(State(state): State<AdminState>) -> Json<serde_json::Value> {
    let config = state.config();
    // Secrets serialize redacted (crate::config::secrets); the admin
    // token's hash is not reversible, but nothing needs it over the wire.
    let mut shown = serde_json::to_value(config.as_ref()).unwrap_or_default();
    if let Some(hash) = shown.pointer_mut("/admin/token_sha256") {
        let set = hash.as_str().is_some_and(|h| !h.is_empty());
        *hash = serde_json::Value::from(if set { "(set)" } else { "(not set)" });
    }
    Json(shown)
}

/// Background jobs: holder, last run, next run
///
/// Each job runs on one instance at a time, the holder of its lease.
#[utoipa::path(
    get,
    path = "/admin/jobs",
    tag = TAG,
    operation_id = "listJobs",
    responses(
        (status = 200, description = "Every job's state", body = serde_json::Value),
        (status = 503, description = "Still booting", body = Problem,
         content_type = "application/problem+json"),
    )
)]
pub async fn jobs(State(state): State<AdminState>) -> Result<Json<serde_json::Value>, Problem> {
    let states = crate::jobs::states(state.postgres()?)
        .await
        .map_err(store_problem)?;
    Ok(Json(serde_json::json!({ "jobs": states })))
}
