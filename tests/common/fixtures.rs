//! Fixture Go modules (`testdata/modules/<path>@<version>/`) served as a
//! static `file://` GOPROXY tree, and the fixture main module
//! (`testdata/project`). See `testdata/README.md` for what each fixture
//! module covers.

use std::cmp::Ordering;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The fixed `.info` time of every fixture module version.
pub const FIXTURE_TIME: &str = "2023-01-02T03:04:05Z";

/// The crate's `testdata` directory.
pub fn testdata_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// One fixture module version, `testdata/modules/<path>@<version>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureModule {
    /// Module path, unescaped (`example.com/Upper/Case`).
    pub path: String,
    /// Canonical version (`v2.0.0+incompatible`).
    pub version: String,
    /// Source directory holding the module's files.
    pub dir: PathBuf,
}

impl FixtureModule {
    /// Relative file names (`/`-separated), sorted bytewise.
    pub fn files(&self) -> Vec<String> {
        let mut out = Vec::new();
        collect_files(&self.dir, "", &mut out);
        out.sort();
        out
    }

    /// The go.mod served as `.mod`: the module's own, or for a module
    /// without one (`+incompatible`) the synthesized `module <path>\n`.
    pub fn go_mod(&self) -> Vec<u8> {
        match fs::read(self.dir.join("go.mod")) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                format!("module {}\n", self.path).into_bytes()
            }
            Err(e) => panic!("read {}: {e}", self.dir.join("go.mod").display()),
        }
    }

    /// Whether the module source has its own go.mod.
    pub fn has_go_mod(&self) -> bool {
        self.dir.join("go.mod").is_file()
    }

    /// `<esc(path)>` as used in a proxy tree or `cache/download`.
    pub fn escaped_path(&self) -> String {
        escape_path(&self.path)
    }

    /// `<esc(version)>`.
    pub fn escaped_version(&self) -> String {
        escape_path(&self.version)
    }

    /// The module zip bytes: entries `<path>@<version>/<file>`, files only,
    /// sorted by name, fixed timestamps and modes, deflated.
    pub fn zip_bytes(&self) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(0o644);
        for name in self.files() {
            let data = fs::read(self.dir.join(&name)).expect("read fixture file");
            w.start_file(format!("{}@{}/{}", self.path, self.version, name), opts)
                .expect("zip start_file");
            w.write_all(&data).expect("zip write");
        }
        w.finish().expect("zip finish").into_inner()
    }
}

fn collect_files(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display())) {
        let entry = entry.expect("dir entry");
        let name = entry.file_name().into_string().expect("utf-8 file name");
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let ty = entry.file_type().expect("file type");
        if ty.is_dir() {
            collect_files(&entry.path(), &rel, out);
        } else if ty.is_file() {
            out.push(rel);
        } else {
            panic!(
                "fixture {} is neither file nor directory",
                entry.path().display()
            );
        }
    }
}

/// Every fixture module version under `testdata/modules`, sorted by path
/// then semver.
pub fn fixture_modules() -> Vec<FixtureModule> {
    let root = testdata_dir().join("modules");
    let mut out = Vec::new();
    find_modules(&root, "", &mut out);
    out.sort_by(|a, b| {
        a.path
            .cmp(&b.path)
            .then_with(|| semver_cmp(&a.version, &b.version))
    });
    out
}

fn find_modules(dir: &Path, prefix: &str, out: &mut Vec<FixtureModule>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display())) {
        let entry = entry.expect("dir entry");
        if !entry.file_type().expect("file type").is_dir() {
            continue;
        }
        let name = entry.file_name().into_string().expect("utf-8 dir name");
        if let Some((last, version)) = name.split_once('@') {
            let path = if prefix.is_empty() {
                last.to_string()
            } else {
                format!("{prefix}/{last}")
            };
            out.push(FixtureModule {
                path,
                version: version.to_string(),
                dir: entry.path(),
            });
        } else {
            let p = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            find_modules(&entry.path(), &p, out);
        }
    }
}

