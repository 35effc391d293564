//! Skills' searchable documents (MongoDB `skills`: name, description,
//! content, tags) and their full-text search.
//!
//! A skill's row (PostgreSQL) points at its current document with
//! `content_ref`. Documents are written before the row that points at
//! them and never changed afterwards: an update writes a new document and
//! moves the pointer, then marks the old one deleted. Search asks MongoDB
//! (`$text`, weights name 10 > description 5 > content 1, from the
//! `search` index) for the tenant's and the global documents, then keeps
//! only those a visible, not deleted row points at, so an orphan (a write
//! cut between the stores), a superseded version or a soft-deleted
//! skill is never a hit, and another tenant's never can be.

use mongodb::bson::{self, Bson, Document, doc};
use serde::Serialize;
use utoipa::ToSchema;

use super::mongo_error;
use crate::records::collections::skills::{Skill, TABLE};
use crate::records::{RecordError, Tx};
use crate::stores::mongo::Mongo;
use crate::stores::postgres::Postgres;

pub const SKILLS: &str = "skills";
/// `tenantId` of global templates' documents.
pub const GLOBAL: &str = "global";

/// What a skill's document holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SkillText {
    pub name: String,
    pub description: Option<String>,
    pub content: String,
    pub tags: Vec<String>,
}

/// Writes a new document for `owner` (a tenant's ref, or [`GLOBAL`]);
/// returns its ref, for the row's `content_ref`.
pub async fn write(mongo: &Mongo, owner: &str, text: &SkillText) -> Result<String, RecordError> {
    let content_ref = ulid::Ulid::generate().to_string();
    mongo
        .database()
        .collection::<Document>(SKILLS)
        .insert_one(doc! {
            "tenantId": owner,
            "refId": &content_ref,
            "createdOn": bson::DateTime::now(),
            "deletedOn": Bson::Null,
            "name": &text.name,
            "description": text.description.as_deref().map_or(Bson::Null, Bson::from),
            "content": &text.content,
            "tags": &text.tags,
        })
        .await
        .map_err(mongo_error)?;
    Ok(content_ref)
}

