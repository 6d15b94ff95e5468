//! The one file-system layer for places ocigo does not fully own: OCI layout
//! directories (the local content store included), GOMODCACHE, and later
//! GOROOT. Every read from and write to such a place goes through here, so
//! the rules below hold everywhere without each caller repeating them.
//!
//! Owns the rules:
//! - Never follow a link ocigo did not make. Files are opened with
//!   `O_NOFOLLOW`; directories below a trusted root are checked component by
//!   component with `lstat` (or opened with `O_NOFOLLOW|O_DIRECTORY`); trees
//!   are removed through directory handles (`openat`/`unlinkat`), so a link
//!   inside one is unlinked, never followed; modes change only through
//!   handles of what is about to be removed or was just created.
//! - Never open what is not a regular file: files are opened non-blocking
//!   and checked with `fstat` on the handle before a byte is read (a FIFO
//!   cannot hang a read, `/dev/zero` cannot fill memory).
//! - Bound every read: [`read_capped`] takes the limit that fits the kind of
//!   file.
//! - Write by temp + rename beside the target ([`AtomicFile`]), with an
//!   explicit mode (never tempfile's 0600 by accident) and an explicit
//!   [`Durability`]; new files are created with `O_CREAT|O_EXCL|O_NOFOLLOW`.
//!   The one exception is a small file another program edits in place
//!   under a `flock` (the go command's `$GOPATH/pkg/sumdb/<db>/latest`):
//!   [`Lock::rewrite`] rewrites it in place under the same lock.
//! - A link, FIFO, socket or device (or a directory where a file belongs,
//!   or the other way round) at a path ocigo reads or writes is
//!   [`Kind::Conflict`] (exit 5), named in the message; nothing is written
//!   through it. A file over its size bound is [`Kind::Integrity`] (exit 3).
//! - Errors name their paths.
//!
//! The root a caller passes in (a GOMODCACHE, a layout directory) is trusted
//! as given and may itself be a symbolic link: what is inside it is checked.
//!
//! Must not: know about Go modules, OCI or registries. Callers decide names
//! and layouts; this module only decides how bytes reach the disk.

use std::ffi::{CString, OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};

use crate::error::{Kind, fail};

/// The longest file name Linux file systems take (`NAME_MAX`).
pub const NAME_MAX: usize = 255;
/// The longest path the kernel takes, terminating NUL included (`PATH_MAX`).
pub const PATH_MAX: usize = 4096;
/// Bytes a temporary name adds to its prefix (random part).
pub const TMP_RANDOM_LEN: usize = 12;

/// Whether a write is flushed to stable storage before it counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `fsync` the file before the rename and the directory after it: for
    /// files that are not checked again when read (`index.json`, key files,
    /// commit markers).
    Synced,
    /// No `fsync`: for content verified again when used (store blobs are
    /// re-hashed as they are read) or whose loss only costs a re-run.
    Relaxed,
}

/// What kind of thing a path holds, for messages.
fn describe(ft: &fs::FileType) -> &'static str {
    if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() || ft.is_char_device() {
        "a device"
    } else if ft.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

fn describe_mode(mode: u32) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFLNK => "a symbolic link",
        libc::S_IFDIR => "a directory",
        libc::S_IFIFO => "a FIFO",
        libc::S_IFSOCK => "a socket",
        libc::S_IFBLK | libc::S_IFCHR => "a device",
        libc::S_IFREG => "a regular file",
        _ => "a special file",
    }
}

/// The error for a path that holds the wrong kind of thing.
pub fn wrong_type(path: &Path, found: &str, wanted: &str) -> anyhow::Error {
    fail(
        Kind::Conflict,
        format!(
            "{} is {found}, where ocigo expects {wanted}; ocigo does not follow links or open \
             special files it did not make. Remove it (or find out who put it there) and run \
             the command again",
            path.display()
        ),
    )
}

fn not_regular(path: &Path, found: &str) -> anyhow::Error {
    wrong_type(path, found, "a regular file")
}

/// Opens `path` for reading if it is a regular file: `O_NOFOLLOW` (a link is
/// refused, not followed) and `O_NONBLOCK` (a FIFO does not block the open),
/// then `fstat` on the handle. `Ok(None)` if nothing is there; a link,
/// directory or special file is [`Kind::Conflict`].
pub fn open_regular(path: &Path) -> Result<Option<File>> {
    let opened = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path);
    let file = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(not_regular(path, "a symbolic link"));
        }
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let meta = file
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?;
    if !meta.file_type().is_file() {
        return Err(not_regular(path, describe(&meta.file_type())));
    }
    set_blocking(&file).with_context(|| format!("opening {}", path.display()))?;
    Ok(Some(file))
}

/// [`open_regular`], with "absent" as an error: [`Kind::NotFound`] saying
/// `what` is missing.
pub fn open_regular_required(path: &Path, what: &str) -> Result<File> {
    open_regular(path)?.ok_or_else(|| {
        fail(
            Kind::NotFound,
            format!("{what} {} does not exist", path.display()),
        )
    })
}

fn set_blocking(file: &File) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor owned by `file`.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads a regular file (see [`open_regular`]) of at most `limit` bytes.
/// `Ok(None)` if absent; a bigger file is [`Kind::Integrity`] and is not
/// read past the limit (its size is taken from `fstat`, and the read is
/// capped too, for a file that grows).
pub fn read_capped(path: &Path, limit: u64) -> Result<Option<Vec<u8>>> {
    let Some(file) = open_regular(path)? else {
        return Ok(None);
    };
    read_file_capped(file, path, limit).map(Some)
}

