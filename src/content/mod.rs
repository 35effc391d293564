//! The split pattern's write and read path (SPEC section 2), one module for
//! every entity: the bytes go to S3 under the tenant's prefix (each request
//! carries a Content-MD5 that S3 verifies; strata computes the SHA-256 it
//! records), then the MongoDB document (s3Key, size, sha256, metadata),
//! then, by the caller, the PostgreSQL pointer in the transaction that also
//! moves the record's state machine. A crash between any two steps leaves
//! at most an orphan (an object or a document nothing points at), never a
//! pointer to something missing; [`reconcile`] finds both.
//!
//! Bodies are streamed: up to `content.part_size_bytes` one PutObject,
//! above it a multipart upload of parts of that size (aborted on failure),
//! so at most one part is in memory whatever the size.
//!
//! Content-MD5 rather than `x-amz-checksum-sha256`: every S3 (AWS, MinIO,
//! Ceph radosgw of any release) verifies Content-MD5 on PutObject and
//! UploadPart; the newer checksum headers are not verified by all of them.
//!
//! Nothing here knows HTTP: the API maps [`ContentError`] to problems.

pub mod contracts;
pub mod onboarding;
pub mod outputs;
pub mod reconcile;
pub mod strategies;

use std::fmt::Display;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use base64::Engine;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use mongodb::Database;
use sha2::Digest;

use crate::config::{ContentConfig, S3Config};
use crate::stores::{Failure, Stores};

/// What can go wrong on the split path.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("the body is larger than the {limit} bytes accepted here")]
    TooLarge { limit: u64 },
    #[error("media type {given:?} is not accepted here; accepted: {accepted}")]
    UnsupportedType { given: String, accepted: String },
    #[error("the body could not be read: {0}")]
    Body(String),
    #[error("{0}")]
    NotFound(&'static str),
    #[error("the range is not satisfiable")]
    RangeNotSatisfiable,
    /// A store went away or timed out: the same request may succeed later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store error: {0}")]
    Store(String),
    /// A direct upload that was never made (or under another key).
    #[error("nothing was uploaded under this ref")]
    UploadMissing,
    /// A direct upload that differs from what was declared.
    #[error("{field}: {message}")]
    Mismatch {
        field: &'static str,
        message: String,
    },
    /// A concurrent write took what this one was about to write (the
    /// request may be repeated).
    #[error("{0}")]
    Conflict(String),
    /// The record is in a state in which its content may not be written.
    #[error("a {entity} in state {current} takes no content here")]
    NotWritable {
        entity: &'static str,
        current: String,
        allowed: Vec<String>,
    },
    /// The test-only fault hook fired (see [`checkpoint`]).
    #[error("fault injected after the {0} step")]
    Fault(&'static str),
}

impl ContentError {
    fn of_s3<E: ProvideErrorMetadata + std::error::Error + 'static>(
        what: &str,
        error: SdkError<E>,
    ) -> Self {
        let detail = format!(
            "S3 {what}: {}",
            aws_sdk_s3::error::DisplayErrorContext(&error)
        );
        if Failure::of_s3(&error).is_transient() {
            ContentError::Unavailable(detail)
        } else {
            ContentError::Store(detail)
        }
    }

    pub(crate) fn of_mongo(what: &str, error: mongodb::error::Error) -> Self {
        let detail = format!("MongoDB {what}: {error}");
        if Failure::of_mongo(&error).is_transient() {
            ContentError::Unavailable(detail)
        } else {
            ContentError::Store(detail)
        }
    }
}

/// Why a pointer's transaction wrote nothing.
#[derive(Debug)]
pub enum PointError {
    Record(crate::records::RecordError),
    /// The record left the states its content may be written in (its
    /// current state).
    NotWritable(String),
}

impl From<crate::records::RecordError> for PointError {
    fn from(e: crate::records::RecordError) -> Self {
        PointError::Record(e)
    }
}

/// The steps of a split write, after each of which the test-only fault hook
/// may fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The object is in S3.
    Object,
    /// The MongoDB document is written.
    Document,
    /// The PostgreSQL pointer is written, not yet committed.
    Pointer,
    /// Committed, not yet answered.
    Committed,
}

