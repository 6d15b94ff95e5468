//! OCI image layout directories: the host's local content store and `oci:DIR`
//! sources and destinations (a removable disk).
//!
//! Owns: `oci-layout`, `index.json` and `blobs/sha256/` on disk. Every blob is
//! written to a temporary file, checked against its digest, then renamed into
//! place, so a blob path that exists always holds the right bytes (as in
//! containerd's content store). `index.json` changes under a lock, by
//! temp + rename. All of it goes through [`crate::fs`]: nothing in a layout
//! is followed if it is a link or opened if it is not a regular file
//! (exit 5), `oci-layout` and `index.json` are read with a size bound
//! (over it: exit 3), blobs are read no further than their descriptor's
//! size, and what ocigo writes is mode 0644. Must not: know about Go
//! modules, GOMODCACHE or registries, or touch the disk except through
//! [`crate::fs`].
//!
//! Referrers (OCI 1.1) are kept as oras-go's OCI store keeps them: a
//! manifest with `subject` is an untagged entry of `index.json` (no
//! `org.opencontainers.image.ref.name`), and listing the referrers of a
//! digest reads the untagged manifests `index.json` names and keeps those
//! whose `subject` is that digest (a tagged manifest with a subject is not
//! listed: tagged entries are bundles, and are not all read at every copy). No `sha256-<hex>` fallback tag is written in a
//! layout (oras-go writes none either; it is a registry workaround).
//! Prune keeps a referrer only while its subject is kept.
//!
//! Concurrency: several ocigo processes may share one store. Each command
//! that reads or writes it holds [`Layout::use_lock`] (a shared `flock` on
//! `<root>/.store.lock`) for its whole run; [`Layout::prune`] needs the same
//! lock exclusively, so it never deletes a blob that a running pack or pull
//! has written but not yet tagged, nor a temporary file being written. Lock
//! order: `.store.lock` before `.index.lock`, never the other way round.
#![warn(clippy::disallowed_methods)]

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::error::{Kind, fail, kind_of};
use crate::fs::{AtomicFile, Durability, LockMode, Wait};
use crate::oci::{
    self, ANNOTATION_REF_NAME, Descriptor, Digest, FetchedManifest, Index, ReferrerInfo, Referrers,
    Repository, VerifyingReader,
};

const LAYOUT_FILE: &str = "oci-layout";
const STORE_LOCK_FILE: &str = ".store.lock";
const INDEX_LOCK_FILE: &str = ".index.lock";
const TMP_PREFIX: &str = ".tmp-";
/// The store's scratch directory (see [`Layout::scratch_dir`]).
const SCRATCH_DIR: &str = "tmp";
const LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// `oci-layout` is one small JSON object.
const MAX_LAYOUT_FILE_BYTES: u64 = 64 * 1024;
/// `index.json`: a JSON document of a few MiB (some 20,000 tags).
pub const MAX_INDEX_BYTES: u64 = 8 * 1024 * 1024;
/// Mode of every file ocigo writes in a layout: readable by other users
/// sharing the disk, as `cp` or a registry export would leave it.
const FILE_MODE: u32 = 0o644;

