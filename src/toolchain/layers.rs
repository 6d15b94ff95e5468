//! Splitting a toolchain into layers, and writing each layer as a
//! deterministic tar + zstd stream.
//!
//! The split: per platform, `bin/` and `pkg/tool/` (all that differs
//! between platforms of one release); the files every build stamps with the
//! version (`VERSION` and the generated `z*.go` files `cmd/distpack` lists)
//! in one small layer; everything else by directory, a directory whose
//! files total at most [`DEFAULT_TARGET_BYTES`] being one unit, and units
//! of one parent packed in name order up to that size. A patch release
//! changes few files, so most of these layers keep their digests.
//!
//! Determinism: names sorted, directory entries for each layer's parents,
//! modes from `cmd/distpack`, uid/gid 0, no user names, a fixed mtime, GNU
//! long names, zstd at a pinned level with a checksum.
//!
//! Owns: the split and the byte format of a layer. Must not: decide where
//! layers are stored or installed.

use std::collections::BTreeMap;
use std::io::{self, Write};

use anyhow::{Context, Result};

use super::tree::{Tree, TreeFile, dir_sizes};

/// Uncompressed bytes a shared layer aims to stay under (measured: see
/// README "Toolchain layers").
pub const DEFAULT_TARGET_BYTES: u64 = 1 << 20;
/// The pinned zstd level: changing it changes every digest. Measured on Go
/// sources and binaries: 12 saves ~2% over 9 at ~6x the time, 19 ~10% at
/// ~40x; 9 packs a toolchain in seconds.
pub const ZSTD_LEVEL: i32 = 9;
/// Every entry's mtime: 2000-01-01T00:00:00Z.
pub const MTIME: u64 = 946_684_800;

/// Files `cmd/distpack` regenerates for each release (version stamps).
const STAMPED: [&str; 8] = [
    "VERSION",
    "src/cmd/go/internal/cfg/zdefaultcc.go",
    "src/go/build/zcgo.go",
    "src/internal/runtime/sys/zversion.go",
    "src/cmd/cgo/zdefaultcc.go",
    "src/cmd/internal/objabi/zbootstrap.go",
    "src/internal/buildcfg/zbootstrap.go",
    "src/cmd/go/internal/cfg/zosarch.go",
];

/// One layer to build: a label for people and the files (indexes into the
/// tree's sorted list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerPlan {
    pub name: String,
    pub files: Vec<usize>,
}