/// [`read_capped`] of a file opened with [`open_regular`].
pub fn read_file_capped(file: File, path: &Path, limit: u64) -> Result<Vec<u8>> {
    let too_big = |size: u64| {
        fail(
            Kind::Integrity,
            format!(
                "{} is {size} bytes, over the {limit}-byte limit for this kind of file",
                path.display()
            ),
        )
    };
    let size = file
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if size > limit {
        return Err(too_big(size));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > limit {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(bytes)
}

/// `lstat`, `None` if absent.
pub fn lstat(path: &Path) -> Result<Option<fs::Metadata>> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Whether `path` holds a regular file (not following a link). Absent is
/// false; a link, directory or special file is [`Kind::Conflict`].
pub fn regular_file_exists(path: &Path) -> Result<bool> {
    match lstat(path)? {
        None => Ok(false),
        Some(m) if m.file_type().is_file() => Ok(true),
        Some(m) => Err(not_regular(path, describe(&m.file_type()))),
    }
}

/// Whether `path` is a real directory (not following a link). Absent is
/// false; anything else is [`Kind::Conflict`].
pub fn dir_exists(path: &Path) -> Result<bool> {
    match lstat(path)? {
        None => Ok(false),
        Some(m) if m.file_type().is_dir() => Ok(true),
        Some(m) => Err(wrong_type(path, describe(&m.file_type()), "a directory")),
    }
}

/// Makes `root/rel` a directory without following any link below `root`:
/// each component of `rel` must be a real directory or absent (then it is
/// created, mode 0777 less the umask, as the go command does). `root` is
/// created with its parents if absent and may itself be a link. Every
/// directory this call created is appended to `created`, outermost first,
/// so a failed caller can remove them again. Returns `root/rel`.
pub fn ensure_dir(root: &Path, rel: &Path, created: &mut Vec<PathBuf>) -> Result<PathBuf> {
    ensure_root(root, created)?;
    let mut dir = root.to_path_buf();
    for c in rel.components() {
        let Component::Normal(name) = c else {
            return Err(anyhow::anyhow!(
                "{} is not a plain relative path below {}",
                rel.display(),
                root.display()
            ));
        };
        dir.push(name);
        loop {
            if dir_exists(&dir)? {
                break;
            }
            match fs::create_dir(&dir) {
                Ok(()) => {
                    created.push(dir.clone());
                    break;
                }
                // Made by someone else meanwhile: check what it is.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
            }
        }
    }
    Ok(dir)
}

/// Creates a trusted root (and its parents) if it is absent, recording what
/// it created.
fn ensure_root(root: &Path, created: &mut Vec<PathBuf>) -> Result<()> {
    if root.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut p = root;
    while fs::symlink_metadata(p).is_err() {
        missing.push(p.to_path_buf());
        match p.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => p = parent,
            _ => break,
        }
    }
    fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    created.extend(missing.into_iter().rev());
    Ok(())
}

/// Removes the directories in `created` (as recorded by [`ensure_dir`])
/// that are still empty, deepest first. Best effort: for cleaning up
/// after a failure.
pub fn remove_empty_dirs(created: &[PathBuf]) {
    // Deepest first, whatever order several threads recorded them in.
    let mut dirs: Vec<&PathBuf> = created.iter().collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in dirs {
        let _ = fs::remove_dir(d);
    }
}

/// Removes the file at `path` if there is one (a link is unlinked, never
/// followed). A directory there is [`Kind::Conflict`]. Returns whether
/// something was removed.
pub fn remove_file(path: &Path) -> Result<bool> {
    match lstat(path)? {
        None => return Ok(false),
        Some(m) if m.file_type().is_dir() => {
            return Err(wrong_type(path, "a directory", "a file"));
        }
        Some(_) => {}
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

/// Renames `from` (something ocigo made) to `to` in the same directory;
/// `rename` never follows a link at either end.
pub fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).with_context(|| format!("moving {} to {}", from.display(), to.display()))
}

/// Removes `path` if it is an empty real directory (`rmdir`: never follows
/// a link, and fails rather than remove anything inside).
pub fn remove_empty_dir(path: &Path) -> Result<()> {
    fs::remove_dir(path).with_context(|| format!("removing the empty directory {}", path.display()))
}

/// Names (and `lstat` types) of the entries of a real directory. A link
/// where the directory belongs is [`Kind::Conflict`]; absent is empty.
pub fn list_dir(path: &Path) -> Result<Vec<(OsString, fs::FileType)>> {
    if !dir_exists(path)? {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in fs::read_dir(path).with_context(|| format!("reading {}", path.display()))? {
        let entry = entry.with_context(|| format!("reading {}", path.display()))?;
        // DirEntry::file_type does not follow links.
        let ft = entry
            .file_type()
            .with_context(|| format!("reading {}", entry.path().display()))?;
        out.push((entry.file_name(), ft));
    }
    Ok(out)
}

// ---------------------------------------------------------------- handles

/// A directory opened with `O_NOFOLLOW|O_DIRECTORY`: operations on its
/// entries go through the handle (`*at` calls), so swapping a path
/// component for a link cannot redirect them.
#[derive(Debug)]
struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl Dir {
    fn open(path: &Path) -> Result<Dir> {
        let c = cstr(path.as_os_str()).with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: a valid NUL-terminated path.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        Dir::from_fd(fd, path.to_path_buf())
    }

    fn from_fd(fd: libc::c_int, path: PathBuf) -> Result<Dir> {
        if fd < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ELOOP) => Err(wrong_type(&path, "a symbolic link", "a directory")),
                Some(libc::ENOTDIR) => {
                    let found = lstat(&path)
                        .ok()
                        .flatten()
                        .map(|m| describe(&m.file_type()))
                        .unwrap_or("not a directory");
                    Err(wrong_type(&path, found, "a directory"))
                }
                _ => Err(e).with_context(|| format!("opening {}", path.display())),
            };
        }
        // SAFETY: a descriptor just returned by open(at), owned by no one else.
        Ok(Dir {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            path,
        })
    }

    fn open_child(&self, name: &OsStr) -> Result<Dir> {
        let path = self.path.join(name);
        let c = cstr(name).with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: a valid directory descriptor and NUL-terminated name.
        let fd = unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        Dir::from_fd(fd, path)
    }

    /// `lstat` of an entry: its `st_mode`.
    fn child_mode(&self, name: &OsStr) -> Result<u32> {
        let path = || self.path.join(name);
        let c = cstr(name).with_context(|| format!("reading {}", path().display()))?;
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid descriptor, name and out-pointer.
        cvt(unsafe {
            libc::fstatat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
        .with_context(|| format!("reading {}", path().display()))?;
        Ok(st.st_mode)
    }

    fn entries(&self) -> Result<Vec<OsString>> {
        // fdopendir takes ownership of the descriptor it is given: a dup.
        // SAFETY: dup of a valid descriptor.
        let dup = cvt(unsafe { libc::fcntl(self.fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) })
            .with_context(|| format!("reading {}", self.path.display()))?;
        // SAFETY: `dup` is a directory descriptor we own; fdopendir takes it.
        let dirp = unsafe { libc::fdopendir(dup) };
        if dirp.is_null() {
            let e = io::Error::last_os_error();
            // SAFETY: fdopendir failed, so `dup` is still ours to close.
            unsafe { libc::close(dup) };
            return Err(e).with_context(|| format!("reading {}", self.path.display()));
        }
        let mut out = Vec::new();
        loop {
            // SAFETY: errno is thread-local; reset to tell end from error.
            unsafe { *libc::__errno_location() = 0 };
            // SAFETY: `dirp` is a valid DIR* until closedir below.
            let ent = unsafe { libc::readdir(dirp) };
            if ent.is_null() {
                let e = io::Error::last_os_error();
                // SAFETY: closes the DIR* (and `dup`) exactly once.
                unsafe { libc::closedir(dirp) };
                if e.raw_os_error().unwrap_or(0) != 0 {
                    return Err(e).with_context(|| format!("reading {}", self.path.display()));
                }
                return Ok(out);
            }
            // SAFETY: d_name is a NUL-terminated array inside a valid dirent.
            let name = unsafe { std::ffi::CStr::from_ptr((*ent).d_name.as_ptr()) };
            let bytes = name.to_bytes();
            if bytes != b"." && bytes != b".." {
                out.push(OsString::from_vec(bytes.to_vec()));
            }
        }
    }

    fn unlink_child(&self, name: &OsStr, dir: bool) -> Result<()> {
        let path = || self.path.join(name);
        let c = cstr(name).with_context(|| format!("removing {}", path().display()))?;
        let flags = if dir { libc::AT_REMOVEDIR } else { 0 };
        // SAFETY: valid descriptor and name.
        cvt(unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), flags) })
            .with_context(|| format!("removing {}", path().display()))?;
        Ok(())
    }

    /// `fchmod` through the handle: only ever on a directory opened without
    /// following links.
    fn chmod(&self, mode: u32) -> Result<()> {
        // SAFETY: valid descriptor.
        cvt(unsafe { libc::fchmod(self.fd.as_raw_fd(), mode as libc::mode_t) })
            .with_context(|| format!("changing the mode of {}", self.path.display()))?;
        Ok(())
    }
}

