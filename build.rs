// Records the git commit and build date so `strata version` can report them
// without a runtime dependency on git.
use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=BUILT_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=BUILT_DATE={date}");
    // Rebuild when the commit changes. In a worktree `.git` is a file, so
    // ask git where HEAD and the refs live; name only paths that exist, or
    // cargo would rerun this script (and relink the binary) on every build.
    for path in ["HEAD", "refs/heads", "packed-refs"] {
        let resolved = Command::new("git")
            .args(["rev-parse", "--git-path", path])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_string());
        if let Some(resolved) = resolved.filter(|p| std::path::Path::new(p).exists()) {
            println!("cargo:rerun-if-changed={resolved}");
        }
    }
    println!("cargo:rerun-if-changed=migrations");
}
