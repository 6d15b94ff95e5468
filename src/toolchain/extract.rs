//! Installing a toolchain from its layers: as a GOROOT (extracted in
//! parallel into a temporary directory beside the target, checked, then
//! renamed into place), or as the `golang.org/toolchain` module zip that
//! `install` writes into GOMODCACHE.
//!
//! Every layer is read through its digest (a corrupt store copy fails the
//! install) unless the store checked that very blob against its digest
//! earlier in the same run (it was just fetched: `just_verified`), then
//! decompressed no further than the tar length its config
//! declares (zstd bombs), and every entry checked: plain relative names
//! only, regular files and directories only (no links of either kind, no
//! devices or FIFOs), modes 0644/0755, no name twice. Nothing is written
//! outside the temporary directory until all of it passed; on failure the
//! temporary directory is removed and the target is as it was.
//!
//! A delta platform (format v2) is installed the same way: its base layers
//! are first extracted (checked like any layer) into a scratch directory of
//! their own beside the target (or in the store, for the module zip),
//! each delta entry is decoded against its base file there (see `delta`
//! for the bounds and the SHA-256 check), and the scratch directory is
//! removed before anything is renamed into place.
//!
//! Owns: the GOROOT layout and building the module zip. Must not: fetch,
//! or write GOMODCACHE itself (that is `install`). Every file-system call
//! on GOROOT goes through [`crate::fs`].
#![warn(clippy::disallowed_methods)]

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::delta;
use super::format::{LayerInfo, ToolchainConfig};
use super::tree::{self, MODULE_PATH};
use crate::error::{Kind, fail, kind_of};
use crate::oci::{Descriptor, VerifyingReader};

const TMP_PREFIX: &str = ".ocigo-goroot-tmp-";
const OLD_PREFIX: &str = ".ocigo-goroot-old-";
const BASE_PREFIX: &str = ".ocigo-goroot-base-";

/// A layer to read: its descriptor (digest, compressed size), its config
/// entry (tar length) and where the verified blob is on disk.
pub struct LayerFile<'a> {
    pub descriptor: &'a Descriptor,
    pub info: &'a LayerInfo,
    pub path: PathBuf,
    /// The store checked this blob against its digest in this very run
    /// (it was just fetched): read without hashing it a second time.
    pub just_verified: bool,
}

/// Where each base layer was extracted: its digest and its own scratch
/// subdirectory. A delta layer's entries are looked up only in the bases
/// its `deltaFrom` names, in that order.
pub type BaseDirs = [(crate::oci::Digest, PathBuf)];

/// What [`for_each_entry`] calls: name, mode, and a reader for regular
/// files (`None` for directories).
type EntryFn<'f> = dyn FnMut(&str, u32, Option<&mut dyn Read>) -> Result<()> + 'f;