/// An OCI image layout directory.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// Opens a layout, creating an empty one if the directory is empty or absent.
    pub fn open_or_create(root: impl Into<PathBuf>) -> Result<Layout> {
        let root = root.into();
        crate::fs::ensure_dir(&root, Path::new("blobs/sha256"), &mut Vec::new())
            .with_context(|| format!("creating OCI layout at {}", root.display()))?;
        let marker = root.join(LAYOUT_FILE);
        if !crate::fs::regular_file_exists(&marker)? {
            write_file(&marker, LAYOUT_CONTENT)?;
        }
        let layout = Layout { root };
        if !crate::fs::regular_file_exists(&layout.index_path())? {
            layout.write_index(&empty_index())?;
        }
        Ok(layout)
    }

    /// Opens an existing layout; fails if `root` is not one.
    pub fn open(root: impl Into<PathBuf>) -> Result<Layout> {
        let root = root.into();
        let marker = root.join(LAYOUT_FILE);
        let content = crate::fs::read_capped(&marker, MAX_LAYOUT_FILE_BYTES)?.ok_or_else(|| {
            fail(
                Kind::NotFound,
                format!(
                    "{} is not an OCI image layout (no {LAYOUT_FILE} file)",
                    root.display()
                ),
            )
        })?;
        let v: serde_json::Value = serde_json::from_slice(&content).map_err(|e| {
            fail(
                Kind::Integrity,
                format!("{}: invalid JSON: {e}", marker.display()),
            )
        })?;
        if v.get("imageLayoutVersion").and_then(|v| v.as_str()) != Some("1.0.0") {
            return Err(fail(
                Kind::Integrity,
                format!("{}: unsupported imageLayoutVersion", marker.display()),
            ));
        }
        // Blobs are read only through real directories: a link there is
        // refused (exit 5), not followed.
        if crate::fs::dir_exists(&root.join("blobs"))? {
            crate::fs::dir_exists(&root.join("blobs/sha256"))?;
        }
        Ok(Layout { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    pub fn read_index(&self) -> Result<Index> {
        let path = self.index_path();
        let bytes = crate::fs::read_capped(&path, MAX_INDEX_BYTES)?.ok_or_else(|| {
            fail(
                Kind::NotFound,
                format!("{} is missing: not an OCI image layout", path.display()),
            )
        })?;
        serde_json::from_slice(&bytes).map_err(|e| {
            fail(
                Kind::Integrity,
                format!("{}: invalid index: {e}", path.display()),
            )
        })
    }

    fn write_index(&self, index: &Index) -> Result<()> {
        write_file(&self.index_path(), &oci::to_canonical_json(index))
    }

    /// Read-modify-write of index.json under an exclusive lock, so two
    /// ocigo processes sharing a store do not lose each other's tags. If `f`
    /// fails, index.json is left as it was.
    fn update_index<T>(&self, f: impl FnOnce(&mut Index) -> Result<T>) -> Result<T> {
        let _lock = crate::fs::lock(
            &self.root.join(INDEX_LOCK_FILE),
            LockMode::Exclusive,
            Wait::Block,
        )?;
        let mut index = self.read_index()?;
        let out = f(&mut index)?;
        self.write_index(&index)?;
        Ok(out)
    }

    /// Copies a local file into the store, hashing as it copies: one read.
    pub fn ingest_file(&self, path: &Path, media_type: &str) -> Result<Descriptor> {
        let mut src = crate::fs::open_regular_required(path, "file")?;
        let dir = self.root.join("blobs/sha256");
        // Named once the digest is known; the target below is a placeholder.
        let mut tmp = AtomicFile::create(&dir.join("ingest"), TMP_PREFIX, FILE_MODE)?;
        let mut hashing = HashingWriter::new(tmp.file());
        let size = io::copy(&mut src, &mut hashing)
            .with_context(|| format!("copying {} into the store", path.display()))?;
        let digest = Digest::from_sha256(hashing.hasher);
        let target = self.blob_path(&digest);
        if !crate::fs::regular_file_exists(&target)? {
            tmp.retarget(&target);
            tmp.commit(Durability::Relaxed)
                .with_context(|| format!("storing {}", target.display()))?;
        }
        Ok(Descriptor::new(media_type, digest, size))
    }

    /// Every tag (ref name) with its descriptor.
    pub fn refs(&self) -> Result<Vec<(String, Descriptor)>> {
        Ok(self
            .read_index()?
            .manifests
            .into_iter()
            .filter_map(|d| {
                d.annotations
                    .get(ANNOTATION_REF_NAME)
                    .cloned()
                    .map(|name| (name, d))
            })
            .collect())
    }

    /// Removes a tag; the blobs stay until [`Layout::prune`].
    pub fn remove_ref(&self, name: &str) -> Result<bool> {
        self.update_index(|index| {
            let before = index.manifests.len();
            index.manifests.retain(|d| ref_name(d) != Some(name));
            Ok(index.manifests.len() != before)
        })
    }

    /// Removes several tags in one index.json update, under one lock: all of
    /// them or none. Fails with [`Kind::NotFound`] naming every name that is
    /// not a tag, and then removes nothing. Returns the removed names in the
    /// order given, duplicates dropped. The blobs stay until [`Layout::prune`].
    pub fn remove_refs(&self, names: &[String]) -> Result<Vec<String>> {
        let mut wanted: Vec<String> = Vec::new();
        for name in names {
            if !wanted.contains(name) {
                wanted.push(name.clone());
            }
        }
        if wanted.is_empty() {
            return Ok(wanted);
        }
        let location = self.location();
        self.update_index(|index| {
            let tagged: HashSet<&str> = index.manifests.iter().filter_map(ref_name).collect();
            let missing: Vec<String> = wanted
                .iter()
                .filter(|n| !tagged.contains(n.as_str()))
                .map(|n| format!("{n:?}"))
                .collect();
            if !missing.is_empty() {
                let what = if missing.len() == 1 { "tag" } else { "tags" };
                return Err(fail(
                    Kind::NotFound,
                    format!("{what} {} not found in {location}", missing.join(", ")),
                ));
            }
            index
                .manifests
                .retain(|d| ref_name(d).is_none_or(|n| !wanted.iter().any(|w| w == n)));
            Ok(wanted)
        })
    }

    /// Takes the store lock shared (blocking while a prune runs), held until
    /// the guard is dropped. Every command that reads or writes the store
    /// holds it for its whole run, so [`Layout::prune`] cannot delete blobs
    /// written but not yet tagged, or being read. Any number of processes
    /// may hold it at once. On a read-only file system no lock is taken (and
    /// none is needed: nothing there can be pruned).
    pub fn use_lock(&self) -> Result<StoreUse> {
        let path = self.root.join(STORE_LOCK_FILE);
        Ok(StoreUse {
            _lock: crate::fs::lock_shared_unless_read_only(&path)?,
        })
    }

    /// Takes the store lock exclusively without waiting, for pruning. Fails
    /// with [`Kind::Conflict`] if any process (this one included, through
    /// another [`StoreUse`]) holds [`Layout::use_lock`] or is pruning.
    pub fn exclusive_use(&self) -> Result<StoreExclusive<'_>> {
        let path = self.root.join(STORE_LOCK_FILE);
        match crate::fs::lock(&path, LockMode::Exclusive, Wait::Try)? {
            Some(lock) => Ok(StoreExclusive {
                layout: self,
                _lock: lock,
            }),
            None => Err(fail(
                Kind::Conflict,
                format!(
                    "the content store {} is in use by another ocigo process; \
                     try again when it finishes",
                    self.root.display()
                ),
            )),
        }
    }

    /// Deletes every blob not reachable from index.json, and the temporary
    /// files of interrupted writes, under the exclusive store lock (see
    /// [`Layout::exclusive_use`]; fails with [`Kind::Conflict`] without
    /// deleting anything if the store is in use). Returns (blobs removed,
    /// bytes freed, temporary files included).
    pub fn prune(&self) -> Result<(usize, u64)> {
        self.exclusive_use()?.prune()
    }

    /// Digests reachable from index.json. Only blobs whose descriptor says
    /// manifest or index are read, and at most [`oci::MAX_MANIFEST_BYTES`] of
    /// each: a bigger one is not a manifest ocigo can use, so it is kept but
    /// not walked. A manifest that does not parse is kept but not walked.
    fn reachable(&self) -> Result<HashSet<Digest>> {
        let mut keep = HashSet::new();
        let mut walked = HashSet::new();
        // Untagged entries with a subject (referrers) hang on their subject:
        // walked only once it is kept, so forgetting a tag frees its
        // signatures and SBOMs too.
        let mut stack = Vec::new();
        let mut referrers: Vec<(Digest, Descriptor)> = Vec::new();
        for desc in self.read_index()?.manifests {
            match self.untagged_subject(&desc)? {
                Some(subject) => referrers.push((subject, desc)),
                None => stack.push(desc),
            }
        }
        loop {
            self.walk_reachable(&mut stack, &mut keep, &mut walked)?;
            let (ready, waiting): (Vec<_>, Vec<_>) = referrers
                .into_iter()
                .partition(|(subject, _)| keep.contains(subject));
            referrers = waiting;
            if ready.is_empty() {
                break;
            }
            stack.extend(ready.into_iter().map(|(_, d)| d));
        }
        Ok(keep)
    }

    /// The subject of an untagged manifest entry of `index.json`, if it
    /// has one (a referrer); `None` for tagged entries and everything else.
    fn untagged_subject(&self, desc: &Descriptor) -> Result<Option<Digest>> {
        if ref_name(desc).is_some() || !is_manifest_media_type(&desc.media_type) {
            return Ok(None);
        }
        Ok(self
            .read_manifest_capped(&desc.digest)?
            .and_then(|b| ReferrerInfo::of(&b))
            .and_then(|i| i.subject)
            .map(|s| s.digest))
    }

    /// A manifest's bytes, at most [`oci::MAX_MANIFEST_BYTES`]; `None` when
    /// missing or over the limit (not a manifest ocigo can use).
    fn read_manifest_capped(&self, digest: &Digest) -> Result<Option<Vec<u8>>> {
        match crate::fs::read_capped(&self.blob_path(digest), oci::MAX_MANIFEST_BYTES as u64) {
            Ok(b) => Ok(b),
            Err(e) if kind_of(&e) == Some(Kind::Integrity) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn walk_reachable(
        &self,
        stack: &mut Vec<Descriptor>,
        keep: &mut HashSet<Digest>,
        walked: &mut HashSet<Digest>,
    ) -> Result<()> {
        while let Some(desc) = stack.pop() {
            keep.insert(desc.digest.clone());
            if !is_manifest_media_type(&desc.media_type)
                || desc.size > oci::MAX_MANIFEST_BYTES as u64
                || !walked.insert(desc.digest.clone())
            {
                continue;
            }
            let path = self.blob_path(&desc.digest);
            let bytes = match crate::fs::read_capped(&path, oci::MAX_MANIFEST_BYTES as u64) {
                Ok(Some(bytes)) => bytes,
                Ok(None) => continue,
                // Over the limit: not a manifest ocigo can use.
                Err(e) if kind_of(&e) == Some(Kind::Integrity) => continue,
                // Not knowing what it references, deleting anything is unsafe.
                Err(e) => return Err(e),
            };
            stack.extend(referenced(&bytes));
        }
        Ok(())
    }

    /// `<store>/tmp`, created if need be: where pack and pull put their
    /// scratch directories and temporary files (a base toolchain's files,
    /// a module zip being built), so that what a crashed run left is
    /// removed by the next `store prune` (which holds the exclusive lock:
    /// no run that may still use it is in flight).
    pub fn scratch_dir(&self) -> Result<PathBuf> {
        crate::fs::ensure_dir(&self.root, Path::new(SCRATCH_DIR), &mut Vec::new())
    }

    fn prune_locked(&self) -> Result<(usize, u64)> {
        // Scratch left by runs that ended without cleaning up (crashed):
        // none is in flight while the exclusive lock is held.
        let scratch = self.root.join(SCRATCH_DIR);
        if crate::fs::dir_exists(&scratch)? {
            for (name, _) in crate::fs::list_dir(&scratch)? {
                let path = scratch.join(&name);
                match crate::fs::lstat(&path)? {
                    Some(m) if m.is_dir() => crate::fs::remove_tree(&path)?,
                    Some(_) => {
                        crate::fs::remove_file(&path)?;
                    }
                    None => {}
                }
            }
        }
        let keep = self.reachable()?;
        // Referrers whose subject is gone leave index.json first, so it
        // never names a blob that is not there.
        if self
            .read_index()?
            .manifests
            .iter()
            .any(|d| !keep.contains(&d.digest))
        {
            self.update_index(|index| {
                index.manifests.retain(|d| keep.contains(&d.digest));
                Ok(())
            })?;
        }
        let mut removed = 0;
        let mut freed = 0;
        let dir = self.root.join("blobs/sha256");
        for (name, _) in crate::fs::list_dir(&dir)? {
            let path = dir.join(&name);
            // Anything not named like ours is left alone.
            let Some(name) = name.to_str() else {
                continue;
            };
            let is_tmp = name.starts_with(TMP_PREFIX);
            let garbage = is_tmp
                || Digest::parse(&format!("sha256:{name}")).is_ok_and(|d| !keep.contains(&d));
            if !garbage {
                continue;
            }
            // lstat: a link is removed, never followed.
            let meta = match crate::fs::lstat(&path)? {
                Some(meta) if !meta.is_dir() => meta,
                _ => continue,
            };
            if !crate::fs::remove_file(&path)? {
                continue;
            }
            freed += meta.len();
            if !is_tmp {
                removed += 1;
            }
        }
        Ok((removed, freed))
    }

    /// (number of blobs, total bytes) in the store.
    pub fn usage(&self) -> Result<(usize, u64)> {
        let dir = self.root.join("blobs/sha256");
        let mut n = 0;
        let mut bytes = 0;
        for (name, _) in crate::fs::list_dir(&dir)? {
            if name.to_string_lossy().starts_with(TMP_PREFIX) {
                continue;
            }
            n += 1;
            bytes += crate::fs::lstat(&dir.join(&name))?.map_or(0, |m| m.len());
        }
        Ok((n, bytes))
    }

    /// Sniffs the media type of a manifest blob stored without a tag. Reads
    /// at most [`oci::MAX_MANIFEST_BYTES`]: a bigger blob is not a manifest.
    fn media_type_of(&self, digest: &Digest) -> Result<Descriptor> {
        let path = self.blob_path(digest);
        let bytes = match crate::fs::read_capped(&path, oci::MAX_MANIFEST_BYTES as u64) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                return Err(fail(
                    Kind::NotFound,
                    format!("{digest} not found in {}", self.location()),
                ));
            }
            Err(e) if kind_of(&e) == Some(Kind::Integrity) => {
                return Err(fail(
                    Kind::Integrity,
                    format!(
                        "{digest} in {} is not a manifest: over the 4 MiB manifest limit",
                        self.location()
                    ),
                ));
            }
            Err(e) => return Err(e),
        };
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Sniff {
            media_type: Option<String>,
            manifests: Option<serde_json::Value>,
        }
        let sniff: Sniff = serde_json::from_slice(&bytes).map_err(|e| {
            fail(
                Kind::Integrity,
                format!("{digest} in {} is not a manifest: {e}", self.location()),
            )
        })?;
        let media_type = sniff.media_type.unwrap_or_else(|| {
            if sniff.manifests.is_some() {
                oci::MEDIA_TYPE_INDEX.to_string()
            } else {
                oci::MEDIA_TYPE_MANIFEST.to_string()
            }
        });
        Ok(Descriptor::new(
            media_type,
            digest.clone(),
            bytes.len() as u64,
        ))
    }
}

/// A shared hold on a store, from [`Layout::use_lock`]; released on drop.
/// It does not borrow the [`Layout`], so it can outlive the value it came from.
#[derive(Debug)]
#[must_use = "the store lock is released as soon as this guard is dropped"]
pub struct StoreUse {
    _lock: Option<crate::fs::Lock>,
}

/// An exclusive hold on a store, from [`Layout::exclusive_use`]; released on
/// drop. While it is held no other ocigo process uses the store.
#[derive(Debug)]
#[must_use = "the store lock is released as soon as this guard is dropped"]
pub struct StoreExclusive<'a> {
    layout: &'a Layout,
    _lock: crate::fs::Lock,
}

