//! Request ids for the admin listener: a client's `X-Request-Id` if it is
//! reasonable (1–128 characters of `[A-Za-z0-9._:-]`), else a new ULID;
//! echoed in the response, put into every problem body
//! ([`super::problem::REQUEST_ID`]) and into the request's tracing span, so
//! that an administrative change in the log names the request that made it.
//! (The data API has the same rules in `data::request_id`.)

use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::problem::REQUEST_ID;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The id a request is served under.
pub fn of(request: &Request) -> String {
    request
        .headers()
        .get(&HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=128).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(|| ulid::Ulid::generate().to_string())
}

/// Middleware: serves the request inside its id's scope and span, logs the
/// outcome, echoes the id.
pub async fn layer(request: Request, next: Next) -> Response {
    let id = of(&request);
    let span = tracing::info_span!(
        "admin_request",
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
        response.headers_mut().insert(HEADER, value);
    }
    response
}
