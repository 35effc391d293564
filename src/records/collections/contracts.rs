//! Contracts: pending → accepted (then immutable) / declined / expired.
//! Accepting needs the whole acceptance record and the WORM copy of the
//! PDF (the split-pattern accept action); PostgreSQL refuses an accepted
//! contract without them, and any change of an accepted one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::records::table::{Effect, Field, Kind, Table};

pub const TABLE: Table = Table {
    name: "contracts",
    collection: "contracts",
    fields: &[
        Field::new("template", "template", Kind::Text)
            .create()
            .update(),
        Field::new("template_version", "template_version", Kind::Text)
            .create()
            .update(),
        // Set only by the accept action (its typed input is not the
        // generic transition body, which takes `to` alone).
        Field::new("accepted_by_name", "accepted_by_name", Kind::Text).transition(),
        Field::new("accepted_by_email", "accepted_by_email", Kind::Text).transition(),
        Field::new("accepted_at", "accepted_on", Kind::Timestamp),
        Field::new("accepted_ip", "accepted_ip", Kind::Inet).transition(),
        Field::new("accepted_user_agent", "accepted_user_agent", Kind::Text).transition(),
        Field::new("pdf_sha256", "pdf_sha256", Kind::Text).transition(),
        Field::new("pdf_version_id", "pdf_version_id", Kind::Text).transition(),
        Field::new("retain_until", "retain_until", Kind::Timestamp).transition(),
        Field::new("pdf_ref", "pdf_ref", Kind::Ulid).transition(),
        // Internal: never on the wire (see `Contract::pdf_s3_key`).
        Field::new("pdf_s3_key", "pdf_s3_key", Kind::Text).transition(),
    ],
    has_status: true,
    globals: false,
    on_insert: &[],
    effects: &[Effect {
        to: &["accepted"],
        set: "accepted_on = now()",
    }],
    before: &[],
};

crate::status_enum!(
    /// A contract's state.
    ContractStatus { Pending, Accepted, Declined, Expired }
);

#[derive(Debug, Clone, sqlx::FromRow, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Contract {
    #[serde(rename = "ref")]
    pub record_ref: String,
    pub template: String,
    pub template_version: String,
    #[schema(value_type = ContractStatus)]
    pub status: String,
    pub accepted_by_name: Option<String>,
    pub accepted_by_email: Option<String>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub accepted_ip: Option<String>,
    pub accepted_user_agent: Option<String>,
    /// SHA-256 (hex) of the accepted PDF.
    pub pdf_sha256: Option<String>,
    /// The S3 object version of the accepted PDF (Object Lock bucket).
    pub pdf_version_id: Option<String>,
    /// Until when S3 refuses to delete or overwrite the PDF.
    pub retain_until: Option<DateTime<Utc>>,
    #[schema(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub pdf_ref: Option<String>,
    /// The PDF's key in the contracts bucket: strata's, not the client's.
    #[serde(skip)]
    pub pdf_s3_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub etag: String,
}
crate::versioned!(Contract);

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateContract {
    #[schema(min_length = 1, max_length = 200)]
    pub template: String,
    #[schema(min_length = 1, max_length = 64)]
    pub template_version: String,
}

/// Changes to a pending contract (an accepted one is immutable).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateContract {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 200)]
    pub template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 64)]
    pub template_version: Option<String>,
}

/// A requested status change of a contract (`declined` or `expired`;
/// acceptance comes with its PDF through the accept action).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContractTransition {
    pub to: ContractStatus,
}
