//! `strata token new`

use crate::api::auth::new_token;
use crate::cli::exit;

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