/// Calls `f` for each entry of a layer, after checking it; a delta layer's
/// entries are decoded against the files under `base_dir`.
fn for_each_entry(layer: &LayerFile, bases: Option<&BaseDirs>, f: &mut EntryFn) -> Result<()> {
    if layer.info.is_delta() {
        return for_each_delta_entry(layer, bases, f);
    }
    let what = format!("toolchain layer {}", layer.descriptor.digest);
    let file = crate::fs::open_regular_required(&layer.path, "layer blob")?;
    let blob: Box<dyn Read> = if layer.just_verified {
        Box::new(file)
    } else {
        Box::new(VerifyingReader::new(
            io::BufReader::with_capacity(1 << 16, file),
            layer.descriptor,
            what.clone(),
        ))
    };
    let decoder = zstd::Decoder::with_buffer(io::BufReader::with_capacity(1 << 16, blob))
        .context("starting zstd")?;
    let mut limited = Bounded {
        inner: decoder,
        left: layer.info.tar_bytes,
        what: &what,
    };
    let classify = |e: io::Error| -> anyhow::Error {
        if crate::oci::io_error_is_integrity(&e) {
            crate::oci::classify_io(e, || format!("reading {what}"))
        } else {
            fail(Kind::Integrity, format!("{what} is not a valid layer: {e}"))
        }
    };
    {
        let mut ar = tar::Archive::new(ExtensionGuard::new(&mut limited, &what));
        let mut files = 0u64;
        let mut bytes = 0u64;
        for entry in ar.entries().map_err(classify)? {
            let mut entry = entry.map_err(classify)?;
            let raw = entry.path_bytes().into_owned();
            let name = std::str::from_utf8(&raw).map_err(|_| {
                fail(
                    Kind::Integrity,
                    format!("{what} has a name that is not UTF-8"),
                )
            })?;
            let kind = entry.header().entry_type();
            let mode = entry.header().mode().map_err(classify)? & 0o7777;
            let is_dir = kind.is_dir();
            let name = if is_dir {
                name.strip_suffix('/').unwrap_or(name)
            } else {
                name
            };
            tree::check_name(name).map_err(|m| {
                fail(
                    Kind::Integrity,
                    format!("{what}: entry {name:?} refused: {m}"),
                )
            })?;
            if is_dir {
                f(name, 0o755, None)?;
                continue;
            }
            if !kind.is_file() {
                return Err(fail(
                    Kind::Integrity,
                    format!(
                        "{what}: entry {name:?} is {}, not a regular file or directory: refused",
                        describe(kind)
                    ),
                ));
            }
            if mode != 0o644 && mode != 0o755 {
                return Err(fail(
                    Kind::Integrity,
                    format!("{what}: entry {name:?} has mode {mode:o}, not 0644 or 0755"),
                ));
            }
            let size = entry.header().size().map_err(classify)?;
            files += 1;
            bytes = bytes.saturating_add(size);
            if files > layer.info.files || bytes > layer.info.bytes {
                return Err(fail(
                    Kind::Integrity,
                    format!("{what} holds more than its config declares"),
                ));
            }
            f(name, mode, Some(&mut entry))?;
        }
        if files != layer.info.files || bytes != layer.info.bytes {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "{what} holds {files} files, {bytes} bytes; its config declares {}, {}",
                    layer.info.files, layer.info.bytes
                ),
            ));
        }
    }
    // Read to the end so the digest and the zstd checksum are checked.
    io::copy(&mut limited, &mut io::sink()).map_err(classify)?;
    if limited.left != 0 {
        return Err(fail(
            Kind::Integrity,
            format!("{what} is shorter than its config declares"),
        ));
    }
    let mut rest = limited.inner.finish();
    io::copy(&mut rest, &mut io::sink()).map_err(classify)?;
    Ok(())
}

