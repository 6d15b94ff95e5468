//! Delta layers: a toolchain's platform files (`bin/`, `pkg/tool/`) stored
//! as zstd frames compressed against the same-named file of an earlier
//! release ("patch-from": the base file is the frame's reference prefix).
//! Every release rebuilds every binary (each embeds its version), so no
//! split of files into layers can share them; their bytes barely change.
//!
//! A delta layer is an uncompressed tar (media type [`MEDIA_TYPE_DELTA`]),
//! one regular-file entry per target file, in name order, no directory
//! entries. An entry's content is one zstd frame (level [`LEVEL`], window
//! log [`WINDOW_LOG`], long-distance matching, content size and checksum
//! on, single-threaded: the same base and tree give the same bytes
//! everywhere). PAX records say what the frame decodes to: `OCIGO.size`
//! (decimal), `OCIGO.sha256` (lowercase hex) and, when the frame was
//! compressed against the base's same-named file, `OCIGO.base=same`;
//! without it the frame is plain zstd (a file the base lacks).
//!
//! Reading: frames whose window exceeds 2^[`WINDOW_LOG`] are refused, a
//! base file over [`MAX_BASE_BYTES`] is refused, the output is stopped one
//! byte past the declared size, and its SHA-256 is checked before the
//! reader reports the end.
//!
//! Owns: the byte format of delta layers. Must not: decide which base an
//! artifact uses, or where files are written (that is `extract`).

use std::io::{self, Read, Write};
use std::path::Path;

use anyhow::{Context, Result};
use sha2::{Digest as _, Sha256};

use super::layers::{LayerStats, MTIME};
use super::tree::Tree;
use crate::error::{Kind, fail};

pub const MEDIA_TYPE_DELTA: &str = "application/vnd.ocigo.toolchain.delta.v1.tar";
/// The pinned zstd level (changing it changes every delta's digest).
/// Measured on go1.27.3 -> go1.27.4 linux/amd64: 6.5 MB for bin/ and
/// pkg/tool/ (31.7 MB as a full layer), 1.5 s of CPU.
pub const LEVEL: i32 = 9;
/// The pinned window (128 MiB): covers the base (the prefix) and the file,
/// for every Go binary so far (the largest, `compile`, is ~30 MB). Without
/// long-distance matching the same pair gives 16.7 MB.
pub const WINDOW_LOG: u32 = 27;
/// A base file larger than this is not used (its file is a plain frame),
/// and a delta naming one is refused: memory stays bounded.
pub const MAX_BASE_BYTES: u64 = 1 << WINDOW_LOG;
const PAX_SIZE: &str = "OCIGO.size";
const PAX_SHA256: &str = "OCIGO.sha256";
const PAX_BASE: &str = "OCIGO.base";

/// What all delta entries being decoded at once may hold in memory (their
/// base files and decoder windows), whatever the number of workers: one
/// entry at the caps ([`MAX_BASE_BYTES`] and a 2^[`WINDOW_LOG`] window)
/// takes it all; Go's binaries (the largest ~30 MB) decode several at once.
pub const DECODE_BUDGET: u64 = 2 * MAX_BASE_BYTES;

/// A count of bytes in flight, shared by the workers that decode deltas.
pub struct Budget {
    left: std::sync::Mutex<u64>,
    freed: std::sync::Condvar,
    total: u64,
}

/// Held while an entry decodes; returns its bytes to the budget on drop.
pub struct Reserved<'a> {
    budget: &'a Budget,
    bytes: u64,
}

impl Budget {
    pub const fn new(total: u64) -> Budget {
        Budget {
            left: std::sync::Mutex::new(total),
            freed: std::sync::Condvar::new(),
            total,
        }
    }

    /// Waits until `bytes` (at most the whole budget) are free and takes them.
    pub fn reserve(&self, bytes: u64) -> Reserved<'_> {
        let bytes = bytes.min(self.total);
        let mut left = self.left.lock().expect("not poisoned");
        while *left < bytes {
            left = self.freed.wait(left).expect("not poisoned");
        }
        *left -= bytes;
        Reserved {
            budget: self,
            bytes,
        }
    }
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        *self.budget.left.lock().expect("not poisoned") += self.bytes;
        self.budget.freed.notify_all();
    }
}

/// The process's budget for decoding delta entries (see [`DECODE_BUDGET`]).
pub static DECODING: Budget = Budget::new(DECODE_BUDGET);

/// What decoding an entry of `size` bytes against a base of `base_len`
/// bytes holds: the base, and a window no larger than the content (whose
/// size the frame header must declare, see [`decoder`]).
pub fn decode_cost(size: u64, base_len: u64) -> u64 {
    size.min(1 << WINDOW_LOG) + base_len.min(MAX_BASE_BYTES)
}

