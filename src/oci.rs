//! The OCI vocabulary every store speaks: digests, descriptors, manifests,
//! indexes, references, and the [`Repository`] interface (resolve, fetch,
//! push, exists) that the local layout store and the registry client both
//! implement.
//!
//! The [`Referrers`] interface (OCI 1.1: manifests pointing at another
//! through `subject`) is part of every repository; the pure pieces of the
//! referrers tag schema (the `sha256-<hex>` fallback tag and its index) are
//! here, the I/O is in each implementation.
//!
//! Owns: parsing and serialising OCI JSON, reference syntax, digest
//! verification of streams. Must not: know about Go modules or the ocigo
//! artifact layout (that is `artifact`), or do any I/O of its own beyond
//! wrapping readers.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read};

use anyhow::Result;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{Kind, fail, fail_hint};

pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_TYPE_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_TYPE_DOCKER_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Registries refuse manifests over 4 MiB (distribution and Harbor alike).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// A `sha256:<64 hex>` content digest. Only sha256 is accepted.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

impl Digest {
    pub fn parse(s: &str) -> Result<Digest> {
        let hex = s.strip_prefix("sha256:").ok_or_else(|| {
            fail(
                Kind::Usage,
                format!("unsupported digest {s:?}: only sha256 is accepted"),
            )
        })?;
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(fail(
                Kind::Usage,
                format!("malformed digest {s:?}: want sha256: and 64 lower-case hex digits"),
            ));
        }
        Ok(Digest(s.to_string()))
    }

    pub fn of_bytes(bytes: &[u8]) -> Digest {
        Digest(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }

    pub fn from_sha256(hasher: Sha256) -> Digest {
        Digest(format!("sha256:{}", hex::encode(hasher.finalize())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex digits after `sha256:`.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }
}

impl TryFrom<String> for Digest {
    type Error = anyhow::Error;
    fn try_from(s: String) -> Result<Digest> {
        Digest::parse(&s)
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            artifact_type: None,
            platform: None,
            annotations: BTreeMap::new(),
        }
    }

    /// A descriptor for bytes held in memory (manifests, configs, payloads).
    pub fn for_bytes(media_type: impl Into<String>, bytes: &[u8]) -> Descriptor {
        Descriptor::new(media_type, Digest::of_bytes(bytes), bytes.len() as u64)
    }

    pub fn is_index(&self) -> bool {
        self.media_type == MEDIA_TYPE_INDEX || self.media_type == MEDIA_TYPE_DOCKER_LIST
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Serialises OCI JSON the one way ocigo always does (compact, field order
/// fixed by the structs), so the same content gives the same digest.
pub fn to_canonical_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("OCI structs always serialise")
}

/// A manifest or index as fetched: exact bytes plus the descriptor they match.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub descriptor: Descriptor,
    pub bytes: Vec<u8>,
}

impl FetchedManifest {
    /// Whether these bytes are an index. Decided from the digest-checked
    /// bytes (their `mediaType`, else the presence of `manifests`), never
    /// from the Content-Type a registry sent.
    pub fn is_index(&self) -> bool {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Kind {
            media_type: Option<String>,
            manifests: Option<serde_json::Value>,
        }
        match serde_json::from_slice::<Kind>(&self.bytes) {
            Ok(Kind {
                media_type: Some(t),
                ..
            }) => t == MEDIA_TYPE_INDEX || t == MEDIA_TYPE_DOCKER_LIST,
            Ok(k) => k.manifests.is_some(),
            Err(_) => false,
        }
    }

    pub fn manifest(&self) -> Result<Manifest> {
        serde_json::from_slice(&self.bytes).map_err(|e| {
            fail(
                Kind::Integrity,
                format!(
                    "manifest {} is not valid OCI JSON: {e}",
                    self.descriptor.digest
                ),
            )
        })
    }

    pub fn index(&self) -> Result<Index> {
        serde_json::from_slice(&self.bytes).map_err(|e| {
            fail(
                Kind::Integrity,
                format!(
                    "index {} is not valid OCI JSON: {e}",
                    self.descriptor.digest
                ),
            )
        })
    }
}

/// OCI 1.1 referrers: the manifests whose `subject` names a given manifest
/// (signatures in the cosign v3 bundle format, attestations, SBOMs).
///
/// Registries answer from the referrers API
/// (`GET /v2/<name>/referrers/<digest>`) and, where it is missing (404: CNCF
/// distribution 2.8, Harbor before 2.8), from the fallback tag
/// `sha256-<hex>` holding an image index. OCI layouts keep referrers as
/// untagged entries of `index.json`, as oras-go's OCI store does.
pub trait Referrers {
    /// Descriptors of the manifests whose subject is `subject`, each with
    /// its `artifactType` (the manifest's own, else its config media type)
    /// and annotations, as the referrers API lists them. With
    /// `artifact_type`, only those of that type. Empty when there are none.
    fn referrers(&self, subject: &Digest, artifact_type: Option<&str>) -> Result<Vec<Descriptor>>;

    /// Stores a manifest (or index) whose `subject` is `subject` so that
    /// [`Referrers::referrers`] finds it: by digest, untagged, plus whatever
    /// bookkeeping the store needs (the fallback tag's index on a registry
    /// that did not confirm the subject with `OCI-Subject`). Its blobs (or
    /// child manifests) must be there already.
    fn push_referrer(
        &self,
        media_type: &str,
        bytes: &[u8],
        subject: &Descriptor,
    ) -> Result<Descriptor>;
}

/// The referrers tag schema's tag for `subject`: `sha256-<64 hex>`.
pub fn referrers_tag(subject: &Digest) -> String {
    format!("sha256-{}", subject.hex())
}

/// What a manifest or index says about itself for a referrers listing:
/// `subject`, `artifactType` (the manifest's own, else the config's media
/// type) and annotations. `None` when the bytes are not OCI JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferrerInfo {
    pub subject: Option<Descriptor>,
    pub artifact_type: Option<String>,
    pub annotations: BTreeMap<String, String>,
}

impl ReferrerInfo {
    pub fn of(bytes: &[u8]) -> Option<ReferrerInfo> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Sniff {
            #[serde(default)]
            subject: Option<Descriptor>,
            #[serde(default)]
            artifact_type: Option<String>,
            #[serde(default)]
            config: Option<Descriptor>,
            #[serde(default)]
            annotations: BTreeMap<String, String>,
        }
        let s: Sniff = serde_json::from_slice(bytes).ok()?;
        Some(ReferrerInfo {
            subject: s.subject,
            artifact_type: s
                .artifact_type
                .filter(|t| !t.is_empty())
                .or(s.config.map(|c| c.media_type)),
            annotations: s.annotations,
        })
    }

    /// The descriptor a referrers listing shows for `bytes` of `media_type`.
    pub fn descriptor(&self, media_type: &str, bytes: &[u8]) -> Descriptor {
        let mut d = Descriptor::for_bytes(media_type, bytes);
        d.artifact_type = self.artifact_type.clone();
        d.annotations = self.annotations.clone();
        d
    }
}