/// [`for_each_entry`] of a delta layer: an uncompressed tar of zstd frames.
fn for_each_delta_entry(
    layer: &LayerFile,
    bases: Option<&BaseDirs>,
    f: &mut EntryFn,
) -> Result<()> {
    let what = format!("toolchain delta layer {}", layer.descriptor.digest);
    // Its own bases, in its deltaFrom order (validate() checked each is listed).
    let base_dirs: Vec<&Path> = layer
        .info
        .delta_from
        .iter()
        .filter_map(|d| {
            bases?
                .iter()
                .find(|(b, _)| b == d)
                .map(|(_, p)| p.as_path())
        })
        .collect();
    if base_dirs.is_empty() || base_dirs.len() != layer.info.delta_from.len() {
        return Err(fail(
            Kind::Integrity,
            format!("{what} has no base layers to be decoded against"),
        ));
    }
    if layer.descriptor.size != layer.info.tar_bytes {
        return Err(fail(
            Kind::Integrity,
            format!(
                "{what} is {} bytes; its config declares {}",
                layer.descriptor.size, layer.info.tar_bytes
            ),
        ));
    }
    let file = crate::fs::open_regular_required(&layer.path, "layer blob")?;
    let verified = VerifyingReader::new(
        io::BufReader::with_capacity(1 << 16, file),
        layer.descriptor,
        what.clone(),
    );
    let mut limited = Bounded {
        inner: verified,
        left: layer.info.tar_bytes,
        what: &what,
    };
    let classify = |e: io::Error| -> anyhow::Error {
        if crate::oci::io_error_is_integrity(&e) {
            crate::oci::classify_io(e, || format!("reading {what}"))
        } else {
            fail(Kind::Integrity, format!("{what} is not a valid layer: {e}"))
        }
    };
    {
        let mut ar = tar::Archive::new(ExtensionGuard::new(&mut limited, &what));
        let (mut files, mut bytes) = (0u64, 0u64);
        for entry in ar.entries().map_err(classify)? {
            let mut entry = entry.map_err(classify)?;
            let raw = entry.path_bytes().into_owned();
            let name = std::str::from_utf8(&raw).map_err(|_| {
                fail(
                    Kind::Integrity,
                    format!("{what} has a name that is not UTF-8"),
                )
            })?;
            let refuse = |m: &str| {
                fail(
                    Kind::Integrity,
                    format!("{what}: entry {name:?} refused: {m}"),
                )
            };
            tree::check_name(name).map_err(|m| refuse(&m.to_string()))?;
            if !delta::is_platform_file(name) {
                return Err(refuse(
                    "a delta layer holds only files under bin/ and pkg/tool/",
                ));
            }
            let kind = entry.header().entry_type();
            if !kind.is_file() {
                return Err(refuse(&format!("{}, not a regular file", describe(kind))));
            }
            let mode = entry.header().mode().map_err(classify)? & 0o7777;
            if mode != 0o644 && mode != 0o755 {
                return Err(refuse(&format!("mode {mode:o}, not 0644 or 0755")));
            }
            let info = delta::entry_info(&mut entry, name, &what)?;
            files += 1;
            // Saturating: a sum past u64::MAX is over any declared total.
            bytes = bytes.saturating_add(info.size);
            if files > layer.info.files || bytes > layer.info.bytes {
                return Err(fail(
                    Kind::Integrity,
                    format!("{what} holds more than its config declares"),
                ));
            }
            // The base file: the first of the layer's bases (deltaFrom
            // order) that holds the name; there, a regular file in the
            // scratch tree this process made, or the delta is refused.
            let no_base = || refuse("its base layers have no regular file of that name");
            let mut base_path = None;
            let mut base_len = 0;
            if info.uses_base {
                for dir in &base_dirs {
                    let p = dir.join(name);
                    match crate::fs::lstat(&p) {
                        Ok(Some(m)) if m.file_type().is_file() => {
                            base_len = m.len();
                            base_path = Some(p);
                            break;
                        }
                        Ok(Some(_)) => return Err(no_base()),
                        Ok(None) => {}
                        Err(e) if is_not_a_directory(&e) => return Err(no_base()),
                        Err(e) => return Err(e),
                    }
                }
                if base_path.is_none() {
                    return Err(no_base());
                }
            }
            if base_len > delta::MAX_BASE_BYTES {
                return Err(refuse(&format!(
                    "its base file is {base_len} bytes, over the {}-byte cap of delta bases",
                    delta::MAX_BASE_BYTES
                )));
            }
            // Bounded memory whatever the workers: the base and the window
            // of every entry decoding at once fit the decode budget.
            let _reserved = delta::DECODING.reserve(delta::decode_cost(info.size, base_len));
            let base = match &base_path {
                Some(p) => match crate::fs::read_capped(p, delta::MAX_BASE_BYTES)? {
                    Some(b) => Some(b),
                    None => return Err(no_base()),
                },
                None => None,
            };
            let name = name.to_string();
            let mut r =
                delta::decoder(&mut entry, base.as_deref(), &info, &name).map_err(classify)?;
            f(&name, mode, Some(&mut r))?;
            // Every caller reads to the end (where the hash is checked); make sure.
            io::copy(&mut r, &mut io::sink())
                .map_err(|e| fail(Kind::Integrity, format!("{what}: {e}")))?;
        }
        if files != layer.info.files || bytes != layer.info.bytes {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "{what} holds {files} files, {bytes} bytes; its config declares {}, {}",
                    layer.info.files, layer.info.bytes
                ),
            ));
        }
    }
    io::copy(&mut limited, &mut io::sink()).map_err(classify)?;
    if limited.left != 0 {
        return Err(fail(
            Kind::Integrity,
            format!("{what} is shorter than its config declares"),
        ));
    }
    Ok(())
}

