//! OCI image layout directories: the host's local content store and `oci:DIR`
//! sources and destinations (a removable disk).
//!
//! Owns: `oci-layout`, `index.json` and `blobs/sha256/` on disk. Every blob is
//! written to a temporary file, checked against its digest, then renamed into
//! place, so a blob path that exists always holds the right bytes (as in
//! containerd's content store). `index.json` changes under a lock, by
//! temp + rename. Must not: know about Go modules, GOMODCACHE or registries.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::error::{Kind, fail};
use crate::oci::{
    self, ANNOTATION_REF_NAME, Descriptor, Digest, FetchedManifest, Index, Repository,
    VerifyingReader,
};

const LAYOUT_FILE: &str = "oci-layout";
const LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// An OCI image layout directory.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// Opens a layout, creating an empty one if the directory is empty or absent.
    pub fn open_or_create(root: impl Into<PathBuf>) -> Result<Layout> {
        let root = root.into();
        fs::create_dir_all(root.join("blobs/sha256"))
            .with_context(|| format!("creating OCI layout at {}", root.display()))?;
        let marker = root.join(LAYOUT_FILE);
        if !marker.exists() {
            write_atomic(&marker, LAYOUT_CONTENT)?;
        }
        let layout = Layout { root };
        if !layout.index_path().exists() {
            layout.write_index(&empty_index())?;
        }
        Ok(layout)
    }

    /// Opens an existing layout; fails if `root` is not one.
    pub fn open(root: impl Into<PathBuf>) -> Result<Layout> {
        let root = root.into();
        let marker = root.join(LAYOUT_FILE);
        let content = fs::read(&marker).map_err(|_| {
            fail(
                Kind::NotFound,
                format!(
                    "{} is not an OCI image layout (no readable {LAYOUT_FILE} file)",
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
        let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            fail(
                Kind::Integrity,
                format!("{}: invalid index: {e}", path.display()),
            )
        })
    }

    fn write_index(&self, index: &Index) -> Result<()> {
        write_atomic(&self.index_path(), &oci::to_canonical_json(index))
    }

    /// Read-modify-write of index.json under an exclusive lock, so two
    /// ocigo processes sharing a store do not lose each other's tags.
    fn update_index(&self, f: impl FnOnce(&mut Index)) -> Result<()> {
        let _lock = exclusive_lock(&self.root.join(".index.lock"))?;
        let mut index = self.read_index()?;
        f(&mut index);
        self.write_index(&index)
    }

    /// Copies a local file into the store, hashing as it copies: one read.
    pub fn ingest_file(&self, path: &Path, media_type: &str) -> Result<Descriptor> {
        let mut src = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let dir = self.root.join("blobs/sha256");
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&dir)
            .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
        let mut hashing = HashingWriter::new(tmp.as_file_mut());
        let size = io::copy(&mut src, &mut hashing)
            .with_context(|| format!("copying {} into the store", path.display()))?;
        let digest = Digest::from_sha256(hashing.hasher);
        let target = self.blob_path(&digest);
        if !target.exists() {
            tmp.persist(&target)
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
        let mut removed = false;
        self.update_index(|index| {
            let before = index.manifests.len();
            index.manifests.retain(|d| {
                d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str) != Some(name)
            });
            removed = index.manifests.len() != before;
        })?;
        Ok(removed)
    }

    /// Deletes every blob not reachable from index.json, and stale temporary
    /// files. Returns (blobs removed, bytes freed).
    pub fn prune(&self) -> Result<(usize, u64)> {
        let mut keep = HashSet::new();
        let mut stack: Vec<Descriptor> = self.read_index()?.manifests;
        while let Some(desc) = stack.pop() {
            if !keep.insert(desc.digest.clone()) {
                continue;
            }
            let Ok(bytes) = fs::read(self.blob_path(&desc.digest)) else {
                continue;
            };
            // Walk anything that looks like a manifest or index.
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                for key in ["config", "subject"] {
                    if let Some(d) = v
                        .get(key)
                        .and_then(|d| serde_json::from_value::<Descriptor>(d.clone()).ok())
                    {
                        stack.push(d);
                    }
                }
                for key in ["layers", "manifests"] {
                    if let Some(list) = v
                        .get(key)
                        .and_then(|l| serde_json::from_value::<Vec<Descriptor>>(l.clone()).ok())
                    {
                        stack.extend(list);
                    }
                }
            }
        }
        let mut removed = 0;
        let mut freed = 0;
        let dir = self.root.join("blobs/sha256");
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().to_string();
            let reachable = Digest::parse(&format!("sha256:{name}"))
                .map(|d| keep.contains(&d))
                .unwrap_or(false);
            if !reachable {
                freed += entry.metadata().map(|m| m.len()).unwrap_or(0);
                fs::remove_file(entry.path())
                    .with_context(|| format!("removing {}", entry.path().display()))?;
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
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                continue;
            }
            n += 1;
            bytes += entry.metadata()?.len();
        }
        Ok((n, bytes))
    }

    /// Sniffs the media type of a manifest blob stored without a tag.
    fn media_type_of(&self, digest: &Digest) -> Result<Descriptor> {
        let path = self.blob_path(digest);
        let bytes = fs::read(&path).map_err(|_| {
            fail(
                Kind::NotFound,
                format!("{digest} not found in {}", self.location()),
            )
        })?;
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

/// Takes an exclusive `flock` on `path` (created if absent), held until the
/// returned file is dropped. The go command's `lockedfile` uses the same
/// mechanism, so this also excludes a go command working on the same file.
pub fn exclusive_lock(path: &Path) -> Result<File> {
    let lock = File::options()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("opening lock file {}", path.display()))?;
    // SAFETY: flock on a file descriptor owned by `lock`, which outlives the call.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("locking {}", path.display()));
    }
    Ok(lock)
}

/// Writes a file by temp + rename in the same directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_data()?;
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
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
                index.manifests.retain(|d| {
                    d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str) != Some(tag)
                });
                index.manifests.push(entry);
            })?;
        }
        Ok(desc)
    }

    fn blob_exists(&self, digest: &Digest) -> Result<bool> {
        Ok(self.blob_path(digest).is_file())
    }

    fn fetch_blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + '_>> {
        let path = self.blob_path(&desc.digest);
        let file = File::open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                fail(
                    Kind::NotFound,
                    format!("blob {} is missing from {}", desc.digest, self.location()),
                )
            } else {
                anyhow::Error::new(e).context(format!("opening {}", path.display()))
            }
        })?;
        let what = format!("blob {} in {}", desc.digest, self.location());
        Ok(Box::new(VerifyingReader::new(
            io::BufReader::with_capacity(1 << 20, file),
            desc,
            what,
        )))
    }

    fn push_blob(&self, desc: &Descriptor, content: &mut dyn Read) -> Result<()> {
        let dir = self.root.join("blobs/sha256");
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&dir)
            .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
        let what = format!("blob {}", desc.digest);
        let mut verifying = VerifyingReader::new(content, desc, what);
        io::copy(&mut verifying, tmp.as_file_mut()).map_err(|e| {
            oci::classify_io(e, || {
                format!("storing blob {} in {}", desc.digest, self.location())
            })
        })?;
        let target = self.blob_path(&desc.digest);
        tmp.persist(&target)
            .with_context(|| format!("storing {}", target.display()))?;
        Ok(())
    }

    fn list_tags(&self) -> Result<Vec<String>> {
        Ok(self.refs()?.into_iter().map(|(n, _)| n).collect())
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
mod tests {
    use super::*;

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
