//! Tenant export and import across the three stores: one tar archive with
//! the tenant's PostgreSQL rows (JSON lines, read in one REPEATABLE READ
//! snapshot, soft-deleted rows included), its MongoDB documents (canonical
//! extended JSON lines), its S3 objects (current versions, streamed: an
//! object never has to fit in memory) and, last, `manifest.json` with the
//! counts and the SHA-256 and size of every file.
//!
//! Import verifies the whole archive against its manifest before writing
//! anything (a corrupted or incomplete archive is refused), then restores
//! S3 first, MongoDB second, PostgreSQL last (the split pattern's order: no
//! pointer before its target), keeping every ref (and internal id)
//! identical. Service tokens are not exported: they are credentials; the
//! target issues its own.

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};

use futures_util::TryStreamExt as _;
use std::path::{Path, PathBuf};

use aws_sdk_s3::primitives::ByteStream;
use mongodb::bson::{Bson, Document, doc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::stores::Stores;

pub const FORMAT: u32 = 1;
const MANIFEST: &str = "manifest.json";

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("no such tenant: {0}")]
    UnknownTenant(String),
    #[error("the archive is not a strata export: {0}")]
    NotAnExport(String),
    #[error("the archive does not match its manifest: {0}")]
    Corrupt(String),
    #[error("tenant {0} already exists in these stores")]
    TenantExists(String),
    #[error("file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("mongodb: {0}")]
    Mongo(#[from] mongodb::error::Error),
    #[error("s3: {0}")]
    S3(String),
    #[error("schema definitions: {0}")]
    Schema(String),
}

fn io(path: impl AsRef<Path>) -> impl FnOnce(std::io::Error) -> TransferError {
    let path = path.as_ref().display().to_string();
    move |e| TransferError::File {
        path,
        reason: e.to_string(),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format: u32,
    pub strata_version: String,
    pub exported_at: chrono::DateTime<chrono::Utc>,
    pub tenant_ref: String,
    /// Rows per table, documents per collection, objects per bucket.
    pub counts: BTreeMap<String, u64>,
    pub files: Vec<FileEntry>,
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<W> Hashing<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hash: Sha256::new(),
            bytes: 0,
        }
    }
    fn entry(self, path: String) -> (W, FileEntry) {
        let entry = FileEntry {
            path,
            sha256: hex::encode(self.hash.finalize()),
            bytes: self.bytes,
        };
        (self.inner, entry)
    }
}

/// Tables of the tenant's rows: every base table with a `tenant_id`, but
/// strata's own (`strata_*`: tokens, outbox, jobs, history).
async fn tenant_tables(tx: &mut sqlx::PgConnection) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT c.table_name::text FROM information_schema.columns c \
         JOIN information_schema.tables t USING (table_schema, table_name) \
         WHERE c.table_schema = current_schema() AND c.column_name = 'tenant_id' \
           AND t.table_type = 'BASE TABLE' AND c.table_name NOT LIKE 'strata\\_%' ORDER BY 1",
    )
    .fetch_all(tx)
    .await
}

fn quoted(table: &str) -> String {
    format!("\"{}\"", table.replace('"', "\"\""))
}

struct Archive {
    builder: tar::Builder<std::fs::File>,
    files: Vec<FileEntry>,
    counts: BTreeMap<String, u64>,
}

impl Archive {
    /// Adds a file written to a temporary file first (JSON lines).
    fn add_lines(&mut self, path: String, lines: &[String]) -> Result<(), TransferError> {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        let entry = self
            .builder
            .append_writer(&mut header, &path)
            .map_err(io(&path))?;
        let mut hashing = Hashing::new(entry);
        for line in lines {
            hashing.write_all(line.as_bytes()).map_err(io(&path))?;
            hashing.write_all(b"\n").map_err(io(&path))?;
        }
        let (entry, file) = hashing.entry(path.clone());
        entry.finish().map_err(io(&path))?;
        self.files.push(file);
        Ok(())
    }
}

