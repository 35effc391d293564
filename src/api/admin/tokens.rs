//! `/admin/tokens`: the data API's service tokens. Create answers the secret
//! once (`Cache-Control: no-store`); list and get never show a secret or a
//! hash; revoke takes effect on the next request on every instance.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::body::{AdminJson, RefPath};
use super::{AdminState, problem};
use crate::api::problem::Problem;
use crate::records::admin::{self, NewToken, TokenInfo, TokenScope};

/// `tenant` (a ref) or `allTenants: true`, exactly one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateToken {
    name: String,
    tenant: Option<String>,
    #[serde(default)]
    all_tenants: bool,
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

#[derive(Debug, Serialize)]
pub struct TokenList {
    items: Vec<TokenInfo>,
}

/// Every token, oldest first; revoked and expired ones say when.
pub async fn list(State(state): State<AdminState>) -> Result<Json<TokenList>, Problem> {
    let pg = state.postgres()?;
    admin::list_tokens(pg)
        .await
        .map(|items| Json(TokenList { items }))
        .map_err(|e| problem(e, "token"))
}

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