impl Step {
    pub const ALL: [Step; 4] = [Step::Object, Step::Document, Step::Pointer, Step::Committed];

    pub fn name(self) -> &'static str {
        match self {
            Step::Object => "s3",
            Step::Document => "mongo",
            Step::Pointer => "postgres",
            Step::Committed => "committed",
        }
    }
}

/// The fault hook's switch (see [`crate::fault`]): `STEP` or `STEP:kill`,
/// STEP one of [`Step::name`].
pub const FAULT_ENV: &str = crate::fault::ENV;

/// The fault hook, called after each [`Step`].
pub fn checkpoint(step: Step) -> Result<(), ContentError> {
    if crate::fault::at(step.name()) {
        return Err(ContentError::Fault(step.name()));
    }
    Ok(())
}

/// An object as written: where, how big, its SHA-256 (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub key: String,
    pub size: u64,
    pub sha256: String,
    pub content_type: String,
    /// The S3 version (the buckets are versioned).
    pub version_id: Option<String>,
}

/// One version (or delete marker) of a key, as S3 lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub version_id: String,
    pub modified: Option<chrono::DateTime<chrono::Utc>>,
    /// The key's current version (or marker).
    pub latest: bool,
    pub delete_marker: bool,
}

/// An object being read: its bytes and what S3 said about them.
pub struct Object {
    pub body: ByteStream,
    pub content_length: Option<i64>,
    /// Set for a partial answer (a range).
    pub content_range: Option<String>,
}

/// A pre-signed request.
#[derive(Debug, Clone)]
pub struct Presigned {
    pub url: String,
    /// Headers the request must carry as they are (they are signed).
    pub headers: Vec<(String, String)>,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// The split path's handles and settings.
#[derive(Clone)]
pub struct Content {
    s3: Client,
    mongo: Database,
    bucket: String,
    contracts_bucket: String,
    config: ContentConfig,
}

impl Content {
    pub fn new(stores: &Stores, content: &ContentConfig, s3: &S3Config) -> Self {
        Self {
            s3: stores.s3.client().clone(),
            mongo: stores.mongo.database().clone(),
            bucket: s3.bucket_name("content"),
            contracts_bucket: s3.bucket_name("contracts"),
            config: content.clone(),
        }
    }

    /// The same path over the contracts bucket (Object Lock: every new
    /// version gets the bucket's default retention).
    pub fn contracts(&self) -> Content {
        let mut contracts = self.clone();
        contracts.bucket = self.contracts_bucket.clone();
        contracts
    }