/// Keeps the descriptors of `artifact_type` (all when `None`), dropping
/// repeated digests (first one wins).
pub fn filter_referrers(list: Vec<Descriptor>, artifact_type: Option<&str>) -> Vec<Descriptor> {
    let mut seen = std::collections::HashSet::new();
    list.into_iter()
        .filter(|d| artifact_type.is_none_or(|t| d.artifact_type.as_deref() == Some(t)))
        .filter(|d| seen.insert(d.digest.clone()))
        .collect()
}

/// The fallback tag's index with `referrer` added (replacing an entry of
/// the same digest); `None` when it is already there as given, so nothing
/// needs pushing.
pub fn referrers_index_with(current: Option<Index>, referrer: &Descriptor) -> Option<Index> {
    let mut index = current.unwrap_or_else(|| Index {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_INDEX.to_string()),
        artifact_type: None,
        manifests: Vec::new(),
        subject: None,
        annotations: BTreeMap::new(),
    });
    if index.manifests.iter().any(|d| d == referrer) {
        return None;
    }
    index.manifests.retain(|d| d.digest != referrer.digest);
    index.manifests.push(referrer.clone());
    Some(index)
}

/// The one interface over every place artifacts live: an OCI layout on disk
/// (the local content store, a removable disk) or a registry repository.
/// Every repository also answers for referrers ([`Referrers`]).
pub trait Repository: Referrers {
    /// Where this is, for messages (`oci:/mnt/disk`, `127.0.0.1:5000/team/mods`).
    fn location(&self) -> String;

    /// Resolves a tag or digest to the descriptor of a manifest or index.
    fn resolve(&self, reference: &str) -> Result<Descriptor>;

    /// Fetches a manifest or index and checks its bytes against `desc.digest`.
    fn fetch_manifest(&self, desc: &Descriptor) -> Result<FetchedManifest>;

