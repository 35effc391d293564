//! Bearer tokens: only their SHA-256 is configured or stored, and the
//! comparison runs in constant time.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// The SHA-256 of a token, as lowercase hex.
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token (256 bits, hex) and its hash for the configuration.
pub fn new_token() -> (String, String) {
    let bytes: Vec<u8> = uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .chain(uuid::Uuid::new_v4().as_bytes())
        .copied()
        .collect();
    let token = format!("strata_{}", hex::encode(bytes));
    let hash = token_sha256(&token);
    (token, hash)
}

/// Checks `Authorization: Bearer <token>` against a configured hash.
pub fn require_bearer(headers: &HeaderMap, expected_sha256: &str) -> Result<(), ApiError> {
    if expected_sha256.is_empty() {
        return Err(ApiError::unauthorized(
            "no admin token is configured (admin.token_sha256); see `strata token new`",
        ));
    }
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
    let Ok(expected) = hex::decode(expected_sha256) else {
        return Err(ApiError::unauthorized(
            "admin.token_sha256 is not valid hex",
        ));
    };
    let actual = Sha256::digest(presented.trim().as_bytes());
    if bool::from(actual[..].ct_eq(&expected[..])) {
        Ok(())
    } else {
        Err(ApiError::unauthorized("invalid bearer token"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(value).expect("valid header"),
        );
        h
    }

    #[test]
    fn accepts_only_the_matching_token() {
        let (token, hash) = new_token();
        assert_eq!(hash.len(), 64);
        assert!(require_bearer(&headers(&format!("Bearer {token}")), &hash).is_ok());
        assert!(require_bearer(&headers("Bearer wrong"), &hash).is_err());
        assert!(
            require_bearer(&headers(&token), &hash).is_err(),
            "scheme required"
        );
        assert!(require_bearer(&HeaderMap::new(), &hash).is_err());
    }

    #[test]
    fn unconfigured_token_refuses_everything() {
        let (token, _) = new_token();
        let err = require_bearer(&headers(&format!("Bearer {token}")), "").expect_err("refused");
        assert_eq!(err.code, "unauthorized");
    }

    #[test]
    fn tokens_are_unique() {
        assert_ne!(new_token().0, new_token().0);
    }
}
