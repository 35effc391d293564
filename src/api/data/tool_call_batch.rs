//! `POST .../tool-calls:batch`: many tool calls with their payloads; the
//! work is in [`crate::logs::tool_calls`]. The `:batch` suffix is part of
//! the literal segment (`tool-calls:batch`), which axum 0.8 routes as
//! text: only a segment that *starts* with `:` is refused.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::DataState;
use super::body::BatchBody;
use super::collection::{self, problem};
use super::extract::Work;
use super::usage::check_count;
use crate::api::problem::Problem;
use crate::logs::tool_calls::{self, NewToolCall};
use crate::records::batch::{BatchReport, created_refs};
use crate::records::collections::tool_calls::{TABLE, ToolCall};

/// Many tool calls at once.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolCallBatch {
    /// At most `api.max_batch_items` (default 1,000) calls.
    #[schema(min_items = 1)]
    pub calls: Vec<NewToolCall>,
}

/// Payloads go to MongoDB first (one unordered `insert_many`), then the
/// summaries to PostgreSQL (one statement), so a summary's `payloadRef`
/// (= its ref) never names a payload that was not written. Each call's
/// `ref` is its idempotency key: retrying a batch (also one interrupted
/// between the stores) writes only what is missing. An invalid call
/// (pattern, length, range) refuses the whole batch (422); a payload over
/// `api.max_payload_bytes`, a ref repeated in the batch or held by another
/// record, or an activity that does not resolve refuses only that call.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenantRef}/tool-calls:batch",
    tag = "tool-calls",
    operation_id = "ingestToolCalls",
    summary = "Record many tool calls with their payloads (idempotent by their refs)",
    params(super::extract::TenantPath),
    request_body = ToolCallBatch,
    responses(
        (status = 200, description = "One result per call, in request order", body = BatchReport),
        (status = 413, description = "Larger than api.max_batch_body_bytes",
         body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid call, or too many",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn ingest(
    mut work: Work,
    State(state): State<DataState>,
    BatchBody(batch): BatchBody<ToolCallBatch>,
) -> Result<Json<BatchReport>, Problem> {
    check_count(batch.calls.len(), state.limits.max_items, "calls")?;
    let results = tool_calls::ingest(
        &work.pg,
        &mut work.tx,
        state.mongo()?,
        (work.tenant_id, &work.tenant_ref),
        &batch.calls,
        state.limits.max_payload_bytes,
    )
    .await
    .map_err(|e| problem(&TABLE, e))?;
    collection::audit_created::<ToolCall>(&mut work, &TABLE, &created_refs(&results)).await?;
    work.commit().await?;
    Ok(Json(BatchReport::new(results)))
}
