//! The administrative path's records: tenants and service tokens. These run
//! as the migration role ([`Postgres::begin_admin`]), whose policies see
//! every tenant; the serving role cannot read `strata_service_tokens` at
//! all (it authenticates through `strata_authenticate()` only).
//!
//! The admin API (`/admin/tenants`, `/admin/tokens`) and the CLI (`strata
//! tenant ...`, `strata token ...`) both call these functions: one
//! implementation, two front ends. Their types serialize as both show them
//! (camelCase JSON, refs only).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::RecordError;
use super::auth::{new_token, secret_sha256};
use super::page::{Cursor, Page};
use crate::stores::postgres::Postgres;

/// Why an administrative operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A value the caller gave is not acceptable (`field` names it as the
    /// admin API's JSON does).
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// A token was asked for a tenant that does not exist or is deleted.
    #[error("no active or suspended tenant has the ref {0}")]
    UnknownTenant(String),
    #[error("cannot read the operating system's random source: {0}")]
    Random(String),
    #[error(transparent)]
    Record(#[from] RecordError),
}

impl From<sqlx::Error> for AdminError {
    fn from(error: sqlx::Error) -> Self {
        AdminError::Record(error.into())
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> AdminError {
    AdminError::Invalid {
        field,
        message: message.into(),
    }
}

/// A ULID in its canonical form, as every ref strata hands out.
pub fn check_ref(field: &'static str, value: &str) -> Result<(), AdminError> {
    match value.parse::<ulid::Ulid>() {
        Ok(parsed) if parsed.to_string() == value => Ok(()),
        _ => Err(invalid(
            field,
            "must be a ULID (26 upper-case Crockford base32 characters)",
        )),
    }
}

// ---------------------------------------------------------------- tenants

/// A tenant's lifecycle: active ⇄ suspended → deleted (soft; purged later).
/// PostgreSQL's state machine (`strata_transitions`) judges every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    Active,
    Suspended,
    Deleted,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Deleted => "deleted",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "active" => Some(Self::Active),
            "suspended" => Some(Self::Suspended),
            "deleted" => Some(Self::Deleted),
            _ => None,
        }
    }
}

/// A new tenant's settings.
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub slug: String,
    pub name: String,
    pub plan: String,
}

impl NewTenant {
    /// The same rules as the table's checks, checked first so that a bad
    /// value is refused with the field's name.
    pub fn validate(&self) -> Result<(), AdminError> {
        let slug = self.slug.as_bytes();
        let slug_ok = (1..=63).contains(&slug.len())
            && slug
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
            && slug.first() != Some(&b'-')
            && slug.last() != Some(&b'-');
        if !slug_ok {
            return Err(invalid(
                "slug",
                "1-63 lower-case letters, digits and dashes, not starting or ending with a dash",
            ));
        }
        if !(1..=200).contains(&self.name.trim().chars().count()) {
            return Err(invalid("name", "1-200 characters, not only blanks"));
        }
        if !(1..=64).contains(&self.plan.len()) {
            return Err(invalid("plan", "1-64 bytes"));
        }
        Ok(())
    }
}

/// Live (not soft-deleted) rows a tenant owns, per table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordCounts {
    pub activities: i64,
    pub blog_posts: i64,
    pub social_posts: i64,
    pub onboarding_runs: i64,
    pub strategies: i64,
    pub contracts: i64,
    pub tool_calls: i64,
    /// The tenant's own skills (global templates are nobody's).
    pub skills: i64,
    pub integrations: i64,
    pub usage_events: i64,
}

impl RecordCounts {
    /// `(table, count)` in [`COUNTED`] order.
    pub fn per_table(&self) -> [(&'static str, i64); 10] {
        let values = [
            self.activities,
            self.blog_posts,
            self.social_posts,
            self.onboarding_runs,
            self.strategies,
            self.contracts,
            self.tool_calls,
            self.skills,
            self.integrations,
            self.usage_events,
        ];
        std::array::from_fn(|i| (COUNTED[i], values[i]))
    }

    pub fn total(&self) -> i64 {
        self.per_table().iter().map(|(_, n)| n).sum()
    }
}

/// The tables [`RecordCounts`] counts; each has a `(tenant_id, ref_id)
/// WHERE deleted_on IS NULL` index, so each count is an index-only scan of
/// that tenant's live rows.
const COUNTED: [&str; 10] = [
    "activities",
    "blog_posts",
    "social_posts",
    "onboarding_runs",
    "strategies",
    "contracts",
    "tool_calls",
    "skills",
    "integrations",
    "usage_events",
];

/// A tenant as the admin API and the CLI show it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    /// The tenant's ref (ULID).
    #[serde(rename = "ref")]
    pub tenant_ref: String,
    pub slug: String,
    pub name: String,
    pub plan: String,
    #[schema(value_type = TenantStatus)]
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// Live (not soft-deleted) rows per table.
    #[sqlx(flatten)]
    pub counts: RecordCounts,
}

