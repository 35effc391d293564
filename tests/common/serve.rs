//! A `strata serve` child process with a real sd_notify socket, so tests
//! see READY=1, STATUS= and WATCHDOG=1 exactly as systemd would.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Served {
    pub child: Child,
    pub admin: String,
    pub api: String,
    notify: UnixDatagram,
    _notify_dir: tempfile::TempDir,
    pub notifications: Vec<String>,
    stderr_path: PathBuf,
}

impl Served {
    /// Starts `command` (a `strata serve`) with NOTIFY_SOCKET set.
    pub fn start(
        mut command: Command,
        admin: std::net::SocketAddr,
        api: std::net::SocketAddr,
    ) -> Served {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket_path = dir.path().join("notify.sock");
        let notify = UnixDatagram::bind(&socket_path).expect("bind notify socket");
        let stderr_path = dir.path().join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        command
            .env("NOTIFY_SOCKET", &socket_path)
            .stdout(Stdio::null())
            .stderr(stderr);
        let child = command.spawn().expect("spawn strata serve");
        Served {
            child,
            admin: format!("http://{admin}"),
            api: format!("http://{api}"),
            notify,
            _notify_dir: dir,
            notifications: Vec::new(),
            stderr_path,
        }
    }

    /// Waits for a notification containing `needle`, up to `timeout`.
    /// Returns whether it came; every message read is kept.
    pub fn wait_notification(&mut self, needle: &str, timeout: Duration) -> bool {
        if self.notifications.iter().any(|n| n.contains(needle)) {
            return true;
        }
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.notify
                .set_read_timeout(Some(left))
                .expect("set notify socket timeout");
            match self.notify.recv(&mut buf) {
                Ok(n) => {
                    let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let found = message.contains(needle);
                    self.notifications.push(message);
                    if found {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// GET on the admin listener: status and JSON body.
    pub async fn admin_get(&self, path: &str) -> (u16, serde_json::Value) {
        get_json(&format!("{}{path}", self.admin)).await
    }

    /// Polls `/readyz` until `accept(status, body)` holds or `timeout`
    /// passes; returns the last answer. This waits on an observable
    /// condition of the server, with a deadline, not a fixed sleep.
    pub async fn wait_readyz(
        &self,
        timeout: Duration,
        accept: impl Fn(u16, &serde_json::Value) -> bool,
    ) -> (u16, serde_json::Value) {
        let deadline = Instant::now() + timeout;
        loop {
            let (status, body) = self.admin_get("/readyz").await;
            if accept(status, &body) || Instant::now() >= deadline {
                return (status, body);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then the exit code.
    pub fn stop(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.child.wait().ok().and_then(|s| s.code())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET returning (status, JSON body); a refused connection is status 0.
pub async fn get_json(url: &str) -> (u16, serde_json::Value) {
    match reqwest::get(url).await {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.json().await.unwrap_or(serde_json::Value::Null);
            (status, body)
        }
        Err(_) => (0, serde_json::Value::Null),
    }
}
