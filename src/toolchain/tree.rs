//! What a Go toolchain is made of: the list of files (GOROOT-relative
//! names, modes, sizes, where to read them) from each kind of source, with
//! the rules of the Go release process (`cmd/distpack`): which files a
//! release holds, their modes, and how the `golang.org/toolchain` module
//! form renames and leaves out files.
//!
//! Owns: those rules, and reading sources (a GOROOT directory, an official
//! archive, a module zip) into one sorted file list. Must not: write
//! anywhere but the temporary directory it is given, or know about OCI.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{Kind, fail};

/// The module the go command downloads toolchains as.
pub const MODULE_PATH: &str = "golang.org/toolchain";
/// The `.mod` file of every toolchain module version.
pub const MODULE_GO_MOD: &str = "module golang.org/toolchain\n";
/// Top-level directories a release archive has and the module form leaves out.
pub const MODULE_EXCLUDED_DIRS: [&str; 4] = ["api/", "doc/", "misc/", "test/"];
/// The tools `cmd/distpack` keeps under `pkg/tool/<os>_<arch>/`.
const DISTPACK_TOOLS: [&str; 8] = [
    "asm",
    "cgo",
    "compile",
    "cover",
    "fix",
    "link",
    "preprofile",
    "vet",
];
/// Bounds on what a toolchain may be: far above any Go release (go1.26:
/// 15,000 files, 270 MB unpacked), far below what would hurt a host.
pub const MAX_FILES: u64 = 200_000;
pub const MAX_TOTAL_BYTES: u64 = 4 << 30;
pub const MAX_FILE_BYTES: u64 = 1 << 30;
/// `VERSION` is two short lines.
const MAX_VERSION_BYTES: u64 = 4096;

/// A Go version as a toolchain names itself: `go1.26.8`, `go1.27rc1`.
pub fn is_go_version(v: &str) -> bool {
    let Some(rest) = v.strip_prefix("go1") else {
        return false;
    };
    let b = rest.as_bytes();
    !rest.is_empty()
        && b[0] == b'.'
        && b.len() < 40
        && b.iter()
            .all(|c| c.is_ascii_digit() || b".rcbeta".contains(c))
        && b[1..].first().is_some_and(u8::is_ascii_digit)
}

/// `os/arch` tokens as Go spells them (lower-case letters and digits).
pub fn is_platform_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// `v0.0.1-go1.26.8.linux-amd64`.
pub fn module_version(version: &str, os: &str, arch: &str) -> String {
    format!("v0.0.1-{version}.{os}-{arch}")
}

/// The mode `cmd/distpack` gives a file in a release (and so in every
/// official archive): executables and scripts 0755, the rest 0644.
pub fn distpack_mode(name: &str) -> u32 {
    let exec_suffix = [".bash", ".sh", ".pl", ".rc"];
    if name.starts_with("bin/")
        || name.starts_with("pkg/tool/")
        || exec_suffix.iter().any(|s| name.ends_with(s))
    {
        return 0o755;
    }
    // distpack's `**/go_?*_?*_exec` (go_js_wasm_exec, go_wasip1_wasm32_exec).
    let base = name.rsplit('/').next().unwrap_or(name);
    if let Some(mid) = base
        .strip_prefix("go_")
        .and_then(|b| b.strip_suffix("_exec"))
        && mid.len() >= 3
        && mid[1..mid.len() - 1].contains('_')
    {
        return 0o755;
    }
    0o644
}

/// Whether `cmd/distpack` puts a GOROOT file in the binary release for
/// `os/arch` (the rules of its `base` and `binArch` archives).
pub fn in_release(name: &str, os: &str, arch: &str) -> bool {
    let exe = if os == "windows" { ".exe" } else { "" };
    if name.starts_with(".git/")
        || name.starts_with(".github/")
        || name == ".gitattributes"
        || name == ".gitignore"
        || name == "VERSION.cache"
        || name.ends_with("/.DS_Store")
        || name == ".DS_Store"
        || name.ends_with(".exe~")
        || name == "src/cmd/dist/dist"
        || name == "src/cmd/dist/dist.exe"
    {
        return false;
    }
    if name.starts_with("misc/cgo/") && name.contains("/_obj/") {
        return false;
    }
    if let Some(b) = name.strip_prefix("bin/") {
        return b == format!("go{exe}") || b == format!("gofmt{exe}");
    }
    if let Some(p) = name.strip_prefix("pkg/") {
        if p.starts_with("include/") {
            return true;
        }
        let Some(t) = p.strip_prefix(&format!("tool/{os}_{arch}/")) else {
            return false;
        };
        let t = t.strip_suffix(".exe").unwrap_or(t);
        return DISTPACK_TOOLS.contains(&t);
    }
    true
}

