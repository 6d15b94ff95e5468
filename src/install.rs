//! Writing module versions into a GOMODCACHE exactly as the go command lays
//! them out, with no go command on the host.
//!
//! Owns: the download area (`cache/download/<esc path>/@v/{list,.info,.mod,
//! .zip,.ziphash}`) and the extracted trees. Everything is verified before
//! the first byte is written; then each module is written on its own by
//! temp + rename, the extracted tree renamed into place, and `.ziphash` (the
//! go command's "this module is complete" marker) written last. A killed
//! install leaves only leftovers that the next run removes. Must not: fetch
//! anything, or overwrite a module that is present with different content.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::artifact::ModuleEntry;
use crate::error::{Kind, fail};
use crate::gomod::{self, ModuleVersion, zipcheck};
use crate::progress::Progress;

const TMP_PREFIX: &str = ".ocigo-tmp-";

/// One module to install: its config entry and the local path of its zip.
pub struct InstallItem<'a> {
    pub entry: &'a ModuleEntry,
    pub zip_blob: Option<PathBuf>,
}

#[derive(Debug, Default, Serialize)]
pub struct InstallReport {
    pub installed: usize,
    pub already_present: usize,
    /// Modules present with different content: left alone.
    pub conflicts: Vec<String>,
}

enum State {
    Present,
    Needed,
    Conflict(String),
}

struct Paths {
    download_dir: PathBuf,
    esc_version: String,
    tree: PathBuf,
}

impl Paths {
    fn new(cache: &Path, mv: &ModuleVersion) -> Result<Paths> {
        let esc_path = gomod::escape_path(&mv.path)?;
        let esc_version = gomod::escape_version(&mv.version)?;
        Ok(Paths {
            download_dir: cache.join("cache/download").join(&esc_path).join("@v"),
            tree: cache.join(format!("{esc_path}@{esc_version}")),
            esc_version,
        })
    }

    fn file(&self, ext: &str) -> PathBuf {
        self.download_dir
            .join(format!("{}.{ext}", self.esc_version))
    }
}

/// Verifies every item, then installs those not already present.
pub fn install(cache: &Path, items: &[InstallItem], progress: &Progress) -> Result<InstallReport> {
    progress.start("verifying", items.len() as u64);
    let mut plan = Vec::with_capacity(items.len());
    for item in items {
        let entry = item.entry;
        let mv = ModuleVersion {
            path: entry.path.clone(),
            version: entry.version.clone(),
        };
        let paths = Paths::new(cache, &mv).with_context(|| format!("module {mv} in the bundle"))?;
        verify_entry(&mv, item)?;
        let state = state_of(item, &paths)?;
        plan.push((mv, paths, state));
        progress.inc(1);
    }
    progress.finish();

    let mut report = InstallReport::default();
    let needed = plan.iter().filter(|p| matches!(p.2, State::Needed)).count();
    progress.start("installing", needed as u64);
    for ((mv, paths, state), item) in plan.into_iter().zip(items) {
        match state {
            State::Present => {
                // The go command writes caches with a `.mod` but no `.info`
                // for go.mod-only modules; adding the bundle's `.info` (never
                // replacing one) lets `go list -m all` work offline.
                if let Some(info) = &item.entry.info
                    && !paths.file("info").exists()
                {
                    write_file_atomic(&paths.file("info"), &mut info.as_bytes())
                        .with_context(|| format!("adding .info of {mv} to {}", cache.display()))?;
                }
                report.already_present += 1
            }
            State::Conflict(why) => report.conflicts.push(format!("{mv}: {why}")),
            State::Needed => {
                install_one(&mv, &paths, item)
                    .with_context(|| format!("installing {mv} into {}", cache.display()))?;
                report.installed += 1;
                progress.inc(1);
            }
        }
    }
    progress.finish();
    Ok(report)
}