/// `SELECT` of [`Tenant`] from `tenants tn`, counts included: one statement
/// whatever the number of tenants.
fn tenant_select() -> String {
    let counts: Vec<String> = COUNTED
        .iter()
        .map(|table| {
            format!(
                "(SELECT count(*) FROM {table} x \
                  WHERE x.tenant_id = tn.id AND x.deleted_on IS NULL) AS {table}"
            )
        })
        .collect();
    format!(
        "SELECT tn.ref_id::text AS tenant_ref, tn.slug, tn.name, tn.plan, tn.status, \
         tn.created_on AS created_at, tn.updated_on AS updated_at, \
         tn.deleted_on AS deleted_at, {} FROM tenants tn",
        counts.join(", ")
    )
}

async fn fetch_tenant(
    pg: &Postgres,
    tx: &mut super::Tx,
    tenant_ref: &str,
) -> Result<Option<Tenant>, sqlx::Error> {
    pg.query_as(sqlx::AssertSqlSafe(format!(
        "{} WHERE tn.ref_id = $1::text",
        tenant_select()
    )))
    .bind(tenant_ref)
    .fetch_optional(&mut **tx)
    .await
}

/// Creates an active tenant.
pub async fn create_tenant(pg: &Postgres, tenant: &NewTenant) -> Result<Tenant, AdminError> {
    tenant.validate()?;
    let tenant_ref = ulid::Ulid::generate().to_string();
    let mut tx = pg.begin_admin().await?;
    pg.query("INSERT INTO tenants (ref_id, slug, name, plan) VALUES ($1, $2, $3, $4)")
        .bind(&tenant_ref)
        .bind(&tenant.slug)
        .bind(tenant.name.trim())
        .bind(&tenant.plan)
        .execute(&mut *tx)
        .await?;
    let created = fetch_tenant(pg, &mut tx, &tenant_ref)
        .await?
        .ok_or(RecordError::NotFound)?;
    tx.commit().await?;
    tracing::info!(tenant = %tenant_ref, slug = %tenant.slug, "tenant created");
    Ok(created)
}

/// One tenant, whatever its status (a deleted one until it is purged).
pub async fn get_tenant(pg: &Postgres, tenant_ref: &str) -> Result<Tenant, AdminError> {
    check_ref("ref", tenant_ref)?;
    let mut tx = pg.begin_admin().await?;
    let tenant = fetch_tenant(pg, &mut tx, tenant_ref).await?;
    tx.commit().await?;
    Ok(tenant.ok_or(RecordError::NotFound)?)
}

/// One page of tenants in ref order (oldest first), optionally of one
/// status. Deleted tenants are listed until they are purged.
pub async fn list_tenants(
    pg: &Postgres,
    status: Option<TenantStatus>,
    limit: u32,
    cursor: Option<&Cursor>,
) -> Result<Page<Tenant>, AdminError> {
    let mut tx = pg.begin_admin().await?;
    let rows: Vec<Tenant> = pg
        .query_as(sqlx::AssertSqlSafe(format!(
            "{} WHERE ($1::text IS NULL OR tn.status = $1) \
               AND ($2::text IS NULL OR tn.ref_id > $2::text) \
             ORDER BY tn.ref_id LIMIT $3",
            tenant_select()
        )))
        .bind(status.map(TenantStatus::as_str))
        .bind(cursor.map(|c| c.after.to_string()))
        .bind(i64::from(limit) + 1)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Page::from_rows(rows, limit, |t| {
        t.tenant_ref.parse().unwrap_or_default()
    }))
}

