//! Strategy content: Markdown versions at
//! `{tenantRef}/strategies/{strategyRef}/v{n}.md` (n = 1, 2, … per
//! strategy), one document per version in `strategies_content` (unique
//! {tenantId, strategyRef, version}), and `strategies.content_ref` pointing
//! at the current one. Content is written while the strategy is a draft
//! only: what was submitted, approved or activated does not change. A
//! replaced version (its document and object) is an orphan, reclaimed by
//! reconciliation.
//!
//! A key is never reused: n is one above every version the strategy's
//! prefix ever held in S3 (delete markers included) and every document.
//! Two writes racing for the same n both put `v{n}.md` (the bucket keeps
//! both as versions); the unique index lets one document in, and the loser
//! removes exactly its own S3 version and answers a conflict. Reads are
//! pinned to the version the document recorded.

use futures_util::TryStreamExt;
use mongodb::bson::{self, Document, doc};

use super::{Content, ContentError, PointError, Step, Stored, checkpoint};
use crate::records::collections::strategies::{Strategy, TABLE};
use crate::records::{Tx, table};
use crate::stores::postgres::Postgres;

pub const COLLECTION: &str = "strategies_content";

pub const MEDIA_TYPE: &str = "text/markdown";

/// The only state in which a strategy's content may be written.
pub const WRITABLE_IN: [&str; 1] = ["draft"];

pub fn prefix(tenant_ref: &str, strategy_ref: &str) -> String {
    format!("{tenant_ref}/strategies/{strategy_ref}/")
}

pub fn key(tenant_ref: &str, strategy_ref: &str, version: i64) -> String {
    format!("{}v{version}.md", prefix(tenant_ref, strategy_ref))
}

/// The n of `{prefix}v{n}.md`.
fn version_of(prefix: &str, key: &str) -> Option<i64> {
    key.strip_prefix(prefix)?
        .strip_prefix('v')?
        .strip_suffix(".md")?
        .parse()
        .ok()
}

/// A version as MongoDB holds it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StrategyDocument {
    pub tenant_id: String,
    pub ref_id: String,
    pub strategy_ref: String,
    pub version: i64,
    pub s3_key: String,
    pub size: i64,
    pub sha256: String,
    #[serde(default)]
    pub metadata: Document,
    pub created_on: bson::DateTime,
    /// The direct upload it was made from (repeated confirms find it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_ref: Option<String>,
}

impl StrategyDocument {
    pub fn created_at(&self) -> chrono::DateTime<chrono::Utc> {
        super::bson_time(self.created_on)
    }

    pub fn content_type(&self) -> String {
        super::recorded_type(&self.metadata, MEDIA_TYPE)
    }

    pub fn version_id(&self) -> Option<String> {
        super::recorded_version(&self.metadata)
    }
}

/// The next version number: above every key the strategy's prefix ever
/// held and every document (a crashed write's orphan object included, so
/// that reconciliation removing it can never hit a newer write).
async fn next_version(
    content: &Content,
    tenant_ref: &str,
    strategy_ref: &str,
) -> Result<i64, ContentError> {
    let prefix = prefix(tenant_ref, strategy_ref);
    let in_s3 = content
        .keys_ever(&prefix)
        .await?
        .iter()
        .filter_map(|k| version_of(&prefix, k))
        .max()
        .unwrap_or(0);
    let documents: Vec<Document> = content
        .mongo()
        .collection::<Document>(COLLECTION)
        .find(doc! { "tenantId": tenant_ref, "strategyRef": strategy_ref })
        .projection(doc! { "version": 1 })
        .await
        .map_err(|e| ContentError::of_mongo("find strategy versions", e))?
        .try_collect()
        .await
        .map_err(|e| ContentError::of_mongo("find strategy versions", e))?;
    let in_mongo = documents
        .iter()
        .filter_map(|d| {
            d.get_i64("version")
                .ok()
                .or_else(|| d.get_i32("version").ok().map(i64::from))
        })
        .max()
        .unwrap_or(0);
    Ok(in_s3.max(in_mongo) + 1)
}

/// Steps one and two: the Markdown into S3 as the next version, then its
/// document. Returns the document, for the caller's pointer.
pub async fn store<S, E>(
    content: &Content,
    tenant_ref: &str,
    strategy_ref: &str,
    media_type: &str,
    body: S,
) -> Result<StrategyDocument, ContentError>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    if media_type != MEDIA_TYPE {
        return Err(ContentError::UnsupportedType {
            given: media_type.to_string(),
            accepted: MEDIA_TYPE.to_string(),
        });
    }
    let version = next_version(content, tenant_ref, strategy_ref).await?;
    let key = key(tenant_ref, strategy_ref, version);
    let limit = content.config().strategy_max_bytes;
    let stored = content.put(&key, media_type, limit, body).await?;
    checkpoint(Step::Object)?;
    record(content, tenant_ref, strategy_ref, version, &stored, None).await
}

/// A direct upload's key. Not a version's: the number is taken when the
/// upload is confirmed (two uploads may run at once), and the confirmed
/// bytes are copied to `v{n}.md` inside S3.
pub fn upload_key(tenant_ref: &str, strategy_ref: &str, upload_ref: &str) -> String {
    format!(
        "{}uploads/{upload_ref}.md",
        prefix(tenant_ref, strategy_ref)
    )
}