/// The name a GOROOT file has in the module form: leaves out `api/ doc/
/// misc/ test/`, and every `go.mod` is stored as `_go.mod` (so the module
/// zip holds one module, as the module zip rules demand).
pub fn module_name(name: &str) -> Option<String> {
    if MODULE_EXCLUDED_DIRS.iter().any(|d| name.starts_with(d)) {
        return None;
    }
    if name == "go.mod" {
        return Some("_go.mod".into());
    }
    if let Some(dir) = name.strip_suffix("/go.mod") {
        return Some(format!("{dir}/_go.mod"));
    }
    Some(name.to_string())
}

/// The GOROOT name of a module-form file (what the go command does on first
/// use: each `_go.mod` becomes `go.mod`).
fn goroot_name_from_module(name: &str) -> String {
    if name == "_go.mod" {
        return "go.mod".into();
    }
    match name.strip_suffix("/_go.mod") {
        Some(dir) => format!("{dir}/go.mod"),
        None => name.to_string(),
    }
}

/// A file name is plain, relative and clean: what may be written below a
/// root without leaving it.
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() || name.len() > crate::fs::PATH_MAX / 2 {
        return Err("empty or over-long name".into());
    }
    if name.starts_with('/') {
        return Err("absolute path".into());
    }
    if name.contains('\0') || name.contains('\\') {
        return Err("NUL or backslash in name".into());
    }
    for elem in name.split('/') {
        if elem.is_empty() || elem == "." || elem == ".." {
            return Err(format!("path element {elem:?} is not allowed"));
        }
        if elem.len() > crate::fs::NAME_MAX {
            return Err("path element too long".into());
        }
    }
    Ok(())
}

/// Where a file's bytes are.
#[derive(Debug, Clone)]
pub enum Origin {
    /// A regular file on disk.
    Disk(PathBuf),
    /// Entry `index` of the zip archive the tree was read from.
    Zip(usize),
}

/// One file of a toolchain, named relative to GOROOT.
#[derive(Debug, Clone)]
pub struct TreeFile {
    pub name: String,
    pub mode: u32,
    pub size: u64,
    pub origin: Origin,
}

/// What a toolchain was packed from, as recorded in its config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceInfo {
    /// `module`, `archive` or `goroot`.
    pub kind: String,
    /// The module version, archive file name or directory.
    pub name: String,
    /// SHA-256 of the archive or module zip, when there was one file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// A toolchain's files, sorted by name, and what it is.
pub struct Tree {
    pub version: String,
    /// The `time` line of `VERSION` (RFC 3339), when it has one.
    pub time: Option<String>,
    pub os: String,
    pub arch: String,
    pub files: Vec<TreeFile>,
    pub source: SourceInfo,
    /// The zip archive `Origin::Zip` entries index into.
    pub zip: Option<PathBuf>,
    /// A temporary directory holding extracted files; removed on drop.
    _scratch: Option<tempfile::TempDir>,
}

