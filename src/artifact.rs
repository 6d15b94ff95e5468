//! The ocigo module-bundle artifact: format v2 (written) and v1 (read).
//!
//! Format v2 is an OCI image index whose first manifest is a small header
//! (main modules, platforms, counts) and whose other manifests are parts,
//! each with a config listing its module versions and one layer per module
//! zip. Part boundaries are content-defined by module path, so adding,
//! removing or upgrading one module version changes one part (rarely two),
//! and parts hold nothing bundle-specific: two bundles that agree on a range
//! of module paths share those parts' blobs and manifests. Format v1 (one
//! config per manifest, header repeated, cut every 5,000 modules) is read.
//!
//! Owns: building the artifact deterministically from a list of module
//! entries, and reading it back part by part with every cross-reference
//! checked. Must not: do I/O other than through the `oci::Repository` it is
//! given, or know how modules were resolved or where they get installed.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{Kind, fail};
use crate::oci::{
    self, Descriptor, Digest, FetchedManifest, Index, Manifest, Repository, to_canonical_json,
};

/// artifactType of a format v2 bundle (the index and every manifest in it).
pub const ARTIFACT_TYPE_MODULES: &str = "application/vnd.ocigo.modules.v2";
/// artifactType of a format v1 bundle (read only).
pub const ARTIFACT_TYPE_MODULES_V1: &str = "application/vnd.ocigo.modules.v1";
/// artifactType of the checksum-database manifest a v2 index may list
/// after its parts (`crate::sumdata` reads it).
pub const ARTIFACT_TYPE_SUMDB: &str = "application/vnd.ocigo.sumdb.v1";
/// Config of the v2 header manifest.
pub const MEDIA_TYPE_BUNDLE_CONFIG: &str = "application/vnd.ocigo.bundle.config.v2+json";
/// Config of a v2 part manifest.
pub const MEDIA_TYPE_PART_CONFIG: &str = "application/vnd.ocigo.modules.part.v2+json";
/// Config of a v1 manifest (read only).
pub const MEDIA_TYPE_MODULES_CONFIG: &str = "application/vnd.ocigo.modules.config.v1+json";
pub const MEDIA_TYPE_MODULE_ZIP: &str = "application/vnd.ocigo.module.v1.zip";
/// The format pack writes.
pub const FORMAT_VERSION: u32 = 2;
/// Annotation on each part's descriptor in the index: `<n>/<count>`, 1-based.
pub const ANNOTATION_PART: &str = "dev.ocigo.bundle.part";
/// Annotation on the header manifest's descriptor in a v2 index.
pub const ANNOTATION_ROLE: &str = "dev.ocigo.bundle.role";

/// Keep well under the 4 MiB registries accept: descriptors vary in length.
pub const DEFAULT_MAX_MANIFEST_BYTES: usize = oci::MAX_MANIFEST_BYTES - 256 * 1024;
/// A hard cap on one part, cut whatever the content-defined boundaries say.
pub const DEFAULT_MAX_MODULES_PER_MANIFEST: usize = 2048;
/// Mean number of module paths per part: a path ends a part when the first
/// 8 bytes of sha256(path), as a big-endian number, are divisible by this.
/// Chosen by measurement (README "Artifact format v2"): smaller parts make
/// one-module changes cheaper and the index longer.
pub const DEFAULT_PATHS_PER_PART: u64 = 128;
/// Bounds a config blob read back (v1 parts were up to 5,000 modules).
const MAX_CONFIG_BYTES: u64 = 256 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MainModule {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub go_version: Option<String>,
}

/// Where a module's zip is: its go.sum hash and the layer that holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ZipRef {
    /// `h1:` hash of the zip's content, as go.sum records it.
    pub hash: String,
    /// Digest of the layer holding the zip byte for byte.
    pub layer: Digest,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModuleEntry {
    pub path: String,
    pub version: String,
    /// The `.info` file exactly as the go command got it, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<String>,
    /// The `.mod` file exactly.
    #[serde(rename = "mod")]
    pub go_mod: String,
    /// `h1:` hash of the `.mod` file, as go.sum's `/go.mod` line records it.
    pub mod_hash: String,
    /// Absent when only the go.mod is needed (module graph loading).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zip: Option<ZipRef>,
}

/// What pack gives `build`, and the config blob of a v1 manifest: the
/// header fields and module entries. (A v1 split bundle repeats the header
/// fields in each part and lists only that part's modules.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModulesConfig {
    pub format_version: u32,
    pub main_modules: Vec<MainModule>,
    /// `os/arch` platforms the closure was resolved for.
    pub platforms: Vec<String>,
    /// Only set when the user asks for one (`--created`): keeps packing deterministic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    pub modules: Vec<ModuleEntry>,
}

