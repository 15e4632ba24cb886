//! Build script of `heapgate` and `heapgate-proxy` (both name it in their Cargo.toml): puts
//! the git revision into `--version` when built from a checkout (`0.1.0 (3cbecab)`, `0.1.0
//! (3cbecab, modified)`). Outside git (a source tarball) `HEAPGATE_REVISION`, when set at build
//! time, is shown instead; without either, just the version.

use std::process::Command;

fn main() {
    let version = env!("CARGO_PKG_VERSION");
    let revision = Command::new("git")
        .args(["rev-parse", "--short=7", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|rev| rev.trim().to_owned())
        .filter(|rev| !rev.is_empty());
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .is_some_and(|out| out.status.success() && !out.stdout.is_empty());
    let revision = revision.or_else(|| {
        std::env::var("HEAPGATE_REVISION")
            .ok()
            .map(|rev| rev.trim().to_owned())
            .filter(|rev| !rev.is_empty())
    });
    let full = match revision {
        Some(rev) if dirty => format!("{version} ({rev}, modified)"),
        Some(rev) => format!("{version} ({rev})"),
        None => version.to_owned(),
    };
    println!("cargo:rustc-env=HEAPGATE_VERSION={full}");
    // Rebuild when HEAD moves (a commit or a checkout).
    if let Ok(out) = Command::new("git")
        .args(["rev-parse", "--git-dir"])
        .output()
    {
        let git_dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !git_dir.is_empty() {
            println!("cargo:rerun-if-changed={git_dir}/HEAD");
            println!("cargo:rerun-if-changed={git_dir}/index");
        }
    }
    println!("cargo:rerun-if-changed=../revision.rs");
    println!("cargo:rerun-if-env-changed=HEAPGATE_REVISION");
}