/// Whether a path lookup failed because a component is not a directory
/// (a base layer's file where the delta names a file below it).
fn is_not_a_directory(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>()
        .and_then(io::Error::raw_os_error)
        == Some(libc::ENOTDIR)
}

fn describe(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Symlink => "a symbolic link",
        tar::EntryType::Directory => "a directory",
        tar::EntryType::Link => "a hard link",
        tar::EntryType::Char | tar::EntryType::Block => "a device",
        tar::EntryType::Fifo => "a FIFO",
        _ => "a special entry",
    }
}

/// The largest PAX or GNU long-name/long-link entry accepted: names are at
/// most a few KiB, ocigo's own PAX records ~200 bytes.
const MAX_EXTENSION_BYTES: u64 = 64 << 10;

/// Watches the tar stream the `tar` crate reads and refuses an extension
/// entry (PAX `x`/`g`, GNU `L`/`K`) over [`MAX_EXTENSION_BYTES`] before the
/// crate reads it: the crate reads those wholly into memory, so a small
/// compressed layer could otherwise make it allocate gigabytes. GNU sparse
/// entries (`S`, refused later anyway) are refused here, as their extra
/// header blocks would put the tracking out of step. It follows the
/// crate's own bookkeeping: a PAX `size` record sets the next entry's size.
struct ExtensionGuard<'a, R> {
    inner: R,
    what: &'a str,
    header: [u8; 512],
    filled: usize,
    /// Bytes of the current entry's data (padded) still to pass.
    skip: u64,
    /// A PAX entry's data being kept (its unpadded length, what we have).
    pax: Option<(u64, Vec<u8>)>,
    pax_size: Option<u64>,
}

impl<'a, R> ExtensionGuard<'a, R> {
    fn new(inner: R, what: &'a str) -> Self {
        ExtensionGuard {
            inner,
            what,
            header: [0; 512],
            filled: 0,
            skip: 0,
            pax: None,
            pax_size: None,
        }
    }

    fn refuse(&self, m: String) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, format!("{}: {m}", self.what))
    }

    fn header_done(&mut self) -> io::Result<()> {
        self.filled = 0;
        if self.header.iter().all(|&b| b == 0) {
            return Ok(());
        }
        let h = tar::Header::from_byte_slice(&self.header);
        let kind = h.entry_type();
        let size = h.entry_size()?;
        let is_ext = kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink();
        if kind.is_gnu_sparse() {
            return Err(self.refuse("has a sparse entry: refused".into()));
        }
        let size = if is_ext {
            if size > MAX_EXTENSION_BYTES {
                return Err(self.refuse(format!(
                    "has a PAX or long-name entry of {size} bytes, over the {MAX_EXTENSION_BYTES}-byte limit: refused"
                )));
            }
            if kind.is_pax_local_extensions() {
                self.pax = Some((size, Vec::new()));
            }
            size
        } else {
            self.pax_size.take().unwrap_or(size)
        };
        self.skip = size
            .checked_add(511)
            .map(|n| n & !511)
            .ok_or_else(|| self.refuse("declares an entry size past 2^64".into()))?;
        Ok(())
    }

    fn pax_done(&mut self, data: &[u8]) {
        // Records: "<len> <key>=<value>\n"; the crate uses `size` when it
        // parses as a number.
        for rec in data.split(|&b| b == b'\n') {
            let Some(sp) = rec.iter().position(|&b| b == b' ') else {
                continue;
            };
            if let Some(v) = rec[sp + 1..].strip_prefix(b"size=") {
                self.pax_size = std::str::from_utf8(v).ok().and_then(|v| v.parse().ok());
            }
        }
    }

    fn watch(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            if self.skip > 0 {
                let n = data
                    .len()
                    .min(usize::try_from(self.skip).unwrap_or(usize::MAX));
                if let Some((len, kept)) = &mut self.pax {
                    let want = usize::try_from(*len).unwrap_or(usize::MAX) - kept.len();
                    kept.extend_from_slice(&data[..n.min(want)]);
                    if kept.len() as u64 == *len {
                        let (_, kept) = self.pax.take().expect("set");
                        self.pax_done(&kept);
                    }
                }
                self.skip -= n as u64;
                data = &data[n..];
                continue;
            }
            if let Some((0, _)) = self.pax {
                self.pax = None;
            }
            let n = data.len().min(512 - self.filled);
            self.header[self.filled..self.filled + n].copy_from_slice(&data[..n]);
            self.filled += n;
            data = &data[n..];
            if self.filled == 512 {
                self.header_done()?;
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for ExtensionGuard<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.watch(&buf[..n])?;
        Ok(n)
    }
}

