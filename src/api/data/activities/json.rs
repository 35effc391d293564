//! The wire types of activities: camelCase, RFC 3339 UTC times, refs only.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::problem::Problem;
use crate::records::activities::{Activity, Changes, Filter, NewActivity};

/// An activity's state: queued → running → succeeded / failed / cancelled
/// (a queued activity may also be cancelled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActivityStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl ActivityStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActivityView {
    /// The activity's ref (ULID).
    #[serde(rename = "ref")]
    pub record_ref: String,
    pub kind: String,
    #[schema(value_type = ActivityStatus)]
    pub status: String,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    /// The ULID of the output document (MongoDB), if any.
    pub output_ref: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Activity> for ActivityView {
    fn from(a: Activity) -> Self {
        Self {
            record_ref: a.ref_id,
            kind: a.kind,
            status: a.status,
            started_at: a.started_on,
            finished_at: a.finished_on,
            error: a.error,
            output_ref: a.output_ref,
            created_at: a.created_on,
            updated_at: a.updated_on,
        }
    }
}

/// One page of activities.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActivityPage {
    pub items: Vec<ActivityView>,
    /// The cursor of the next page; absent on the last page.
    pub next: Option<String>,
}

const KIND_MAX: usize = 100;

fn check_kind(kind: &str) -> Result<(), Problem> {
    if kind.is_empty() || kind.chars().count() > KIND_MAX {
        return Err(Problem::invalid_field(
            "kind",
            format!("must be 1 to {KIND_MAX} characters"),
        ));
    }
    Ok(())
}

fn check_ref(field: &str, value: &Option<String>) -> Result<(), Problem> {
    match value {
        Some(v) => crate::api::data::extract::parse_ref(field, v)
            .map(|_| ())
            .map_err(|_| Problem::invalid_field(field, "must be a ULID")),
        None => Ok(()),
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateActivity {
    /// What the activity does, 1–100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub kind: String,
    /// `queued` (default) or `running`.
    #[serde(default)]
    pub status: Option<ActivityStatus>,
    /// The ULID of the output document (MongoDB), if any.
    #[serde(default)]
    #[schema(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub output_ref: Option<String>,
}

impl CreateActivity {
    pub fn into_new(self) -> Result<NewActivity, Problem> {
        check_kind(&self.kind)?;
        check_ref("outputRef", &self.output_ref)?;
        Ok(NewActivity {
            kind: self.kind,
            status: self.status.map(|s| s.as_str().to_string()),
            output_ref: self.output_ref,
        })
    }
}

/// A present field (even `null`) as `Some`, so that `null` can clear it.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// Changes to an activity: absent fields stay, `null` clears `error` or
/// `outputRef`. The status changes through `.../transitions`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateActivity {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100)]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub error: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub output_ref: Option<Option<String>>,
}

impl UpdateActivity {
    pub fn into_changes(self) -> Result<Changes, Problem> {
        if let Some(kind) = &self.kind {
            check_kind(kind)?;
        }
        check_ref("outputRef", &self.output_ref.clone().flatten())?;
        Ok(Changes {
            kind: self.kind,
            error: self.error,
            output_ref: self.output_ref,
        })
    }
}

/// A requested status change.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Transition {
    pub to: ActivityStatus,
    /// Recorded with the change (e.g. why it failed).
    #[serde(default)]
    pub error: Option<String>,
}

/// Filters of a list of activities.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct ActivityFilter {
    /// Only activities in this state.
    pub status: Option<ActivityStatus>,
    /// Only activities created at or after this time (RFC 3339).
    pub created_from: Option<DateTime<Utc>>,
    /// Only activities created before this time (RFC 3339).
    pub created_before: Option<DateTime<Utc>>,
}

impl From<ActivityFilter> for Filter {
    fn from(f: ActivityFilter) -> Self {
        Filter {
            status: f.status.map(|s| s.as_str().to_string()),
            created_from: f.created_from,
            created_before: f.created_before,
        }
    }
}