/// Whether a file belongs to the platform part a delta layer may hold.
pub fn is_platform_file(name: &str) -> bool {
    name.starts_with("bin/") || name.starts_with("pkg/tool/")
}

/// Compresses `data` (a reader of exactly `size` bytes) against `base`.
fn encode(base: Option<&[u8]>, data: &mut dyn Read, size: u64) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut enc = match base {
        Some(b) => zstd::stream::Encoder::with_ref_prefix(&mut out, LEVEL, b)?,
        None => zstd::stream::Encoder::new(&mut out, LEVEL)?,
    };
    enc.include_checksum(true)?;
    enc.include_contentsize(true)?;
    enc.window_log(WINDOW_LOG)?;
    enc.long_distance_matching(true)?;
    enc.set_pledged_src_size(Some(size))?;
    let n = io::copy(data, &mut enc)?;
    if n != size {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the file changed while it was read",
        ));
    }
    enc.finish()?;
    Ok(out)
}

/// Writes the delta layer of `files` (all under `bin/` or `pkg/tool/`) to
/// `out`, each against the same-named file under `base_dir` when there is
/// one. Returns its stats: `tar_bytes` is the layer's length.
pub fn write_delta_layer(
    tree: &Tree,
    files: &[usize],
    mut zip: Option<&mut zip::ZipArchive<std::fs::File>>,
    base_dir: &Path,
    out: impl Write,
) -> Result<LayerStats> {
    let mut b = tar::Builder::new(super::layers::Counting { inner: out, n: 0 });
    b.mode(tar::HeaderMode::Deterministic);
    let mut stats = LayerStats {
        tar_bytes: 0,
        files: 0,
        file_bytes: 0,
    };
    for &i in files {
        let f = &tree.files[i];
        if !is_platform_file(&f.name) {
            return Err(anyhow::anyhow!(
                "{} is not under bin/ or pkg/tool/: it has no place in a delta layer",
                f.name
            ));
        }
        let base_path = base_dir.join(&f.name);
        let base = match crate::fs::lstat(&base_path)? {
            Some(m) if m.file_type().is_file() && m.len() <= MAX_BASE_BYTES => {
                crate::fs::read_capped(&base_path, MAX_BASE_BYTES)?
            }
            _ => None,
        };
        // Hashed as it is read: the recorded hash is of the bytes compressed.
        let mut hashing = HashingReader {
            inner: tree.open(f, zip.as_deref_mut())?,
            hasher: Sha256::new(),
        };
        let frame = encode(base.as_deref(), &mut hashing, f.size)
            .with_context(|| format!("compressing {} against its base", f.name))?;
        let sha = hex::encode(hashing.hasher.finalize());
        let size = f.size.to_string();
        let mut pax: Vec<(&str, &[u8])> =
            vec![(PAX_SIZE, size.as_bytes()), (PAX_SHA256, sha.as_bytes())];
        if base.is_some() {
            pax.push((PAX_BASE, b"same"));
        }
        b.append_pax_extensions(pax)
            .with_context(|| format!("writing {} into a delta layer", f.name))?;
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(f.mode);
        h.set_size(frame.len() as u64);
        h.set_mtime(MTIME);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, &f.name, &frame[..])
            .with_context(|| format!("writing {} into a delta layer", f.name))?;
        stats.files += 1;
        stats.file_bytes += f.size;
    }
    let mut counting = b.into_inner().context("finishing a delta layer")?;
    counting.flush().context("writing a delta layer")?;
    stats.tar_bytes = counting.n;
    Ok(stats)
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// What a delta entry's PAX records declare.
pub struct DeltaEntry {
    pub size: u64,
    pub sha256: [u8; 32],
    pub uses_base: bool,
}

