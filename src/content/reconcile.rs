//! Walks the three stores and reports what the split pattern forbids
//! (dangling pointers: a PostgreSQL pointer to a missing MongoDB document
//! or S3 object, a document pointing at a missing object) and what it
//! tolerates until reclaimed (orphans: objects or documents nothing points
//! at, left by a write that failed or crashed half-way).
//!
//! PostgreSQL is read on the administrative path (every tenant's rows, or
//! one tenant's with `tenant`), read-only.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use mongodb::bson::{Document, doc};
use serde::Serialize;

use super::{Content, ContentError, Listed, onboarding, outputs, strategies};
use crate::stores::Failure;
use crate::stores::postgres::Postgres;

/// A pointer to something missing: must never exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dangling {
    pub tenant_ref: String,
    /// Where the pointer is: `postgres:activities/{ref}` or
    /// `mongo:activity_outputs/{ref}`.
    pub from: String,
    /// What is missing: `mongo:activity_outputs/{ref}` or `s3:{key}`.
    pub missing: String,
}

/// Something nothing points at. An orphan document's object is not
/// listed separately: it goes with the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Orphan {
    pub tenant_ref: String,
    /// `mongo:activity_outputs/{ref}` or `s3:{key}`.
    pub what: String,
    pub created_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub dangling: Vec<Dangling>,
    pub orphans: Vec<Orphan>,
}

fn of_postgres(error: sqlx::Error) -> ContentError {
    let detail = format!("PostgreSQL: {error}");
    if Failure::of_postgres(&error).is_transient() {
        ContentError::Unavailable(detail)
    } else {
        ContentError::Store(detail)
    }
}

/// The PostgreSQL pointers into MongoDB: (table, column, collection).
/// Every kind of pointer is listed here, or its documents would be
/// reported (and repaired away) as orphans.
pub const POINTERS: [(&str, &str, &str); 5] = [
    ("activities", "output_ref", outputs::COLLECTION),
    ("blog_posts", "output_ref", outputs::COLLECTION),
    ("social_posts", "output_ref", outputs::COLLECTION),
    ("onboarding_runs", "research_ref", onboarding::COLLECTION),
    ("strategies", "content_ref", strategies::COLLECTION),
];

/// A document's key fields, each with the field recording its object.
pub type KeyFields = &'static [(&'static str, &'static str)];

/// The MongoDB collections whose documents point into the content bucket,
/// with the fields that hold the keys, each with the field whose
/// `versionId` records the S3 version written (reads are pinned to it).
pub const DOCUMENTS: [(&str, KeyFields); 3] = [
    (outputs::COLLECTION, &[("s3Key", "metadata")]),
    (onboarding::COLLECTION, &onboarding::KEY_FIELDS),
    (strategies::COLLECTION, &[("s3Key", "metadata")]),
];

/// A document as the scan sees it.
struct Scanned {
    collection: &'static str,
    tenant_ref: String,
    ref_id: String,
    /// The keys it points at, each with the S3 version it recorded.
    keys: Vec<(String, Option<String>)>,
    /// Its last write (`updatedOn`, else `createdOn`).
    written: Option<DateTime<Utc>>,
}

fn scanned(collection: &'static str, fields: &[(&str, &str)], d: &Document) -> Scanned {
    let time = |f: &str| d.get_datetime(f).ok().map(|t| super::bson_time(*t));
    Scanned {
        collection,
        tenant_ref: d.get_str("tenantId").unwrap_or_default().to_string(),
        ref_id: d.get_str("refId").unwrap_or_default().to_string(),
        keys: fields
            .iter()
            .filter_map(|(key, meta)| {
                let version = d
                    .get_document(meta)
                    .ok()
                    .and_then(|m| m.get_str("versionId").ok())
                    .map(str::to_string);
                d.get_str(key).ok().map(|k| (k.to_string(), version))
            })
            .collect(),
        written: time("updatedOn").max(time("createdOn")),
    }
}