fn verify_entry(mv: &ModuleVersion, item: &InstallItem) -> Result<()> {
    let entry = item.entry;
    let mod_hash = gomod::hash_gomod(entry.go_mod.as_bytes());
    if mod_hash != entry.mod_hash {
        return Err(fail(
            Kind::Integrity,
            format!(
                "go.mod of {mv} in the bundle hashes to {mod_hash}, but the bundle says {}",
                entry.mod_hash
            ),
        ));
    }
    if let Some(info) = &entry.info {
        #[derive(serde::Deserialize)]
        struct Info {
            #[serde(rename = "Version")]
            version: String,
        }
        let parsed: Info = serde_json::from_str(info).map_err(|e| {
            fail(
                Kind::Integrity,
                format!(".info of {mv} in the bundle is not valid: {e}"),
            )
        })?;
        if parsed.version != mv.version {
            return Err(fail(
                Kind::Integrity,
                format!(
                    ".info of {mv} in the bundle names version {}",
                    parsed.version
                ),
            ));
        }
    }
    match (&entry.zip, &item.zip_blob) {
        (Some(z), Some(blob)) => {
            let summary = gomod::check_zip(blob, mv, &format!("layer {}", z.layer))?;
            if summary.h1 != z.hash {
                return Err(fail(
                    Kind::Integrity,
                    format!(
                        "module zip for {mv} (layer {}) hashes to {}, but the bundle says {}",
                        z.layer, summary.h1, z.hash
                    ),
                ));
            }
        }
        (Some(z), None) => {
            return Err(fail(
                Kind::NotFound,
                format!("zip layer {} of {mv} was not fetched", z.layer),
            ));
        }
        (None, _) => {}
    }
    Ok(())
}

fn state_of(item: &InstallItem, paths: &Paths) -> Result<State> {
    let entry = item.entry;
    match fs::read(paths.file("mod")) {
        Ok(existing) if existing != entry.go_mod.as_bytes() => {
            return Ok(State::Conflict(format!(
                "{} exists with different content (hash {}, bundle has {})",
                paths.file("mod").display(),
                gomod::hash_gomod(&existing),
                entry.mod_hash
            )));
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(State::Needed),
        Err(e) => {
            return Err(e).with_context(|| format!("reading {}", paths.file("mod").display()));
        }
    }
    let Some(zip) = &entry.zip else {
        return Ok(State::Present);
    };
    match fs::read_to_string(paths.file("ziphash")) {
        Ok(existing) if existing.trim() == zip.hash => {
            if paths.tree.is_dir() && !paths.file("partial").exists() {
                Ok(State::Present)
            } else {
                Ok(State::Needed)
            }
        }
        Ok(existing) => Ok(State::Conflict(format!(
            "{} says {}, the bundle says {}",
            paths.file("ziphash").display(),
            existing.trim(),
            zip.hash
        ))),
        Err(_) => Ok(State::Needed),
    }
}

fn install_one(mv: &ModuleVersion, paths: &Paths, item: &InstallItem) -> Result<()> {
    let entry = item.entry;
    fs::create_dir_all(&paths.download_dir)
        .with_context(|| format!("creating {}", paths.download_dir.display()))?;
    // The go command's own per-version lock: a go process fetching the same
    // module waits for us and then finds it complete.
    let _lock = crate::store::exclusive_lock(&paths.file("lock"))?;
    remove_leftovers(paths)?;
    // The commit marker is written last and nothing after it: `.ziphash` for
    // a module with a zip, the `.mod` file for a go.mod-only one. A run
    // killed before it leaves a module the next run sees as needed and
    // redoes; so `.info` and `list` (which must name the version) come first.
    if let Some(info) = &entry.info
        && !paths.file("info").exists()
    {
        write_file_atomic(&paths.file("info"), &mut info.as_bytes())?;
    }
    let (Some(zip), Some(blob)) = (&entry.zip, &item.zip_blob) else {
        rewrite_list(&paths.download_dir, Some(&mv.version))?;
        if !paths.file("mod").exists() {
            write_file_atomic(&paths.file("mod"), &mut entry.go_mod.as_bytes())?;
        }
        return Ok(());
    };
    if !paths.file("mod").exists() {
        write_file_atomic(&paths.file("mod"), &mut entry.go_mod.as_bytes())?;
    }
    let mut src = File::open(blob).with_context(|| format!("opening {}", blob.display()))?;
    write_file_atomic(&paths.file("zip"), &mut src)?;

    let parent = paths.tree.parent().expect("tree has a parent");
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let base = paths
        .tree
        .file_name()
        .expect("named")
        .to_string_lossy()
        .to_string();
    // The go command removes `<dir>.tmp-*` itself; use the same prefix.
    let tmp = tempfile::Builder::new()
        .prefix(&format!("{base}.tmp-"))
        .tempdir_in(parent)
        .with_context(|| format!("creating a temporary directory in {}", parent.display()))?;
    extract(blob, mv, tmp.path())?;
    make_read_only(tmp.path())?;
    let tmp_path = tmp.keep();
    fs::rename(&tmp_path, &paths.tree)
        .with_context(|| format!("moving {} to {}", tmp_path.display(), paths.tree.display()))?;
    let _ = fs::remove_file(paths.file("partial"));
    rewrite_list(&paths.download_dir, Some(&mv.version))?;
    write_file_atomic(&paths.file("ziphash"), &mut zip.hash.as_bytes())
}

/// Removes what an interrupted install (ours or the go command's) left:
/// temporary files, `<dir>.tmp-*` trees, and a tree with no `.ziphash`.
fn remove_leftovers(paths: &Paths) -> Result<()> {
    for entry in fs::read_dir(&paths.download_dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
            let _ = fs::remove_file(entry.path());
        }
    }
    if let Some(parent) = paths.tree.parent()
        && let Ok(entries) = fs::read_dir(parent)
    {
        let prefix = format!(
            "{}.tmp-",
            paths.tree.file_name().expect("named").to_string_lossy()
        );
        for entry in entries {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                remove_tree(&entry.path())?;
            }
        }
    }
    // A tree with no `.ziphash`, or with the go command's `.partial` beside
    // it, is incomplete: the go command removes and re-extracts it too.
    if paths.tree.exists() && (!paths.file("ziphash").exists() || paths.file("partial").exists()) {
        remove_tree(&paths.tree)?;
    }
    Ok(())
}

