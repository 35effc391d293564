//! The data API: `/v1/tenants/{tenantRef}/{collection}[/{ref}]`, described
//! by the OpenAPI 3.1 document served at `/v1/openapi.json`.
//!
//! Routes are registered only through `utoipa_axum::routes!`, so a route
//! cannot exist without its entry in the document. The route table is
//! [`collections`]: each collection invokes the operation macros of [`ops`]
//! over its description in `crate::records::collections`; the generic
//! operations live in [`collection`]. Handlers are thin: the
//! [`extract::Work`] extractor authenticates and opens the request's
//! transaction (tenant set for row-level security), `crate::records` does
//! the work.
//!
//! The listener opens at the start of the boot so that clients get a clear
//! 503 with `Retry-After` (not a refused connection) while dependencies are
//! checked and the schema is upgraded.

pub mod body;
pub mod collection;
pub mod collections;
pub mod content;
pub mod content_entities;
pub mod extract;
pub mod history;
pub mod openapi;
pub mod ops;
pub mod payloads;
pub mod skills;
pub mod tool_call_batch;
pub mod usage;

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tracing::Instrument;
use utoipa_axum::router::OpenApiRouter;

use super::problem::{Problem, REQUEST_ID};
use crate::boot::Health;
use crate::config::ApiConfig;
use crate::stores::mongo::Mongo;
use crate::stores::postgres::Postgres;

/// Seconds a client is told to wait while strata boots.
const RETRY_AFTER_SECS: u32 = 5;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

#[derive(Clone)]
pub struct DataState {
    pub health: Health,
    /// Set once the stores are ready (the router serves before that).
    postgres: Arc<OnceLock<Postgres>>,
    /// Set with it (audit history reads MongoDB).
    mongo: Arc<OnceLock<Mongo>>,
    /// The split path (S3 + MongoDB), set with the stores.
    content: Arc<OnceLock<crate::content::Content>>,
    pub max_body_bytes: usize,
    pub max_json_depth: u32,
    pub limits: BatchLimits,
}

/// The limits of batch requests (`api.max_batch_*`, `api.max_payload_bytes`).
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub max_items: usize,
    pub max_body_bytes: usize,
    pub max_payload_bytes: usize,
}

impl DataState {
    pub fn new(health: Health, config: &ApiConfig) -> Self {
        Self {
            health,
            postgres: Arc::new(OnceLock::new()),
            mongo: Arc::new(OnceLock::new()),
            content: Arc::new(OnceLock::new()),
            max_body_bytes: config.max_body_bytes,
            max_json_depth: config.max_json_depth,
            limits: BatchLimits {
                max_items: config.max_batch_items as usize,
                max_body_bytes: config.max_batch_body_bytes,
                max_payload_bytes: config.max_payload_bytes,
            },
        }
    }

    /// Hands the ready MongoDB handle to the routes (once).
    pub fn set_mongo(&self, mongo: Mongo) {
        let _ = self.mongo.set(mongo);
    }

    pub fn mongo(&self) -> Result<&Mongo, Problem> {
        self.mongo
            .get()
            .ok_or_else(|| Problem::starting(RETRY_AFTER_SECS))
    }

    /// Hands the ready PostgreSQL handle to the routes (once).
    pub fn set_postgres(&self, postgres: Postgres) {
        // A second call would hand over the same stores: ignore it.
        let _ = self.postgres.set(postgres);
    }

    /// Hands the split path to the routes (once).
    pub fn set_content(&self, content: crate::content::Content) {
        let _ = self.content.set(content);
    }

    pub fn content(&self) -> Result<&crate::content::Content, Problem> {
        self.content
            .get()
            .ok_or_else(|| Problem::starting(RETRY_AFTER_SECS))
    }

    pub fn postgres(&self) -> Result<&Postgres, Problem> {
        self.postgres
            .get()
            .ok_or_else(|| Problem::starting(RETRY_AFTER_SECS))
    }
}

/// Every route of the data API with its OpenAPI document.
pub fn routes() -> OpenApiRouter<DataState> {
    OpenApiRouter::with_openapi(openapi::base())
        .merge(collections::routes())
        .merge(content::routes())
        .merge(content_entities::routes())
}

/// The OpenAPI document of [`routes`], as served.
pub fn document() -> utoipa::openapi::OpenApi {
    let (_, mut document) = routes().split_for_parts();
    openapi::finish(&mut document);
    document
}

pub fn router(state: DataState) -> Router {
    let (api, mut document) = routes().split_for_parts();
    openapi::finish(&mut document);
    let document: Arc<str> = Arc::from(document.to_json().unwrap_or_default());
    api.route(
        "/v1/openapi.json",
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
    .fallback(|| async { Problem::not_found("no such route") })
    .method_not_allowed_fallback(|| async { Problem::method_not_allowed() })
    .layer(middleware::from_fn(|request, next| {
        crate::ops::metrics::track("data", request, next)
    }))
    .layer(DefaultBodyLimit::max(state.max_body_bytes))
    .layer(middleware::from_fn_with_state(state.clone(), while_booting))
    .layer(middleware::from_fn(request_id))
    .with_state(state)
}

/// Every route answers 503 until the boot finished.
async fn while_booting(State(state): State<DataState>, request: Request, next: Next) -> Response {
    if state.health.is_booted() {
        next.run(request).await
    } else {
        Problem::starting(RETRY_AFTER_SECS).into_response()
    }
}

/// A client's `X-Request-Id` if it is reasonable (1–128 characters of
/// `[A-Za-z0-9._:-]`), else a new ULID. It is echoed in the response, put
/// into every problem body and into the tracing span of the request.
async fn request_id(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=128).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(|| ulid::Ulid::generate().to_string());
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
    );
    let started = Instant::now();
    let mut response = REQUEST_ID
        .scope(id.clone(), next.run(request))
        .instrument(span.clone())
        .await;
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "served"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}