/// Moves a tenant to `to`: PostgreSQL's state machine refuses an illegal
/// change (ST409 → [`RecordError::IllegalTransition`] with the allowed
/// states); asking for the state it is in changes nothing. `deleted` also
/// sets `deleted_on`. The data API sees the change on its next request, on
/// every instance: `strata_authenticate()` reads the tenant's row on each.
pub async fn set_tenant_status(
    pg: &Postgres,
    tenant_ref: &str,
    to: TenantStatus,
) -> Result<Tenant, AdminError> {
    check_ref("ref", tenant_ref)?;
    let mut tx = pg.begin_admin().await?;
    // The row lock orders concurrent changes of one tenant.
    let current: Option<(String,)> = pg
        .query_as("SELECT status FROM tenants WHERE ref_id = $1::text FOR UPDATE")
        .bind(tenant_ref)
        .fetch_optional(&mut *tx)
        .await?;
    let Some((current,)) = current else {
        return Err(RecordError::NotFound.into());
    };
    if current != to.as_str() {
        pg.query(
            "UPDATE tenants SET status = $2::text, \
             deleted_on = CASE WHEN $2::text = 'deleted' THEN now() ELSE deleted_on END \
             WHERE ref_id = $1::text",
        )
        .bind(tenant_ref)
        .bind(to.as_str())
        .execute(&mut *tx)
        .await?;
    }
    let tenant = fetch_tenant(pg, &mut tx, tenant_ref)
        .await?
        .ok_or(RecordError::NotFound)?;
    tx.commit().await?;
    if current != to.as_str() {
        tracing::info!(tenant = %tenant_ref, from = %current, to = to.as_str(), "tenant status changed");
    }
    Ok(tenant)
}

// ----------------------------------------------------------------- tokens

/// A service token as listed: never its secret (not stored) nor its hash.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    /// The token's ref (ULID).
    #[serde(rename = "ref")]
    pub token_ref: String,
    pub name: String,
    /// `None`: the token may act on every tenant (`allTenants`).
    pub tenant_ref: Option<String>,
    pub all_tenants: bool,
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

/// A new service token's settings.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub scope: TokenScope,
    pub expires_in_days: Option<u32>,
}

/// The longest expiry a token may be given: 100 years.
pub const MAX_EXPIRY_DAYS: u32 = 36_500;

impl NewToken {
    pub fn validate(&self) -> Result<(), AdminError> {
        if !(1..=200).contains(&self.name.trim().chars().count()) {
            return Err(invalid("name", "1-200 characters, not only blanks"));
        }
        if let Some(days) = self.expires_in_days
            && !(1..=MAX_EXPIRY_DAYS).contains(&days)
        {
            return Err(invalid(
                "expiresInDays",
                format!("1-{MAX_EXPIRY_DAYS} days (leave it out for no expiry)"),
            ));
        }
        if let TokenScope::Tenant(tenant_ref) = &self.scope {
            check_ref("tenant", tenant_ref)?;
        }
        Ok(())
    }
}

/// A token just made: the secret is here once and never again.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IssuedToken {
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The bearer secret; only its SHA-256 is stored.
    #[serde(rename = "token")]
    pub secret: String,
}

/// Makes a service token: 256 random bits from the operating system,
/// stored as SHA-256.
pub async fn issue_token(pg: &Postgres, token: &NewToken) -> Result<IssuedToken, AdminError> {
    token.validate()?;
    let (secret, _) = new_token().map_err(|e| AdminError::Random(e.to_string()))?;
    let info = create_token(
        pg,
        &secret,
        token.name.trim(),
        &token.scope,
        token.expires_in_days,
    )
    .await?;
    tracing::info!(token = %info.token_ref, name = %info.name, tenant = ?info.tenant_ref, "service token created");
    Ok(IssuedToken { info, secret })
}

const TOKEN_COLUMNS: &str = "t.ref_id::text AS token_ref, t.name, tn.ref_id::text AS tenant_ref, \
     t.tenant_id IS NULL AS all_tenants, \
     t.created_on AS created_at, t.expires_on AS expires_at, t.revoked_on AS revoked_at";

/// Stores a token whose secret the caller made ([`new_token`]):
/// only its SHA-256 is kept. [`issue_token`] is the usual way in.
pub async fn create_token(
    pg: &Postgres,
    secret: &str,
    name: &str,
    scope: &TokenScope,
    expires_in_days: Option<u32>,
) -> Result<TokenInfo, AdminError> {
    let token_ref = ulid::Ulid::generate().to_string();
    let mut tx = pg.begin_admin().await?;
    let tenant_id: Option<uuid::Uuid> = match scope {
        TokenScope::AllTenants => None,
        TokenScope::Tenant(tenant_ref) => Some(
            pg.query_as::<(uuid::Uuid,)>(
                "SELECT id FROM tenants WHERE ref_id = $1::text AND deleted_on IS NULL",
            )
            .bind(tenant_ref)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| AdminError::UnknownTenant(tenant_ref.clone()))?
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
         LEFT JOIN tenants tn ON tn.id = t.tenant_id WHERE t.ref_id = $1::text"
    )))
    .bind(token_ref)
    .fetch_optional(&mut **tx)
    .await
}

