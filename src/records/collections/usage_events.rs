//! Usage events: append-only (no update, no delete): billing sums them per
//! tenant, metric and month.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::records::table::{Field, Kind, Table};

pub const TABLE: Table = Table {
    name: "usage_events",
    collection: "usage-events",
    fields: &[
        Field::new("activity_ref", "activity_id", Kind::ActivityRef).create(),
        Field::new("metric", "metric", Kind::Text).create(),
        Field::new("quantity", "quantity", Kind::BigInt).create(),
        Field::new("occurred_at", "occurred_on", Kind::Timestamp).create(),
    ],
    has_status: false,
    globals: false,
    on_insert: &[],
    effects: &[],
    before: &[],
};

#[derive(Debug, Clone, sqlx::FromRow, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageEvent {
    #[serde(rename = "ref")]
    pub record_ref: String,
    #[schema(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub activity_ref: Option<String>,
    pub metric: String,
    pub quantity: i64,
    pub occurred_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub etag: String,
}
crate::versioned!(UsageEvent);

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateUsageEvent {
    /// The event's ref, made by the client (a ULID), so that a retry
    /// records nothing new (200 with the event). Default: a new one (then
    /// a retry records the event again).
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub record_ref: Option<String>,
    /// e.g. `tokens.input`: lower-case, digits, `_` and `.`.
    #[schema(pattern = "^[a-z][a-z0-9_.]{0,99}$", example = "tokens.input")]
    pub metric: String,
    #[schema(minimum = 0)]
    pub quantity: i64,
    /// Default: now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub activity_ref: Option<String>,
}
