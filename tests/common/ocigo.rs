//! Running the built `ocigo` binary with a clean environment and a private
//! content store, scratch directories that clean up after themselves (also
//! when the module cache made them read-only), snapshots of directory trees
//! so "unchanged" can be asserted byte for byte, and generated module
//! proxies for bundles bigger than the fixtures.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use sha2::{Digest as _, Sha256};

use super::fixtures::{FIXTURE_TIME, FixtureModule, escape_path, semver_cmp};
use super::go::gocache;

/// The `ocigo` binary cargo built for this test run.
pub fn ocigo_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ocigo")
}

/// `ocigo <args>`, run through `program` (e.g. `["unshare", "-n", "--"]`)
/// if that is not empty, with a cleared environment: PATH, HOME and TMPDIR
/// are inherited; `OCIGO_STORE` is `store`; GOCACHE is the shared test build
/// cache, `GOENV=off`, `GOTOOLCHAIN=local`; then `env` on top. Nothing of
/// the caller's GOMODCACHE, GOPROXY or GOFLAGS leaks in.
pub fn ocigo_command(
    program: &[&str],
    store: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Command {
    let mut cmd = match program.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(ocigo_bin());
            c
        }
        None => Command::new(ocigo_bin()),
    };
    cmd.args(args).env_clear();
    for keep in ["PATH", "HOME", "TMPDIR"] {
        if let Some(v) = std::env::var_os(keep) {
            cmd.env(keep, v);
        }
    }
    cmd.env("OCIGO_STORE", store)
        .env("GOCACHE", gocache())
        .env("GOENV", "off")
        .env("GOTOOLCHAIN", "local");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs `ocigo <args>` (see [`ocigo_command`]); a `--json` report is
/// checked for its key style ([`assert_json_key_style`]).
pub fn ocigo(store: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = ocigo_command(&[], store, args, env);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert_json_key_style(args, &out);
    out
}

/// Runs `ocigo <args>` in a network namespace with no network at all.
pub fn ocigo_offline(store: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = ocigo_command(&["unshare", "-n", "--"], store, args, env);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert_json_key_style(args, &out);
    out
}

/// Every `--json` report uses one key style: snake_case (`media_type`,
/// `blobs_sent`), at every depth. The exceptions: `env`, whose keys are
/// environment variable names (`GOMODCACHE`), values used as keys; and
/// `predicate` and `sbom`, documents of other formats (an attestation's
/// predicate, a CycloneDX SBOM) quoted whole, whose keys are not checked.
/// Every test runner calls this on every run with `--json`, so every
/// report the suite produces is checked. Output that is empty (a failed
/// command) is not a report.
pub fn assert_json_key_style(args: &[&str], out: &Output) {
    if !args.contains(&"--json") || out.stdout.is_empty() {
        return;
    }
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "ocigo {args:?} --json: stdout is not one JSON document ({e}):\n{}",
            stdout(out)
        )
    });
    let mut bad = Vec::new();
    json_keys_not_snake_case(&value, "", false, &mut bad);
    assert!(
        bad.is_empty(),
        "ocigo {args:?}: --json keys not in snake_case: {bad:?}\n{value:#}"
    );
}