/// The config of a v2 header manifest (`schemas/bundle-config.v2.schema.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BundleHeader {
    pub format_version: u32,
    pub main_modules: Vec<MainModule>,
    pub platforms: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Module versions in all parts.
    pub modules: u64,
    /// Of those, how many have a zip, and the zips' total size.
    pub zips: u64,
    pub zip_bytes: u64,
}

/// The config of a v2 part manifest (`schemas/part-config.v2.schema.json`):
/// nothing but the part's modules, so equal parts are equal blobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PartConfig {
    pub format_version: u32,
    pub modules: Vec<ModuleEntry>,
}

impl ModulesConfig {
    /// Checks a v1 config: the version, and that entries are unique.
    pub fn validate(&self) -> Result<()> {
        if self.format_version != 1 {
            return Err(unsupported_version(self.format_version));
        }
        let mut seen = HashSet::new();
        for m in &self.modules {
            if !seen.insert((&m.path, &m.version)) {
                return Err(fail(
                    Kind::Integrity,
                    format!("bundle config lists {}@{} twice", m.path, m.version),
                ));
            }
        }
        Ok(())
    }
}

fn unsupported_version(v: u32) -> anyhow::Error {
    fail(
        Kind::Integrity,
        format!(
            "bundle format version {v} is not supported by this ocigo (it reads versions 1 and \
             {FORMAT_VERSION}); upgrade ocigo"
        ),
    )
}

fn module_order(a: &ModuleEntry, b: &ModuleEntry) -> std::cmp::Ordering {
    a.path
        .cmp(&b.path)
        .then_with(|| crate::gomod::semver::compare(&a.version, &b.version))
}

/// An artifact ready to store: the small blobs (configs) and the manifests.
/// Zip layers are already in the store.
#[derive(Debug, Clone)]
pub struct BuiltArtifact {
    /// Config blobs, in push order.
    pub blobs: Vec<(Descriptor, Vec<u8>)>,
    /// The header and part manifests, pushed before the top.
    pub parts: Vec<(Descriptor, Vec<u8>)>,
    pub top_media_type: String,
    pub top: Vec<u8>,
}

/// Limits that decide where a bundle is cut; tests shrink them.
#[derive(Debug, Clone, Copy)]
pub struct SplitLimits {
    pub max_manifest_bytes: usize,
    pub max_modules: usize,
    /// Mean module paths per part (content-defined boundaries).
    pub paths_per_part: u64,
}

impl Default for SplitLimits {
    fn default() -> Self {
        SplitLimits {
            max_manifest_bytes: DEFAULT_MAX_MANIFEST_BYTES,
            max_modules: DEFAULT_MAX_MODULES_PER_MANIFEST,
            paths_per_part: DEFAULT_PATHS_PER_PART,
        }
    }
}

/// Whether `path` ends a part that already holds `paths` module paths
/// (this one included). Normally when sha256(path) is divisible by
/// `paths_per_part`: that depends on nothing but the path, so a cut never
/// moves when other modules come or go. A part that has reached twice the
/// mean also ends at a path divisible by `paths_per_part / 16`, still
/// chosen by content, so parts are rarely much larger than the mean (a
/// one-module change sends the whole part that holds it).
pub fn ends_part(path: &str, paths: u64, paths_per_part: u64) -> bool {
    let h = Sha256::digest(path.as_bytes());
    let n = u64::from_be_bytes(h[..8].try_into().expect("8 bytes"));
    let mean = paths_per_part.max(1);
    n % mean == 0 || (paths >= mean.saturating_mul(2) && n % (mean / 16).max(1) == 0)
}

fn layer_descriptor(zip: &ZipRef) -> Descriptor {
    Descriptor::new(MEDIA_TYPE_MODULE_ZIP, zip.layer.clone(), zip.size)
}

fn manifest_of(config_media_type: &str, config_bytes: &[u8], layers: Vec<Descriptor>) -> Vec<u8> {
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(oci::MEDIA_TYPE_MANIFEST.to_string()),
        artifact_type: Some(ARTIFACT_TYPE_MODULES.to_string()),
        config: Descriptor::for_bytes(config_media_type, config_bytes),
        layers,
        subject: None,
        annotations: BTreeMap::new(),
    };
    to_canonical_json(&manifest)
}