/// Module cache case escaping: each upper-case ASCII letter becomes `!`
/// followed by its lower-case form. Panics on `!` or non-ASCII input.
pub fn escape_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        assert!(
            c.is_ascii() && c != '!',
            "unescapable character {c:?} in {s:?}"
        );
        if c.is_ascii_uppercase() {
            out.push('!');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Semantic version order of canonical `vX.Y.Z[-pre][+build]` strings;
/// ties broken by the full string so the order is total.
pub fn semver_cmp(a: &str, b: &str) -> Ordering {
    fn split(v: &str) -> (Vec<u64>, Option<&str>) {
        let v = v.strip_prefix('v').unwrap_or(v);
        let v = v.split_once('+').map_or(v, |(x, _)| x);
        let (core, pre) = match v.split_once('-') {
            Some((c, p)) => (c, Some(p)),
            None => (v, None),
        };
        let nums = core
            .split('.')
            .map(|n| n.parse().expect("semver number"))
            .collect();
        (nums, pre)
    }
    fn pre_cmp(a: &str, b: &str) -> Ordering {
        let (mut x, mut y) = (a.split('.'), b.split('.'));
        loop {
            match (x.next(), y.next()) {
                (None, None) => return Ordering::Equal,
                (None, Some(_)) => return Ordering::Less,
                (Some(_), None) => return Ordering::Greater,
                (Some(p), Some(q)) => {
                    let o = match (p.parse::<u64>(), q.parse::<u64>()) {
                        (Ok(m), Ok(n)) => m.cmp(&n),
                        (Ok(_), Err(_)) => Ordering::Less,
                        (Err(_), Ok(_)) => Ordering::Greater,
                        (Err(_), Err(_)) => p.cmp(q),
                    };
                    if o != Ordering::Equal {
                        return o;
                    }
                }
            }
        }
    }
    let (an, ap) = split(a);
    let (bn, bp) = split(b);
    an.cmp(&bn)
        .then_with(|| match (ap, bp) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(p), Some(q)) => pre_cmp(p, q),
        })
        .then_with(|| a.cmp(b))
}

/// Write a static GOPROXY tree (FORMATS.md section 4) for every fixture
/// module into `dest`: `<esc path>/@v/{list,<esc v>.info,.mod,.zip}`.
/// Output is byte-for-byte deterministic.
pub fn build_file_proxy(dest: &Path) {
    let modules = fixture_modules();
    assert!(!modules.is_empty(), "no fixture modules found");
    let mut lists: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for m in &modules {
        let at_v = dest.join(m.escaped_path()).join("@v");
        fs::create_dir_all(&at_v).expect("create proxy dir");
        let ev = m.escaped_version();
        fs::write(
            at_v.join(format!("{ev}.info")),
            format!(r#"{{"Version":"{}","Time":"{FIXTURE_TIME}"}}"#, m.version),
        )
        .expect("write .info");
        fs::write(at_v.join(format!("{ev}.mod")), m.go_mod()).expect("write .mod");
        fs::write(at_v.join(format!("{ev}.zip")), m.zip_bytes()).expect("write .zip");
        lists
            .entry(m.path.clone())
            .or_default()
            .push(m.version.clone());
    }
    for (path, mut versions) in lists {
        versions.sort_by(|a, b| semver_cmp(a, b));
        let mut text = String::new();
        for v in versions {
            text.push_str(&v);
            text.push('\n');
        }
        fs::write(dest.join(escape_path(&path)).join("@v").join("list"), text).expect("write list");
    }
}

/// Copy `testdata/project` to `dest/project` and return that directory.
pub fn copy_project(dest: &Path) -> PathBuf {
    let to = dest.join("project");
    copy_tree(&testdata_dir().join("project"), &to);
    to
}

/// Recursively copy a directory of plain files.
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
    for entry in fs::read_dir(from).unwrap_or_else(|e| panic!("read_dir {}: {e}", from.display())) {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("copy {}: {e}", entry.path().display()));
        }
    }
}

/// Environment for the go command to resolve fixture modules from the
/// proxy at `proxy_dir` (and nothing else).
///
/// `GONOSUMDB=example.com` rather than `GOSUMDB=off`: the fixture modules
/// are unknown to sum.golang.org, so it must not be asked about them, but
/// the checksum database stays on for every other path. The committed
/// go.sum is complete, so with it no lookup happens at all; a stray real
/// module would fail loudly instead of going unverified. Add `GOMODCACHE`
/// yourself (a fresh temp dir per test).
pub fn fixture_env(proxy_dir: &Path) -> Vec<(String, String)> {
    let abs = std::path::absolute(proxy_dir).expect("absolute proxy dir");
    vec![
        ("GOPROXY".into(), format!("file://{}", abs.display())),
        ("GONOSUMDB".into(), "example.com".into()),
        ("GOFLAGS".into(), "-modcacherw".into()),
        ("GOTOOLCHAIN".into(), "local".into()),
    ]
}