    pub fn config(&self) -> &ContentConfig {
        &self.config
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn mongo(&self) -> &Database {
        &self.mongo
    }

    pub fn s3(&self) -> &Client {
        &self.s3
    }

    /// Streams `body` into the content bucket at `key` (which the caller
    /// built under the tenant's prefix), refusing more than `limit` bytes.
    /// A multipart upload that fails is aborted.
    pub async fn put<S, E>(
        &self,
        key: &str,
        content_type: &str,
        limit: u64,
        mut body: S,
    ) -> Result<Stored, ContentError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: Display,
    {
        let mut upload = None;
        let result = self
            .put_inner(key, content_type, limit, &mut body, &mut upload)
            .await;
        if result.is_err()
            && let Some(upload) = upload
        {
            self.abort(key, &upload.id).await;
        }
        result
    }

    async fn put_inner<S, E>(
        &self,
        key: &str,
        content_type: &str,
        limit: u64,
        body: &mut S,
        upload: &mut Option<Multipart>,
    ) -> Result<Stored, ContentError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: Display,
    {
        let part_size = usize::try_from(self.config.part_size_bytes).unwrap_or(usize::MAX);
        let mut sha256 = sha2::Sha256::new();
        let mut size: u64 = 0;
        let mut buffer = BytesMut::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| ContentError::Body(e.to_string()))?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(ContentError::TooLarge { limit });
            }
            sha256.update(&chunk);
            buffer.extend_from_slice(&chunk);
            while buffer.len() > part_size {
                let part = buffer.split_to(part_size).freeze();
                if upload.is_none() {
                    *upload = Some(self.start(key, content_type).await?);
                }
                if let Some(upload) = upload.as_mut() {
                    self.upload_part(key, upload, part).await?;
                }
            }
        }
        let sha256 = hex::encode(sha256.finalize());
        let version_id = match upload.as_mut() {
            None => {
                let part = buffer.freeze();
                let put = self
                    .s3
                    .put_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .content_type(content_type)
                    .content_length(part.len() as i64)
                    .content_md5(md5_base64(&part))
                    .metadata("sha256", &sha256)
                    .body(ByteStream::from(part))
                    .send()
                    .await
                    .map_err(|e| ContentError::of_s3("PutObject", e))?;
                put.version_id().map(str::to_string)
            }
            Some(upload) => {
                if !buffer.is_empty() {
                    self.upload_part(key, upload, buffer.freeze()).await?;
                }
                let done = self
                    .s3
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload.id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(std::mem::take(&mut upload.parts)))
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| ContentError::of_s3("CompleteMultipartUpload", e))?;
                done.version_id().map(str::to_string)
            }
        };
        Ok(Stored {
            key: key.to_string(),
            size,
            sha256,
            content_type: content_type.to_string(),
            version_id,
        })
    }

    async fn start(&self, key: &str, content_type: &str) -> Result<Multipart, ContentError> {
        let created = self
            .s3
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| ContentError::of_s3("CreateMultipartUpload", e))?;
        let id = created
            .upload_id()
            .ok_or_else(|| ContentError::Store("CreateMultipartUpload gave no upload id".into()))?;
        Ok(Multipart {
            id: id.to_string(),
            parts: Vec::new(),
        })
    }

    async fn upload_part(
        &self,
        key: &str,
        upload: &mut Multipart,
        part: Bytes,
    ) -> Result<(), ContentError> {
        let number = upload.parts.len() as i32 + 1;
        let sent = self
            .s3
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(&upload.id)
            .part_number(number)
            .content_length(part.len() as i64)
            .content_md5(md5_base64(&part))
            .body(ByteStream::from(part))
            .send()
            .await
            .map_err(|e| ContentError::of_s3("UploadPart", e))?;
        upload.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(sent.e_tag().map(str::to_string))
                .build(),
        );
        Ok(())
    }

    /// Best effort: the bucket's lifecycle rule aborts what this misses.
    async fn abort(&self, key: &str, upload_id: &str) {
        if let Err(e) = self
            .s3
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
        {
            tracing::warn!(
                key,
                error = %aws_sdk_s3::error::DisplayErrorContext(&e),
                "could not abort a multipart upload; the lifecycle rule will"
            );
        }
    }

    /// Reads `key` (a single `bytes=` range when given).
    pub async fn open(&self, key: &str, range: Option<&str>) -> Result<Object, ContentError> {
        self.open_version(key, None, range).await
    }

    /// Reads one version of `key` (the current one with `None`).
    pub async fn open_version(
        &self,
        key: &str,
        version: Option<&str>,
        range: Option<&str>,
    ) -> Result<Object, ContentError> {
        match self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_version_id(version.map(str::to_string))
            .set_range(range.map(str::to_string))
            .send()
            .await
        {
            Ok(out) => Ok(Object {
                content_length: out.content_length(),
                content_range: out.content_range().map(str::to_string),
                body: out.body,
            }),
            Err(e) if e.code() == Some("InvalidRange") => Err(ContentError::RangeNotSatisfiable),
            Err(e) if crate::stores::s3::is_not_found(&e) || e.code() == Some("NoSuchKey") => {
                Err(ContentError::NotFound("the content is missing"))
            }
            Err(e) => Err(ContentError::of_s3("GetObject", e)),
        }
    }

    fn presigning(
        &self,
    ) -> Result<(PresigningConfig, chrono::DateTime<chrono::Utc>), ContentError> {
        let expiry = Duration::from_secs(self.config.presign_expiry_secs);
        let config = PresigningConfig::builder()
            .start_time(SystemTime::now())
            .expires_in(expiry)
            .build()
            .map_err(|e| ContentError::Store(format!("presigning: {e}")))?;
        let expires_at =
            chrono::Utc::now() + chrono::Duration::from_std(expiry).unwrap_or_default();
        Ok((config, expires_at))
    }

    /// A pre-signed GET of exactly `key`, valid `content.presign_expiry_secs`.
    pub async fn presign_get(&self, key: &str) -> Result<Presigned, ContentError> {
        self.presign_get_version(key, None).await
    }

    /// A pre-signed GET of one version of `key` (the current one with
    /// `None`): a URL for exactly the bytes a document recorded.
    pub async fn presign_get_version(
        &self,
        key: &str,
        version: Option<&str>,
    ) -> Result<Presigned, ContentError> {
        let (config, expires_at) = self.presigning()?;
        let request = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_version_id(version.map(str::to_string))
            .presigned(config)
            .await
            .map_err(|e| ContentError::of_s3("presign GetObject", e))?;
        Ok(Presigned {
            url: request.uri().to_string(),
            headers: signed_headers(&request),
            expires_at,
        })
    }

    /// A pre-signed PUT of exactly `key`, with its content type and length
    /// in the signature (S3 refuses a PUT that sends other values).
    pub async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        size: u64,
    ) -> Result<Presigned, ContentError> {
        let (config, expires_at) = self.presigning()?;
        let request = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(i64::try_from(size).unwrap_or(i64::MAX))
            .presigned(config)
            .await
            .map_err(|e| ContentError::of_s3("presign PutObject", e))?;
        Ok(Presigned {
            url: request.uri().to_string(),
            headers: signed_headers(&request),
            expires_at,
        })
    }

    /// Checks a directly uploaded object against what was declared: it
    /// exists, has `size` bytes and the SHA-256 `sha256` (read back and
    /// hashed by strata: no S3 checksum is trusted). Returns it as stored.
    pub async fn verify(
        &self,
        key: &str,
        content_type: &str,
        size: u64,
        sha256: &str,
    ) -> Result<Stored, ContentError> {
        let head = match self
            .s3
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(head) => head,
            Err(e) if crate::stores::s3::is_not_found(&e) => {
                return Err(ContentError::UploadMissing);
            }
            Err(e) => return Err(ContentError::of_s3("HeadObject", e)),
        };
        let actual = head.content_length().unwrap_or(-1);
        if u64::try_from(actual).ok() != Some(size) {
            return Err(ContentError::Mismatch {
                field: "size",
                message: format!("declared {size} bytes, the upload has {actual}"),
            });
        }
        // Read the version HEAD saw, so a concurrent overwrite cannot slip
        // in between the two.
        let object = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_version_id(head.version_id().map(str::to_string))
            .send()
            .await
            .map_err(|e| ContentError::of_s3("GetObject", e))?;
        let mut body = object.body;
        let mut hasher = sha2::Sha256::new();
        let mut read: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| ContentError::Unavailable(format!("S3 read: {e}")))?;
            read += chunk.len() as u64;
            hasher.update(&chunk);
        }
        let actual = hex::encode(hasher.finalize());
        if read != size || actual != sha256 {
            return Err(ContentError::Mismatch {
                field: "sha256",
                message: format!("declared {sha256}, the upload has {actual}"),
            });
        }
        Ok(Stored {
            key: key.to_string(),
            size,
            sha256: actual,
            content_type: content_type.to_string(),
            version_id: head.version_id().map(str::to_string),
        })
    }

    /// Until when Object Lock keeps this version of `key` (none when the
    /// bucket gave it no retention).
    pub async fn retain_until(
        &self,
        key: &str,
        version: Option<&str>,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, ContentError> {
        let retention = self
            .s3
            .get_object_retention()
            .bucket(&self.bucket)
            .key(key)
            .set_version_id(version.map(str::to_string))
            .send()
            .await
            .map_err(|e| ContentError::of_s3("GetObjectRetention", e))?;
        Ok(retention
            .retention()
            .and_then(|r| r.retain_until_date())
            .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())))
    }

    /// Removes one version of `key` for good (not a delete marker): a write
    /// that lost a race takes back exactly what it put. Never used on the
    /// contracts bucket.
    pub async fn delete_version(&self, key: &str, version: &str) -> Result<(), ContentError> {
        self.s3
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .version_id(version)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| ContentError::of_s3("DeleteObject", e))
    }

    /// Copies `from` (exactly the version it names) to `to` inside the
    /// bucket: the bytes never pass through strata. Returns the copy as
    /// stored.
    pub async fn copy(&self, from: &Stored, to: &str) -> Result<Stored, ContentError> {
        let mut source = format!("{}/{}", self.bucket, from.key);
        if let Some(version) = &from.version_id {
            source.push_str("?versionId=");
            source.push_str(version);
        }
        let copied = self
            .s3
            .copy_object()
            .bucket(&self.bucket)
            .key(to)
            .copy_source(source)
            .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
            .content_type(&from.content_type)
            .metadata("sha256", &from.sha256)
            .send()
            .await
            .map_err(|e| ContentError::of_s3("CopyObject", e))?;
        Ok(Stored {
            key: to.to_string(),
            version_id: copied.version_id().map(str::to_string),
            ..from.clone()
        })
    }

    /// Removes exactly what `stored` names: its version for good, or (in
    /// a bucket without versions) the key.
    pub async fn remove(&self, stored: &Stored) -> Result<(), ContentError> {
        match &stored.version_id {
            Some(version) => self.delete_version(&stored.key, version).await,
            None => self
                .s3
                .delete_object()
                .bucket(&self.bucket)
                .key(&stored.key)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| ContentError::of_s3("DeleteObject", e)),
        }
    }

    /// Every key under `prefix` that ever had a version (delete markers
    /// included): what a new key must not reuse.
    pub async fn keys_ever(&self, prefix: &str) -> Result<Vec<String>, ContentError> {
        let mut keys: Vec<String> = self
            .versions(Some(prefix))
            .await?
            .into_iter()
            .map(|v| v.key)
            .collect();
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    /// Every version and delete marker under `prefix` (the whole bucket
    /// with `None`), versions first, each key's newest first as S3 lists
    /// them.
    pub async fn versions(&self, prefix: Option<&str>) -> Result<Vec<Listed>, ContentError> {
        let time = |t: Option<&aws_sdk_s3::primitives::DateTime>| {
            t.and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
        };
        let mut listed = Vec::new();
        let mut key_marker: Option<String> = None;
        let mut version_marker: Option<String> = None;
        loop {
            let page = self
                .s3
                .list_object_versions()
                .bucket(&self.bucket)
                .set_prefix(prefix.map(str::to_string))
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(|e| ContentError::of_s3("ListObjectVersions", e))?;
            for v in page.versions() {
                if let (Some(key), Some(id)) = (v.key(), v.version_id()) {
                    listed.push(Listed {
                        key: key.to_string(),
                        version_id: id.to_string(),
                        modified: time(v.last_modified()),
                        latest: v.is_latest() == Some(true),
                        delete_marker: false,
                    });
                }
            }
            for m in page.delete_markers() {
                if let (Some(key), Some(id)) = (m.key(), m.version_id()) {
                    listed.push(Listed {
                        key: key.to_string(),
                        version_id: id.to_string(),
                        modified: time(m.last_modified()),
                        latest: m.is_latest() == Some(true),
                        delete_marker: true,
                    });
                }
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_string);
            version_marker = page.next_version_id_marker().map(str::to_string);
            if key_marker.is_none() {
                break;
            }
        }
        Ok(listed)
    }

    /// Whether `key` exists in the content bucket.
    pub async fn exists(&self, key: &str) -> Result<bool, ContentError> {
        match self
            .s3
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if crate::stores::s3::is_not_found(&e) => Ok(false),
            Err(e) => Err(ContentError::of_s3("HeadObject", e)),
        }
    }
}

