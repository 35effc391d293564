//! The tenant purge: a tenant deleted more than `jobs.purge_after_days`
//! ago loses everything it owns in all three stores — its S3 objects and
//! all their versions under `{tenantRef}/`, its MongoDB documents
//! (`tenantId`), its PostgreSQL rows — except contract PDFs under S3
//! Object Lock and the contract rows that describe them, which stay until
//! their retain-until date and go in a later run. strata never asks S3 to
//! remove a version whose retention has not passed.
//!
//! Every step is idempotent and the tenant row goes last, so a run cut at
//! any point is completed by the next one.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::{Job, JobError};
use crate::config::Config;
use crate::stores::Stores;

pub const NAME: &str = "tenant_purge";

/// Rows that stay while a retention holds, per table: SQL that is true for
/// the rows that may go.
const MAY_GO: &[(&str, &str)] = &[(
    "contracts",
    "(retain_until IS NULL OR retain_until <= now())",
)];

pub struct Purge {
    stores: Stores,
    /// Read at every run: a SIGHUP reload applies at the next one.
    live: crate::ops::reload::Live,
}

impl Purge {
    pub fn new(stores: Stores, live: crate::ops::reload::Live) -> Self {
        Self { stores, live }
    }
}

impl Job for Purge {
    fn name(&self) -> &'static str {
        NAME
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(self.live.borrow().jobs.purge_interval_secs)
    }

    async fn run(&self) -> Result<Value, JobError> {
        let config: std::sync::Arc<Config> = self.live.borrow().clone();
        let due = due_tenants(&self.stores, config.jobs.purge_after_days).await?;
        let mut reports = Vec::new();
        for (id, tenant_ref) in due {
            reports.push(purge_tenant(&self.stores, &config, id, &tenant_ref).await?);
        }
        Ok(serde_json::json!({ "tenants": reports }))
    }
}

/// What the purge did and kept for one tenant.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantPurge {
    pub tenant_ref: String,
    /// Rows deleted per table.
    pub postgres: BTreeMap<String, u64>,
    /// Documents deleted per collection.
    pub mongo: BTreeMap<String, u64>,
    /// Object versions (and delete markers) deleted.
    pub s3_versions_deleted: u64,
    /// What stays, and why.
    pub kept: Vec<String>,
    /// Nothing of the tenant is left (its row is gone too).
    pub complete: bool,
}

async fn due_tenants(
    stores: &Stores,
    after_days: u32,
) -> Result<Vec<(uuid::Uuid, String)>, JobError> {
    let mut tx = stores.postgres.begin_admin().await?;
    let due = sqlx::query_as(
        "SELECT id, ref_id::text FROM tenants \
         WHERE status = 'deleted' AND deleted_on <= now() - make_interval(days => $1) \
         ORDER BY deleted_on",
    )
    .bind(i32::try_from(after_days).unwrap_or(i32::MAX))
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(due)
}