/// Stops a decompressed stream at its declared length: one byte more is an
/// error, so a small layer cannot expand without bound.
struct Bounded<'a, R> {
    inner: R,
    left: u64,
    what: &'a str,
}

impl<R: Read> Read for Bounded<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let cap = buf
            .len()
            .min(usize::try_from(self.left.saturating_add(1)).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..cap])?;
        if n as u64 > self.left {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} decompresses to more than its declared tar length",
                    self.what
                ),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// What `install_goroot` did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub struct GorootReport {
    pub goroot: String,
    pub version: String,
    pub platform: String,
    /// `installed`, `already-present` or `replaced`.
    pub action: String,
    pub files: u64,
    pub bytes: u64,
}

/// What is at the target now.
enum Existing {
    Absent,
    Empty,
    Same,
    Other(String),
}

fn existing(dir: &Path, config: &ToolchainConfig) -> Result<Existing> {
    let Some(meta) = crate::fs::lstat(dir)? else {
        return Ok(Existing::Absent);
    };
    if !meta.file_type().is_dir() {
        return Err(crate::fs::wrong_type(
            dir,
            if meta.file_type().is_symlink() {
                "a symbolic link"
            } else {
                "not a directory"
            },
            "a directory (or nothing) to install a GOROOT in",
        ));
    }
    if crate::fs::list_dir(dir)?.is_empty() {
        return Ok(Existing::Empty);
    }
    let version = crate::fs::read_capped(&dir.join("VERSION"), 4096)?.and_then(|b| {
        String::from_utf8_lossy(&b)
            .lines()
            .next()
            .map(str::to_string)
    });
    let tool_dir = dir.join(format!("pkg/tool/{}_{}", config.os, config.arch));
    match version {
        Some(v) if v == config.version && crate::fs::dir_exists(&tool_dir)? => Ok(Existing::Same),
        Some(v) => Ok(Existing::Other(format!(
            "{v} (not {} {})",
            config.version,
            config.platform()
        ))),
        None => Ok(Existing::Other("files that are not a Go toolchain".into())),
    }
}

