//! The admin API (own listener, loopback by default): liveness, readiness,
//! status. `/livez` and `/readyz` are open so that probes need no secret;
//! everything under `/admin` needs the admin bearer token.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::auth::require_bearer;
use super::error::ApiError;
use crate::boot::{DependencyStatus, Health};
use crate::schema::SchemaReport;
use crate::stores::Dependency;
use crate::version::BuildInfo;

#[derive(Clone)]
pub struct AdminState {
    pub health: Health,
    pub token_sha256: Arc<str>,
    pub build: BuildInfo,
    /// Set once the stores are ready (for the billing summary).
    pub stores: Arc<std::sync::OnceLock<crate::stores::Stores>>,
}

pub fn router(state: AdminState) -> Router {
    let admin = Router::new()
        .route("/admin/status", get(status))
        .route("/admin/usage/summary", get(super::billing::summary))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin));
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .merge(admin)
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .with_state(state)
}

async fn require_admin(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    match require_bearer(request.headers(), &state.token_sha256) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

async fn livez() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "alive" }))
}

async fn readyz(State(state): State<AdminState>) -> Response {
    let readiness = state.health.readiness();
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness)).into_response()
}

#[derive(Serialize)]
struct Status {
    build: BuildInfo,
    ready: bool,
    uptime_secs: u64,
    dependencies: BTreeMap<Dependency, DependencyStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    schema: Option<SchemaReport>,
    /// TTL seconds of the MongoDB collections that expire, as the server has them.
    #[serde(skip_serializing_if = "Option::is_none")]
    mongo_ttl_secs: Option<BTreeMap<String, u64>>,
}

async fn status(State(state): State<AdminState>) -> Json<impl Serialize> {
    Json(Status {
        build: state.build.clone(),
        ready: state.health.is_ready(),
        uptime_secs: state.health.uptime().as_secs(),
        dependencies: state.health.dependencies(),
        schema: state.health.schema(),
        mongo_ttl_secs: match state.stores.get() {
            Some(stores) => crate::logs::payloads::ttls(&stores.mongo).await.ok(),
            None => None,
        },
    })
}
