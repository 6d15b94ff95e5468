//! Running the real go command with a clean, explicit environment, online
//! or inside a network namespace with no network (`unshare -n`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

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

/// The Go program in `tests/<name>` (gojudge, containers-policy,
/// sumdbfixture), built once per test binary into `target/tmp/<name>`
/// with `go build <extra> -o …` (its go.sum complete and checked in:
/// `-mod=readonly`), modules downloaded through the Go module proxy (the
/// caller's GOPROXY and proxy variables) into `target/tmp/<name>-modcache`
/// the first time. `cell` is the caller's own static, so a failed build
/// is tried once and fails every test that needs it, with its output.
pub fn test_program(
    cell: &'static OnceLock<Result<PathBuf, String>>,
    name: &str,
    extra: &[&str],
) -> &'static Path {
    let built = cell.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join(name);
        let target = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let bin = target.join(name);
        let partial = target.join(format!("{name}.{}.tmp", std::process::id()));
        let modcache = target.join(format!("{name}-modcache"));
        let mut args = vec!["build"];
        args.extend_from_slice(extra);
        args.extend(["-o", partial.to_str().expect("UTF-8 path"), "."]);
        let mut cmd = go_command(
            &[],
            &dir,
            &args,
            &[
                ("GOFLAGS", "-mod=readonly -modcacherw -buildvcs=false"),
                ("CGO_ENABLED", "0"),
                ("GOMODCACHE", modcache.to_str().expect("UTF-8 path")),
            ],
        );
        for pass in [
            "GOPROXY",
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "NO_PROXY",
            "no_proxy",
        ] {
            if let Some(v) = std::env::var_os(pass) {
                cmd.env(pass, v);
            }
        }
        let out = cmd.output().map_err(|e| format!("cannot run go: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "building tests/{name} failed ({:?}):\n{}{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        std::fs::rename(&partial, &bin)
            .map_err(|e| format!("rename {}: {e}", partial.display()))?;
        Ok(bin)
    });
    match built {
        Ok(bin) => bin,
        Err(e) => panic!("{e}"),
    }
}
