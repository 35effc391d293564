//! Release discovery and download.
//!
//! * `github`: the `self_update` crate's GitHub backend with a configurable
//!   API base (GitHub Enterprise, Gitea's `/api/v1`, or a static directory
//!   laid out like the API) and its downloader.
//! * `s3`: the AWS SDK strata already uses for its own buckets (custom
//!   endpoint, path-style, its own credentials). `self_update`'s S3 backend
//!   is not used: its SigV4 presigning signs the host without the port, so
//!   every endpoint on a non-default port (MinIO's :9000, radosgw) answers
//!   403.

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

/// The version in `strata-<version>-<target>.<ext>`, for this target.
fn version_of(name: &str) -> Option<semver::Version> {
    let rest = name.strip_prefix("strata-")?;
    let (version, _) = rest.split_once(&format!("-{}.", super::manifest::target()))?;
    semver::Version::parse(version).ok()
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
                self.config.github_api_url.as_str().trim_end_matches('/'),
                self.config.github_owner,
                self.config.github_repo
            ),
            UpdateSourceKind::S3 => format!(
                "{}/{}/{}",
                self.config.s3_endpoint.as_str().trim_end_matches('/'),
                self.config.s3_bucket,
                self.config.s3_prefix
            ),
            UpdateSourceKind::None => "none".into(),
        }
    }

    /// GitHub-compatible: one release per tag, its assets by name.
    fn fetch_github(&self) -> Result<Vec<(semver::Version, Vec<Asset>)>, UpdateError> {
        let api = self.config.github_api_url.as_str().trim_end_matches('/');
        let failed = |e: self_update::Error| UpdateError::Source {
            source_url: self.describe(),
            reason: e.to_string(),
        };
        // Gitea speaks the same API under /api/v1, but names an asset's
        // URL `browser_download_url` only: its own backend reads that.
        let releases = if let Some(host) = api.strip_suffix("/api/v1") {
            let mut builder = self_update::backends::gitea::ReleaseList::configure();
            builder
                .host(host)
                .repo_owner(self.config.github_owner.clone())
                .repo_name(self.config.github_repo.clone())
                .timeout(LIST_TIMEOUT);
            if !self.config.github_token.is_empty() {
                builder.auth_token(self.config.github_token.expose());
            }
            builder.build().and_then(|l| l.fetch()).map_err(failed)?
        } else {
            let mut builder = self_update::backends::github::ReleaseList::configure();
            builder
                .repo_owner(self.config.github_owner.clone())
                .repo_name(self.config.github_repo.clone())
                .api_base_url(api)
                .timeout(LIST_TIMEOUT);
            if !self.config.github_token.is_empty() {
                builder.auth_token(self.config.github_token.expose());
            }
            builder.build().and_then(|l| l.fetch()).map_err(failed)?
        };
        let releases: Vec<Release> = releases.into_vec();
        Ok(releases
            .into_iter()
            .filter_map(|release| {
                let version = semver::Version::parse(release.version()).ok()?;
                let assets = release
                    .assets()
                    .iter()
                    .map(|a| Asset {
                        name: a.name().to_string(),
                        url: a.download_url().to_string(),
                    })
                    .collect();
                Some((version, assets))
            })
            .collect())
    }

    fn s3_client(&self) -> crate::stores::s3::S3 {
        crate::stores::s3::S3::new(&crate::config::S3Config {
            endpoint: self.config.s3_endpoint.clone(),
            region: self.config.s3_region.clone(),
            access_key_id: self.config.s3_access_key_id.clone(),
            secret_access_key: self.config.s3_secret_access_key.clone(),
            path_style: true,
            connect_timeout_secs: 10,
            ..crate::config::S3Config::default()
        })
    }

    /// S3: the objects under the prefix named `strata-<version>-<target>.<ext>`,
    /// grouped by version; an asset's `url` is its key.
    async fn fetch_s3(&self) -> Result<Vec<(semver::Version, Vec<Asset>)>, UpdateError> {
        let client = self.s3_client();
        let mut found: Vec<(semver::Version, Vec<Asset>)> = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = client
                .client()
                .list_objects_v2()
                .bucket(&self.config.s3_bucket)
                .prefix(&self.config.s3_prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| UpdateError::Source {
                    source_url: self.describe(),
                    reason: s3_error(&e),
                })?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                let name = key.rsplit('/').next().unwrap_or(key);
                let Some(version) = version_of(name) else {
                    continue;
                };
                let asset = Asset {
                    name: name.to_string(),
                    url: key.to_string(),
                };
                match found.iter_mut().find(|(v, _)| *v == version) {
                    Some((_, assets)) => assets.push(asset),
                    None => found.push((version, vec![asset])),
                }
            }
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_string()),
                _ => break,
            }
        }
        Ok(found)
    }

    /// The releases with an archive for this target, newest first; without
    /// pre-releases on the stable channel.
    pub async fn list(&self) -> Result<Vec<Available>, UpdateError> {
        let releases = match self.config.source {
            UpdateSourceKind::Github => self.fetch_github()?,
            UpdateSourceKind::S3 => self.fetch_s3().await?,
            UpdateSourceKind::None => return Err(UpdateError::NotConfigured),
        };
        let mut found: Vec<Available> = releases
            .into_iter()
            .filter_map(|(version, assets)| {
                let wanted = archive_name(&version.to_string());
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
    pub async fn pick(&self, wanted: Option<&str>) -> Result<Available, UpdateError> {
        let all = self.list().await?;
        self.pick_from(all, wanted)
    }

    /// [`Source::pick`] on a listing already fetched.
    pub fn pick_from(
        &self,
        all: Vec<Available>,
        wanted: Option<&str>,
    ) -> Result<Available, UpdateError> {
        let wanted = wanted
            .or((!self.config.version.is_empty()).then_some(self.config.version.as_str()))
            .map(|v| {
                semver::Version::parse(v.trim_start_matches('v')).map_err(|_| {
                    UpdateError::Usage(format!("version {v:?} is not a semantic version"))
                })
            })
            .transpose()?;
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

    /// Downloads `asset` to `dest` (at most `update.max_download_bytes`);
    /// returns the size.
    pub async fn download(&self, asset: &Asset, dest: &Path) -> Result<u64, UpdateError> {
        let failed = |reason: String| UpdateError::Download {
            asset: asset.name.clone(),
            reason,
        };
        let file = File::create(dest).map_err(|e| failed(format!("{}: {e}", dest.display())))?;
        let mut counted = Counted {
            inner: BufWriter::new(file),
            bytes: 0,
            limit: self.config.max_download_bytes,
        };
        match self.config.source {
            UpdateSourceKind::S3 => self.download_s3(asset, &mut counted).await?,
            _ => self.download_http(asset, &mut counted)?,
        }
        let bytes = counted.bytes;
        let file = counted
            .inner
            .into_inner()
            .map_err(|e| failed(e.to_string()))?;
        file.sync_all().map_err(|e| failed(e.to_string()))?;
        Ok(bytes)
    }

    fn download_http(&self, asset: &Asset, out: &mut impl Write) -> Result<(), UpdateError> {
        let mut download = self_update::Download::from_url(asset.url.clone());
        download
            .timeout(DOWNLOAD_TIMEOUT)
            .max_download_size(self.config.max_download_bytes);
        // The API's asset URL answers with the file itself for this type.
        download.request_header("Accept", "application/octet-stream");
        // The token goes to the API's host only, never to where assets redirect.
        let same_host = url::Url::parse(&asset.url)
            .is_ok_and(|u| u.host_str() == self.config.github_api_url.host_str());
        if !self.config.github_token.is_empty() && same_host {
            download.request_header(
                "Authorization",
                format!("token {}", self.config.github_token.expose()),
            );
        }
        download
            .download_to(out)
            .map_err(|e| UpdateError::Download {
                asset: asset.name.clone(),
                reason: e.to_string(),
            })
    }

    async fn download_s3(&self, asset: &Asset, out: &mut impl Write) -> Result<(), UpdateError> {
        let failed = |reason: String| UpdateError::Download {
            asset: asset.name.clone(),
            reason,
        };
        let client = self.s3_client();
        let object = client
            .client()
            .get_object()
            .bucket(&self.config.s3_bucket)
            .key(&asset.url)
            .send()
            .await
            .map_err(|e| failed(s3_error(&e)))?;
        let expected = object.content_length();
        let mut body = object.body;
        let mut got: i64 = 0;
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| failed(format!("the transfer broke off: {e}")))?
        {
            got += chunk.len() as i64;
            out.write_all(&chunk).map_err(|e| failed(e.to_string()))?;
        }
        if let Some(expected) = expected
            && expected != got
        {
            return Err(failed(format!("got {got} of {expected} bytes")));
        }
        Ok(())
    }
}

/// A writer that counts, and refuses to grow past `limit`.
struct Counted<W> {
    inner: W,
    bytes: u64,
    limit: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes + buf.len() as u64 > self.limit {
            return Err(std::io::Error::other(format!(
                "larger than update.max_download_bytes ({})",
                self.limit
            )));
        }
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// An S3 error in one line: the service's code and message, or the transport's.
fn s3_error<E>(error: &aws_sdk_s3::error::SdkError<E>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
    match error {
        SdkError::ServiceError(service) => format!(
            "{} (HTTP {}): {}",
            service.err().code().unwrap_or("error"),
            service.raw().status().as_u16(),
            service.err().message().unwrap_or_default()
        ),
        other => DisplayErrorContext(other).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_come_from_asset_names_of_this_target() {
        let t = crate::update::manifest::target();
        let v = |s: &str| semver::Version::parse(s).ok();
        assert_eq!(version_of(&format!("strata-1.2.3-{t}.tar.gz")), v("1.2.3"));
        assert_eq!(
            version_of(&format!("strata-1.3.0-rc.1-{t}.deb")),
            v("1.3.0-rc.1")
        );
        assert_eq!(version_of("strata-1.2.3-sparc-solaris.tar.gz"), None);
        assert_eq!(version_of(&format!("other-1.2.3-{t}.tar.gz")), None);
    }
}