impl StoreExclusive<'_> {
    /// [`Layout::prune`] under this lock: lets a caller take the lock first,
    /// then forget tags ([`Layout::remove_refs`]) and prune, so nothing is
    /// forgotten when the store turns out to be busy.
    pub fn prune(&self) -> Result<(usize, u64)> {
        self.layout.prune_locked()
    }
}

fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str)
}

fn is_manifest_media_type(media_type: &str) -> bool {
    [
        oci::MEDIA_TYPE_MANIFEST,
        oci::MEDIA_TYPE_INDEX,
        oci::MEDIA_TYPE_DOCKER_MANIFEST,
        oci::MEDIA_TYPE_DOCKER_LIST,
    ]
    .contains(&media_type)
}

/// The descriptors a manifest or index refers to (config, subject, layers,
/// manifests); nothing if it is not JSON. Lenient: one malformed field does
/// not hide the others, so prune keeps all it can.
fn referenced(bytes: &[u8]) -> Vec<Descriptor> {
    let mut out = Vec::new();
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return out;
    };
    for key in ["config", "subject"] {
        if let Some(d) = v
            .get(key)
            .and_then(|d| serde_json::from_value::<Descriptor>(d.clone()).ok())
        {
            out.push(d);
        }
    }
    for key in ["layers", "manifests"] {
        if let Some(list) = v.get(key).and_then(|l| l.as_array()) {
            out.extend(
                list.iter()
                    .filter_map(|d| serde_json::from_value::<Descriptor>(d.clone()).ok()),
            );
        }
    }
    out
}

