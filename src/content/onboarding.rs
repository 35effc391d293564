//! Onboarding runs: three parts (scraped text, research, context file),
//! each its own S3 object under `{tenantRef}/onboarding/{runRef}/`, all
//! pointed at by ONE document per run in `onboarding_research` (its refId
//! is the run's ref, so the unique {tenantId, refId} index keeps it one),
//! which `onboarding_runs.research_ref` points at.
//!
//! Every write of a part goes to a new key (`scraped.{writeRef}.txt`, ...):
//! the document is switched to it with one atomic `$set`, so the object it
//! pointed at before stays whole until then and becomes an orphan after.

use mongodb::bson::{self, Document, doc};
use serde_json::{Map, Value};

use super::{Content, ContentError, PointError, Step, Stored, checkpoint};
use crate::records::collections::onboarding_runs::{OnboardingRun, TABLE};
use crate::records::{Tx, table};
use crate::stores::postgres::Postgres;

pub const COLLECTION: &str = "onboarding_research";

/// The fields of an `onboarding_research` document that hold S3 keys, each
/// with the field recording its object (size, sha256, S3 version).
pub const KEY_FIELDS: [(&str, &str); 3] = [
    ("scrapedTextKey", "scrapedText"),
    ("researchKey", "research"),
    ("contextKey", "contextFile"),
];

/// One part of a run's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Part {
    ScrapedText,
    Research,
    ContextFile,
}

impl Part {
    pub const ALL: [Part; 3] = [Part::ScrapedText, Part::Research, Part::ContextFile];

    /// As in the URL (`scraped-text`, `research`, `context-file`).
    pub fn name(self) -> &'static str {
        match self {
            Part::ScrapedText => "scraped-text",
            Part::Research => "research",
            Part::ContextFile => "context-file",
        }
    }

    pub fn parse(name: &str) -> Option<Part> {
        Part::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The document's field holding the part's key.
    pub fn key_field(self) -> &'static str {
        match self {
            Part::ScrapedText => "scrapedTextKey",
            Part::Research => "researchKey",
            Part::ContextFile => "contextKey",
        }
    }

    /// The document's field holding the part's size, sha256, media type
    /// and S3 version.
    fn meta_field(self) -> &'static str {
        match self {
            Part::ScrapedText => "scrapedText",
            Part::Research => "research",
            Part::ContextFile => "contextFile",
        }
    }

    /// The file name's stem (SPEC: scraped.txt, research.md, context.md).
    fn stem(self) -> &'static str {
        match self {
            Part::ScrapedText => "scraped",
            Part::Research => "research",
            Part::ContextFile => "context",
        }
    }

    /// The media types the part may have.
    pub fn media_types(self) -> &'static [&'static str] {
        match self {
            Part::ScrapedText => &["text/plain", "text/markdown"],
            Part::Research => &["text/markdown", "application/json"],
            Part::ContextFile => &["text/markdown", "text/plain"],
        }
    }

    /// The run's states in which the part may be written.
    pub fn writable_in(self) -> &'static [&'static str] {
        match self {
            Part::ScrapedText => &["scraping", "researching"],
            Part::Research | Part::ContextFile => &["researching"],
        }
    }

    /// The state the run moves to in the pointer's transaction, from the
    /// state it is in (`None`: it stays).
    pub fn moves(self, from: &str) -> Option<&'static str> {
        match (self, from) {
            (Part::ScrapedText, "scraping") => Some("researching"),
            (Part::ContextFile, "researching") => Some("completed"),
            _ => None,
        }
    }
}

pub fn key(tenant_ref: &str, run_ref: &str, part: Part, write_ref: &str, media: &str) -> String {
    format!(
        "{tenant_ref}/onboarding/{run_ref}/{}.{write_ref}.{}",
        part.stem(),
        super::extension(media)
    )
}

/// A run's document as MongoDB holds it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResearchDocument {
    pub tenant_id: String,
    pub ref_id: String,
    pub onboarding_run_ref: String,
    #[serde(default)]
    pub scraped_text_key: Option<String>,
    #[serde(default)]
    pub research_key: Option<String>,
    #[serde(default)]
    pub context_key: Option<String>,
    #[serde(default)]
    pub scraped_text: Option<Document>,
    #[serde(default)]
    pub research: Option<Document>,
    #[serde(default)]
    pub context_file: Option<Document>,
    pub created_on: bson::DateTime,
    #[serde(default)]
    pub updated_on: Option<bson::DateTime>,
}

/// One part as stored.
#[derive(Debug, Clone)]
pub struct StoredPart {
    pub part: Part,
    pub key: String,
    pub size: i64,
    pub sha256: String,
    pub content_type: String,
    pub version_id: Option<String>,
    pub written_at: chrono::DateTime<chrono::Utc>,
}

