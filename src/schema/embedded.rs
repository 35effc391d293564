//! The schema files shipped inside the binary (`migrations/`).
//!
//! `debug-embed` makes debug builds embed the files too, so a test binary
//! behaves like a release binary instead of reading the working tree.

use rust_embed::RustEmbed;
use sha2::{Digest, Sha256};

use super::SchemaError;

#[derive(RustEmbed)]
#[folder = "migrations/"]
#[include = "postgres/*.sql"]
#[include = "mongo/*.json"]
#[include = "s3/*.toml"]
struct Files;

pub(crate) const MONGO_COLLECTIONS: &str = "mongo/collections.json";
pub(crate) const S3_BUCKETS: &str = "s3/buckets.toml";

/// One embedded file as text.
pub(crate) fn text(path: &str) -> Result<String, SchemaError> {
    let file = Files::get(path).ok_or_else(|| SchemaError::Embedded {
        file: path.to_string(),
        reason: "not embedded in this binary".into(),
    })?;
    String::from_utf8(file.data.into_owned()).map_err(|_| SchemaError::Embedded {
        file: path.to_string(),
        reason: "not UTF-8".into(),
    })
}

/// The embedded SQL migrations: `(file name, text)`, in name order.
pub(crate) fn postgres_files() -> Result<Vec<(String, String)>, SchemaError> {
    let mut names: Vec<String> = Files::iter()
        .filter_map(|p| p.strip_prefix("postgres/").map(str::to_string))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| text(&format!("postgres/{name}")).map(|sql| (name, sql)))
        .collect()
}

/// A file's text with line endings normalised (CRLF and CR become LF) and
/// without a byte-order mark, so that a checkout with other line endings
/// neither changes a checksum nor runs a migration twice.
pub fn normalise(text: &str) -> String {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// SHA-256 (hex) of the normalised text.
pub fn checksum(text: &str) -> String {
    hex::encode(Sha256::digest(normalise(text).as_bytes()))
}

/// A short digest of all embedded files of one store, for `strata version`.
pub(crate) fn digest(prefix: &str) -> String {
    let mut names: Vec<String> = Files::iter()
        .filter(|p| p.starts_with(prefix))
        .map(|p| p.into_owned())
        .collect();
    names.sort();
    let mut hasher = Sha256::new();
    for name in names {
        hasher.update(name.as_bytes());
        if let Ok(text) = text(&name) {
            hasher.update(normalise(&text).as_bytes());
        }
    }
    hex::encode(&hasher.finalize()[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_endings_do_not_change_checksums() {
        let lf = "CREATE TABLE t (\n  id int\n);\n";
        let crlf = "CREATE TABLE t (\r\n  id int\r\n);\r\n";
        let cr = "CREATE TABLE t (\r  id int\r);\r";
        let bom = "\u{feff}CREATE TABLE t (\n  id int\n);\n";
        assert_eq!(checksum(lf), checksum(crlf));
        assert_eq!(checksum(lf), checksum(cr));
        assert_eq!(checksum(lf), checksum(bom));
        assert_ne!(
            checksum(lf),
            checksum("CREATE TABLE t (\n  id bigint\n);\n")
        );
        assert_eq!(checksum(lf).len(), 64);
    }

    #[test]
    fn every_store_has_embedded_files() {
        assert!(!postgres_files().expect("sql files").is_empty());
        assert!(text(MONGO_COLLECTIONS).is_ok());
        assert!(text(S3_BUCKETS).is_ok());
    }
}