/// Writes tenant `tenant_ref` to `output`; `progress` hears one line per
/// table, collection and bucket.
pub async fn export(
    stores: &Stores,
    config: &Config,
    tenant_ref: &str,
    output: &Path,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<Manifest, TransferError> {
    let file = std::fs::File::create(output).map_err(io(output))?;
    let mut archive = Archive {
        builder: tar::Builder::new(file),
        files: Vec::new(),
        counts: BTreeMap::new(),
    };

    // PostgreSQL: one snapshot for every table.
    let mut tx = stores.postgres.begin_admin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    let tenant: Option<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT id, row_to_json(t)::text FROM tenants t WHERE ref_id = $1")
            .bind(tenant_ref)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((tenant_id, tenant_row)) = tenant else {
        return Err(TransferError::UnknownTenant(tenant_ref.to_string()));
    };
    archive.add_lines("postgres/tenants.jsonl".into(), &[tenant_row])?;
    for table in tenant_tables(&mut tx).await? {
        progress(&format!("postgres: {table}"));
        let path = format!("postgres/{table}.jsonl");
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        let entry = archive
            .builder
            .append_writer(&mut header, &path)
            .map_err(io(&path))?;
        let mut hashing = Hashing::new(entry);
        // Row by row from the server into the archive: memory stays flat.
        let mut rows = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!(
            "SELECT row_to_json(t)::text FROM {} t WHERE tenant_id = $1",
            quoted(&table)
        )))
        .bind(tenant_id)
        .fetch(&mut *tx);
        let mut count = 0_u64;
        while let Some(row) = rows.try_next().await? {
            hashing.write_all(row.as_bytes()).map_err(io(&path))?;
            hashing.write_all(b"\n").map_err(io(&path))?;
            count += 1;
        }
        drop(rows);
        let (entry, file) = hashing.entry(path.clone());
        entry.finish().map_err(io(&path))?;
        archive.files.push(file);
        archive.counts.insert(format!("postgres/{table}"), count);
    }
    tx.commit().await?;

    // MongoDB: every collection's documents of the tenant.
    let collections =
        crate::schema::mongo::definitions().map_err(|e| TransferError::Schema(e.to_string()))?;
    for collection in collections {
        progress(&format!("mongo: {}", collection.name));
        let mut cursor = stores
            .mongo
            .database()
            .collection::<Document>(&collection.name)
            .find(doc! { "tenantId": tenant_ref })
            .await?;
        let path = format!("mongo/{}.jsonl", collection.name);
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        let entry = archive
            .builder
            .append_writer(&mut header, &path)
            .map_err(io(&path))?;
        let mut hashing = Hashing::new(entry);
        let mut count = 0_u64;
        while cursor.advance().await? {
            let document = cursor.deserialize_current()?;
            let line = Bson::Document(document)
                .into_canonical_extjson()
                .to_string();
            hashing.write_all(line.as_bytes()).map_err(io(&path))?;
            hashing.write_all(b"\n").map_err(io(&path))?;
            count += 1;
        }
        let (entry, file) = hashing.entry(path.clone());
        entry.finish().map_err(io(&path))?;
        archive.files.push(file);
        archive
            .counts
            .insert(format!("mongo/{}", collection.name), count);
    }

    // S3: current versions under the tenant's prefix, streamed.
    let buckets =
        crate::schema::s3::definitions().map_err(|e| TransferError::Schema(e.to_string()))?;
    let s3 = stores.s3.client();
    for bucket_def in buckets {
        let bucket = config.s3.bucket_name(&bucket_def.purpose);
        progress(&format!("s3: {bucket}"));
        let mut continuation: Option<String> = None;
        let mut count = 0_u64;
        loop {
            let page = s3
                .list_objects_v2()
                .bucket(&bucket)
                .prefix(format!("{tenant_ref}/"))
                .set_continuation_token(continuation.clone())
                .send()
                .await
                .map_err(|e| TransferError::S3(format!("listing {bucket}: {e:?}")))?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                let got = s3
                    .get_object()
                    .bucket(&bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| TransferError::S3(format!("reading {bucket}/{key}: {e:?}")))?;
                let path = format!("s3/{}/{key}", bucket_def.purpose);
                let mut header = tar::Header::new_gnu();
                header.set_mode(0o644);
                let entry = archive
                    .builder
                    .append_writer(&mut header, &path)
                    .map_err(io(&path))?;
                let mut hashing = Hashing::new(entry);
                let mut body = got.body;
                while let Some(chunk) = body
                    .try_next()
                    .await
                    .map_err(|e| TransferError::S3(format!("reading {bucket}/{key}: {e}")))?
                {
                    hashing.write_all(&chunk).map_err(io(&path))?;
                }
                let (entry, file) = hashing.entry(path.clone());
                entry.finish().map_err(io(&path))?;
                archive.files.push(file);
                count += 1;
            }
            match page.next_continuation_token() {
                Some(token) if page.is_truncated() == Some(true) => {
                    continuation = Some(token.to_string())
                }
                _ => break,
            }
        }
        archive
            .counts
            .insert(format!("s3/{}", bucket_def.purpose), count);
    }

    let manifest = Manifest {
        format: FORMAT,
        strata_version: env!("CARGO_PKG_VERSION").to_string(),
        exported_at: chrono::Utc::now(),
        tenant_ref: tenant_ref.to_string(),
        counts: archive.counts,
        files: archive.files,
    };
    let text = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o644);
    header.set_size(text.len() as u64);
    header.set_cksum();
    archive
        .builder
        .append_data(&mut header, MANIFEST, text.as_slice())
        .map_err(io(output))?;
    let mut file = archive.builder.into_inner().map_err(io(output))?;
    file.flush().map_err(io(output))?;
    file.sync_all().map_err(io(output))?;
    Ok(manifest)
}

