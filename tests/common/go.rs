//! Running the real go command with a clean, explicit environment, online
//! or inside a network namespace with no network (`unshare -n`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A persistent build cache shared by all tests (`target/tmp/gocache`):
/// the go build cache is safe for concurrent use and only speeds builds up.
pub fn gocache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("gocache")
}

/// `go <args>`, run through `program` (e.g. `["unshare", "-n", "--"]`) if
/// that is not empty, with a cleared environment: only PATH, HOME and TMPDIR
/// are inherited; GOCACHE is [`gocache`], `GOTOOLCHAIN=local`, `GOENV=off`
/// (the user's `go env -w` settings, e.g. a GOFLAGS, are ignored), GOFLAGS
/// unset; then `env` is applied on top (it may override any of these).
///
/// Without a GOMODCACHE in `env` the go command uses `$HOME/go/pkg/mod`:
/// tests should always pass a fresh one.
pub fn go_command(program: &[&str], dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = match program.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg("go");
            c
        }
        None => Command::new("go"),
    };
    cmd.args(args).current_dir(dir).env_clear();
    for keep in ["PATH", "HOME", "TMPDIR"] {
        if let Some(v) = std::env::var_os(keep) {
            cmd.env(keep, v);
        }
    }
    cmd.env("GOCACHE", gocache())
        .env("GOTOOLCHAIN", "local")
        .env("GOENV", "off");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn run(program: &[&str], dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    go_command(program, dir, args, env)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program:?} go {args:?}: {e}"))
}

/// Run `go <args>` in `dir` (see [`go_command`] for the environment).
pub fn go(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    run(&[], dir, args, env)
}

/// Run `go <args>` in `dir` inside a fresh network namespace
/// (`unshare -n -- go ...`): not even loopback is up, so any network
/// access fails. Needs root (or CAP_SYS_ADMIN); we run as root here and in
/// CI. `tests/fixtures.rs` checks that this really is offline.
pub fn go_offline(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    run(&["unshare", "-n", "--"], dir, args, env)
}

/// Borrow an owned environment (e.g. from `fixtures::fixture_env`).
pub fn env_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Panic with the exit status, stdout and stderr unless `out` succeeded.
pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Panic (showing the output) if `out` succeeded.
pub fn assert_failure(out: &Output, what: &str) {
    assert!(
        !out.status.success(),
        "{what} unexpectedly succeeded\n--- stdout ---\n{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