fn json_keys_not_snake_case(v: &serde_json::Value, at: &str, env: bool, bad: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map {
                let ok = if env {
                    k.bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                } else {
                    k.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
                        && k.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                };
                if !ok {
                    bad.push(format!("{at}/{k}"));
                }
                if !env && (k == "predicate" || k == "sbom") {
                    continue;
                }
                json_keys_not_snake_case(child, &format!("{at}/{k}"), !env && k == "env", bad);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                json_keys_not_snake_case(child, &format!("{at}/{i}"), false, bad);
            }
        }
        _ => {}
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The exit code, or -1 when a signal ended the process.
pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// Panics, showing both streams, unless `out` exited with `want`.
pub fn assert_exit(out: &Output, want: i32, what: &str) {
    assert_eq!(
        code(out),
        want,
        "{what}: exit code {} (want {want})\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

/// Asserts success and parses the `--json` report on stdout.
pub fn json_ok(out: &Output, what: &str) -> serde_json::Value {
    assert_exit(out, 0, what);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{what}: stdout is not JSON ({e}):\n{}", stdout(out)))
}

/// Splits stderr of a failed run into the error message (the `error: `
/// line and any lines that continue it) and the `hint: ` lines, so tests
/// can assert each separately. Panics if there is no `error: ` line.
pub fn split_error(stderr: &str) -> (String, Vec<String>) {
    let start = stderr
        .find("error: ")
        .unwrap_or_else(|| panic!("no `error: ` line in:\n{stderr}"));
    let mut message = String::new();
    let mut hints = Vec::new();
    for line in stderr[start..].lines() {
        if let Some(h) = line.strip_prefix("hint: ") {
            hints.push(h.to_string());
        } else if hints.is_empty() {
            message.push_str(line);
            message.push('\n');
        }
    }
    (message, hints)
}

/// Panics unless `text` contains every one of `needles`.
pub fn assert_mentions(text: &str, needles: &[&str], what: &str) {
    for n in needles {
        assert!(
            text.contains(n),
            "{what}: {n:?} is not mentioned in:\n{text}"
        );
    }
}

// ---------------------------------------------------------------- scratch

/// A temporary directory that is removed on drop even after the module
/// cache made parts of it read-only (0555 directories).
pub struct Scratch(tempfile::TempDir);

impl Scratch {
    pub fn new() -> Scratch {
        Scratch(
            tempfile::Builder::new()
                .prefix("ocigo-test-")
                .tempdir()
                .expect("tempdir"),
        )
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// `<scratch>/<name>`, as a path (not created).
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    /// `<scratch>/<name>`, as a string, created as an empty directory.
    pub fn dir(&self, name: &str) -> PathBuf {
        let p = self.join(name);
        fs::create_dir_all(&p).unwrap();
        p
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        make_writable(self.0.path());
    }
}

/// Makes every directory below `root` writable again (as `go clean
/// -modcache` does), so it can be removed.
pub fn make_writable(root: &Path) {
    let Ok(meta) = fs::symlink_metadata(root) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let _ = fs::set_permissions(root, fs::Permissions::from_mode(0o755));
    if let Ok(entries) = fs::read_dir(root) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                make_writable(&e.path());
            }
        }
    }
}

static AT_EXIT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

extern "C" fn remove_at_exit() {
    if let Ok(dirs) = AT_EXIT.lock() {
        for d in dirs.iter() {
            make_writable(d);
            let _ = fs::remove_dir_all(d);
        }
    }
}

/// The fixture proxy (`fixtures::build_file_proxy`), built once per test
/// binary in a [`process_dir`].
pub fn fixture_proxy() -> &'static Path {
    static PROXY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PROXY.get_or_init(|| {
        let dir = process_dir("proxy");
        super::fixtures::build_file_proxy(&dir);
        dir
    })
}

/// A directory that lives as long as the test process (for state shared
/// through a `OnceLock`): removed when the process exits normally.
pub fn process_dir(prefix: &str) -> PathBuf {
    let dir = tempfile::Builder::new()
        .prefix(&format!("ocigo-test-{prefix}-"))
        .tempdir()
        .expect("tempdir")
        .keep();
    let mut dirs = AT_EXIT.lock().unwrap();
    if dirs.is_empty() {
        // SAFETY: registers a plain extern "C" function with no arguments.
        unsafe { libc::atexit(remove_at_exit) };
    }
    dirs.push(dir.clone());
    dir
}

// ---------------------------------------------------------------- trees

/// What a directory tree holds: for every path below the root, its kind,
/// permission bits and content (sha256), symlink target, or (FIFOs,
/// sockets, devices: never opened) device number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree(pub BTreeMap<String, String>);

