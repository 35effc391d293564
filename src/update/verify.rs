//! What a downloaded archive must pass before anything is installed, in
//! order: a signature block is present (else: unsigned, or truncated), a
//! trusted key verifies it, the manifest inside names the expected version
//! and target, and the binary matches the manifest's SHA-256.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use self_update::zipsign_api::verify::{collect_keys, verify_tar};
use sha2::{Digest, Sha256};

use super::UpdateError;
use super::keys::TrustedKey;
use super::manifest::{BINARY_FILE, FORMAT, MANIFEST_FILE, Manifest, target};

/// Checks the archive's signature against `keys`; returns the name of the
/// key that verified it.
pub fn signature(archive: &Path, keys: &[TrustedKey]) -> Result<String, UpdateError> {
    let asset = file_name(archive)?;
    let failed = |check: &'static str, reason: String| UpdateError::Verification {
        asset: asset.clone(),
        check,
        reason,
    };
    let verifying = collect_keys(keys.iter().map(|k| Ok(k.key)))
        .map_err(|e| failed("signature", format!("the trusted keys are unusable: {e}")))?;
    let mut file =
        File::open(archive).map_err(|e| failed("signature", format!("cannot read: {e}")))?;
    // The signature is bound to the file name: a renamed archive fails.
    match verify_tar(&mut file, &verifying, Some(asset.as_bytes())) {
        Ok(index) => Ok(keys
            .get(index)
            .map_or_else(|| "?".into(), |k| k.name.clone())),
        Err(e) => {
            use std::error::Error as _;
            // zipsign's error kinds are private; the cause tells them apart:
            // none = signatures present but no key matched, an io::Error =
            // unreadable, anything else = no (readable) signature block.
            match e.source() {
                None => Err(failed(
                    "signature",
                    format!(
                        "no trusted key ({}) verifies the archive's signature: it was signed \
                         with an unknown key, or modified after signing",
                        keys.iter()
                            .map(|k| k.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )),
                Some(cause) if cause.downcast_ref::<std::io::Error>().is_some() => {
                    Err(failed("signature", format!("cannot read: {e}: {cause}")))
                }
                Some(_) if gzip_is_truncated(archive) => Err(failed(
                    "completeness",
                    "the archive is truncated: its gzip stream ends early, and the signature \
                     block that ends a signed archive is missing"
                        .into(),
                )),
                Some(_) => Err(failed(
                    "signature",
                    "the archive carries no signature block: it is unsigned".into(),
                )),
            }
        }
    }
}

/// Whether the gzip stream of `archive` ends before its end-of-stream.
fn gzip_is_truncated(archive: &Path) -> bool {
    let Ok(file) = File::open(archive) else {
        return false;
    };
    let mut decoder = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file));
    let mut sink = [0u8; 64 * 1024];
    loop {
        match decoder.read(&mut sink) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e) => return e.kind() == std::io::ErrorKind::UnexpectedEof,
        }
    }
}

/// A verified archive, unpacked into `dir`.
#[derive(Debug, Clone)]
pub struct Unpacked {
    pub manifest: Manifest,
    pub binary: PathBuf,
}

/// Unpacks a verified archive into `dir` and checks its manifest against
/// the release it was published as.
pub fn unpack(
    archive: &Path,
    dir: &Path,
    version: &semver::Version,
) -> Result<Unpacked, UpdateError> {
    let asset = file_name(archive)?;
    let failed = |check: &'static str, reason: String| UpdateError::Verification {
        asset: asset.clone(),
        check,
        reason,
    };
    let file = File::open(archive).map_err(|e| failed("archive", e.to_string()))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let entries = tar
        .entries()
        .map_err(|e| failed("archive", format!("not a tar.gz: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| failed("archive", e.to_string()))?;
        let path = entry
            .path()
            .map_err(|e| failed("archive", e.to_string()))?
            .into_owned();
        let name = path.to_str().unwrap_or_default().trim_start_matches("./");
        // Only the two known files, flat and regular: nothing can land
        // outside `dir`, and no link can point the swap elsewhere.
        if name == MANIFEST_FILE || name == BINARY_FILE {
            if !entry.header().entry_type().is_file() {
                return Err(failed(
                    "archive",
                    format!("{name} is not a regular file in the archive"),
                ));
            }
            entry
                .unpack(dir.join(name))
                .map_err(|e| failed("archive", format!("unpacking {name}: {e}")))?;
        }
    }
    let text = std::fs::read_to_string(dir.join(MANIFEST_FILE))
        .map_err(|_| failed("manifest", format!("the archive has no {MANIFEST_FILE}")))?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| {
        failed(
            "manifest",
            format!("{MANIFEST_FILE} is not a release manifest: {e}"),
        )
    })?;
    if manifest.format > FORMAT {
        return Err(failed(
            "manifest",
            format!(
                "manifest format {} is newer than this strata reads ({FORMAT}): update in two steps",
                manifest.format
            ),
        ));
    }
    if manifest.version.trim_start_matches('v') != version.to_string() {
        return Err(failed(
            "manifest",
            format!(
                "the signed manifest names version {}, but the release is published as {version}",
                manifest.version
            ),
        ));
    }
    if manifest.target != target() {
        return Err(failed(
            "manifest",
            format!(
                "built for {}, this machine is {}",
                manifest.target,
                target()
            ),
        ));
    }
    let binary = dir.join(BINARY_FILE);
    let digest = sha256_file(&binary).map_err(|_| {
        failed(
            "archive",
            format!("the archive has no {BINARY_FILE} binary"),
        )
    })?;
    if !digest.eq_ignore_ascii_case(&manifest.binary_sha256) {
        return Err(failed(
            "binary digest",
            format!(
                "{BINARY_FILE} has SHA-256 {digest}, the manifest says {}",
                manifest.binary_sha256
            ),
        ));
    }
    Ok(Unpacked { manifest, binary })
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

fn file_name(path: &Path) -> Result<String, UpdateError> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| UpdateError::Usage(format!("{} has no UTF-8 file name", path.display())))
}
