//! Activity outputs: Markdown or JSON in S3
//! (`{tenantRef}/activities/{activityRef}/outputs/{outputRef}.md|.json`), a
//! document in `activity_outputs`, and `activities.output_ref` set in the
//! transaction that moves the activity to succeeded.

use mongodb::bson::{self, Document, doc};
use serde_json::{Map, Value};

use super::{Content, ContentError, Step, Stored, checkpoint};
use crate::records::collections::activities::{Activity, TABLE};
use crate::records::{RecordError, Tx, table};
use crate::stores::postgres::Postgres;

pub const COLLECTION: &str = "activity_outputs";

/// The states an activity may be in when its output is written: running
/// (it then succeeds) or succeeded (the output is replaced).
pub const WRITABLE_FROM: [&str; 2] = ["running", "succeeded"];

/// The stored format of a media type the config allows.
pub fn format_of(media_type: &str) -> Option<&'static str> {
    match media_type {
        "text/markdown" => Some("markdown"),
        "application/json" => Some("json"),
        _ => None,
    }
}

pub fn key(tenant_ref: &str, activity_ref: &str, output_ref: &str, format: &str) -> String {
    let extension = if format == "json" { "json" } else { "md" };
    format!("{tenant_ref}/activities/{activity_ref}/outputs/{output_ref}.{extension}")
}

/// An output as MongoDB holds it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputDocument {
    pub tenant_id: String,
    pub ref_id: String,
    pub activity_ref: String,
    pub format: String,
    pub s3_key: String,
    pub size: i64,
    pub sha256: String,
    #[serde(default)]
    pub metadata: Document,
    pub created_on: bson::DateTime,
}

impl OutputDocument {
    pub fn created_at(&self) -> chrono::DateTime<chrono::Utc> {
        super::bson_time(self.created_on)
    }

    pub fn content_type(&self) -> String {
        let fallback = match self.format.as_str() {
            "json" => "application/json",
            _ => "text/markdown",
        };
        super::recorded_type(&self.metadata, fallback)
    }

    /// The S3 version written (reads are pinned to it).
    pub fn version_id(&self) -> Option<String> {
        super::recorded_version(&self.metadata)
    }
}

/// Steps one and two: the bytes into S3, then the document. Returns the
/// document, for the caller's pointer.
pub async fn store<S, E>(
    content: &Content,
    tenant_ref: &str,
    activity_ref: &str,
    media_type: &str,
    body: S,
) -> Result<OutputDocument, ContentError>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let format = format_of(media_type).ok_or_else(|| ContentError::UnsupportedType {
        given: media_type.to_string(),
        accepted: crate::config::ACTIVITY_OUTPUT_TYPES.join(", "),
    })?;
    let output_ref = ulid::Ulid::generate().to_string();
    let key = key(tenant_ref, activity_ref, &output_ref, format);
    let limit = content.config().activity_output_max_bytes;
    let stored = content.put(&key, media_type, limit, body).await?;
    checkpoint(Step::Object)?;
    record(
        content,
        tenant_ref,
        activity_ref,
        &output_ref,
        format,
        &stored,
    )
    .await
}

/// Step two: the document, after the bytes are in S3.
pub async fn record(
    content: &Content,
    tenant_ref: &str,
    activity_ref: &str,
    output_ref: &str,
    format: &str,
    stored: &Stored,
) -> Result<OutputDocument, ContentError> {
    let metadata = super::object_metadata(stored);
    let document = OutputDocument {
        tenant_id: tenant_ref.to_string(),
        ref_id: output_ref.to_string(),
        activity_ref: activity_ref.to_string(),
        format: format.to_string(),
        s3_key: stored.key.clone(),
        size: i64::try_from(stored.size).unwrap_or(i64::MAX),
        sha256: stored.sha256.clone(),
        metadata,
        created_on: bson::DateTime::now(),
    };
    let collection = content.mongo().collection::<OutputDocument>(COLLECTION);
    match collection.insert_one(&document).await {
        Ok(_) => {}
        // A confirm repeated after a failure past this step: the document
        // is there already; go on if it is this very object.
        Err(e) if super::is_duplicate(&e) => {
            let existing = find(content, tenant_ref, output_ref).await?;
            if existing.s3_key != document.s3_key || existing.sha256 != document.sha256 {
                return Err(ContentError::Mismatch {
                    field: "sha256",
                    message: "this upload was confirmed with other content".into(),
                });
            }
            checkpoint(Step::Document)?;
            return Ok(existing);
        }
        Err(e) => return Err(ContentError::of_mongo("insert activity output", e)),
    }
    checkpoint(Step::Document)?;
    Ok(document)
}

