//! `/admin/tenants`: list (with record counts), create, get, suspend,
//! resume, delete (soft). Status changes are judged by PostgreSQL's state
//! machine: an illegal one is 409 `illegal_transition` with `currentState`
//! and `allowedStates`.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::body::{AdminJson, RefPath, query};
use super::{AdminState, problem};
use crate::api::problem::Problem;
use crate::records::admin::{self, NewTenant, Tenant, TenantStatus};
use crate::records::page::{Cursor, DEFAULT_LIMIT, MAX_LIMIT};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    slug: String,
    name: String,
    #[serde(default = "default_plan")]
    plan: String,
}

fn default_plan() -> String {
    "basic".to_string()
}

pub async fn create(
    State(state): State<AdminState>,
    AdminJson(body): AdminJson<CreateTenant>,
) -> Result<Response, Problem> {
    let pg = state.postgres()?;
    let tenant = admin::create_tenant(
        pg,
        &NewTenant {
            slug: body.slug,
            name: body.name,
            plan: body.plan,
        },
    )
    .await
    .map_err(|e| problem(e, "tenant"))?;
    let location = format!("/admin/tenants/{}", tenant.tenant_ref);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(tenant),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<TenantStatus>,
    limit: Option<u32>,
    cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct TenantPage {
    items: Vec<Tenant>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

pub async fn list(
    State(state): State<AdminState>,
    params: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<TenantPage>, Problem> {
    let params = query(params)?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Problem::invalid_field(
            "limit",
            format!("1-{MAX_LIMIT} (default {DEFAULT_LIMIT})"),
        ));
    }
    let cursor =
        match params.cursor.as_deref() {
            None => None,
            Some(raw) => Some(Cursor::decode(raw).ok_or_else(|| {
                Problem::invalid_field("cursor", "not a cursor this API handed out")
            })?),
        };
    let pg = state.postgres()?;
    let page = admin::list_tenants(pg, params.status, limit, cursor.as_ref())
        .await
        .map_err(|e| problem(e, "tenant"))?;
    Ok(Json(TenantPage {
        items: page.items,
        next: page.next.map(|c| c.encode()),
    }))
}

pub async fn get(
    State(state): State<AdminState>,
    RefPath(tenant_ref): RefPath,
) -> Result<Json<Tenant>, Problem> {
    let pg = state.postgres()?;
    admin::get_tenant(pg, &tenant_ref)
        .await
        .map(Json)
        .map_err(|e| problem(e, "tenant"))
}

async fn move_to(
    state: &AdminState,
    tenant_ref: &str,
    to: TenantStatus,
) -> Result<Json<Tenant>, Problem> {
    let pg = state.postgres()?;
    admin::set_tenant_status(pg, tenant_ref, to)
        .await
        .map(Json)
        .map_err(|e| problem(e, "tenant"))
}

/// The data API refuses the tenant (403 `tenant_suspended`) from its next
/// request on, on every instance.
pub async fn suspend(
    State(state): State<AdminState>,
    RefPath(tenant_ref): RefPath,
) -> Result<Json<Tenant>, Problem> {
    move_to(&state, &tenant_ref, TenantStatus::Suspended).await
}

pub async fn resume(
    State(state): State<AdminState>,
    RefPath(tenant_ref): RefPath,
) -> Result<Json<Tenant>, Problem> {
    move_to(&state, &tenant_ref, TenantStatus::Active).await
}

/// Soft delete: the tenant and everything it owns are gone from the data
/// API (404) from the next request on; the rows stay until the purge.
pub async fn delete(
    State(state): State<AdminState>,
    RefPath(tenant_ref): RefPath,
) -> Result<Json<Tenant>, Problem> {
    move_to(&state, &tenant_ref, TenantStatus::Deleted).await
}