/// Checks that `path` is absent or a real directory holding only regular
/// files and real directories, all the way down: what a module tree the go
/// command (or ocigo) wrote looks like. Anything else is
/// [`Kind::Conflict`], named.
pub fn check_tree(path: &Path) -> Result<()> {
    if !dir_exists(path)? {
        return Ok(());
    }
    fn walk(dir: &Dir) -> Result<()> {
        for name in dir.entries()? {
            let mode = dir.child_mode(&name)?;
            match mode & libc::S_IFMT {
                libc::S_IFREG => {}
                libc::S_IFDIR => walk(&dir.open_child(&name)?)?,
                _ => {
                    return Err(wrong_type(
                        &dir.path.join(&name),
                        describe_mode(mode),
                        "a regular file or directory",
                    ));
                }
            }
        }
        Ok(())
    }
    walk(&Dir::open(path)?)
}

/// Removes the tree at `path` without following any link in it: every
/// directory is opened with `O_NOFOLLOW`, made writable through its handle
/// (go module trees are 0555), emptied with `unlinkat` (a link inside is
/// removed, not followed) and removed. Absent is fine; a link or file at
/// `path` itself is [`Kind::Conflict`].
pub fn remove_tree(path: &Path) -> Result<()> {
    if !dir_exists(path)? {
        return Ok(());
    }
    empty_tree(&Dir::open(path)?)?;
    fs::remove_dir(path).with_context(|| format!("removing {}", path.display()))
}

/// Sets the mode of a directory ocigo created, through a handle opened
/// without following links.
pub fn chmod_dir(path: &Path, mode: u32) -> Result<()> {
    Dir::open(path)?.chmod(mode)
}

/// Creates a new directory `<parent>/<prefix><random>` (mode 0700 until
/// the caller changes it) and returns its path. `mkdir` never follows a
/// link, and fails rather than reuse an existing name.
pub fn create_temp_dir(parent: &Path, prefix: &str) -> Result<PathBuf> {
    loop {
        let path = parent.join(format!("{prefix}{}", random_suffix()));
        match fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("creating a temporary directory in {}", parent.display())
                });
            }
        }
    }
}

/// Creates the directory `path` (mode 0777 less the umask), which must not
/// exist: for directories inside a new directory ocigo made itself, where
/// nothing needs checking first. `mkdir` never follows a link.
pub fn create_dir_new(path: &Path) -> Result<()> {
    fs::create_dir(path).with_context(|| format!("creating {}", path.display()))
}

/// [`create_dir_new`], with the I/O error as it is (`AlreadyExists`,
/// `NotFound`) for a caller that handles those.
pub fn create_dir_new_io(path: &Path) -> io::Result<()> {
    fs::create_dir(path)
}

/// A private directory ocigo made, held by an exclusive `flock` on the
/// regular file [`DIR_LOCK_FILE`] inside it (a file, not the directory:
/// on NFS a file lock is seen by every host, the way the go command's
/// `lockedfile` relies on), released when dropped.
#[derive(Debug)]
#[must_use = "the lock is released as soon as this guard is dropped"]
pub struct DirLock {
    handle: DirHandle,
    _lock: File,
}

/// The lock file inside a [`DirLock`]ed directory.
pub const DIR_LOCK_FILE: &str = "lock";

impl DirLock {
    /// The locked directory's handle: everything done inside it goes
    /// through this, never through its path again.
    pub fn handle(&self) -> &DirHandle {
        &self.handle
    }
}

/// A directory ocigo made (or checked), held open (`O_NOFOLLOW`) so that
/// everything done inside it is relative to the handle (`mkdirat`,
/// `openat`, `fchmod`, `unlinkat`, `renameat`): renaming the directory
/// away and planting a link or another directory at its path redirects
/// nothing. Relative names given to it are names this run chose (or that
/// the zip rules accepted) below a directory only this run writes; its
/// last component is never followed. Paths are short, so a deep tree in a
/// long GOMODCACHE needs no more than the name the tree ends up at.
#[derive(Debug)]
pub struct DirHandle {
    dir: Dir,
}

