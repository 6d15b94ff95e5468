//! The real cosign CLIs, the judges of signature interop: v2 (the legacy
//! `.sig` tag) and v3 (sigstore bundles as OCI 1.1 referrers), built at
//! pinned releases by `scripts/lib.sh` (`ensure_cosign`,
//! `ensure_cosign_v3`) into `~/.cache/ocigo-ci/bin`. `OCIGO_COSIGN` /
//! `OCIGO_COSIGN_V3` override the paths. Tests fail, not skip, when a
//! binary is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::registry::ci_cache;

/// The cosign v2 release `scripts/lib.sh` builds (keep in step).
pub const COSIGN_V2_VERSION: &str = "v2.4.1";
/// The cosign v3 release `scripts/lib.sh` builds (keep in step).
pub const COSIGN_V3_VERSION: &str = "v3.1.3";

fn find(var: &str, version: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| ci_cache().join(format!("cosign-{version}")));
    assert!(
        path.is_file(),
        "{} is not there; the interop tests need cosign {version}: run scripts/test.sh (it \
         builds it once), or `source scripts/lib.sh && ensure_test_deps`, or set {var}",
        path.display()
    );
    path
}

/// The cosign v2 binary.
pub fn v2() -> PathBuf {
    find("OCIGO_COSIGN", COSIGN_V2_VERSION)
}

/// The cosign v3 binary.
pub fn v3() -> PathBuf {
    find("OCIGO_COSIGN_V3", COSIGN_V3_VERSION)
}

/// Runs `bin ARGS` in `dir` with `COSIGN_PASSWORD=password`, HOME and the
/// TUF cache inside `dir` (nothing read from or written to the real home),
/// and no proxy settings passed on.
pub fn run(bin: &Path, dir: &Path, password: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .current_dir(dir)
        .env("COSIGN_PASSWORD", password)
        .env("HOME", dir)
        .env("SIGSTORE_NO_CACHE", "1")
        .env("TUF_ROOT", dir.join("tuf"))
        .env_remove("COSIGN_EXPERIMENTAL")
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()))
}