    /// Stores manifest bytes exactly as given, optionally under a tag.
    fn push_manifest(
        &self,
        media_type: &str,
        bytes: &[u8],
        tag: Option<&str>,
    ) -> Result<Descriptor>;

    fn blob_exists(&self, digest: &Digest) -> Result<bool>;

    /// Opens a blob as a stream. The stream is verified against `desc` as it
    /// is read: it fails at the end if size or digest differ.
    fn fetch_blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + '_>>;

    /// Stores a blob from a stream; the store checks size and digest.
    fn push_blob(&self, desc: &Descriptor, content: &mut dyn Read) -> Result<()>;

    /// Lists tags (for tools and tests; signatures are found by their
    /// `sha256-<hex>.sig` tag directly). Empty when there are none.
    fn list_tags(&self) -> Result<Vec<String>>;

    /// `(host, repository)` when this is a registry repository.
    fn registry_name(&self) -> Option<(String, String)> {
        None
    }

    /// Links a blob from another repository of the same registry without
    /// sending it (cross-repository mount). `Ok(false)`: not mounted, push it.
    fn mount_blob_from(&self, _digest: &Digest, _from_repository: &str) -> Result<bool> {
        Ok(false)
    }
}

/// Wraps a reader and checks, at end of stream, that exactly `size` bytes with
/// digest `digest` were read. Also refuses to read past `size`, so a lying
/// server cannot stream without bound.
pub struct VerifyingReader<R> {
    inner: R,
    expected: Descriptor,
    hasher: Sha256,
    seen: u64,
    what: String,
}

impl<R: Read> VerifyingReader<R> {
    pub fn new(inner: R, expected: &Descriptor, what: impl Into<String>) -> Self {
        VerifyingReader {
            inner,
            expected: expected.clone(),
            hasher: Sha256::new(),
            seen: 0,
            what: what.into(),
        }
    }
}

fn integrity_io_error(message: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        Failure2(fail(Kind::Integrity, message)),
    )
}

/// Carries a classified failure through `io::Error` so the class survives.
#[derive(Debug)]
struct Failure2(anyhow::Error);
impl fmt::Display for Failure2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
impl std::error::Error for Failure2 {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.chain().next()
    }
}

/// Carries a classified error (see [`crate::error::fail`]) through a
/// `Read` implementation: a stream that fails for a known reason (a network
/// cut, a stalled transfer) keeps its class and hints up to
/// [`classify_io`].
pub fn classified_io_error(err: anyhow::Error) -> io::Error {
    io::Error::other(Failure2(err))
}

/// The class of an `io::Error` made by [`classified_io_error`] or a
/// [`VerifyingReader`], if it carries one.
pub fn io_error_kind(err: &io::Error) -> Option<Kind> {
    err.get_ref()
        .and_then(|e| e.downcast_ref::<Failure2>())
        .and_then(|f| crate::error::kind_of(&f.0))
}

/// Recovers the class of an `io::Error` produced by a [`VerifyingReader`].
pub fn io_error_is_integrity(err: &io::Error) -> bool {
    io_error_kind(err) == Some(Kind::Integrity)
}

/// Converts an I/O error from a verified stream into an anyhow error that
/// keeps the class (and hints) the stream gave it: integrity when it failed
/// verification, remote when the network failed under it.
pub fn classify_io(err: io::Error, context: impl FnOnce() -> String) -> anyhow::Error {
    if io_error_kind(&err).is_some() {
        let inner = err
            .into_inner()
            .expect("a classified io::Error has an inner error")
            .downcast::<Failure2>()
            .expect("checked above");
        inner.0.context(context())
    } else {
        anyhow::Error::new(err).context(context())
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let remaining = self.expected.size.saturating_sub(self.seen);
        // One byte more than allowed, so an over-long stream is noticed.
        let limit = buf
            .len()
            .min(usize::try_from(remaining + 1).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..limit])?;
        self.seen += n as u64;
        if self.seen > self.expected.size {
            return Err(integrity_io_error(format!(
                "{} is longer than its declared {} bytes",
                self.what, self.expected.size
            )));
        }
        self.hasher.update(&buf[..n]);
        if n == 0 && limit > 0 {
            if self.seen != self.expected.size {
                return Err(integrity_io_error(format!(
                    "{} is truncated: got {} of {} bytes",
                    self.what, self.seen, self.expected.size
                )));
            }
            let got = Digest::from_sha256(self.hasher.clone());
            if got != self.expected.digest {
                return Err(integrity_io_error(format!(
                    "{} has digest {got}, expected {}",
                    self.what, self.expected.digest
                )));
            }
        }
        Ok(n)
    }
}

