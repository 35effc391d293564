//! Skills: a tenant's own (readable and writable by it) and global
//! templates (`tenant_id IS NULL`, readable by every tenant, written only
//! on the administrative path).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::records::table::{Field, Kind, Table};
use crate::records::wire::present;

pub const TABLE: Table = Table {
    name: "skills",
    collection: "skills",
    fields: &[
        Field::new("name", "name", Kind::Text).create().update(),
        Field::new("slug", "slug", Kind::Text).create(),
        Field::new("version", "version", Kind::Integer).create(),
        Field::new("content_ref", "content_ref", Kind::Ulid)
            .create()
            .update(),
    ],
    has_status: false,
    globals: true,
    on_insert: &[],
    effects: &[],
    before: &[],
};

#[derive(Debug, Clone, sqlx::FromRow, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Skill {
    #[serde(rename = "ref")]
    pub record_ref: String,
    pub name: String,
    pub slug: String,
    pub version: i32,
    /// The ULID of the skill's content (MongoDB), if any.
    #[schema(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub content_ref: Option<String>,
    /// A global template (read-only for tenants).
    pub global: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub etag: String,
}
crate::versioned!(Skill);

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSkill {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Lower-case letters, digits and inner hyphens, at most 100.
    #[schema(
        pattern = "^[a-z0-9]([a-z0-9-]{0,98}[a-z0-9])?$",
        example = "summarise-text"
    )]
    pub slug: String,
    /// Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub version: Option<i32>,
    /// Set by strata when `content`, `description` or `tags` are given
    /// (it points at the searchable document); else the client's pointer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub content_ref: Option<String>,
    /// Searchable (weight 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The skill's text, searchable (weight 1; the name weighs 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// For filtering searches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 32)]
    pub tags: Option<Vec<String>>,
}

/// Changes to a skill: absent fields stay, `null` clears `contentRef`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateSkill {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub content_ref: Option<Option<String>>,
    /// A new description (a new searchable document; absent: kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// New text (a new searchable document; absent: kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// New tags (a new searchable document; absent: kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 32)]
    pub tags: Option<Vec<String>>,
}
