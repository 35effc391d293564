use axum::Json;

use super::json::{ActivityFilter, ActivityPage, ActivityView};
use crate::api::data::extract::{Paging, QueryParams, TenantPath, Work};
use crate::api::problem::Problem;
use crate::records::activities;

/// List activities, oldest first, a page at a time
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenantRef}/activities",
    tag = "activities",
    params(TenantPath, Paging, ActivityFilter),
    responses(
        (status = 200, description = "One page; `next` continues it", body = ActivityPage),
        (status = 422, description = "Invalid parameters", body = Problem,
         content_type = "application/problem+json"),
    )
)]
pub async fn list(
    mut work: Work,
    paging: Paging,
    QueryParams(filter): QueryParams<ActivityFilter>,
) -> Result<Json<ActivityPage>, Problem> {
    let (limit, cursor) = paging.resolve()?;
    let page = activities::list(
        &work.pg,
        &mut work.tx,
        work.tenant_id,
        &filter.into(),
        cursor.as_ref(),
        limit,
    )
    .await?;
    work.commit().await?;
    Ok(Json(ActivityPage {
        items: page.items.into_iter().map(ActivityView::from).collect(),
        next: page.next.map(|c| c.encode()),
    }))
}
