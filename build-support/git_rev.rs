//! Records the git revision for `--version` (env QTOOLS_GIT_REV). The build
//! script of qfixq, qstat and qkillns (each names this file in Cargo.toml).
//!
//! A build outside a git checkout (a source tarball, `cargo install` from a
//! registry) says "unknown revision" instead of failing.
fn main() {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let rev = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown revision".into());
    println!("cargo:rustc-env=QTOOLS_GIT_REV={rev}");
    // Rebuild when HEAD moves: HEAD names the branch, the branch's ref file
    // (or packed-refs) holds the commit, and logs/HEAD grows on every move.
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        // A path that does not exist would rerun this script on every build.
        let mut watch = vec![format!("{dir}/HEAD"), format!("{dir}/logs/HEAD"), format!("{dir}/packed-refs")];
        if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watch.push(format!("{dir}/{r}"));
        }
        for p in watch.iter().filter(|p| std::path::Path::new(p).exists()) {
            println!("cargo:rerun-if-changed={p}");
        }
    } else {
        println!("cargo:rerun-if-changed=../build-support/git_rev.rs");
    }
}