impl Tree {
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// Opens a file of the tree for reading. `zip` is a per-thread handle
    /// on the tree's zip archive (see [`Tree::open_zip`]).
    pub fn open<'a>(
        &self,
        f: &TreeFile,
        zip: Option<&'a mut zip::ZipArchive<File>>,
    ) -> Result<Box<dyn Read + 'a>> {
        match &f.origin {
            Origin::Disk(p) => Ok(Box::new(crate::fs::open_regular_required(
                p,
                "toolchain file",
            )?)),
            Origin::Zip(i) => {
                let z = zip.expect("zip trees are read through a zip handle");
                Ok(Box::new(z.by_index(*i).with_context(|| {
                    format!("reading {} from the toolchain zip", f.name)
                })?))
            }
        }
    }

    pub fn open_zip(&self) -> Result<Option<zip::ZipArchive<File>>> {
        match &self.zip {
            None => Ok(None),
            Some(p) => {
                let f = crate::fs::open_regular_required(p, "toolchain zip")?;
                Ok(Some(zip::ZipArchive::new(f).with_context(|| {
                    format!("reading the zip {}", p.display())
                })?))
            }
        }
    }

    /// h1 of the module form of this tree: what the checksum database
    /// records for `golang.org/toolchain@v0.0.1-<version>.<os>-<arch>`.
    pub fn module_hash(&self) -> Result<String> {
        let prefix = format!(
            "{MODULE_PATH}@{}/",
            module_version(&self.version, &self.os, &self.arch)
        );
        let mut zip = self.open_zip()?;
        let mut entries = Vec::new();
        for f in &self.files {
            let Some(name) = module_name(&f.name) else {
                continue;
            };
            let r = self.open(f, zip.as_mut())?;
            let (sum, _) = crate::gomod::hash::sha256_reader(r)
                .with_context(|| format!("reading {}", f.name))?;
            entries.push((format!("{prefix}{name}"), sum));
        }
        crate::gomod::hash_zip_entries(&mut entries)
    }

    fn finish(mut self) -> Result<Tree> {
        self.files.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(w) = self.files.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(fail(
                Kind::Integrity,
                format!("the toolchain holds {} twice", w[0].name),
            ));
        }
        let exe = if self.os == "windows" { ".exe" } else { "" };
        if !self.files.iter().any(|f| f.name == format!("bin/go{exe}")) {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "{} has no bin/go{exe}: it is not a Go toolchain for {}/{}",
                    self.source.name, self.os, self.arch
                ),
            ));
        }
        if self.files.len() as u64 > MAX_FILES || self.total_bytes() > MAX_TOTAL_BYTES {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "{} holds {} files, {} bytes: over ocigo's toolchain limits ({MAX_FILES} files, {MAX_TOTAL_BYTES} bytes)",
                    self.source.name,
                    self.files.len(),
                    self.total_bytes()
                ),
            ));
        }
        Ok(self)
    }
}

/// Parses `VERSION`: the version on the first line, then `key value` lines.
pub fn parse_version_file(text: &str, where_: &str) -> Result<(String, Option<String>)> {
    let mut lines = text.lines();
    let version = lines.next().unwrap_or("").trim().to_string();
    if !is_go_version(&version) {
        return Err(fail(
            Kind::Integrity,
            format!(
                "{where_}: VERSION starts with {version:?}, not a Go release version such as go1.26.8"
            ),
        ));
    }
    let time = lines
        .filter_map(|l| l.strip_prefix("time "))
        .map(|t| t.trim().to_string())
        .next();
    Ok((version, time))
}

fn read_version_file(path: &Path, where_: &str) -> Result<(String, Option<String>)> {
    let bytes = crate::fs::read_capped(path, MAX_VERSION_BYTES)?.ok_or_else(|| {
        fail(
            Kind::NotFound,
            format!("{where_} has no VERSION file: not a Go toolchain"),
        )
    })?;
    parse_version_file(&String::from_utf8_lossy(&bytes), where_)
}

/// A local GOROOT: its files as a release of it would hold them (distpack's
/// rules), version from `VERSION`, platform from `bin/go env` unless given.
pub fn from_goroot(dir: &Path, platform: Option<(&str, &str)>) -> Result<Tree> {
    let where_ = dir.display().to_string();
    // The root is trusted as given (it may be a link); nothing below it is followed.
    let dir = &std::fs::canonicalize(dir).with_context(|| format!("opening {where_}"))?;
    let (version, time) = read_version_file(&dir.join("VERSION"), &where_)?;
    let (os, arch) = match platform {
        Some((o, a)) => (o.to_string(), a.to_string()),
        None => goroot_platform(dir)?,
    };
    let mut files = Vec::new();
    walk_dir(dir, "", &mut |name, path, meta| {
        if in_release(name, &os, &arch) {
            files.push(TreeFile {
                name: name.to_string(),
                mode: distpack_mode(name),
                size: meta.len(),
                origin: Origin::Disk(path.to_path_buf()),
            });
        }
        Ok(())
    })?;
    Tree {
        version,
        time,
        os,
        arch,
        files,
        source: SourceInfo {
            kind: "goroot".into(),
            name: where_,
            sha256: None,
        },
        zip: None,
        _scratch: None,
    }
    .finish()
}