fn remove_tree(path: &Path) -> Result<()> {
    let mut stack = vec![path.to_path_buf()];
    while let Some(d) = stack.pop() {
        let _ = fs::set_permissions(&d, fs::Permissions::from_mode(0o755));
        if let Ok(entries) = fs::read_dir(&d) {
            for e in entries.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    stack.push(e.path());
                }
            }
        }
    }
    fs::remove_dir_all(path).with_context(|| format!("removing leftover {}", path.display()))
}

/// Writes a download-area file by temp + rename, mode 0644 as the go command
/// leaves them.
fn write_file_atomic(path: &Path, content: &mut dyn Read) -> Result<()> {
    let dir = path.parent().expect("has parent");
    let mut tmp = tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    io::copy(content, tmp.as_file_mut()).with_context(|| format!("writing {}", path.display()))?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(0o644))?;
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Extracts a zip already checked by `check_zip` (same immutable store blob),
/// still refusing any name that is not a clean relative path and any entry
/// that holds more than it declares.
fn extract(zip_path: &Path, mv: &ModuleVersion, dest: &Path) -> Result<()> {
    let file = File::open(zip_path)?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| fail(Kind::Integrity, format!("zip of {mv}: {e}")))?;
    let prefix = format!("{}@{}/", mv.path, mv.version);
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| fail(Kind::Integrity, format!("zip of {mv}: entry {i}: {e}")))?;
        let name = std::str::from_utf8(entry.name_raw())
            .ok()
            .and_then(|n| n.strip_prefix(&prefix))
            .map(str::to_string)
            .ok_or_else(|| {
                fail(
                    Kind::Integrity,
                    format!("zip of {mv}: entry {i} has a bad name"),
                )
            })?;
        if name.is_empty() || name.ends_with('/') {
            continue;
        }
        zipcheck::check_file_path(&name)
            .map_err(|why| fail(Kind::Integrity, format!("zip of {mv}: {name:?}: {why}")))?;
        let target = dest.join(&name);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        let declared = entry.size();
        let mut out = File::options()
            .write(true)
            .create_new(true)
            .open(&target)
            .with_context(|| format!("creating {}", target.display()))?;
        let n = io::copy(&mut (&mut entry).take(declared + 1), &mut out)
            .with_context(|| format!("extracting {name} of {mv}"))?;
        if n != declared {
            return Err(fail(
                Kind::Integrity,
                format!("zip of {mv}: {name:?} does not hold its declared {declared} bytes"),
            ));
        }
        out.flush()?;
        out.set_permissions(fs::Permissions::from_mode(0o444))?;
    }
    Ok(())
}

