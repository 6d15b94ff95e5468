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

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

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
    /// The zip (same immutable store blob) already passed [`verify`] in
    /// this run: not decompressed and checked a second time.
    pub zip_checked: bool,
    /// Write the extracted tree too (`pull --no-extract`: only the
    /// download area; the go command extracts what a build needs).
    pub extract: bool,
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

/// Only the checks of [`install`], writing nothing: returns, per item,
/// whether its zip has been checked (h1, zip rules) because the module is
/// not in the cache yet. A pull verifies a whole bundle this way, part by part,
/// before it installs any part.
pub fn verify(
    cache: &Path,
    items: &[InstallItem],
    jobs: usize,
    progress: &Progress,
) -> Result<Vec<bool>> {
    Ok(plan(cache, items, jobs, progress)?
        .iter()
        .zip(items)
        .map(|((_, _, state), item)| matches!(state, State::Needed) && item.entry.zip.is_some())
        .collect())
}

type Plan = Vec<(ModuleVersion, Paths, State)>;

fn plan(cache: &Path, items: &[InstallItem], jobs: usize, progress: &Progress) -> Result<Plan> {
    progress.start("verifying", items.len() as u64);
    let each_alone: Vec<Vec<usize>> = (0..items.len()).map(|i| vec![i]).collect();
    let plan = run_parallel(&each_alone, items.len(), jobs, |i| {
        let item = &items[i];
        let mv = ModuleVersion {
            path: item.entry.path.clone(),
            version: item.entry.version.clone(),
        };
        let paths = Paths::new(cache, &mv).with_context(|| format!("module {mv} in the bundle"))?;
        let state = state_of(item.entry, &paths, item.extract)?;
        // A zip is only decompressed and checked (h1, zip rules) for a module
        // that will be written; its digest was checked when it was fetched.
        verify_entry(
            &mv,
            item,
            matches!(state, State::Needed) && !item.zip_checked,
        )?;
        progress.inc(1);
        Ok((mv, paths, state))
    });
    progress.finish();
    plan
}

/// Verifies every item, then installs those not already present.
///
/// Both steps run on a few threads: on the kernels this was measured on, a
/// file create costs ~0.4 ms of system time, and installs are dominated by
/// them. Versions of one module path stay on one thread, in order, because
/// they share a download directory and its `list`.
pub fn install(
    cache: &Path,
    items: &[InstallItem],
    jobs: usize,
    progress: &Progress,
) -> Result<InstallReport> {
    let plan = plan(cache, items, jobs, progress)?;

    let mut by_path: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        by_path.entry(item.entry.path.as_str()).or_default().push(i);
    }
    let groups: Vec<Vec<usize>> = by_path.into_values().collect();
    let needed = plan.iter().filter(|p| matches!(p.2, State::Needed)).count();
    progress.start("installing", needed as u64);
    let installed = run_parallel(&groups, items.len(), jobs, |i| {
        let (mv, paths, state) = &plan[i];
        let item = &items[i];
        match state {
            State::Present => {
                add_missing_info(paths, item.entry)
                    .with_context(|| format!("adding .info of {mv} to {}", cache.display()))?;
                Ok(false)
            }
            State::Conflict(_) => Ok(false),
            State::Needed => {
                let wrote = install_one(mv, paths, item)
                    .with_context(|| format!("installing {mv} into {}", cache.display()))?;
                progress.inc(1);
                Ok(wrote)
            }
        }
    })?;
    progress.finish();

    let mut report = InstallReport::default();
    for ((mv, _, state), installed) in plan.iter().zip(installed) {
        match state {
            State::Conflict(why) => report.conflicts.push(format!("{mv}: {why}")),
            _ if installed => report.installed += 1,
            _ => report.already_present += 1,
        }
    }
    Ok(report)
}

/// How many threads install at once by default: the work is bound by file
/// system calls, not CPU, so more than cores.
pub const DEFAULT_JOBS: usize = 8;

