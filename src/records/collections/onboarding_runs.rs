//! Onboarding runs: pending → scraping → researching → completed; any open
//! state → failed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::records::table::{Effect, Field, Kind, Table};
use crate::records::wire::present;

pub const TABLE: Table = Table {
    name: "onboarding_runs",
    collection: "onboarding-runs",
    fields: &[
        Field::new("website", "website", Kind::Text).create(),
        Field::new("context_file_id", "context_file_id", Kind::Text)
            .create()
            .update(),
        // Set by the split path only (PUT .../content/{part}): a pointer a
        // client could set might point at nothing.
        Field::new("research_ref", "research_ref", Kind::Ulid),
        Field::new("error", "error", Kind::Text)
            .update()
            .transition(),
        Field::new("started_at", "started_on", Kind::Timestamp),
        Field::new("finished_at", "finished_on", Kind::Timestamp),
    ],
    has_status: true,
    globals: false,
    on_insert: &[],
    effects: &[
        Effect {
            to: &["scraping"],
            set: "started_on = coalesce(t.started_on, now())",
        },
        Effect {
            to: &["completed", "failed"],
            set: "finished_on = now()",
        },
    ],
    before: &[],
};

crate::status_enum!(
    /// An onboarding run's state.
    OnboardingRunStatus { Pending, Scraping, Researching, Completed, Failed }
);

#[derive(Debug, Clone, sqlx::FromRow, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OnboardingRun {
    #[serde(rename = "ref")]
    pub record_ref: String,
    /// The tenant's website (http or https URL).
    pub website: String,
    #[schema(value_type = OnboardingRunStatus)]
    pub status: String,
    pub context_file_id: Option<String>,
    /// The ULID of the run's document in `onboarding_research` (set when
    /// its first content part is stored; read-only).
    #[schema(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub research_ref: Option<String>,
    pub error: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub etag: String,
}
crate::versioned!(OnboardingRun);

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateOnboardingRun {
    /// An http(s) URL.
    #[schema(pattern = "^[Hh][Tt][Tt][Pp][Ss]?://", example = "https://example.com")]
    pub website: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_file_id: Option<String>,
}

/// Changes to an onboarding run: absent fields stay, `null` clears.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateOnboardingRun {
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub context_file_id: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub error: Option<Option<String>>,
}

/// A requested status change of an onboarding run.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OnboardingRunTransition {
    pub to: OnboardingRunStatus,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
