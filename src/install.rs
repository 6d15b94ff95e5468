//! Writing module versions into a GOMODCACHE exactly as the go command lays
//! them out, with no go command on the host.
//!
//! Owns: the download area (`cache/download/<esc path>/@v/{list,.info,.mod,
//! .zip,.ziphash}`) and the extracted trees. Everything is verified before
//! the first byte is written: hashes and zip rules, every name against the
//! file system's limits, and every path the install will write, remove or
//! read (a link, FIFO, socket or device there is a conflict, exit 5). A
//! zip is inflated once: [`verify`] extracts it while it checks it, into a
//! private [`Staging`] directory (`GOMODCACHE/cache/.ocigo-stage-*`, removed
//! with every tree in it and every directory it created if anything fails
//! before the install). Then each module is written on its own by temp +
//! rename, the staged tree renamed into place, and `.ziphash` (the go
//! command's "this module is complete" marker) written last. Below a
//! directory that does not exist (or that this run made) nothing is
//! looked at: a new GOMODCACHE costs no `stat` per file. `list` is updated once per module path
//! per pull, before any of that path's markers. A killed install leaves
//! only leftovers that the next run removes; a failed one also removes the
//! directories it created. Every file-system call goes through
//! [`crate::fs`]. Must not: fetch anything, overwrite a module that is
//! present with different content, or follow a link it did not make.
#![warn(clippy::disallowed_methods)]

use crate::parallel::run_parallel;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::artifact::ModuleEntry;
use crate::error::{Kind, fail, kind_of};
use crate::fs::{AtomicFile, Durability, LockMode, TMP_RANDOM_LEN, Wait};
use crate::gomod::{self, ModuleVersion, zipcheck};
use crate::progress::Progress;

const TMP_PREFIX: &str = ".ocigo-tmp-";
/// The download files ocigo writes by temp + rename.
const DOWNLOAD_EXTS: [&str; 4] = ["info", "mod", "zip", "ziphash"];
/// A `.ziphash` is one h1 line.
const MAX_ZIPHASH_BYTES: u64 = 1024;
/// `list`: one line per version; read no further than this.
const MAX_LIST_BYTES: u64 = 16 << 20;
/// Download files get the mode the go command leaves them with.
const DOWNLOAD_FILE_MODE: u32 = 0o644;

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
#[serde(rename_all = "snake_case")]
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
    esc_path: String,
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
            esc_path,
            esc_version,
        })
    }

    fn file(&self, ext: &str) -> PathBuf {
        self.download_dir
            .join(format!("{}.{ext}", self.esc_version))
    }

    /// Prefix of ocigo's temporary files for `<v>.<ext>`: a later install
    /// of the same version (holding its lock) can tell its own leftovers
    /// from another process's files in progress.
    fn tmp_prefix(&self, ext: &str) -> String {
        format!(".{}.{ext}{TMP_PREFIX}", self.esc_version)
    }

    fn tree_parent(&self) -> &Path {
        self.tree.parent().expect("tree has a parent")
    }

    /// Prefix of temporary trees, the go command's and ocigo's alike.
    fn tree_tmp_prefix(&self) -> String {
        format!(
            "{}.tmp-",
            self.tree.file_name().expect("named").to_string_lossy()
        )
    }
}

/// Where a pull extracts module trees while it verifies them, before it
/// installs anything: one private directory per pull,
/// `GOMODCACHE/cache/.ocigo-stage-<random>/` (0700, a name neither a module
/// path nor the go command uses), holding one tree per module, each moved
/// into place by [`install`] under that module's lock. The pull holds an
/// `flock` on the file `lock` inside it: a later pull, once its bundle is
/// verified, removes a staging directory of this user whose lock nobody
/// holds (left by a killed pull, [`remove_dead_stages`]), never one in
/// use. Everything inside goes through the directory's handle, never its
/// path. Dropped, it
/// removes every tree not moved into place and every directory it created
/// (GOMODCACHE itself included) that is empty again: a refused pull
/// leaves GOMODCACHE as it was.
pub struct Staging {
    cache: PathBuf,
    inner: Mutex<StagingInner>,
}

#[derive(Default)]
struct StagingInner {
    /// The staging directory, once a tree needs it.
    dir: Option<Arc<StageDir>>,
    /// Directories created for it (GOMODCACHE, `cache`), outermost first.
    created: Vec<PathBuf>,
    /// Staged trees: names inside the staging directory.
    trees: HashMap<ModuleVersion, OsString>,
    next: usize,
    /// Whether `cache/` is on GOMODCACHE's file system, once known.
    same_device: Option<bool>,
}

/// The staging directory, reached only through handles: `parent` is
/// `GOMODCACHE/cache`, `lock` holds the directory itself (locked) whose
/// name in `parent` is `name`. Someone who can write `cache` may rename
/// the directory away and plant a link or a directory of their own at its
/// path: nothing here goes through that path again.
struct StageDir {
    parent: crate::fs::DirHandle,
    name: OsString,
    lock: crate::fs::DirLock,
}

impl StageDir {
    fn dir(&self) -> &crate::fs::DirHandle {
        self.lock.handle()
    }
}

const STAGE_PREFIX: &str = ".ocigo-stage-";

impl Staging {
    pub fn new(cache: &Path) -> Staging {
        Staging {
            cache: cache.to_path_buf(),
            inner: Mutex::new(StagingInner::default()),
        }
    }