/// Steps one and two of a direct upload: the object the client put is
/// checked against what it declared and copied (inside S3) to the next
/// version's key, then the version's document is written; the upload
/// object is removed after (a crash first leaves it an orphan). A confirm
/// repeated after that finds the version it made.
pub async fn confirm(
    content: &Content,
    tenant_ref: &str,
    strategy_ref: &str,
    upload_ref: &str,
    size: u64,
    sha256: &str,
) -> Result<StrategyDocument, ContentError> {
    if let Some(done) = confirmed(content, tenant_ref, strategy_ref, upload_ref).await? {
        return Ok(done);
    }
    let upload = upload_key(tenant_ref, strategy_ref, upload_ref);
    let uploaded = content.verify(&upload, MEDIA_TYPE, size, sha256).await?;
    let version = next_version(content, tenant_ref, strategy_ref).await?;
    let stored = content
        .copy(&uploaded, &key(tenant_ref, strategy_ref, version))
        .await?;
    checkpoint(Step::Object)?;
    let document = record(
        content,
        tenant_ref,
        strategy_ref,
        version,
        &stored,
        Some(upload_ref),
    )
    .await?;
    if let Err(e) = content.remove(&uploaded).await {
        tracing::warn!(key = %upload, error = %e, "a confirmed upload stays until reconciliation");
    }
    Ok(document)
}

/// The version a direct upload was confirmed as, if it was.
pub async fn confirmed(
    content: &Content,
    tenant_ref: &str,
    strategy_ref: &str,
    upload_ref: &str,
) -> Result<Option<StrategyDocument>, ContentError> {
    content
        .mongo()
        .collection::<StrategyDocument>(COLLECTION)
        .find_one(doc! {
            "tenantId": tenant_ref,
            "strategyRef": strategy_ref,
            "uploadRef": upload_ref,
            "deletedOn": null,
        })
        .await
        .map_err(|e| ContentError::of_mongo("find strategy content", e))
}

/// Step two: the version's document.
async fn record(
    content: &Content,
    tenant_ref: &str,
    strategy_ref: &str,
    version: i64,
    stored: &Stored,
    upload_ref: Option<&str>,
) -> Result<StrategyDocument, ContentError> {
    let document = StrategyDocument {
        tenant_id: tenant_ref.to_string(),
        ref_id: ulid::Ulid::generate().to_string(),
        strategy_ref: strategy_ref.to_string(),
        version,
        s3_key: stored.key.clone(),
        size: i64::try_from(stored.size).unwrap_or(i64::MAX),
        sha256: stored.sha256.clone(),
        metadata: super::object_metadata(stored),
        created_on: bson::DateTime::now(),
        upload_ref: upload_ref.map(str::to_string),
    };
    let collection = content.mongo().collection::<StrategyDocument>(COLLECTION);
    match collection.insert_one(&document).await {
        Ok(_) => {}
        Err(e) if super::is_duplicate(&e) => {
            // Another write took version n: take back this write's own S3
            // version (the winner's stays), then say so.
            if let Some(version_id) = &stored.version_id {
                content.delete_version(&stored.key, version_id).await?;
            }
            return Err(ContentError::Conflict(format!(
                "a concurrent write stored version {version} of this strategy's content; \
                 repeat the request"
            )));
        }
        Err(e) => return Err(ContentError::of_mongo("insert strategy content", e)),
    }
    checkpoint(Step::Document)?;
    Ok(document)
}

/// Step three, in the caller's transaction: the strategy, locked and
/// still a draft, points at the version. Returns it before and after.
pub async fn point(
    pg: &Postgres,
    tx: &mut Tx,
    tenant_id: uuid::Uuid,
    strategy_ref: &str,
    content_ref: &str,
    actor: &str,
) -> Result<(Strategy, Strategy), PointError> {
    let current: Strategy = table::lock(pg, tx, tenant_id, &TABLE, strategy_ref, None).await?;
    if !WRITABLE_IN.contains(&current.status.as_str()) {
        return Err(PointError::NotWritable(current.status));
    }
    let (before, after) = table::set_pointer(
        pg,
        tx,
        tenant_id,
        &TABLE,
        strategy_ref,
        "contentRef",
        content_ref,
        actor,
    )
    .await?;
    Ok((before, after))
}

/// The version a strategy points at (this tenant's, not deleted).
pub async fn find(
    content: &Content,
    tenant_ref: &str,
    content_ref: &str,
) -> Result<StrategyDocument, ContentError> {
    super::find_document(
        content,
        COLLECTION,
        "strategy content",
        "the strategy's content is missing",
        tenant_ref,
        content_ref,
        |d: &StrategyDocument| vec![d.s3_key.as_str()],
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_their_keys() {
        let (t, s) = ("01JABCDEFGHJKMNPQRSTVWXYZ0", "01JABCDEFGHJKMNPQRSTVWXYZ1");
        let prefix = prefix(t, s);
        assert_eq!(version_of(&prefix, &key(t, s, 12)), Some(12));
        assert!(crate::content::in_prefix(t, &key(t, s, 1)));
        for other in [
            format!("{prefix}v1.json"),
            format!("{prefix}x1.md"),
            format!("{t}/strategies/other/v3.md"),
        ] {
            assert_eq!(version_of(&prefix, &other), None, "{other}");
        }
    }
}
