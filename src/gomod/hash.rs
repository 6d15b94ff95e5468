//! The h1 ("Hash1") directory hash of `golang.org/x/mod/sumdb/dirhash`: sort
//! file names, emit `sha256hex(content) + "  " + name + "\n"` for each, and
//! take `"h1:" + base64(sha256(all lines))`.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::error::{Kind, fail};

/// h1 over (name, sha256 of content) pairs, in any order.
pub fn hash_zip_entries(entries: &mut [(String, [u8; 32])]) -> Result<String> {
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut summary = Sha256::new();
    for (name, sum) in entries.iter() {
        if name.contains('\n') {
            return Err(fail(
                Kind::Integrity,
                format!("file name {name:?} contains a newline"),
            ));
        }
        summary.update(hex::encode(sum).as_bytes());
        summary.update(b"  ");
        summary.update(name.as_bytes());
        summary.update(b"\n");
    }
    Ok(format!(
        "h1:{}",
        base64::engine::general_purpose::STANDARD.encode(summary.finalize())
    ))
}

/// The go.sum `/go.mod` hash: h1 over the single file `go.mod`.
pub fn hash_gomod(content: &[u8]) -> String {
    let mut entries = [("go.mod".to_string(), Sha256::digest(content).into())];
    hash_zip_entries(&mut entries).expect("go.mod has no newline in its name")
}

/// Streams a reader through sha256.
pub fn sha256_reader(mut r: impl Read) -> io::Result<([u8; 32], u64)> {
    let mut h = Sha256::new();
    let n = io::copy(&mut r, &mut h)?;
    Ok((h.finalize().into(), n))
}

/// h1 of an extracted module tree, with names `prefix` + relative path, as
/// `dirhash.HashDir(dir, prefix, Hash1)` computes it (what `go mod verify`
/// compares with `.ziphash`).
pub fn hash_dir(dir: &Path, prefix: &str) -> Result<String> {
    let mut entries = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let entry = entry?;
            let p = entry.path();
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push(p);
                continue;
            }
            let rel = p
                .strip_prefix(dir)
                .expect("walked below dir")
                .to_string_lossy()
                .replace('\\', "/");
            let f = File::open(&p).with_context(|| format!("opening {}", p.display()))?;
            let (sum, _) = sha256_reader(f).with_context(|| format!("reading {}", p.display()))?;
            entries.push((format!("{prefix}{rel}"), sum));
        }
    }
    hash_zip_entries(&mut entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_gomod_matches_go() {
        // FORMATS.md section 2 check value.
        assert_eq!(
            hash_gomod(b""),
            "h1:G7mAYYxgmS0lVkHyy2hEOLQCFB0DlQFTMLWggykrydY="
        );
    }

    #[test]
    fn dir_hash_equals_entry_hash() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("go.mod"), "module x\n").unwrap();
        std::fs::write(d.path().join("sub/a.go"), "package sub\n").unwrap();
        let mut entries = vec![
            (
                "x@v1.0.0/sub/a.go".to_string(),
                Sha256::digest(b"package sub\n").into(),
            ),
            (
                "x@v1.0.0/go.mod".to_string(),
                Sha256::digest(b"module x\n").into(),
            ),
        ];
        assert_eq!(
            hash_dir(d.path(), "x@v1.0.0/").unwrap(),
            hash_zip_entries(&mut entries).unwrap()
        );
    }
}