/// One pass over the stores (all tenants, or one).
pub async fn scan(
    pg: &Postgres,
    content: &Content,
    tenant: Option<&str>,
) -> Result<Report, ContentError> {
    let mut report = Report::default();

    // PostgreSQL pointers: (tenant ref, table, record ref, collection,
    // document ref). The SQL holds only the static names above.
    let union: Vec<String> = POINTERS
        .iter()
        .map(|(table, column, collection)| {
            format!(
                "SELECT t.ref_id::text, '{table}', r.ref_id::text, '{collection}', \
                 r.{column}::text FROM {table} r JOIN tenants t ON t.id = r.tenant_id \
                 WHERE r.{column} IS NOT NULL AND ($1::text IS NULL OR t.ref_id::text = $1)"
            )
        })
        .collect();
    let mut tx = pg.begin_admin().await.map_err(of_postgres)?;
    let pointers: Vec<(String, String, String, String, String)> = pg
        .query_as(sqlx::AssertSqlSafe(union.join(" UNION ALL ")))
        .bind(tenant)
        .fetch_all(&mut *tx)
        .await
        .map_err(of_postgres)?;
    tx.rollback().await.map_err(of_postgres)?;

    // MongoDB documents, by (collection, tenant, ref).
    let filter = match tenant {
        Some(t) => doc! { "tenantId": t },
        None => Document::new(),
    };
    let mut documents: Vec<Scanned> = Vec::new();
    for (collection, fields) in DOCUMENTS {
        let mut projection = doc! { "tenantId": 1, "refId": 1, "createdOn": 1, "updatedOn": 1 };
        for (key, meta) in fields {
            projection.insert(*key, 1);
            projection.insert(format!("{meta}.versionId"), 1);
        }
        let found: Vec<Document> = content
            .mongo()
            .collection::<Document>(collection)
            .find(filter.clone())
            .projection(projection)
            .await
            .map_err(|e| ContentError::of_mongo("scan documents", e))?
            .try_collect()
            .await
            .map_err(|e| ContentError::of_mongo("scan documents", e))?;
        documents.extend(found.iter().map(|d| scanned(collection, fields, d)));
    }
    let present: HashSet<(&str, &str, &str)> = documents
        .iter()
        .map(|d| (d.collection, d.tenant_ref.as_str(), d.ref_id.as_str()))
        .collect();

    let mut pointed: HashSet<(&str, &str, &str)> = HashSet::new();
    for (tenant_ref, table, record_ref, collection, target) in &pointers {
        let wanted = (collection.as_str(), tenant_ref.as_str(), target.as_str());
        pointed.insert(wanted);
        if !present.contains(&wanted) {
            report.dangling.push(Dangling {
                tenant_ref: tenant_ref.clone(),
                from: format!("postgres:{table}/{record_ref}"),
                missing: format!("mongo:{collection}/{target}"),
            });
        }
    }

    // S3 objects under the prefix(es), by key, every version.
    let objects = list_versions(content, tenant.map(|t| format!("{t}/"))).await?;
    let mut referenced: HashSet<&str> = HashSet::new();
    for document in &documents {
        for (key, recorded) in &document.keys {
            referenced.insert(key);
            let versions = objects.get(key);
            match pinned(versions, recorded.as_deref()) {
                Pinned::Missing => report.dangling.push(Dangling {
                    tenant_ref: document.tenant_ref.clone(),
                    from: format!("mongo:{}/{}", document.collection, document.ref_id),
                    missing: match recorded {
                        Some(version) => format!("s3:{key}?versionId={version}"),
                        None => format!("s3:{key}"),
                    },
                }),
                // Versions over the one recorded (a pre-signed PUT used
                // again after its confirm, a racing write that died before
                // taking its version back): nothing reads them, and while
                // they stand the recorded version is noncurrent, which the
                // bucket's lifecycle rule would expire.
                Pinned::Under(newer) => {
                    for version in newer {
                        report.orphans.push(Orphan {
                            tenant_ref: document.tenant_ref.clone(),
                            what: format!("s3:{key}?versionId={}", version.version_id),
                            created_at: version.modified,
                        });
                    }
                }
                Pinned::Current => {}
            }
        }
        let this = (
            document.collection,
            document.tenant_ref.as_str(),
            document.ref_id.as_str(),
        );
        if !pointed.contains(&this) {
            report.orphans.push(Orphan {
                tenant_ref: document.tenant_ref.clone(),
                what: format!("mongo:{}/{}", document.collection, document.ref_id),
                created_at: document.written,
            });
        }
    }
    for (key, versions) in &objects {
        let Some(current) = versions.first().filter(|v| !v.delete_marker) else {
            continue;
        };
        if !referenced.contains(key.as_str()) {
            report.orphans.push(Orphan {
                tenant_ref: key.split('/').next().unwrap_or_default().to_string(),
                what: format!("s3:{key}"),
                created_at: current.modified,
            });
        }
    }
    contracts(pg, content, tenant, &mut report).await?;
    report.dangling.sort_by(|a, b| a.from.cmp(&b.from));
    report.orphans.sort_by(|a, b| a.what.cmp(&b.what));
    Ok(report)
}