/// Snapshots `root` (which may be absent: an empty tree).
pub fn snapshot(root: &Path) -> Tree {
    fn walk(dir: &Path, rel: &str, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
            .map(|e| e.expect("dir entry"))
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = format!("{rel}/{}", e.file_name().to_string_lossy());
            let meta = fs::symlink_metadata(e.path()).expect("metadata");
            let mode = meta.mode() & 0o7777;
            if meta.file_type().is_symlink() {
                let target = fs::read_link(e.path()).expect("readlink");
                out.insert(name, format!("link {mode:o} {}", target.display()));
            } else if meta.is_dir() {
                out.insert(name.clone(), format!("dir {mode:o}"));
                walk(&e.path(), &name, out);
            } else if !meta.is_file() {
                // A FIFO, socket or device: opening it could block.
                let ft = meta.file_type();
                let kind = if ft.is_fifo() {
                    "fifo"
                } else if ft.is_socket() {
                    "socket"
                } else {
                    "device"
                };
                out.insert(name, format!("{kind} {mode:o} {}", meta.rdev()));
            } else {
                let bytes = fs::read(e.path())
                    .unwrap_or_else(|err| panic!("read {}: {err}", e.path().display()));
                out.insert(
                    name,
                    format!("file {mode:o} {}", hex::encode(Sha256::digest(&bytes))),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    if root.exists() {
        walk(root, "", &mut out);
    }
    Tree(out)
}

impl Tree {
    /// One hash over every path, mode and content.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for (k, v) in &self.0 {
            h.update(k.as_bytes());
            h.update(b"\0");
            h.update(v.as_bytes());
            h.update(b"\n");
        }
        hex::encode(h.finalize())
    }

    /// Human-readable differences from `other` (empty when equal).
    pub fn diff(&self, other: &Tree) -> Vec<String> {
        let mut out = Vec::new();
        for (k, v) in &self.0 {
            match other.0.get(k) {
                None => out.push(format!("removed {k} ({v})")),
                Some(w) if w != v => out.push(format!("changed {k}: {v} -> {w}")),
                _ => {}
            }
        }
        for (k, w) in &other.0 {
            if !self.0.contains_key(k) {
                out.push(format!("added {k} ({w})"));
            }
        }
        out
    }

    /// Paths (relative, starting with `/`) of regular files.
    pub fn files(&self) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(|(_, v)| v.starts_with("file "))
            .map(|(k, _)| k.as_str())
    }
}

/// Hash of a directory tree: paths, modes and contents.
pub fn hash_tree(root: &Path) -> String {
    snapshot(root).digest()
}

/// Panics, listing what differs, unless `root` still matches `before`.
pub fn assert_unchanged(before: &Tree, root: &Path, what: &str) {
    let after = snapshot(root);
    let diff = before.diff(&after);
    assert!(
        diff.is_empty() && before.digest() == after.digest(),
        "{what}: {} changed:\n  {}",
        root.display(),
        diff.join("\n  ")
    );
}

// ---------------------------------------------------------------- modules

/// Writes a module's source files under `root/<path>@<version>/` and
/// returns it as a fixture module (so `zip_bytes` and `go_mod` work).
pub fn write_module_source(
    root: &Path,
    path: &str,
    version: &str,
    files: &[(&str, &[u8])],
) -> FixtureModule {
    let dir = root.join(format!("{path}@{version}"));
    for (name, content) in files {
        let p = dir.join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
    }
    FixtureModule {
        path: path.to_string(),
        version: version.to_string(),
        dir,
    }
}

