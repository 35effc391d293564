//! Integrations: connected ⇄ error → disconnected. One live connection per
//! tenant, provider and external account.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::records::table::{Effect, Field, Kind, Table};
use crate::records::wire::present;

pub const TABLE: Table = Table {
    name: "integrations",
    collection: "integrations",
    fields: &[
        Field::new("provider", "provider", Kind::Text).create(),
        Field::new("external_account", "external_account", Kind::Text).create(),
        Field::new("last_error", "last_error", Kind::Text)
            .update()
            .transition(),
    ],
    has_status: true,
    globals: false,
    on_insert: &[],
    effects: &[Effect {
        // Reconnected: the last error is history (kept in the audit trail).
        to: &["connected"],
        set: "last_error = NULL",
    }],
    before: &[],
};

crate::status_enum!(
    /// An integration's state.
    IntegrationStatus { Connected, Error, Disconnected }
);

#[derive(Debug, Clone, sqlx::FromRow, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Integration {
    #[serde(rename = "ref")]
    pub record_ref: String,
    pub provider: String,
    pub external_account: String,
    #[schema(value_type = IntegrationStatus)]
    pub status: String,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub etag: String,
}
crate::versioned!(Integration);

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateIntegration {
    #[schema(min_length = 1, max_length = 64)]
    pub provider: String,
    #[schema(min_length = 1, max_length = 500)]
    pub external_account: String,
}

/// Changes to an integration.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateIntegration {
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub last_error: Option<Option<String>>,
}

/// A requested status change of an integration.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IntegrationTransition {
    pub to: IntegrationStatus,
    /// Why it is in error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}