impl ResearchDocument {
    /// A part, if it was written.
    pub fn part(&self, part: Part) -> Option<StoredPart> {
        let key = match part {
            Part::ScrapedText => self.scraped_text_key.clone(),
            Part::Research => self.research_key.clone(),
            Part::ContextFile => self.context_key.clone(),
        }?;
        let meta = match part {
            Part::ScrapedText => self.scraped_text.as_ref(),
            Part::Research => self.research.as_ref(),
            Part::ContextFile => self.context_file.as_ref(),
        }?;
        Some(StoredPart {
            part,
            key,
            size: meta.get_i64("size").unwrap_or_default(),
            sha256: meta.get_str("sha256").unwrap_or_default().to_string(),
            content_type: super::recorded_type(meta, part.media_types()[0]),
            version_id: super::recorded_version(meta),
            written_at: meta
                .get_datetime("writtenOn")
                .map(|t| super::bson_time(*t))
                .unwrap_or_default(),
        })
    }

    /// The keys it points at.
    pub fn keys(&self) -> Vec<&str> {
        [
            &self.scraped_text_key,
            &self.research_key,
            &self.context_key,
        ]
        .into_iter()
        .filter_map(|k| k.as_deref())
        .collect()
    }
}

/// Steps one and two: the bytes into S3 under a new key, then the run's
/// document switched to it (created with the first part). Returns the
/// part as stored.
pub async fn store<S, E>(
    content: &Content,
    tenant_ref: &str,
    run_ref: &str,
    part: Part,
    media_type: &str,
    body: S,
) -> Result<StoredPart, ContentError>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    if !part.media_types().contains(&media_type) {
        return Err(ContentError::UnsupportedType {
            given: media_type.to_string(),
            accepted: part.media_types().join(", "),
        });
    }
    let write_ref = ulid::Ulid::generate().to_string();
    let key = key(tenant_ref, run_ref, part, &write_ref, media_type);
    let limit = content.config().onboarding_max_bytes;
    let stored = content.put(&key, media_type, limit, body).await?;
    checkpoint(Step::Object)?;
    record(content, tenant_ref, run_ref, part, &stored).await
}

/// A direct upload's key: where the pre-signed PUT of `upload_ref` puts
/// the part (the upload's ref is the write's ref), and what its confirm
/// checks.
pub fn upload_key(
    tenant_ref: &str,
    run_ref: &str,
    part: Part,
    upload_ref: &str,
    media_type: &str,
) -> Result<String, ContentError> {
    if !part.media_types().contains(&media_type) {
        return Err(ContentError::UnsupportedType {
            given: media_type.to_string(),
            accepted: part.media_types().join(", "),
        });
    }
    Ok(key(tenant_ref, run_ref, part, upload_ref, media_type))
}

/// Steps one and two of a direct upload: the object the client put is
/// checked against what it declared, then the run's document is switched
/// to it (a repeated confirm switches it to the same key again).
#[allow(clippy::too_many_arguments)]
pub async fn confirm(
    content: &Content,
    tenant_ref: &str,
    run_ref: &str,
    part: Part,
    upload_ref: &str,
    media_type: &str,
    size: u64,
    sha256: &str,
) -> Result<StoredPart, ContentError> {
    let key = upload_key(tenant_ref, run_ref, part, upload_ref, media_type)?;
    let stored = content.verify(&key, media_type, size, sha256).await?;
    checkpoint(Step::Object)?;
    record(content, tenant_ref, run_ref, part, &stored).await
}

/// The part as stored, if the run's document already holds `key` for it
/// (a direct upload confirmed before; its run may have moved on since).
pub async fn holding(
    content: &Content,
    tenant_ref: &str,
    run_ref: &str,
    part: Part,
    key: &str,
) -> Result<Option<StoredPart>, ContentError> {
    let found = content
        .mongo()
        .collection::<ResearchDocument>(COLLECTION)
        .find_one(doc! {
            "tenantId": tenant_ref,
            "refId": run_ref,
            "deletedOn": null,
            part.key_field(): key,
        })
        .await
        .map_err(|e| ContentError::of_mongo("find onboarding research", e))?;
    Ok(found.and_then(|d| d.part(part)))
}

