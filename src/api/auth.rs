//! Bearer tokens: only their SHA-256 is configured or stored, and the
//! comparison runs in constant time.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::problem::Problem;

// Made and hashed where the service tokens are kept; the admin token is
// made the same way (`strata token new`).
pub use crate::records::auth::{new_token, token_sha256};

/// The credentials of an `Authorization: Bearer <token>` header; the scheme
/// is case-insensitive (RFC 9110 section 11.1).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Checks `Authorization: Bearer <token>` against a configured hash.
pub fn require_bearer(headers: &HeaderMap, expected_sha256: &str) -> Result<(), Problem> {
    if expected_sha256.is_empty() {
        return Err(Problem::unauthorized(
            "no admin token is configured (admin.token_sha256); see `strata token new`",
        ));
    }
    let presented =
        bearer_token(headers).ok_or_else(|| Problem::unauthorized("missing bearer token"))?;
    let Ok(expected) = hex::decode(expected_sha256) else {
        return Err(Problem::unauthorized("admin.token_sha256 is not valid hex"));
    };
    let actual = Sha256::digest(presented.as_bytes());
    if bool::from(actual[..].ct_eq(&expected[..])) {
        Ok(())
    } else {
        Err(Problem::unauthorized("invalid bearer token"))
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

    fn token() -> (String, String) {
        new_token().expect("the OS random source")
    }

    #[test]
    fn accepts_only_the_matching_token() {
        let (token, hash) = token();
        assert_eq!(hash.len(), 64);
        // strata_ + 64 hex digits: 256 bits.
        assert_eq!(token.len(), "strata_".len() + 64);
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            let header = headers(&format!("{scheme} {token}"));
            assert!(require_bearer(&header, &hash).is_ok(), "{scheme}");
        }
        assert!(require_bearer(&headers(&format!("Basic {token}")), &hash).is_err());
        assert!(require_bearer(&headers("Bearer wrong"), &hash).is_err());
        assert!(
            require_bearer(&headers(&token), &hash).is_err(),
            "scheme required"
        );
        assert!(require_bearer(&HeaderMap::new(), &hash).is_err());
    }

    #[test]
    fn unconfigured_token_refuses_everything() {
        let (token, _) = token();
        let err = require_bearer(&headers(&format!("Bearer {token}")), "").expect_err("refused");
        assert_eq!(err.code, "unauthorized");
    }

    #[test]
    fn tokens_are_unique() {
        assert_ne!(token().0, token().0);
    }
}