/// Reads the PAX records of a delta entry (all required but the base).
pub fn entry_info<R: Read>(
    entry: &mut tar::Entry<R>,
    name: &str,
    what: &str,
) -> Result<DeltaEntry> {
    let bad = |m: &str| fail(Kind::Integrity, format!("{what}: entry {name:?} {m}"));
    let (mut size, mut sha, mut uses_base) = (None, None, false);
    let exts = entry
        .pax_extensions()
        .map_err(|e| bad(&format!("has unreadable PAX records: {e}")))?;
    for ext in exts.into_iter().flatten() {
        let ext = ext.map_err(|e| bad(&format!("has unreadable PAX records: {e}")))?;
        let value = ext.value().unwrap_or("");
        match ext.key().unwrap_or("") {
            PAX_SIZE => {
                size = Some(
                    value
                        .parse::<u64>()
                        .map_err(|_| bad("declares a size that is not a number"))?,
                )
            }
            PAX_SHA256 => {
                let mut h = [0u8; 32];
                hex::decode_to_slice(value, &mut h)
                    .map_err(|_| bad("declares a SHA-256 that is not 64 hex digits"))?;
                sha = Some(h);
            }
            PAX_BASE if value == "same" => uses_base = true,
            PAX_BASE => return Err(bad(&format!("names an unknown base kind {value:?}"))),
            // A record of ours this ocigo does not know may change how the
            // frame decodes: refused, not ignored.
            k if k.starts_with("OCIGO.") => {
                return Err(bad(&format!(
                    "has a PAX record {k:?} this ocigo does not know; upgrade ocigo"
                )));
            }
            _ => {}
        }
    }
    match (size, sha) {
        (Some(size), Some(sha256)) => Ok(DeltaEntry {
            size,
            sha256,
            uses_base,
        }),
        _ => Err(bad(
            "lacks its decoded size or SHA-256 (OCIGO.size, OCIGO.sha256)",
        )),
    }
}

/// Decodes one frame into exactly the declared bytes: one byte more or
/// less, a window over the cap, or another SHA-256 is an error (of kind
/// `InvalidData`) before the reader reports its end.
///
/// The frame header must declare its content size, equal to `OCIGO.size`:
/// the decoder then sizes its window by it, and a frame cannot run on
/// (RLE blocks expand ~100000x) past what the layer's config accounts for.
pub fn decoder<'a, R: Read + 'a>(
    mut frame: R,
    base: Option<&'a [u8]>,
    info: &DeltaEntry,
    name: &str,
) -> io::Result<impl Read + 'a> {
    let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidData, m);
    // A frame header is at most 18 bytes (ZSTD_FRAMEHEADERSIZE_MAX).
    let mut head = [0u8; 18];
    let mut n = 0;
    while n < head.len() {
        match frame.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    match zstd::zstd_safe::get_frame_content_size(&head[..n]) {
        Ok(Some(size)) if size == info.size => {}
        Ok(Some(size)) => {
            return Err(invalid(format!(
                "{name}: its frame declares {size} bytes, its delta entry {} (OCIGO.size)",
                info.size
            )));
        }
        Ok(None) => {
            return Err(invalid(format!(
                "{name}: its frame does not declare its content size; delta frames must"
            )));
        }
        Err(_) => {
            return Err(invalid(format!(
                "{name} is not a valid delta frame: its header is unreadable"
            )));
        }
    }
    let frame = io::Cursor::new(head[..n].to_vec()).chain(frame);
    let r = io::BufReader::with_capacity(1 << 16, frame);
    let mut dec = match base {
        Some(b) => zstd::stream::read::Decoder::with_ref_prefix(r, b)?,
        None => zstd::stream::read::Decoder::with_buffer(r)?,
    };
    dec.window_log_max(WINDOW_LOG)?;
    Ok(Checked {
        inner: dec,
        left: info.size,
        want: info.sha256,
        hasher: Sha256::new(),
        name: name.to_string(),
        done: false,
    })
}

struct Checked<R> {
    inner: R,
    left: u64,
    want: [u8; 32],
    hasher: Sha256,
    name: String,
    done: bool,
}

