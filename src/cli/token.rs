//! `strata token new` (the admin API's token, configured by its hash) and
//! the data API's service tokens: `strata token create|list|revoke`, kept
//! in PostgreSQL and managed on the administrative path.

use crate::api::auth::new_token;
use crate::cli::exit;
use crate::config::Config;
use crate::records::RecordError;
use crate::records::admin::{self, TokenError, TokenInfo, TokenScope};
use crate::stores::postgres::Postgres;

pub fn new() -> u8 {
    let (token, hash) = match new_token() {
        Ok(made) => made,
        Err(e) => {
            eprintln!("strata: cannot read the operating system's random source: {e}");
            return exit::FAILURE;
        }
    };
    // The token goes to stdout once, for the operator to hand to clients; it
    // is never stored by strata.
    println!("token:  {token}");
    println!("config: token_sha256 = \"{hash}\"   # in [admin] of strata.toml");
    exit::OK
}

/// The PostgreSQL handle of the administrative path (no I/O yet).
pub(crate) fn connect(config: &Config) -> Option<Postgres> {
    match Postgres::new(&config.postgres) {
        Ok(pg) => Some(pg),
        Err(e) => {
            eprintln!("strata: {e}");
            None
        }
    }
}

pub(crate) fn exit_code(error: &RecordError) -> u8 {
    match error {
        RecordError::Unavailable(_) => exit::DEPENDENCY_UNREACHABLE,
        _ => exit::FAILURE,
    }
}

pub async fn create(
    config: Config,
    name: String,
    scope: TokenScope,
    expires_days: Option<u32>,
    json: bool,
) -> u8 {
    let (secret, _) = match new_token() {
        Ok(made) => made,
        Err(e) => {
            eprintln!("strata: cannot read the operating system's random source: {e}");
            return exit::FAILURE;
        }
    };
    let Some(pg) = connect(&config) else {
        return exit::BAD_CONFIG;
    };
    let result = admin::create_token(&pg, &secret, &name, &scope, expires_days).await;
    pg.close().await;
    match result {
        Ok(info) => {
            // The secret is printed here once and never again: only its
            // SHA-256 is stored.
            if json {
                let mut out = serde_json::to_value(&info).unwrap_or_default();
                out["token"] = serde_json::Value::String(secret);
                println!("{out}");
            } else {
                println!("token: {secret}");
                println!("ref:   {}", info.token_ref);
                eprintln!("strata: the token is shown only now; give it to the service");
            }
            exit::OK
        }
        Err(TokenError::UnknownTenant(tenant_ref)) => {
            eprintln!("strata: --tenant: no active or suspended tenant has the ref {tenant_ref}");
            exit::FAILURE
        }
        Err(TokenError::Record(e)) => {
            eprintln!("strata: cannot create the token: {e}");
            exit_code(&e)
        }
    }
}

pub async fn list(config: Config, json: bool) -> u8 {
    let Some(pg) = connect(&config) else {
        return exit::BAD_CONFIG;
    };
    let result = admin::list_tokens(&pg).await;
    pg.close().await;
    match result {
        Ok(tokens) => {
            if json {
                println!("{}", serde_json::to_string(&tokens).unwrap_or_default());
            } else {
                for token in &tokens {
                    println!("{}", line(token));
                }
            }
            exit::OK
        }
        Err(e) => {
            eprintln!("strata: cannot list tokens: {e}");
            exit_code(&e)
        }
    }
}

fn line(token: &TokenInfo) -> String {
    let state = match (&token.revoked_at, &token.expires_at) {
        (Some(at), _) => format!("revoked {}", at.to_rfc3339()),
        (None, Some(at)) if *at <= chrono::Utc::now() => format!("expired {}", at.to_rfc3339()),
        (None, Some(at)) => format!("expires {}", at.to_rfc3339()),
        (None, None) => "no expiry".to_string(),
    };
    format!(
        "{}  {}  {}  {}",
        token.token_ref,
        token.tenant_ref.as_deref().unwrap_or("all-tenants"),
        state,
        token.name
    )
}

pub async fn revoke(config: Config, token_ref: String) -> u8 {
    let Some(pg) = connect(&config) else {
        return exit::BAD_CONFIG;
    };
    let result = admin::revoke_token(&pg, &token_ref).await;
    pg.close().await;
    match result {
        Ok(_) => {
            println!("revoked {token_ref}");
            exit::OK
        }
        Err(RecordError::NotFound) => {
            eprintln!("strata: no token has the ref {token_ref}");
            exit::FAILURE
        }
        Err(e) => {
            eprintln!("strata: cannot revoke {token_ref}: {e}");
            exit_code(&e)
        }
    }
}
