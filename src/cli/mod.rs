//! The command line: one file per command. This is the edge where errors
//! become messages and exit codes (see `cli::exit`).

mod check;
mod config_cmd;
pub mod exit;
mod migrate;
mod serve;
mod token;
mod version_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigSource};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  failure; for `migrate --plan` and `check`: schema changes are pending
  2  invalid configuration (the message names the key)
  3  a dependency (postgres, mongo, s3) is unreachable
  4  a dependency answers but is unfit (version, privileges, Object Lock)
  5  the schema upgrade was refused (changed migration, newer database)
  6  a listener could not be opened
101  strata panicked (a bug; the log has the panic event)";

#[derive(Debug, Parser)]
#[command(name = "strata", version, about = "The data tier: owns the PostgreSQL, MongoDB and S3 schema and serves a tenant-scoped data API", after_help = EXIT_CODES)]
pub struct Cli {
    /// Configuration file [default: /etc/strata/strata.toml, if present]
    #[arg(long, global = true, env = "STRATA_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check dependencies, upgrade the schema, then serve the data and admin APIs
    #[command(after_help = EXIT_CODES)]
    Serve,
    /// Check configuration, dependencies, versions, privileges and schema drift
    #[command(after_help = EXIT_CODES)]
    Check {
        /// One JSON document instead of one line per check
        #[arg(long)]
        json: bool,
    },
    /// Upgrade the schema of all three stores and exit
    #[command(after_help = EXIT_CODES)]
    Migrate {
        /// Only print what would change; exit 0 when nothing is pending, 1 otherwise
        #[arg(long)]
        plan: bool,
    },
    /// Validate or show the configuration
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Make a new admin token and the hash to configure for it
    #[command(subcommand)]
    Token(TokenCommand),
    /// Print version, git commit, build date and the embedded schema versions
    Version {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load and validate a configuration file (default: --config or /etc/strata/strata.toml) and the STRATA_* environment
    #[command(after_help = EXIT_CODES)]
    Validate { file: Option<PathBuf> },
    /// Print the effective configuration as TOML, secrets redacted
    #[command(after_help = EXIT_CODES)]
    Show,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a new random token (give it to the client) and its SHA-256 (put it in admin.token_sha256)
    New,
}

/// Parses the command line and runs the command.
pub fn run() -> ExitCode {
    crate::ops::panic::install();
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Version { json } => version_cmd::run(json),
        Command::Token(TokenCommand::New) => token::new(),
        Command::Config(ConfigCommand::Validate { file }) => config_cmd::validate(
            &ConfigSource::from_arg(file.as_deref().or(cli.config.as_deref())),
        ),
        Command::Config(ConfigCommand::Show) => {
            config_cmd::show(&ConfigSource::from_arg(cli.config.as_deref()))
        }
        Command::Serve => with_config(&cli.config, |config| block_on(serve::run(config))),
        Command::Check { json } => {
            with_config(&cli.config, |config| block_on(check::run(config, json)))
        }
        Command::Migrate { plan } => {
            with_config(&cli.config, |config| block_on(migrate::run(config, plan)))
        }
    };
    ExitCode::from(code)
}

fn with_config(path: &Option<PathBuf>, f: impl FnOnce(Config) -> u8) -> u8 {
    match Config::load(&ConfigSource::from_arg(path.as_deref())) {
        Ok(config) => f(config),
        Err(e) => {
            eprintln!("strata: {e}");
            exit::BAD_CONFIG
        }
    }
}

/// How long the runtime may take to drop its last tasks after a command.
const RUNTIME_STOP: std::time::Duration = std::time::Duration::from_secs(2);

fn block_on(future: impl std::future::Future<Output = u8>) -> u8 {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => {
            let code = runtime.block_on(future);
            // Bounded: a blocking task (a DNS lookup) must not hold the exit.
            runtime.shutdown_timeout(RUNTIME_STOP);
            crate::ops::panic::exit_code(code)
        }
        Err(e) => {
            eprintln!("strata: cannot start the async runtime: {e}");
            exit::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_lists_exit_codes() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("invalid configuration"), "{help}");
    }
}
