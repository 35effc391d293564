//! What `strata tenant ...` and `strata token ...` share: the PostgreSQL
//! handle of the administrative path, and how a refusal becomes a message
//! and an exit code. The work itself is `crate::records::admin`, the same
//! functions the admin API calls.

use crate::cli::exit;
use crate::config::Config;
use crate::records::RecordError;
use crate::records::admin::AdminError;
use crate::stores::postgres::Postgres;

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

/// Runs `work` on the administrative path and closes it again; a refusal
/// is printed (`what`: "tenant", "token": what a ref names) and becomes an
/// exit code.
pub(crate) async fn with_postgres<T, F>(config: &Config, what: &str, work: F) -> Result<T, u8>
where
    F: AsyncFnOnce(&Postgres) -> Result<T, AdminError>,
{
    let Some(pg) = connect(config) else {
        return Err(exit::BAD_CONFIG);
    };
    let result = work(&pg).await;
    pg.close().await;
    result.map_err(|e| {
        eprintln!("strata: {}", describe(&e, what));
        exit_code(&e)
    })
}

pub(crate) fn exit_code(error: &AdminError) -> u8 {
    match error {
        AdminError::Record(RecordError::Unavailable(_)) => exit::DEPENDENCY_UNREACHABLE,
        _ => exit::FAILURE,
    }
}

/// A refusal in words, with the allowed states of an illegal transition.
pub(crate) fn describe(error: &AdminError, what: &str) -> String {
    match error {
        AdminError::Invalid { field, message } => format!("{}: {message}", flag(field)),
        AdminError::UnknownTenant(tenant_ref) => {
            format!("--tenant: no active or suspended tenant has the ref {tenant_ref}")
        }
        AdminError::Record(RecordError::NotFound) => format!("no such {what}"),
        AdminError::Record(RecordError::IllegalTransition(refused)) => {
            let allowed = if refused.allowed.is_empty() {
                "none (final state)".to_string()
            } else {
                refused.allowed.join(", ")
            };
            format!(
                "the {what} is {}; it cannot become {} (allowed: {allowed})",
                refused.from.as_deref().unwrap_or("new"),
                refused.to
            )
        }
        other => other.to_string(),
    }
}

/// The command-line name of a field the records layer names in JSON terms.
fn flag(field: &str) -> String {
    match field {
        "ref" => "REF".to_string(),
        "expiresInDays" => "--expires".to_string(),
        other => format!("--{other}"),
    }
}
