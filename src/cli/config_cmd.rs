//! `strata config validate` and `strata config show`

use crate::cli::exit;
use crate::config::{Config, ConfigSource};

pub fn validate(source: &ConfigSource) -> u8 {
    match Config::load(source) {
        Ok(_) => {
            println!("configuration OK ({})", describe(source));
            exit::OK
        }
        Err(e) => {
            eprintln!("strata: {e}");
            exit::BAD_CONFIG
        }
    }
}

pub fn show(source: &ConfigSource) -> u8 {
    match Config::load(source) {
        Ok(config) => {
            println!(
                "# effective configuration ({}); secrets redacted",
                describe(source)
            );
            print!("{}", config.to_redacted_toml());
            exit::OK
        }
        Err(e) => {
            eprintln!("strata: {e}");
            exit::BAD_CONFIG
        }
    }
}

fn describe(source: &ConfigSource) -> String {
    match source {
        ConfigSource::Explicit(p) => format!("{} + STRATA_* environment", p.display()),
        ConfigSource::Default(p) if p.exists() => format!("{} + STRATA_* environment", p.display()),
        ConfigSource::Default(_) => "defaults + STRATA_* environment".into(),
    }
}
