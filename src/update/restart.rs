//! After a swap: restart the running strata and wait until it is ready.
//!
//! Under systemd, `systemctl restart` of a `Type=notify` unit returns once
//! the new process has sent `READY=1` (or failed), so the `/readyz` that
//! follows is the new process's (the package layout stops the unit before
//! the package manager runs, so this restart is then a start, under the
//! same bound). Other supervisors use
//! `update.restart_command`, which must return once the old process has
//! stopped and the new one started.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::UpdateError;
use crate::config::UpdateConfig;

/// How often `/readyz` is asked.
const POLL: Duration = Duration::from_millis(250);
/// How long one `/readyz` request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restarter {
    /// `update.restart_command`.
    Command(Vec<String>),
    /// The unit is active: `systemctl restart UNIT`.
    Systemd(String),
    /// Nothing runs strata here (or nothing we know of): no restart.
    None,
}

impl Restarter {
    pub fn choose(config: &UpdateConfig) -> Self {
        if !config.restart_command.is_empty() {
            return Self::Command(config.restart_command.clone());
        }
        let active = Command::new("systemctl")
            .args(["is-active", "--quiet", &config.systemd_unit])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if active {
            Self::Systemd(config.systemd_unit.clone())
        } else {
            Self::None
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Command(argv) => format!("`{}`", argv.join(" ")),
            Self::Systemd(unit) => format!("`systemctl restart {unit}`"),
            Self::None => "nothing (no active unit, no update.restart_command)".into(),
        }
    }

    /// Restarts strata; bounded by `timeout`.
    pub fn restart(&self, timeout: Duration) -> Result<(), UpdateError> {
        match self {
            Self::Command(argv) => run_bounded(argv.clone(), timeout),
            Self::Systemd(unit) => run_bounded(
                vec!["systemctl".into(), "restart".into(), unit.clone()],
                timeout,
            ),
            Self::None => Ok(()),
        }
    }

    /// Stops a strata that systemd runs (bounded by `timeout`); other
    /// supervisors are left alone.
    pub fn stop(&self, timeout: Duration) -> Result<(), UpdateError> {
        match self {
            Self::Systemd(unit) => run_bounded(
                vec!["systemctl".into(), "stop".into(), unit.clone()],
                timeout,
            ),
            Self::Command(_) | Self::None => Ok(()),
        }
    }
}

/// Runs `argv`, which must succeed within `timeout` (else it is killed).
fn run_bounded(argv: Vec<String>, timeout: Duration) -> Result<(), UpdateError> {
    let failed = |reason: String| UpdateError::Restart {
        command: argv.join(" "),
        reason,
    };
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| failed("empty command".into()))?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(failed(format!("exited with {status}"))),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(format!(
                    "did not finish within {}s",
                    timeout.as_secs()
                )));
            }
            Ok(None) => std::thread::sleep(POLL),
            Err(e) => return Err(failed(e.to_string())),
        }
    }
}

/// Polls `http://ADDR/readyz` until it answers 200 or `timeout` passes;
/// on failure says what it saw last.
pub fn wait_ready(admin: SocketAddr, timeout: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    let url = format!("http://{admin}/readyz");
    let agent = self_update::ureq::Agent::config_builder()
        .timeout_global(Some(REQUEST_TIMEOUT))
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut last = "no answer yet".to_string();
    while started.elapsed() < timeout {
        match agent.get(&url).call() {
            Ok(response) if response.status().as_u16() == 200 => return Ok(started.elapsed()),
            Ok(response) => last = format!("{url} answered {}", response.status()),
            Err(e) => last = format!("{url}: {e}"),
        }
        std::thread::sleep(POLL);
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_command_wins_and_an_inactive_unit_means_no_restart() {
        let mut config = UpdateConfig {
            systemd_unit: "strata-no-such-unit-for-tests.service".into(),
            ..UpdateConfig::default()
        };
        assert_eq!(Restarter::choose(&config), Restarter::None);
        config.restart_command = vec!["/bin/true".into()];
        assert_eq!(
            Restarter::choose(&config),
            Restarter::Command(vec!["/bin/true".into()])
        );
    }

    #[test]
    fn a_failing_or_hanging_restart_is_an_error() {
        let failing = Restarter::Command(vec!["/bin/false".into()]);
        let err = failing.restart(Duration::from_secs(10)).unwrap_err();
        assert!(err.to_string().contains("exited with"), "{err}");
        let hanging = Restarter::Command(vec!["/bin/sleep".into(), "30".into()]);
        let err = hanging.restart(Duration::from_secs(1)).unwrap_err();
        assert!(
            err.to_string().contains("did not finish within 1s"),
            "{err}"
        );
        assert!(Restarter::None.restart(Duration::from_secs(1)).is_ok());
    }
}