impl DirHandle {
    /// Opens the real directory `path` (a link there is [`Kind::Conflict`]).
    pub fn open(path: &Path) -> Result<DirHandle> {
        Ok(DirHandle {
            dir: Dir::open(path)?,
        })
    }

    /// The path it was opened at, for messages only.
    pub fn path(&self) -> &Path {
        &self.dir.path
    }

    fn rel_cstr(&self, rel: &Path, what: &str) -> Result<CString> {
        cstr(rel.as_os_str())
            .with_context(|| format!("{what} {}", self.dir.path.join(rel).display()))
    }

    /// `mkdirat`: a new directory `rel` (mode 0700; never follows a link
    /// at `rel`, fails if anything is there).
    pub fn create_dir(&self, rel: &Path) -> Result<()> {
        let c = self.rel_cstr(rel, "creating")?;
        // SAFETY: valid descriptor and NUL-terminated name.
        cvt(unsafe { libc::mkdirat(self.dir.fd.as_raw_fd(), c.as_ptr(), 0o700) })
            .with_context(|| format!("creating {}", self.dir.path.join(rel).display()))?;
        Ok(())
    }

    /// A new file `rel` for writing, `O_CREAT|O_EXCL|O_NOFOLLOW`, `mode`.
    pub fn create_file(&self, rel: &Path, mode: u32) -> Result<File> {
        let c = self.rel_cstr(rel, "creating")?;
        // SAFETY: valid descriptor and NUL-terminated name.
        let fd = unsafe {
            libc::openat(
                self.dir.fd.as_raw_fd(),
                c.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                mode as libc::c_uint,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error())
                .with_context(|| format!("creating {}", self.dir.path.join(rel).display()));
        }
        // SAFETY: a descriptor just returned by openat, owned by no one else.
        Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Opens the directory `rel` inside (empty: this one) without following
    /// a link at it.
    fn open_rel(&self, rel: &Path) -> Result<Dir> {
        if rel.as_os_str().is_empty() {
            // SAFETY: dup of a valid descriptor.
            let fd = unsafe { libc::fcntl(self.dir.fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
            return Dir::from_fd(fd, self.dir.path.clone());
        }
        self.dir.open_child(rel.as_os_str())
    }

    /// `fchmod` of the directory `rel` inside (empty: this one) through a
    /// handle opened without following links.
    pub fn chmod_dir(&self, rel: &Path, mode: u32) -> Result<()> {
        self.open_rel(rel)?.chmod(mode)
    }

    /// Removes the tree `name` inside as [`remove_tree`] does, through
    /// handles only. Absent is fine.
    pub fn remove_tree(&self, name: &OsStr) -> Result<()> {
        let dir = match self.dir.open_child(name) {
            Ok(dir) => dir,
            Err(e)
                if e.root_cause()
                    .downcast_ref::<io::Error>()
                    .is_some_and(|e| e.kind() == io::ErrorKind::NotFound) =>
            {
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        empty_tree(&dir)?;
        self.dir.unlink_child(name, true)
    }

    /// Empties this directory through its handle (it stays, empty, 0700).
    pub fn empty(&self) -> Result<()> {
        empty_tree(&self.dir)
    }

    /// Removes the entry `name` of this directory (a file, a link or an
    /// empty directory) without following it.
    pub fn unlink(&self, name: &OsStr, dir: bool) -> Result<()> {
        self.dir.unlink_child(name, dir)
    }

    /// `renameat`: moves `name` inside this directory to `to_name` inside
    /// `to` (as rename(2): an empty directory there is replaced, anything
    /// else fails). The raw I/O error is kept (`EXDEV`).
    pub fn rename_to(&self, name: &OsStr, to: &DirHandle, to_name: &OsStr) -> Result<()> {
        let what = || {
            format!(
                "moving {} to {}",
                self.dir.path.join(name).display(),
                to.dir.path.join(to_name).display()
            )
        };
        let from = cstr(name).with_context(what)?;
        let dest = cstr(to_name).with_context(what)?;
        // SAFETY: valid descriptors and NUL-terminated names.
        cvt(unsafe {
            libc::renameat(
                self.dir.fd.as_raw_fd(),
                from.as_ptr(),
                to.dir.fd.as_raw_fd(),
                dest.as_ptr(),
            )
        })
        .with_context(what)?;
        Ok(())
    }
}

/// Makes `dir` writable and removes everything in it, through handles.
fn empty_tree(dir: &Dir) -> Result<()> {
    dir.chmod(0o700)?;
    for name in dir.entries()? {
        let mode = dir.child_mode(&name)?;
        if mode & libc::S_IFMT == libc::S_IFDIR {
            empty_tree(&dir.open_child(&name)?)?;
            dir.unlink_child(&name, true)?;
        } else {
            dir.unlink_child(&name, false)?;
        }
    }
    Ok(())
}

/// [`create_temp_dir`], returned locked ([`DirLock`]) for as long as the
/// caller holds the guard. The lock file is created under another name,
/// locked, then renamed to [`DIR_LOCK_FILE`]: a reaper ([`reap_dead_dir`])
/// never finds the directory with a lock file nobody holds.
pub fn create_locked_temp_dir(parent: &Path, prefix: &str) -> Result<(PathBuf, DirLock)> {
    let path = create_temp_dir(parent, prefix)?;
    let handle = DirHandle::open(&path)?;
    let new = Path::new(".lock-new");
    let c = handle.rel_cstr(new, "creating")?;
    // SAFETY: valid descriptor and NUL-terminated name.
    let fd = unsafe {
        libc::openat(
            handle.dir.fd.as_raw_fd(),
            c.as_ptr(),
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o600 as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("creating {}", path.join(new).display()));
    }
    // SAFETY: a descriptor just returned by openat, owned by no one else.
    let lock = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    flock(&lock, &path.join(new), LockMode::Exclusive, Wait::Block)?;
    handle.rename_to(new.as_os_str(), &handle, OsStr::new(DIR_LOCK_FILE))?;
    Ok((
        path,
        DirLock {
            handle,
            _lock: lock,
        },
    ))
}

/// Removes `parent`'s entry `name` if it is a directory left by a process
/// that is gone: a real directory owned by this user, holding a regular
/// [`DIR_LOCK_FILE`] that nobody holds. Anything else (a link, another
/// user's directory, one without the file, one in use) is left alone:
/// `Ok(false)`. Everything goes through handles.
pub fn reap_dead_dir(parent: &DirHandle, name: &OsStr) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let not_found = |e: &anyhow::Error| {
        e.root_cause()
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::NotFound)
    };
    let dir = match parent.dir.open_child(name) {
        Ok(dir) => dir,
        Err(e) if not_found(&e) => return Ok(false),
        // A link or not a directory: not ours.
        Err(e) if crate::error::kind_of(&e) == Some(Kind::Conflict) => return Ok(false),
        Err(e) => return Err(e),
    };
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat on a valid descriptor into a valid out-pointer.
    cvt(unsafe { libc::fstat(dir.fd.as_raw_fd(), &mut st) })
        .with_context(|| format!("reading {}", dir.path.display()))?;
    // SAFETY: geteuid cannot fail.
    if st.st_uid != unsafe { libc::geteuid() } {
        return Ok(false);
    }
    let lock_path = dir.path.join(DIR_LOCK_FILE);
    let c = cstr(OsStr::new(DIR_LOCK_FILE)).expect("no NUL");
    // SAFETY: valid descriptor and NUL-terminated name.
    let fd = unsafe {
        libc::openat(
            dir.fd.as_raw_fd(),
            c.as_ptr(),
            libc::O_RDWR | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOENT | libc::ELOOP | libc::EISDIR | libc::ENXIO) => Ok(false),
            _ => Err(e).with_context(|| format!("opening {}", lock_path.display())),
        };
    }
    // SAFETY: a descriptor just returned by openat, owned by no one else.
    let lock = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let meta = lock
        .metadata()
        .with_context(|| format!("reading {}", lock_path.display()))?;
    if !meta.file_type().is_file() || meta.uid() != st.st_uid {
        return Ok(false);
    }
    if !flock(&lock, &lock_path, LockMode::Exclusive, Wait::Try)? {
        return Ok(false);
    }
    empty_tree(&dir)?;
    match parent.dir.unlink_child(name, true) {
        Ok(()) => Ok(true),
        // Reaped meanwhile by another process that held the lock first.
        Err(e) if not_found(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Creates a new file (`O_CREAT|O_EXCL|O_NOFOLLOW`) with `mode`, for
/// writing. Anything already at `path`, a dangling link included, is an
/// `AlreadyExists` I/O error.
pub fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    File::options()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// Writes a new file that must not exist yet (key files): `O_EXCL`, `mode`
/// set through the handle, synced. Something already at `path` (a link
/// included) is [`Kind::Conflict`] naming `what`.
pub fn write_new_file(path: &Path, contents: &[u8], mode: u32, what: &str) -> Result<()> {
    let mut file = create_new(path, mode).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            fail(
                Kind::Conflict,
                format!(
                    "{what} file {} already exists; not overwriting it",
                    path.display()
                ),
            )
        } else {
            anyhow::Error::new(e).context(format!("creating {what} file {}", path.display()))
        }
    })?;
    file.set_permissions(fs::Permissions::from_mode(mode))
        .and_then(|()| file.write_all(contents))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {what} file {}", path.display()))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")));
    Ok(())
}