/// Where an artifact lives, as written on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// `oci:DIR[:TAG|@DIGEST]`: an OCI image layout directory.
    Layout { dir: String, reference: String },
    /// `HOST[:PORT]/REPO[:TAG|@DIGEST]`: a registry repository.
    Registry {
        host: String,
        repository: String,
        reference: String,
    },
}

pub const DEFAULT_TAG: &str = "latest";

impl Reference {
    pub fn parse(s: &str) -> Result<Reference> {
        const FORMS: &str = "write oci:DIR[:TAG] for an OCI layout directory or \
                             HOST[:PORT]/REPO[:TAG] for a registry";
        let bad = |why: &str| {
            fail_hint(
                Kind::Usage,
                format!("cannot read reference {s:?}: {why}"),
                FORMS,
            )
        };
        if let Some(err) = common_mistake(s) {
            return Err(err);
        }
        if let Some(rest) = s.strip_prefix("oci:") {
            let (dir, reference) = split_reference(rest);
            if dir.is_empty() {
                return Err(bad("the directory is empty"));
            }
            let reference = reference.unwrap_or(DEFAULT_TAG);
            if let Some(d) = reference.strip_prefix('@') {
                Digest::parse(d)?;
            }
            return Ok(Reference::Layout {
                dir: dir.to_string(),
                reference: reference.trim_start_matches('@').to_string(),
            });
        }
        let (name, reference) = split_reference(s);
        let (host, repository) = name
            .split_once('/')
            .ok_or_else(|| bad("no registry host"))?;
        if !(host.contains('.') || host.contains(':') || host == "localhost") {
            return Err(bad(
                "the first part must be a registry host (with a dot or a port, or localhost)",
            ));
        }
        if !is_repository_name(repository) {
            return Err(bad(
                "repository names are lower-case letters, digits, '.', '_', '-' and '/'",
            ));
        }
        let reference = reference.unwrap_or(DEFAULT_TAG);
        if let Some(d) = reference.strip_prefix('@') {
            Digest::parse(d)?;
        }
        Ok(Reference::Registry {
            host: host.to_string(),
            repository: repository.to_string(),
            reference: reference.trim_start_matches('@').to_string(),
        })
    }

    /// The tag or digest part.
    pub fn tag_or_digest(&self) -> &str {
        match self {
            Reference::Layout { reference, .. } | Reference::Registry { reference, .. } => {
                reference
            }
        }
    }

    /// The tag, if the reference names one (not a digest).
    pub fn tag(&self) -> Option<&str> {
        let r = self.tag_or_digest();
        (!r.starts_with("sha256:")).then_some(r)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sep = |r: &str| if r.starts_with("sha256:") { "@" } else { ":" };
        match self {
            Reference::Layout { dir, reference } => {
                write!(f, "oci:{dir}{}{reference}", sep(reference))
            }
            Reference::Registry {
                host,
                repository,
                reference,
            } => write!(f, "{host}/{repository}{}{reference}", sep(reference)),
        }
    }
}

/// A URL scheme or a bare file-system path where a reference belongs: the
/// error names that mistake and its fix rather than a character set.
fn common_mistake(s: &str) -> Option<anyhow::Error> {
    if let Some((scheme, rest)) = s.split_once("://") {
        let scheme_lc = scheme.to_ascii_lowercase();
        let (what, hint) = match scheme_lc.as_str() {
            "http" | "https" => (
                "a registry reference has no URL scheme",
                format!(
                    "drop the {scheme}:// and write {rest}; plain HTTP is used for localhost \
                     and 127.0.0.1, and with --plain-http for other hosts"
                ),
            ),
            "docker" => (
                "ocigo references have no transport prefix",
                format!("drop the docker:// and write {rest}"),
            ),
            "oci" | "oci-layout" | "file" => (
                "an OCI layout directory is written oci:DIR, without //",
                format!("write oci:{rest}"),
            ),
            _ => (
                "a reference has no URL scheme",
                format!(
                    "write {rest} for a registry, or oci:DIR[:TAG] for an OCI layout directory"
                ),
            ),
        };
        return Some(fail_hint(
            Kind::Usage,
            format!("cannot read reference {s:?}: {what}"),
            hint,
        ));
    }
    let first = s.split('/').next().unwrap_or_default();
    let path_like = s.starts_with('/')
        || s.starts_with('~')
        || first == "."
        || first == ".."
        || (!first.contains('.')
            && !first.contains(':')
            && first != "localhost"
            && !s.starts_with("oci:")
            && std::path::Path::new(s).exists());
    path_like.then(|| {
        fail_hint(
            Kind::Usage,
            format!(
                "cannot read reference {s:?}: it is a file-system path; \
                 an OCI layout directory is written with oci: in front"
            ),
            format!("write oci:{s} (add :TAG to name a tag; the default is {DEFAULT_TAG})"),
        )
    })
}

