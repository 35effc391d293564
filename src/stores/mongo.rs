//! MongoDB: one client per process; the database named in the config.

use std::time::Duration;

use mongodb::bson::{Document, doc};
use mongodb::error::ErrorKind;

use super::Failure;
use mongodb::options::ClientOptions;
use mongodb::{Client, Database};

use super::{ProbeError, ProbeReport, major_version};
use crate::config::MongoConfig;

/// The oldest server major version strata runs on.
pub const MIN_MAJOR_VERSION: u32 = 6;
/// The major version strata is supported on; older ones boot with a warning.
pub const SUPPORTED_MAJOR_VERSION: u32 = 7;

/// What strata must be allowed to do in its database.
const REQUIRED_ACTIONS: [&str; 8] = [
    "find",
    "insert",
    "update",
    "remove",
    "createCollection",
    "createIndex",
    "dropIndex",
    "collMod",
];

#[derive(Clone)]
pub struct Mongo {
    client: Client,
    database: Database,
    address: String,
}

impl Mongo {
    /// Parses the URL and builds the client; connecting happens lazily.
    pub async fn new(config: &MongoConfig) -> Result<Self, ProbeError> {
        let address = config.url.address();
        // The driver's parse error can quote the URL: do not pass it on.
        let mut options =
            ClientOptions::parse(config.url.expose())
                .await
                .map_err(|e| match *e.kind {
                    ErrorKind::DnsResolve { .. } => ProbeError::Unreachable {
                        check: "reachable",
                        address: address.clone(),
                        cause: "cannot resolve the SRV record".into(),
                    },
                    _ => ProbeError::Unfit {
                        check: "config",
                        reason: format!("mongo.url is not a usable MongoDB URL: {}", config.url),
                    },
                })?;
        let timeout = Duration::from_secs(config.connect_timeout_secs);
        options.app_name = Some("strata".into());
        options.connect_timeout = Some(timeout);
        options.server_selection_timeout = Some(timeout);
        let client = Client::with_options(options).map_err(|e| ProbeError::Unfit {
            check: "config",
            reason: format!("mongo.url: {e}"),
        })?;
        let database = client.database(&config.database);
        Ok(Self {
            client,
            database,
            address,
        })
    }

