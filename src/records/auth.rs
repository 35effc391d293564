//! Authenticating a data API request and opening its unit of work, in one
//! round trip after `BEGIN`: `strata_authenticate()` (migration 0006, a
//! SECURITY DEFINER function of the migration role) checks the token's hash
//! (not revoked, not expired) and whether it may act on the tenant of the
//! path; the same statement sets `strata.tenant_id` transaction-locally for
//! row-level security. A revoked token is therefore refused on the very
//! next request, on every instance: nothing is cached.

use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{RecordError, Tx};
use crate::stores::postgres::Postgres;

/// Who is acting: the service token (its name goes into audit trails).
#[derive(Debug, Clone)]
pub struct Actor {
    pub token_ref: String,
    pub token_name: String,
}

/// An authenticated request's unit of work: its transaction, on which the
/// tenant is already set.
pub struct Session {
    pub tx: Tx,
    pub tenant_id: uuid::Uuid,
    pub actor: Actor,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("unknown, revoked or expired token")]
    UnknownToken,
    /// No such tenant, or one this token may not act on (the API does not
    /// tell the two apart).
    #[error("no such tenant")]
    UnknownTenant,
    #[error("the tenant is suspended")]
    TenantSuspended,
    #[error(transparent)]
    Store(#[from] RecordError),
}

impl From<sqlx::Error> for AuthError {
    fn from(error: sqlx::Error) -> Self {
        AuthError::Store(error.into())
    }
}

/// The SHA-256 of a token, as lowercase hex (`admin.token_sha256`).
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Bytes of randomness in a token: 256 bits.
const TOKEN_BYTES: usize = 32;

/// A new random token (256 bits from the operating system's random source,
/// hex) and its SHA-256 as hex.
pub fn new_token() -> Result<(String, String), getrandom::Error> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes)?;
    let token = format!("strata_{}", hex::encode(bytes));
    let hash = token_sha256(&token);
    Ok((token, hash))
}

/// The SHA-256 of a presented token, as stored in `strata_service_tokens`.
pub fn secret_sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Opens the unit of work of a request by `token` on `tenant_ref`;
/// `read_only` for GET. Nothing stays open when it fails.
pub async fn begin(
    pg: &Postgres,
    token: &str,
    tenant_ref: &str,
    read_only: bool,
) -> Result<Session, AuthError> {
    let mut tx = if read_only {
        pg.begin_read_only().await?
    } else {
        pg.begin().await?
    };
    // The function also sets strata.tenant_id (transaction-local) on "ok".
    let (outcome, token_ref, token_name, tenant_id) =
        authenticate(pg, &mut tx, token, tenant_ref).await?;
    let refused = match (outcome.as_str(), tenant_id, token_ref, token_name) {
        ("ok", Some(tenant_id), Some(token_ref), Some(token_name)) => {
            return Ok(Session {
                tx,
                tenant_id,
                actor: Actor {
                    token_ref,
                    token_name,
                },
            });
        }
        ("unknown_tenant", ..) => AuthError::UnknownTenant,
        ("tenant_suspended", ..) => AuthError::TenantSuspended,
        ("unknown_token", ..) => AuthError::UnknownToken,
        (other, ..) => AuthError::Store(RecordError::Store(format!(
            "strata_authenticate answered {other:?}"
        ))),
    };
    tx.rollback().await?;
    Err(refused)
}

/// What `strata_authenticate()` answered: outcome, token ref and name,
/// tenant id.
type Answer = (String, Option<String>, Option<String>, Option<uuid::Uuid>);

/// Calls `strata_authenticate()` in `tx`. Through PgBouncer every bound
/// statement costs two round trips (parse and describe, then bind and
/// execute: transaction pooling allows no cached statement), so this call,
/// made by every request, goes as one simple query instead. Its two values
/// are inlined as literals that cannot carry SQL: the hash as hex digits,
/// the tenant's ref only when it is letters and digits (a ULID, as the API
/// checked; anything else takes the bound statement).
async fn authenticate(
    pg: &Postgres,
    tx: &mut Tx,
    token: &str,
    tenant_ref: &str,
) -> Result<Answer, sqlx::Error> {
    let hash = secret_sha256(token);
    if tenant_ref.is_empty() || !tenant_ref.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return pg
            .query_as(
                "SELECT outcome, token_ref, token_name, tenant_id \
                 FROM strata_authenticate($1, $2)",
            )
            .bind(&hash[..])
            .bind(tenant_ref)
            .fetch_one(&mut **tx)
            .await;
    }
    let sql = format!(
        "SELECT outcome, token_ref, token_name, tenant_id \
         FROM strata_authenticate('\\x{}'::bytea, '{tenant_ref}')",
        hex::encode(hash)
    );
    let row = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .fetch_one(&mut **tx)
        .await?;
    Ok((
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
    ))
}