/// Every token, oldest first (revoked and expired ones too: they say when).
pub async fn list_tokens(pg: &Postgres) -> Result<Vec<TokenInfo>, AdminError> {
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

/// One token.
pub async fn get_token(pg: &Postgres, token_ref: &str) -> Result<TokenInfo, AdminError> {
    check_ref("ref", token_ref)?;
    let mut tx = pg.begin_admin().await?;
    let token = fetch_token(pg, &mut tx, token_ref).await?;
    tx.commit().await?;
    Ok(token.ok_or(RecordError::NotFound)?)
}

/// Revokes a token (again: no change, the first revocation time stays).
/// Every instance refuses it from its next request on: authentication
/// reads the table on every request, nothing is cached.
pub async fn revoke_token(pg: &Postgres, token_ref: &str) -> Result<TokenInfo, AdminError> {
    check_ref("ref", token_ref)?;
    let mut tx = pg.begin_admin().await?;
    let revoked = pg
        .query(
            "UPDATE strata_service_tokens SET revoked_on = now() \
             WHERE ref_id = $1::text AND revoked_on IS NULL",
        )
        .bind(token_ref)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let info = fetch_token(pg, &mut tx, token_ref)
        .await?
        .ok_or(RecordError::NotFound)?;
    tx.commit().await?;
    if revoked > 0 {
        tracing::info!(token = %token_ref, "service token revoked");
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(slug: &str, name: &str) -> NewTenant {
        NewTenant {
            slug: slug.into(),
            name: name.into(),
            plan: "basic".into(),
        }
    }

    fn field(result: Result<(), AdminError>) -> Option<&'static str> {
        match result {
            Err(AdminError::Invalid { field, .. }) => Some(field),
            _ => None,
        }
    }

    #[test]
    fn tenant_values_are_checked_like_the_table_does() {
        assert!(tenant("acme", "Acme").validate().is_ok());
        assert!(tenant("a", "A").validate().is_ok());
        assert!(tenant(&"a".repeat(63), "A").validate().is_ok());
        for slug in ["", "-a", "a-", "Acme", "a_b", "a b", &"a".repeat(64)] {
            assert_eq!(
                field(tenant(slug, "Acme").validate()),
                Some("slug"),
                "{slug:?}"
            );
        }
        assert_eq!(field(tenant("acme", "  ").validate()), Some("name"));
        assert_eq!(
            field(tenant("acme", &"n".repeat(201)).validate()),
            Some("name")
        );
    }

    #[test]
    fn token_values_are_checked() {
        let token = |name: &str, days: Option<u32>, scope: TokenScope| NewToken {
            name: name.into(),
            scope,
            expires_in_days: days,
        };
        let ok = token("svc", Some(30), TokenScope::AllTenants);
        assert!(ok.validate().is_ok());
        assert_eq!(
            field(token(" ", None, TokenScope::AllTenants).validate()),
            Some("name")
        );
        for days in [0, MAX_EXPIRY_DAYS + 1] {
            assert_eq!(
                field(token("svc", Some(days), TokenScope::AllTenants).validate()),
                Some("expiresInDays")
            );
        }
        let lower = "01arz3ndektsv4rrffq69g5fav".to_string();
        assert_eq!(
            field(token("svc", None, TokenScope::Tenant(lower)).validate()),
            Some("tenant"),
            "refs are canonical upper-case ULIDs"
        );
    }

    #[test]
    fn the_count_query_counts_every_counted_table() {
        let sql = tenant_select();
        for table in COUNTED {
            assert!(sql.contains(&format!("FROM {table} x")), "{table}");
        }
    }

    #[test]
    fn statuses_round_trip() {
        for status in [
            TenantStatus::Active,
            TenantStatus::Suspended,
            TenantStatus::Deleted,
        ] {
            assert_eq!(TenantStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(TenantStatus::parse("gone"), None);
    }
}