/// Installs the toolchain into `dir`: every layer extracted (in parallel,
/// `jobs` at once) into `<parent>/.ocigo-goroot-tmp-*`, the result checked
/// (`bin/go`, `VERSION`), then renamed to `dir`. A different toolchain in
/// `dir` is refused (exit 5) unless `force`; then it is replaced.
pub fn install_goroot(
    dir: &Path,
    config: &ToolchainConfig,
    layers: &[LayerFile],
    bases: &[LayerFile],
    force: bool,
    jobs: usize,
) -> Result<GorootReport> {
    let mut report = GorootReport {
        goroot: dir.display().to_string(),
        version: config.version.clone(),
        platform: config.platform(),
        action: "installed".into(),
        files: config.files,
        bytes: config.bytes,
    };
    let state = existing(dir, config)?;
    match &state {
        Existing::Same if !force => {
            report.action = "already-present".into();
            return Ok(report);
        }
        Existing::Other(what) if !force => {
            return Err(crate::error::fail_hint(
                Kind::Conflict,
                format!(
                    "{} already holds {what}; nothing was changed",
                    dir.display()
                ),
                "pass --force to replace it, or choose another --goroot",
            ));
        }
        _ => {}
    }
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut created_parents = Vec::new();
    crate::fs::ensure_dir(parent, Path::new(""), &mut created_parents)?;
    remove_stale_scratch(parent)?;
    let pid = std::process::id();
    let tmp = crate::fs::create_temp_dir(parent, &format!("{TMP_PREFIX}{pid}-"))?;
    let base_prefix = format!("{BASE_PREFIX}{pid}-");
    let result = with_bases(parent, &base_prefix, bases, jobs, |base_dirs| {
        extract_all(&tmp, config, layers, base_dirs, jobs)
    })
    .and_then(|()| {
        crate::fs::chmod_dir(&tmp, 0o755)?;
        match state {
            Existing::Absent => rename(&tmp, dir),
            Existing::Empty => {
                crate::fs::remove_empty_dir(dir)?;
                rename(&tmp, dir)
            }
            Existing::Same | Existing::Other(_) => {
                report.action = "replaced".into();
                let old = parent.join(format!(
                    "{OLD_PREFIX}{}",
                    tmp.file_name()
                        .and_then(|n| n.to_str())
                        .and_then(|n| n.strip_prefix(TMP_PREFIX))
                        .unwrap_or("x")
                ));
                rename(dir, &old)?;
                if let Err(e) = rename(&tmp, dir) {
                    let _ = rename(&old, dir);
                    return Err(e);
                }
                crate::fs::remove_tree(&old)
            }
        }
    });
    if let Err(e) = result {
        let _ = crate::fs::remove_tree(&tmp);
        crate::fs::remove_empty_dirs(&created_parents);
        return Err(e);
    }
    Ok(report)
}

/// Removes the `.ocigo-goroot-{tmp,base}-<pid>-*` directories in `parent`
/// whose process is gone (a crashed install): their names carry the
/// owner's pid; a live one (or a name without a pid) is left alone.
/// `.ocigo-goroot-old-*` (a GOROOT being replaced) is never removed here.
fn remove_stale_scratch(parent: &Path) -> Result<()> {
    for (name, _) in crate::fs::list_dir(parent)? {
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name
            .strip_prefix(TMP_PREFIX)
            .or_else(|| name.strip_prefix(BASE_PREFIX))
        else {
            continue;
        };
        let Some(pid) = rest
            .split_once('-')
            .and_then(|(p, _)| p.parse::<libc::pid_t>().ok())
            .filter(|&p| p > 0)
        else {
            continue;
        };
        if owner_is_alive(pid) {
            continue;
        }
        let path = parent.join(name);
        if matches!(crate::fs::lstat(&path)?, Some(m) if m.is_dir()) {
            crate::fs::remove_tree(&path)?;
        }
    }
    Ok(())
}

/// Whether process `pid` exists (on this host; EPERM means it does).
fn owner_is_alive(pid: libc::pid_t) -> bool {
    // SAFETY: kill with signal 0 sends nothing; it only checks the pid.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    crate::fs::rename(from, to)
}

/// Runs `f` with the base layers (if any) extracted into a new scratch
/// directory in `parent`, each into a subdirectory of its own (so two
/// bases may hold the same name), removed afterwards whatever happened.
fn with_bases<T>(
    parent: &Path,
    prefix: &str,
    bases: &[LayerFile],
    jobs: usize,
    f: impl FnOnce(Option<&BaseDirs>) -> Result<T>,
) -> Result<T> {
    if bases.is_empty() {
        return f(None);
    }
    let scratch = crate::fs::create_temp_dir(parent, prefix)?;
    let dirs: Vec<(crate::oci::Digest, PathBuf)> = bases
        .iter()
        .enumerate()
        .map(|(k, b)| (b.descriptor.digest.clone(), scratch.join(k.to_string())))
        .collect();
    let result = dirs
        .iter()
        .enumerate()
        .try_for_each(|(k, _)| {
            crate::fs::ensure_dir(&scratch, Path::new(&k.to_string()), &mut Vec::new()).map(drop)
        })
        .and_then(|()| {
            let roots: Vec<PathBuf> = dirs.iter().map(|(_, d)| d.clone()).collect();
            extract_each(&roots, bases, None, jobs)
        })
        .and_then(|()| f(Some(&dirs)));
    let removed = crate::fs::remove_tree(&scratch);
    let out = result?;
    removed?;
    Ok(out)
}