/// Where a document's recorded version stands among its key's versions.
#[derive(Debug, PartialEq, Eq)]
enum Pinned<'a> {
    /// It is the current version (or, with none recorded, the key has one).
    Current,
    /// It is there, under these newer versions or delete markers.
    Under(&'a [Listed]),
    /// It is gone (or, with none recorded, the key has no current version).
    Missing,
}

/// `versions`: newest first, as S3 lists them.
fn pinned<'a>(versions: Option<&'a Vec<Listed>>, recorded: Option<&str>) -> Pinned<'a> {
    let Some(versions) = versions else {
        return Pinned::Missing;
    };
    let Some(recorded) = recorded else {
        return match versions.first() {
            Some(v) if !v.delete_marker => Pinned::Current,
            _ => Pinned::Missing,
        };
    };
    match versions
        .iter()
        .position(|v| v.version_id == recorded && !v.delete_marker)
    {
        Some(0) => Pinned::Current,
        Some(at) => Pinned::Under(&versions[..at]),
        None => Pinned::Missing,
    }
}

/// Every version and delete marker of the content bucket under `prefix`,
/// by key, newest first.
async fn list_versions(
    content: &Content,
    prefix: Option<String>,
) -> Result<HashMap<String, Vec<Listed>>, ContentError> {
    let mut listed = content.versions(prefix.as_deref()).await?;
    // Versions and markers come in two lists: per key, the latest first,
    // then newest first (a stable sort keeps S3's order in a tie).
    listed.sort_by(|a, b| {
        a.key
            .cmp(&b.key)
            .then(b.latest.cmp(&a.latest))
            .then(b.modified.cmp(&a.modified))
    });
    let mut by_key: HashMap<String, Vec<Listed>> = HashMap::new();
    for v in listed {
        by_key.entry(v.key.clone()).or_default().push(v);
    }
    Ok(by_key)
}

/// Contracts: every accepted contract's PDF version must exist in the
/// contracts bucket; a PDF no contract points at (an acceptance that
/// failed after the upload) is an orphan, reported as `s3-contracts:` —
/// and, being under Object Lock, only ever reported: strata removes
/// nothing from the contracts bucket.
async fn contracts(
    pg: &Postgres,
    content: &Content,
    tenant: Option<&str>,
    report: &mut Report,
) -> Result<(), ContentError> {
    let mut tx = pg.begin_admin().await.map_err(of_postgres)?;
    let pointers: Vec<(String, String, String, Option<String>)> = pg
        .query_as(
            "SELECT t.ref_id::text, c.ref_id::text, c.pdf_s3_key, c.pdf_version_id \
             FROM contracts c JOIN tenants t ON t.id = c.tenant_id \
             WHERE c.pdf_s3_key IS NOT NULL AND ($1::text IS NULL OR t.ref_id::text = $1)",
        )
        .bind(tenant)
        .fetch_all(&mut *tx)
        .await
        .map_err(of_postgres)?;
    tx.rollback().await.map_err(of_postgres)?;
    let locked = content.contracts();
    let mut referenced: HashSet<&str> = HashSet::new();
    for (tenant_ref, contract_ref, key, version) in &pointers {
        referenced.insert(key);
        let found = locked
            .s3()
            .head_object()
            .bucket(locked.bucket())
            .key(key)
            .set_version_id(version.clone())
            .send()
            .await;
        match found {
            Ok(_) => {}
            Err(e) if crate::stores::s3::is_not_found(&e) => report.dangling.push(Dangling {
                tenant_ref: tenant_ref.clone(),
                from: format!("postgres:contracts/{contract_ref}"),
                missing: format!("s3-contracts:{key}"),
            }),
            Err(e) => return Err(ContentError::of_s3("HeadObject", e)),
        }
    }
    let objects = list_objects(&locked, tenant.map(|t| format!("{t}/"))).await?;
    for (key, modified) in &objects {
        if !referenced.contains(key.as_str()) {
            report.orphans.push(Orphan {
                tenant_ref: key.split('/').next().unwrap_or_default().to_string(),
                what: format!("s3-contracts:{key}"),
                created_at: *modified,
            });
        }
    }
    Ok(())
}

