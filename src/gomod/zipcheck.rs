//! The module zip rules of `golang.org/x/mod/zip` (`CheckZip`, `Unzip`) and
//! the h1 hash the go command takes of a zip (`dirhash.HashZip`), in one
//! pass over the zip's own central directory.
//!
//! The central directory is found as archive/zip finds it (its end record
//! search, zip64, record count) and must be where the zip crate found it,
//! so both read the same records. A zip is accepted exactly when the go
//! command would accept it on download: every central directory entry
//! (duplicates included, which the zip crate would fold into one) must lie
//! under `path@version/` with a
//! valid file path (`module.CheckFilePath`), no two paths may be equal
//! under Unicode case folding (`strings.EqualFold`) nor be both a file and a
//! directory, go.mod may only be `go.mod` at the root, go.mod and LICENSE
//! hold at most 16 MiB, the zip and its total content at most 500 MiB, a
//! directory entry holds nothing, and every file holds exactly the bytes it
//! declares. The module itself must pass `module.Check` with a canonical
//! version. The h1 hash covers exactly the entries `dirhash.HashZip` lists.
//!
//! Deliberately stricter than Go, never looser: a zip with data before it
//! (a self-extracting stub), a central directory the zip crate and this
//! reader see differently, encryption, or a CRC-32 of zero on a non-empty
//! file (Go skips the check, the zip crate does not) is refused.
//!
//! Owns: reading and judging a zip. Must not: write anywhere itself. A
//! caller that extracts ([`check_zip_into`], used by `install`) gets each
//! file's bytes as they are hashed, through a handle the caller opened, so
//! a zip is inflated once; whatever it wrote counts only once this check
//! returns `Ok` and the h1 matches.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use super::ModuleVersion;
use super::hash::hash_zip_entries;
use super::paths;
use super::unicode::{equal_fold, str_to_fold};
use crate::error::{Kind, fail};

/// `zip.MaxZipFile`: the zip file and its total uncompressed content.
pub const MAX_ZIP_BYTES: u64 = 500 << 20;
/// `zip.MaxGoMod` and `zip.MaxLICENSE`.
pub const MAX_GOMOD_BYTES: u64 = 16 << 20;
pub const MAX_LICENSE_BYTES: u64 = 16 << 20;

/// A checked zip: its h1 hash.
#[derive(Debug, Clone)]
pub struct ZipSummary {
    pub h1: String,
}

/// One central directory record: its raw name and where it starts.
struct RawEntry {
    name: Vec<u8>,
    header_at: u64,
}

/// Central directory file header signature and fixed length.
const CENTRAL_SIGNATURE: u32 = 0x0201_4b50;
const CENTRAL_FIXED: usize = 46;
/// Local file header signature.
const LOCAL_SIGNATURE: u32 = 0x0403_4b50;
/// The optional signature of a data descriptor.
const DESCRIPTOR_SIGNATURE: u32 = 0x0807_4b50;

/// Checks a module zip against the Go zip rules and returns its h1 hash.
/// `where_` names the zip in errors (a layer digest, a cache path).
pub fn check_zip(zip_path: &Path, module: &ModuleVersion, where_: &str) -> Result<ZipSummary> {
    check_zip_into(zip_path, module, where_, None)
}

/// Where [`check_zip_into`] writes each file's bytes: called with the
/// file's name relative to the module root (already checked against every
/// name rule, and only after every name of the zip has been), it returns
/// the open file to write them to.
pub type Sink<'a> = &'a mut dyn FnMut(&str) -> Result<File>;

/// Reads and writes entries in chunks this big (installs are syscall-bound).
const COPY_BUFFER: usize = 256 * 1024;

