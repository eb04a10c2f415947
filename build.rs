//! Records the git commit the binary is built from, for `--version`. Outside a git
//! checkout (a source tarball, a Debian package build) `FAILOVER_WATCHDOG_COMMIT` from
//! the environment is used, else "unknown".

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=FAILOVER_WATCHDOG_COMMIT");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    let commit = std::env::var("FAILOVER_WATCHDOG_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=FAILOVER_WATCHDOG_COMMIT={}", commit.trim());
}

fn git_commit() -> Option<String> {
    let output = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let commit = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (!commit.is_empty()).then_some(commit)
}