/// Builds a format v2 artifact: an index of a header manifest and the
/// parts. Modules are sorted by path and version so the same closure always
/// gives the same bytes; a part ends after the last version of a path that
/// [`ends_part`], or earlier when it would pass a limit.
pub fn build(mut input: ModulesConfig, limits: SplitLimits) -> Result<BuiltArtifact> {
    let mut modules = std::mem::take(&mut input.modules);
    modules.sort_by(module_order);
    for w in modules.windows(2) {
        if module_order(&w[0], &w[1]).is_eq() {
            return Err(fail(
                Kind::Integrity,
                format!("bundle config lists {}@{} twice", w[0].path, w[0].version),
            ));
        }
    }
    input.platforms.sort();
    input.platforms.dedup();

    let empty_manifest_len = manifest_of(MEDIA_TYPE_PART_CONFIG, b"{}", Vec::new()).len();
    let header = BundleHeader {
        format_version: FORMAT_VERSION,
        main_modules: input.main_modules,
        platforms: input.platforms,
        created: input.created,
        modules: modules.len() as u64,
        zips: modules.iter().filter(|m| m.zip.is_some()).count() as u64,
        zip_bytes: modules
            .iter()
            .filter_map(|m| m.zip.as_ref())
            .map(|z| z.size)
            .sum(),
    };

    let mut blobs = Vec::new();
    let mut parts = Vec::new();
    let header_bytes = to_canonical_json(&header);
    let header_manifest = manifest_of(MEDIA_TYPE_BUNDLE_CONFIG, &header_bytes, Vec::new());
    blobs.push((
        Descriptor::for_bytes(MEDIA_TYPE_BUNDLE_CONFIG, &header_bytes),
        header_bytes,
    ));
    let mut header_desc = Descriptor::for_bytes(oci::MEDIA_TYPE_MANIFEST, &header_manifest);
    header_desc.artifact_type = Some(ARTIFACT_TYPE_MODULES.to_string());
    header_desc
        .annotations
        .insert(ANNOTATION_ROLE.to_string(), "header".to_string());
    parts.push((header_desc, header_manifest));

    let mut groups: Vec<Vec<ModuleEntry>> = Vec::new();
    let mut current: Vec<ModuleEntry> = Vec::new();
    let mut current_len = empty_manifest_len;
    let mut current_paths = 0u64;
    let count = modules.len();
    let mut iter = modules.into_iter().peekable();
    while let Some(m) = iter.next() {
        let add = m
            .zip
            .as_ref()
            .map(|z| to_canonical_json(&layer_descriptor(z)).len() + 1)
            .unwrap_or(0);
        if empty_manifest_len + add > limits.max_manifest_bytes {
            return Err(fail(
                Kind::Usage,
                format!(
                    "the manifest size limit {} is too small for even one module",
                    limits.max_manifest_bytes
                ),
            ));
        }
        if !current.is_empty()
            && (current_len + add > limits.max_manifest_bytes
                || current.len() >= limits.max_modules.max(1))
        {
            groups.push(std::mem::take(&mut current));
            current_len = empty_manifest_len;
            current_paths = 0;
        }
        current_len += add;
        let last_of_path = iter.peek().is_none_or(|next| next.path != m.path);
        if last_of_path {
            current_paths += 1;
        }
        let cut = last_of_path && ends_part(&m.path, current_paths, limits.paths_per_part);
        current.push(m);
        if cut {
            groups.push(std::mem::take(&mut current));
            current_len = empty_manifest_len;
            current_paths = 0;
        }
    }
    if !current.is_empty() || count == 0 {
        groups.push(current);
    }

    let n = groups.len();
    let mut entries = vec![parts[0].0.clone()];
    for (i, group) in groups.into_iter().enumerate() {
        let layers = group
            .iter()
            .filter_map(|m| m.zip.as_ref().map(layer_descriptor))
            .collect();
        let config = to_canonical_json(&PartConfig {
            format_version: FORMAT_VERSION,
            modules: group,
        });
        let manifest = manifest_of(MEDIA_TYPE_PART_CONFIG, &config, layers);
        blobs.push((
            Descriptor::for_bytes(MEDIA_TYPE_PART_CONFIG, &config),
            config,
        ));
        let mut desc = Descriptor::for_bytes(oci::MEDIA_TYPE_MANIFEST, &manifest);
        desc.artifact_type = Some(ARTIFACT_TYPE_MODULES.to_string());
        desc.annotations
            .insert(ANNOTATION_PART.to_string(), format!("{}/{n}", i + 1));
        entries.push(desc.clone());
        parts.push((desc, manifest));
    }
    let index = Index {
        schema_version: 2,
        media_type: Some(oci::MEDIA_TYPE_INDEX.to_string()),
        artifact_type: Some(ARTIFACT_TYPE_MODULES.to_string()),
        manifests: entries,
        subject: None,
        annotations: BTreeMap::new(),
    };
    Ok(BuiltArtifact {
        blobs,
        parts,
        top_media_type: oci::MEDIA_TYPE_INDEX.to_string(),
        top: to_canonical_json(&index),
    })
}