/// [`check_zip`] that also hands every file's content, as it is hashed, to
/// `sink` (extraction in the same pass as the check). The caller must
/// treat what was written as unverified until this returns `Ok` and the
/// h1 is the expected one.
pub fn check_zip_into(
    zip_path: &Path,
    module: &ModuleVersion,
    where_: &str,
    mut sink: Option<Sink>,
) -> Result<ZipSummary> {
    // The module itself is checked below; until then it may hold anything.
    let shown = module.to_string();
    let shown = if shown.chars().any(char::is_control) {
        format!("{shown:?}")
    } else {
        shown
    };
    let bad = |why: String| {
        fail(
            Kind::Integrity,
            format!("module zip for {shown} ({where_}) is unsafe or invalid: {why}"),
        )
    };
    let refuse = |entry: &str, why: String| bad(format!("{entry:?}: {why}"));
    paths::check_module_version(&module.path, &module.version).map_err(&bad)?;

    let file = File::open(zip_path).with_context(|| format!("opening {}", zip_path.display()))?;
    let zip_len = file.metadata()?.len();
    if zip_len > MAX_ZIP_BYTES {
        return Err(bad(format!(
            "module zip file is too large ({zip_len} bytes; limit is {MAX_ZIP_BYTES} bytes)"
        )));
    }
    let mut archive = zip::ZipArchive::new(ZipFileReader::new(file)).map_err(|e| {
        fail(
            Kind::Integrity,
            format!("module zip for {shown} ({where_}) is not a readable zip: {e}"),
        )
    })?;
    if archive.offset() != 0 {
        return Err(bad(format!(
            "{} bytes of other data come before the zip",
            archive.offset()
        )));
    }
    let raw_file =
        File::open(zip_path).with_context(|| format!("opening {}", zip_path.display()))?;
    // Where archive/zip finds the central directory, and how many records
    // its end record claims; the zip crate must have found the same.
    let go_end = find_directory_end(&raw_file, zip_len)
        .map_err(|why| bad(format!("not a valid zip: {why}")))?;
    if go_end.base_offset != 0 {
        return Err(bad(format!(
            "{} bytes of other data come before the zip",
            go_end.base_offset
        )));
    }
    let dir_start = archive.central_directory_start();
    if go_end.directory_offset != dir_start {
        return Err(bad(
            "the central directory reads differently to different zip readers".into(),
        ));
    }
    let raw = read_central_directory(&raw_file, dir_start, zip_len)
        .map_err(|e| bad(format!("cannot read the central directory: {e}")))?;
    // archive/zip compares the count modulo 65536 only.
    if raw.len() as u16 != go_end.records as u16 {
        return Err(bad(format!(
            "the end of central directory record says {} entries, the directory holds {}",
            go_end.records,
            raw.len()
        )));
    }

    // The zip crate keeps one entry per name (the last); every name of ours
    // must map to exactly the record it kept, or the two readers disagree.
    let mut last: HashMap<&[u8], u64> = HashMap::with_capacity(raw.len());
    for r in &raw {
        last.insert(&r.name, r.header_at);
    }
    let mut index: HashMap<&[u8], usize> = HashMap::with_capacity(archive.len());
    for i in 0..archive.len() {
        let e = archive
            .by_index_data(i)
            .map_err(|e| refuse(&format!("entry {i}"), e.to_string()))?;
        let name = e.name_raw();
        if last.get(name) != Some(&e.central_header_start()) {
            return Err(bad(
                "the central directory reads differently to different zip readers".into(),
            ));
        }
        let (name, _) = last.get_key_value(name).expect("looked up above");
        index.insert(name, i);
    }
    if index.len() != last.len() {
        return Err(bad(
            "the central directory reads differently to different zip readers".into(),
        ));
    }

    // zip.CheckZip, entry by entry in central directory order.
    let prefix = format!("{}@{}/", module.path, module.version);
    let mut collisions = Collisions::default();
    let mut total: u64 = 0;
    for r in &raw {
        let display = String::from_utf8_lossy(&r.name);
        let rel = r
            .name
            .strip_prefix(prefix.as_bytes())
            .ok_or_else(|| refuse(&display, format!("path does not have prefix {prefix:?}")))?;
        if rel.is_empty() {
            continue;
        }
        let rel = std::str::from_utf8(rel)
            .map_err(|_| refuse(&display, "malformed file path: invalid UTF-8".into()))?;
        let (name, is_dir) = match rel.strip_suffix('/') {
            Some(dir) => (dir, true),
            None => (rel, false),
        };
        paths::check_file_path(name)
            .map_err(|why| refuse(&display, format!("malformed file path {name:?}: {why}")))?;
        collisions
            .check(name, is_dir)
            .map_err(|why| refuse(&display, why))?;
        if is_dir {
            continue;
        }
        let base = name.rsplit('/').next().unwrap_or(name);
        if equal_fold(base, "go.mod") {
            if base != name {
                return Err(refuse(
                    &display,
                    "go.mod file not in module root directory".into(),
                ));
            }
            if name != "go.mod" {
                return Err(refuse(
                    &display,
                    "go.mod files must have lowercase names".into(),
                ));
            }
        }
        let size = archive
            .by_index_data(index[r.name.as_slice()])
            .map_err(|e| refuse(&display, e.to_string()))?
            .size();
        total = total.saturating_add(size);
        if total > MAX_ZIP_BYTES {
            return Err(bad(format!(
                "total uncompressed size of module contents too large (max size is {MAX_ZIP_BYTES} bytes)"
            )));
        }
        if name == "go.mod" && size > MAX_GOMOD_BYTES {
            return Err(refuse(
                &display,
                format!("go.mod file too large (max size is {MAX_GOMOD_BYTES} bytes)"),
            ));
        }
        if name == "LICENSE" && size > MAX_LICENSE_BYTES {
            return Err(refuse(
                &display,
                format!("LICENSE file too large (max size is {MAX_LICENSE_BYTES} bytes)"),
            ));
        }
    }

    // dirhash.HashZip: every record's name, each with the content of the
    // last record of that name (here all names are unique but directories).
    let mut sums: HashMap<&[u8], [u8; 32]> = HashMap::with_capacity(index.len());
    let mut buffer = if sink.is_some() {
        vec![0; COPY_BUFFER]
    } else {
        vec![0; 64 * 1024]
    };
    for (&name, &i) in &index {
        let display = String::from_utf8_lossy(name);
        let sum = if name.ends_with(b"/") {
            // A directory entry reads as empty, or fails if it declares
            // content (archive/zip's File.Open); only its local header
            // must be there.
            let e = archive
                .by_index_data(i)
                .map_err(|e| refuse(&display, e.to_string()))?;
            if e.size() != 0 {
                return Err(refuse(
                    &display,
                    format!("directory entry declares {} bytes of content", e.size()),
                ));
            }
            check_local_header(&raw_file, e.header_start()).map_err(|why| refuse(&display, why))?;
            Sha256::digest(b"").into()
        } else {
            let e = archive
                .by_index_data(i)
                .map_err(|e| refuse(&display, e.to_string()))?;
            check_data_descriptor(
                &raw_file,
                e.central_header_start(),
                e.header_start(),
                e.compressed_size(),
                e.crc32(),
            )
            .map_err(|why| refuse(&display, why))?;
            let mut entry = archive
                .by_index(i)
                .map_err(|e| refuse(&display, format!("cannot read: {e}")))?;
            if entry.encrypted() {
                return Err(refuse(&display, "encrypted entries are not allowed".into()));
            }
            let declared = entry.size();
            // Read at most one byte past the declared size: a lying header
            // cannot make us inflate without bound.
            let mut hasher = Sha256::new();
            let mut out = match sink.as_mut() {
                Some(sink) => {
                    // Checked above: every name is UTF-8 below the prefix.
                    let rel = name
                        .strip_prefix(prefix.as_bytes())
                        .and_then(|rel| std::str::from_utf8(rel).ok())
                        .ok_or_else(|| refuse(&display, "malformed file path".into()))?;
                    Some(sink(rel)?)
                }
                None => None,
            };
            let n = copy_hashing(
                &mut (&mut entry).take(declared + 1),
                &mut hasher,
                out.as_mut(),
                &mut buffer,
            )
            .map_err(|e| match e {
                CopyError::Read(e) => refuse(&display, format!("cannot decompress: {e}")),
                CopyError::Write(e) => {
                    anyhow::Error::new(e).context(format!("extracting {display} of {shown}"))
                }
            })?;
            if n > declared {
                return Err(refuse(
                    &display,
                    format!("uncompressed size is larger than declared size ({declared} bytes)"),
                ));
            }
            if n < declared {
                return Err(refuse(
                    &display,
                    format!("declares {declared} bytes but holds {n}"),
                ));
            }
            hasher.finalize().into()
        };
        sums.insert(name, sum);
    }
    let mut hashed = Vec::with_capacity(raw.len());
    for r in &raw {
        let name =
            String::from_utf8(r.name.clone()).map_err(|_| bad("a name is not UTF-8".into()))?;
        hashed.push((name, sums[r.name.as_slice()]));
    }
    Ok(ZipSummary {
        h1: hash_zip_entries(&mut hashed)?,
    })
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// Copies `r` into `hasher` and, if given, `out`; returns the bytes read.
fn copy_hashing(
    r: &mut impl Read,
    hasher: &mut Sha256,
    mut out: Option<&mut File>,
    buffer: &mut [u8],
) -> std::result::Result<u64, CopyError> {
    use std::io::Write;
    let mut total = 0;
    loop {
        let mut filled = 0;
        while filled < buffer.len() {
            match r.read(&mut buffer[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CopyError::Read(e)),
            }
        }
        if filled == 0 {
            return Ok(total);
        }
        hasher.update(&buffer[..filled]);
        if let Some(out) = out.as_mut() {
            out.write_all(&buffer[..filled]).map_err(CopyError::Write)?;
        }
        total += filled as u64;
    }
}

/// archive/zip's `findBodyOffset`: a local file header must be at `at`.
fn check_local_header(file: &File, at: u64) -> std::result::Result<(), String> {
    let mut sig = [0u8; 4];
    file.read_exact_at(&mut sig, at)
        .map_err(|e| format!("cannot read its local header: {e}"))?;
    if u32::from_le_bytes(sig) != LOCAL_SIGNATURE {
        return Err("no local file header where the central directory says".into());
    }
    Ok(())
}

/// archive/zip's data descriptor check: an entry flagged as followed by a
/// data descriptor (general purpose bit 3) must have one right after its
/// compressed data, its signature optional, whose CRC-32 equals the
/// central directory's. (The zip crate does not read descriptors.)
fn check_data_descriptor(
    file: &File,
    central_at: u64,
    local_at: u64,
    compressed: u64,
    crc32: u32,
) -> std::result::Result<(), String> {
    let read = |at: u64, buf: &mut [u8]| {
        file.read_exact_at(buf, at)
            .map_err(|e| format!("cannot read its headers: {e}"))
    };
    let mut flags = [0u8; 2];
    read(central_at + 8, &mut flags)?;
    if u16::from_le_bytes(flags) & 0x8 == 0 {
        return Ok(());
    }
    let mut local = [0u8; 30];
    read(local_at, &mut local)?;
    let lens = u64::from(u16::from_le_bytes([local[26], local[27]]))
        + u64::from(u16::from_le_bytes([local[28], local[29]]));
    let at = local_at
        .checked_add(30 + lens)
        .and_then(|a| a.checked_add(compressed))
        .ok_or("data descriptor offset overflows")?;
    // CRC-32 and two 32-bit sizes, after the signature if there is one;
    // all must be there, as archive/zip reads them.
    let mut first = [0u8; 4];
    read(at, &mut first)?;
    let crc_at = if u32::from_le_bytes(first) == DESCRIPTOR_SIGNATURE {
        at + 4
    } else {
        at
    };
    let mut descriptor = [0u8; 12];
    read(crc_at, &mut descriptor)?;
    let stored = u32::from_le_bytes(descriptor[0..4].try_into().expect("4 bytes"));
    if stored != crc32 {
        return Err(format!(
            "checksum error: its data descriptor says CRC-32 {stored:08x}, the central directory {crc32:08x}"
        ));
    }
    Ok(())
}

/// What archive/zip's `readDirectoryEnd` makes of a zip's end records.
struct DirectoryEnd {
    records: u64,
    directory_offset: u64,
    base_offset: i64,
}

/// archive/zip's `readDirectoryEnd`: the last end-of-central-directory
/// signature in the last 1 KiB, else the last 65 KiB (a signature whose
/// comment runs past the end stops the search), the zip64 end record if
/// the 32-bit fields say so, and the base offset of data before the zip.
fn find_directory_end(file: &File, size: u64) -> std::result::Result<DirectoryEnd, String> {
    const END_LEN: usize = 22;
    let read = |at: u64, buf: &mut [u8]| read_end_at(file, at, buf);
    let mut found = None;
    for (i, want) in [1024u64, 65 * 1024].into_iter().enumerate() {
        let len = want.min(size);
        let mut buf = vec![0u8; len as usize];
        read(size - len, &mut buf)?;
        if let Some(p) = find_signature_in_block(&buf) {
            found = Some((size - len + p as u64, buf[p..].to_vec()));
            break;
        }
        if i == 1 || len == size {
            return Err("no end of central directory record".into());
        }
    }
    let (mut end_at, block) = found.expect("loop returns or finds");
    let b = &block[4..END_LEN];
    let u16_at = |i: usize| u64::from(u16::from_le_bytes([b[i], b[i + 1]]));
    let u32_at = |i: usize| u64::from(u32::from_le_bytes(b[i..i + 4].try_into().expect("4")));
    let mut records = u16_at(6);
    let mut dir_size = u32_at(8);
    let mut dir_offset = u32_at(12);
    if records == 0xffff || dir_size == 0xffff || dir_offset == 0xffff_ffff {
        // The zip64 end of central directory locator, just before.
        if let Some(loc_at) = end_at.checked_sub(20) {
            let mut loc = [0u8; 20];
            read(loc_at, &mut loc)?;
            let le32 = |i: usize| u32::from_le_bytes(loc[i..i + 4].try_into().expect("4"));
            if le32(0) == 0x0706_4b50 && le32(4) == 0 && le32(16) == 1 {
                let p = u64::from_le_bytes(loc[8..16].try_into().expect("8"));
                if p > i64::MAX as u64 {
                    // Negative as Go's int64: archive/zip ignores it.
                    return finish(file, end_at, records, dir_size, dir_offset, size);
                }
                let mut end64 = [0u8; 56];
                read(p, &mut end64)?;
                if u32::from_le_bytes(end64[0..4].try_into().expect("4")) != 0x0606_4b50 {
                    return Err("bad zip64 end of central directory record".into());
                }
                let le64 = |i: usize| u64::from_le_bytes(end64[i..i + 8].try_into().expect("8"));
                end_at = p;
                records = le64(32);
                dir_size = le64(40);
                dir_offset = le64(48);
            }
        }
    }
    finish(file, end_at, records, dir_size, dir_offset, size)
}

fn read_end_at(file: &File, at: u64, buf: &mut [u8]) -> std::result::Result<(), String> {
    file.read_exact_at(buf, at)
        .map_err(|e| format!("cannot read its end records: {e}"))
}

/// The tail of `readDirectoryEnd`: ranges and the base offset.
fn finish(
    file: &File,
    end_at: u64,
    records: u64,
    dir_size: u64,
    dir_offset: u64,
    size: u64,
) -> std::result::Result<DirectoryEnd, String> {
    let max = i64::MAX as u64;
    if dir_size > max || dir_offset > max {
        return Err("central directory size or offset out of range".into());
    }
    let mut base = (end_at as i64)
        .wrapping_sub(dir_size as i64)
        .wrapping_sub(dir_offset as i64);
    let start = base.wrapping_add(dir_offset as i64);
    if start < 0 || start as u64 >= size {
        return Err("central directory offset outside the file".into());
    }
    if base > 0 {
        // Go falls back to a base of 0 when a directory header is there.
        let mut sig = [0u8; 4];
        if read_end_at(file, dir_offset, &mut sig).is_ok()
            && u32::from_le_bytes(sig) == CENTRAL_SIGNATURE
            && dir_offset + CENTRAL_FIXED as u64 <= size
        {
            base = 0;
        }
    }
    Ok(DirectoryEnd {
        records,
        directory_offset: (base + dir_offset as i64) as u64,
        base_offset: base,
    })
}

/// archive/zip's `findSignatureInBlock`.
fn find_signature_in_block(b: &[u8]) -> Option<usize> {
    const END_LEN: usize = 22;
    let last = b.len().checked_sub(END_LEN)?;
    for i in (0..=last).rev() {
        if b[i..i + 4] == [b'P', b'K', 5, 6] {
            let n = usize::from(u16::from_le_bytes([b[i + END_LEN - 2], b[i + END_LEN - 1]]));
            if n + END_LEN + i > b.len() {
                return None;
            }
            return Some(i);
        }
    }
    None
}

/// Reads every central directory record from `start` on, as Go's
/// archive/zip does: one after another until the signature stops.
fn read_central_directory(file: &File, start: u64, zip_len: u64) -> io::Result<Vec<RawEntry>> {
    let mut f = BufReader::with_capacity(64 * 1024, file);
    f.seek(SeekFrom::Start(start))?;
    let mut at = start;
    let mut out = Vec::new();
    let mut fixed = [0u8; CENTRAL_FIXED];
    while at + CENTRAL_FIXED as u64 <= zip_len {
        f.read_exact(&mut fixed)?;
        if u32::from_le_bytes(fixed[0..4].try_into().expect("4 bytes")) != CENTRAL_SIGNATURE {
            break;
        }
        let u16_at = |i: usize| u64::from(u16::from_le_bytes([fixed[i], fixed[i + 1]]));
        let (name_len, extra_len, comment_len) = (u16_at(28), u16_at(30), u16_at(32));
        let mut name = vec![0u8; name_len as usize];
        f.read_exact(&mut name)?;
        f.seek_relative(i64::try_from(extra_len + comment_len).expect("small"))?;
        out.push(RawEntry {
            name,
            header_at: at,
        });
        at += CENTRAL_FIXED as u64 + name_len + extra_len + comment_len;
    }
    Ok(out)
}

/// A buffered reader for zip archives. The zip crate seeks to every entry,
/// and `BufReader::seek` drops its buffer each time; entries are mostly read
/// in order, so a seek that lands inside the buffer becomes a pointer move
/// here instead of an `lseek` and a fresh read.
pub struct ZipFileReader {
    inner: BufReader<File>,
    pos: u64,
}

impl ZipFileReader {
    pub fn new(file: File) -> ZipFileReader {
        ZipFileReader {
            inner: BufReader::with_capacity(64 * 1024, file),
            pos: 0,
        }
    }
}

impl Read for ZipFileReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl BufRead for ZipFileReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amount: usize) {
        self.inner.consume(amount);
        self.pos += amount as u64;
    }
}