fn empty_index() -> Index {
    Index {
        schema_version: 2,
        media_type: Some(oci::MEDIA_TYPE_INDEX.to_string()),
        artifact_type: None,
        manifests: Vec::new(),
        subject: None,
        annotations: BTreeMap::new(),
    }
}

/// Writes a layout file (`oci-layout`, `index.json`) by temp + rename,
/// mode 0644, synced: nothing re-checks them when they are read.
fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::fs::write_atomic(path, TMP_PREFIX, bytes, FILE_MODE, Durability::Synced)
}

struct HashingWriter<W> {
    inner: W,
    hasher: sha2::Sha256,
}

impl<W> HashingWriter<W> {
    fn new(inner: W) -> Self {
        use sha2::Digest as _;
        HashingWriter {
            inner,
            hasher: sha2::Sha256::new(),
        }
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        use sha2::Digest as _;
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Repository for Layout {
    fn location(&self) -> String {
        format!("oci:{}", self.root.display())
    }

    fn resolve(&self, reference: &str) -> Result<Descriptor> {
        if reference.starts_with("sha256:") {
            return self.media_type_of(&Digest::parse(reference)?);
        }
        self.refs()?
            .into_iter()
            .find(|(name, _)| name == reference)
            .map(|(_, d)| d)
            .ok_or_else(|| {
                fail(
                    Kind::NotFound,
                    format!("tag {reference:?} not found in {}", self.location()),
                )
            })
    }

    fn fetch_manifest(&self, desc: &Descriptor) -> Result<FetchedManifest> {
        if desc.size > oci::MAX_MANIFEST_BYTES as u64 {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "manifest {} claims {} bytes, over the 4 MiB limit",
                    desc.digest, desc.size
                ),
            ));
        }
        let mut bytes = Vec::with_capacity(desc.size as usize);
        self.fetch_blob(desc)?
            .read_to_end(&mut bytes)
            .map_err(|e| {
                oci::classify_io(e, || {
                    format!("reading manifest {} from {}", desc.digest, self.location())
                })
            })?;
        Ok(FetchedManifest {
            descriptor: desc.clone(),
            bytes,
        })
    }

    fn push_manifest(
        &self,
        media_type: &str,
        bytes: &[u8],
        tag: Option<&str>,
    ) -> Result<Descriptor> {
        let desc = Descriptor::for_bytes(media_type, bytes);
        if !self.blob_exists(&desc.digest)? {
            self.push_blob(&desc, &mut &bytes[..])?;
        }
        if let Some(tag) = tag {
            let mut entry = desc.clone();
            // Keep artifactType in index.json so tools can tell what a tag is.
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes)
                && let Some(t) = v.get("artifactType").and_then(|t| t.as_str())
            {
                entry.artifact_type = Some(t.to_string());
            }
            entry
                .annotations
                .insert(ANNOTATION_REF_NAME.to_string(), tag.to_string());
            self.update_index(|index| {
                index.manifests.retain(|d| ref_name(d) != Some(tag));
                index.manifests.push(entry);
                Ok(())
            })?;
        }
        Ok(desc)
    }

    fn blob_exists(&self, digest: &Digest) -> Result<bool> {
        crate::fs::regular_file_exists(&self.blob_path(digest))
    }

    fn fetch_blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + '_>> {
        let path = self.blob_path(&desc.digest);
        // Regular files only; read no further than the descriptor's size
        // (the verifying reader stops one byte past it).
        let file = crate::fs::open_regular(&path)?.ok_or_else(|| {
            fail(
                Kind::NotFound,
                format!("blob {} is missing from {}", desc.digest, self.location()),
            )
        })?;
        let what = format!("blob {} in {}", desc.digest, self.location());
        Ok(Box::new(VerifyingReader::new(
            io::BufReader::with_capacity(1 << 20, file),
            desc,
            what,
        )))
    }

    fn push_blob(&self, desc: &Descriptor, content: &mut dyn Read) -> Result<()> {
        let target = self.blob_path(&desc.digest);
        // Relaxed: a blob is hashed again whenever it is read.
        let mut tmp = AtomicFile::create(&target, TMP_PREFIX, FILE_MODE)?;
        let what = format!("blob {}", desc.digest);
        let mut verifying = VerifyingReader::new(content, desc, what);
        io::copy(&mut verifying, tmp.file()).map_err(|e| {
            oci::classify_io(e, || {
                format!("storing blob {} in {}", desc.digest, self.location())
            })
        })?;
        tmp.commit(Durability::Relaxed)
            .with_context(|| format!("storing {}", target.display()))
    }

    fn list_tags(&self) -> Result<Vec<String>> {
        Ok(self.refs()?.into_iter().map(|(n, _)| n).collect())
    }
}

