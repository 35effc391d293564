//! Release discovery and download through the `self_update` crate: a
//! GitHub-compatible releases API (any base URL: GitHub Enterprise, Gitea's
//! `/api/v1`, or a static directory laid out like it) or an S3 bucket on
//! any endpoint (path-style URL, SigV4-presigned with its own credentials).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use self_update::update::Release;

use super::UpdateError;
use super::manifest::archive_name;
use crate::config::{UpdateChannel, UpdateConfig, UpdateSourceKind};

/// How long one listing request may take.
const LIST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one download may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(1800);

/// One release this machine can install: its version and its assets.
#[derive(Debug, Clone)]
pub struct Available {
    pub version: semver::Version,
    /// The signed archive for this target.
    pub archive: Asset,
    /// Every asset of the release (the packages among them).
    pub assets: Vec<Asset>,
}

#[derive(Debug, Clone)]
pub struct Asset {
    pub name: String,
    pub url: String,
}

/// Where releases come from, as configured.
pub struct Source<'c> {
    config: &'c UpdateConfig,
}

impl<'c> Source<'c> {
    pub fn new(config: &'c UpdateConfig) -> Result<Self, UpdateError> {
        if config.source == UpdateSourceKind::None {
            return Err(UpdateError::NotConfigured);
        }
        Ok(Self { config })
    }

    /// A short description for messages (never credentials).
    pub fn describe(&self) -> String {
        match self.config.source {
            UpdateSourceKind::Github => format!(
                "{}/repos/{}/{}/releases",
                self.config.github.api_url.as_str().trim_end_matches('/'),
                self.config.github.owner,
                self.config.github.repo
            ),
            UpdateSourceKind::S3 => format!(
                "{}/{}/{}",
                self.config.s3.endpoint.as_str().trim_end_matches('/'),
                self.config.s3.bucket,
                self.config.s3.prefix
            ),
            UpdateSourceKind::None => "none".into(),
        }
    }

    fn fetch(&self) -> Result<Vec<Release>, UpdateError> {
        let failed = |e: self_update::Error| UpdateError::Source {
            source_url: self.describe(),
            reason: e.to_string(),
        };
        let releases = match self.config.source {
            UpdateSourceKind::Github => {
                let github = &self.config.github;
                let mut builder = self_update::backends::github::ReleaseList::configure();
                builder
                    .repo_owner(github.owner.clone())
                    .repo_name(github.repo.clone())
                    .api_base_url(github.api_url.as_str().trim_end_matches('/'))
                    .timeout(LIST_TIMEOUT);
                if !github.token.is_empty() {
                    builder.auth_token(github.token.expose());
                }
                builder.build().and_then(|l| l.fetch()).map_err(failed)?
            }
            UpdateSourceKind::S3 => {
                let s3 = &self.config.s3;
                // Path-style (`endpoint/bucket/`), as MinIO and Ceph serve it.
                let endpoint = format!(
                    "{}/{}/",
                    s3.endpoint.as_str().trim_end_matches('/'),
                    s3.bucket
                );
                let mut builder = self_update::backends::s3::ReleaseList::configure();
                builder
                    .bucket_name(s3.bucket.clone())
                    .endpoint(endpoint)
                    .region(s3.region.clone())
                    .timeout(LIST_TIMEOUT);
                if !s3.prefix.is_empty() {
                    builder.asset_prefix(s3.prefix.clone());
                }
                if !s3.access_key_id.is_empty() {
                    builder.access_key(self_update::backends::s3::AccessKey::new(
                        s3.access_key_id.clone(),
                        s3.secret_access_key.expose(),
                    ));
                }
                builder.build().and_then(|l| l.fetch()).map_err(failed)?
            }
            UpdateSourceKind::None => return Err(UpdateError::NotConfigured),
        };
        Ok(releases.into_vec())
    }

    /// The releases with an archive for this target, newest first; without
    /// pre-releases on the stable channel.
    pub fn list(&self) -> Result<Vec<Available>, UpdateError> {
        let mut found: Vec<Available> = self
            .fetch()?
            .into_iter()
            .filter_map(|release| {
                let version = semver::Version::parse(release.version()).ok()?;
                let wanted = archive_name(&version.to_string());
                let assets: Vec<Asset> = release
                    .assets()
                    .iter()
                    .map(|a| Asset {
                        name: a.name().to_string(),
                        url: a.download_url().to_string(),
                    })
                    .collect();
                let archive = assets.iter().find(|a| a.name == wanted)?.clone();
                Some(Available {
                    version,
                    archive,
                    assets,
                })
            })
            .filter(|a| {
                self.config.channel == UpdateChannel::Prerelease || a.version.pre.is_empty()
            })
            .collect();
        found.sort_by(|a, b| b.version.cmp(&a.version));
        found.dedup_by(|a, b| a.version == b.version);
        Ok(found)
    }

    /// The release to install: `wanted`, else `update.version`, else the newest.
    pub fn pick(&self, wanted: Option<&str>) -> Result<Available, UpdateError> {
        let wanted = wanted
            .or((!self.config.version.is_empty()).then_some(self.config.version.as_str()))
            .map(|v| {
                semver::Version::parse(v.trim_start_matches('v')).map_err(|_| {
                    UpdateError::Usage(format!("version {v:?} is not a semantic version"))
                })
            })
            .transpose()?;
        let all = self.list()?;
        match wanted {
            Some(version) => all
                .into_iter()
                .find(|a| a.version == version)
                .ok_or_else(|| UpdateError::NoRelease {
                    wanted: format!("version {version} for {}", super::manifest::target()),
                    source_url: self.describe(),
                }),
            None => all
                .into_iter()
                .next()
                .ok_or_else(|| UpdateError::NoRelease {
                    wanted: format!("a release for {}", super::manifest::target()),
                    source_url: self.describe(),
                }),
        }
    }

    /// Downloads `asset` to `dest` (at most `update.max_download_bytes`).
    pub fn download(&self, asset: &Asset, dest: &Path) -> Result<u64, UpdateError> {
        let failed = |reason: String| UpdateError::Download {
            asset: asset.name.clone(),
            reason,
        };
        let file = File::create(dest).map_err(|e| failed(format!("{}: {e}", dest.display())))?;
        let mut counted = Counted {
            inner: BufWriter::new(file),
            bytes: 0,
        };
        let mut download = self_update::Download::from_url(asset.url.clone());
        download
            .timeout(DOWNLOAD_TIMEOUT)
            .max_download_size(self.config.max_download_bytes);
        if self.config.source == UpdateSourceKind::Github {
            // The API's asset URL answers with the file itself for this type.
            download.request_header("Accept", "application/octet-stream");
            if !self.config.github.token.is_empty() {
                download.request_header(
                    "Authorization",
                    format!("token {}", self.config.github.token.expose()),
                );
            }
        }
        download
            .download_to(&mut counted)
            .map_err(|e| failed(e.to_string()))?;
        let bytes = counted.bytes;
        let file = counted
            .inner
            .into_inner()
            .map_err(|e| failed(e.to_string()))?;
        file.sync_all().map_err(|e| failed(e.to_string()))?;
        Ok(bytes)
    }
}

struct Counted<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