    /// Whether trees staged in `GOMODCACHE/cache` can be renamed into
    /// GOMODCACHE: both on one file system (`st_dev`), or not there yet
    /// (then made on one). If not (a separate mount), nothing is staged and
    /// each tree is extracted in place at install, as without staging,
    /// rather than staged, refused by the rename (`EXDEV`) and extracted
    /// again.
    fn usable(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        let mut inner = self.inner.lock().expect("not poisoned");
        *inner.same_device.get_or_insert_with(|| {
            // The root is trusted as given (it may be a link: `root/.`
            // is what it names); `cache/` is not followed.
            let root = crate::fs::lstat(&self.cache.join(".")).ok().flatten();
            let cache = crate::fs::lstat(&self.cache.join("cache")).ok().flatten();
            match (root, cache) {
                (Some(root), Some(cache)) => root.dev() == cache.dev(),
                _ => true,
            }
        })
    }

    /// A new empty directory for one module's tree: the staging directory
    /// and the tree's name inside it.
    fn new_tree_dir(&self) -> Result<(Arc<StageDir>, OsString)> {
        let mut inner = self.inner.lock().expect("not poisoned");
        if inner.dir.is_none() {
            let mut made = Vec::new();
            let parent = crate::fs::ensure_dir(&self.cache, Path::new("cache"), &mut made);
            inner.created.extend(made);
            let parent = parent?;
            let parent_handle = crate::fs::DirHandle::open(&parent)?;
            let (path, lock) = crate::fs::create_locked_temp_dir(&parent, STAGE_PREFIX)?;
            inner.dir = Some(Arc::new(StageDir {
                parent: parent_handle,
                name: path.file_name().expect("named").to_os_string(),
                lock,
            }));
        }
        inner.next += 1;
        let name = OsString::from(inner.next.to_string());
        let dir = Arc::clone(inner.dir.as_ref().expect("made above"));
        drop(inner);
        dir.dir().create_dir(Path::new(&name))?;
        Ok((dir, name))
    }

    /// Checks the zip at `blob` (zip rules, h1 against `want`), extracting
    /// it into a new tree of this staging directory as it goes. On failure
    /// the tree is removed.
    fn stage(
        &self,
        mv: &ModuleVersion,
        blob: &Path,
        layer: &crate::oci::Digest,
        want: &str,
    ) -> Result<()> {
        let (dir, name) = self.new_tree_dir()?;
        let mut writer = TreeWriter::new(dir.dir(), Path::new(&name));
        let checked = {
            let mut sink = |rel: &str| writer.create(rel);
            gomod::check_zip_into(blob, mv, &format!("layer {layer}"), Some(&mut sink))
        };
        let checked = checked.and_then(|summary| {
            if summary.h1 == want {
                Ok(())
            } else {
                Err(fail(
                    Kind::Integrity,
                    format!(
                        "module zip for {mv} (layer {layer}) hashes to {}, but the bundle says {want}",
                        summary.h1
                    ),
                ))
            }
        });
        let placed = match checked {
            Ok(()) => make_read_only(dir.dir(), writer.into_dirs(), None),
            Err(e) => Err(blame_local_copy(blob, layer).unwrap_or(e)),
        };
        match placed {
            Ok(()) => {
                let mut inner = self.inner.lock().expect("not poisoned");
                inner.trees.insert(mv.clone(), name);
                Ok(())
            }
            Err(e) => {
                let _ = dir.dir().remove_tree(&name);
                Err(e)
            }
        }
    }

