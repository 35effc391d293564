//! Usage events: the idempotent create (one event, or a batch) and the
//! monthly summary. The work is in [`crate::records::usage`].

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::DataState;
use super::body::{BatchBody, JsonBody};
use super::collection::{self, location, problem};
use super::extract::{QueryParams, Work, etag};
use crate::api::problem::Problem;
use crate::audit::{Action, Diff};
use crate::records::batch::{BatchReport, ItemError, Outcome, created_refs};
use crate::records::collections::usage_events::{CreateUsageEvent, TABLE, UsageEvent};
use crate::records::table::{self, Versioned};
use crate::records::usage::{self, Month, MonthlyUsage, NewUsageEvent};

/// Many usage events at once.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageEventBatch {
    /// At most `api.max_batch_items` (default 1,000) events.
    #[schema(min_items = 1)]
    pub events: Vec<NewUsageEvent>,
}

/// 422 for an empty batch or one over the limit.
pub fn check_count(count: usize, max: usize, list: &str) -> Result<(), Problem> {
    if count == 0 {
        return Err(Problem::invalid_field(list, "must not be empty"));
    }
    if count > max {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_many_items",
            format!("{list}: {count} items, at most {max} per request (api.max_batch_items)"),
        ));
    }
    Ok(())
}

/// An item's refusal as the answer to a request of one item.
pub fn item_problem(error: Option<ItemError>) -> Problem {
    match error {
        Some(e) if e.code == "validation_failed" => {
            Problem::invalid_field(e.field.as_deref().unwrap_or_default(), e.message)
        }
        Some(e) if e.code == "ref_taken" || e.code == "duplicate_ref" => {
            Problem::new(StatusCode::CONFLICT, "conflict", e.message)
        }
        Some(e) => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, &e.code, e.message),
        None => Problem::internal(),
    }
}

/// Retrying with the same `ref` records nothing new: 200 with the event
/// recorded first.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenantRef}/usage-events",
    tag = "usage-events",
    operation_id = "createUsageEvent",
    summary = "Record a usage event (idempotent with a client-made ref)",
    params(super::extract::TenantPath),
    request_body = CreateUsageEvent,
    responses(
        (status = 201, description = "Recorded", body = UsageEvent, headers(
            ("Location" = String, description = "The event's URL path"),
            ("ETag" = String, description = "Its version"),
        )),
        (status = 200, description = "Recorded before (same ref): the event", body = UsageEvent,
         headers(("ETag" = String, description = "Its version"))),
        (status = 409, description = "The ref is another record's",
         body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem,
         content_type = "application/problem+json"),
    )
)]
pub async fn create(
    mut work: Work,
    JsonBody(body): JsonBody<CreateUsageEvent>,
) -> Result<Response, Problem> {
    let event = NewUsageEvent {
        record_ref: body
            .record_ref
            .unwrap_or_else(|| ulid::Ulid::generate().to_string()),
        metric: body.metric,
        quantity: body.quantity,
        occurred_at: body.occurred_at,
        activity_ref: body.activity_ref,
    };
    let result = usage::record(&work.pg, &mut work.tx, work.tenant_id, &[event], "")
        .await
        .map_err(|e| problem(&TABLE, e))?
        .pop()
        .ok_or_else(Problem::internal)?;
    let status = match result.outcome {
        Outcome::Created => StatusCode::CREATED,
        Outcome::Existing => StatusCode::OK,
        Outcome::Refused => return Err(item_problem(result.error)),
    };
    let recorded: UsageEvent = table::get(
        &work.pg,
        &mut work.tx,
        work.tenant_id,
        &TABLE,
        &result.record_ref,
    )
    .await
    .map_err(|e| problem(&TABLE, e))?;
    let location = location(&TABLE, &work.tenant_ref, recorded.record_ref());
    if status == StatusCode::CREATED {
        let diff = Diff::created(&recorded)?;
        collection::audit(&mut work, &TABLE, &result.record_ref, Action::Create, diff).await?;
    }
    work.commit().await?;
    let mut response = (
        status,
        [(header::ETAG, etag(recorded.version()))],
        Json(&recorded),
    )
        .into_response();
    if status == StatusCode::CREATED
        && let Ok(value) = location.parse()
    {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// One statement for the whole batch. Each event's `ref` is its
/// idempotency key: a retried batch reports the events recorded before as
/// `existing` and records only the others. An invalid event (pattern,
/// range) refuses the whole batch (422); what depends on stored data (an
/// activity that does not resolve, a ref repeated in the batch or held by
/// another record) refuses only that event.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenantRef}/usage-events:batch",
    tag = "usage-events",
    operation_id = "recordUsageEvents",
    summary = "Record many usage events (idempotent by their refs)",
    params(super::extract::TenantPath),
    request_body = UsageEventBatch,
    responses(
        (status = 200, description = "One result per event, in request order", body = BatchReport),
        (status = 413, description = "Larger than api.max_batch_body_bytes",
         body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid event, or too many",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn record_batch(
    mut work: Work,
    State(state): State<DataState>,
    BatchBody(batch): BatchBody<UsageEventBatch>,
) -> Result<Json<BatchReport>, Problem> {
    check_count(batch.events.len(), state.limits.max_items, "events")?;
    let results = usage::record(
        &work.pg,
        &mut work.tx,
        work.tenant_id,
        &batch.events,
        "events",
    )
    .await
    .map_err(|e| problem(&TABLE, e))?;
    collection::audit_created::<UsageEvent>(&mut work, &TABLE, &created_refs(&results)).await?;
    work.commit().await?;
    Ok(Json(BatchReport::new(results)))
}

/// The months of a summary.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MonthRange {
    /// The first month (`YYYY-MM`, UTC), included.
    #[param(
        pattern = "^(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])$",
        example = "2026-01"
    )]
    pub from: String,
    /// The last month (`YYYY-MM`, UTC), included; not before `from`.
    #[param(
        pattern = "^(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])$",
        example = "2026-03"
    )]
    pub to: String,
}

