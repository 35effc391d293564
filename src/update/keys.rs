//! The ed25519 public keys a release must be signed with.
//!
//! The release keys are compiled in (`src/update/keys/*.pub`, 32 raw bytes
//! each; their private halves are never in the repository). Configuration
//! can add keys (`update.trusted_keys`), never remove a compiled-in one.

use self_update::zipsign_api::VerifyingKey;

/// The compiled-in release keys: `(name, raw key)`.
pub const RELEASE_KEYS: &[(&str, &[u8; 32])] = &[(
    "strata-release-1",
    include_bytes!("keys/strata-release-1.pub"),
)];

/// A trusted key and where it came from (for messages).
#[derive(Debug, Clone)]
pub struct TrustedKey {
    pub name: String,
    pub key: [u8; 32],
}

/// Parses one `update.trusted_keys` entry: 64 hex digits of an ed25519 public key.
pub fn parse_public_key(text: &str) -> Result<[u8; 32], String> {
    let text = text.trim();
    let bytes = hex::decode(text).map_err(|_| {
        "must be 64 hex digits of an ed25519 public key (e.g. `xxd -p -c 64 release.pub`)"
            .to_string()
    })?;
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "must be 64 hex digits (32 bytes) of an ed25519 public key".to_string())?;
    VerifyingKey::from_bytes(&key)
        .map_err(|_| "is not a valid ed25519 public key (not a curve point)".to_string())?;
    Ok(key)
}

/// The compiled-in keys, then the configured ones.
pub fn trusted(extra: &[String]) -> Result<Vec<TrustedKey>, String> {
    let mut keys: Vec<TrustedKey> = RELEASE_KEYS
        .iter()
        .map(|(name, key)| TrustedKey {
            name: (*name).to_string(),
            key: **key,
        })
        .collect();
    for (i, text) in extra.iter().enumerate() {
        let key = parse_public_key(text).map_err(|e| format!("update.trusted_keys.{i} {e}"))?;
        keys.push(TrustedKey {
            name: format!("update.trusted_keys.{i}"),
            key,
        });
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_in_keys_are_curve_points() {
        for (name, key) in RELEASE_KEYS {
            assert!(VerifyingKey::from_bytes(key).is_ok(), "{name}");
        }
    }

    #[test]
    fn configured_keys_are_checked() {
        let good = hex::encode(RELEASE_KEYS[0].1);
        assert_eq!(parse_public_key(&good).expect("valid"), *RELEASE_KEYS[0].1);
        assert!(parse_public_key("abcd").unwrap_err().contains("32 bytes"));
        assert!(parse_public_key("zz").unwrap_err().contains("hex"));
        let keys = trusted(&[good]).expect("trusted");
        assert_eq!(keys.len(), RELEASE_KEYS.len() + 1);
        assert_eq!(
            keys.last().map(|k| k.name.as_str()),
            Some("update.trusted_keys.0")
        );
    }
}
