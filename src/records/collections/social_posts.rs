//! Social posts: draft → approved → scheduled → published / failed
//! (failed → scheduled retries); any → archived.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::records::table::{Effect, Field, Kind, Table};
use crate::records::wire::present;

pub const TABLE: Table = Table {
    name: "social_posts",
    collection: "social-posts",
    fields: &[
        Field::new("activity_ref", "activity_id", Kind::ActivityRef).create(),
        Field::new("platform", "platform", Kind::Text)
            .create()
            .update(),
        Field::new("scheduled_for", "scheduled_for", Kind::Timestamp)
            .create()
            .update()
            .transition(),
        Field::new("published_at", "published_on", Kind::Timestamp),
        Field::new("error", "error", Kind::Text)
            .update()
            .transition(),
        Field::new("output_ref", "output_ref", Kind::Ulid)
            .create()
            .update(),
    ],
    has_status: true,
    globals: false,
    on_insert: &[],
    effects: &[Effect {
        to: &["published"],
        set: "published_on = now()",
    }],
    before: &[],
};

crate::status_enum!(
    /// A social post's state.
    SocialPostStatus { Draft, Approved, Scheduled, Published, Failed, Archived }
);

#[derive(Debug, Clone, sqlx::FromRow, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SocialPost {
    #[serde(rename = "ref")]
    pub record_ref: String,
    #[schema(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub activity_ref: Option<String>,
    /// Where it is posted (e.g. `linkedin`).
    pub platform: String,
    #[schema(value_type = SocialPostStatus)]
    pub status: String,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub published_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    #[schema(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub output_ref: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub etag: String,
}
crate::versioned!(SocialPost);

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSocialPost {
    #[schema(min_length = 1, max_length = 64)]
    pub platform: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub activity_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_for: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub output_ref: Option<String>,
}

/// Changes to a social post: absent fields stay, `null` clears.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateSocialPost {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 64)]
    pub platform: Option<String>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub scheduled_for: Option<Option<DateTime<Utc>>>,
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

/// A requested status change of a social post.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SocialPostTransition {
    pub to: SocialPostStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_for: Option<DateTime<Utc>>,
    /// Why publishing failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