/// Unpacks `archive` into `dir`, checking every file against the manifest
/// (which comes last): nothing missing, nothing extra, every SHA-256 and
/// size right. Paths are the archive's, never outside `dir`.
fn unpack_verified(archive: &Path, dir: &Path) -> Result<Manifest, TransferError> {
    let file = std::fs::File::open(archive).map_err(io(archive))?;
    let mut tar = tar::Archive::new(file);
    let mut seen: BTreeMap<String, FileEntry> = BTreeMap::new();
    let mut manifest: Option<Manifest> = None;
    for entry in tar.entries().map_err(io(archive))? {
        let mut entry = entry.map_err(|e| TransferError::Corrupt(e.to_string()))?;
        let path = entry
            .path()
            .map_err(|e| TransferError::Corrupt(e.to_string()))?
            .to_string_lossy()
            .to_string();
        if path.split('/').any(|part| part == ".." || part.is_empty()) || path.starts_with('/') {
            return Err(TransferError::Corrupt(format!("unsafe path {path}")));
        }
        if path == MANIFEST {
            let mut text = Vec::new();
            entry
                .read_to_end(&mut text)
                .map_err(|e| TransferError::Corrupt(e.to_string()))?;
            manifest = Some(
                serde_json::from_slice(&text)
                    .map_err(|e| TransferError::NotAnExport(format!("manifest: {e}")))?,
            );
            continue;
        }
        let target = dir.join(&path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let out = std::fs::File::create(&target).map_err(io(&target))?;
        let mut hashing = Hashing::new(out);
        std::io::copy(&mut entry, &mut hashing)
            .map_err(|e| TransferError::Corrupt(format!("{path}: {e}")))?;
        let (_, file) = hashing.entry(path.clone());
        seen.insert(path, file);
    }
    let manifest = manifest.ok_or_else(|| TransferError::NotAnExport("no manifest.json".into()))?;
    if manifest.format != FORMAT {
        return Err(TransferError::NotAnExport(format!(
            "format {} (this strata reads {FORMAT})",
            manifest.format
        )));
    }
    for expected in &manifest.files {
        match seen.remove(&expected.path) {
            Some(found) if found == *expected => {}
            Some(found) => {
                return Err(TransferError::Corrupt(format!(
                    "{}: sha256 {} ({} bytes), the manifest says {} ({} bytes)",
                    expected.path, found.sha256, found.bytes, expected.sha256, expected.bytes
                )));
            }
            None => {
                return Err(TransferError::Corrupt(format!(
                    "{} is missing",
                    expected.path
                )));
            }
        }
    }
    if let Some(extra) = seen.keys().next() {
        return Err(TransferError::Corrupt(format!(
            "{extra} is not in the manifest"
        )));
    }
    Ok(manifest)
}

fn lines(path: &Path) -> Result<Vec<String>, TransferError> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    std::io::BufReader::new(file)
        .lines()
        .map(|l| l.map_err(io(path)))
        .filter(|l| !matches!(l, Ok(text) if text.is_empty()))
        .collect()
}