    pub fn address(&self) -> String {
        self.address.clone()
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn database(&self) -> &Database {
        &self.database
    }

    pub async fn probe(&self) -> Result<ProbeReport, ProbeError> {
        let mut report = ProbeReport::new(self.address());
        let admin = self.client.database("admin");
        let hello = admin
            .run_command(doc! { "hello": 1 })
            .await
            .map_err(|e| self.classify("reachable", e))?;
        let topology = if let Ok(set) = hello.get_str("setName") {
            format!("replica set {set}")
        } else if hello.get_str("msg") == Ok("isdbgrid") {
            "sharded cluster (mongos)".to_string()
        } else {
            report
                .warnings
                .push("standalone server: multi-document transactions need a replica set".into());
            "standalone".to_string()
        };
        report.passed("reachable", format!("{} ({topology})", self.address));

        let build_info = admin
            .run_command(doc! { "buildInfo": 1 })
            .await
            .map_err(|e| self.classify("version", e))?;
        let version = build_info
            .get_str("version")
            .unwrap_or("unknown")
            .to_string();
        let warning = version_fitness(&version).map_err(|reason| ProbeError::Unfit {
            check: "version",
            reason,
        })?;
        report.version = Some(version.clone());
        report.passed(
            "version",
            format!("MongoDB {version} (>= {MIN_MAJOR_VERSION}.0)"),
        );
        report.warnings.extend(warning);

        let status = admin
            .run_command(doc! { "connectionStatus": 1, "showPrivileges": true })
            .await
            .map_err(|e| self.classify("privileges", e))?;
        let detail = privileges_detail(&status, self.database.name()).map_err(|reason| {
            ProbeError::Unfit {
                check: "privileges",
                reason,
            }
        })?;
        report.passed("privileges", detail);
        Ok(report)
    }

    pub async fn ping(&self) -> Result<(), ProbeError> {
        self.database
            .run_command(doc! { "ping": 1 })
            .await
            .map(|_| ())
            .map_err(|e| self.classify("reachable", e))
    }

    fn classify(&self, check: &'static str, error: mongodb::error::Error) -> ProbeError {
        if Failure::of_mongo(&error).is_transient() {
            return ProbeError::Unreachable {
                check,
                address: self.address.clone(),
                cause: concise(&error.kind.to_string()),
            };
        }
        match *error.kind {
            ErrorKind::Authentication { .. } => ProbeError::Unfit {
                check,
                reason: format!("{}: authentication failed: {}", self.address, error.kind),
            },
            _ => ProbeError::Unfit {
                check,
                reason: format!("{}: {}", self.address, error.kind),
            },
        }
    }
}

/// Whether strata runs on a server of this version: `Err` (unfit) below
/// the minimum, a warning below the supported version.
pub fn version_fitness(version: &str) -> Result<Option<String>, String> {
    match major_version(version) {
        Some(major) if major >= SUPPORTED_MAJOR_VERSION => Ok(None),
        Some(major) if major >= MIN_MAJOR_VERSION => Ok(Some(format!(
            "MongoDB {version}: the {major}.0 series is past its end of life; \
             {SUPPORTED_MAJOR_VERSION}.0 is the supported target, upgrade the server"
        ))),
        _ => Err(format!(
            "MongoDB {version} is too old or unknown: strata needs {MIN_MAJOR_VERSION}.0 or \
             newer ({SUPPORTED_MAJOR_VERSION}.0 supported)"
        )),
    }
}

/// The driver's server-selection message embeds a whole topology dump;
/// keep the part that says what went wrong.
fn concise(message: &str) -> String {
    match message.split_once("Error: ") {
        Some((_, rest)) => rest
            .split(", labels")
            .next()
            .unwrap_or(rest)
            .trim_end_matches([' ', '}', ']'])
            .to_string(),
        None => message.to_string(),
    }
}

/// Reads `connectionStatus` with privileges: a server without access
/// control lets everyone do everything; otherwise every required action
/// must be granted on the database (or on any database).
fn privileges_detail(status: &Document, database: &str) -> Result<String, String> {
    let auth = status
        .get_document("authInfo")
        .map_err(|_| "connectionStatus has no authInfo".to_string())?;
    let users = auth
        .get_array("authenticatedUsers")
        .map(Vec::len)
        .unwrap_or(0);
    if users == 0 {
        return Ok("access control is off on this server: no user authenticated".into());
    }
    let mut granted: Vec<String> = Vec::new();
    for privilege in auth
        .get_array("authenticatedUserPrivileges")
        .into_iter()
        .flatten()
    {
        let Some(privilege) = privilege.as_document() else {
            continue;
        };
        let Ok(resource) = privilege.get_document("resource") else {
            continue;
        };
        let applies = resource.get_bool("anyResource").unwrap_or(false)
            || matches!(resource.get_str("db"), Ok(db) if db.is_empty() || db == database);
        if !applies {
            continue;
        }
        for action in privilege.get_array("actions").into_iter().flatten() {
            if let Some(action) = action.as_str() {
                granted.push(action.to_string());
            }
        }
    }
    let missing: Vec<&str> = REQUIRED_ACTIONS
        .iter()
        .copied()
        .filter(|a| !granted.iter().any(|g| g == a))
        .collect();
    if missing.is_empty() {
        Ok(format!("may read, write and manage indexes in {database}"))
    } else {
        Err(format!(
            "the MongoDB user lacks {} on database {database} (grant readWrite and dbAdmin)",
            missing.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privileges_without_access_control_pass() {
        let status =
            doc! { "authInfo": { "authenticatedUsers": [], "authenticatedUserPrivileges": [] } };
        assert!(privileges_detail(&status, "strata").is_ok());
    }

    #[test]
    fn privileges_name_what_is_missing() {
        let status = doc! { "authInfo": {
            "authenticatedUsers": [ { "user": "app", "db": "admin" } ],
            "authenticatedUserPrivileges": [
                { "resource": { "db": "strata", "collection": "" }, "actions": ["find", "insert", "update", "remove"] },
                { "resource": { "db": "other", "collection": "" }, "actions": ["createIndex"] },
            ],
        } };
        let err = privileges_detail(&status, "strata").expect_err("missing index actions");
        assert!(
            err.contains("createIndex") && err.contains("collMod"),
            "{err}"
        );
        assert!(!err.contains("find"), "{err}");
    }

    #[test]
    fn privileges_on_any_database_count() {
        let status = doc! { "authInfo": {
            "authenticatedUsers": [ { "user": "root", "db": "admin" } ],
            "authenticatedUserPrivileges": [
                { "resource": { "db": "", "collection": "" }, "actions": REQUIRED_ACTIONS.to_vec() },
            ],
        } };
        assert!(privileges_detail(&status, "strata").is_ok());
    }

    #[test]
    fn versions_below_six_are_unfit_and_six_is_warned() {
        for old in ["5.0.26", "4.4.0", "", "unknown"] {
            let reason = version_fitness(old).expect_err(old);
            assert!(reason.contains("needs 6.0 or newer"), "{reason}");
        }
        let warning = version_fitness("6.0.5")
            .expect("6.0 boots")
            .expect("with a warning");
        assert!(
            warning.contains("6.0.5")
                && warning.contains("end of life")
                && warning.contains("7.0 is the supported target"),
            "{warning}"
        );
        for current in ["7.0.14", "8.0.0-rc1"] {
            assert_eq!(version_fitness(current), Ok(None), "{current}");
        }
    }

    #[test]
    fn concise_keeps_the_cause() {
        let msg = "Server selection timeout: No available servers. Topology: { Type: Unknown, Servers: [ { Address: 127.0.0.1:1, Type: Unknown, Error: Kind: I/O error: Connection refused (os error 111), labels: {} } ] }";
        assert_eq!(
            concise(msg),
            "Kind: I/O error: Connection refused (os error 111)"
        );
    }
}
