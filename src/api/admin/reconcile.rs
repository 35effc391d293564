//! `/admin/reconcile`: the reconciliation of the split pattern on demand
//! (the same pass as `strata reconcile` and the periodic job): GET reports,
//! POST with a grace period also removes the orphans older than it.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AdminState;
use super::body::{AdminJson, query};
use crate::api::data::content::content_problem;
use crate::api::data::extract::parse_ref;
use crate::api::problem::Problem;
use crate::content::Content;
use crate::content::reconcile::{self, Repair, Report};

pub const TAG: &str = "operations";

/// The longest grace period accepted (a year), so that a typo cannot wrap.
const MAX_GRACE_HOURS: u32 = 24 * 366;

/// Which tenant to walk (all when absent).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReconcileQuery {
    /// One tenant's ref; every tenant when absent.
    #[param(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub tenant: Option<String>,
}

/// A repair: orphans older than `graceHours` are removed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RepairRequest {
    /// Orphans younger than this many hours stay (a write may still be on
    /// its way to pointing at them).
    #[schema(minimum = 0, maximum = 8784)]
    pub grace_hours: u32,
    /// One tenant's ref; every tenant when absent.
    #[schema(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub tenant: Option<String>,
}

/// What a reconcile found, and what a repair did.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReconcileResult {
    /// Pointers to something missing: the split pattern forbids them, so
    /// anything here is a bug to report.
    pub dangling: usize,
    pub orphans: usize,
    pub report: Report,
    /// Present for a repair.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repair: Option<Repair>,
}

fn content(state: &AdminState) -> Result<Content, Problem> {
    let stores = state.ready_stores()?;
    let config = state.config();
    Ok(Content::new(stores, &config.content, &config.s3))
}

async fn scan(state: &AdminState, tenant: Option<&str>) -> Result<Report, Problem> {
    let tenant = tenant.map(|t| parse_ref("tenant", t)).transpose()?;
    let content = content(state)?;
    let report = reconcile::scan(state.postgres()?, &content, tenant.as_deref())
        .await
        .map_err(content_problem)?;
    if tenant.is_none() {
        crate::ops::metrics::set_reconcile_findings(&report);
    }
    Ok(report)
}

/// Walk the three stores: dangling pointers and orphans
///
/// Read-only; safe while strata serves writes.
#[utoipa::path(
    get,
    path = "/admin/reconcile",
    tag = TAG,
    operation_id = "reconcile",
    params(ReconcileQuery),
    responses(
        (status = 200, description = "What the walk found", body = ReconcileResult),
        (status = 400, description = "An invalid tenant ref", body = Problem,
         content_type = "application/problem+json"),
        (status = 503, description = "Still booting, or a store is unavailable", body = Problem,
         content_type = "application/problem+json"),
    )
)]
pub async fn report(
    State(state): State<AdminState>,
    params: Result<Query<ReconcileQuery>, QueryRejection>,
) -> Result<Json<ReconcileResult>, Problem> {
    let params = query(params)?;
    let report = scan(&state, params.tenant.as_deref()).await?;
    Ok(Json(ReconcileResult {
        dangling: report.dangling.len(),
        orphans: report.orphans.len(),
        report,
        repair: None,
    }))
}

/// Walk the three stores and remove the orphans older than the grace period
///
/// Never a contract PDF under Object Lock, never anything younger than the
/// grace period; safe while strata serves writes.
#[utoipa::path(
    post,
    path = "/admin/reconcile",
    tag = TAG,
    operation_id = "repair",
    request_body = RepairRequest,
    responses(
        (status = 200, description = "What the walk found and the repair did", body = ReconcileResult),
        (status = 422, description = "Invalid fields", body = Problem,
         content_type = "application/problem+json"),
        (status = 503, description = "Still booting, or a store is unavailable", body = Problem,
         content_type = "application/problem+json"),
    )
)]
pub async fn repair(
    State(state): State<AdminState>,
    AdminJson(request): AdminJson<RepairRequest>,
) -> Result<Json<ReconcileResult>, Problem> {
    if request.grace_hours > MAX_GRACE_HOURS {
        return Err(Problem::invalid_field(
            "graceHours",
            format!("0 to {MAX_GRACE_HOURS} hours"),
        ));
    }
    let report = scan(&state, request.tenant.as_deref()).await?;
    let grace = chrono::Duration::hours(i64::from(request.grace_hours));
    let repaired = reconcile::repair(&content(&state)?, &report, grace)
        .await
        .map_err(content_problem)?;
    Ok(Json(ReconcileResult {
        dangling: report.dangling.len(),
        orphans: report.orphans.len(),
        report,
        repair: Some(repaired),
    }))
}