/// The target size: [`DEFAULT_TARGET_BYTES`], or `OCIGO_TOOLCHAIN_LAYER_BYTES`
/// (for measuring the split; changes digests).
pub fn target_bytes() -> u64 {
    std::env::var("OCIGO_TOOLCHAIN_LAYER_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&v| v > 0)
        .unwrap_or(DEFAULT_TARGET_BYTES)
}

/// Splits the tree's files into layers (see the module header).
pub fn plan(files: &[TreeFile], target: u64) -> Vec<LayerPlan> {
    let mut bin = Vec::new();
    let mut tool = Vec::new();
    let mut stamped = Vec::new();
    let mut shared = Vec::new();
    for (i, f) in files.iter().enumerate() {
        if f.name.starts_with("bin/") {
            bin.push(i);
        } else if f.name.starts_with("pkg/tool/") {
            tool.push(i);
        } else if STAMPED.contains(&f.name.as_str()) {
            stamped.push(i);
        } else {
            shared.push(i);
        }
    }
    let mut out = Vec::new();
    for (name, v) in [("bin", bin), ("pkg/tool", tool), ("version", stamped)] {
        if !v.is_empty() {
            out.push(LayerPlan {
                name: name.into(),
                files: v,
            });
        }
    }
    let shared_files: Vec<TreeFile> = shared.iter().map(|&i| files[i].clone()).collect();
    let sizes = dir_sizes(&shared_files);
    // Children of each directory: its files and subdirectories, in name order.
    let mut direct: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut subdirs: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (j, f) in shared_files.iter().enumerate() {
        let parent = f.name.rsplit_once('/').map_or("", |(p, _)| p);
        direct.entry(parent).or_default().push(shared[j]);
    }
    for d in sizes.keys().filter(|d| !d.is_empty()) {
        let parent = d.rsplit_once('/').map_or("", |(p, _)| p);
        subdirs.entry(parent).or_default().push(d);
    }
    let below = |dir: &str| -> Vec<usize> {
        let pre = format!("{dir}/");
        shared_files
            .iter()
            .enumerate()
            .filter(|(_, f)| f.name.starts_with(&pre))
            .map(|(j, _)| shared[j])
            .collect()
    };
    let mut stack = vec![""];
    while let Some(dir) = stack.pop() {
        // Units of this directory: its own files, then each small subdirectory.
        let mut units: Vec<(String, Vec<usize>, u64)> = Vec::new();
        if let Some(fs) = direct.get(dir) {
            let size = fs.iter().map(|&i| files[i].size).sum();
            let label = if dir.is_empty() {
                "/".into()
            } else {
                format!("{dir}/")
            };
            if dir.is_empty() {
                // Root files: their own layer, never packed with others.
                out.push(LayerPlan {
                    name: label,
                    files: fs.clone(),
                });
            } else {
                units.push((label, fs.clone(), size));
            }
        }
        let mut big = Vec::new();
        for &sub in subdirs.get(dir).map(Vec::as_slice).unwrap_or(&[]) {
            let size = sizes[sub];
            if size <= target {
                units.push((sub.to_string(), below(sub), size));
            } else {
                big.push(sub);
            }
        }
        units.sort_by(|a, b| a.0.cmp(&b.0));
        let mut group: Option<(String, usize, Vec<usize>, u64)> = None;
        for (label, fs, size) in units {
            if let Some((_, _, _, gsize)) = &group
                && gsize + size > target
            {
                let (first, n, files, _) = group.take().expect("checked");
                out.push(LayerPlan {
                    name: group_label(&first, n),
                    files,
                });
            }
            match &mut group {
                Some((_, n, gfiles, gsize)) => {
                    *n += 1;
                    gfiles.extend(fs);
                    *gsize += size;
                }
                None => group = Some((label, 1, fs, size)),
            }
        }
        if let Some((first, n, files, _)) = group {
            out.push(LayerPlan {
                name: group_label(&first, n),
                files,
            });
        }
        // Reverse so the stack visits subdirectories in name order.
        stack.extend(big.into_iter().rev());
    }
    for l in &mut out {
        l.files.sort_unstable();
    }
    out
}

fn group_label(first: &str, n: usize) -> String {
    if n == 1 {
        first.to_string()
    } else {
        format!("{first} (+{} more)", n - 1)
    }
}

/// Counts bytes written through it (layers and delta layers).
pub(super) struct Counting<W> {
    pub(super) inner: W,
    pub(super) n: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// What a written layer holds.
#[derive(Debug, Clone, Copy)]
pub struct LayerStats {
    /// Length of the uncompressed tar stream.
    pub tar_bytes: u64,
    pub files: u64,
    pub file_bytes: u64,
}

/// Writes the layer `files` of `tree` to `out` as tar + zstd.
pub fn write_layer(
    tree: &Tree,
    files: &[usize],
    mut zip: Option<&mut zip::ZipArchive<std::fs::File>>,
    out: impl Write,
) -> Result<LayerStats> {
    let mut enc = zstd::Encoder::new(out, ZSTD_LEVEL).context("starting zstd")?;
    enc.include_checksum(true).context("configuring zstd")?;
    enc.include_contentsize(false).context("configuring zstd")?;
    let mut b = tar::Builder::new(Counting { inner: enc, n: 0 });
    b.mode(tar::HeaderMode::Deterministic);
    let mut dirs_done = std::collections::HashSet::new();
    let mut stats = LayerStats {
        tar_bytes: 0,
        files: 0,
        file_bytes: 0,
    };
    for &i in files {
        let f = &tree.files[i];
        // Parent directories first, once each.
        let mut parents = Vec::new();
        let mut d = f.name.as_str();
        while let Some((p, _)) = d.rsplit_once('/') {
            if dirs_done.contains(p) {
                break;
            }
            parents.push(p.to_string());
            d = p;
        }
        for p in parents.into_iter().rev() {
            let mut h = header(tar::EntryType::Directory, 0o755, 0);
            b.append_data(&mut h, format!("{p}/"), io::empty())
                .with_context(|| format!("writing directory {p} into a layer"))?;
            dirs_done.insert(p);
        }
        let mut h = header(tar::EntryType::Regular, f.mode, f.size);
        let r = tree.open(f, zip.as_deref_mut())?;
        // A file that changed size under us would corrupt the stream: the
        // reader is held to the size recorded in the header.
        let mut r = ExactReader {
            inner: r,
            left: f.size,
            name: &f.name,
        };
        b.append_data(&mut h, &f.name, &mut r)
            .with_context(|| format!("writing {} into a layer", f.name))?;
        if r.left != 0 {
            return Err(anyhow::anyhow!("{} changed while it was read", f.name));
        }
        stats.files += 1;
        stats.file_bytes += f.size;
    }
    let counting = b.into_inner().context("finishing a layer")?;
    stats.tar_bytes = counting.n;
    counting.inner.finish().context("finishing zstd")?;
    Ok(stats)
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(MTIME);
    h.set_uid(0);
    h.set_gid(0);
    h
}

struct ExactReader<'a, R> {
    inner: R,
    left: u64,
    name: &'a str,
}

impl<R: io::Read> io::Read for ExactReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} is shorter than it was", self.name),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toolchain::tree::Origin;

    fn file(name: &str, size: u64) -> TreeFile {
        TreeFile {
            name: name.into(),
            mode: 0o644,
            size,
            origin: Origin::Zip(0),
        }
    }

    #[test]
    fn the_split_keeps_platform_version_and_shared_apart() {
        let files = vec![
            file("LICENSE", 10),
            file("VERSION", 10),
            file("bin/go", 100),
            file("pkg/include/a.h", 5),
            file("pkg/tool/linux_amd64/compile", 100),
            file("src/a/x.go", 60),
            file("src/a/y.go", 60),
            file("src/b/x.go", 10),
            file("src/c/d/x.go", 10),
            file("src/internal/buildcfg/zbootstrap.go", 5),
            file("src/z.go", 1),
        ];
        let p = plan(&files, 100);
        let names: Vec<_> = p.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "bin",
                "pkg/tool",
                "version",
                "/",
                "pkg",
                "src/ (+2 more)",
                "src/a/"
            ]
        );
        let mut all: Vec<usize> = p.iter().flat_map(|l| l.files.clone()).collect();
        all.sort();
        assert_eq!(all, (0..files.len()).collect::<Vec<_>>());
        assert_eq!(p, plan(&files, 100), "deterministic");
    }
}