impl Seek for ZipFileReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => p,
            SeekFrom::Current(d) => self.pos.checked_add_signed(d).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "seek before the start")
            })?,
            SeekFrom::End(_) => {
                self.pos = self.inner.seek(to)?;
                return Ok(self.pos);
            }
        };
        let delta = i64::try_from(target).map_err(|_| io::Error::other("seek past i64"))?
            - i64::try_from(self.pos).map_err(|_| io::Error::other("seek past i64"))?;
        self.inner.seek_relative(delta)?;
        self.pos = target;
        Ok(target)
    }
}

/// `module.CheckFilePath`, as the zip rules apply it to names inside a
/// module (the extraction in `install` checks every name again with it).
pub fn check_file_path(name: &str) -> std::result::Result<(), String> {
    paths::check_file_path(name)
}

/// x/mod's `collisionChecker`: paths equal under `strings.EqualFold`, paths
/// that are both a file and a directory, and files listed twice.
#[derive(Default)]
struct Collisions {
    seen: HashMap<String, (String, bool)>,
}

impl Collisions {
    fn check(&mut self, path: &str, is_dir: bool) -> std::result::Result<(), String> {
        let fold = str_to_fold(path);
        if let Some((other, other_dir)) = self.seen.get(&fold) {
            if other != path {
                return Err(format!(
                    "case-insensitive file name collision: {other:?} and {path:?}"
                ));
            }
            if *other_dir != is_dir {
                return Err(format!("entry {path:?} is both a file and a directory"));
            }
            if !is_dir {
                return Err(format!("multiple entries for file {path:?}"));
            }
        } else {
            self.seen.insert(fold, (path.to_string(), is_dir));
        }
        match path.rfind('/') {
            Some(i) => self.check(&path[..i], true),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use zip::write::SimpleFileOptions;

    fn module() -> ModuleVersion {
        ModuleVersion {
            path: "example.com/m".into(),
            version: "v1.0.0".into(),
        }
    }

    fn make_zip(entries: &[(&str, &[u8])]) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        let mut w = zip::ZipWriter::new(f.reopen().unwrap());
        for (name, data) in entries {
            w.start_file(*name, SimpleFileOptions::default()).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap();
        f
    }

    #[test]
    fn accepts_a_good_zip_and_hashes_it() {
        let z = make_zip(&[
            ("example.com/m@v1.0.0/go.mod", b"module example.com/m\n"),
            ("example.com/m@v1.0.0/a/b.go", b"package a\n"),
        ]);
        let s = check_zip(z.path(), &module(), "test").unwrap();
        assert!(s.h1.starts_with("h1:"));
    }

    #[test]
    fn refuses_bad_names() {
        for (name, want) in [
            ("example.com/m@v1.0.0/../x", "invalid path element \"..\""),
            ("example.com/m@v1.0.0//abs", "empty path element"),
            ("other@v1.0.0/x.go", "does not have prefix"),
            ("example.com/m@v1.0.0/sub/go.mod", "not in module root"),
            ("example.com/m@v1.0.0/GO.MOD", "must have lowercase names"),
            ("example.com/m@v1.0.0/a\\b.go", "invalid char '\\\\'"),
            ("example.com/m@v1.0.0/con.go", "Windows"),
            ("example.com/m@v1.0.0/\u{2160}.go", "invalid char"),
        ] {
            let z = make_zip(&[(name, b"x")]);
            let e = check_zip(z.path(), &module(), "test").unwrap_err();
            assert!(e.to_string().contains(want), "{name}: {e}");
        }
    }

    #[test]
    fn refuses_case_collisions() {
        let z = make_zip(&[
            ("example.com/m@v1.0.0/README", b"x"),
            ("example.com/m@v1.0.0/readme", b"y"),
        ]);
        let e = check_zip(z.path(), &module(), "test").unwrap_err();
        assert!(e.to_string().contains("collision"), "{e}");
        // Go folds s with ſ and k with the Kelvin sign; Rust's lowercase
        // does not.
        for (a, b) in [("s.go", "\u{17f}.go"), ("k.go", "\u{212a}.go")] {
            let z = make_zip(&[
                (&format!("example.com/m@v1.0.0/{a}"), b"x"),
                (&format!("example.com/m@v1.0.0/{b}"), b"y"),
            ]);
            let e = check_zip(z.path(), &module(), "test").unwrap_err();
            assert!(e.to_string().contains("collision"), "{b}: {e}");
        }
    }

    /// Renames every `from` in the zip's bytes to `to` (same length), in
    /// local headers and central directory alike.
    fn rename_in_place(zip: &Path, from: &str, to: &str) {
        assert_eq!(from.len(), to.len());
        let mut bytes = std::fs::read(zip).unwrap();
        let mut i = 0;
        while let Some(at) = bytes[i..]
            .windows(from.len())
            .position(|w| w == from.as_bytes())
        {
            bytes[i + at..i + at + to.len()].copy_from_slice(to.as_bytes());
            i += at + to.len();
        }
        std::fs::write(zip, bytes).unwrap();
    }

    #[test]
    fn refuses_a_hidden_duplicate_entry() {
        let z = make_zip(&[
            ("example.com/m@v1.0.0/go.mod", b"module example.com/m\n"),
            ("example.com/m@v1.0.0/a.go", b"package good\n"),
            ("example.com/m@v1.0.0/b.go", b"package evil\n"),
        ]);
        rename_in_place(z.path(), "/b.go", "/a.go");
        let e = check_zip(z.path(), &module(), "test").unwrap_err();
        assert!(
            format!("{e:#}").contains("multiple entries for file \"a.go\""),
            "{e:#}"
        );
    }

    #[test]
    fn refuses_a_module_whose_path_and_version_disagree() {
        let v2 = ModuleVersion {
            path: "example.com/m/v2".into(),
            version: "v1.0.0".into(),
        };
        let z = make_zip(&[(
            "example.com/m/v2@v1.0.0/go.mod",
            b"module example.com/m/v2\n",
        )]);
        let e = check_zip(z.path(), &v2, "test").unwrap_err();
        assert!(format!("{e:#}").contains("should be v2, not v1"), "{e:#}");
    }

    #[test]
    fn directory_entries_are_hashed_and_must_be_empty() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let mut w = zip::ZipWriter::new(f.reopen().unwrap());
        w.add_directory("example.com/m@v1.0.0/", SimpleFileOptions::default())
            .unwrap();
        w.add_directory("example.com/m@v1.0.0/d/", SimpleFileOptions::default())
            .unwrap();
        w.start_file("example.com/m@v1.0.0/d/x.go", SimpleFileOptions::default())
            .unwrap();
        w.write_all(b"package d\n").unwrap();
        w.finish().unwrap();
        let h1 = check_zip(f.path(), &module(), "test").unwrap().h1;
        let mut want = vec![
            (
                "example.com/m@v1.0.0/".to_string(),
                Sha256::digest(b"").into(),
            ),
            (
                "example.com/m@v1.0.0/d/".to_string(),
                Sha256::digest(b"").into(),
            ),
            (
                "example.com/m@v1.0.0/d/x.go".to_string(),
                Sha256::digest(b"package d\n").into(),
            ),
        ];
        assert_eq!(h1, hash_zip_entries(&mut want).unwrap());
    }
}

#[cfg(test)]
mod stricter_than_go {
    use super::*;
    use std::io::Write;
    use zip::write::SimpleFileOptions;