    /// Moves the staged tree of `mv` to `to` (absent; its parent a real
    /// directory) and makes its top read-only: `Ok(true)`. `Ok(false)`
    /// when nothing is staged for `mv` or the move crosses file systems
    /// (the staged tree is then removed).
    fn place(&self, mv: &ModuleVersion, to: &Path) -> Result<bool> {
        let (dir, name) = {
            let mut inner = self.inner.lock().expect("not poisoned");
            let Some(name) = inner.trees.remove(mv) else {
                return Ok(false);
            };
            (
                Arc::clone(inner.dir.as_ref().expect("trees live in it")),
                name,
            )
        };
        let to_name = to.file_name().expect("named");
        let mut to_parent = to.parent().expect("tree has a parent").to_path_buf();
        if to_parent == self.cache {
            // A module path with no slash: its tree is right in GOMODCACHE,
            // which is trusted as given and may be a link (`root/.` is what
            // it names).
            to_parent.push(".");
        }
        let moved = crate::fs::DirHandle::open(&to_parent).and_then(|parent| {
            dir.dir().rename_to(&name, &parent, to_name)?;
            Ok(parent)
        });
        match moved {
            Ok(parent) => {
                // A directory moves to another parent only while it is
                // writable: made read-only once there.
                if let Err(e) = parent.chmod_dir(Path::new(to_name), 0o555) {
                    let _ = parent.remove_tree(to_name);
                    return Err(e);
                }
                Ok(true)
            }
            Err(e) => {
                let _ = dir.dir().remove_tree(&name);
                let cross_device = e
                    .root_cause()
                    .downcast_ref::<io::Error>()
                    .is_some_and(|e| e.raw_os_error() == Some(libc::EXDEV));
                if cross_device { Ok(false) } else { Err(e) }
            }
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(dir) = inner.dir.take() {
            // Through the handles: whatever is at the staging path now is
            // not looked at; only an empty directory there is removed.
            let _ = dir.dir().empty();
            let _ = dir.parent.unlink(&dir.name, true);
            drop(dir);
        }
        crate::fs::remove_empty_dirs(&inner.created);
    }
}

/// Removes staging directories of pulls that are gone (killed) from
/// `GOMODCACHE/cache`: real directories named `.ocigo-stage-*` owned by
/// this user whose lock file nobody holds ([`crate::fs::reap_dead_dir`]).
/// Anything else of that name is not ocigo's (or not this user's) and is
/// left alone. Best effort: what cannot be removed is returned as
/// warnings, never fails the pull. Called once a bundle is verified, so a
/// refused pull changes nothing.
pub fn remove_dead_stages(cache: &Path) -> Vec<String> {
    let parent = cache.join("cache");
    let mut warnings = Vec::new();
    let listed = match crate::fs::dir_exists(&parent) {
        Ok(true) => {
            crate::fs::DirHandle::open(&parent).and_then(|h| Ok((crate::fs::list_dir(&parent)?, h)))
        }
        Ok(false) => return warnings,
        Err(e) => Err(e),
    };
    let (entries, handle) = match listed {
        Ok(x) => x,
        Err(e) => {
            warnings.push(format!("looking for leftover staging directories: {e:#}"));
            return warnings;
        }
    };
    for (name, ft) in entries {
        use std::os::unix::ffi::OsStrExt;
        if !ft.is_dir() || !name.as_bytes().starts_with(STAGE_PREFIX.as_bytes()) {
            continue;
        }
        if let Err(e) = crate::fs::reap_dead_dir(&handle, &name) {
            warnings.push(format!(
                "could not remove the leftover staging directory {}: {e:#}",
                parent.join(&name).display()
            ));
        }
    }
    warnings
}

/// What an interrupted install of one version left, found before the
/// install started and removed under that version's lock.
#[derive(Default)]
struct Leftovers {
    files: Vec<PathBuf>,
    trees: Vec<PathBuf>,
}

/// Only the checks of [`install`], writing nothing: returns, per item,
/// whether its zip has been checked (h1, zip rules) because the module is
/// not in the cache yet. A pull verifies a whole bundle this way, part by part,
/// before it installs any part.
///
/// With `staging`, the zip of each such module that is extracted is
/// extracted in the same pass, into a private directory of `staging`, to
/// be moved into place by [`install`] (a zip is inflated once per pull).
pub fn verify(
    cache: &Path,
    items: &[InstallItem],
    jobs: usize,
    progress: &Progress,
    staging: Option<&Staging>,
) -> Result<Vec<bool>> {
    Ok(plan(cache, items, jobs, progress, staging)?
        .iter()
        .zip(items)
        .map(|((_, _, state), item)| matches!(state, State::Needed) && item.entry.zip.is_some())
        .collect())
}

type Plan = Vec<(ModuleVersion, Paths, State)>;

fn plan(
    cache: &Path,
    items: &[InstallItem],
    jobs: usize,
    progress: &Progress,
    staging: Option<&Staging>,
) -> Result<Plan> {
    progress.start("verifying", items.len() as u64);
    // Biggest zips first: they take longest to check (and extract), and
    // starting them last would leave one thread working alone at the end.
    let mut each_alone: Vec<Vec<usize>> = (0..items.len()).map(|i| vec![i]).collect();
    each_alone
        .sort_by_key(|g| std::cmp::Reverse(items[g[0]].entry.zip.as_ref().map_or(0, |z| z.size)));
    let plan = run_parallel(&each_alone, items.len(), jobs, |i| {
        let item = &items[i];
        let mv = ModuleVersion {
            path: item.entry.path.clone(),
            version: item.entry.version.clone(),
        };
        // What the go command requires of any module it downloads: a path
        // and version it can store, agreeing on the major version.
        let paths = Paths::new(cache, &mv)
            .and_then(|paths| {
                gomod::check_module_version(&mv.path, &mv.version)
                    .map_err(|why| fail(Kind::Integrity, why))?;
                Ok(paths)
            })
            .with_context(|| format!("module {mv} in the bundle"))?;
        check_names(cache, &paths, &mv)?;
        // Below a directory that does not exist nothing does: no file
        // there needs a look (a new or mostly empty GOMODCACHE).
        let download_dir_exists = check_dirs(cache, &paths.download_dir)?;
        let tree_parent_exists = check_dirs(cache, paths.tree_parent())?;
        let state = if download_dir_exists {
            state_of(item.entry, &paths, item.extract)?
        } else {
            State::Needed
        };
        match state {
            State::Needed => check_targets(&paths, download_dir_exists, tree_parent_exists)?,
            State::Present if item.entry.info.is_some() => {
                crate::fs::regular_file_exists(&paths.file("info"))?;
            }
            _ => {}
        }
        // A zip is only decompressed and checked (h1, zip rules, names) for
        // a module that will be written; its digest was checked when it
        // was fetched.
        verify_entry(
            cache,
            &mv,
            &paths,
            item,
            matches!(state, State::Needed) && !item.zip_checked,
            staging.filter(|_| item.extract),
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
///
/// Nothing is written (not even GOMODCACHE created) until every item is
/// verified and every path it will touch checked. If writing fails, the
/// directories this call created and left empty are removed again.
///
/// With `staging` (given to [`verify`] before), the trees extracted there
/// are moved into place instead of being extracted again.
pub fn install(
    cache: &Path,
    items: &[InstallItem],
    jobs: usize,
    progress: &Progress,
    staging: Option<&Staging>,
) -> Result<InstallReport> {
    let plan = plan(cache, items, jobs, progress, None)?;
    let leftovers = find_leftovers(&plan, items)?;

    let mut by_path: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        by_path.entry(item.entry.path.as_str()).or_default().push(i);
    }
    let groups: Vec<Vec<usize>> = by_path.into_values().collect();
    let needed = plan.iter().filter(|p| matches!(p.2, State::Needed)).count();
    progress.start("installing", needed as u64);
    let created: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    let each_group: Vec<Vec<usize>> = (0..groups.len()).map(|g| vec![g]).collect();
    let written = run_parallel(&each_group, groups.len(), jobs, |g| {
        install_group(
            cache, &groups[g], &plan, items, &leftovers, &created, progress, staging,
        )
    });
    progress.finish();
    let written = match written {
        Ok(w) => w,
        Err(e) => {
            crate::fs::remove_empty_dirs(&created.into_inner().expect("not poisoned"));
            return Err(e);
        }
    };
    let mut installed = vec![false; items.len()];
    for (group, wrote) in groups.iter().zip(written) {
        for (&i, w) in group.iter().zip(wrote) {
            installed[i] = w;
        }
    }

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

/// Installs the versions of one module path, in order: `list` is updated
/// once, with every version about to be written, before any of their
/// commit markers (so a complete module is always listed), then checked
/// once more at the end (a go command may have rewritten it meanwhile from
/// the `.mod` files it saw). Returns, per version, whether it was written.
#[allow(clippy::too_many_arguments)]
fn install_group(
    cache: &Path,
    group: &[usize],
    plan: &[(ModuleVersion, Paths, State)],
    items: &[InstallItem],
    leftovers: &[Leftovers],
    created: &Mutex<Vec<PathBuf>>,
    progress: &Progress,
    staging: Option<&Staging>,
) -> Result<Vec<bool>> {
    let mut wrote = vec![false; group.len()];
    let needed: Vec<&str> = group
        .iter()
        .filter(|&&i| matches!(plan[i].2, State::Needed))
        .map(|&i| plan[i].0.version.as_str())
        .collect();
    let (_, first, _) = &plan[group[0]];
    if !needed.is_empty() {
        let mut made = Vec::new();
        let rel = |d: &Path| {
            d.strip_prefix(cache)
                .expect("below the cache")
                .to_path_buf()
        };
        let ensured =
            crate::fs::ensure_dir(cache, &rel(&first.download_dir), &mut made).and_then(|_| {
                // Only a module whose tree is extracted needs its parent
                // (`pull --no-extract` writes the download area only).
                if group
                    .iter()
                    .any(|&i| items[i].entry.zip.is_some() && items[i].extract)
                {
                    crate::fs::ensure_dir(cache, &rel(first.tree_parent()), &mut made)?;
                }
                Ok(())
            });
        created.lock().expect("not poisoned").extend(made);
        ensured?;
    }
    let list_path = first.download_dir.join("list");
    let list_existed = needed.is_empty() || crate::fs::regular_file_exists(&list_path)?;
    let result = (|| {
        if !needed.is_empty() {
            update_list(&first.download_dir, &needed, false)?;
        }
        for (k, &i) in group.iter().enumerate() {
            let (mv, paths, state) = &plan[i];
            let item = &items[i];
            match state {
                State::Present => add_missing_info(paths, item.entry)
                    .with_context(|| format!("adding .info of {mv} to {}", cache.display()))?,
                State::Conflict(_) => {}
                State::Needed => {
                    wrote[k] = install_one(mv, paths, item, &leftovers[i], staging)
                        .with_context(|| format!("installing {mv} into {}", cache.display()))?;
                    progress.inc(1);
                }
            }
        }
        if !needed.is_empty() {
            update_list(&first.download_dir, &needed, false)?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        // Put `list` back to what the `.mod` files say (what it was, unless
        // something was committed), and remove one this call made if it
        // names nothing.
        let _ = update_list(&first.download_dir, &[], true);
        if !list_existed
            && crate::fs::lstat(&list_path).is_ok_and(|m| m.is_some_and(|m| m.len() == 0))
        {
            let _ = crate::fs::remove_file(&list_path);
        }
        return Err(e);
    }
    Ok(wrote)
}

/// How many threads install at once by default: the work is bound by file
/// system calls, not CPU, so more than cores.
pub const DEFAULT_JOBS: usize = 8;

fn verify_entry(
    cache: &Path,
    mv: &ModuleVersion,
    paths: &Paths,
    item: &InstallItem,
    check_zip: bool,
    staging: Option<&Staging>,
) -> Result<()> {
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
            if let Some(staging) = staging.filter(|s| s.usable()) {
                // Names first: nothing is written for a zip naming something
                // too long for the file system.
                check_entry_names(cache, mv, paths, blob)?;
                return staging.stage(mv, blob, &z.layer, &z.hash);
            }
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
            check_entry_names(cache, mv, paths, blob)?;
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
    let (sum, _) = crate::fs::open_regular(blob)
        .ok()
        .flatten()
        .and_then(|f| gomod::hash::sha256_reader(f).ok())?;
    if hex::encode(sum) == layer.hex() {
        return None;
    }
    let removed = crate::fs::remove_file(blob).is_ok();
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

/// Checks, before anything is written, that every name this module's
/// install creates fits the file system: path elements and file names
/// (with ocigo's temporary suffixes) within `NAME_MAX`, whole paths within
/// `PATH_MAX`. The go command has no such check and fails half way.
fn check_names(cache: &Path, paths: &Paths, mv: &ModuleVersion) -> Result<()> {
    let what = format!("module {mv} in the bundle");
    // The longest names written in the download area: `.ziphash` temporaries.
    crate::fs::check_name_lengths(
        cache,
        &format!(
            "cache/download/{}/@v/{}",
            paths.esc_path,
            paths.tmp_prefix("ziphash")
        ),
        TMP_RANDOM_LEN,
        &what,
    )?;
    let tree_tmp = format!("{}@{}.tmp-", paths.esc_path, paths.esc_version);
    crate::fs::check_name_lengths(cache, &tree_tmp, TMP_RANDOM_LEN, &what)
}

/// The same for every file a zip would extract into the module's tree.
fn check_entry_names(cache: &Path, mv: &ModuleVersion, paths: &Paths, blob: &Path) -> Result<()> {
    let file = crate::fs::open_regular_required(blob, "module zip")?;
    let archive = zip::ZipArchive::new(zipcheck::ZipFileReader::new(file))
        .map_err(|e| fail(Kind::Integrity, format!("zip of {mv}: {e}")))?;
    let prefix = format!("{}@{}/", mv.path, mv.version);
    let tree_tmp = format!(
        "{}@{}.tmp-{}",
        paths.esc_path,
        paths.esc_version,
        "x".repeat(TMP_RANDOM_LEN)
    );
    let what = format!("module {mv} in the bundle");
    for name in archive.file_names() {
        let name = name.map_err(|e| fail(Kind::Integrity, format!("zip of {mv}: {e}")))?;
        let rel = name.strip_prefix(prefix.as_str()).unwrap_or(&name);
        crate::fs::check_name_lengths(cache, &format!("{tree_tmp}/{rel}"), 0, &what)?;
    }
    Ok(())
}

/// Every directory from `cache` down to `dir` that exists must be a real
/// directory: a link there (or a file) is [`Kind::Conflict`].
/// Returns whether `dir` exists.
fn check_dirs(cache: &Path, dir: &Path) -> Result<bool> {
    let rel = dir.strip_prefix(cache).expect("below the cache");
    let mut d = cache.to_path_buf();
    for c in rel.components() {
        d.push(c);
        if !crate::fs::dir_exists(&d)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Every file the install of a needed module writes, removes or locks is
/// absent or a regular file, and its tree (if an incomplete one is there)
/// holds only regular files and directories.
/// Files in a directory that does not exist are not looked at.
fn check_targets(paths: &Paths, download_dir_exists: bool, tree_parent_exists: bool) -> Result<()> {
    if download_dir_exists {
        for ext in ["lock", "info", "mod", "zip", "ziphash", "partial"] {
            crate::fs::regular_file_exists(&paths.file(ext))?;
        }
        crate::fs::regular_file_exists(&paths.download_dir.join("list"))?;
    }
    if tree_parent_exists {
        crate::fs::check_tree(&paths.tree)?;
    }
    Ok(())
}

/// Finds what interrupted installs of the needed versions left: ocigo's
/// temporary download files and `<tree>.tmp-*` directories. Each directory
/// is read once per pull (not once per version: a bundle with thousands of
/// versions of one module stays linear), and a directory ocigo is about to
/// create holds none. A leftover that is a link or special file is
/// [`Kind::Conflict`], before anything is written.
fn find_leftovers(
    plan: &[(ModuleVersion, Paths, State)],
    items: &[InstallItem],
) -> Result<Vec<Leftovers>> {
    let mut listings: HashMap<PathBuf, Vec<(String, fs::FileType)>> = HashMap::new();
    let mut listing = |dir: &Path| -> Result<Vec<(String, fs::FileType)>> {
        if let Some(l) = listings.get(dir) {
            return Ok(l.clone());
        }
        let l: Vec<(String, fs::FileType)> = crate::fs::list_dir(dir)?
            .into_iter()
            .filter_map(|(n, t)| n.into_string().ok().map(|n| (n, t)))
            .filter(|(n, _)| n.contains(".tmp-") || n.contains(TMP_PREFIX))
            .collect();
        listings.insert(dir.to_path_buf(), l.clone());
        Ok(l)
    };
    let mut out = Vec::with_capacity(plan.len());
    for ((_, paths, state), item) in plan.iter().zip(items) {
        let mut found = Leftovers::default();
        if !matches!(state, State::Needed) {
            out.push(found);
            continue;
        }
        let prefixes: Vec<String> = DOWNLOAD_EXTS.iter().map(|e| paths.tmp_prefix(e)).collect();
        for (name, ft) in listing(&paths.download_dir)? {
            if prefixes.iter().any(|p| name.starts_with(p.as_str())) {
                let path = paths.download_dir.join(&name);
                if !ft.is_file() {
                    crate::fs::regular_file_exists(&path)?;
                }
                found.files.push(path);
            }
        }
        if item.entry.zip.is_some() {
            let prefix = paths.tree_tmp_prefix();
            for (name, ft) in listing(paths.tree_parent())? {
                if name.starts_with(&prefix) {
                    let path = paths.tree_parent().join(&name);
                    if ft.is_dir() {
                        crate::fs::check_tree(&path)?;
                        found.trees.push(path);
                    } else {
                        crate::fs::regular_file_exists(&path)?;
                        found.files.push(path);
                    }
                }
            }
        }
        out.push(found);
    }
    Ok(out)
}

/// Where the cache stands for one module. Files are read no-follow,
/// regular-only and bounded: a `.mod` no bigger than the bundle's (a bigger
/// one differs anyway), a `.ziphash` of one line.
fn state_of(entry: &ModuleEntry, paths: &Paths, need_tree: bool) -> Result<State> {
    let mod_path = paths.file("mod");
    match crate::fs::read_capped(&mod_path, entry.go_mod.len() as u64) {
        Ok(None) => return Ok(State::Needed),
        Ok(Some(existing)) if existing == entry.go_mod.as_bytes() => {}
        Ok(Some(existing)) => {
            return Ok(State::Conflict(format!(
                "{} exists with different content (hash {}, bundle has {})",
                mod_path.display(),
                gomod::hash_gomod(&existing),
                entry.mod_hash
            )));
        }
        Err(e) if kind_of(&e) == Some(Kind::Integrity) => {
            return Ok(State::Conflict(format!(
                "{} exists with different content (longer than the bundle's)",
                mod_path.display(),
            )));
        }
        Err(e) => return Err(e),
    }
    let Some(zip) = &entry.zip else {
        return Ok(State::Present);
    };
    let ziphash = paths.file("ziphash");
    match crate::fs::read_capped(&ziphash, MAX_ZIPHASH_BYTES) {
        Ok(Some(existing)) if String::from_utf8_lossy(&existing).trim() == zip.hash => {
            // Without extraction (`pull --no-extract`) a complete download
            // area is enough: the go command extracts on demand.
            let complete = crate::fs::dir_exists(&paths.tree)?
                || (!need_tree && crate::fs::regular_file_exists(&paths.file("zip"))?);
            if complete && !crate::fs::regular_file_exists(&paths.file("partial"))? {
                Ok(State::Present)
            } else {
                Ok(State::Needed)
            }
        }
        Ok(Some(existing)) => Ok(State::Conflict(format!(
            "{} says {}, the bundle says {}",
            ziphash.display(),
            String::from_utf8_lossy(&existing).trim(),
            zip.hash
        ))),
        Ok(None) => Ok(State::Needed),
        Err(e) if kind_of(&e) == Some(Kind::Integrity) => Ok(State::Conflict(format!(
            "{} is not a hash: {e:#}",
            ziphash.display()
        ))),
        Err(e) => Err(e),
    }
}

/// Installs one module version under the go command's per-version lock.
/// Returns whether it wrote the module (false: another process, ocigo or
/// the go command, completed it first).
fn install_one(
    mv: &ModuleVersion,
    paths: &Paths,
    item: &InstallItem,
    leftovers: &Leftovers,
    staging: Option<&Staging>,
) -> Result<bool> {
    let entry = item.entry;
    // The go command's own per-version lock: a go process fetching the same
    // module waits for us and then finds it complete, and the other way round.
    let _lock = crate::fs::lock(&paths.file("lock"), LockMode::Exclusive, Wait::Block)?;
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
            // go.mod only: `.info` first, the `.mod` (the marker) last;
            // `list` already names the version.
            remove_leftovers(paths, leftovers)?;
            write_download_file(paths, "info", entry.info.as_deref())?;
            write_download_file(paths, "mod", Some(&entry.go_mod))?;
            return Ok(true);
        }
    };
    // Un-commit first: with no `.ziphash`, neither the go command nor ocigo
    // trusts whatever tree or zip is there while it is replaced.
    crate::fs::remove_file(&paths.file("ziphash"))?;
    remove_leftovers(paths, leftovers)?;
    write_download_file(paths, "info", entry.info.as_deref())?;
    if !crate::fs::regular_file_exists(&paths.file("mod"))? {
        write_download_file(paths, "mod", Some(&entry.go_mod))?;
    }
    let mut src = crate::fs::open_regular_required(blob, "module zip")?;
    let mut out = AtomicFile::create(
        &paths.file("zip"),
        &paths.tmp_prefix("zip"),
        DOWNLOAD_FILE_MODE,
    )?;
    // File to file: std copies in the kernel (`copy_file_range`), no
    // buffer in between.
    io::copy(&mut src, out.file())
        .with_context(|| format!("writing {}", paths.file("zip").display()))?;
    out.commit(Durability::Relaxed)?;
    if !item.extract {
        // `pull --no-extract`: the download area only; `list` is written
        // per module path by the caller.
        write_download_file(paths, "ziphash", Some(&zip.hash))?;
        return Ok(true);
    }

    // Extracted (and checked) while the bundle was verified: moved into
    // place. A GOMODCACHE spread over file systems cannot take the move:
    // extracted again.
    let from_stage = match staging {
        Some(staging) => staging.place(mv, &paths.tree)?,
        None => false,
    };
    if !from_stage {
        // The go command removes `<dir>.tmp-*` itself; use the same prefix.
        let tmp = crate::fs::create_temp_dir(paths.tree_parent(), &paths.tree_tmp_prefix())?;
        let placed = crate::fs::DirHandle::open(&tmp)
            .and_then(|dest| {
                let dirs = extract(blob, mv, &dest)?;
                make_read_only(&dest, dirs, Some(Path::new("")))
            })
            .and_then(|()| crate::fs::rename(&tmp, &paths.tree));
        if let Err(e) = placed {
            let _ = crate::fs::remove_tree(&tmp);
            return Err(e);
        }
    }
    crate::fs::remove_file(&paths.file("partial"))?;
    write_download_file(paths, "ziphash", Some(&zip.hash))?;
    Ok(true)
}

/// The go command writes caches with a `.mod` but no `.info` for go.mod-only
/// modules; adding the bundle's `.info` (never replacing one) lets
/// `go list -m all` work offline.
fn add_missing_info(paths: &Paths, entry: &ModuleEntry) -> Result<()> {
    if entry.info.is_some() && !crate::fs::regular_file_exists(&paths.file("info"))? {
        write_download_file(paths, "info", entry.info.as_deref())?;
    }
    Ok(())
}

/// Removes what an interrupted install of this version (ours or the go
/// command's) left, as found by [`find_leftovers`], and an existing tree
/// (the caller has un-committed it). Nothing is followed: a link is
/// unlinked, a tree removed through directory handles.
fn remove_leftovers(paths: &Paths, leftovers: &Leftovers) -> Result<()> {
    for f in &leftovers.files {
        crate::fs::remove_file(f)?;
    }
    for t in &leftovers.trees {
        crate::fs::remove_tree(t).with_context(|| format!("removing leftover {}", t.display()))?;
    }
    crate::fs::remove_tree(&paths.tree)
        .with_context(|| format!("removing leftover {}", paths.tree.display()))
}

/// Writes a download-area file by temp + rename, mode 0644 as the go
/// command leaves them, not synced (as the go command does not). `None`
/// writes nothing (an absent `.info`).
fn write_download_file(paths: &Paths, ext: &str, content: Option<&str>) -> Result<()> {
    match content {
        Some(text) => crate::fs::write_atomic(
            &paths.file(ext),
            &paths.tmp_prefix(ext),
            text.as_bytes(),
            DOWNLOAD_FILE_MODE,
            Durability::Relaxed,
        ),
        None => Ok(()),
    }
}

/// Extracts a zip already checked by `check_zip` (same immutable store blob),
/// still refusing any name that is not a clean relative path and any entry
/// that holds more than it declares.
/// Returns the directories it created below `dest`.
fn extract(
    zip_path: &Path,
    mv: &ModuleVersion,
    dest: &crate::fs::DirHandle,
) -> Result<HashSet<PathBuf>> {
    let file = crate::fs::open_regular_required(zip_path, "module zip")?;
    let mut archive = zip::ZipArchive::new(zipcheck::ZipFileReader::new(file))
        .map_err(|e| fail(Kind::Integrity, format!("zip of {mv}: {e}")))?;
    let prefix = format!("{}@{}/", mv.path, mv.version);
    let mut tree = TreeWriter::new(dest, Path::new(""));
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
        let target = dest.path().join(&name);
        let declared = entry.size();
        let mut out = tree.create(&name)?;
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
    Ok(tree.into_dirs())
}

/// Writes the files of a new module tree into `base` inside `dest`, a
/// directory this run just made (empty, private), through `dest`'s handle:
/// parents are made with one `mkdirat` each the first time a name needs
/// them, with no look first; files are created `O_EXCL|O_NOFOLLOW` with
/// their final mode, 0444 (the open file stays writable), so nothing is
/// chmod-ed afterwards but directories.
struct TreeWriter<'a> {
    dest: &'a crate::fs::DirHandle,
    base: &'a Path,
    /// Directories made below `base`, relative to it.
    dirs: HashSet<PathBuf>,
}

impl<'a> TreeWriter<'a> {
    fn new(dest: &'a crate::fs::DirHandle, base: &'a Path) -> TreeWriter<'a> {
        TreeWriter {
            dest,
            base,
            dirs: HashSet::new(),
        }
    }

    /// Creates the file `rel` (a name the zip rules accepted).
    fn create(&mut self, rel: &str) -> Result<fs::File> {
        let rel = Path::new(rel);
        if let Some(parent) = rel.parent()
            && !parent.as_os_str().is_empty()
            && !self.dirs.contains(parent)
        {
            let mut d = PathBuf::new();
            for c in parent.components() {
                d.push(c);
                if self.dirs.insert(d.clone()) {
                    self.dest.create_dir(&self.base.join(&d))?;
                }
            }
        }
        self.dest.create_file(&self.base.join(rel), 0o444)
    }

    /// The directories made, as paths relative to `dest`.
    fn into_dirs(self) -> HashSet<PathBuf> {
        self.dirs.into_iter().map(|d| self.base.join(d)).collect()
    }
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
/// deepest first, from the list extraction made rather than a second walk
/// (paths relative to `dest`). Then `root` too, if given.
fn make_read_only(
    dest: &crate::fs::DirHandle,
    dirs: HashSet<PathBuf>,
    root: Option<&Path>,
) -> Result<()> {
    let mut dirs: Vec<PathBuf> = dirs.into_iter().collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    dirs.extend(root.map(Path::to_path_buf));
    for d in &dirs {
        // Through handles opened without following links: only
        // directories this install created, inside its own new directory.
        dest.chmod_dir(d, 0o555)
            .with_context(|| format!("making {} read-only", dest.path().join(d).display()))?;
    }
    Ok(())
}

/// `list` holds every version with a `.mod` file (and `add`, whose `.mod`
/// files are about to be written), semver-sorted, as the go command's
/// `rewriteVersionList` writes it, and with its protocol: `list` itself is
/// locked (flock) and rewritten in place, so an ocigo and a go command adding
/// different versions of one module at once do not drop each other's.
/// Unless `always`, nothing is read or written when `list` already names
/// every version in `add`: one install reads the directory at most once
/// per module path. Like the go command, a version whose file name is not
/// itself canonical (an escaped upper-case letter, `!`) is left out.
fn update_list(download_dir: &Path, add: &[&str], always: bool) -> Result<()> {
    use std::os::unix::fs::{FileExt, PermissionsExt};
    let list_path = download_dir.join("list");
    let lock = crate::fs::lock(&list_path, LockMode::Exclusive, Wait::Block)?
        .expect("a blocking lock is granted");
    let list = lock.file();
    let wanted: Vec<&str> = add
        .iter()
        .copied()
        .filter(|v| !v.contains(|c: char| c.is_ascii_uppercase()))
        .collect();
    let mut old = Vec::new();
    list.take(MAX_LIST_BYTES + 1)
        .read_to_end(&mut old)
        .with_context(|| format!("reading {}", list_path.display()))?;
    if !always {
        let old_text = String::from_utf8_lossy(&old);
        let listed: HashSet<&str> = old_text.lines().collect();
        if wanted.iter().all(|v| listed.contains(v)) {
            return Ok(());
        }
    }
    let mut versions: HashSet<String> = wanted.iter().map(|v| v.to_string()).collect();
    for (name, ft) in crate::fs::list_dir(download_dir)? {
        let name = name.to_string_lossy();
        if let Some(v) = name.strip_suffix(".mod")
            && ft.is_file()
            && v.starts_with('v')
            && !v.contains('!')
        {
            versions.insert(v.to_string());
        }
    }
    let mut versions: Vec<String> = versions.into_iter().collect();
    versions.sort_by(|a, b| gomod::semver::compare(a, b));
    let text: String = versions.iter().map(|v| format!("{v}\n")).collect();
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
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    /// A staging directory renamed away and replaced by a link to another
    /// tree after it was made: nothing is written, chmod-ed, moved or
    /// removed through the link.
    #[test]
    fn staging_never_goes_through_its_path_again() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let cache = d.path().join("modcache");
        let victim = d.path().join("victim");
        for n in ["1", "2", "3"] {
            fs::create_dir_all(victim.join(n)).unwrap();
            fs::write(victim.join(n).join("keep"), b"keep").unwrap();
            fs::set_permissions(victim.join(n), fs::Permissions::from_mode(0o755)).unwrap();
        }
        let staging = Staging::new(&cache);
        let mv = |v: &str| ModuleVersion {
            path: "example.com/m".into(),
            version: v.into(),
        };
        let (dir, one) = staging.new_tree_dir().unwrap();
        assert_eq!(one, "1");
        let stage = dir.dir().path().to_path_buf();
        drop(dir);
        staging
            .inner
            .lock()
            .unwrap()
            .trees
            .insert(mv("v1.0.0"), one);
        fs::rename(&stage, d.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(&victim, &stage).unwrap();

        // Written into the real staging directory, not the link's target.
        let (dir, two) = staging.new_tree_dir().unwrap();
        let mut w = TreeWriter::new(dir.dir(), Path::new(&two));
        w.create("a/b/f").unwrap().write_all(b"x").unwrap();
        make_read_only(dir.dir(), w.into_dirs(), Some(Path::new(&two))).unwrap();
        staging
            .inner
            .lock()
            .unwrap()
            .trees
            .insert(mv("v1.0.1"), two);
        assert!(d.path().join("moved/2/a/b/f").is_file());
        // Moved from the real staging directory.
        fs::create_dir(cache.join("dest")).unwrap();
        assert!(
            staging
                .place(&mv("v1.0.0"), &cache.join("dest/m@v1.0.0"))
                .unwrap()
        );
        assert!(!d.path().join("moved/1").exists());
        drop(dir);
        // Removed from the real staging directory only.
        drop(staging);
        for n in ["1", "2", "3"] {
            assert_eq!(fs::read(victim.join(n).join("keep")).unwrap(), b"keep");
            let mode = fs::metadata(victim.join(n)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o755, "{n} chmod-ed through the link");
        }
        assert!(
            fs::symlink_metadata(&stage)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(
            fs::read_dir(d.path().join("moved"))
                .unwrap()
                .next()
                .is_none()
        );
        assert!(cache.join("dest/m@v1.0.0").is_dir());
    }

    /// A module path with no slash has its tree right in GOMODCACHE, which
    /// may be a link: the staged tree is moved into what it names.
    #[test]
    fn a_staged_tree_moves_into_a_gomodcache_that_is_a_link() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real");
        fs::create_dir(&real).unwrap();
        let cache = d.path().join("link");
        std::os::unix::fs::symlink(&real, &cache).unwrap();
        let staging = Staging::new(&cache);
        let mv = ModuleVersion {
            path: "example.com".into(),
            version: "v1.0.0".into(),
        };
        let (dir, name) = staging.new_tree_dir().unwrap();
        drop(dir);
        staging.inner.lock().unwrap().trees.insert(mv.clone(), name);
        assert!(
            staging
                .place(&mv, &cache.join("example.com@v1.0.0"))
                .unwrap()
        );
        assert!(real.join("example.com@v1.0.0").is_dir());
    }

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
        update_list(d.path(), &["v1.3.0"], false).unwrap();
        // v1.2.0-!r!c.2 (v1.2.0-RC.2) is left out, as the go command does.
        assert_eq!(
            fs::read_to_string(d.path().join("list")).unwrap(),
            "v1.2.0-rc.1\nv1.2.0\nv1.3.0\nv1.10.0\n"
        );
    }
}