/// Extracts every layer into `root` (a directory this process made), in
/// parallel, `jobs` at once; delta layers are decoded against `base_dir`.
pub fn extract_layers(
    root: &Path,
    layers: &[LayerFile],
    bases: Option<&BaseDirs>,
    jobs: usize,
) -> Result<()> {
    let roots = vec![root.to_path_buf(); layers.len()];
    extract_each(&roots, layers, bases, jobs)
}

/// [`extract_layers`], layer `i` into `roots[i]`.
fn extract_each(
    roots: &[PathBuf],
    layers: &[LayerFile],
    bases: Option<&BaseDirs>,
    jobs: usize,
) -> Result<()> {
    // Largest layers first, so one big layer does not finish last alone.
    let mut order: Vec<usize> = (0..layers.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(layers[i].info.tar_bytes));
    let next = AtomicUsize::new(0);
    let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let workers = jobs.clamp(1, layers.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    if first_error.lock().expect("not poisoned").is_some() {
                        return;
                    }
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = order.get(k) else { return };
                    if let Err(e) = extract_layer(&roots[i], &layers[i], bases) {
                        first_error.lock().expect("not poisoned").get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    match first_error.into_inner().expect("not poisoned") {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn extract_all(
    tmp: &Path,
    config: &ToolchainConfig,
    layers: &[LayerFile],
    bases: Option<&BaseDirs>,
    jobs: usize,
) -> Result<()> {
    extract_layers(tmp, layers, bases, jobs)?;
    let exe = if config.os == "windows" { ".exe" } else { "" };
    let go = tmp.join(format!("bin/go{exe}"));
    if !crate::fs::regular_file_exists(&go)? {
        return Err(fail(
            Kind::Integrity,
            format!("the toolchain has no bin/go{exe}: it is not a Go toolchain; refused"),
        ));
    }
    let version = crate::fs::read_capped(&tmp.join("VERSION"), 4096)?.unwrap_or_default();
    let (v, _) = tree::parse_version_file(&String::from_utf8_lossy(&version), "the toolchain")?;
    if v != config.version {
        return Err(fail(
            Kind::Integrity,
            format!(
                "the toolchain's VERSION says {v}, its config {}",
                config.version
            ),
        ));
    }
    Ok(())
}

fn extract_layer(root: &Path, layer: &LayerFile, bases: Option<&BaseDirs>) -> Result<()> {
    let mut made: HashSet<String> = HashSet::new();
    let mut buf = vec![0u8; 1 << 16];
    for_each_entry(layer, bases, &mut |name, mode, content| {
        let Some(r) = content else {
            if made.insert(name.to_string()) {
                make_dir(root, name)?;
            }
            return Ok(());
        };
        if let Some((parent, _)) = name.rsplit_once('/')
            && !made.contains(parent)
        {
            make_dir(root, parent)?;
            made.insert(parent.to_string());
        }
        let path = root.join(name);
        let mut out = crate::fs::create_new(&path, mode).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                fail(
                    Kind::Integrity,
                    format!(
                        "the toolchain holds {name} twice (layer {})",
                        layer.descriptor.digest
                    ),
                )
            } else {
                anyhow::Error::new(e).context(format!("creating {}", path.display()))
            }
        })?;
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(fail(
                        Kind::Integrity,
                        format!("reading {name} from layer {}: {e}", layer.descriptor.digest),
                    ));
                }
            };
            out.write_all(&buf[..n])
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    })
}