/// Restores an export into these stores. The tenant must not exist here.
pub async fn import(
    stores: &Stores,
    config: &Config,
    archive: &Path,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<Manifest, TransferError> {
    let dir = tempfile::tempdir().map_err(io(std::env::temp_dir()))?;
    progress("verifying the archive");
    let manifest = unpack_verified(archive, dir.path())?;
    let root = dir.path();
    let tenant_ref = manifest.tenant_ref.clone();

    let mut tx = stores.postgres.begin_admin().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tenants WHERE ref_id = $1)")
            .bind(&tenant_ref)
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    if exists {
        return Err(TransferError::TenantExists(tenant_ref));
    }

    // S3 first, then MongoDB, then PostgreSQL: no pointer before its target.
    let s3 = stores.s3.client();
    for file in manifest.files.iter().filter(|f| f.path.starts_with("s3/")) {
        let rest = &file.path["s3/".len()..];
        let Some((purpose, key)) = rest.split_once('/') else {
            return Err(TransferError::Corrupt(format!("{}: no bucket", file.path)));
        };
        if !key.starts_with(&format!("{tenant_ref}/")) {
            return Err(TransferError::Corrupt(format!(
                "{}: outside the tenant's prefix",
                file.path
            )));
        }
        progress(&format!("s3: {key}"));
        let body = ByteStream::from_path(root.join(&file.path))
            .await
            .map_err(|e| TransferError::S3(e.to_string()))?;
        s3.put_object()
            .bucket(config.s3.bucket_name(purpose))
            .key(key)
            .body(body)
            .send()
            .await
            .map_err(|e| TransferError::S3(format!("writing {key}: {e:?}")))?;
    }
    for file in manifest
        .files
        .iter()
        .filter(|f| f.path.starts_with("mongo/"))
    {
        let name = file.path["mongo/".len()..].trim_end_matches(".jsonl");
        progress(&format!("mongo: {name}"));
        let mut documents = Vec::new();
        for line in lines(&root.join(&file.path))? {
            let value: serde_json::Value = serde_json::from_str(&line)
                .map_err(|e| TransferError::Corrupt(format!("{}: {e}", file.path)))?;
            match Bson::try_from(value) {
                Ok(Bson::Document(d)) if d.get_str("tenantId") == Ok(tenant_ref.as_str()) => {
                    documents.push(d)
                }
                _ => {
                    return Err(TransferError::Corrupt(format!(
                        "{}: a document not of tenant {tenant_ref}",
                        file.path
                    )));
                }
            }
        }
        if !documents.is_empty() {
            stores
                .mongo
                .database()
                .collection::<Document>(name)
                .insert_many(documents)
                .await?;
        }
    }

    // PostgreSQL in one transaction, rows as they were (states included:
    // migration 0010 lets the migration role restore them).
    let mut tx = stores.postgres.begin_admin().await?;
    sqlx::query("SELECT set_config('strata.restoring', 'on', true)")
        .execute(&mut *tx)
        .await?;
    let mut pending: Vec<&FileEntry> = manifest
        .files
        .iter()
        .filter(|f| f.path.starts_with("postgres/"))
        .collect();
    // The tenant first, then tables whose references are in place.
    pending.sort_by_key(|f| f.path != "postgres/tenants.jsonl");
    let mut rounds = 0;
    while !pending.is_empty() && rounds < 12 {
        rounds += 1;
        let mut later = Vec::new();
        for file in pending {
            let table = file.path["postgres/".len()..].trim_end_matches(".jsonl");
            let rows = lines(&root.join(&file.path))?;
            sqlx::query("SAVEPOINT restore_table")
                .execute(&mut *tx)
                .await?;
            let mut inserted = Ok(());
            for chunk in rows.chunks(1_000) {
                let values: Result<Vec<serde_json::Value>, _> =
                    chunk.iter().map(|r| serde_json::from_str(r)).collect();
                let values =
                    values.map_err(|e| TransferError::Corrupt(format!("{}: {e}", file.path)))?;
                let done = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO {table} \
                     SELECT * FROM json_populate_recordset(NULL::{table}, $1::json)",
                    table = quoted(table)
                )))
                .bind(serde_json::Value::Array(values))
                .execute(&mut *tx)
                .await;
                if let Err(e) = done {
                    inserted = Err(e);
                    break;
                }
            }
            match inserted {
                Ok(()) => {
                    sqlx::query("RELEASE SAVEPOINT restore_table")
                        .execute(&mut *tx)
                        .await?;
                    progress(&format!("postgres: {table} ({} rows)", rows.len()));
                }
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23503") => {
                    sqlx::query("ROLLBACK TO SAVEPOINT restore_table")
                        .execute(&mut *tx)
                        .await?;
                    later.push(file);
                }
                Err(e) => return Err(e.into()),
            }
        }
        pending = later;
    }
    if !pending.is_empty() {
        return Err(TransferError::Corrupt(format!(
            "rows of {} reference rows that are not in the archive",
            pending
                .iter()
                .map(|f| f.path.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    tx.commit().await?;
    Ok(manifest)
}

/// Where an export goes by default.
pub fn default_output(tenant_ref: &str) -> PathBuf {
    PathBuf::from(format!("strata-tenant-{tenant_ref}.tar"))
}