/// A direct upload's key: where the pre-signed PUT for `upload_ref` puts
/// the bytes, and what its confirm checks.
pub fn upload_key(
    tenant_ref: &str,
    activity_ref: &str,
    upload_ref: &str,
    media_type: &str,
) -> Result<String, ContentError> {
    let format = format_of(media_type).ok_or_else(|| ContentError::UnsupportedType {
        given: media_type.to_string(),
        accepted: crate::config::ACTIVITY_OUTPUT_TYPES.join(", "),
    })?;
    Ok(key(tenant_ref, activity_ref, upload_ref, format))
}

/// Steps one and two of a direct upload: the object the client put is
/// checked against what it declared, then the document is written (the
/// upload's ref becomes the output's ref).
pub async fn confirm(
    content: &Content,
    tenant_ref: &str,
    activity_ref: &str,
    upload_ref: &str,
    media_type: &str,
    size: u64,
    sha256: &str,
) -> Result<OutputDocument, ContentError> {
    let key = upload_key(tenant_ref, activity_ref, upload_ref, media_type)?;
    let format = format_of(media_type).unwrap_or("markdown");
    let stored = content.verify(&key, media_type, size, sha256).await?;
    checkpoint(Step::Object)?;
    record(
        content,
        tenant_ref,
        activity_ref,
        upload_ref,
        format,
        &stored,
    )
    .await
}

/// Step three, in the caller's transaction: the activity points at the
/// output and moves to succeeded (PostgreSQL judges the move).
pub async fn point(
    pg: &Postgres,
    tx: &mut Tx,
    tenant_id: uuid::Uuid,
    activity_ref: &str,
    output_ref: &str,
    actor: &str,
) -> Result<(Activity, Activity), RecordError> {
    let mut values = Map::new();
    values.insert("outputRef".into(), Value::String(output_ref.to_string()));
    let (before, _): (Activity, Activity) = table::update(
        pg,
        tx,
        tenant_id,
        &TABLE,
        activity_ref,
        None,
        &values,
        actor,
    )
    .await?;
    let moved: table::Moved<Activity> = table::transition(
        pg,
        tx,
        tenant_id,
        &TABLE,
        activity_ref,
        "succeeded",
        None,
        &Map::new(),
        actor,
    )
    .await?;
    Ok((before, moved.after))
}

/// The document an activity points at (this tenant's, not deleted).
pub async fn find(
    content: &Content,
    tenant_ref: &str,
    output_ref: &str,
) -> Result<OutputDocument, ContentError> {
    super::find_document(
        content,
        COLLECTION,
        "activity output",
        "the activity's output is missing",
        tenant_ref,
        output_ref,
        |d: &OutputDocument| vec![d.s3_key.as_str()],
    )
    .await
}

/// Marks an output as just pointed at (its `updatedOn`), for a record
/// about to point at it that its own write did not create (a post):
/// reconciliation then counts its age from now, and a repair that
/// already judged it an orphan no longer matches it. `false`: there is no
/// such output of this tenant (or a repair took it first).
pub async fn claim(
    content: &Content,
    tenant_ref: &str,
    output_ref: &str,
) -> Result<bool, ContentError> {
    let claimed = content
        .mongo()
        .collection::<Document>(COLLECTION)
        .update_one(
            doc! { "tenantId": tenant_ref, "refId": output_ref, "deletedOn": null },
            doc! { "$set": { "updatedOn": bson::DateTime::now() } },
        )
        .await
        .map_err(|e| ContentError::of_mongo("claim activity output", e))?;
    Ok(claimed.matched_count == 1)
}
