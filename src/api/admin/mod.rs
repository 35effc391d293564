//! The admin API (own listener, loopback by default): liveness, readiness,
//! metrics, status, tenants and service tokens. `/livez`, `/readyz` and
//! `/metrics` are open so that probes and scrapers need no secret;
//! everything under `/admin` needs the admin bearer token. Every error is
//! the data API's `application/problem+json` ([`Problem`]) with a stable
//! `code`.
//!
//! The tenant and token routes are thin: `crate::records::admin` does the
//! work, the same functions the CLI (`strata tenant|token ...`) calls.
//!
//! `/admin` routes are registered only through `utoipa_axum::routes!`, so
//! each has its entry in the admin API's own OpenAPI document, served at
//! `/admin/openapi.json` (kept apart from the data API's `/v1/openapi.json`).

mod body;
mod ops;
mod reconcile;
mod skills;
mod tenants;
mod tokens;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::OpenApi;
use utoipa::openapi::SecurityRequirement;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::require_bearer;
use super::problem::Problem;
use super::request_id;
use crate::boot::{DependencyStatus, Health};
use crate::records::RecordError;
use crate::records::admin::AdminError;
use crate::schema::SchemaReport;
use crate::stores::Dependency;
use crate::stores::postgres::Postgres;
use crate::version::BuildInfo;

/// Seconds a client is told to wait while strata boots.
const RETRY_AFTER_SECS: u32 = 5;

/// Admin requests are small JSON documents.
const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct AdminState {
    pub health: Health,
    pub token_sha256: Arc<str>,
    pub build: BuildInfo,
    /// Set once the stores are ready (the listener serves before that).
    postgres: Arc<OnceLock<Postgres>>,
    /// All three, for the billing summary and the TTLs in the status.
    pub stores: Arc<OnceLock<crate::stores::Stores>>,
    /// The configuration at start, and the live one once serving (SIGHUP).
    initial_config: Arc<crate::config::Config>,
    live_config: Arc<OnceLock<crate::ops::reload::Live>>,
}

impl AdminState {
    pub fn new(health: Health, token_sha256: &str, build: BuildInfo) -> Self {
        Self {
            health,
            token_sha256: Arc::from(token_sha256),
            build,
            postgres: Arc::new(OnceLock::new()),
            stores: Arc::new(OnceLock::new()),
            initial_config: Arc::new(crate::config::Config::default()),
            live_config: Arc::new(OnceLock::new()),
        }
    }

    /// Hands the ready stores to the routes (once).
    pub fn set_stores(&self, stores: crate::stores::Stores) {
        let _ = self.stores.set(stores);
    }

    /// The configuration to show until serving starts.
    pub fn with_config(mut self, config: &crate::config::Config) -> Self {
        self.initial_config = Arc::new(config.clone());
        self
    }

    /// Hands the live configuration (replaced by SIGHUP reloads) over.
    pub fn set_live_config(&self, live: crate::ops::reload::Live) {
        let _ = self.live_config.set(live);
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<crate::config::Config> {
        match self.live_config.get() {
            Some(live) => live.borrow().clone(),
            None => self.initial_config.clone(),
        }
    }

    /// Hands the ready PostgreSQL handle to the routes (once).
    pub fn set_postgres(&self, postgres: Postgres) {
        // A second call would hand over the same stores: ignore it.
        let _ = self.postgres.set(postgres);
    }

    /// All three stores, or 503 while strata boots.
    pub fn ready_stores(&self) -> Result<&crate::stores::Stores, Problem> {
        self.stores
            .get()
            .ok_or_else(|| Problem::starting(RETRY_AFTER_SECS))
    }

    /// The administrative path, or 503 while strata boots.
    fn postgres(&self) -> Result<&Postgres, Problem> {
        self.postgres
            .get()
            .ok_or_else(|| Problem::starting(RETRY_AFTER_SECS))
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "strata admin API",
        description = "Tenants and service tokens of one strata installation, on the admin \
                       listener (loopback by default). Needs the admin bearer token. Errors \
                       are application/problem+json."
    ),
    components(schemas(Problem, super::problem::FieldError))
)]
struct Base;

/// The document's parts that no handler states: info, the bearer scheme.
fn base() -> utoipa::openapi::OpenApi {
    let mut document = Base::openapi();
    document
        .components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    document.security = Some(vec![SecurityRequirement::new(
        "bearer",
        Vec::<String>::new(),
    )]);
    document
}