/// Every current object of the bucket under `prefix`, with its last
/// modification time.
async fn list_objects(
    content: &Content,
    prefix: Option<String>,
) -> Result<HashMap<String, Option<DateTime<Utc>>>, ContentError> {
    let mut objects = HashMap::new();
    let mut pages = content
        .s3()
        .list_objects_v2()
        .bucket(content.bucket())
        .set_prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| ContentError::of_s3("ListObjectsV2", e))?;
        for object in page.contents() {
            if let Some(key) = object.key() {
                let modified = object
                    .last_modified()
                    .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()));
                objects.insert(key.to_string(), modified);
            }
        }
    }
    Ok(objects)
}

/// What a repair did.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Repair {
    /// Orphans removed (documents first, then their objects).
    pub removed: Vec<String>,
    /// Orphans younger than the grace period (a write may still be on its
    /// way to pointing at them).
    pub too_young: Vec<String>,
    /// Contract PDFs: under Object Lock, never removed.
    pub locked: Vec<String>,
}

/// Removes the orphans of `report` older than `grace`: an orphan document
/// before its object (so a crash in between leaves an orphan object, not a
/// document pointing at nothing), an orphan object of the content bucket.
/// Never anything in the contracts bucket, never anything younger than the
/// grace period or of unknown age. Safe while strata serves writes: a
/// write points at what it stored within one request, far inside any grace.
pub async fn repair(
    content: &Content,
    report: &Report,
    grace: chrono::Duration,
) -> Result<Repair, ContentError> {
    let mut done = Repair::default();
    let cutoff = Utc::now() - grace;
    for orphan in &report.orphans {
        if orphan.what.starts_with("s3-contracts:") {
            done.locked.push(orphan.what.clone());
            continue;
        }
        if orphan.created_at.is_none_or(|at| at > cutoff) {
            done.too_young.push(orphan.what.clone());
            continue;
        }
        if let Some((collection, fields, document_ref)) = orphan_document(&orphan.what) {
            let keys = remove_document(
                content,
                collection,
                fields,
                &orphan.tenant_ref,
                document_ref,
                cutoff,
            )
            .await?;
            let Some(keys) = keys else {
                // Written again since the scan: no longer an orphan to
                // remove now.
                done.too_young.push(orphan.what.clone());
                continue;
            };
            for key in keys {
                if super::in_prefix(&orphan.tenant_ref, &key) {
                    delete_object(content, &key).await?;
                }
            }
            done.removed.push(orphan.what.clone());
        } else if let Some(object) = orphan.what.strip_prefix("s3:") {
            match object.split_once("?versionId=") {
                // A version over a recorded one: removed for good, so the
                // recorded version is current again.
                Some((key, version)) if super::in_prefix(&orphan.tenant_ref, key) => {
                    content.delete_version(key, version).await?;
                }
                Some(_) => continue,
                None => delete_object(content, object).await?,
            }
            done.removed.push(orphan.what.clone());
        }
    }
    Ok(done)
}

/// The collection, key fields and ref of an orphan document's `what`.
fn orphan_document(what: &str) -> Option<(&'static str, KeyFields, &str)> {
    let rest = what.strip_prefix("mongo:")?;
    let (collection, document_ref) = rest.split_once('/')?;
    DOCUMENTS
        .iter()
        .find(|(c, _)| *c == collection)
        .map(|(c, fields)| (*c, *fields, document_ref))
}