/// Step two: one atomic upsert of the run's document. The document's age
/// for reconciliation is `updatedOn`, so an orphan document that a new
/// write is about to be pointed at is never too old to be spared.
async fn record(
    content: &Content,
    tenant_ref: &str,
    run_ref: &str,
    part: Part,
    stored: &Stored,
) -> Result<StoredPart, ContentError> {
    let now = bson::DateTime::now();
    let mut meta = super::object_metadata(stored);
    meta.insert("size", i64::try_from(stored.size).unwrap_or(i64::MAX));
    meta.insert("sha256", &stored.sha256);
    meta.insert("writtenOn", now);
    let filter = doc! { "tenantId": tenant_ref, "refId": run_ref };
    let update = doc! {
        "$set": {
            part.key_field(): &stored.key,
            part.meta_field(): meta,
            "updatedOn": now,
        },
        "$setOnInsert": {
            "onboardingRunRef": run_ref,
            "createdOn": now,
        },
    };
    let collection = content.mongo().collection::<Document>(COLLECTION);
    let upsert = || async {
        collection
            .update_one(filter.clone(), update.clone())
            .upsert(true)
            .await
    };
    // Two first writes of one run race for the insert: the loser's upsert
    // is refused by the unique index and repeated as an update.
    match upsert().await {
        Ok(_) => {}
        Err(e) if super::is_duplicate(&e) => {
            upsert()
                .await
                .map_err(|e| ContentError::of_mongo("upsert onboarding research", e))?;
        }
        Err(e) => return Err(ContentError::of_mongo("upsert onboarding research", e)),
    }
    checkpoint(Step::Document)?;
    Ok(StoredPart {
        part,
        key: stored.key.clone(),
        size: i64::try_from(stored.size).unwrap_or(i64::MAX),
        sha256: stored.sha256.clone(),
        content_type: stored.content_type.clone(),
        version_id: stored.version_id.clone(),
        written_at: super::bson_time(now),
    })
}

/// Step three, in the caller's transaction: the run points at its
/// document and, for a part that finishes a stage, moves on (scraped text
/// in scraping → researching; the context file → completed). The state is
/// judged again here, on the locked row. Returns the run before and after.
pub async fn point(
    pg: &Postgres,
    tx: &mut Tx,
    tenant_id: uuid::Uuid,
    run_ref: &str,
    part: Part,
    actor: &str,
) -> Result<(OnboardingRun, OnboardingRun), PointError> {
    let (before, pointed): (OnboardingRun, OnboardingRun) = table::set_pointer(
        pg,
        tx,
        tenant_id,
        &TABLE,
        run_ref,
        "researchRef",
        run_ref,
        actor,
    )
    .await?;
    if !part.writable_in().contains(&before.status.as_str()) {
        return Err(PointError::NotWritable(before.status));
    }
    let Some(to) = part.moves(&before.status) else {
        return Ok((before, pointed));
    };
    let moved: table::Moved<OnboardingRun> = table::transition(
        pg,
        tx,
        tenant_id,
        &TABLE,
        run_ref,
        to,
        None,
        &Map::<String, Value>::new(),
        actor,
    )
    .await?;
    Ok((before, moved.after))
}

/// The run's document (this tenant's, not deleted), its keys checked to
/// lie in the tenant's prefix.
pub async fn find(
    content: &Content,
    tenant_ref: &str,
    research_ref: &str,
) -> Result<ResearchDocument, ContentError> {
    super::find_document(
        content,
        COLLECTION,
        "onboarding research",
        "the run's research document is missing",
        tenant_ref,
        research_ref,
        ResearchDocument::keys,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_have_their_own_keys_inside_the_run_prefix() {
        let (t, run) = ("01JABCDEFGHJKMNPQRSTVWXYZ0", "01JABCDEFGHJKMNPQRSTVWXYZ1");
        let mut keys = Vec::new();
        for part in Part::ALL {
            let key = key(
                t,
                run,
                part,
                "01JABCDEFGHJKMNPQRSTVWXYZ2",
                part.media_types()[0],
            );
            assert!(key.starts_with(&format!("{t}/onboarding/{run}/")), "{key}");
            assert!(crate::content::in_prefix(t, &key), "{key}");
            keys.push(key);
        }
        keys.dedup();
        assert_eq!(keys.len(), 3, "{keys:?}");
        assert_eq!(Part::parse("context-file"), Some(Part::ContextFile));
        assert_eq!(Part::parse("summary"), None);
    }

    #[test]
    fn only_stage_ending_parts_move_the_run() {
        assert_eq!(Part::ScrapedText.moves("scraping"), Some("researching"));
        assert_eq!(Part::ScrapedText.moves("researching"), None);
        assert_eq!(Part::Research.moves("researching"), None);
        assert_eq!(Part::ContextFile.moves("researching"), Some("completed"));
        for part in Part::ALL {
            for state in ["pending", "completed", "failed"] {
                assert!(!part.writable_in().contains(&state), "{part:?} in {state}");
            }
        }
    }
}