impl<R: Read> Checked<R> {
    fn read_inner(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is not a valid delta frame (frames with a window over 2^{WINDOW_LOG} bytes are refused): {e}",
                    self.name
                ),
            )
        })
    }
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidData, m);
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut one = [0u8; 1];
            if self.read_inner(&mut one)? != 0 {
                return Err(invalid(format!(
                    "{} decodes to more bytes than its delta declares",
                    self.name
                )));
            }
            let got: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
            if got != self.want {
                return Err(invalid(format!(
                    "{} decodes to bytes whose SHA-256 is not the one its delta records",
                    self.name
                )));
            }
            self.done = true;
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.read_inner(&mut buf[..want])?;
        if n == 0 {
            return Err(invalid(format!(
                "{} decodes to fewer bytes than its delta declares",
                self.name
            )));
        }
        self.hasher.update(&buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(data: &[u8]) -> DeltaEntry {
        DeltaEntry {
            size: data.len() as u64,
            sha256: Sha256::digest(data).into(),
            uses_base: true,
        }
    }

    fn decode(frame: &[u8], base: Option<&[u8]>, i: &DeltaEntry) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        decoder(frame, base, i, "f")?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn a_frame_decodes_only_to_the_declared_bytes_against_its_base() {
        let base: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i * 7919).to_le_bytes())
            .collect();
        let mut new = base.clone();
        new[1000..1010].copy_from_slice(b"go1.27.4!!");
        let frame = encode(Some(&base), &mut &new[..], new.len() as u64).unwrap();
        let plain = encode(None, &mut &new[..], new.len() as u64).unwrap();
        assert!(
            frame.len() * 20 < plain.len(),
            "{} vs {}",
            frame.len(),
            plain.len()
        );
        assert_eq!(
            frame,
            encode(Some(&base), &mut &new[..], new.len() as u64).unwrap(),
            "deterministic"
        );
        assert_eq!(decode(&frame, Some(&base), &info(&new)).unwrap(), new);
        assert_eq!(decode(&plain, None, &info(&new)).unwrap(), new);
        // Another base, a wrong hash, a shorter or longer declared size.
        let mut other = base.clone();
        other[5000] ^= 1;
        assert!(decode(&frame, Some(&other), &info(&new)).is_err());
        let mut i = info(&new);
        i.sha256[0] ^= 1;
        assert!(decode(&frame, Some(&base), &i).is_err());
        for size in [new.len() as u64 - 1, new.len() as u64 + 1] {
            let mut i = info(&new);
            i.size = size;
            assert!(decode(&frame, Some(&base), &i).is_err(), "{size}");
        }
        // A short size mismatch in the wrong encoder call: size must match.
        assert!(encode(None, &mut &new[..10], 11).is_err());
    }

    /// A frame of `data` with a 1 KiB window and its content size, whose
    /// header then claims a window of 2^`window_log`.
    pub(crate) fn frame_claiming_window(data: &[u8], window_log: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = zstd::stream::Encoder::new(&mut out, 1).unwrap();
        enc.window_log(10).unwrap();
        enc.include_contentsize(true).unwrap();
        enc.set_pledged_src_size(Some(data.len() as u64)).unwrap();
        enc.write_all(data).unwrap();
        enc.finish().unwrap();
        // Magic (4 bytes), then the frame header descriptor: not single
        // segment, so the window descriptor follows (exponent = log - 10).
        assert_eq!(out[4] & 0x20, 0, "not single segment");
        out[5] = ((window_log - 10) as u8) << 3;
        out
    }

    #[test]
    fn a_frame_with_a_window_over_the_cap_is_refused() {
        let data: Vec<u8> = (0..1u32 << 14)
            .flat_map(|i| (i * 31).to_le_bytes())
            .collect();
        let ok = frame_claiming_window(&data, WINDOW_LOG);
        assert_eq!(decode(&ok, None, &info(&data)).unwrap(), data);
        let out = frame_claiming_window(&data, WINDOW_LOG + 1);
        let err = decode(&out, None, &info(&data)).unwrap_err();
        assert!(
            err.to_string().contains("Frame requires too much memory"),
            "{err}"
        );
    }

    #[test]
    fn the_decode_budget_holds_back_what_does_not_fit() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let budget = Budget::new(100);
        let (held, peak) = (AtomicU64::new(0), AtomicU64::new(0));
        std::thread::scope(|s| {
            for cost in [60u64, 60, 30, 500, 10, 40] {
                let (budget, held, peak) = (&budget, &held, &peak);
                s.spawn(move || {
                    let r = budget.reserve(cost);
                    let now = held.fetch_add(r.bytes, Ordering::SeqCst) + r.bytes;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    held.fetch_sub(r.bytes, Ordering::SeqCst);
                });
            }
        });
        let peak = peak.into_inner();
        assert!(peak <= 100 && peak > 0, "{peak}");
        assert_eq!(*budget.left.lock().unwrap(), 100, "all returned");
        assert_eq!(decode_cost(10, 5), 15);
        assert_eq!(decode_cost(u64::MAX, u64::MAX), DECODE_BUDGET);
    }

    #[test]
    fn a_frame_must_declare_the_entry_s_size() {
        let data = vec![7u8; 1 << 16];
        let mut out = Vec::new();
        let mut enc = zstd::stream::Encoder::new(&mut out, 1).unwrap();
        enc.include_contentsize(false).unwrap();
        enc.write_all(&data).unwrap();
        enc.finish().unwrap();
        let err = decode(&out, None, &info(&data)).unwrap_err();
        assert!(
            err.to_string()
                .contains("does not declare its content size"),
            "{err}"
        );
        // Declared, but not what OCIGO.size says (the output check alone
        // would stop it only after decoding that much).
        let frame = encode(None, &mut &data[..], data.len() as u64).unwrap();
        let mut i = info(&data);
        i.size -= 1;
        let err = decode(&frame, None, &i).unwrap_err();
        assert!(
            err.to_string().contains("its frame declares 65536 bytes"),
            "{err}"
        );
        // Too short to hold a header.
        let err = decode(&frame[..3], None, &info(&data)).unwrap_err();
        assert!(err.to_string().contains("header is unreadable"), "{err}");
    }
}
