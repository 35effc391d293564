//! Activities: queued → running → succeeded / failed / cancelled (a queued
//! activity may also be cancelled, or be created running).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::records::table::{Effect, Field, Kind, Table};
use crate::records::wire::present;

pub const TABLE: Table = Table {
    name: "activities",
    collection: "activities",
    fields: &[
        Field::new("kind", "kind", Kind::Text).create().update(),
        Field::new("started_at", "started_on", Kind::Timestamp),
        Field::new("finished_at", "finished_on", Kind::Timestamp),
        Field::new("error", "error", Kind::Text)
            .update()
            .transition(),
        Field::new("output_ref", "output_ref", Kind::Ulid)
            .create()
            .update(),
    ],
    has_status: true,
    globals: false,
    on_insert: &[(
        "started_on",
        "CASE WHEN $3->>'status' = 'running' THEN now() END",
    )],
    effects: &[
        Effect {
            to: &["running"],
            set: "started_on = coalesce(t.started_on, now())",
        },
        Effect {
            to: &["succeeded", "failed", "cancelled"],
            set: "finished_on = now()",
        },
    ],
    before: &[],
};

crate::status_enum!(
    /// An activity's state.
    ActivityStatus { Queued, Running, Succeeded, Failed, Cancelled }
);

#[derive(Debug, Clone, sqlx::FromRow, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    /// The activity's ref (ULID).
    #[serde(rename = "ref")]
    pub record_ref: String,
    /// What the activity does.
    pub kind: String,
    #[schema(value_type = ActivityStatus)]
    pub status: String,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    /// The ULID of the output document (MongoDB), if any.
    #[schema(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub output_ref: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub etag: String,
}
crate::versioned!(Activity);

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateActivity {
    /// What the activity does, 1–100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub kind: String,
    /// `queued` (default) or `running`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ActivityStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub output_ref: Option<String>,
}

/// Changes to an activity: absent fields stay, `null` clears `error` or
/// `outputRef`. The status changes through `.../transitions`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateActivity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 100)]
    pub kind: Option<String>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub error: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub output_ref: Option<Option<String>>,
}

/// A requested status change of an activity.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActivityTransition {
    pub to: ActivityStatus,
    /// Recorded with the change (e.g. why it failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
