//! The data API. Its listener opens at the start of the boot so that
//! clients get a clear 503 with `Retry-After` (not a refused connection)
//! while dependencies are checked and the schema is upgraded.

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::boot::Health;

/// Seconds a client is told to wait while strata boots.
const RETRY_AFTER_SECS: u32 = 5;

#[derive(Clone)]
pub struct DataState {
    pub health: Health,
}

pub fn router(state: DataState) -> Router {
    Router::new()
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(middleware::from_fn_with_state(state.clone(), while_booting))
        .with_state(state)
}

/// Every route answers 503 until the boot finished.
async fn while_booting(State(state): State<DataState>, request: Request, next: Next) -> Response {
    if state.health.is_booted() {
        next.run(request).await
    } else {
        ApiError::starting(RETRY_AFTER_SECS).into_response()
    }
}