/// Deletes an orphan document unless it was written after `cutoff` (a
/// write may be about to point at it); returns the keys it held, `None`
/// when it was spared or already gone.
async fn remove_document(
    content: &Content,
    collection: &str,
    fields: &[(&str, &str)],
    tenant_ref: &str,
    document_ref: &str,
    cutoff: DateTime<Utc>,
) -> Result<Option<Vec<String>>, ContentError> {
    let cutoff = mongodb::bson::DateTime::from_millis(cutoff.timestamp_millis());
    let filter = doc! {
        "tenantId": tenant_ref,
        "refId": document_ref,
        "createdOn": { "$lte": cutoff },
        "updatedOn": { "$not": { "$gt": cutoff } },
    };
    let removed = content
        .mongo()
        .collection::<Document>(collection)
        .find_one_and_delete(filter)
        .await
        .map_err(|e| ContentError::of_mongo("delete orphan", e))?;
    Ok(removed.map(|d| {
        fields
            .iter()
            .filter_map(|(key, _)| d.get_str(key).ok().map(str::to_string))
            .collect()
    }))
}

/// A delete marker over the current version (the bucket's lifecycle
/// expires the old version later). Only ever the content bucket.
async fn delete_object(content: &Content, key: &str) -> Result<(), ContentError> {
    content
        .s3()
        .delete_object()
        .bucket(content.bucket())
        .key(key)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| ContentError::of_s3("DeleteObject", e))
}

/// The transaction-level advisory lock that lets one instance at a time
/// run the periodic reconciliation ("strata:reconcile" as a number).
pub const LOCK_KEY: i64 = 0x7374_7261_7463_6f6e;

/// One periodic pass: the scan and a repair, on the instance that holds
/// the advisory lock (`None`: another one does, nothing was done).
pub async fn run_locked(
    pg: &Postgres,
    content: &Content,
    grace: chrono::Duration,
) -> Result<Option<(Report, Repair)>, ContentError> {
    // The lock lives as long as this transaction on the administrative
    // (direct) path, so it is released even if this instance dies.
    let mut tx = pg.begin_admin().await.map_err(of_postgres)?;
    let (locked,): (bool,) = pg
        .query_as("SELECT pg_try_advisory_xact_lock($1)")
        .bind(LOCK_KEY)
        .fetch_one(&mut *tx)
        .await
        .map_err(of_postgres)?;
    if !locked {
        return Ok(None);
    }
    let report = scan(pg, content, None).await?;
    let repaired = repair(content, &report, grace).await?;
    tx.commit().await.map_err(of_postgres)?;
    Ok(Some((report, repaired)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pointed_collection_is_scanned_and_repairable() {
        for (_, _, collection) in POINTERS {
            assert!(
                DOCUMENTS.iter().any(|(c, _)| *c == collection),
                "{collection} is pointed at but not scanned"
            );
            let what = format!("mongo:{collection}/01JABCDEFGHJKMNPQRSTVWXYZ0");
            let (c, _, r) = orphan_document(&what).expect("a document");
            assert_eq!((c, r), (collection, "01JABCDEFGHJKMNPQRSTVWXYZ0"));
        }
        assert!(orphan_document("s3:a/b").is_none());
        assert!(orphan_document("mongo:skills/x").is_none());
    }

    fn version(id: &str, delete_marker: bool) -> Listed {
        Listed {
            key: "t/k".to_string(),
            version_id: id.to_string(),
            modified: None,
            latest: false,
            delete_marker,
        }
    }

    #[test]
    fn a_recorded_version_is_current_under_newer_ones_or_missing() {
        let versions = vec![
            version("m", true),
            version("c", false),
            version("b", false),
            version("a", false),
        ];
        assert_eq!(
            pinned(Some(&versions), Some("b")),
            Pinned::Under(&versions[..2])
        );
        assert_eq!(
            pinned(Some(&versions[2..].to_vec()), Some("b")),
            Pinned::Current
        );
        assert_eq!(
            pinned(Some(&versions), Some("m")),
            Pinned::Missing,
            "a marker is no version"
        );
        assert_eq!(pinned(Some(&versions), Some("z")), Pinned::Missing);
        assert_eq!(pinned(None, Some("a")), Pinned::Missing);
        // Nothing recorded (a bucket without versions): the current object counts.
        assert_eq!(pinned(Some(&versions), None), Pinned::Missing);
        assert_eq!(pinned(Some(&versions[1..].to_vec()), None), Pinned::Current);
    }
}