fn signed_headers(request: &aws_sdk_s3::presigning::PresignedRequest) -> Vec<(String, String)> {
    request
        .headers()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

struct Multipart {
    id: String,
    parts: Vec<CompletedPart>,
}

fn md5_base64(bytes: &[u8]) -> String {
    use md5::Digest as _;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(bytes))
}

/// A document of this tenant (not deleted) by its ref, every key it holds
/// checked to lie in the tenant's prefix: the validator holds this already,
/// and a key outside the prefix is never served. `what` names the
/// document in errors; `missing` is the answer when there is none.
pub(crate) async fn find_document<T>(
    content: &Content,
    collection: &str,
    what: &str,
    missing: &'static str,
    tenant_ref: &str,
    ref_id: &str,
    keys: impl Fn(&T) -> Vec<&str>,
) -> Result<T, ContentError>
where
    T: serde::de::DeserializeOwned + Send + Sync,
{
    let found = content
        .mongo
        .collection::<T>(collection)
        .find_one(
            mongodb::bson::doc! { "tenantId": tenant_ref, "refId": ref_id, "deletedOn": null },
        )
        .await
        .map_err(|e| ContentError::of_mongo(&format!("find {what}"), e))?
        .ok_or(ContentError::NotFound(missing))?;
    if keys(&found).iter().any(|k| !in_prefix(tenant_ref, k)) {
        return Err(ContentError::Store(format!(
            "{what} {ref_id} has a key outside its tenant's prefix"
        )));
    }
    Ok(found)
}