/// A name part that rarely collides: one 64-bit `getrandom` seed per
/// process (not per temporary file, thousands in a pull), then a counter
/// mixed into it by splitmix64, of which 48 bits (12 hex digits,
/// [`TMP_RANDOM_LEN`]) are kept. Not secret and not one-to-one: the 48
/// bits kept may repeat, and whoever sees one name can predict the next.
/// Nothing relies on either: every temporary name is created with
/// `O_EXCL` (`mkdir` fails on an existing name) and the caller retries
/// with the next name, so a guessed or repeated name costs a retry, never
/// a shared file.
fn random_suffix() -> String {
    use rand_core::RngCore;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEED: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(|| rand_core::OsRng.next_u64());
    let mut z = seed.wrapping_add(
        COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    hex::encode(&z.to_be_bytes()[..TMP_RANDOM_LEN / 2])
}

fn sync_dir(dir: &Path) {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    // Best effort: some file systems refuse fsync on directories. Only
    // synced, never read or written, so following a link here is harmless
    // (and a trusted root may be one).
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

// ---------------------------------------------------------------- atomic files

/// A file written beside its target under a temporary name, then renamed
/// over it by [`AtomicFile::commit`]. The temporary file is created with
/// `O_CREAT|O_EXCL|O_NOFOLLOW`; its mode is set through the handle at
/// commit. Dropped without commit, the temporary file is removed.
pub struct AtomicFile {
    file: Option<File>,
    tmp: PathBuf,
    target: PathBuf,
    mode: u32,
}

impl AtomicFile {
    /// Starts writing `target`. The temporary file is
    /// `<dir of target>/<tmp_prefix><random>`: callers choose prefixes
    /// their cleanup recognises.
    pub fn create(target: &Path, tmp_prefix: &str, mode: u32) -> Result<AtomicFile> {
        let dir = target
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        loop {
            let tmp = dir.join(format!("{tmp_prefix}{}", random_suffix()));
            match create_new(&tmp, 0o600) {
                Ok(file) => {
                    return Ok(AtomicFile {
                        file: Some(file),
                        tmp,
                        target: target.to_path_buf(),
                        mode,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("creating a temporary file in {}", dir.display())
                    });
                }
            }
        }
    }

    /// Changes the target before commit (for content whose name is its
    /// digest, known only once written). It must be in the same directory.
    pub fn retarget(&mut self, target: &Path) {
        debug_assert_eq!(target.parent(), self.tmp.parent());
        self.target = target.to_path_buf();
    }

    /// The open temporary file.
    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("not committed")
    }

    /// Sets the mode (through the handle), syncs as `durability` says, and
    /// renames the temporary file over the target. A target that is not a
    /// regular file (a link, a directory, a FIFO...) is [`Kind::Conflict`]
    /// and is left alone.
    pub fn commit(mut self, durability: Durability) -> Result<()> {
        let file = self.file.take().expect("committed once");
        let target = self.target.clone();
        file.set_permissions(fs::Permissions::from_mode(self.mode))
            .with_context(|| format!("writing {}", target.display()))?;
        if durability == Durability::Synced {
            file.sync_all()
                .with_context(|| format!("writing {}", target.display()))?;
        }
        drop(file);
        if let Some(m) = lstat(&target)?
            && !m.file_type().is_file()
        {
            return Err(not_regular(&target, describe(&m.file_type())));
        }
        fs::rename(&self.tmp, &target)
            .with_context(|| format!("moving {} to {}", self.tmp.display(), target.display()))?;
        self.tmp = PathBuf::new();
        if durability == Durability::Synced {
            sync_dir(target.parent().unwrap_or(Path::new(".")));
        }
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file().flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `bytes` to `target` by temp + rename (see [`AtomicFile`]).
pub fn write_atomic(
    target: &Path,
    tmp_prefix: &str,
    bytes: &[u8],
    mode: u32,
    durability: Durability,
) -> Result<()> {
    let mut f = AtomicFile::create(target, tmp_prefix, mode)?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", target.display()))?;
    f.commit(durability)
}

// ---------------------------------------------------------------- locks

/// How [`lock`] locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Any number of shared holders at once (`LOCK_SH`).
    Shared,
    /// One holder, no shared ones (`LOCK_EX`).
    Exclusive,
}

/// Whether [`lock`] waits for a conflicting holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    Block,
    Try,
}

/// A held `flock`, released when dropped. The locked file is open for
/// reading and (unless a shared lock fell back to read-only) writing.
#[derive(Debug)]
#[must_use = "the lock is released as soon as this guard is dropped"]
pub struct Lock {
    file: File,
}

impl Lock {
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The locked file's content, from its start, at most `limit` bytes
    /// ([`Kind::Integrity`] past it). `path` is for messages.
    pub fn read_capped(&self, path: &Path, limit: u64) -> Result<Vec<u8>> {
        use std::io::Seek as _;
        let mut f = &self.file;
        f.seek(io::SeekFrom::Start(0))
            .with_context(|| format!("reading {}", path.display()))?;
        read_file_capped(
            self.file
                .try_clone()
                .with_context(|| format!("reading {}", path.display()))?,
            path,
            limit,
        )
    }

    /// Replaces the locked file's content in place (truncate, write, then
    /// `fsync` if `durability` asks), as the go command's
    /// `lockedfile.Edit` users do: its lock holders and readers keep
    /// seeing the one file they lock (a rename would leave them a stale
    /// one). For small files that change only under this lock.
    /// A file with another hard link is refused ([`Kind::Conflict`]):
    /// writing it would write the other name too.
    pub fn rewrite(&self, path: &Path, data: &[u8], durability: Durability) -> Result<()> {
        use std::io::Seek as _;
        use std::os::unix::fs::MetadataExt as _;
        let meta = self
            .file
            .metadata()
            .with_context(|| format!("reading {}", path.display()))?;
        if meta.nlink() > 1 {
            return Err(wrong_type(
                path,
                &format!("a file with {} hard links", meta.nlink()),
                "a file of its own (one link)",
            ));
        }
        let mut f = &self.file;
        let r = (|| -> io::Result<()> {
            f.set_len(0)?;
            f.seek(io::SeekFrom::Start(0))?;
            f.write_all(data)?;
            if durability == Durability::Synced {
                f.sync_data()?;
            }
            Ok(())
        })();
        r.with_context(|| format!("writing {}", path.display()))
    }
}

/// [`read_capped`] under a shared `flock` (as the go command's
/// `lockedfile.Read`), so a writer holding the exclusive lock is never
/// seen half-way. Creates nothing: `Ok(None)` if absent.
pub fn read_capped_locked(path: &Path, limit: u64) -> Result<Option<Vec<u8>>> {
    let Some(file) = open_regular(path)? else {
        return Ok(None);
    };
    flock(&file, path, LockMode::Shared, Wait::Block)?;
    read_file_capped(file, path, limit).map(Some)
}

/// A shared `flock` on `path`, opened read-only and created not: for a
/// holder that will not write it (the go command's `lockedfile.Read`), so
/// neither a read-only directory nor a file owned by another user stops
/// it. `Ok(None)` if absent; not a regular file: [`Kind::Conflict`].
pub fn lock_existing_shared(path: &Path) -> Result<Option<Lock>> {
    let Some(file) = open_regular(path)? else {
        return Ok(None);
    };
    flock(&file, path, LockMode::Shared, Wait::Block)?;
    Ok(Some(Lock { file }))
}

/// Takes a `flock` on `path`, creating it (mode 0666 less the umask, as the
/// go command does) if absent. With [`Wait::Try`] it returns `Ok(None)` at
/// once if a conflicting lock is held. `flock` locks belong to an open file
/// description, so two opens in one process conflict too; the go command's
/// `lockedfile` uses the same mechanism, so an exclusive lock also excludes
/// a go command working on the same file. The lock file is opened
/// `O_NOFOLLOW|O_NONBLOCK` and must be a regular file ([`Kind::Conflict`]).
pub fn lock(path: &Path, mode: LockMode, wait: Wait) -> Result<Option<Lock>> {
    let file = open_lock_file(path, mode)?;
    Ok(flock(&file, path, mode, wait)?.then_some(Lock { file }))
}

/// A shared lock for a reader of a place that may be on a read-only file
/// system: `Ok(None)` there if the lock file cannot be created (nothing
/// can change such a place, so no lock is needed).
pub fn lock_shared_unless_read_only(path: &Path) -> Result<Option<Lock>> {
    match open_lock_file_io(path, LockMode::Shared) {
        Ok(Ok(file)) => {
            flock(&file, path, LockMode::Shared, Wait::Block)?;
            Ok(Some(Lock { file }))
        }
        Ok(Err(e)) => Err(e),
        Err(e) if e.kind() == io::ErrorKind::ReadOnlyFilesystem => Ok(None),
        Err(e) => Err(e).with_context(|| format!("opening lock file {}", path.display())),
    }
}

fn open_lock_file(path: &Path, mode: LockMode) -> Result<File> {
    match open_lock_file_io(path, mode) {
        Ok(r) => r,
        Err(e) => Err(e).with_context(|| format!("opening lock file {}", path.display())),
    }
}

/// Opens (creating) a lock file. A shared lock needs no write access, so if
/// the file cannot be opened for writing an existing one is opened read-only.
/// The outer error is the open's; the inner one a file of the wrong kind.
fn open_lock_file_io(path: &Path, mode: LockMode) -> io::Result<Result<File>> {
    let flags = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
    let opened = File::options()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o666)
        .custom_flags(flags)
        .open(path);
    let opened = match opened {
        Err(e)
            if mode == LockMode::Shared
                && matches!(
                    e.kind(),
                    io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
                ) =>
        {
            File::options()
                .read(true)
                .custom_flags(flags)
                .open(path)
                .map_err(|_| e)
        }
        other => other,
    };
    let file = match opened {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Ok(Err(not_regular(path, "a symbolic link")));
        }
        Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
            return Ok(Err(not_regular(path, "a directory")));
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Ok(Err(not_regular(path, describe(&meta.file_type()))));
    }
    set_blocking(&file)?;
    Ok(Ok(file))
}