/// Adds one module version to a static GOPROXY tree (like
/// `build_file_proxy` does for the fixtures), keeping `list` sorted.
pub fn add_to_proxy(proxy: &Path, m: &FixtureModule) {
    let at_v = proxy.join(m.escaped_path()).join("@v");
    fs::create_dir_all(&at_v).unwrap();
    let ev = m.escaped_version();
    fs::write(
        at_v.join(format!("{ev}.info")),
        format!(r#"{{"Version":"{}","Time":"{FIXTURE_TIME}"}}"#, m.version),
    )
    .unwrap();
    fs::write(at_v.join(format!("{ev}.mod")), m.go_mod()).unwrap();
    fs::write(at_v.join(format!("{ev}.zip")), m.zip_bytes()).unwrap();
    let list = at_v.join("list");
    let mut versions: Vec<String> = fs::read_to_string(&list)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    if !versions.contains(&m.version) {
        versions.push(m.version.clone());
    }
    versions.sort_by(|a, b| semver_cmp(a, b));
    fs::write(
        &list,
        versions
            .iter()
            .map(|v| format!("{v}\n"))
            .collect::<String>(),
    )
    .unwrap();
}

/// The two go.sum lines of a module, computed with ocigo's own hashes.
pub fn go_sum_lines(m: &FixtureModule) -> String {
    let mut entries: Vec<(String, [u8; 32])> = m
        .files()
        .into_iter()
        .map(|f| {
            let data = fs::read(m.dir.join(&f)).unwrap();
            (
                format!("{}@{}/{f}", m.path, m.version),
                Sha256::digest(&data).into(),
            )
        })
        .collect();
    let h1 = ::ocigo::gomod::hash_zip_entries(&mut entries).unwrap();
    format!(
        "{p} {v} {h1}\n{p} {v}/go.mod {}\n",
        ::ocigo::gomod::hash_gomod(&m.go_mod()),
        p = m.path,
        v = m.version
    )
}

/// Deterministic pseudo-random printable text (so deflate cannot shrink it
/// much): `len` bytes, lines of 64 characters.
pub fn noise_text(len: usize, seed: u64) -> Vec<u8> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/";
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        if out.len() % 65 == 64 {
            out.push(b'\n');
            continue;
        }
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.push(ALPHABET[(state % 64) as usize]);
    }
    out
}

/// A generated main module requiring `count` generated modules
/// `example.com/gen/mNNN v1.0.0` (each a package with a constant and a
/// `data.txt` of `data_bytes` noise) and importing every one, with a
/// file proxy serving them. go.sum is written by `go mod tidy`.
pub struct Generated {
    pub proxy: PathBuf,
    pub project: PathBuf,
    pub modules: Vec<FixtureModule>,
}

/// Generates [`Generated`] below `root` (`root/src`, `root/proxy`,
/// `root/project`). `modcache` is the GOMODCACHE `go mod tidy` may fill.
pub fn generate_modules(
    root: &Path,
    count: usize,
    data_bytes: usize,
    modcache: &Path,
) -> Generated {
    let src = root.join("src");
    let proxy = root.join("proxy");
    let project = root.join("project");
    let mut modules = Vec::with_capacity(count);
    for i in 0..count {
        let path = format!("example.com/gen/m{i:03}");
        let go_mod = format!("module {path}\n\ngo 1.22\n");
        let go_file =
            format!("package m{i:03}\n\n// Name is the module's name.\nconst Name = \"m{i:03}\"\n");
        let data = noise_text(data_bytes, i as u64 + 1);
        let m = write_module_source(
            &src,
            &path,
            "v1.0.0",
            &[
                ("go.mod", go_mod.as_bytes()),
                (&format!("m{i:03}.go"), go_file.as_bytes()),
                ("data.txt", &data),
            ],
        );
        add_to_proxy(&proxy, &m);
        modules.push(m);
    }

    fs::create_dir_all(&project).unwrap();
    let mut go_mod = String::from("module example.com/genmain\n\ngo 1.22\n\nrequire (\n");
    let mut main = String::from("package main\n\nimport (\n\t\"fmt\"\n\n");
    let mut names = Vec::new();
    for m in &modules {
        go_mod.push_str(&format!("\t{} {}\n", m.path, m.version));
        let pkg = m.path.rsplit('/').next().unwrap();
        main.push_str(&format!("\t\"{}\"\n", m.path));
        names.push(format!("{pkg}.Name"));
    }
    go_mod.push_str(")\n");
    main.push_str(")\n\nfunc main() {\n\tfmt.Println(len([]string{\n");
    for n in &names {
        main.push_str(&format!("\t\t{n},\n"));
    }
    main.push_str("\t}))\n}\n");
    fs::write(project.join("go.mod"), go_mod).unwrap();
    fs::write(project.join("main.go"), main).unwrap();

    let abs_proxy = std::path::absolute(&proxy).unwrap();
    let out = super::go::go(
        &project,
        &["mod", "tidy"],
        &[
            ("GOPROXY", &format!("file://{}", abs_proxy.display())),
            ("GONOSUMDB", "example.com"),
            ("GOFLAGS", "-modcacherw"),
            ("GOMODCACHE", &modcache.display().to_string()),
        ],
    );
    super::go::assert_success(&out, "go mod tidy (generated modules)");
    Generated {
        proxy,
        project,
        modules,
    }
}

