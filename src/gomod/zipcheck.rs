//! The module zip rules of `golang.org/x/mod/zip` (CheckZip/Unzip), checked
//! while computing the zip's h1 hash in the same single pass.
//!
//! Anything the go command would refuse, and anything that could write
//! outside the module directory, is refused here: names outside
//! `path@version/`, unclean or invalid file paths, symlinks and other
//! non-regular entries, case-fold collisions, misplaced go.mod, oversize
//! content, and sizes that lie (zip bombs).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use super::ModuleVersion;
use super::hash::hash_zip_entries;
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

/// Checks a module zip against the Go zip rules and returns its h1 hash.
/// `where_` names the zip in errors (a layer digest, a cache path).
pub fn check_zip(zip_path: &Path, module: &ModuleVersion, where_: &str) -> Result<ZipSummary> {
    let refuse = |entry: &str, why: String| {
        fail(
            Kind::Integrity,
            format!("module zip for {module} ({where_}) is unsafe or invalid: {entry:?}: {why}"),
        )
    };
    let file = File::open(zip_path).with_context(|| format!("opening {}", zip_path.display()))?;
    let zip_len = file.metadata()?.len();
    if zip_len > MAX_ZIP_BYTES {
        return Err(refuse(
            "",
            format!("zip is {zip_len} bytes, over the {MAX_ZIP_BYTES}-byte limit"),
        ));
    }
    let mut archive = zip::ZipArchive::new(ZipFileReader::new(file)).map_err(|e| {
        fail(
            Kind::Integrity,
            format!("module zip for {module} ({where_}) is not a readable zip: {e}"),
        )
    })?;

    let prefix = format!("{}@{}/", module.path, module.version);
    let mut collisions = Collisions::default();
    let mut hashed: Vec<(String, [u8; 32])> = Vec::with_capacity(archive.len());
    let mut total: u64 = 0;

    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| refuse(&format!("entry {i}"), e.to_string()))?;
        let full = std::str::from_utf8(entry.name_raw())
            .map_err(|_| refuse(&format!("entry {i}"), "name is not UTF-8".into()))?
            .to_string();
        let rel = full
            .strip_prefix(&prefix)
            .ok_or_else(|| refuse(&full, format!("path does not start with {prefix:?}")))?
            .to_string();
        let is_dir = rel.ends_with('/');
        let mode = entry.unix_mode().unwrap_or(0);
        let file_type = mode & 0o170000;
        if file_type == 0o120000 {
            return Err(refuse(&full, "symbolic links are not allowed".into()));
        }
        if file_type != 0 && file_type != 0o100000 && file_type != 0o040000 {
            return Err(refuse(&full, format!("not a regular file (mode {mode:o})")));
        }
        if rel.is_empty() {
            continue;
        }
        let name = rel.strip_suffix('/').unwrap_or(&rel).to_string();
        let name = name.as_str();
        check_file_path(name).map_err(|why| refuse(&full, why))?;
        collisions
            .check(name, is_dir)
            .map_err(|why| refuse(&full, why))?;
        if is_dir || file_type == 0o040000 {
            if !is_dir {
                return Err(refuse(
                    &full,
                    "directory entry without a trailing slash".into(),
                ));
            }
            // Hash1 lists every zip entry, directories included.
            hashed.push((full, Sha256::digest(b"").into()));
            continue;
        }
        let base = name.rsplit('/').next().unwrap_or(name);
        if base.eq_ignore_ascii_case("go.mod") {
            if base != name {
                return Err(refuse(
                    &full,
                    "go.mod file not in module root directory".into(),
                ));
            }
            if name != "go.mod" {
                return Err(refuse(&full, "file is not named go.mod".into()));
            }
        }
        let declared = entry.size();
        let limit = match name {
            "go.mod" => MAX_GOMOD_BYTES,
            "LICENSE" => MAX_LICENSE_BYTES,
            _ => MAX_ZIP_BYTES,
        };
        if declared > limit {
            return Err(refuse(
                &full,
                format!("declared size {declared} is over the {limit}-byte limit"),
            ));
        }
        total = total.saturating_add(declared);
        if total > MAX_ZIP_BYTES {
            return Err(refuse(
                &full,
                format!("total uncompressed size is over the {MAX_ZIP_BYTES}-byte limit"),
            ));
        }
        if entry.encrypted() {
            return Err(refuse(&full, "encrypted entries are not allowed".into()));
        }
        // Read at most one byte past the declared size: a lying header cannot
        // make us inflate without bound.
        let mut hasher = Sha256::new();
        let n = std::io::copy(&mut (&mut entry).take(declared + 1), &mut hasher)
            .map_err(|e| refuse(&full, format!("cannot decompress: {e}")))?;
        if n != declared {
            return Err(refuse(
                &full,
                format!(
                    "declares {declared} bytes but holds {}",
                    if n > declared {
                        "more".to_string()
                    } else {
                        n.to_string()
                    }
                ),
            ));
        }
        hashed.push((full, hasher.finalize().into()));
    }
    Ok(ZipSummary {
        h1: hash_zip_entries(&mut hashed)?,
    })
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

/// `module.CheckFilePath`, as the zip rules apply it to names inside a module.
pub fn check_file_path(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("empty file name".into());
    }
    if name.starts_with('/') {
        return Err("absolute path".into());
    }
    if name.contains("//") {
        return Err("double slash".into());
    }
    if name.ends_with('/') {
        return Err("trailing slash".into());
    }
    for elem in name.split('/') {
        if elem.chars().all(|c| c == '.') {
            return Err(format!(
                "path element {elem:?} is not allowed (unclean path)"
            ));
        }
        if elem.ends_with('.') {
            return Err("trailing dot in path element".into());
        }
        for c in elem.chars() {
            let ok = if c.is_ascii() {
                c.is_ascii_alphanumeric() || "!#$%&()+,-.=@[]^_{}~ ".contains(c)
            } else {
                c.is_alphabetic()
            };
            if !ok {
                return Err(format!("invalid character {c:?} in file name"));
            }
        }
        let short = elem.split('.').next().unwrap_or(elem);
        const WINDOWS: [&str; 22] = [
            "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7",
            "COM8", "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
        ];
        if WINDOWS.iter().any(|w| w.eq_ignore_ascii_case(short)) {
            return Err(format!(
                "{short:?} is disallowed as a path element on Windows"
            ));
        }
    }
    Ok(())
}

/// Case-insensitive collisions, and names that are both file and directory.
#[derive(Default)]
struct Collisions {
    seen: HashMap<String, (String, bool)>,
}

impl Collisions {
    fn check(&mut self, path: &str, is_dir: bool) -> std::result::Result<(), String> {
        let fold = path.to_lowercase();
        if let Some((other, other_dir)) = self.seen.get(&fold) {
            if other != path {
                return Err(format!(
                    "case-insensitive file name collision with {other:?}"
                ));
            }
            if *other_dir != is_dir {
                return Err("entry is both a file and a directory".into());
            }
            if !is_dir {
                return Err("multiple entries for the same file".into());
            }
            return Ok(());
        }
        self.seen.insert(fold, (path.to_string(), is_dir));
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
            ("example.com/m@v1.0.0/../x", "unclean"),
            ("example.com/m@v1.0.0//abs", "absolute path"),
            ("other@v1.0.0/x.go", "does not start"),
            ("example.com/m@v1.0.0/sub/go.mod", "not in module root"),
            ("example.com/m@v1.0.0/a\\b.go", "invalid character"),
            ("example.com/m@v1.0.0/con.go", "Windows"),
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
    }
}