impl MonthRange {
    pub fn resolve(&self) -> Result<(Month, Month), Problem> {
        let month = |name: &str, text: &str| {
            Month::parse(text).ok_or_else(|| {
                Problem::invalid_field(name, "must be a month YYYY-MM (1970-01 or later)")
            })
        };
        let (from, to) = (month("from", &self.from)?, month("to", &self.to)?);
        if to < from {
            return Err(Problem::invalid_field("to", "must not be before from"));
        }
        Ok((from, to))
    }
}

/// A tenant's usage per metric and month.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageSummary {
    #[schema(example = "2026-01")]
    pub from: String,
    #[schema(example = "2026-03")]
    pub to: String,
    /// Ordered by month, then metric; months without events are absent.
    pub items: Vec<MonthlyUsage>,
}

/// Sums the tenant's events whose `occurredAt` falls in `[from, to]` by
/// calendar month in UTC (a month runs from 00:00:00 UTC on its first day
/// to just before 00:00:00 UTC on the next month's).
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenantRef}/usage/summary",
    tag = "usage-events",
    operation_id = "summariseUsage",
    summary = "Usage per metric and month (UTC)",
    params(super::extract::TenantPath, MonthRange),
    responses(
        (status = 200, description = "The sums", body = UsageSummary),
        (status = 422, description = "Invalid months", body = Problem,
         content_type = "application/problem+json"),
    )
)]
pub async fn summary(
    mut work: Work,
    QueryParams(range): QueryParams<MonthRange>,
) -> Result<Json<UsageSummary>, Problem> {
    let (from, to) = range.resolve()?;
    let items = usage::summary(&work.pg, &mut work.tx, work.tenant_id, from, to).await?;
    work.commit().await?;
    Ok(Json(UsageSummary {
        from: from.to_string(),
        to: to.to_string(),
        items,
    }))
}
