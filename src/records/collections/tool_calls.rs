//! Tool calls: started → succeeded / failed / timed_out. A call may be
//! recorded when it has already finished (with its duration).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::records::table::{Effect, Field, Kind, Table};
use crate::records::wire::present;

pub const TABLE: Table = Table {
    name: "tool_calls",
    collection: "tool-calls",
    fields: &[
        Field::new("activity_ref", "activity_id", Kind::ActivityRef).create(),
        Field::new("tool_name", "tool_name", Kind::Text).create(),
        Field::new("method", "method", Kind::Text).create(),
        Field::new("started_at", "started_on", Kind::Timestamp).create(),
        Field::new("finished_at", "finished_on", Kind::Timestamp),
        Field::new("duration_ms", "duration_ms", Kind::Integer)
            .create()
            .transition(),
        Field::new("payload_ref", "payload_ref", Kind::Ulid)
            .create()
            .update(),
    ],
    has_status: true,
    globals: false,
    on_insert: &[(
        "finished_on",
        "CASE WHEN coalesce($3->>'status', 'started') <> 'started' \
              THEN coalesce(($3->>'startedAt')::timestamptz, now()) \
                   + make_interval(secs => coalesce(($3->>'durationMs')::integer, 0) / 1000.0) END",
    )],
    effects: &[Effect {
        to: &["succeeded", "failed", "timed_out"],
        set: "finished_on = greatest(now(), t.started_on), \
              duration_ms = coalesce(($3->>'durationMs')::integer, \
                  (extract(epoch FROM greatest(now(), t.started_on) - t.started_on) * 1000)::integer)",
    }],
    before: &[],
};

crate::status_enum!(
    /// A tool call's state.
    ToolCallStatus { Started, Succeeded, Failed, TimedOut }
);

#[derive(Debug, Clone, sqlx::FromRow, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolCall {
    #[serde(rename = "ref")]
    pub record_ref: String,
    #[schema(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub activity_ref: Option<String>,
    pub tool_name: String,
    pub method: String,
    #[schema(value_type = ToolCallStatus)]
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i32>,
    /// The ULID of the full request/response log (MongoDB), if any.
    #[schema(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub payload_ref: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub etag: String,
}
crate::versioned!(ToolCall);

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateToolCall {
    #[schema(min_length = 1, max_length = 200)]
    pub tool_name: String,
    #[schema(min_length = 1, max_length = 200)]
    pub method: String,
    /// `started` (default), or a final state for a call that has finished
    /// (then `durationMs` is required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ToolCallStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub activity_ref: Option<String>,
    /// Default: now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub duration_ms: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub payload_ref: Option<String>,
}

/// Changes to a tool call: only its payload pointer.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateToolCall {
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub payload_ref: Option<Option<String>>,
}

/// A requested status change of a tool call; the duration defaults to the
/// time since it started.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ToolCallTransition {
    pub to: ToolCallStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub duration_ms: Option<i32>,
}
