//! Strategies: draft → pending_approval → approved / rejected; approved →
//! active → superseded. At most one is active per tenant: activating one
//! supersedes the active one in the same transaction.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::records::table::{Before, Effect, Field, Kind, Table};
use crate::records::wire::present;

pub const TABLE: Table = Table {
    name: "strategies",
    collection: "strategies",
    fields: &[
        // Versions count up per tenant (deleted ones included, as the
        // unique key does).
        Field::new("version", "version", Kind::Integer)
            .create()
            .default(
                "(SELECT coalesce(max(s.version), 0) + 1 FROM strategies s WHERE s.tenant_id = $1)",
            ),
        Field::new("effective_from", "effective_from", Kind::Timestamp)
            .create()
            .update(),
        Field::new("effective_until", "effective_until", Kind::Timestamp)
            .create()
            .update(),
        Field::new("approved_by", "approved_by", Kind::Text).transition(),
        Field::new("approved_at", "approved_on", Kind::Timestamp),
        // Set by the split path only (PUT .../content): a pointer a client
        // could set might point at nothing.
        Field::new("content_ref", "content_ref", Kind::Ulid),
    ],
    has_status: true,
    globals: false,
    on_insert: &[],
    effects: &[
        // Who approved: the name sent, else the acting token's name.
        Effect {
            to: &["approved"],
            set: "approved_by = coalesce($3->>'approvedBy', $4), approved_on = now()",
        },
        Effect {
            to: &["active"],
            set: "effective_from = coalesce(t.effective_from, now())",
        },
    ],
    // One active strategy per tenant: the one active before is superseded.
    before: &[Before {
        to: &["active"],
        which: "t.status = 'active'",
        moves_to: "superseded",
        set: "effective_until = CASE WHEN t.effective_from IS NULL OR t.effective_from < now() \
                THEN now() ELSE t.effective_from + interval '1 microsecond' END",
    }],
};

crate::status_enum!(
    /// A strategy's state.
    StrategyStatus { Draft, PendingApproval, Approved, Rejected, Active, Superseded }
);

#[derive(Debug, Clone, sqlx::FromRow, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Strategy {
    #[serde(rename = "ref")]
    pub record_ref: String,
    /// 1, 2, 3… per tenant.
    pub version: i32,
    #[schema(value_type = StrategyStatus)]
    pub status: String,
    pub effective_from: Option<DateTime<Utc>>,
    pub effective_until: Option<DateTime<Utc>>,
    pub approved_by: Option<String>,
    pub approved_at: Option<DateTime<Utc>>,
    /// The ULID of the strategy's current content document
    /// (`strategies_content`), set by `PUT .../content` (read-only).
    #[schema(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub content_ref: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub etag: String,
}

crate::versioned!(Strategy);

#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateStrategy {
    /// Default: the tenant's highest version + 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub version: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_from: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_until: Option<DateTime<Utc>>,
}

/// Changes to a strategy: absent fields stay, `null` clears.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateStrategy {
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub effective_from: Option<Option<DateTime<Utc>>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub effective_until: Option<Option<DateTime<Utc>>>,
}

/// A requested status change of a strategy. Activating one supersedes the
/// tenant's active strategy in the same transaction.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StrategyTransition {
    pub to: StrategyStatus,
    /// Who approved (with `approved`); default: the acting token's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1)]
    pub approved_by: Option<String>,
}
