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
use utoipa::{IntoParams, ToSchema};

use super::body::{AdminJson, RefPath, query};
use super::{AdminState, problem};
use crate::api::problem::Problem;
use crate::records::admin::{self, NewTenant, Tenant, TenantStatus};
use crate::records::page::{Cursor, DEFAULT_LIMIT, MAX_LIMIT};

pub const TAG: &str = "tenants";

/// A new tenant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// 1-63 lower-case letters, digits and dashes, not starting or ending
    /// with a dash; unique.
    #[schema(pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    slug: String,
    /// 1-200 characters.
    name: String,
    /// Default `basic`.
    #[serde(default = "default_plan")]
    plan: String,
}

fn default_plan() -> String {
    "basic".to_string()
}

#[utoipa::path(
    post,
    path = "/admin/tenants",
    tag = TAG,
    operation_id = "createTenant",
    summary = "Create an active tenant",
    request_body = CreateTenant,
    responses(
        (status = 201, description = "Created", body = Tenant, headers(
            ("Location" = String, description = "The tenant's URL path"),
        )),
        (status = 409, description = "The slug is taken", body = Problem,
         content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem,
         content_type = "application/problem+json"),
    )
)]
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

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only tenants in this state.
    status: Option<TenantStatus>,
    /// 1-200, default 50.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// `next` of the previous page.
    cursor: Option<String>,
}

/// One page of tenants; `next` continues it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantPage {
    items: Vec<Tenant>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

#[utoipa::path(
    get,
    path = "/admin/tenants",
    tag = TAG,
    operation_id = "listTenants",
    summary = "List tenants (deleted ones until purged), oldest first, with live record counts",
    params(ListQuery),
    responses(
        (status = 200, description = "One page", body = TenantPage),
        (status = 422, description = "Invalid parameters", body = Problem,
         content_type = "application/problem+json"),
    )
)]
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

#[utoipa::path(
    get,
    path = "/admin/tenants/{ref}",
    tag = TAG,
    operation_id = "getTenant",
    summary = "Get a tenant with its live record counts",
    params(RefPath),
    responses(
        (status = 200, description = "The tenant", body = Tenant),
        (status = 404, description = "No such tenant", body = Problem,
         content_type = "application/problem+json"),
    )
)]
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
#[utoipa::path(
    post,
    path = "/admin/tenants/{ref}/suspend",
    tag = TAG,
    operation_id = "suspendTenant",
    summary = "Suspend a tenant: the data API answers 403 tenant_suspended",
    params(RefPath),
    responses(
        (status = 200, description = "The tenant in its new state", body = Tenant),
        (status = 404, description = "No such tenant", body = Problem,
         content_type = "application/problem+json"),
        (status = 409, description = "Not allowed from its state (allowedStates)", body = Problem,
         content_type = "application/problem+json"),
    )
)]
pub async fn suspend(
    State(state): State<AdminState>,
    RefPath(tenant_ref): RefPath,
) -> Result<Json<Tenant>, Problem> {
    move_to(&state, &tenant_ref, TenantStatus::Suspended).await
}

#[utoipa::path(
    post,
    path = "/admin/tenants/{ref}/resume",
    tag = TAG,
    operation_id = "resumeTenant",
    summary = "Make a suspended tenant active again",
    params(RefPath),
    responses(
        (status = 200, description = "The tenant in its new state", body = Tenant),
        (status = 404, description = "No such tenant", body = Problem,
         content_type = "application/problem+json"),
        (status = 409, description = "Not allowed from its state (allowedStates)", body = Problem,
         content_type = "application/problem+json"),
    )
)]
pub async fn resume(
    State(state): State<AdminState>,
    RefPath(tenant_ref): RefPath,
) -> Result<Json<Tenant>, Problem> {
    move_to(&state, &tenant_ref, TenantStatus::Active).await
}

/// Soft delete: the tenant and everything it owns are gone from the data
/// API (404) from the next request on; the rows stay until the purge.
#[utoipa::path(
    delete,
    path = "/admin/tenants/{ref}",
    tag = TAG,
    operation_id = "deleteTenant",
    summary = "Delete a tenant (soft, final): it and all it owns are 404 on the data API",
    params(RefPath),
    responses(
        (status = 200, description = "The deleted tenant", body = Tenant),
        (status = 404, description = "No such tenant", body = Problem,
         content_type = "application/problem+json"),
    )
)]
pub async fn delete(
    State(state): State<AdminState>,
    RefPath(tenant_ref): RefPath,
) -> Result<Json<Tenant>, Problem> {
    move_to(&state, &tenant_ref, TenantStatus::Deleted).await
}