/// Stores a built artifact's small blobs and manifests (zip layers must be
/// there already), tagging the top with `tag`.
pub fn push_built(
    repo: &dyn Repository,
    built: &BuiltArtifact,
    tag: Option<&str>,
) -> Result<Descriptor> {
    for (desc, bytes) in &built.blobs {
        if !repo.blob_exists(&desc.digest)? {
            repo.push_blob(desc, &mut &bytes[..])?;
        }
    }
    for (desc, bytes) in &built.parts {
        repo.push_manifest(&desc.media_type, bytes, None)?;
    }
    repo.push_manifest(&built.top_media_type, &built.top, tag)
}
/// A bundle's top and header, read before any part. Pull, inspect and
/// push walk the parts one at a time with [`load_part`], so memory does not
/// grow with the bundle.
#[derive(Debug, Clone)]
pub struct Outline {
    pub top: FetchedManifest,
    /// 1 or 2.
    pub format_version: u32,
    pub main_modules: Vec<MainModule>,
    pub platforms: Vec<String>,
    pub created: Option<String>,
    /// Module versions, zips and zip bytes the header declares (v2 only;
    /// checked against the parts by [`PartChecker::finish`]).
    pub counts: Option<(u64, u64, u64)>,
    /// The v2 header manifest and its config bytes.
    pub header: Option<(FetchedManifest, Vec<u8>)>,
    /// The part manifests, in order.
    pub parts: Vec<Descriptor>,
}

/// One part of a bundle, read back and checked.
#[derive(Debug, Clone)]
pub struct BundlePart {
    pub manifest: FetchedManifest,
    pub config_descriptor: Descriptor,
    /// The config blob's exact bytes (already digest-checked).
    pub config_bytes: Vec<u8>,
    pub layers: Vec<Descriptor>,
    pub modules: Vec<ModuleEntry>,
}

impl BundlePart {
    /// Stores this part's config and manifest (already fetched and checked)
    /// in `repo`; its layers must be there.
    pub fn store_in(&self, repo: &dyn Repository, top: &Digest) -> Result<()> {
        if !repo.blob_exists(&self.config_descriptor.digest)? {
            repo.push_blob(&self.config_descriptor, &mut &self.config_bytes[..])?;
        }
        if self.manifest.descriptor.digest != *top {
            repo.push_manifest(
                &self.manifest.descriptor.media_type,
                &self.manifest.bytes,
                None,
            )?;
        }
        Ok(())
    }
}

impl Outline {
    /// Stores the header (v2) and the top in `repo`, tagging the top; every
    /// part must be stored already.
    pub fn store_top(&self, repo: &dyn Repository, tag: Option<&str>) -> Result<()> {
        if let Some((manifest, bytes)) = &self.header {
            let config = manifest.manifest()?.config;
            if !repo.blob_exists(&config.digest)? {
                repo.push_blob(&config, &mut &bytes[..])?;
            }
            repo.push_manifest(&manifest.descriptor.media_type, &manifest.bytes, None)?;
        }
        repo.push_manifest(&self.top.descriptor.media_type, &self.top.bytes, tag)?;
        Ok(())
    }
}

/// Checks across parts, with memory that does not grow with a v2 bundle:
/// v2 modules must be strictly ordered (path, then semver) through all
/// parts, so a repeat is always next to its twin; v1 bundles keep a set.
pub struct PartChecker {
    top: Digest,
    format_version: u32,
    last: Option<(String, String)>,
    seen_v1: HashSet<(String, String)>,
    modules: u64,
    zips: u64,
    zip_bytes: u64,
}

impl PartChecker {
    pub fn new(outline: &Outline) -> PartChecker {
        PartChecker {
            top: outline.top.descriptor.digest.clone(),
            format_version: outline.format_version,
            last: None,
            seen_v1: HashSet::new(),
            modules: 0,
            zips: 0,
            zip_bytes: 0,
        }
    }

