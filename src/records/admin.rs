//! The administrative path's records: tenants and service tokens. These run
//! as the migration role ([`Postgres::begin_admin`]), whose policies see
//! every tenant; the serving role cannot read `strata_service_tokens` at
//! all (it authenticates through `strata_authenticate()` only).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::RecordError;
use super::auth::secret_sha256;
use crate::stores::postgres::Postgres;

/// A new tenant's settings.
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub slug: String,
    pub name: String,
    pub plan: String,
}

/// Creates an active tenant; returns its ref.
pub async fn create_tenant(pg: &Postgres, tenant: &NewTenant) -> Result<String, RecordError> {
    let tenant_ref = ulid::Ulid::generate().to_string();
    let mut tx = pg.begin_admin().await?;
    pg.query("INSERT INTO tenants (ref_id, slug, name, plan) VALUES ($1, $2, $3, $4)")
        .bind(&tenant_ref)
        .bind(&tenant.slug)
        .bind(&tenant.name)
        .bind(&tenant.plan)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(tenant_ref)
}

/// Moves a tenant to `status` (`active`, `suspended`); PostgreSQL's state
/// machine refuses anything else.
pub async fn set_tenant_status(
    pg: &Postgres,
    tenant_ref: &str,
    status: &str,
) -> Result<(), RecordError> {
    let mut tx = pg.begin_admin().await?;
    let changed = pg
        .query("UPDATE tenants SET status = $2 WHERE ref_id = $1 AND deleted_on IS NULL")
        .bind(tenant_ref)
        .bind(status)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if changed == 0 {
        return Err(RecordError::NotFound);
    }
    tx.commit().await?;
    Ok(())
}

/// A service token as listed (never its secret, which is not stored).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    #[serde(rename = "ref")]
    pub token_ref: String,
    pub name: String,
    /// `None`: the token may act on every tenant.
    pub tenant_ref: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Whom a new token may act for.
#[derive(Debug, Clone)]
pub enum TokenScope {
    Tenant(String),
    AllTenants,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no active or suspended tenant has the ref {0}")]
    UnknownTenant(String),
    #[error(transparent)]
    Record(#[from] RecordError),
}

impl From<sqlx::Error> for TokenError {
    fn from(error: sqlx::Error) -> Self {
        TokenError::Record(error.into())
    }
}

const TOKEN_COLUMNS: &str = "t.ref_id::text AS token_ref, t.name, tn.ref_id::text AS tenant_ref, \
     t.created_on AS created_at, t.expires_on AS expires_at, t.revoked_on AS revoked_at";

/// Stores a token whose secret the caller made (`api::auth::new_token`,
/// shown once): only its SHA-256 is kept.
pub async fn create_token(
    pg: &Postgres,
    secret: &str,
    name: &str,
    scope: &TokenScope,
    expires_in_days: Option<u32>,
) -> Result<TokenInfo, TokenError> {
    let token_ref = ulid::Ulid::generate().to_string();
    let mut tx = pg.begin_admin().await?;
    let tenant_id: Option<uuid::Uuid> = match scope {
        TokenScope::AllTenants => None,
        TokenScope::Tenant(tenant_ref) => Some(
            pg.query_as::<(uuid::Uuid,)>(
                "SELECT id FROM tenants WHERE ref_id = $1 AND deleted_on IS NULL",
            )
            .bind(tenant_ref)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| TokenError::UnknownTenant(tenant_ref.clone()))?
            .0,
        ),
    };
    pg.query(
        "INSERT INTO strata_service_tokens (ref_id, name, secret_sha256, tenant_id, expires_on) \
         VALUES ($1, $2, $3, $4, now() + make_interval(days => $5))",
    )
    .bind(&token_ref)
    .bind(name)
    .bind(&secret_sha256(secret)[..])
    .bind(tenant_id)
    .bind(expires_in_days.map(|d| d as i32))
    .execute(&mut *tx)
    .await?;
    let info = fetch_token(pg, &mut tx, &token_ref)
        .await?
        .ok_or(RecordError::NotFound)?;
    tx.commit().await?;
    Ok(info)
}

async fn fetch_token(
    pg: &Postgres,
    tx: &mut super::Tx,
    token_ref: &str,
) -> Result<Option<TokenInfo>, sqlx::Error> {
    pg.query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {TOKEN_COLUMNS} FROM strata_service_tokens t \
         LEFT JOIN tenants tn ON tn.id = t.tenant_id WHERE t.ref_id = $1"
    )))
    .bind(token_ref)
    .fetch_optional(&mut **tx)
    .await
}

/// Every token, oldest first.
pub async fn list_tokens(pg: &Postgres) -> Result<Vec<TokenInfo>, RecordError> {
    let mut tx = pg.begin_admin().await?;
    let tokens = pg
        .query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM strata_service_tokens t \
             LEFT JOIN tenants tn ON tn.id = t.tenant_id ORDER BY t.ref_id"
        )))
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(tokens)
}

/// Revokes a token (again: no change). Every instance refuses it from its
/// next request on: authentication reads the table on every request.
pub async fn revoke_token(pg: &Postgres, token_ref: &str) -> Result<TokenInfo, RecordError> {
    let mut tx = pg.begin_admin().await?;
    pg.query(
        "UPDATE strata_service_tokens SET revoked_on = now() \
         WHERE ref_id = $1 AND revoked_on IS NULL",
    )
    .bind(token_ref)
    .execute(&mut *tx)
    .await?;
    let info = fetch_token(pg, &mut tx, token_ref)
        .await?
        .ok_or(RecordError::NotFound)?;
    tx.commit().await?;
    Ok(info)
}