/// `<esc path>@<esc version>` below a GOMODCACHE: the extracted tree.
pub fn tree_dir(modcache: &Path, path: &str, version: &str) -> PathBuf {
    modcache.join(format!("{}@{}", escape_path(path), escape_path(version)))
}

/// `cache/download/<esc path>/@v` below a GOMODCACHE.
pub fn download_dir(modcache: &Path, path: &str) -> PathBuf {
    modcache
        .join("cache/download")
        .join(escape_path(path))
        .join("@v")
}

/// Removes one module version (download files and tree) from a GOMODCACHE.
pub fn remove_module(modcache: &Path, path: &str, version: &str) {
    let tree = tree_dir(modcache, path, version);
    make_writable(&tree);
    let _ = fs::remove_dir_all(&tree);
    let dl = download_dir(modcache, path);
    let ev = escape_path(version);
    for ext in ["info", "mod", "zip", "ziphash", "lock", "partial"] {
        let _ = fs::remove_file(dl.join(format!("{ev}.{ext}")));
    }
    let list = dl.join("list");
    if let Ok(text) = fs::read_to_string(&list) {
        let kept: String = text
            .lines()
            .filter(|l| *l != version)
            .map(|l| format!("{l}\n"))
            .collect();
        fs::write(&list, kept).unwrap();
    }
}

/// A `flock` on `path`, held by a `flock(1)` process until the guard is
/// dropped.
pub struct FlockHolder(std::process::Child);

/// An exclusive `flock` on `path` (as the go command's `lockedfile.Edit`
/// takes it).
pub fn hold_flock(path: &Path) -> FlockHolder {
    hold_flock_as(path, "--exclusive")
}

/// A shared `flock` on `path` (as the go command's `lockedfile.Read`).
pub fn hold_flock_shared(path: &Path) -> FlockHolder {
    hold_flock_as(path, "--shared")
}