/// Makes `root/name` a directory inside the new private tree `root`: one
/// `mkdir` when its parent is there (the common case: no look first);
/// its parents first when it is not; and when something is already there
/// (another layer's worker made it), an `lstat` to be sure it is a real
/// directory. Never follows a link.
fn make_dir(root: &Path, name: &str) -> Result<()> {
    let path = root.join(name);
    match crate::fs::create_dir_new_io(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if crate::fs::dir_exists(&path)? {
                Ok(())
            } else {
                Err(crate::fs::wrong_type(
                    &path,
                    "not a directory",
                    "a directory",
                ))
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => match name.rsplit_once('/') {
            Some((parent, _)) => {
                make_dir(root, parent)?;
                make_dir(root, name)
            }
            None => Err(e).with_context(|| format!("creating {}", path.display())),
        },
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

/// The module form, built: a zip at `path` with its h1 and sha256.
pub struct ModuleZip {
    pub path: PathBuf,
    pub h1: String,
    pub sha256: [u8; 32],
    pub size: u64,
}

/// Builds the `golang.org/toolchain` module zip from the layers into a new
/// temporary file in `tmp_dir`, and checks its h1 against the config's.
/// Base layers (a delta platform) are extracted into a scratch directory
/// in `tmp_dir` while it is built.
pub fn build_module_zip(
    config: &ToolchainConfig,
    layers: &[LayerFile],
    bases: &[LayerFile],
    tmp_dir: &Path,
    jobs: usize,
) -> Result<(tempfile::NamedTempFile, ModuleZip)> {
    with_bases(
        tmp_dir,
        ".ocigo-toolchain-base-",
        bases,
        jobs,
        |base_dirs| module_zip(config, layers, base_dirs, tmp_dir),
    )
}

fn module_zip(
    config: &ToolchainConfig,
    layers: &[LayerFile],
    bases: Option<&BaseDirs>,
    tmp_dir: &Path,
) -> Result<(tempfile::NamedTempFile, ModuleZip)> {
    let prefix = format!("{MODULE_PATH}@{}/", config.module.version);
    let tmp = tempfile::Builder::new()
        .prefix(".ocigo-toolchain-zip-")
        .tempfile_in(tmp_dir)
        .with_context(|| format!("creating a temporary file in {}", tmp_dir.display()))?;
    let mut zw = zip::ZipWriter::new(io::BufWriter::with_capacity(1 << 20, tmp.reopen()?));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(1))
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644);
    let mut entries = Vec::new();
    let mut seen = HashSet::new();
    let mut buf = vec![0u8; 1 << 16];
    for layer in layers {
        for_each_entry(layer, bases, &mut |name, _mode, content| {
            let Some(r) = content else { return Ok(()) };
            let Some(mname) = tree::module_name(name) else {
                return Ok(());
            };
            let full = format!("{prefix}{mname}");
            if !seen.insert(full.clone()) {
                return Err(fail(
                    Kind::Integrity,
                    format!("the toolchain holds {name} twice"),
                ));
            }
            zw.start_file(full.as_str(), options)
                .with_context(|| format!("writing {full} into the module zip"))?;
            let mut h = Sha256::new();
            loop {
                let n = r
                    .read(&mut buf)
                    .map_err(|e| fail(Kind::Integrity, format!("reading {name}: {e}")))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                zw.write_all(&buf[..n]).context("writing the module zip")?;
            }
            entries.push((full, h.finalize().into()));
            Ok(())
        })?;
    }
    let mut w = zw.finish().context("finishing the module zip")?;
    w.flush().context("writing the module zip")?;
    drop(w);
    let h1 = crate::gomod::hash_zip_entries(&mut entries)?;
    if h1 != config.module.hash {
        return Err(fail(
            Kind::Integrity,
            format!(
                "the toolchain's files hash to {h1} as {MODULE_PATH}@{}, not the {} its config records; refused",
                config.module.version, config.module.hash
            ),
        ));
    }
    let f = crate::fs::open_regular_required(tmp.path(), "module zip")?;
    let (sha256, size) = crate::gomod::hash::sha256_reader(io::BufReader::new(f))
        .context("reading the module zip back")?;
    let path = tmp.path().to_path_buf();
    Ok((
        tmp,
        ModuleZip {
            path,
            h1,
            sha256,
            size,
        },
    ))
}

/// Whether an error is one a bad artifact causes (for tests and reports).
pub fn is_integrity(e: &anyhow::Error) -> bool {
    kind_of(e) == Some(Kind::Integrity)
}