/// What a document records of the object it points at besides the key:
/// its media type and the S3 version (reads are pinned to it).
pub fn object_metadata(stored: &Stored) -> mongodb::bson::Document {
    let mut metadata = mongodb::bson::doc! { "contentType": &stored.content_type };
    if let Some(version) = &stored.version_id {
        metadata.insert("versionId", version);
    }
    metadata
}

/// The media type a document recorded (`fallback` for documents written
/// before it was recorded).
pub fn recorded_type(metadata: &mongodb::bson::Document, fallback: &str) -> String {
    metadata
        .get_str("contentType")
        .map(str::to_string)
        .unwrap_or_else(|_| fallback.to_string())
}

/// The S3 version a document recorded, if any.
pub fn recorded_version(metadata: &mongodb::bson::Document) -> Option<String> {
    metadata.get_str("versionId").ok().map(str::to_string)
}

/// A BSON time as chrono's.
pub fn bson_time(at: mongodb::bson::DateTime) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or_default()
}

/// A MongoDB duplicate-key refusal (a unique index said no).
pub fn is_duplicate(error: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match &*error.kind {
        ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == 11000,
        ErrorKind::Command(e) => e.code == 11000,
        _ => false,
    }
}

/// The file extension of a media type strata stores.
pub fn extension(media_type: &str) -> &'static str {
    match media_type {
        "application/json" => "json",
        "text/plain" => "txt",
        "application/pdf" => "pdf",
        _ => "md",
    }
}