fn goroot_platform(dir: &Path) -> Result<(String, String)> {
    let go = dir.join("bin/go");
    let out = std::process::Command::new(&go)
        .args(["env", "GOOS", "GOARCH"])
        .env("GOROOT", dir)
        .env("GOTOOLCHAIN", "local")
        .env_remove("GOOS")
        .env_remove("GOARCH")
        .output()
        .with_context(|| format!("running {} env GOOS GOARCH", go.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    match (lines.next(), lines.next()) {
        (Some(os), Some(arch))
            if out.status.success() && is_platform_token(os) && is_platform_token(arch) =>
        {
            Ok((os.to_string(), arch.to_string()))
        }
        _ => Err(fail(
            Kind::Usage,
            format!(
                "{} env GOOS GOARCH did not name a platform ({}); pass --platform os/arch",
                go.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        )),
    }
}

/// Walks a directory tree of regular files and directories; anything else
/// (a link, a device) is refused: a toolchain has none.
fn walk_dir(
    root: &Path,
    rel: &str,
    f: &mut dyn FnMut(&str, &Path, &std::fs::Metadata) -> Result<()>,
) -> Result<()> {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let mut names: Vec<std::ffi::OsString> = crate::fs::list_dir(&dir)?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    names.sort();
    for n in names {
        let Some(n) = n.to_str() else {
            return Err(fail(
                Kind::Integrity,
                format!("{} holds a name that is not UTF-8", dir.display()),
            ));
        };
        let name = if rel.is_empty() {
            n.to_string()
        } else {
            format!("{rel}/{n}")
        };
        let path = root.join(&name);
        let meta = crate::fs::lstat(&path)?
            .ok_or_else(|| anyhow::anyhow!("{} vanished while it was read", path.display()))?;
        if meta.is_dir() {
            walk_dir(root, &name, f)?;
        } else if meta.is_file() {
            f(&name, &path, &meta)?;
        } else {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "{} is not a regular file or directory; a Go toolchain holds only those",
                    path.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Checks a file's SHA-256 before anything else reads it.
pub fn check_sha256(path: &Path, want_hex: &str) -> Result<String> {
    let want = want_hex.trim().to_ascii_lowercase();
    if want.len() != 64 || !want.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(fail(
            Kind::Usage,
            format!("--sha256 {want_hex:?} is not 64 hex digits"),
        ));
    }
    let f = crate::fs::open_regular_required(path, "archive")?;
    let mut h = Sha256::new();
    io::copy(&mut io::BufReader::with_capacity(1 << 16, f), &mut h)
        .with_context(|| format!("reading {}", path.display()))?;
    let got = hex::encode(h.finalize());
    if got != want {
        return Err(fail(
            Kind::Integrity,
            format!(
                "{} has SHA-256 {got}, not the {want} given with --sha256: refusing to read it",
                path.display()
            ),
        ));
    }
    Ok(got)
}

/// Parses `go1.26.8.linux-amd64.tar.gz` / `.zip` into (version, os, arch).
pub fn parse_archive_name(file_name: &str) -> Option<(String, String, String, bool)> {
    let (stem, is_zip) = if let Some(s) = file_name.strip_suffix(".tar.gz") {
        (s, false)
    } else {
        (file_name.strip_suffix(".zip")?, true)
    };
    let (version, plat) = stem.rsplit_once('.')?;
    let (os, arch) = plat.split_once('-')?;
    (is_go_version(version) && is_platform_token(os) && is_platform_token(arch)).then(|| {
        (
            version.to_string(),
            os.to_string(),
            arch.to_string(),
            is_zip,
        )
    })
}

/// An official release archive (already checked against its SHA-256):
/// every entry below `go/`, regular files and directories only. A `.tar.gz`
/// is unpacked into a scratch directory in `scratch_parent`; a `.zip` is
/// read in place.
pub fn from_archive(path: &Path, sha256: String, scratch_parent: &Path) -> Result<Tree> {
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let (version, os, arch, is_zip) = parse_archive_name(file_name).ok_or_else(|| {
        fail(
            Kind::Usage,
            format!(
                "{file_name:?} is not named like an official Go archive (go1.X.Y.<os>-<arch>.tar.gz or .zip)"
            ),
        )
    })?;
    let source = SourceInfo {
        kind: "archive".into(),
        name: file_name.to_string(),
        sha256: Some(sha256),
    };
    let where_ = path.display().to_string();
    let (tree, version_text) = if is_zip {
        let (files, version_text) = list_zip(path, "go/", &where_, |n| n.to_string())?;
        let tree = Tree {
            version: version.clone(),
            time: None,
            os: os.clone(),
            arch: arch.clone(),
            files,
            source,
            zip: Some(path.to_path_buf()),
            _scratch: None,
        };
        (tree, version_text)
    } else {
        let scratch = tempfile::Builder::new()
            .prefix(".ocigo-archive-")
            .tempdir_in(scratch_parent)
            .with_context(|| {
                format!(
                    "creating a scratch directory in {}",
                    scratch_parent.display()
                )
            })?;
        let files = unpack_tar_gz(path, scratch.path(), &where_)?;
        let version_text = read_version_file(&scratch.path().join("VERSION"), &where_)?;
        let tree = Tree {
            version: version.clone(),
            time: None,
            os: os.clone(),
            arch: arch.clone(),
            files,
            source,
            zip: None,
            _scratch: Some(scratch),
        };
        (tree, Some(version_text))
    };
    let (v, time) = version_text.ok_or_else(|| {
        fail(
            Kind::Integrity,
            format!("{where_} has no go/VERSION: not a Go release archive"),
        )
    })?;
    if v != version {
        return Err(fail(
            Kind::Integrity,
            format!("{where_} is named {version} but its VERSION says {v}"),
        ));
    }
    Tree { time, ..tree }.finish()
}

/// Unpacks a `.tar.gz` below `dest`, refusing anything but plain files and
/// directories under `go/`, and bounding sizes. Returns the file list.
fn unpack_tar_gz(path: &Path, dest: &Path, where_: &str) -> Result<Vec<TreeFile>> {
    let f = crate::fs::open_regular_required(path, "archive")?;
    let gz = flate2::read::GzDecoder::new(io::BufReader::with_capacity(1 << 16, f));
    let mut ar = tar::Archive::new(io::Read::take(gz, MAX_TOTAL_BYTES + (MAX_FILES << 10)));
    let mut files = Vec::new();
    let mut created = Vec::new();
    let mut total = 0u64;
    for entry in ar.entries().with_context(|| format!("reading {where_}"))? {
        let mut entry = entry.map_err(|e| bad_archive(where_, &e.to_string()))?;
        let raw = String::from_utf8(entry.path_bytes().into_owned())
            .map_err(|_| bad_archive(where_, "an entry name is not UTF-8"))?;
        let kind = entry.header().entry_type();
        let Some(rel) = raw.strip_prefix("go/") else {
            if raw == "go/" || raw == "go" {
                continue;
            }
            return Err(bad_archive(
                where_,
                &format!("entry {raw:?} is outside go/"),
            ));
        };
        let rel = rel.trim_end_matches('/');
        if rel.is_empty() {
            continue;
        }
        check_name(rel).map_err(|e| bad_archive(where_, &format!("entry {raw:?}: {e}")))?;
        if kind.is_dir() {
            crate::fs::ensure_dir(dest, Path::new(rel), &mut created)?;
            continue;
        }
        if !kind.is_file() {
            return Err(bad_archive(
                where_,
                &format!("entry {raw:?} is not a regular file or directory ({kind:?})"),
            ));
        }
        let size = entry.header().size().unwrap_or(u64::MAX);
        total += size;
        if size > MAX_FILE_BYTES || total > MAX_TOTAL_BYTES || files.len() as u64 >= MAX_FILES {
            return Err(bad_archive(where_, "it is larger than any Go release"));
        }
        let (parent, _) = rel.rsplit_once('/').unwrap_or(("", rel));
        crate::fs::ensure_dir(dest, Path::new(parent), &mut created)?;
        let out_path = dest.join(rel);
        let mut out = crate::fs::create_new(&out_path, 0o644).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                bad_archive(where_, &format!("{rel} appears twice"))
            } else {
                anyhow::Error::new(e).context(format!("writing {}", out_path.display()))
            }
        })?;
        let n = io::copy(&mut (&mut entry).take(size), &mut out)
            .map_err(|e| bad_archive(where_, &e.to_string()))?;
        files.push(TreeFile {
            name: rel.to_string(),
            mode: distpack_mode(rel),
            size: n,
            origin: Origin::Disk(out_path),
        });
    }
    Ok(files)
}

fn bad_archive(where_: &str, what: &str) -> anyhow::Error {
    fail(
        Kind::Integrity,
        format!("{where_} is not a valid Go release archive: {what}"),
    )
}

/// Lists a zip whose entries all sit below `prefix`; returns its files
/// (renamed by `rename`) and `VERSION`, if present.
#[allow(clippy::type_complexity)]
fn list_zip(
    path: &Path,
    prefix: &str,
    where_: &str,
    rename: impl Fn(&str) -> String,
) -> Result<(Vec<TreeFile>, Option<(String, Option<String>)>)> {
    let f = crate::fs::open_regular_required(path, "zip")?;
    let mut z = zip::ZipArchive::new(f).map_err(|e| bad_archive(where_, &e.to_string()))?;
    if z.len() as u64 > MAX_FILES {
        return Err(bad_archive(where_, "too many entries"));
    }
    let mut files = Vec::new();
    let mut version = None;
    let mut total = 0u64;
    for i in 0..z.len() {
        let mut e = z
            .by_index(i)
            .map_err(|e| bad_archive(where_, &e.to_string()))?;
        let raw = e
            .name()
            .map_err(|err| bad_archive(where_, &err.to_string()))?
            .into_owned();
        let Some(rel) = raw.strip_prefix(prefix) else {
            return Err(bad_archive(
                where_,
                &format!("entry {raw:?} is outside {prefix}"),
            ));
        };
        if e.is_dir() {
            continue;
        }
        if e.is_symlink() {
            return Err(bad_archive(
                where_,
                &format!("entry {raw:?} is a symbolic link"),
            ));
        }
        check_name(rel).map_err(|m| bad_archive(where_, &format!("entry {raw:?}: {m}")))?;
        let name = rename(rel);
        total += e.size();
        if e.size() > MAX_FILE_BYTES || total > MAX_TOTAL_BYTES {
            return Err(bad_archive(where_, "it is larger than any Go release"));
        }
        if name == "VERSION" {
            let mut text = String::new();
            (&mut e)
                .take(MAX_VERSION_BYTES)
                .read_to_string(&mut text)
                .map_err(|e| bad_archive(where_, &e.to_string()))?;
            version = Some(parse_version_file(&text, where_)?);
        }
        files.push(TreeFile {
            mode: distpack_mode(&name),
            name,
            size: e.size(),
            origin: Origin::Zip(i),
        });
    }
    Ok((files, version))
}

/// A `golang.org/toolchain` module zip (already checked against the
/// checksum database): `_go.mod` files become `go.mod` again.
pub fn from_module_zip(
    path: &Path,
    version: &str,
    os: &str,
    arch: &str,
    sha256: String,
) -> Result<Tree> {
    let mv = module_version(version, os, arch);
    let prefix = format!("{MODULE_PATH}@{mv}/");
    let where_ = format!("{MODULE_PATH}@{mv}");
    let (files, version_text) = list_zip(path, &prefix, &where_, goroot_name_from_module)?;
    let (v, time) =
        version_text.ok_or_else(|| fail(Kind::Integrity, format!("{where_} has no VERSION")))?;
    if v != version {
        return Err(fail(
            Kind::Integrity,
            format!("{where_} holds a toolchain whose VERSION says {v}"),
        ));
    }
    Tree {
        version: version.to_string(),
        time,
        os: os.to_string(),
        arch: arch.to_string(),
        files,
        source: SourceInfo {
            kind: "module".into(),
            name: format!("{MODULE_PATH}@{mv}"),
            sha256: Some(sha256),
        },
        zip: Some(path.to_path_buf()),
        _scratch: None,
    }
    .finish()
}

/// Directory sizes (bytes of all files below), for splitting into layers.
pub fn dir_sizes(files: &[TreeFile]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for f in files {
        let mut d = f.name.as_str();
        while let Some((parent, _)) = d.rsplit_once('/') {
            *m.entry(parent.to_string()).or_insert(0) += f.size;
            d = parent;
        }
        *m.entry(String::new()).or_insert(0) += f.size;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_follow_distpack() {
        assert_eq!(distpack_mode("bin/go"), 0o755);
        assert_eq!(distpack_mode("pkg/tool/linux_amd64/compile"), 0o755);
        assert_eq!(distpack_mode("src/make.bash"), 0o755);
        assert_eq!(distpack_mode("lib/wasm/go_js_wasm_exec"), 0o755);
        assert_eq!(distpack_mode("lib/wasm/go_wasip1_wasm32_exec"), 0o755);
        assert_eq!(distpack_mode("src/go_x_exec.go"), 0o644);
        assert_eq!(distpack_mode("src/fmt/print.go"), 0o644);
        assert_eq!(distpack_mode("VERSION"), 0o644);
    }

    #[test]
    fn release_contents_follow_distpack() {
        assert!(in_release("src/fmt/print.go", "linux", "amd64"));
        assert!(in_release("bin/go", "linux", "amd64"));
        assert!(!in_release("bin/go.exe", "linux", "amd64"));
        assert!(in_release("bin/go.exe", "windows", "amd64"));
        assert!(!in_release("bin/gopls", "linux", "amd64"));
        assert!(in_release("pkg/tool/linux_amd64/compile", "linux", "amd64"));
        assert!(!in_release("pkg/tool/linux_amd64/pprof", "linux", "amd64"));
        assert!(!in_release(
            "pkg/tool/linux_arm64/compile",
            "linux",
            "amd64"
        ));
        assert!(!in_release("pkg/linux_amd64/fmt.a", "linux", "amd64"));
        assert!(in_release("pkg/include/textflag.h", "linux", "amd64"));
        assert!(!in_release(".git/HEAD", "linux", "amd64"));
        assert!(!in_release("src/cmd/dist/dist", "linux", "amd64"));
    }

    #[test]
    fn module_names() {
        assert_eq!(module_name("src/go.mod").as_deref(), Some("src/_go.mod"));
        assert_eq!(
            module_name("src/cmd/go.mod").as_deref(),
            Some("src/cmd/_go.mod")
        );
        assert_eq!(module_name("src/go.mod.x").as_deref(), Some("src/go.mod.x"));
        assert_eq!(module_name("api/go1.txt"), None);
        assert_eq!(module_name("test/x.go"), None);
        assert_eq!(goroot_name_from_module("src/cmd/_go.mod"), "src/cmd/go.mod");
    }

    #[test]
    fn versions_and_archive_names() {
        assert!(is_go_version("go1.26.8"));
        assert!(is_go_version("go1.27rc1"));
        assert!(!is_go_version("go1"));
        assert!(!is_go_version("go1.26.8 "));
        assert!(!is_go_version("devel go1.27"));
        assert_eq!(
            parse_archive_name("go1.26.8.linux-amd64.tar.gz"),
            Some(("go1.26.8".into(), "linux".into(), "amd64".into(), false))
        );
        assert_eq!(
            parse_archive_name("go1.26.8.windows-arm64.zip"),
            Some(("go1.26.8".into(), "windows".into(), "arm64".into(), true))
        );
        assert_eq!(parse_archive_name("go1.26.8.linux-amd64.tgz"), None);
        assert_eq!(parse_archive_name("../go1.26.8.linux-amd64.tar.gz"), None);
    }

    #[test]
    fn names_that_leave_the_tree_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "a/../b",
            "..",
            "a//b",
            "a/./b",
            "a\\b",
            "a/",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name("src/fmt/print.go").is_ok());
    }
}
