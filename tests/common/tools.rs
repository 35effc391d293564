//! External tools the client tests run (schemathesis, npm, node, bash):
//! bounded in time, output kept for the failure message.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// What a finished tool printed, and how it ended.
pub struct ToolRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl ToolRun {
    pub fn output(&self) -> String {
        format!(
            "exit code {:?} after {:.1}s\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code,
            self.elapsed.as_secs_f64(),
            self.stdout,
            self.stderr
        )
    }

    /// Panics with the tool's output unless it exited 0.
    #[track_caller]
    pub fn assert_success(&self, what: &str) {
        assert_eq!(self.code, Some(0), "{what} failed: {}", self.output());
    }
}

/// Runs `command` to completion, killing it after `limit` (then the code is `None`).
pub async fn run_bounded(mut command: tokio::process::Command, limit: Duration) -> ToolRun {
    let started = Instant::now();
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(output) => {
            let output = output.expect("wait for the tool");
            ToolRun {
                code: output.status.code(),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
                elapsed: started.elapsed(),
            }
        }
        // Dropping the future drops the child: kill_on_drop ends it.
        Err(_) => ToolRun {
            code: None,
            stdout: String::new(),
            stderr: format!("killed: still running after {limit:?}"),
            elapsed: started.elapsed(),
        },
    }
}

/// The repository's root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A command that scripts/deps installed, named by an environment variable
/// of `scripts/deps env`.
pub fn installed(var: &str) -> PathBuf {
    let path = PathBuf::from(std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the tests with scripts/test (scripts/deps installs it)")
    }));
    assert!(
        path.exists(),
        "{var}={} does not exist: run scripts/deps up",
        path.display()
    );
    path
}