/// `flock`s an open file; false if `wait` is [`Wait::Try`] and the lock is taken.
fn flock(file: &File, path: &Path, mode: LockMode, wait: Wait) -> Result<bool> {
    let mut op = match mode {
        LockMode::Shared => libc::LOCK_SH,
        LockMode::Exclusive => libc::LOCK_EX,
    };
    if wait == Wait::Try {
        op |= libc::LOCK_NB;
    }
    loop {
        // SAFETY: flock on a file descriptor owned by `file`, which outlives the call.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock if wait == Wait::Try => return Ok(false),
            _ => return Err(err).with_context(|| format!("locking {}", path.display())),
        }
    }
}

// ---------------------------------------------------------------- names

/// Checks that every component of `rel` fits `NAME_MAX` once `extra` bytes
/// are added to its last component (a temporary suffix), and that
/// `root/rel` plus `extra` fits `PATH_MAX`. The error is
/// [`Kind::Integrity`], naming `what`: a name this file system cannot hold.
pub fn check_name_lengths(root: &Path, rel: &str, extra: usize, what: &str) -> Result<()> {
    let components: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    for (i, c) in components.iter().enumerate() {
        let len = c.len() + if i + 1 == components.len() { extra } else { 0 };
        if len > NAME_MAX {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "{what}: the name {c:?} is {} bytes (with ocigo's temporary suffix, \
                     {len}), over the {NAME_MAX}-byte limit of file names; it cannot be \
                     written below {}",
                    c.len(),
                    root.display()
                ),
            ));
        }
    }
    let total = root.as_os_str().len() + 1 + rel.len() + extra + 1;
    if total > PATH_MAX {
        return Err(fail(
            Kind::Integrity,
            format!(
                "{what}: the path {}/{rel} would be {total} bytes, over the {PATH_MAX}-byte \
                 path limit",
                root.display()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::kind_of;
    use std::os::unix::fs::MetadataExt;

    fn mkfifo(p: &Path) {
        let c = CString::new(p.as_os_str().as_bytes()).unwrap();
        // SAFETY: valid path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn rewrite_refuses_a_file_with_another_hard_link() {
        let dir = tempfile::tempdir().unwrap();
        let (latest, other) = (dir.path().join("latest"), dir.path().join("other"));
        fs::write(&other, b"someone else's").unwrap();
        fs::hard_link(&other, &latest).unwrap();
        let held = lock(&latest, LockMode::Exclusive, Wait::Block)
            .unwrap()
            .unwrap();
        let e = held
            .rewrite(&latest, b"new head", Durability::Relaxed)
            .unwrap_err();
        assert_eq!(kind_of(&e), Some(Kind::Conflict), "{e:#}");
        assert!(format!("{e:#}").contains("2 hard links"), "{e:#}");
        assert_eq!(fs::read(&other).unwrap(), b"someone else's");
        drop(held);
        fs::remove_file(&other).unwrap();
        let held = lock(&latest, LockMode::Exclusive, Wait::Block)
            .unwrap()
            .unwrap();
        held.rewrite(&latest, b"new head", Durability::Relaxed)
            .unwrap();
        assert_eq!(fs::read(&latest).unwrap(), b"new head");
    }

    #[test]
    fn reads_refuse_links_fifos_and_oversize_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        fs::write(p.join("ok"), b"hello").unwrap();
        assert_eq!(read_capped(&p.join("ok"), 5).unwrap().unwrap(), b"hello");
        assert!(read_capped(&p.join("absent"), 5).unwrap().is_none());
        let e = read_capped(&p.join("ok"), 4).unwrap_err();
        assert_eq!(kind_of(&e), Some(Kind::Integrity), "{e:#}");

        std::os::unix::fs::symlink("/dev/zero", p.join("zero")).unwrap();
        mkfifo(&p.join("fifo"));
        fs::create_dir(p.join("dir")).unwrap();
        for name in ["zero", "fifo", "dir"] {
            let e = read_capped(&p.join(name), 1 << 20).unwrap_err();
            assert_eq!(kind_of(&e), Some(Kind::Conflict), "{name}: {e:#}");
            assert!(format!("{e:#}").contains(name), "{e:#}");
        }
        // A dangling link is not "absent": it is refused.
        std::os::unix::fs::symlink(p.join("nowhere"), p.join("dangling")).unwrap();
        assert!(read_capped(&p.join("dangling"), 10).is_err());
    }

    #[test]
    fn ensure_dir_does_not_follow_links_and_records_what_it_made() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let mut made = Vec::new();
        ensure_dir(&root, Path::new("a/b"), &mut made).unwrap();
        assert_eq!(made, vec![root.clone(), root.join("a"), root.join("a/b")]);
        std::os::unix::fs::symlink(outside.path(), root.join("a/link")).unwrap();
        let mut made2 = Vec::new();
        let e = ensure_dir(&root, Path::new("a/link/c"), &mut made2).unwrap_err();
        assert_eq!(kind_of(&e), Some(Kind::Conflict));
        assert!(made2.is_empty());
        assert!(fs::read_dir(outside.path()).unwrap().next().is_none());
        remove_empty_dirs(&made);
        assert!(
            !root.join("a/b").exists(),
            "an empty directory it made is left"
        );
        assert!(
            root.join("a/link").is_symlink(),
            "a directory not empty was removed"
        );
    }

    #[test]
    fn remove_tree_never_follows_links_nor_chmods_through_them() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("f"), b"x").unwrap();
        fs::set_permissions(outside.path(), fs::Permissions::from_mode(0o750)).unwrap();
        let tree = d.path().join("tree");
        fs::create_dir_all(tree.join("sub")).unwrap();
        fs::write(tree.join("sub/file"), b"y").unwrap();
        std::os::unix::fs::symlink(outside.path(), tree.join("sub/link")).unwrap();
        fs::set_permissions(tree.join("sub"), fs::Permissions::from_mode(0o555)).unwrap();
        fs::set_permissions(&tree, fs::Permissions::from_mode(0o555)).unwrap();
        let e = check_tree(&tree).unwrap_err();
        assert_eq!(kind_of(&e), Some(Kind::Conflict));
        assert!(format!("{e:#}").contains("sub/link"), "{e:#}");
        remove_tree(&tree).unwrap();
        assert!(!tree.exists());
        assert!(outside.path().join("f").exists());
        let mode = fs::metadata(outside.path()).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o750);
        // A link where the tree belongs is refused and left.
        std::os::unix::fs::symlink(outside.path(), &tree).unwrap();
        let e = remove_tree(&tree).unwrap_err();
        assert_eq!(kind_of(&e), Some(Kind::Conflict));
        assert!(tree.is_symlink());
    }

    #[test]
    fn atomic_files_get_their_mode_and_refuse_special_targets() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("t");
        write_atomic(&t, ".tmp-", b"abc", 0o644, Durability::Synced).unwrap();
        assert_eq!(fs::metadata(&t).unwrap().mode() & 0o777, 0o644);
        let fifo = d.path().join("fifo");
        mkfifo(&fifo);
        let e = write_atomic(&fifo, ".tmp-", b"abc", 0o644, Durability::Relaxed).unwrap_err();
        assert_eq!(kind_of(&e), Some(Kind::Conflict));
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn locks_refuse_links_and_fifos() {
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        std::os::unix::fs::symlink(&outside, d.path().join("l.lock")).unwrap();
        let e = lock(&d.path().join("l.lock"), LockMode::Exclusive, Wait::Block).unwrap_err();
        assert_eq!(kind_of(&e), Some(Kind::Conflict));
        assert!(!outside.exists(), "the lock was created through the link");
        mkfifo(&d.path().join("f.lock"));
        let e = lock(&d.path().join("f.lock"), LockMode::Exclusive, Wait::Block).unwrap_err();
        assert_eq!(kind_of(&e), Some(Kind::Conflict));
        let a = lock(&d.path().join("x.lock"), LockMode::Exclusive, Wait::Block).unwrap();
        assert!(a.is_some());
        assert!(
            lock(&d.path().join("x.lock"), LockMode::Exclusive, Wait::Try)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_locked_temp_dir_survives_a_reaper_of_unlocked_ones() {
        let d = tempfile::tempdir().unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            // Removes every directory nobody holds, as a pull does with
            // staging directories of killed pulls.
            s.spawn(|| {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let parent = DirHandle::open(d.path()).unwrap();
                    for (name, _) in list_dir(d.path()).unwrap() {
                        let _ = reap_dead_dir(&parent, &name);
                    }
                }
            });
            // Stops the reaper however this thread ends (a failed
            // assertion must fail the test, not hang it).
            struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
            impl Drop for Stop<'_> {
                fn drop(&mut self) {
                    self.0.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            let _stop = Stop(&stop);
            for _ in 0..500 {
                let (p, lock) = create_locked_temp_dir(d.path(), ".stage-").unwrap();
                fs::write(p.join("f"), b"x").unwrap();
                std::thread::yield_now();
                assert!(p.join("f").exists(), "a held directory was removed");
                drop(lock);
            }
        });
    }

    #[test]
    fn only_dead_locked_dirs_of_this_user_are_reaped() {
        let d = tempfile::tempdir().unwrap();
        let parent = DirHandle::open(d.path()).unwrap();
        let (live, live_lock) = create_locked_temp_dir(d.path(), ".s-").unwrap();
        let (dead, dead_lock) = create_locked_temp_dir(d.path(), ".s-").unwrap();
        fs::create_dir(dead.join("t")).unwrap();
        fs::write(dead.join("t/f"), b"x").unwrap();
        fs::set_permissions(dead.join("t"), fs::Permissions::from_mode(0o555)).unwrap();
        drop(dead_lock);
        // No lock file: not known to be ocigo's.
        let bare = d.path().join(".s-bare");
        fs::create_dir(&bare).unwrap();
        // A link to a dead directory elsewhere: not followed.
        let other = tempfile::tempdir().unwrap();
        let (elsewhere, elsewhere_lock) = create_locked_temp_dir(other.path(), ".s-").unwrap();
        drop(elsewhere_lock);
        std::os::unix::fs::symlink(&elsewhere, d.path().join(".s-link")).unwrap();
        // A lock file that is a link: not opened.
        let linked = d.path().join(".s-linked");
        fs::create_dir(&linked).unwrap();
        std::os::unix::fs::symlink(elsewhere.join(DIR_LOCK_FILE), linked.join(DIR_LOCK_FILE))
            .unwrap();

        let name = |p: &Path| p.file_name().unwrap().to_os_string();
        assert!(!reap_dead_dir(&parent, &name(&live)).unwrap());
        assert!(reap_dead_dir(&parent, &name(&dead)).unwrap());
        assert!(!dead.exists());
        for p in [&bare, &d.path().join(".s-link"), &linked] {
            assert!(
                !reap_dead_dir(&parent, &name(p)).unwrap(),
                "{}",
                p.display()
            );
        }
        assert!(live.join(DIR_LOCK_FILE).is_file());
        assert!(bare.is_dir() && linked.is_dir() && elsewhere.join(DIR_LOCK_FILE).is_file());
        assert!(!reap_dead_dir(&parent, OsStr::new(".s-absent")).unwrap());
        drop(live_lock);
    }

    #[test]
    fn name_lengths() {
        let root = Path::new("/tmp/x");
        check_name_lengths(root, &"a".repeat(255), 0, "m").unwrap();
        let e = check_name_lengths(root, &"a".repeat(250), 20, "m").unwrap_err();
        assert_eq!(kind_of(&e), Some(Kind::Integrity));
        let deep = vec!["b".repeat(200); 25].join("/");
        assert!(check_name_lengths(root, &deep, 0, "m").is_err());
    }
}