impl Referrers for Layout {
    fn referrers(&self, subject: &Digest, artifact_type: Option<&str>) -> Result<Vec<Descriptor>> {
        let mut out = Vec::new();
        let mut read = HashSet::new();
        // Only untagged entries: that is where referrers are put (by ocigo
        // and oras alike), and a store with many tagged bundles is not read
        // whole at every copy.
        for desc in self.read_index()?.manifests {
            if ref_name(&desc).is_some()
                || !is_manifest_media_type(&desc.media_type)
                || !read.insert(desc.digest.clone())
            {
                continue;
            }
            // Read through the verifying path: a tampered blob is exit 3,
            // not a referrer.
            let fetched = match self.fetch_manifest(&desc) {
                Ok(f) => f,
                Err(e) if kind_of(&e) == Some(Kind::NotFound) => continue,
                Err(e) => return Err(e),
            };
            let Some(info) = ReferrerInfo::of(&fetched.bytes) else {
                continue;
            };
            if info.subject.as_ref().is_some_and(|s| s.digest == *subject) {
                out.push(info.descriptor(&desc.media_type, &fetched.bytes));
            }
        }
        Ok(oci::filter_referrers(out, artifact_type))
    }

    fn push_referrer(
        &self,
        media_type: &str,
        bytes: &[u8],
        subject: &Descriptor,
    ) -> Result<Descriptor> {
        let info = ReferrerInfo::of(bytes)
            .filter(|i| i.subject.as_ref().map(|s| &s.digest) == Some(&subject.digest))
            .ok_or_else(|| {
                fail(
                    Kind::Usage,
                    format!(
                        "the manifest pushed as a referrer of {} does not name it as its subject",
                        subject.digest
                    ),
                )
            })?;
        let desc = self.push_manifest(media_type, bytes, None)?;
        let mut entry = desc.clone();
        entry.artifact_type = info.artifact_type;
        self.update_index(|index| {
            if !index
                .manifests
                .iter()
                .any(|d| d.digest == entry.digest && ref_name(d).is_none())
            {
                index.manifests.push(entry);
            }
            Ok(())
        })?;
        Ok(desc)
    }
}

