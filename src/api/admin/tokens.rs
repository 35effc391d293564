//! `/admin/tokens`: the data API's service tokens. Create answers the secret
//! once (`Cache-Control: no-store`); list and get never show a secret or a
//! hash; revoke takes effect on the next request on every instance.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::{AdminJson, RefPath};
use super::{AdminState, problem};
use crate::api::problem::Problem;
use crate::records::admin::{self, IssuedToken, NewToken, TokenInfo, TokenScope};

pub const TAG: &str = "tokens";

/// A new service token: `tenant` (a ref) or `allTenants: true`, exactly one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateToken {
    /// What the token is for (shown in lists and audit trails), 1-200 characters.
    name: String,
    /// The tenant (ref) the token may act on.
    tenant: Option<String>,
    /// The token may act on every tenant (platform services).
    #[serde(default)]
    all_tenants: bool,
    /// Expire after this many days (1-36500); never without it.
    #[schema(minimum = 1, maximum = 36500)]
    expires_in_days: Option<u32>,
}

impl CreateToken {
    fn into_new(self) -> Result<NewToken, Problem> {
        let scope = match (self.tenant, self.all_tenants) {
            (Some(tenant_ref), false) => TokenScope::Tenant(tenant_ref),
            (None, true) => TokenScope::AllTenants,
            _ => {
                return Err(Problem::invalid_field(
                    "tenant",
                    "give either tenant (a tenant's ref) or allTenants: true",
                ));
            }
        };
        Ok(NewToken {
            name: self.name,
            scope,
            expires_in_days: self.expires_in_days,
        })
    }
}

#[utoipa::path(
    post,
    path = "/admin/tokens",
    tag = TAG,
    operation_id = "createToken",
    summary = "Create a service token; its secret is in this answer only",
    request_body = CreateToken,
    responses(
        (status = 201, description = "Created; `token` is the secret", body = IssuedToken, headers(
            ("Location" = String, description = "The token's URL path"),
            ("Cache-Control" = String, description = "no-store"),
        )),
        (status = 422, description = "Invalid fields (or no such tenant)", body = Problem,
         content_type = "application/problem+json"),
    )
)]
pub async fn create(
    State(state): State<AdminState>,
    AdminJson(body): AdminJson<CreateToken>,
) -> Result<Response, Problem> {
    let new = body.into_new()?;
    let pg = state.postgres()?;
    let issued = admin::issue_token(pg, &new)
        .await
        .map_err(|e| problem(e, "token"))?;
    let location = format!("/admin/tokens/{}", issued.info.token_ref);
    Ok((
        StatusCode::CREATED,
        [
            (header::LOCATION, location),
            // The secret is in this answer only: no cache may keep it.
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        Json(issued),
    )
        .into_response())
}

/// Every service token.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    items: Vec<TokenInfo>,
}

/// Every token, oldest first; revoked and expired ones say when.
#[utoipa::path(
    get,
    path = "/admin/tokens",
    tag = TAG,
    operation_id = "listTokens",
    summary = "List service tokens (never a secret or a hash), oldest first",
    responses((status = 200, description = "Every token", body = TokenList))
)]
pub async fn list(State(state): State<AdminState>) -> Result<Json<TokenList>, Problem> {
    let pg = state.postgres()?;
    admin::list_tokens(pg)
        .await
        .map(|items| Json(TokenList { items }))
        .map_err(|e| problem(e, "token"))
}

#[utoipa::path(
    get,
    path = "/admin/tokens/{ref}",
    tag = TAG,
    operation_id = "getToken",
    summary = "Get a service token (never its secret)",
    params(RefPath),
    responses(
        (status = 200, description = "The token", body = TokenInfo),
        (status = 404, description = "No such token", body = Problem,
         content_type = "application/problem+json"),
    )
)]
pub async fn get(
    State(state): State<AdminState>,
    RefPath(token_ref): RefPath,
) -> Result<Json<TokenInfo>, Problem> {
    let pg = state.postgres()?;
    admin::get_token(pg, &token_ref)
        .await
        .map(Json)
        .map_err(|e| problem(e, "token"))
}

#[utoipa::path(
    post,
    path = "/admin/tokens/{ref}/revoke",
    tag = TAG,
    operation_id = "revokeToken",
    summary = "Revoke a service token: refused from the next request on, on every instance",
    params(RefPath),
    responses(
        (status = 200, description = "The revoked token", body = TokenInfo),
        (status = 404, description = "No such token", body = Problem,
         content_type = "application/problem+json"),
    )
)]
pub async fn revoke(
    State(state): State<AdminState>,
    RefPath(token_ref): RefPath,
) -> Result<Json<TokenInfo>, Problem> {
    let pg = state.postgres()?;
    admin::revoke_token(pg, &token_ref)
        .await
        .map(Json)
        .map_err(|e| problem(e, "token"))
}