/// Directories 0555 as the go command leaves them (files are already 0444).
fn make_read_only(root: &Path) -> Result<()> {
    let mut dirs = vec![root.to_path_buf()];
    let mut i = 0;
    while i < dirs.len() {
        for e in fs::read_dir(&dirs[i])? {
            let e = e?;
            if e.file_type()?.is_dir() {
                dirs.push(e.path());
            }
        }
        i += 1;
    }
    for d in dirs.iter().rev() {
        fs::set_permissions(d, fs::Permissions::from_mode(0o555))?;
    }
    Ok(())
}

/// `list` holds every version with a `.mod` file (and `also`, whose `.mod`
/// is about to be written), unescaped and semver-sorted, as the go command's
/// `rewriteVersionList` writes it.
fn rewrite_list(download_dir: &Path, also: Option<&str>) -> Result<()> {
    let mut versions: Vec<String> = also.map(str::to_string).into_iter().collect();
    for entry in fs::read_dir(download_dir)? {
        let name = entry?.file_name().to_string_lossy().to_string();
        if let Some(v) = name.strip_suffix(".mod")
            && !v.is_empty()
            && !name.starts_with('.')
            && let Ok(v) = gomod::unescape(v)
            && !versions.contains(&v)
        {
            versions.push(v);
        }
    }
    versions.sort_by(|a, b| gomod::semver::compare(a, b));
    let text: String = versions.iter().map(|v| format!("{v}\n")).collect();
    let list = download_dir.join("list");
    if fs::read_to_string(&list).ok().as_deref() != Some(text.as_str()) {
        write_file_atomic(&list, &mut text.as_bytes())?;
    }
    Ok(())
}

/// `go env GOMODCACHE` without the go command: `$GOMODCACHE`, else the first
/// entry of `$GOPATH` + `/pkg/mod`, else `~/go/pkg/mod`.
pub fn default_gomodcache() -> Result<PathBuf> {
    if let Some(v) = std::env::var_os("GOMODCACHE").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(v));
    }
    if let Some(gopath) = std::env::var_os("GOPATH").filter(|v| !v.is_empty())
        && let Some(first) = std::env::split_paths(&gopath).next()
    {
        return Ok(first.join("pkg/mod"));
    }
    dirs::home_dir()
        .map(|h| h.join("go/pkg/mod"))
        .ok_or_else(|| {
            fail(
                Kind::Usage,
                "cannot find the home directory: set GOMODCACHE or pass --gomodcache",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_is_semver_sorted() {
        let d = tempfile::tempdir().unwrap();
        for v in ["v1.10.0", "v1.2.0", "v1.2.0-rc.1", "v1.2.0-!r!c.2"] {
            fs::write(d.path().join(format!("{v}.mod")), "").unwrap();
        }
        fs::write(d.path().join("v1.2.0.zip"), "").unwrap();
        rewrite_list(d.path(), Some("v1.3.0")).unwrap();
        assert_eq!(
            fs::read_to_string(d.path().join("list")).unwrap(),
            "v1.2.0-RC.2\nv1.2.0-rc.1\nv1.2.0\nv1.3.0\nv1.10.0\n"
        );
    }
}
