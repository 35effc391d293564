//! `POST/GET .../integration-payloads`: append and list an integration's
//! payloads (MongoDB, with a TTL); the work is in
//! [`crate::logs::payloads`].

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::DataState;
use super::body::JsonBody;
use super::extract::{QueryParams, Work, parse_ref};
use crate::api::problem::Problem;
use crate::logs::payloads::{self, IntegrationPayload, NewIntegrationPayload, Scope};

const CURSOR: &str = "p1:";

fn is_entity(text: &str) -> bool {
    let b = text.as_bytes();
    (1..=64).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

/// The payload is stored as sent; `entity` and `entityRef` go together.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenantRef}/integration-payloads",
    tag = "integrations",
    operation_id = "appendIntegrationPayload",
    summary = "Append a payload an integration sent or received",
    params(super::extract::TenantPath),
    request_body = NewIntegrationPayload,
    responses(
        (status = 201, description = "Appended", body = IntegrationPayload),
        (status = 422, description = "Invalid fields, an unknown integration, too large",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn append(
    mut work: Work,
    State(state): State<DataState>,
    JsonBody(new): JsonBody<NewIntegrationPayload>,
) -> Result<(StatusCode, Json<IntegrationPayload>), Problem> {
    parse_ref("integrationRef", &new.integration_ref)
        .map_err(|_| Problem::invalid_field("integrationRef", "must be a ULID"))?;
    match (&new.entity, &new.entity_ref) {
        (None, None) => {}
        (Some(entity), Some(entity_ref)) => {
            if !is_entity(entity) {
                return Err(Problem::invalid_field(
                    "entity",
                    "must match ^[a-z][a-z0-9_]{0,63}$",
                ));
            }
            parse_ref("entityRef", entity_ref)
                .map_err(|_| Problem::invalid_field("entityRef", "must be a ULID"))?;
        }
        (Some(_), None) => return Err(Problem::invalid_field("entityRef", "required with entity")),
        (None, Some(_)) => return Err(Problem::invalid_field("entity", "required with entityRef")),
    }
    // The integration must be the tenant's and live (row-level security
    // and the tenant filter both say so).
    let (live,): (bool,) = work
        .pg
        .query_as(
            "SELECT EXISTS (SELECT 1 FROM integrations WHERE tenant_id = $1 \
             AND ref_id = $2 AND deleted_on IS NULL)",
        )
        .bind(work.tenant_id)
        .bind(&new.integration_ref)
        .fetch_one(&mut *work.tx)
        .await
        .map_err(|e| Problem::from(crate::records::RecordError::from(e)))?;
    if !live {
        return Err(Problem::invalid_field(
            "integrationRef",
            "no such integration",
        ));
    }
    let stored = payloads::append(
        state.mongo()?,
        &work.tenant_ref,
        &new,
        state.limits.max_payload_bytes,
    )
    .await?;
    work.commit().await?;
    Ok((StatusCode::CREATED, Json(stored)))
}

/// Which payloads: exactly one of the two.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct PayloadQuery {
    /// An integration's payloads.
    #[param(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub integration_ref: Option<String>,
    /// The payloads about one record.
    #[param(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub entity_ref: Option<String>,
    /// Payloads per page (1–200, default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next` cursor of the previous page (opaque).
    pub cursor: Option<String>,
}

/// A page of payloads, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct PayloadPage {
    pub items: Vec<IntegrationPayload>,
    /// The cursor of the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{tenantRef}/integration-payloads",
    tag = "integrations",
    operation_id = "listIntegrationPayloads",
    summary = "List payloads by integration or by entity, newest first",
    params(super::extract::TenantPath, PayloadQuery),
    responses(
        (status = 200, description = "One page; `next` continues it", body = PayloadPage),
        (status = 422, description = "Invalid parameters",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    work: Work,
    State(state): State<DataState>,
    QueryParams(query): QueryParams<PayloadQuery>,
) -> Result<Json<PayloadPage>, Problem> {
    let ulid = |field: &str, value: &str| {
        parse_ref(field, value).map_err(|_| Problem::invalid_field(field, "must be a ULID"))
    };
    let scope = match (&query.integration_ref, &query.entity_ref) {
        (Some(r), None) => Scope::Integration(ulid("integrationRef", r)?),
        (None, Some(r)) => Scope::Entity(ulid("entityRef", r)?),
        _ => {
            return Err(Problem::invalid_field(
                "integrationRef",
                "give exactly one of integrationRef and entityRef",
            ));
        }
    };
    let limit = match query.limit {
        None => 50,
        Some(n @ 1..=200) => n,
        Some(_) => return Err(Problem::invalid_field("limit", "must be from 1 to 200")),
    };
    let before = match &query.cursor {
        None => None,
        Some(cursor) => Some(
            hex::decode(cursor)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|t| t.strip_prefix(CURSOR).map(str::to_string))
                .filter(|r| parse_ref("cursor", r).is_ok())
                .ok_or_else(|| {
                    Problem::invalid_field("cursor", "not a cursor strata handed out")
                })?,
        ),
    };
    let (items, more) = payloads::list(
        state.mongo()?,
        &work.tenant_ref,
        &scope,
        before.as_deref(),
        limit,
    )
    .await?;
    // Nothing was read from PostgreSQL; the transaction only authenticated.
    work.commit().await?;
    let next = items
        .last()
        .filter(|_| more)
        .map(|last| hex::encode(format!("{CURSOR}{}", last.record_ref)));
    Ok(Json(PayloadPage { items, next }))
}