fn hold_flock_as(path: &Path, mode: &str) -> FlockHolder {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new("flock")
        .arg(mode)
        .arg(path)
        .args(["-c", "echo locked; read _"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("running flock(1)");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked", "flock(1) did not take the lock");
    FlockHolder(child)
}

impl Drop for FlockHolder {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

/// The fixture project (`fixtures::copy_project`, its modules from a
/// `fixtures::build_file_proxy`), packed once per test binary into an OCI
/// layout; returns the layout's directory (tag v1).
pub fn fixture_bundle_layout() -> &'static Path {
    static LAYOUT: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    &LAYOUT
        .get_or_init(|| {
            let tmp = tempfile::tempdir().unwrap();
            let proxy = tmp.path().join("proxy");
            super::fixtures::build_file_proxy(&proxy);
            let project = super::fixtures::copy_project(tmp.path());
            let layout = tmp.path().join("layout");
            let dest = format!("oci:{}:v1", layout.display());
            let mut env = super::fixtures::fixture_env(&proxy);
            env.push((
                "GOMODCACHE".into(),
                tmp.path().join("unused").display().to_string(),
            ));
            let env = super::go::env_refs(&env);
            let out = ocigo(
                &tmp.path().join("store"),
                &["pack", project.to_str().unwrap(), "-o", &dest],
                &env,
            );
            assert_exit(&out, 0, "pack the fixture project");
            (tmp, layout)
        })
        .1
}

/// A small artifact in a new OCI layout at `dir`, tagged v1: an empty
/// config and one `application/octet-stream` layer per entry of
/// `layers`, artifactType `application/x.ocigo.test`. Returns the
/// `oci:DIR:v1` reference and the manifest's descriptor.
pub fn artifact_layout(dir: &Path, layers: &[&[u8]]) -> (String, ::ocigo::oci::Descriptor) {
    use ::ocigo::oci::{Descriptor, MEDIA_TYPE_EMPTY, MEDIA_TYPE_MANIFEST, Repository as _};
    let layout = ::ocigo::store::Layout::open_or_create(dir).unwrap();
    let mut descs = Vec::new();
    for layer in layers {
        let desc = Descriptor::for_bytes("application/octet-stream", layer);
        layout.push_blob(&desc, &mut &layer[..]).unwrap();
        descs.push(desc);
    }
    let cfg = Descriptor::for_bytes(MEDIA_TYPE_EMPTY, b"{}");
    layout.push_blob(&cfg, &mut &b"{}"[..]).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "artifactType": "application/x.ocigo.test",
        "config": cfg,
        "layers": descs,
    })
    .to_string();
    let desc = layout
        .push_manifest(MEDIA_TYPE_MANIFEST, manifest.as_bytes(), Some("v1"))
        .unwrap();
    (format!("oci:{}:v1", dir.display()), desc)
}

/// The module entry of `path@version` whose zip is `zip_file` (checked and
/// hashed as pull checks it, then stored in `layout` as its zip layer),
/// with `go_mod` and a `.info` at [`FIXTURE_TIME`]: for bundles built by
/// hand (see [`push_bundle`]).
pub fn module_entry(
    layout: &::ocigo::store::Layout,
    zip_file: &Path,
    path: &str,
    version: &str,
    go_mod: String,
) -> ::ocigo::artifact::ModuleEntry {
    let mv = ::ocigo::gomod::ModuleVersion {
        path: path.to_string(),
        version: version.to_string(),
    };
    let h1 = ::ocigo::gomod::check_zip(zip_file, &mv, "test").unwrap().h1;
    let desc = layout
        .ingest_file(zip_file, ::ocigo::artifact::MEDIA_TYPE_MODULE_ZIP)
        .unwrap();
    ::ocigo::artifact::ModuleEntry {
        path: path.to_string(),
        version: version.to_string(),
        info: Some(format!(
            r#"{{"Version":"{version}","Time":"{FIXTURE_TIME}"}}"#
        )),
        mod_hash: ::ocigo::gomod::hash_gomod(go_mod.as_bytes()),
        go_mod,
        zip: Some(::ocigo::artifact::ZipRef {
            hash: h1,
            layer: desc.digest,
            size: desc.size,
        }),
    }
}

/// A bundle of `modules` (main module example.com/project, go 1.22,
/// linux/amd64) pushed into `layout` at `disk`, tagged v1; returns
/// `oci:<disk>:v1`.
pub fn push_bundle(
    layout: &::ocigo::store::Layout,
    disk: &Path,
    modules: Vec<::ocigo::artifact::ModuleEntry>,
) -> String {
    use ::ocigo::artifact::{self, MainModule, ModulesConfig};
    let config = ModulesConfig {
        format_version: artifact::FORMAT_VERSION,
        main_modules: vec![MainModule {
            path: "example.com/project".into(),
            go_version: Some("1.22".into()),
        }],
        platforms: vec!["linux/amd64".into()],
        created: None,
        modules,
    };
    let built = artifact::build(config, artifact::SplitLimits::default()).unwrap();
    artifact::push_built(layout, &built, Some("v1")).unwrap();
    format!("oci:{}:v1", disk.display())
}