/// The store used when none is named: `$OCIGO_STORE`, else
/// `<user cache dir>/ocigo/store`.
pub fn default_store_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("OCIGO_STORE").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    dirs::cache_dir()
        .map(|d| d.join("ocigo/store"))
        .ok_or_else(|| {
            fail(
                Kind::Usage,
                "cannot find a cache directory for the content store: set OCIGO_STORE or pass --store",
            )
        })
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn blobs_are_verified_on_write_and_tags_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let l = Layout::open_or_create(d.path()).unwrap();
        let data = b"some blob";
        let desc = Descriptor::for_bytes("application/octet-stream", data);
        l.push_blob(&desc, &mut &data[..]).unwrap();
        assert!(l.blob_exists(&desc.digest).unwrap());

        let bad = Descriptor::for_bytes("application/octet-stream", b"other");
        let e = l.push_blob(&bad, &mut &data[..]).unwrap_err();
        assert_eq!(crate::error::kind_of(&e), Some(Kind::Integrity));
        assert!(!l.blob_exists(&bad.digest).unwrap());

        let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"x","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":0},"layers":[]}"#;
        let md = l
            .push_manifest(oci::MEDIA_TYPE_MANIFEST, m, Some("v1"))
            .unwrap();
        assert_eq!(l.resolve("v1").unwrap().digest, md.digest);
        assert_eq!(
            l.resolve(md.digest.as_str()).unwrap().media_type,
            oci::MEDIA_TYPE_MANIFEST
        );
        assert_eq!(l.fetch_manifest(&md).unwrap().bytes, m);
        assert_eq!(l.list_tags().unwrap(), vec!["v1".to_string()]);

        // The blob is unreachable; the manifest is kept.
        let (removed, _) = l.prune().unwrap();
        assert_eq!(removed, 1);
        assert!(!l.blob_exists(&desc.digest).unwrap());
        assert!(l.blob_exists(&md.digest).unwrap());
    }

    fn put(l: &Layout, media_type: &str, bytes: &[u8]) -> Descriptor {
        let desc = Descriptor::for_bytes(media_type, bytes);
        l.push_blob(&desc, &mut &bytes[..]).unwrap();
        desc
    }

    fn manifest_json(config: &Descriptor, layers: &[&Descriptor]) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": oci::MEDIA_TYPE_MANIFEST,
            "config": config,
            "layers": layers,
        }))
        .unwrap()
    }

    fn blobs_dir(l: &Layout) -> PathBuf {
        l.root().join("blobs/sha256")
    }

    #[test]
    fn prune_keeps_what_the_index_reaches_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        let l = Layout::open_or_create(d.path()).unwrap();
        // index -> OCI manifest -> config + layer, and -> docker manifest.
        let config = put(&l, "application/vnd.oci.image.config.v1+json", b"{}");
        let layer = put(&l, "application/zip", b"PK\x03\x04 not json");
        let m = put(
            &l,
            oci::MEDIA_TYPE_MANIFEST,
            &manifest_json(&config, &[&layer]),
        );
        let dconfig = put(&l, "application/vnd.docker.container.image.v1+json", b"[]");
        let dlayer = put(&l, "application/octet-stream", b"docker layer");
        let mut dm = manifest_json(&dconfig, &[&dlayer]);
        dm = String::from_utf8(dm)
            .unwrap()
            .replace(oci::MEDIA_TYPE_MANIFEST, oci::MEDIA_TYPE_DOCKER_MANIFEST)
            .into_bytes();
        let dm = put(&l, oci::MEDIA_TYPE_DOCKER_MANIFEST, &dm);
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": oci::MEDIA_TYPE_INDEX,
            "manifests": [m, dm],
        }))
        .unwrap();
        let idx = l
            .push_manifest(oci::MEDIA_TYPE_INDEX, &index, Some("t"))
            .unwrap();

        // Unreachable: a loose blob, and an untagged manifest with its config.
        let loose = put(&l, "application/zip", b"loose");
        let orphan_config = put(&l, "x", b"orphan config");
        let orphan = l
            .push_manifest(
                oci::MEDIA_TYPE_MANIFEST,
                &manifest_json(&orphan_config, &[]),
                None,
            )
            .unwrap();
        // An interrupted write, and files that are not ours.
        fs::write(blobs_dir(&l).join(".tmp-stale"), b"12345").unwrap();
        fs::write(blobs_dir(&l).join("README"), b"not a blob").unwrap();
        fs::create_dir(blobs_dir(&l).join("subdir")).unwrap();

        // What a crashed pack or pull left in the scratch directory.
        let scratch = l.scratch_dir().unwrap();
        fs::create_dir_all(scratch.join(".ocigo-toolchain-base-x/0/bin")).unwrap();
        fs::write(scratch.join(".ocigo-toolchain-base-x/0/bin/go"), b"go").unwrap();
        fs::write(scratch.join(".ocigo-toolchain-zip-y"), b"zip").unwrap();

        let (removed, freed) = l.prune().unwrap();
        assert_eq!(
            crate::fs::list_dir(&scratch).unwrap().len(),
            0,
            "scratch emptied"
        );
        assert_eq!(removed, 3);
        assert_eq!(
            freed,
            loose.size + orphan_config.size + orphan.size + 5,
            "temporary files count towards bytes freed"
        );
        for kept in [&idx, &m, &config, &layer, &dm, &dconfig, &dlayer] {
            assert!(l.blob_exists(&kept.digest).unwrap(), "{kept:?} was removed");
        }
        for gone in [&loose, &orphan_config, &orphan] {
            assert!(!l.blob_exists(&gone.digest).unwrap(), "{gone:?} was kept");
        }
        assert!(!blobs_dir(&l).join(".tmp-stale").exists());
        assert!(blobs_dir(&l).join("README").exists());
        assert!(blobs_dir(&l).join("subdir").is_dir());
        // Nothing left to do the second time.
        assert_eq!(l.prune().unwrap(), (0, 0));
    }

    #[test]
    fn prune_reads_only_manifests_and_only_up_to_the_limit() {
        let d = tempfile::tempdir().unwrap();
        let l = Layout::open_or_create(d.path()).unwrap();
        let config = put(&l, "x", b"{}");

        // A layer whose bytes look like a manifest: if prune parsed it, it
        // would keep `decoy_target`.
        let decoy_target = put(&l, "application/zip", b"decoy target");
        let decoy = put(
            &l,
            "application/zip",
            &manifest_json(&config, &[&decoy_target]),
        );

        // A layer that is a FIFO: opening it with no writer blocks, so a
        // prune that reads it never returns.
        let fifo = Descriptor::new("application/zip", Digest::of_bytes(b"fifo"), 10);
        let fifo_path = l.blob_path(&fifo.digest);
        let c_path = std::ffi::CString::new(fifo_path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);

        // Manifest-typed, but over the limit (its descriptor understates its
        // size): read no further than the limit, and not walked.
        let big_target = put(&l, "application/zip", b"big target");
        let mut big = manifest_json(&config, &[&big_target]);
        big.resize(oci::MAX_MANIFEST_BYTES + 10, b' ');
        let big_desc = put(&l, "x", &big);
        let big_ref = Descriptor::new(oci::MEDIA_TYPE_MANIFEST, big_desc.digest.clone(), 100);

        let top = manifest_json(&config, &[&decoy, &fifo, &big_ref]);
        l.push_manifest(oci::MEDIA_TYPE_MANIFEST, &top, Some("t"))
            .unwrap();

        let (tx, rx) = std::sync::mpsc::channel();
        let l2 = l.clone();
        std::thread::spawn(move || tx.send(l2.prune().unwrap()).unwrap());
        let Ok((removed, _)) = rx.recv_timeout(std::time::Duration::from_secs(30)) else {
            // Unblock the reader before failing.
            let _ = fs::OpenOptions::new().write(true).open(&fifo_path);
            panic!("prune opened a layer blob");
        };
        assert_eq!(removed, 2);
        assert!(!l.blob_exists(&decoy_target.digest).unwrap());
        assert!(!l.blob_exists(&big_target.digest).unwrap());
        assert!(l.blob_exists(&decoy.digest).unwrap());
        assert!(l.blob_exists(&big_desc.digest).unwrap());
        assert!(fifo_path.exists());

        // Sniffing by digest is capped the same way.
        let e = l.resolve(big_desc.digest.as_str()).unwrap_err();
        assert_eq!(crate::error::kind_of(&e), Some(Kind::Integrity));
        assert!(format!("{e:#}").contains("not a manifest"), "{e:#}");
    }

    #[test]
    fn prune_refuses_while_the_store_is_in_use() {
        let d = tempfile::tempdir().unwrap();
        let l = Layout::open_or_create(d.path()).unwrap();
        let loose = put(&l, "x", b"fetched, not yet tagged");
        let tmp = blobs_dir(&l).join(".tmp-inflight");
        fs::write(&tmp, b"half a download").unwrap();

        // Shared holders coexist; flock conflicts between two opens even
        // in one process, standing in for a concurrent pack or pull.
        let a = l.use_lock().unwrap();
        let b = l.use_lock().unwrap();
        let e = l.prune().unwrap_err();
        assert_eq!(crate::error::kind_of(&e), Some(Kind::Conflict));
        assert!(format!("{e:#}").contains("in use by another ocigo process"));
        assert!(format!("{e:#}").contains(&d.path().display().to_string()));
        assert!(l.blob_exists(&loose.digest).unwrap());
        assert!(tmp.exists());
        drop(a);
        assert!(l.prune().is_err(), "one holder is still there");
        drop(b);

        // An exclusive holder excludes another and makes use_lock wait.
        let x = l.exclusive_use().unwrap();
        let e = l.exclusive_use().unwrap_err();
        assert_eq!(crate::error::kind_of(&e), Some(Kind::Conflict));
        let (tx, rx) = std::sync::mpsc::channel();
        let l2 = l.clone();
        let waiter = std::thread::spawn(move || {
            let guard = l2.use_lock().unwrap();
            tx.send(()).unwrap();
            guard
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(300))
                .is_err(),
            "use_lock did not wait for the exclusive holder"
        );
        assert_eq!(x.prune().unwrap(), (1, loose.size + 15));
        assert!(!tmp.exists());
        drop(x);
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("use_lock still waiting after the exclusive holder left");
        let guard = waiter.join().unwrap();
        assert!(l.exclusive_use().is_err());
        drop(guard);
        assert_eq!(l.prune().unwrap(), (0, 0));
    }

    #[test]
    fn referrers_live_and_die_with_their_subject() {
        let d = tempfile::tempdir().unwrap();
        let l = Layout::open_or_create(d.path()).unwrap();
        let config = put(&l, "x", b"{}");
        let top = l
            .push_manifest(
                oci::MEDIA_TYPE_MANIFEST,
                &manifest_json(&config, &[]),
                Some("v1"),
            )
            .unwrap();
        let layer = put(&l, "application/octet-stream", b"an sbom");
        let referrer = |subject: &Descriptor, layer: &Descriptor| {
            serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": oci::MEDIA_TYPE_MANIFEST,
                "artifactType": "application/vnd.example.sbom",
                "config": config,
                "layers": [layer],
                "subject": subject,
            }))
            .unwrap()
        };
        let sbom = l
            .push_referrer(oci::MEDIA_TYPE_MANIFEST, &referrer(&top, &layer), &top)
            .unwrap();
        let sig_layer = put(&l, "application/octet-stream", b"a signature of the sbom");
        let sig = l
            .push_referrer(
                oci::MEDIA_TYPE_MANIFEST,
                &referrer(&sbom, &sig_layer),
                &sbom,
            )
            .unwrap();
        // A manifest naming another subject is refused as a referrer of top.
        let e = l
            .push_referrer(oci::MEDIA_TYPE_MANIFEST, &referrer(&sbom, &layer), &top)
            .unwrap_err();
        assert_eq!(crate::error::kind_of(&e), Some(Kind::Usage));
        let listed = l.referrers(&top.digest, None).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].digest, sbom.digest);
        assert_eq!(
            listed[0].artifact_type.as_deref(),
            Some("application/vnd.example.sbom")
        );

        // While the tag is there, prune keeps the chain.
        assert_eq!(l.prune().unwrap().0, 0);
        for kept in [&sbom, &sig, &layer, &sig_layer] {
            assert!(l.blob_exists(&kept.digest).unwrap());
        }
        // Forgetting the tag frees the referrers and their index.json entries.
        assert!(l.remove_ref("v1").unwrap());
        let (removed, _) = l.prune().unwrap();
        assert_eq!(removed, 6, "top, config, two referrers, two layers");
        assert!(l.read_index().unwrap().manifests.is_empty());
        assert_eq!(l.referrers(&top.digest, None).unwrap(), vec![]);
    }

    #[test]
    fn remove_refs_is_all_or_nothing() {
        let d = tempfile::tempdir().unwrap();
        let l = Layout::open_or_create(d.path()).unwrap();
        let config = put(&l, "x", b"{}");
        for tag in ["a", "b", "c"] {
            let m = manifest_json(&config, &[]);
            l.push_manifest(oci::MEDIA_TYPE_MANIFEST, &m, Some(tag))
                .unwrap();
        }
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();

        let e = l.remove_refs(&names(&["a", "x", "b", "y"])).unwrap_err();
        assert_eq!(crate::error::kind_of(&e), Some(Kind::NotFound));
        assert!(
            format!("{e:#}").contains(r#"tags "x", "y" not found"#),
            "{e:#}"
        );
        assert_eq!(l.list_tags().unwrap(), names(&["a", "b", "c"]));

        assert_eq!(
            l.remove_refs(&names(&["c", "a", "c"])).unwrap(),
            names(&["c", "a"])
        );
        assert_eq!(l.list_tags().unwrap(), names(&["b"]));
        assert_eq!(l.remove_refs(&[]).unwrap(), Vec::<String>::new());
        assert!(l.remove_ref("b").unwrap());
        assert!(!l.remove_ref("b").unwrap());
    }

    #[test]
    fn tampered_blob_in_a_layout_is_caught_on_read() {
        let d = tempfile::tempdir().unwrap();
        let l = Layout::open_or_create(d.path()).unwrap();
        let data = b"original";
        let desc = Descriptor::for_bytes("x", data);
        l.push_blob(&desc, &mut &data[..]).unwrap();
        fs::write(l.blob_path(&desc.digest), b"tampered").unwrap();
        let e = l
            .fetch_blob(&desc)
            .unwrap()
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(oci::io_error_is_integrity(&e));
    }
}
