//! Stopping a shared local server for a while (`scripts/deps stop/start`).
//! The guard starts it again when dropped, also when the test fails, so a
//! failing test never leaves the other tests without their server.

use std::process::Command;

/// The services `scripts/deps stop|start` knows.
pub const SERVICES: [&str; 4] = ["postgres", "pgbouncer", "mongo", "s3"];

fn deps(action: &str, service: &str) -> Result<(), String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/deps");
    let output = Command::new(script)
        .args([action, service])
        .output()
        .map_err(|e| format!("cannot run {script}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "scripts/deps {action} {service}: {}\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// A stopped service; started again by [`Down::start`] or on drop.
pub struct Down {
    service: &'static str,
    stopped: bool,
}

impl Down {
    pub fn stop(service: &'static str) -> Down {
        // The guard exists before the stop, so a stop that half-worked is
        // undone too.
        let mut down = Down {
            service,
            stopped: true,
        };
        if let Err(e) = deps("stop", service) {
            down.start();
            panic!("{e}");
        }
        down
    }

    /// Starts the service again and waits until it answers (scripts/deps
    /// bounds that wait).
    pub fn start(&mut self) {
        if std::mem::replace(&mut self.stopped, false) {
            deps("start", self.service).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

impl Drop for Down {
    fn drop(&mut self) {
        if std::mem::replace(&mut self.stopped, false)
            && let Err(e) = deps("start", self.service)
        {
            // Already unwinding, most likely: say it, do not panic again.
            eprintln!("could not restart {}: {e}", self.service);
        }
    }
}