/// Whether `name` is a valid repository name: `/`-separated components of
/// lower-case letters, digits, `.`, `_` and `-`.
pub fn is_repository_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('/').all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        })
}

/// Splits `name[:tag]` or `name@digest`; a `:` before the last `/` belongs to
/// the name (a port, or a directory like `/mnt/a:b/x`).
fn split_reference(s: &str) -> (&str, Option<&str>) {
    if let Some(at) = s.rfind("@sha256:") {
        return (&s[..at], Some(&s[at..]));
    }
    let last_slash = s.rfind('/').map(|i| i + 1).unwrap_or(0);
    match s[last_slash..].rfind(':') {
        Some(i) => (&s[..last_slash + i], Some(&s[last_slash + i + 1..])),
        None => (s, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        assert_eq!(
            Reference::parse("oci:/mnt/disk:v1").unwrap(),
            Reference::Layout {
                dir: "/mnt/disk".into(),
                reference: "v1".into()
            }
        );
        assert_eq!(
            Reference::parse("oci:rel/dir").unwrap().tag(),
            Some("latest")
        );
        let r = Reference::parse("127.0.0.1:5000/team/mods:v2").unwrap();
        assert_eq!(
            r,
            Reference::Registry {
                host: "127.0.0.1:5000".into(),
                repository: "team/mods".into(),
                reference: "v2".into()
            }
        );
        assert_eq!(r.to_string(), "127.0.0.1:5000/team/mods:v2");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("localhost/x@{d}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.to_string(), format!("localhost/x@{d}"));
        let r = Reference::parse(&format!("oci:/mnt/disk@{d}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.tag_or_digest(), d);
        assert_eq!(r.to_string(), format!("oci:/mnt/disk@{d}"));
        assert!(Reference::parse("justaname").is_err());
        // A scheme or a path: the error names that mistake and the fix.
        for (input, want_hint) in [
            (
                "https://ghcr.io/team/mods:v1",
                "drop the https:// and write ghcr.io/team/mods:v1",
            ),
            (
                "http://localhost:5000/x",
                "drop the http:// and write localhost:5000/x",
            ),
            (
                "docker://ghcr.io/team/mods",
                "drop the docker:// and write ghcr.io/team/mods",
            ),
            ("oci:///mnt/disk", "write oci:/mnt/disk"),
            ("/mnt/disk", "write oci:/mnt/disk"),
            ("./bundles:v1", "write oci:./bundles:v1"),
            ("../up", "write oci:../up"),
            ("~/bundles", "write oci:~/bundles"),
        ] {
            let err = Reference::parse(input).unwrap_err();
            assert_eq!(crate::error::exit_code(&err), 2, "{input}");
            let hints = crate::error::hints(&err);
            assert!(
                hints.iter().any(|h| h.contains(want_hint)),
                "{input}: {hints:?}"
            );
            let msg = crate::error::render(&err);
            assert!(!msg.contains("lower-case"), "{input}: {msg}");
        }
        let err = Reference::parse("host.io/UPPER").unwrap_err();
        assert!(crate::error::render(&err).contains("lower-case"));
        assert!(crate::error::hints(&err)[0].contains("oci:DIR"));
        assert!(Reference::parse("host.io/UPPER").is_err());
    }

    #[test]
    fn verifying_reader_catches_truncation_and_tampering() {
        let data = b"hello world";
        let desc = Descriptor::for_bytes("x", data);
        let mut out = Vec::new();
        VerifyingReader::new(&data[..], &desc, "blob")
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);

        let err = VerifyingReader::new(&data[..5], &desc, "blob")
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(io_error_is_integrity(&err));
        assert!(err.to_string().contains("truncated"), "{err}");

        let err = VerifyingReader::new(&b"hello_world"[..], &desc, "blob")
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("expected"), "{err}");

        let err = VerifyingReader::new(&b"hello world, and more"[..], &desc, "blob")
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("longer"), "{err}");
    }
}
