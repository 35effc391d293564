//! The two install layouts and the moves between versions.
//!
//! * Tarball: strata is a plain file in a directory strata owns (e.g.
//!   `/opt/strata/bin/strata`). The new binary is staged in
//!   `.strata-update/` beside it (so on the same filesystem), smoke-tested,
//!   then `rename(2)`d over the old one: at every moment the path holds a
//!   whole binary, old or new. The old one is kept as `strata.previous`.
//! * Package: `dpkg -S`/`rpm -qf` say a package owns the binary. Then only
//!   the package manager may replace it, so the package database stays
//!   true: the release's `.deb`/`.rpm` (its SHA-256 in the signed manifest)
//!   is installed with `apt-get`/`dnf` (a systemd-run strata stopped first,
//!   see [`super::apply`]).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::UpdateError;

/// The staging directory's name, beside the binary.
pub const STAGING_DIR: &str = ".strata-update";
/// The suffix of the kept previous binary.
pub const PREVIOUS_SUFFIX: &str = ".previous";
/// How long the smoke test may take.
const SMOKE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageManager {
    Dpkg,
    Rpm,
}

impl PackageManager {
    pub fn kind(self) -> &'static str {
        match self {
            Self::Dpkg => "deb",
            Self::Rpm => "rpm",
        }
    }

    /// The command that installs `file` (a downgrade included, when asked).
    pub fn install_command(self, file: &Path, downgrade: bool) -> Vec<String> {
        let file = file.display().to_string();
        match self {
            Self::Dpkg => {
                let mut argv: Vec<String> = [
                    "apt-get",
                    "install",
                    "--yes",
                    // Unattended: a locally changed conffile (strata.toml,
                    // strata.env) is kept, as `rpm` keeps a changed config.
                    "-o",
                    "Dpkg::Options::=--force-confdef",
                    "-o",
                    "Dpkg::Options::=--force-confold",
                    // Another apt run holds the lock: wait for it a while.
                    "-o",
                    "DPkg::Lock::Timeout=120",
                ]
                .map(String::from)
                .to_vec();
                if downgrade {
                    argv.push("--allow-downgrades".into());
                }
                argv.push(file);
                argv
            }
            Self::Rpm => {
                let verb = if downgrade { "downgrade" } else { "install" };
                vec!["dnf".into(), verb.into(), "--assumeyes".into(), file]
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    Tarball {
        exe: PathBuf,
    },
    Package {
        exe: PathBuf,
        manager: PackageManager,
        /// What the package manager answered (`strata: /usr/bin/strata`).
        owner: String,
    },
}

impl Layout {
    /// Where the running binary is, and who owns it.
    pub fn detect(exe: &Path) -> Self {
        let exe = exe.to_path_buf();
        for (manager, program, flag) in [
            (PackageManager::Dpkg, "dpkg", "-S"),
            (PackageManager::Rpm, "rpm", "-qf"),
        ] {
            if let Some(owner) = owned_by(program, flag, &exe) {
                return Self::Package {
                    exe,
                    manager,
                    owner,
                };
            }
        }
        Self::Tarball { exe }
    }

    pub fn exe(&self) -> &Path {
        match self {
            Self::Tarball { exe } | Self::Package { exe, .. } => exe,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Tarball { exe } => format!("tarball install at {}", exe.display()),
            Self::Package { owner, manager, .. } => {
                format!("{} package ({})", manager.kind(), owner.trim())
            }
        }
    }

    /// The staging directory: beside the binary, hence on its filesystem.
    pub fn staging(&self) -> PathBuf {
        match self {
            Self::Tarball { exe } => exe
                .parent()
                .unwrap_or_else(|| Path::new("/"))
                .join(STAGING_DIR),
            // /usr/bin is the package manager's; stage in strata's state.
            Self::Package { .. } => PathBuf::from("/var/lib/strata").join(STAGING_DIR),
        }
    }
}

/// `dpkg -S PATH` / `rpm -qf PATH` answering 0 means a package owns PATH.
fn owned_by(program: &str, flag: &str, exe: &Path) -> Option<String> {
    let output = Command::new(program)
        .arg(flag)
        .arg(exe)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

fn io(step: impl Into<String>) -> impl FnOnce(std::io::Error) -> UpdateError {
    let step = step.into();
    move |e| UpdateError::Install {
        step,
        reason: e.to_string(),
    }
}

/// A fresh staging directory for one attempt, `staging/<label>`.
pub fn fresh_staging(staging: &Path, label: &str) -> Result<PathBuf, UpdateError> {
    fs::create_dir_all(staging).map_err(io(format!("creating {}", staging.display())))?;
    let dir = staging.join(format!("{label}-{}", std::process::id()));
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(io(format!("clearing {}", dir.display())))?;
    }
    fs::create_dir(&dir).map_err(io(format!("creating {}", dir.display())))?;
    Ok(dir)
}

/// Runs `binary version --json`; it must exit 0 and report `expected`.
pub fn smoke_test(binary: &Path, expected: &str) -> Result<(), UpdateError> {
    let failed = |reason: String| UpdateError::SmokeTest {
        version: expected.to_string(),
        reason,
    };
    fs::set_permissions(binary, fs::Permissions::from_mode(0o755))
        .map_err(|e| failed(format!("making it executable: {e}")))?;
    let reported = reported_version(binary).map_err(failed)?;
    if reported == expected {
        Ok(())
    } else {
        Err(failed(format!("`version --json` reports {reported}")))
    }
}

/// The version `binary version --json` reports (bounded in time).
pub fn reported_version(binary: &Path) -> Result<String, String> {
    let reported: serde_json::Value = run_json(binary, &["version", "--json"])?;
    reported
        .get("version")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .ok_or_else(|| "`version --json` names no version".to_string())
}

/// The release manifest a strata binary embeds (`self-update manifest`).
pub fn binary_manifest(binary: &Path) -> Result<super::manifest::Manifest, String> {
    run_json(binary, &["self-update", "manifest"])
}

/// Runs `binary ARGS` (bounded in time) and parses what it prints.
fn run_json<T: serde::de::DeserializeOwned>(binary: &Path, args: &[&str]) -> Result<T, String> {
    let shown = args.join(" ");
    let mut child = Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let deadline = Instant::now() + SMOKE_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`{shown}` did not finish within {}s",
                    SMOKE_TIMEOUT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(e.to_string()),
        }
    }
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(format!(
            "`{shown}` exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("`{shown}` did not print what was expected: {e}"))
}

pub fn previous_of(exe: &Path) -> PathBuf {
    let mut name = exe.file_name().unwrap_or_default().to_os_string();
    name.push(PREVIOUS_SUFFIX);
    exe.with_file_name(name)
}

/// Puts `new` at `exe` in one `rename(2)`; the binary that was there
/// becomes `exe.previous`. `work` is a staging directory on the same
/// filesystem.
pub fn swap_in(exe: &Path, new: &Path, work: &Path) -> Result<(), UpdateError> {
    let previous = previous_of(exe);
    let old = work.join("outgoing");
    let _ = fs::remove_file(&old);
    // A second name for the running binary, so it survives the rename.
    fs::hard_link(exe, &old).map_err(io(format!("linking {}", exe.display())))?;
    fs::set_permissions(new, fs::Permissions::from_mode(0o755))
        .map_err(io(format!("chmod {}", new.display())))?;
    fs::File::open(new)
        .and_then(|f| f.sync_all())
        .map_err(io(format!("syncing {}", new.display())))?;
    fs::rename(new, exe).map_err(io(format!("renaming the new binary to {}", exe.display())))?;
    fs::rename(&old, &previous).map_err(io(format!("keeping {}", previous.display())))?;
    sync_dir(exe);
    Ok(())
}

/// Puts `exe.previous` back at `exe` (one `rename(2)`); the binary that
/// was there becomes `exe.previous`, so a second rollback undoes the first.
pub fn swap_back(exe: &Path, work: &Path) -> Result<(), UpdateError> {
    let previous = previous_of(exe);
    if !previous.exists() {
        return Err(UpdateError::NoPrevious {
            path: previous.display().to_string(),
        });
    }
    let restore = work.join("restore");
    let _ = fs::remove_file(&restore);
    fs::hard_link(&previous, &restore).map_err(io(format!("linking {}", previous.display())))?;
    let old = work.join("outgoing");
    let _ = fs::remove_file(&old);
    fs::hard_link(exe, &old).map_err(io(format!("linking {}", exe.display())))?;
    fs::rename(&restore, exe).map_err(io(format!("restoring {}", exe.display())))?;
    fs::rename(&old, &previous).map_err(io(format!("keeping {}", previous.display())))?;
    sync_dir(exe);
    Ok(())
}

/// Makes the renames durable (best effort: the swap itself is done).
fn sync_dir(exe: &Path) {
    if let Some(dir) = exe.parent()
        && let Ok(d) = fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
}

/// Runs the package manager on a verified package.
pub fn install_package(
    manager: PackageManager,
    file: &Path,
    downgrade: bool,
) -> Result<(), UpdateError> {
    let argv = manager.install_command(file, downgrade);
    let status = Command::new(&argv[0])
        .args(&argv[1..])
        // No debconf question can be answered here.
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .status()
        .map_err(|e| UpdateError::Package {
            command: argv.join(" "),
            reason: e.to_string(),
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(UpdateError::Package {
            command: argv.join(" "),
            reason: format!("exited with {status}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_no_package_owns_is_a_tarball_install() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = dir.path().join("strata");
        fs::write(&exe, b"x").expect("write");
        assert_eq!(Layout::detect(&exe), Layout::Tarball { exe: exe.clone() });
        assert_eq!(Layout::detect(&exe).staging(), dir.path().join(STAGING_DIR));
    }

    #[test]
    fn package_commands() {
        let f = Path::new("/var/lib/strata/.strata-update/strata-0.2.0-x86_64-linux.deb");
        assert_eq!(
            PackageManager::Dpkg.install_command(f, true).join(" "),
            format!(
                "apt-get install --yes -o Dpkg::Options::=--force-confdef -o \
                 Dpkg::Options::=--force-confold -o DPkg::Lock::Timeout=120 \
                 --allow-downgrades {}",
                f.display()
            )
        );
        assert_eq!(
            PackageManager::Rpm.install_command(f, false)[..3],
            ["dnf", "install", "--assumeyes"]
        );
    }

    #[test]
    fn swap_in_then_back_restores_both_binaries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = dir.path().join("strata");
        let work = dir.path().join("work");
        fs::create_dir(&work).expect("work");
        fs::write(&exe, b"old").expect("old");
        let new = work.join("new");
        fs::write(&new, b"new").expect("new");
        swap_in(&exe, &new, &work).expect("swap in");
        assert_eq!(fs::read(&exe).expect("exe"), b"new");
        assert_eq!(fs::read(previous_of(&exe)).expect("previous"), b"old");
        swap_back(&exe, &work).expect("swap back");
        assert_eq!(fs::read(&exe).expect("exe"), b"old");
        assert_eq!(fs::read(previous_of(&exe)).expect("previous"), b"new");
    }
}