    /// Checks the next part, in order.
    pub fn check(&mut self, part: &BundlePart) -> Result<()> {
        for m in &part.modules {
            self.modules += 1;
            if let Some(z) = &m.zip {
                self.zips += 1;
                self.zip_bytes += z.size;
            }
            let twice = || {
                fail(
                    Kind::Integrity,
                    format!("bundle {} lists {}@{} twice", self.top, m.path, m.version),
                )
            };
            if self.format_version == 1 {
                if !self.seen_v1.insert((m.path.clone(), m.version.clone())) {
                    return Err(twice());
                }
                continue;
            }
            if let Some((path, version)) = &self.last {
                let order = path
                    .as_str()
                    .cmp(&m.path)
                    .then_with(|| crate::gomod::semver::compare(version, &m.version));
                match order {
                    std::cmp::Ordering::Less => {}
                    std::cmp::Ordering::Equal => return Err(twice()),
                    std::cmp::Ordering::Greater => {
                        return Err(fail(
                            Kind::Integrity,
                            format!(
                                "bundle {} lists {}@{} after {path}@{version}: format v2 \
                                 bundles list modules in order",
                                self.top, m.path, m.version
                            ),
                        ));
                    }
                }
            }
            self.last = Some((m.path.clone(), m.version.clone()));
        }
        Ok(())
    }

    /// After the last part: the header's counts must match what the parts hold.
    pub fn finish(self, outline: &Outline) -> Result<()> {
        if let Some(declared) = outline.counts
            && declared != (self.modules, self.zips, self.zip_bytes)
        {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "bundle {} header declares {} module versions, {} zips, {} zip bytes; its \
                     parts hold {}, {}, {}",
                    self.top,
                    declared.0,
                    declared.1,
                    declared.2,
                    self.modules,
                    self.zips,
                    self.zip_bytes
                ),
            ));
        }
        Ok(())
    }
}

/// A whole bundle in memory: for small bundles and tests. Commands walk
/// parts one at a time instead.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub outline: Outline,
    pub parts: Vec<BundlePart>,
}

impl Bundle {
    pub fn modules(&self) -> impl Iterator<Item = &ModuleEntry> {
        self.parts.iter().flat_map(|p| p.modules.iter())
    }
}

/// Reads a whole module bundle (see [`open`] and [`load_part`]).
pub fn load(repo: &dyn Repository, top: &Descriptor) -> Result<Bundle> {
    let outline = open(repo, top)?;
    let mut checker = PartChecker::new(&outline);
    let mut parts = Vec::with_capacity(outline.parts.len());
    for i in 0..outline.parts.len() {
        let part = load_part(repo, &outline, i)?;
        checker.check(&part)?;
        parts.push(part);
    }
    checker.finish(&outline)?;
    Ok(Bundle { outline, parts })
}

fn fetch_config(repo: &dyn Repository, config: &Descriptor, of: &Digest) -> Result<Vec<u8>> {
    if config.size > MAX_CONFIG_BYTES {
        return Err(fail(
            Kind::Integrity,
            format!(
                "config of manifest {of} claims {} bytes: refusing",
                config.size
            ),
        ));
    }
    let mut bytes = Vec::with_capacity(config.size.min(1 << 20) as usize);
    repo.fetch_blob(config)?
        .read_to_end(&mut bytes)
        .map_err(|e| {
            oci::classify_io(e, || {
                format!("reading config {} of manifest {of}", config.digest)
            })
        })?;
    Ok(bytes)
}

fn not_valid(config: &Descriptor, e: serde_json::Error) -> anyhow::Error {
    fail(
        Kind::Integrity,
        format!("config {} is not a valid ocigo config: {e}", config.digest),
    )
}

