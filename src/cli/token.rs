//! `strata token new` (the admin API's token, configured by its hash) and
//! the data API's service tokens: `strata token create|list|revoke`, kept
//! in PostgreSQL and managed on the administrative path (the same
//! functions as the admin API's `/admin/tokens`).

use crate::api::auth::new_token;
use crate::cli::admin_path::with_postgres;
use crate::cli::exit;
use crate::config::Config;
use crate::records::admin::{self, NewToken, TokenInfo};

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

pub async fn create(config: Config, token: NewToken, json: bool) -> u8 {
    let issued = match with_postgres(&config, "token", async |pg| {
        admin::issue_token(pg, &token).await
    })
    .await
    {
        Ok(issued) => issued,
        Err(code) => return code,
    };
    // The secret is printed here once and never again: only its SHA-256 is
    // stored.
    if json {
        println!("{}", serde_json::to_string(&issued).unwrap_or_default());
    } else {
        println!("token: {}", issued.secret);
        println!("ref:   {}", issued.info.token_ref);
        eprintln!("strata: the token is shown only now; give it to the service");
    }
    exit::OK
}

pub async fn list(config: Config, json: bool) -> u8 {
    let tokens =
        match with_postgres(&config, "token", async |pg| admin::list_tokens(pg).await).await {
            Ok(tokens) => tokens,
            Err(code) => return code,
        };
    if json {
        println!("{}", serde_json::to_string(&tokens).unwrap_or_default());
    } else {
        for token in &tokens {
            println!("{}", line(token));
        }
    }
    exit::OK
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

pub async fn revoke(config: Config, token_ref: String, json: bool) -> u8 {
    let revoked = match with_postgres(&config, "token", async |pg| {
        admin::revoke_token(pg, &token_ref).await
    })
    .await
    {
        Ok(token) => token,
        Err(code) => return code,
    };
    if json {
        println!("{}", serde_json::to_string(&revoked).unwrap_or_default());
    } else {
        println!("revoked {token_ref}");
    }
    exit::OK
}
