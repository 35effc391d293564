//! Exit codes, shared by every command (and listed in `--help`). They belong
//! to the CLI: the boot reports what failed, this module says what a script
//! or systemd (`RestartPreventExitStatus=2 4 5`) should make of it.

use crate::boot::BootError;
use crate::stores::ProbeError;

pub const OK: u8 = 0;
/// A generic failure, or `migrate --plan` found pending changes.
pub const FAILURE: u8 = 1;
pub const BAD_CONFIG: u8 = 2;
pub const DEPENDENCY_UNREACHABLE: u8 = 3;
pub const DEPENDENCY_UNFIT: u8 = 4;
pub const SCHEMA_REFUSED: u8 = 5;
pub const CANNOT_LISTEN: u8 = 6;
/// `self-update`: the release was refused (signature, completeness,
/// manifest, smoke test, downgrade); nothing was installed.
pub const UPDATE_REFUSED: u8 = 7;
/// `self-update`: the new version was installed but not ready in time and
/// was rolled back.
pub const UPDATE_ROLLED_BACK: u8 = 8;
/// A thread panicked (a bug); the log holds the panic event. Rust's own
/// code for a panicking `main`, so every panic ends the same way.
pub const PANIC: u8 = 101;

/// The exit code of a failed boot step.
pub fn of(error: &BootError) -> u8 {
    match error {
        BootError::Config(_) => BAD_CONFIG,
        // A mongodb+srv lookup that failed is a DNS outage, not a typo.
        BootError::Stores(ProbeError::Unreachable { .. }) => DEPENDENCY_UNREACHABLE,
        BootError::Stores(_) => BAD_CONFIG,
        BootError::Unreachable { .. } => DEPENDENCY_UNREACHABLE,
        BootError::Unfit { .. } => DEPENDENCY_UNFIT,
        // A store lost mid-upgrade: try again, the schema was not refused.
        BootError::Schema(e) if e.is_transient() => DEPENDENCY_UNREACHABLE,
        BootError::Schema(_) => SCHEMA_REFUSED,
        BootError::Listen { .. } => CANNOT_LISTEN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::SchemaError;

    #[test]
    fn a_store_lost_during_the_schema_step_is_unreachable_not_refused() {
        let lost = BootError::Schema(SchemaError::Store {
            store: "postgres",
            step: "applying 0002_records".into(),
            reason: "connection reset".into(),
            transient: true,
        });
        assert_eq!(of(&lost), DEPENDENCY_UNREACHABLE);
        let refused = BootError::Schema(SchemaError::LockTimeout { secs: 1 });
        assert_eq!(of(&refused), SCHEMA_REFUSED);
    }

    #[test]
    fn exit_codes_are_distinct() {
        let codes = [
            OK,
            FAILURE,
            BAD_CONFIG,
            DEPENDENCY_UNREACHABLE,
            DEPENDENCY_UNFIT,
            SCHEMA_REFUSED,
            CANNOT_LISTEN,
            UPDATE_REFUSED,
            UPDATE_ROLLED_BACK,
            PANIC,
        ];
        let unique: std::collections::BTreeSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), codes.len());
    }
}