/// Reads a bundle's top (manifest or index) and, for v2, its header.
pub fn open(repo: &dyn Repository, top: &Descriptor) -> Result<Outline> {
    let fetched = repo.fetch_manifest(top)?;
    let location = repo.location();
    if !fetched.is_index() {
        // v1, one manifest.
        let manifest = fetched.manifest()?;
        expect_v1_type(manifest.artifact_type.as_deref(), &location, &top.digest)?;
        let mut outline = Outline {
            top: fetched.clone(),
            format_version: 1,
            main_modules: Vec::new(),
            platforms: Vec::new(),
            created: None,
            counts: None,
            header: None,
            parts: vec![fetched.descriptor.clone()],
        };
        fill_v1_header(repo, &mut outline)?;
        return Ok(outline);
    }
    let mut index = fetched.index()?;
    let version = match index.artifact_type.as_deref() {
        Some(ARTIFACT_TYPE_MODULES) => 2,
        Some(ARTIFACT_TYPE_MODULES_V1) => 1,
        other => {
            return Err(not_a_bundle(other, &location, &top.digest));
        }
    };
    // A project packed with its toolchain (`pack --with-toolchain`): the
    // toolchain entries follow the bundle's own and are `toolchain`'s to
    // read; the header and parts are exactly as without them.
    index
        .manifests
        .retain(|c| !crate::toolchain::format::is_toolchain(c));
    // Checksum-database data (`crate::sumdata`): read by pull, not a part.
    index
        .manifests
        .retain(|c| c.artifact_type.as_deref() != Some(ARTIFACT_TYPE_SUMDB));
    if index.manifests.is_empty() {
        return Err(fail(
            Kind::Integrity,
            format!(
                "bundle index {} in {location} lists no manifests",
                top.digest
            ),
        ));
    }
    for child in &index.manifests {
        if child.is_index() {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "bundle index {} nests another index, {}",
                    top.digest, child.digest
                ),
            ));
        }
    }
    if version == 1 {
        let mut outline = Outline {
            top: fetched,
            format_version: 1,
            main_modules: Vec::new(),
            platforms: Vec::new(),
            created: None,
            counts: None,
            header: None,
            parts: index.manifests,
        };
        fill_v1_header(repo, &mut outline)?;
        return Ok(outline);
    }

    let mut manifests = index.manifests.into_iter();
    let header_desc = manifests.next().expect("not empty");
    let parts: Vec<Descriptor> = manifests.collect();
    if header_desc
        .annotations
        .get(ANNOTATION_ROLE)
        .map(String::as_str)
        != Some("header")
    {
        return Err(fail(
            Kind::Integrity,
            format!(
                "bundle index {} does not start with a header manifest ({ANNOTATION_ROLE}: header)",
                top.digest
            ),
        ));
    }
    let count = parts.len();
    for (i, p) in parts.iter().enumerate() {
        let want = format!("{}/{count}", i + 1);
        if p.annotations.get(ANNOTATION_PART) != Some(&want) {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "bundle index {}: manifest {} should be part {want} ({ANNOTATION_PART})",
                    top.digest, p.digest
                ),
            ));
        }
    }
    let header_manifest = repo.fetch_manifest(&header_desc)?;
    if header_manifest.is_index() {
        return Err(fail(
            Kind::Integrity,
            format!("bundle header {} is an index", header_desc.digest),
        ));
    }
    let m = header_manifest.manifest()?;
    expect_type(
        m.artifact_type.as_deref(),
        ARTIFACT_TYPE_MODULES,
        &location,
        &header_desc.digest,
    )?;
    if m.config.media_type != MEDIA_TYPE_BUNDLE_CONFIG || !m.layers.is_empty() {
        return Err(fail(
            Kind::Integrity,
            format!(
                "bundle header {} must have a {MEDIA_TYPE_BUNDLE_CONFIG} config and no layers",
                header_desc.digest
            ),
        ));
    }
    let bytes = fetch_config(repo, &m.config, &header_desc.digest)?;
    let header: BundleHeader =
        serde_json::from_slice(&bytes).map_err(|e| not_valid(&m.config, e))?;
    if header.format_version != FORMAT_VERSION {
        return Err(unsupported_version(header.format_version))
            .with_context(|| format!("in config {}", m.config.digest));
    }
    Ok(Outline {
        top: fetched,
        format_version: 2,
        main_modules: header.main_modules,
        platforms: header.platforms,
        created: header.created,
        counts: Some((header.modules, header.zips, header.zip_bytes)),
        header: Some((header_manifest, bytes)),
        parts,
    })
}

/// v1 repeats the header in every part's config: take it from the first.
fn fill_v1_header(repo: &dyn Repository, outline: &mut Outline) -> Result<()> {
    let first = load_part(repo, outline, 0)?;
    let config: ModulesConfig = serde_json::from_slice(&first.config_bytes)
        .map_err(|e| not_valid(&first.config_descriptor, e))?;
    outline.main_modules = config.main_modules;
    outline.platforms = config.platforms;
    outline.created = config.created;
    Ok(())
}

fn not_a_bundle(artifact_type: Option<&str>, location: &str, digest: &Digest) -> anyhow::Error {
    fail(
        Kind::Usage,
        format!(
            "{location}@{digest} is not an ocigo module bundle (artifactType {:?}, want \
             {ARTIFACT_TYPE_MODULES} or {ARTIFACT_TYPE_MODULES_V1})",
            artifact_type.unwrap_or("none")
        ),
    )
}