/// Runs `f` on every index, a group's indexes in order on one thread, up to
/// `jobs` groups at once. Stops starting new work at the first error
/// and returns it; otherwise returns the results in index order.
fn run_parallel<R: Send>(
    groups: &[Vec<usize>],
    count: usize,
    jobs: usize,
    f: impl Fn(usize) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..count).map(|_| None).collect());
    let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(groups.len()).max(1) {
            scope.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let Some(group) = groups.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        return;
                    };
                    for &i in group {
                        match f(i) {
                            Ok(r) => results.lock().expect("not poisoned")[i] = Some(r),
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                first_error.lock().expect("not poisoned").get_or_insert(e);
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().expect("not poisoned") {
        return Err(e);
    }
    Ok(results
        .into_inner()
        .expect("not poisoned")
        .into_iter()
        .map(|r| r.expect("every index ran"))
        .collect())
}

fn verify_entry(mv: &ModuleVersion, item: &InstallItem, check_zip: bool) -> Result<()> {
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
        _ if !check_zip => {}
        (Some(z), Some(blob)) => {
            let checked = gomod::check_zip(blob, mv, &format!("layer {}", z.layer)).and_then(|summary| {
                if summary.h1 == z.hash {
                    Ok(())
                } else {
                    Err(fail(
                        Kind::Integrity,
                        format!(
                            "module zip for {mv} (layer {}) hashes to {}, but the bundle says {}",
                            z.layer, summary.h1, z.hash
                        ),
                    ))
                }
            });
            if let Err(e) = checked {
                return Err(blame_local_copy(blob, &z.layer).unwrap_or(e));
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

/// A zip that fails its checks may be a local copy that rotted after it was
/// verified (disk error, someone editing the store), not a bad bundle. If
/// the file no longer matches its digest, it is removed so the next pull
/// fetches it again, and the error says so.
fn blame_local_copy(blob: &Path, layer: &crate::oci::Digest) -> Option<anyhow::Error> {
    let (sum, _) = File::open(blob)
        .ok()
        .and_then(|f| gomod::hash::sha256_reader(f).ok())?;
    if hex::encode(sum) == layer.hex() {
        return None;
    }
    let removed = fs::remove_file(blob).is_ok();
    Some(fail(
        Kind::Integrity,
        format!(
            "the local content store's copy of layer {layer} ({}) is corrupt: it no longer matches \
             its digest. {} Run the pull again to fetch it anew.",
            blob.display(),
            if removed {
                "It was removed."
            } else {
                "Remove it (it could not be removed)."
            }
        ),
    ))
}

fn state_of(entry: &ModuleEntry, paths: &Paths, need_tree: bool) -> Result<State> {
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
            let complete = if need_tree {
                paths.tree.is_dir()
            } else {
                paths.tree.is_dir() || paths.file("zip").is_file()
            };
            if complete && !paths.file("partial").exists() {
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

/// Installs one module version under the go command's per-version lock.
/// Returns whether it wrote the module (false: another process, ocigo or
/// the go command, completed it first).
fn install_one(mv: &ModuleVersion, paths: &Paths, item: &InstallItem) -> Result<bool> {
    let entry = item.entry;
    // A download directory that did not exist holds no leftovers of ours or
    // the go command's: skip scanning for them (installs are syscall-bound).
    let fresh = !paths.download_dir.exists();
    fs::create_dir_all(&paths.download_dir)
        .with_context(|| format!("creating {}", paths.download_dir.display()))?;
    // The go command's own per-version lock: a go process fetching the same
    // module waits for us and then finds it complete, and the other way round.
    let _lock = crate::store::exclusive_lock(&paths.file("lock"))?;
    // Decide again under the lock: what was seen before may have changed.
    match state_of(item.entry, paths, item.extract)? {
        State::Present => {
            add_missing_info(paths, entry)?;
            return Ok(false);
        }
        State::Conflict(why) => {
            return Err(fail(
                Kind::Conflict,
                format!("{mv} changed in the module cache during the pull: {why}"),
            ));
        }
        State::Needed => {}
    }
    let (zip, blob) = match (&entry.zip, &item.zip_blob) {
        (Some(zip), Some(blob)) => (zip, blob),
        (Some(_), None) => {
            return Err(fail(
                Kind::Conflict,
                format!(
                    "{mv} was complete in the module cache when the pull started and is not now; \
                     run the pull again"
                ),
            ));
        }
        (None, _) => {
            // go.mod only: `.info` and `list` first, the `.mod` (the marker) last.
            if !fresh {
                remove_leftovers(paths, false)?;
            }
            write_file_atomic(&paths.file("info"), entry.info.as_deref())?;
            rewrite_list(&paths.download_dir, Some(&mv.version))?;
            write_file_atomic(&paths.file("mod"), Some(&entry.go_mod))?;
            return Ok(true);
        }
    };
    // Un-commit first: with no `.ziphash`, neither the go command nor ocigo
    // trusts whatever tree or zip is there while it is replaced.
    remove_file_if_present(&paths.file("ziphash"))?;
    remove_leftovers(paths, !fresh)?;
    write_file_atomic(&paths.file("info"), entry.info.as_deref())?;
    if !paths.file("mod").exists() {
        write_file_atomic(&paths.file("mod"), Some(&entry.go_mod))?;
    }
    let mut src = File::open(blob).with_context(|| format!("opening {}", blob.display()))?;
    write_stream_atomic(&paths.file("zip"), &mut src)?;
    if !item.extract {
        rewrite_list(&paths.download_dir, Some(&mv.version))?;
        write_file_atomic(&paths.file("ziphash"), Some(&zip.hash))?;
        return Ok(true);
    }

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
    let dirs = extract(blob, mv, tmp.path())?;
    make_read_only(tmp.path(), dirs)?;
    let tmp_path = tmp.keep();
    if let Err(e) = fs::rename(&tmp_path, &paths.tree) {
        let _ = remove_tree(&tmp_path);
        return Err(e)
            .with_context(|| format!("moving {} to {}", tmp_path.display(), paths.tree.display()));
    }
    remove_file_if_present(&paths.file("partial"))?;
    rewrite_list(&paths.download_dir, Some(&mv.version))?;
    write_file_atomic(&paths.file("ziphash"), Some(&zip.hash))?;
    Ok(true)
}

/// The go command writes caches with a `.mod` but no `.info` for go.mod-only
/// modules; adding the bundle's `.info` (never replacing one) lets
/// `go list -m all` work offline.
fn add_missing_info(paths: &Paths, entry: &ModuleEntry) -> Result<()> {
    if entry.info.is_some() && !paths.file("info").exists() {
        write_file_atomic(&paths.file("info"), entry.info.as_deref())?;
    }
    Ok(())
}

fn remove_file_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Removes what an interrupted install of this version (ours or the go
/// command's) left: our temporary files for it, and, for a module whose tree
/// this install writes, an existing tree (the caller has un-committed it)
/// and, when `scan_trees`, `<dir>.tmp-*` trees.
fn remove_leftovers(paths: &Paths, scan_trees: bool) -> Result<()> {
    let ours = format!(".{}.", paths.esc_version);
    let entries = fs::read_dir(&paths.download_dir)
        .with_context(|| format!("reading {}", paths.download_dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", paths.download_dir.display()))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with(&ours) && name.contains(TMP_PREFIX) {
            remove_file_if_present(&entry.path())?;
        }
    }
    if scan_trees
        && let Some(parent) = paths.tree.parent()
        && let Ok(entries) = fs::read_dir(parent)
    {
        let prefix = format!(
            "{}.tmp-",
            paths.tree.file_name().expect("named").to_string_lossy()
        );
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                remove_tree(&entry.path())?;
            }
        }
    }
    if paths.tree.exists() {
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

/// Writes a download-area file by temp + rename, mode 0644 as the go
/// command leaves them. `None` writes nothing (an absent `.info`).
fn write_file_atomic(path: &Path, content: Option<&str>) -> Result<()> {
    match content {
        Some(text) => write_stream_atomic(path, &mut text.as_bytes()),
        None => Ok(()),
    }
}

/// The temporary file is named `.<target name>.ocigo-tmp-*`, so a later
/// install of the same version (holding its lock) can tell its own
/// leftovers from another process's files in progress.
fn write_stream_atomic(path: &Path, content: &mut dyn Read) -> Result<()> {
    let dir = path.parent().expect("has parent");
    let name = path.file_name().expect("named").to_string_lossy();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}{TMP_PREFIX}"))
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    io::copy(content, tmp.as_file_mut()).with_context(|| format!("writing {}", path.display()))?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(0o644))
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Extracts a zip already checked by `check_zip` (same immutable store blob),
/// still refusing any name that is not a clean relative path and any entry
/// that holds more than it declares.
/// Returns the directories it created below `dest`.
fn extract(zip_path: &Path, mv: &ModuleVersion, dest: &Path) -> Result<HashSet<PathBuf>> {
    let file = File::open(zip_path).with_context(|| format!("opening {}", zip_path.display()))?;
    let mut archive = zip::ZipArchive::new(zipcheck::ZipFileReader::new(file))
        .map_err(|e| fail(Kind::Integrity, format!("zip of {mv}: {e}")))?;
    let prefix = format!("{}@{}/", mv.path, mv.version);
    let mut made_dirs: HashSet<PathBuf> = HashSet::new();
    let mut buffer = vec![0; IO_BUFFER];
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
        if let Some(parent) = target.parent()
            && parent != dest
            && !made_dirs.contains(parent)
        {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
            let mut d = parent;
            while d != dest && made_dirs.insert(d.to_path_buf()) {
                d = d.parent().expect("below dest");
            }
        }
        let declared = entry.size();
        // Created read-only (0444, as the go command leaves module files);
        // the open file stays writable.
        let mut out = File::options()
            .write(true)
            .create_new(true)
            .mode(0o444)
            .open(&target)
            .with_context(|| format!("creating {}", target.display()))?;
        let n = copy_buffered(&mut (&mut entry).take(declared + 1), &mut out, &mut buffer)
            .with_context(|| format!("extracting {name} of {mv}"))?;
        if n != declared {
            return Err(fail(
                Kind::Integrity,
                format!("zip of {mv}: {name:?} does not hold its declared {declared} bytes"),
            ));
        }
        out.flush()
            .with_context(|| format!("writing {}", target.display()))?;
    }
    Ok(made_dirs)
}

/// Reads and writes in large chunks: installs are syscall-bound.
const IO_BUFFER: usize = 256 * 1024;

fn copy_buffered(r: &mut impl Read, w: &mut impl Write, buffer: &mut [u8]) -> io::Result<u64> {
    let mut total = 0;
    loop {
        let mut filled = 0;
        while filled < buffer.len() {
            match r.read(&mut buffer[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            return Ok(total);
        }
        w.write_all(&buffer[..filled])?;
        total += filled as u64;
    }
}

/// Directories 0555 as the go command leaves them (files are already 0444),
/// deepest first, from the list extraction made rather than a second walk.
fn make_read_only(root: &Path, dirs: HashSet<PathBuf>) -> Result<()> {
    let mut dirs: Vec<PathBuf> = dirs.into_iter().collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    dirs.push(root.to_path_buf());
    for d in &dirs {
        fs::set_permissions(d, fs::Permissions::from_mode(0o555))
            .with_context(|| format!("making {} read-only", d.display()))?;
    }
    Ok(())
}

/// `list` holds every version with a `.mod` file (and `also`, whose `.mod`
/// is about to be written), semver-sorted, as the go command's
/// `rewriteVersionList` writes it, and with its protocol: `list` itself is
/// locked (flock) and rewritten in place, so an ocigo and a go command adding
/// different versions of one module at once do not drop each other's.
/// Like the go command, a version whose file name is not itself canonical
/// (an escaped upper-case letter, `!`) is left out.
fn rewrite_list(download_dir: &Path, also: Option<&str>) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let list_path = download_dir.join("list");
    let list = crate::store::exclusive_lock(&list_path)?;
    let mut versions: Vec<String> = also
        .filter(|v| !v.contains(|c: char| c.is_ascii_uppercase()))
        .map(str::to_string)
        .into_iter()
        .collect();
    let entries = fs::read_dir(download_dir)
        .with_context(|| format!("reading {}", download_dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", download_dir.display()))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(v) = name.strip_suffix(".mod")
            && v.starts_with('v')
            && !v.contains('!')
            && !versions.iter().any(|known| known == v)
        {
            versions.push(v.to_string());
        }
    }
    versions.sort_by(|a, b| gomod::semver::compare(a, b));
    let text: String = versions.iter().map(|v| format!("{v}\n")).collect();
    let mut old = Vec::new();
    (&list)
        .read_to_end(&mut old)
        .with_context(|| format!("reading {}", list_path.display()))?;
    if old != text.as_bytes() {
        // As the go command does: empty, reserve the size (zero-filled, so a
        // torn write shows as NUL bytes), then write.
        list.set_len(0)
            .and_then(|()| list.set_len(text.len() as u64))
            .and_then(|()| list.write_all_at(text.as_bytes(), 0))
            .and_then(|()| list.set_permissions(fs::Permissions::from_mode(0o644)))
            .with_context(|| format!("writing {}", list_path.display()))?;
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
    fn run_parallel_keeps_order_within_groups_and_reports_errors() {
        let groups = vec![vec![0, 1, 2], vec![3], vec![4, 5]];
        let seen = Mutex::new(Vec::new());
        let out = run_parallel(&groups, 6, 4, |i| {
            seen.lock().unwrap().push(i);
            Ok(i * 10)
        })
        .unwrap();
        assert_eq!(out, vec![0, 10, 20, 30, 40, 50]);
        let seen = seen.into_inner().unwrap();
        let pos = |x| seen.iter().position(|&i| i == x).unwrap();
        assert!(pos(0) < pos(1) && pos(1) < pos(2) && pos(4) < pos(5));

        let err = run_parallel(&groups, 6, 4, |i| {
            if i == 4 {
                Err(fail(Kind::Integrity, "module 4 is bad"))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert!(err.to_string().contains("module 4"), "{err}");
    }

    #[test]
    fn list_is_semver_sorted() {
        let d = tempfile::tempdir().unwrap();
        for v in ["v1.10.0", "v1.2.0", "v1.2.0-rc.1", "v1.2.0-!r!c.2"] {
            fs::write(d.path().join(format!("{v}.mod")), "").unwrap();
        }
        fs::write(d.path().join("v1.2.0.zip"), "").unwrap();
        rewrite_list(d.path(), Some("v1.3.0")).unwrap();
        // v1.2.0-!r!c.2 (v1.2.0-RC.2) is left out, as the go command does.
        assert_eq!(
            fs::read_to_string(d.path().join("list")).unwrap(),
            "v1.2.0-rc.1\nv1.2.0\nv1.3.0\nv1.10.0\n"
        );
    }
}
