//! `GET /admin/usage/summary?from=YYYY-MM&to=YYYY-MM` on the admin
//! listener (admin token): every tenant's usage per metric and month, for
//! invoicing. It runs on the administrative path (the migration role),
//! never as a tenant. Errors are problem+json, like the data API's.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::admin::AdminState;
use super::data::extract::QueryParams;
use super::data::usage::MonthRange;
use super::problem::Problem;
use crate::records::usage::{self, TenantMonthlyUsage};

/// Seconds a client is told to wait while strata boots.

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AllTenantsUsage {
    pub from: String,
    pub to: String,
    /// Ordered by month, tenant, metric; without rows for empty months.
    pub items: Vec<TenantMonthlyUsage>,
}

/// Every tenant's usage per metric and month, for invoicing
#[utoipa::path(
    get,
    path = "/admin/usage/summary",
    tag = "billing",
    operation_id = "getUsageSummaryAllTenants",
    params(MonthRange),
    responses(
        (status = 200, description = "Usage per tenant, metric and month", body = AllTenantsUsage),
        (status = 422, description = "Invalid months", body = Problem,
         content_type = "application/problem+json"),
    )
)]
pub async fn summary(
    State(state): State<AdminState>,
    QueryParams(range): QueryParams<MonthRange>,
) -> Result<Json<AllTenantsUsage>, Problem> {
    let (from, to) = range.resolve()?;
    let stores = state.ready_stores()?;
    let items = usage::summary_all(&stores.postgres, from, to).await?;
    Ok(Json(AllTenantsUsage {
        from: from.to_string(),
        to: to.to_string(),
        items,
    }))
}
