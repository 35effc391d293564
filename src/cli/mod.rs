//! The command line: one file per command. This is the edge where errors
//! become messages and exit codes (see `cli::exit`).

mod admin_path;
mod check;
mod config_cmd;
pub mod exit;
mod migrate;
mod reconcile;
mod self_update;
mod serve;
mod tenant;
mod token;
mod transfer;
mod version_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigSource};
use crate::records::admin::{NewTenant, NewToken, TenantStatus, TokenScope};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  failure; for `migrate --plan` and `check`: schema changes are pending
  2  invalid configuration (the message names the key)
  3  a dependency (postgres, mongo, s3) is unreachable
  4  a dependency answers but is unfit (version, privileges, Object Lock)
  5  the schema upgrade was refused (changed migration, newer database)
  6  a listener could not be opened
  7  self-update: the release was refused (signature, truncated, manifest, smoke test, downgrade)
  8  self-update: the new version was not ready in time and was rolled back
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
    /// Walk the three stores: dangling pointers (exit 1 if any) and orphans; --repair removes old orphans
    #[command(after_help = EXIT_CODES)]
    Reconcile {
        /// Only this tenant (ref)
        #[arg(long, value_name = "REF")]
        tenant: Option<String>,
        /// One JSON document instead of lines
        #[arg(long)]
        json: bool,
        /// Remove orphans older than --grace (never a contract PDF under Object Lock)
        #[arg(long, requires = "grace")]
        repair: bool,
        /// With --repair: only orphans older than this many hours
        #[arg(long, value_name = "HOURS", requires = "repair")]
        grace: Option<u32>,
    },
    /// Validate or show the configuration
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Tenants (on the administrative path)
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// The admin token, and the data API's service tokens
    #[command(subcommand)]
    Token(TokenCommand),
    /// Update strata from signed releases (GitHub-compatible API or S3), with rollback
    #[command(subcommand, name = "self-update")]
    SelfUpdate(SelfUpdateCommand),
    /// Print version, git commit, build date and the embedded schema versions
    Version {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SelfUpdateCommand {
    /// Compare this binary with the release source; exit 0 when up to date, 1 when an update is available
    #[command(after_help = EXIT_CODES)]
    Check {
        /// Compare with this version instead of the newest (or update.version)
        #[arg(long, value_name = "V")]
        version: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Download, verify (signature, manifest, schema guard, smoke test), install, restart, wait for /readyz
    #[command(after_help = EXIT_CODES)]
    Apply {
        /// Install this version instead of the newest (or update.version)
        #[arg(long, value_name = "V")]
        version: Option<String>,
        /// Allow installing an older version (the schema guard still applies)
        #[arg(long)]
        allow_downgrade: bool,
        /// Do not ask for confirmation (required without a terminal)
        #[arg(long)]
        yes: bool,
        #[arg(long)]
        json: bool,
    },
    /// Put the previous binary back and restart
    #[command(after_help = EXIT_CODES)]
    Rollback {
        #[arg(long)]
        json: bool,
    },
    /// Print this binary's release manifest (used by scripts/release)
    #[command(hide = true)]
    Manifest,
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
pub enum TenantCommand {
    /// Create an active tenant and print its ref
    #[command(after_help = EXIT_CODES)]
    Create {
        /// Lower-case letters, digits and dashes; unique
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "basic")]
        plan: String,
        /// Print the tenant as JSON
        #[arg(long)]
        json: bool,
    },
    /// List tenants (deleted ones too, until purged) with their live record counts
    #[command(after_help = EXIT_CODES)]
    List {
        /// Only tenants in this state
        #[arg(long, value_parser = ["active", "suspended", "deleted"])]
        status: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one tenant and its live record counts per table
    #[command(after_help = EXIT_CODES)]
    Get {
        #[arg(value_name = "REF")]
        tenant_ref: String,
        #[arg(long)]
        json: bool,
    },
    /// Suspend a tenant: the data API answers 403 tenant_suspended from the next request on
    #[command(after_help = EXIT_CODES)]
    Suspend {
        #[arg(value_name = "REF")]
        tenant_ref: String,
        #[arg(long)]
        json: bool,
    },
    /// Make a suspended tenant active again
    #[command(after_help = EXIT_CODES)]
    Resume {
        #[arg(value_name = "REF")]
        tenant_ref: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a tenant (soft, final): it and all it owns are gone from the data API (404)
    #[command(after_help = EXIT_CODES)]
    Delete {
        #[arg(value_name = "REF")]
        tenant_ref: String,
        #[arg(long)]
        json: bool,
    },
    /// Write one archive of everything a tenant owns in the three stores (with a manifest of checksums)
    #[command(after_help = EXIT_CODES)]
    Export {
        #[arg(value_name = "REF")]
        tenant_ref: String,
        /// The archive to write (default: strata-tenant-REF.tar)
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Restore an exported tenant into these stores, refs kept; refused if any checksum fails
    #[command(after_help = EXIT_CODES)]
    Import {
        #[arg(value_name = "FILE")]
        archive: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a new random admin token (give it to the client) and its SHA-256 (put it in admin.token_sha256)
    New,
    /// Create a data API service token; its secret is printed once, only its hash is stored
    #[command(after_help = EXIT_CODES)]
    Create {
        #[command(flatten)]
        scope: TokenScopeArgs,
        /// What the token is for (shown in lists and audit trails)
        #[arg(long)]
        name: String,
        /// Expire after this many days [default: never]
        #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=36_500))]
        expires: Option<u32>,
        #[arg(long)]
        json: bool,
    },
    /// List service tokens (never their secrets)
    #[command(after_help = EXIT_CODES)]
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a service token: every instance refuses it from its next request on
    #[command(after_help = EXIT_CODES)]
    Revoke {
        #[arg(value_name = "REF")]
        token_ref: String,
        /// Print the revoked token as JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct TokenScopeArgs {
    /// The tenant (ref) the token may act on
    #[arg(long, value_name = "REF")]
    tenant: Option<String>,
    /// The token may act on every tenant (platform services)
    #[arg(long)]
    all_tenants: bool,
}

/// Parses the command line and runs the command.
pub fn run() -> ExitCode {
    crate::ops::panic::install();
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Version { json } => version_cmd::run(json),
        Command::SelfUpdate(SelfUpdateCommand::Manifest) => self_update::manifest(),
        Command::SelfUpdate(SelfUpdateCommand::Check { version, json }) => {
            with_config(&cli.config, |config| {
                block_on(self_update::check(config, version, json))
            })
        }
        Command::SelfUpdate(SelfUpdateCommand::Apply {
            version,
            allow_downgrade,
            yes,
            json,
        }) => with_config(&cli.config, |config| {
            block_on(self_update::apply(
                config,
                version,
                allow_downgrade,
                yes,
                json,
            ))
        }),
        Command::SelfUpdate(SelfUpdateCommand::Rollback { json }) => {
            with_config(&cli.config, |config| {
                block_on(self_update::rollback(config, json))
            })
        }
        Command::Token(TokenCommand::New) => token::new(),
        Command::Token(TokenCommand::Create {
            scope,
            name,
            expires,
            json,
        }) => {
            let scope = match scope.tenant {
                Some(tenant_ref) => TokenScope::Tenant(tenant_ref),
                None => TokenScope::AllTenants,
            };
            let token = NewToken {
                name,
                scope,
                expires_in_days: expires,
            };
            with_config(&cli.config, |config| {
                block_on(token::create(config, token, json))
            })
        }
        Command::Token(TokenCommand::List { json }) => {
            with_config(&cli.config, |config| block_on(token::list(config, json)))
        }
        Command::Token(TokenCommand::Revoke { token_ref, json }) => {
            with_config(&cli.config, |config| {
                block_on(token::revoke(config, token_ref, json))
            })
        }
        Command::Tenant(TenantCommand::Create {
            slug,
            name,
            plan,
            json,
        }) => with_config(&cli.config, |config| {
            block_on(tenant::create(config, NewTenant { slug, name, plan }, json))
        }),
        Command::Tenant(TenantCommand::List { status, json }) => {
            let status = status.as_deref().and_then(TenantStatus::parse);
            with_config(&cli.config, |config| {
                block_on(tenant::list(config, status, json))
            })
        }
        Command::Tenant(TenantCommand::Get { tenant_ref, json }) => {
            with_config(&cli.config, |config| {
                block_on(tenant::get(config, tenant_ref, json))
            })
        }
        Command::Tenant(TenantCommand::Suspend { tenant_ref, json }) => {
            tenant_status(&cli.config, tenant_ref, TenantStatus::Suspended, json)
        }
        Command::Tenant(TenantCommand::Resume { tenant_ref, json }) => {
            tenant_status(&cli.config, tenant_ref, TenantStatus::Active, json)
        }
        Command::Tenant(TenantCommand::Delete { tenant_ref, json }) => {
            tenant_status(&cli.config, tenant_ref, TenantStatus::Deleted, json)
        }
        Command::Tenant(TenantCommand::Export { tenant_ref, output }) => {
            with_config(&cli.config, |config| {
                block_on(transfer::export(config, tenant_ref, output))
            })
        }
        Command::Tenant(TenantCommand::Import { archive }) => with_config(&cli.config, |config| {
            block_on(transfer::import(config, archive))
        }),
        Command::Config(ConfigCommand::Validate { file }) => config_cmd::validate(
            &ConfigSource::from_arg(file.as_deref().or(cli.config.as_deref())),
        ),
        Command::Config(ConfigCommand::Show) => {
            config_cmd::show(&ConfigSource::from_arg(cli.config.as_deref()))
        }
        Command::Serve => with_config(&cli.config, |config| {
            let source = ConfigSource::from_arg(cli.config.as_deref());
            block_on(serve::run(config, source))
        }),
        Command::Check { json } => {
            with_config(&cli.config, |config| block_on(check::run(config, json)))
        }
        Command::Reconcile {
            tenant,
            json,
            repair: _,
            grace,
        } => with_config(&cli.config, |config| {
            block_on(reconcile::run(config, tenant, json, grace))
        }),
        Command::Migrate { plan } => {
            with_config(&cli.config, |config| block_on(migrate::run(config, plan)))
        }
    };
    ExitCode::from(code)
}

fn tenant_status(path: &Option<PathBuf>, tenant_ref: String, to: TenantStatus, json: bool) -> u8 {
    with_config(path, |config| {
        block_on(tenant::set_status(config, tenant_ref, to, json))
    })
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