/// Every `/admin` route with its OpenAPI document.
pub fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::with_openapi(base())
        .routes(routes!(status))
        .routes(routes!(tenants::list, tenants::create))
        .routes(routes!(tenants::get, tenants::delete))
        .routes(routes!(tenants::suspend))
        .routes(routes!(tenants::resume))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::get))
        .routes(routes!(tokens::revoke))
        .routes(routes!(ops::migrations))
        .routes(routes!(ops::config))
        .routes(routes!(ops::jobs))
        .routes(routes!(reconcile::report, reconcile::repair))
        .routes(routes!(skills::list, skills::create))
        .routes(routes!(skills::get, skills::change, skills::delete))
        .routes(routes!(crate::api::billing::summary))
}

/// The admin API's OpenAPI document, as served.
pub fn document() -> utoipa::openapi::OpenApi {
    let (_, mut document) = routes().split_for_parts();
    super::data::openapi::finish(&mut document);
    document
}

pub fn router(state: AdminState) -> Router {
    let (admin, mut document) = routes().split_for_parts();
    super::data::openapi::finish(&mut document);
    let document: Arc<str> = Arc::from(document.to_json().unwrap_or_default());
    let admin = admin
        .route(
            "/admin/openapi.json",
            get(move || {
                let document = document.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        document.to_string(),
                    )
                }
            }),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin))
        .route_layer(middleware::from_fn(request_id::layer));
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(admin)
        .fallback(|| async { Problem::not_found("no such route") })
        .method_not_allowed_fallback(|| async { Problem::method_not_allowed() })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The admin token: its SHA-256 compared in constant time.
async fn require_admin(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    match require_bearer(request.headers(), &state.token_sha256) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// An administrative refusal as a problem; `what` names the kind of thing
/// a 404 is about ("tenant", "token").
fn problem(error: AdminError, what: &str) -> Problem {
    match error {
        AdminError::Record(RecordError::NotFound) => Problem::not_found(&format!("no such {what}")),
        other => other.into(),
    }
}

/// Prometheus text format; open like the probes (it holds counts and
/// timings, no secrets, no tenant or record refs) on the loopback listener.
async fn metrics() -> Response {
    let text = crate::ops::metrics::metrics()
        .map(|m| m.render())
        .unwrap_or_default();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
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
    /// How long MongoDB keeps the log collections (days, from the
    /// configuration in force; applied as TTL indexes at boot and reload).
    ttl_days: BTreeMap<&'static str, u32>,
    /// TTL seconds of the MongoDB collections that expire, as the server has them.
    #[serde(skip_serializing_if = "Option::is_none")]
    mongo_ttl_secs: Option<BTreeMap<String, u64>>,
}

#[utoipa::path(
    get,
    path = "/admin/status",
    tag = "status",
    operation_id = "getStatus",
    summary = "Build info, readiness, uptime, dependencies, schema report",
    responses((status = 200, description = "The status", body = serde_json::Value))
)]
async fn status(State(state): State<AdminState>) -> Json<impl Serialize> {
    Json(Status {
        build: state.build.clone(),
        ready: state.health.is_ready(),
        uptime_secs: state.health.uptime().as_secs(),
        dependencies: state.health.dependencies(),
        schema: state.health.schema(),
        ttl_days: {
            let config = state.config();
            BTreeMap::from([
                ("tool_call_logs", config.mongo.tool_call_logs_ttl_days),
                (
                    "integration_payloads",
                    config.mongo.integration_payloads_ttl_days,
                ),
                ("entity_diffs", config.mongo.entity_diffs_ttl_days),
            ])
        },
        mongo_ttl_secs: match state.stores.get() {
            Some(stores) => crate::logs::payloads::ttls(&stores.mongo).await.ok(),
            None => None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_new_token_has_a_secret_in_the_document() {
        let doc = serde_json::to_value(document()).expect("JSON");
        let schemas = &doc["components"]["schemas"];
        let issued = schemas["IssuedToken"].to_string();
        assert!(issued.contains("\"token\""), "{issued}");
        assert!(issued.contains("TokenInfo"), "{issued}");
        let listed = &schemas["TokenInfo"]["properties"];
        assert!(listed.get("token").is_none(), "{listed}");
        assert!(listed.get("secretSha256").is_none(), "{listed}");
        assert!(
            schemas["Tenant"]["properties"]["status"]
                .to_string()
                .contains("TenantStatus"),
            "{}",
            schemas["Tenant"]
        );
    }
}
