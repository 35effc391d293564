//! Blog posts: draft → in_review → approved → scheduled → published;
//! in_review → changes_requested → draft; any → archived.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::records::table::{Effect, Field, Kind, Table};
use crate::records::wire::present;

pub const TABLE: Table = Table {
    name: "blog_posts",
    collection: "blog-posts",
    fields: &[
        Field::new("activity_ref", "activity_id", Kind::ActivityRef).create(),
        Field::new("title", "title", Kind::Text).create().update(),
        Field::new("channel", "channel", Kind::Text)
            .create()
            .update(),
        Field::new("word_count", "word_count", Kind::Integer)
            .create()
            .update(),
        Field::new("scheduled_for", "scheduled_for", Kind::Timestamp)
            .create()
            .update()
            .transition(),
        Field::new("published_at", "published_on", Kind::Timestamp),
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
    /// A blog post's state.
    BlogPostStatus { Draft, InReview, ChangesRequested, Approved, Scheduled, Published, Archived }
);

#[derive(Debug, Clone, sqlx::FromRow, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlogPost {
    #[serde(rename = "ref")]
    pub record_ref: String,
    /// The activity that produced it (ref), if any.
    #[schema(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub activity_ref: Option<String>,
    pub title: String,
    pub channel: Option<String>,
    pub word_count: Option<i32>,
    #[schema(value_type = BlogPostStatus)]
    pub status: String,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub published_at: Option<DateTime<Utc>>,
    /// The ULID of the content document (MongoDB), if any.
    #[schema(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub output_ref: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub etag: String,
}
crate::versioned!(BlogPost);

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateBlogPost {
    #[schema(min_length = 1, max_length = 500)]
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub activity_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub word_count: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_for: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub output_ref: Option<String>,
}

/// Changes to a blog post: absent fields stay, `null` clears.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateBlogPost {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 500)]
    pub title: Option<String>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub channel: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<i32>, minimum = 0)]
    pub word_count: Option<Option<i32>>,
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
    #[schema(value_type = Option<String>, pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub output_ref: Option<Option<String>>,
}

/// A requested status change of a blog post (`scheduled` needs a
/// `scheduledFor`, already set or sent here).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlogPostTransition {
    pub to: BlogPostStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_for: Option<DateTime<Utc>>,
}