/// The document `content_ref` of `owner`, if it is there.
pub async fn read(
    mongo: &Mongo,
    owner: &str,
    content_ref: &str,
) -> Result<Option<SkillText>, RecordError> {
    let found = mongo
        .database()
        .collection::<Document>(SKILLS)
        .find_one(doc! {"tenantId": owner, "refId": content_ref})
        .await
        .map_err(mongo_error)?;
    Ok(found.map(|d| SkillText {
        name: d.get_str("name").unwrap_or_default().to_string(),
        description: d.get_str("description").ok().map(str::to_string),
        content: d.get_str("content").unwrap_or_default().to_string(),
        tags: d
            .get_array("tags")
            .map(|tags| {
                tags.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    }))
}

/// Marks a document deleted (superseded, or its skill soft-deleted).
/// Search does not depend on it (rows decide), so callers may ignore a
/// failure.
pub async fn mark_deleted(
    mongo: &Mongo,
    owner: &str,
    content_ref: &str,
) -> Result<(), RecordError> {
    mongo
        .database()
        .collection::<Document>(SKILLS)
        .update_one(
            doc! {"tenantId": owner, "refId": content_ref, "deletedOn": Bson::Null},
            doc! {"$set": {"deletedOn": bson::DateTime::now()}},
        )
        .await
        .map_err(mongo_error)?;
    Ok(())
}

/// A search's question.
#[derive(Debug, Clone)]
pub struct Query {
    /// MongoDB `$text` syntax: words, `"phrases"`, `-excluded`.
    pub text: String,
    /// Every one of these tags (none: any).
    pub tags: Vec<String>,
    pub offset: u64,
    pub limit: u32,
}

/// One hit: the skill, its document's description and tags, its score.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkillHit {
    pub skill: Skill,
    pub description: Option<String>,
    pub tags: Vec<String>,
    /// MongoDB's text score (higher is better; only comparable within
    /// one search).
    pub score: f64,
}

/// One page of hits, best first, and whether more may follow.
#[derive(Debug)]
pub struct Hits {
    pub items: Vec<SkillHit>,
    pub more: bool,
}

pub async fn search(
    pg: &Postgres,
    tx: &mut Tx,
    mongo: &Mongo,
    tenant: (uuid::Uuid, &str),
    query: &Query,
) -> Result<Hits, RecordError> {
    let (tenant_id, tenant_ref) = tenant;
    let mut filter = doc! {
        "$text": {"$search": &query.text},
        "tenantId": {"$in": [tenant_ref, GLOBAL]},
        "deletedOn": Bson::Null,
    };
    if !query.tags.is_empty() {
        filter.insert("tags", doc! {"$all": &query.tags});
    }
    let mut cursor = mongo
        .database()
        .collection::<Document>(SKILLS)
        .find(filter)
        .projection(doc! {
            "refId": 1, "description": 1, "tags": 1, "score": {"$meta": "textScore"},
        })
        // refId breaks ties, so that pages do not overlap.
        .sort(doc! {"score": {"$meta": "textScore"}, "refId": 1})
        .skip(query.offset)
        .limit(i64::from(query.limit) + 1)
        .await
        .map_err(mongo_error)?;
    let mut documents = Vec::new();
    while cursor.advance().await.map_err(mongo_error)? {
        documents.push(cursor.deserialize_current().map_err(mongo_error)?);
    }
    let more = documents.len() > query.limit as usize;
    let documents = &documents[..documents.len().min(query.limit as usize)];
    let refs: Vec<&str> = documents
        .iter()
        .filter_map(|d| d.get_str("refId").ok())
        .collect();
    let sql = format!(
        "SELECT {} FROM skills t \
         WHERE (t.tenant_id = $1 OR t.tenant_id IS NULL) AND t.deleted_on IS NULL \
           AND t.content_ref = ANY($2::text[])",
        TABLE.columns()
    );
    let rows: Vec<Skill> = pg
        .query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant_id)
        .bind(&refs)
        .fetch_all(&mut **tx)
        .await?;
    let mut items = Vec::with_capacity(rows.len());
    for document in documents {
        let content_ref = document.get_str("refId").ok();
        let Some(skill) = rows
            .iter()
            .find(|s| s.content_ref.as_deref() == content_ref)
        else {
            continue;
        };
        items.push(SkillHit {
            skill: skill.clone(),
            description: document.get_str("description").ok().map(str::to_string),
            tags: document
                .get_array("tags")
                .map(|t| {
                    t.iter()
                        .filter_map(|t| t.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            score: document.get_f64("score").unwrap_or_default(),
        });
    }
    Ok(Hits { items, more })
}

/// A global template to write (administrative path).
#[derive(Debug, Clone)]
pub struct NewGlobal {
    pub slug: String,
    pub version: i32,
    pub text: SkillText,
}

fn global_select(condition: &str) -> sqlx::AssertSqlSafe<String> {
    // Only this module's fixed conditions reach the text.
    sqlx::AssertSqlSafe(format!(
        "SELECT {columns} FROM skills t WHERE t.tenant_id IS NULL AND t.deleted_on IS NULL {condition}",
        columns = TABLE.columns()
    ))
}

/// A global template (administrative path): its document, then its row
/// (so the row never points at a missing document).
pub async fn create_global(
    pg: &Postgres,
    mongo: &Mongo,
    new: &NewGlobal,
) -> Result<Skill, RecordError> {
    let content_ref = write(mongo, GLOBAL, &new.text).await?;
    let mut tx = pg.begin_admin().await?;
    pg.query(
        "INSERT INTO skills (ref_id, tenant_id, name, slug, version, content_ref) \
         VALUES ($1, NULL, $2, $3, $4, $5)",
    )
    .bind(ulid::Ulid::generate().to_string())
    .bind(&new.text.name)
    .bind(&new.slug)
    .bind(new.version)
    .bind(&content_ref)
    .execute(&mut *tx)
    .await?;
    let created: Skill = pg
        .query_as(global_select("AND t.content_ref = $1"))
        .bind(&content_ref)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(created)
}

/// Every live global template, by slug and version.
pub async fn list_globals(pg: &Postgres) -> Result<Vec<Skill>, RecordError> {
    let mut tx = pg.begin_admin().await?;
    let all = pg
        .query_as(global_select("ORDER BY t.slug, t.version"))
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(all)
}

/// A global template with its text.
pub async fn get_global(
    pg: &Postgres,
    mongo: &Mongo,
    skill_ref: &str,
) -> Result<(Skill, Option<SkillText>), RecordError> {
    let mut tx = pg.begin_admin().await?;
    let skill: Skill = pg
        .query_as(global_select("AND t.ref_id = $1"))
        .bind(skill_ref)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(RecordError::NotFound)?;
    tx.commit().await?;
    let text = match &skill.content_ref {
        Some(pointer) => read(mongo, GLOBAL, pointer).await?,
        None => None,
    };
    Ok((skill, text))
}

/// What changes in a global template (absent: kept).
#[derive(Debug, Clone, Default)]
pub struct GlobalChange {
    pub name: Option<String>,
    pub description: Option<String>,
    pub content: Option<String>,
    pub tags: Option<Vec<String>>,
}

/// New text is a new document: written first, then the row points at it
/// (at the version the caller read, if given), then the old document is
/// marked deleted.
pub async fn update_global(
    pg: &Postgres,
    mongo: &Mongo,
    skill_ref: &str,
    if_match: Option<&str>,
    change: &GlobalChange,
) -> Result<Skill, RecordError> {
    let (current, old_text) = get_global(pg, mongo, skill_ref).await?;
    let base = old_text.unwrap_or_default();
    let text = SkillText {
        name: change.name.clone().unwrap_or(current.name.clone()),
        description: change.description.clone().or(base.description),
        content: change.content.clone().unwrap_or(base.content),
        tags: change.tags.clone().unwrap_or(base.tags),
    };
    let content_ref = write(mongo, GLOBAL, &text).await?;
    let mut tx = pg.begin_admin().await?;
    let locked: Skill = pg
        .query_as(global_select("AND t.ref_id = $1 FOR UPDATE"))
        .bind(skill_ref)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(RecordError::NotFound)?;
    if if_match.is_some_and(|v| v != locked.etag) {
        // The new document is an orphan nothing points at: search ignores it.
        mark_deleted(mongo, GLOBAL, &content_ref).await?;
        return Err(RecordError::StaleVersion);
    }
    pg.query(
        "UPDATE skills SET name = $2, content_ref = $3::ulid \
         WHERE tenant_id IS NULL AND ref_id = $1",
    )
    .bind(skill_ref)
    .bind(&text.name)
    .bind(&content_ref)
    .execute(&mut *tx)
    .await?;
    let updated: Skill = pg
        .query_as(global_select("AND t.ref_id = $1"))
        .bind(skill_ref)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    if let Some(old) = &locked.content_ref
        && let Err(e) = mark_deleted(mongo, GLOBAL, old).await
    {
        tracing::warn!(error = %e, "could not mark a superseded template document deleted");
    }
    Ok(updated)
}

/// Soft-deletes a global template: gone from every tenant's reads and
/// searches at once.
pub async fn delete_global(
    pg: &Postgres,
    mongo: &Mongo,
    skill_ref: &str,
    if_match: Option<&str>,
) -> Result<(), RecordError> {
    let mut tx = pg.begin_admin().await?;
    let locked: Skill = pg
        .query_as(global_select("AND t.ref_id = $1 FOR UPDATE"))
        .bind(skill_ref)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(RecordError::NotFound)?;
    if if_match.is_some_and(|v| v != locked.etag) {
        return Err(RecordError::StaleVersion);
    }
    pg.query("UPDATE skills SET deleted_on = now() WHERE tenant_id IS NULL AND ref_id = $1")
        .bind(skill_ref)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    if let Some(pointer) = &locked.content_ref
        && let Err(e) = mark_deleted(mongo, GLOBAL, pointer).await
    {
        tracing::warn!(error = %e, "could not mark a deleted template's document deleted");
    }
    Ok(())
}