fn expect_v1_type(artifact_type: Option<&str>, location: &str, digest: &Digest) -> Result<()> {
    if artifact_type == Some(ARTIFACT_TYPE_MODULES) {
        // A v2 part named directly: only its index is a bundle.
        return Err(fail(
            Kind::Usage,
            format!(
                "{location}@{digest} is one manifest of a format v2 bundle, not a bundle: name \
                 the bundle's index (its tag)"
            ),
        ));
    }
    expect_type(artifact_type, ARTIFACT_TYPE_MODULES_V1, location, digest)
}

fn expect_type(
    artifact_type: Option<&str>,
    want: &str,
    location: &str,
    digest: &Digest,
) -> Result<()> {
    if artifact_type != Some(want) {
        return Err(not_a_bundle(artifact_type, location, digest));
    }
    Ok(())
}

/// Reads part `i` of a bundle: its manifest, its config (digest-checked and
/// bounded), and checks that every zip named in the config is a layer of
/// that manifest and every layer is named.
pub fn load_part(repo: &dyn Repository, outline: &Outline, i: usize) -> Result<BundlePart> {
    let desc = &outline.parts[i];
    let fetched = if desc.digest == outline.top.descriptor.digest {
        outline.top.clone()
    } else {
        repo.fetch_manifest(desc)?
    };
    if fetched.is_index() {
        return Err(fail(
            Kind::Integrity,
            format!(
                "bundle index {} nests another index, {}",
                outline.top.descriptor.digest, desc.digest
            ),
        ));
    }
    let manifest = fetched.manifest()?;
    let digest = &fetched.descriptor.digest;
    let location = repo.location();
    let (want_type, want_config) = if outline.format_version == 1 {
        (ARTIFACT_TYPE_MODULES_V1, MEDIA_TYPE_MODULES_CONFIG)
    } else {
        (ARTIFACT_TYPE_MODULES, MEDIA_TYPE_PART_CONFIG)
    };
    expect_type(
        manifest.artifact_type.as_deref(),
        want_type,
        &location,
        digest,
    )?;
    if manifest.config.media_type != want_config {
        return Err(fail(
            Kind::Integrity,
            format!(
                "manifest {digest} has config media type {}, want {want_config}",
                manifest.config.media_type
            ),
        ));
    }
    let bytes = fetch_config(repo, &manifest.config, digest)?;
    let modules = if outline.format_version == 1 {
        let config: ModulesConfig =
            serde_json::from_slice(&bytes).map_err(|e| not_valid(&manifest.config, e))?;
        config
            .validate()
            .with_context(|| format!("in config {}", manifest.config.digest))?;
        config.modules
    } else {
        let config: PartConfig =
            serde_json::from_slice(&bytes).map_err(|e| not_valid(&manifest.config, e))?;
        if config.format_version != FORMAT_VERSION {
            return Err(unsupported_version(config.format_version))
                .with_context(|| format!("in config {}", manifest.config.digest));
        }
        config.modules
    };

    let layers: HashSet<(&Digest, u64)> = manifest
        .layers
        .iter()
        .map(|l| (&l.digest, l.size))
        .collect();
    for l in &manifest.layers {
        // Refused before anything is fetched: no legitimate module zip is
        // larger, and a lying manifest must not fill the disk.
        if l.size > crate::gomod::zipcheck::MAX_ZIP_BYTES {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "manifest {digest} has a layer {} of {} bytes, over the {}-byte module zip limit",
                    l.digest,
                    l.size,
                    crate::gomod::zipcheck::MAX_ZIP_BYTES
                ),
            ));
        }
        if l.media_type != MEDIA_TYPE_MODULE_ZIP {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "manifest {digest} has a layer of unknown media type {}",
                    l.media_type
                ),
            ));
        }
    }
    let mut named = HashSet::new();
    for m in &modules {
        if let Some(z) = &m.zip {
            if !layers.contains(&(&z.layer, z.size)) {
                return Err(fail(
                    Kind::Integrity,
                    format!(
                        "config {} says {}@{} is in layer {} ({} bytes), which manifest {digest} does not list",
                        manifest.config.digest, m.path, m.version, z.layer, z.size
                    ),
                ));
            }
            named.insert(&z.layer);
        }
    }
    if let Some(l) = manifest.layers.iter().find(|l| !named.contains(&l.digest)) {
        return Err(fail(
            Kind::Integrity,
            format!(
                "manifest {digest} has layer {} that no module in its config names",
                l.digest
            ),
        ));
    }
    drop(named);
    drop(layers);
    Ok(BundlePart {
        config_descriptor: manifest.config,
        manifest: fetched,
        config_bytes: bytes,
        layers: manifest.layers,
        modules,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: usize) -> ModuleEntry {
        let zip = format!("zip-{i}");
        ModuleEntry {
            path: format!("example.com/gen/m{i:05}"),
            version: "v1.0.0".into(),
            info: Some("{\"Version\":\"v1.0.0\"}".into()),
            go_mod: format!("module example.com/gen/m{i:05}\n"),
            mod_hash: "h1:x".into(),
            zip: Some(ZipRef {
                hash: "h1:y".into(),
                layer: Digest::of_bytes(zip.as_bytes()),
                size: zip.len() as u64,
            }),
        }
    }

    fn header(modules: Vec<ModuleEntry>) -> ModulesConfig {
        ModulesConfig {
            format_version: FORMAT_VERSION,
            main_modules: vec![MainModule {
                path: "example.com/main".into(),
                go_version: Some("1.22".into()),
            }],
            platforms: vec!["linux/amd64".into()],
            created: None,
            modules,
        }
    }

    fn part_manifests(built: &BuiltArtifact) -> Vec<Digest> {
        built.parts[1..]
            .iter()
            .map(|(d, _)| d.digest.clone())
            .collect()
    }

    #[test]
    fn building_is_deterministic_and_order_independent() {
        let a = build(header((0..50).map(entry).collect()), SplitLimits::default()).unwrap();
        let b = build(
            header((0..50).rev().map(entry).collect()),
            SplitLimits::default(),
        )
        .unwrap();
        assert_eq!(a.top, b.top);
        assert_eq!(a.top_media_type, oci::MEDIA_TYPE_INDEX);
    }

    #[test]
    fn twenty_thousand_modules_split_under_the_registry_limit() {
        let built = build(
            header((0..20_000).map(entry).collect()),
            SplitLimits::default(),
        )
        .unwrap();
        assert_eq!(built.top_media_type, oci::MEDIA_TYPE_INDEX);
        assert!(built.parts.len() >= 20, "{} parts", built.parts.len());
        assert!(built.top.len() < oci::MAX_MANIFEST_BYTES);
        for (_, m) in &built.parts {
            assert!(m.len() < oci::MAX_MANIFEST_BYTES, "{}", m.len());
        }
        let total: usize = built
            .parts
            .iter()
            .map(|(_, m)| serde_json::from_slice::<Manifest>(m).unwrap().layers.len())
            .sum();
        assert_eq!(total, 20_000);
    }

    /// Adding or removing one module changes at most two part manifests
    /// (the one it lands in, and a split when its path is itself a cut).
    #[test]
    fn one_module_more_or_less_changes_one_or_two_parts() {
        let base: Vec<ModuleEntry> = (0..5_000).map(|i| entry(i * 2)).collect();
        let a = build(header(base.clone()), SplitLimits::default()).unwrap();
        let a_parts: HashSet<Digest> = part_manifests(&a).into_iter().collect();
        for extra in [1, 2001, 7777, 9999] {
            let mut more = base.clone();
            more.push(entry(extra));
            let b = build(header(more), SplitLimits::default()).unwrap();
            let new: Vec<Digest> = part_manifests(&b)
                .into_iter()
                .filter(|d| !a_parts.contains(d))
                .collect();
            assert!(
                (1..=2).contains(&new.len()),
                "adding module {extra}: {} new parts",
                new.len()
            );
        }
        let mut fewer = base.clone();
        fewer.remove(1234);
        let c = build(header(fewer), SplitLimits::default()).unwrap();
        let changed = part_manifests(&c)
            .into_iter()
            .filter(|d| !a_parts.contains(d))
            .count();
        assert!(changed <= 1, "{changed} parts changed");
    }

    #[test]
    fn a_cut_depends_only_on_the_path() {
        let cuts = (0..10_000)
            .filter(|i| ends_part(&format!("example.com/gen/m{i:05}"), 1, 128))
            .count();
        assert!((40..=120).contains(&cuts), "{cuts} cuts in 10,000 paths");
    }

    #[test]
    fn duplicate_modules_are_refused() {
        let e = build(header(vec![entry(1), entry(1)]), SplitLimits::default()).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
    }
}