pub async fn purge_tenant(
    stores: &Stores,
    config: &Config,
    tenant_id: uuid::Uuid,
    tenant_ref: &str,
) -> Result<TenantPurge, JobError> {
    let mut report = TenantPurge {
        tenant_ref: tenant_ref.to_string(),
        ..Default::default()
    };
    // The split pattern's write order reversed: pointers (PostgreSQL rows)
    // first, then the documents, then the objects, so that a run cut at any
    // point never leaves a pointer to something already gone. The tenant
    // row goes last: it is what the next run finds the tenant by.
    let rows_left = purge_postgres(stores, tenant_id, &mut report).await?;
    fault("purge-postgres")?;
    purge_mongo(stores, tenant_ref, &mut report).await?;
    fault("purge-mongo")?;
    purge_s3(stores, config, tenant_ref, &mut report).await?;
    if !rows_left && !report.kept.iter().any(|k| k.starts_with("s3://")) {
        let mut tx = stores.postgres.begin_admin().await?;
        let gone = sqlx::query("DELETE FROM tenants WHERE id = $1 AND status = 'deleted'")
            .bind(tenant_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if gone.rows_affected() > 0 {
            report.postgres.insert("tenants".to_string(), 1);
        }
        report.complete = true;
    }
    Ok(report)
}

/// The test-only fault hook ([`crate::fault`]) at a point of the purge.
fn fault(point: &'static str) -> Result<(), JobError> {
    if crate::fault::at(point) {
        return Err(JobError::Fault(point));
    }
    Ok(())
}

async fn purge_s3(
    stores: &Stores,
    config: &Config,
    tenant_ref: &str,
    report: &mut TenantPurge,
) -> Result<(), JobError> {
    let s3 = stores.s3.client();
    let prefix = format!("{tenant_ref}/");
    let definitions =
        crate::schema::s3::definitions().map_err(|e| JobError::Schema(e.to_string()))?;
    for bucket_def in definitions {
        let bucket = config.s3.bucket_name(&bucket_def.purpose);
        let mut key_marker: Option<String> = None;
        let mut version_marker: Option<String> = None;
        loop {
            let page = s3
                .list_object_versions()
                .bucket(&bucket)
                .prefix(&prefix)
                .set_key_marker(key_marker.clone())
                .set_version_id_marker(version_marker.clone())
                .send()
                .await
                .map_err(|e| JobError::S3(format!("listing {bucket}/{prefix}: {e:?}")))?;
            let versions = page.versions().iter().map(|v| {
                (
                    v.key().unwrap_or_default().to_string(),
                    v.version_id().map(str::to_string),
                )
            });
            let markers = page.delete_markers().iter().map(|m| {
                (
                    m.key().unwrap_or_default().to_string(),
                    m.version_id().map(str::to_string),
                )
            });
            let all: Vec<(String, Option<String>)> = versions.chain(markers).collect();
            for (key, version) in all {
                let retained = if bucket_def.object_lock {
                    retained_until(stores, &bucket, &key, version.as_deref()).await?
                } else {
                    None
                };
                if let Some(until) = retained {
                    report.kept.push(format!(
                        "s3://{bucket}/{key} (version {}): under Object Lock until {until}",
                        version.as_deref().unwrap_or("null")
                    ));
                    continue;
                }
                s3.delete_object()
                    .bucket(&bucket)
                    .key(&key)
                    .set_version_id(version)
                    .send()
                    .await
                    .map_err(|e| JobError::S3(format!("deleting {bucket}/{key}: {e:?}")))?;
                report.s3_versions_deleted += 1;
                // Midway through the objects.
                fault("purge-s3")?;
            }
            if page.is_truncated() == Some(true) {
                key_marker = page.next_key_marker().map(str::to_string);
                version_marker = page.next_version_id_marker().map(str::to_string);
            } else {
                break;
            }
        }
    }
    Ok(())
}

/// The retain-until date of a locked version, if it has not passed.
async fn retained_until(
    stores: &Stores,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> Result<Option<String>, JobError> {
    let answer = stores
        .s3
        .client()
        .get_object_retention()
        .bucket(bucket)
        .key(key)
        .set_version_id(version.map(str::to_string))
        .send()
        .await;
    let retention = match answer {
        Ok(answer) => answer.retention,
        // A delete marker or a version without retention.
        Err(e) if is_no_retention(&e) => None,
        Err(e) => return Err(JobError::S3(format!("retention of {bucket}/{key}: {e:?}"))),
    };
    let until = retention.and_then(|r| r.retain_until_date);
    Ok(until.and_then(|until| {
        let until_secs = until.secs();
        let now = chrono::Utc::now().timestamp();
        (until_secs > now).then(|| {
            chrono::DateTime::from_timestamp(until_secs, 0)
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| until_secs.to_string())
        })
    }))
}

fn is_no_retention<E: aws_sdk_s3::error::ProvideErrorMetadata>(
    error: &aws_sdk_s3::error::SdkError<E>,
) -> bool {
    matches!(
        error.as_service_error().and_then(|e| e.code()),
        Some(
            "NoSuchObjectLockConfiguration"
                | "ObjectLockConfigurationNotFoundError"
                | "MethodNotAllowed"
                | "NoSuchKey"
                | "InvalidRequest"
        )
    ) || crate::stores::s3::is_not_found(error)
}

async fn purge_mongo(
    stores: &Stores,
    tenant_ref: &str,
    report: &mut TenantPurge,
) -> Result<(), JobError> {
    let definitions =
        crate::schema::mongo::definitions().map_err(|e| JobError::Schema(e.to_string()))?;
    for collection in definitions {
        let deleted = stores
            .mongo
            .database()
            .collection::<mongodb::bson::Document>(&collection.name)
            .delete_many(mongodb::bson::doc! { "tenantId": tenant_ref })
            .await?;
        if deleted.deleted_count > 0 {
            report
                .mongo
                .insert(collection.name.clone(), deleted.deleted_count);
        }
    }
    Ok(())
}

/// Deletes the tenant's rows (not the tenant row); whether some stay.
async fn purge_postgres(
    stores: &Stores,
    tenant_id: uuid::Uuid,
    report: &mut TenantPurge,
) -> Result<bool, JobError> {
    let pg = &stores.postgres;
    // Every table with a tenant_id (so a table added later is purged too),
    // the tenants table itself last.
    let mut tx = pg.begin_admin().await?;
    let mut tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.table_name::text FROM information_schema.columns c \
         JOIN information_schema.tables t USING (table_schema, table_name) \
         WHERE c.table_schema = current_schema() AND c.column_name = 'tenant_id' \
           AND t.table_type = 'BASE TABLE' ORDER BY 1",
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    // Rows that reference other tenant rows go first: retry a table whose
    // delete a foreign key refused once the others are done.
    let mut kept_rows = 0_u64;
    let mut rounds = 0;
    while !tables.is_empty() && rounds < 10 {
        rounds += 1;
        let mut blocked = Vec::new();
        for table in std::mem::take(&mut tables) {
            let may_go = MAY_GO
                .iter()
                .find(|(t, _)| *t == table)
                .map(|(_, sql)| *sql)
                .unwrap_or("true");
            let mut tx = pg.begin_admin().await?;
            let sql = format!(
                "DELETE FROM \"{}\" WHERE tenant_id = $1 AND {may_go}",
                table.replace('"', "\"\"")
            );
            match sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(tenant_id)
                .execute(&mut *tx)
                .await
            {
                Ok(done) => {
                    tx.commit().await?;
                    if done.rows_affected() > 0 {
                        *report.postgres.entry(table.clone()).or_default() += done.rows_affected();
                    }
                    if may_go != "true" {
                        let mut tx = pg.begin_admin().await?;
                        let left: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                            "SELECT count(*) FROM \"{}\" WHERE tenant_id = $1",
                            table.replace('"', "\"\"")
                        )))
                        .bind(tenant_id)
                        .fetch_one(&mut *tx)
                        .await?;
                        tx.commit().await?;
                        if left > 0 {
                            kept_rows += left as u64;
                            report.kept.push(format!(
                                "{left} {table} row(s): their S3 objects are under retention"
                            ));
                        }
                    }
                }
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23503") => {
                    blocked.push(table);
                }
                Err(e) => return Err(e.into()),
            }
        }
        tables = blocked;
    }
    if !tables.is_empty() {
        report
            .kept
            .push(format!("rows of {} still referenced", tables.join(", ")));
        return Ok(true);
    }
    Ok(kept_rows > 0)
}