    fn stored_zip() -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        w.start_file("example.com/m@v1.0.0/a.go", opts).unwrap();
        w.write_all(b"package a\n").unwrap();
        w.finish().unwrap().into_inner()
    }

    fn check(bytes: &[u8]) -> Result<ZipSummary> {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), bytes).unwrap();
        let m = ModuleVersion {
            path: "example.com/m".into(),
            version: "v1.0.0".into(),
        };
        check_zip(f.path(), &m, "test")
    }

    #[test]
    fn control_is_accepted() {
        check(&stored_zip()).unwrap();
    }

    #[test]
    fn data_before_the_zip_is_refused() {
        let mut bytes = b"#!/bin/sh\nexit 0\n".to_vec();
        bytes.extend(stored_zip());
        let e = check(&bytes).unwrap_err();
        assert!(format!("{e:#}").contains("before the zip"), "{e:#}");
    }

    #[test]
    fn zero_crc_on_a_non_empty_file_is_refused() {
        let mut bytes = stored_zip();
        bytes[14..18].copy_from_slice(&[0; 4]);
        let central = bytes.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
        bytes[central + 16..central + 20].copy_from_slice(&[0; 4]);
        let e = check(&bytes).unwrap_err();
        assert!(format!("{e:#}").contains("a.go"), "{e:#}");
    }
}