/// The media type of a `Content-Type` value (lower case, no parameters).
pub fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Whether `key` lies inside the tenant's prefix (`{tenantRef}/`), with no
/// path tricks in it.
pub fn in_prefix(tenant_ref: &str, key: &str) -> bool {
    key.strip_prefix(tenant_ref)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .split('/')
                    .all(|s| !s.is_empty() && s != "." && s != "..")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_in_the_tenant_prefix() {
        let t = "01JABCDEFGHJKMNPQRSTVWXYZ0";
        assert!(in_prefix(t, &format!("{t}/activities/x/outputs/y.md")));
        for bad in [
            t.to_string(),
            format!("{t}/"),
            format!("{t}x/a"),
            format!("{t}/../other/a"),
            format!("{t}//a"),
            format!("other/{t}/a"),
        ] {
            assert!(!in_prefix(t, &bad), "{bad}");
        }
    }

    #[test]
    fn media_types_lose_their_parameters() {
        assert_eq!(essence("Text/Markdown; charset=utf-8"), "text/markdown");
        assert_eq!(essence("application/json"), "application/json");
    }

    #[test]
    fn content_md5_is_base64_of_the_digest() {
        // RFC 1321 test vector: MD5("") = d41d8cd98f00b204e9800998ecf8427e.
        assert_eq!(md5_base64(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
    }
}
