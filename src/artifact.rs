//! The ocigo module-bundle artifact, format v1: the config JSON, the
//! manifests that carry one layer per module zip, and the image index that
//! splits a closure too large for one manifest.
//!
//! Owns: building the artifact deterministically from a list of module
//! entries, and reading it back with every cross-reference checked.
//! Must not: do I/O other than through the `oci::Repository` it is given,
//! or know how modules were resolved or where they get installed.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::error::{Kind, fail};
use crate::oci::{
    self, Descriptor, Digest, FetchedManifest, Index, Manifest, Repository, to_canonical_json,
};

pub const ARTIFACT_TYPE_MODULES: &str = "application/vnd.ocigo.modules.v1";
pub const MEDIA_TYPE_MODULES_CONFIG: &str = "application/vnd.ocigo.modules.config.v1+json";
pub const MEDIA_TYPE_MODULE_ZIP: &str = "application/vnd.ocigo.module.v1.zip";
pub const FORMAT_VERSION: u32 = 1;
/// Annotation on each manifest of a split bundle: `<n>/<count>`, 1-based.
pub const ANNOTATION_PART: &str = "dev.ocigo.bundle.part";

/// Keep well under the 4 MiB registries accept: descriptors vary in length.
pub const DEFAULT_MAX_MANIFEST_BYTES: usize = oci::MAX_MANIFEST_BYTES - 256 * 1024;
/// Bound the config blob too, so each part stays cheap to parse.
pub const DEFAULT_MAX_MODULES_PER_MANIFEST: usize = 5000;

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

/// The config blob of one manifest. A split bundle repeats the header
/// fields in each part and lists only that part's modules.
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

impl ModulesConfig {
    /// Checks what the JSON schema cannot: the version, and that entries are
    /// unique.
    pub fn validate(&self) -> Result<()> {
        if self.format_version != FORMAT_VERSION {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "bundle format version {} is not supported by this ocigo (it reads version {FORMAT_VERSION}); \
                     upgrade ocigo",
                    self.format_version
                ),
            ));
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

/// An artifact ready to store: the small blobs (configs, part manifests) and
/// the top-level manifest or index. Zip layers are already in the store.
#[derive(Debug, Clone)]
pub struct BuiltArtifact {
    /// Config blobs and, for a split bundle, the part manifests, in push order.
    pub blobs: Vec<(Descriptor, Vec<u8>)>,
    /// Part manifests, pushed before the top (only for a split bundle).
    pub parts: Vec<(Descriptor, Vec<u8>)>,
    pub top_media_type: String,
    pub top: Vec<u8>,
}

/// Limits that decide when a bundle is split; tests shrink them.
#[derive(Debug, Clone, Copy)]
pub struct SplitLimits {
    pub max_manifest_bytes: usize,
    pub max_modules: usize,
}

impl Default for SplitLimits {
    fn default() -> Self {
        SplitLimits {
            max_manifest_bytes: DEFAULT_MAX_MANIFEST_BYTES,
            max_modules: DEFAULT_MAX_MODULES_PER_MANIFEST,
        }
    }
}

fn layer_descriptor(zip: &ZipRef) -> Descriptor {
    Descriptor::new(MEDIA_TYPE_MODULE_ZIP, zip.layer.clone(), zip.size)
}

fn manifest_for(config: &ModulesConfig) -> (Descriptor, Vec<u8>, Vec<u8>) {
    let config_bytes = to_canonical_json(config);
    let config_desc = Descriptor::for_bytes(MEDIA_TYPE_MODULES_CONFIG, &config_bytes);
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(oci::MEDIA_TYPE_MANIFEST.to_string()),
        artifact_type: Some(ARTIFACT_TYPE_MODULES.to_string()),
        config: config_desc.clone(),
        layers: config
            .modules
            .iter()
            .filter_map(|m| m.zip.as_ref().map(layer_descriptor))
            .collect(),
        subject: None,
        annotations: BTreeMap::new(),
    };
    (config_desc, config_bytes, to_canonical_json(&manifest))
}

/// Builds the artifact: one manifest when it fits, else parts under an index.
/// Modules are sorted by path and version so the same closure always gives
/// the same bytes.
pub fn build(mut header: ModulesConfig, limits: SplitLimits) -> Result<BuiltArtifact> {
    let mut modules = std::mem::take(&mut header.modules);
    modules.sort_by(|a, b| {
        a.path
            .cmp(&b.path)
            .then_with(|| crate::gomod::semver::compare(&a.version, &b.version))
    });
    header.platforms.sort();
    header.platforms.dedup();
    header.validate()?;
    let mut check = header.clone();
    check.modules = modules.clone();
    check.validate()?;

    // Split greedily, measuring each layer descriptor as it will be written.
    let empty_manifest_len = manifest_for(&header).2.len();
    let mut groups: Vec<Vec<ModuleEntry>> = vec![Vec::new()];
    let mut current_len = empty_manifest_len;
    for m in modules {
        let add = m
            .zip
            .as_ref()
            .map(|z| to_canonical_json(&layer_descriptor(z)).len() + 1)
            .unwrap_or(0);
        let group = groups.last_mut().expect("never empty");
        if !group.is_empty()
            && (current_len + add > limits.max_manifest_bytes || group.len() >= limits.max_modules)
        {
            groups.push(Vec::new());
            current_len = empty_manifest_len;
        }
        if empty_manifest_len + add > limits.max_manifest_bytes {
            return Err(fail(
                Kind::Usage,
                format!(
                    "the manifest size limit {} is too small for even one module",
                    limits.max_manifest_bytes
                ),
            ));
        }
        current_len += add;
        groups.last_mut().expect("never empty").push(m);
    }

    let mut blobs = Vec::new();
    if groups.len() == 1 {
        let mut config = header;
        config.modules = groups.pop().expect("one group");
        let (config_desc, config_bytes, manifest) = manifest_for(&config);
        blobs.push((config_desc, config_bytes));
        return Ok(BuiltArtifact {
            blobs,
            parts: Vec::new(),
            top_media_type: oci::MEDIA_TYPE_MANIFEST.to_string(),
            top: manifest,
        });
    }

    let count = groups.len();
    let mut parts = Vec::with_capacity(count);
    let mut index_entries = Vec::with_capacity(count);
    for (i, group) in groups.into_iter().enumerate() {
        let mut config = header.clone();
        config.modules = group;
        let (config_desc, config_bytes, manifest) = manifest_for(&config);
        blobs.push((config_desc, config_bytes));
        let mut desc = Descriptor::for_bytes(oci::MEDIA_TYPE_MANIFEST, &manifest);
        desc.artifact_type = Some(ARTIFACT_TYPE_MODULES.to_string());
        desc.annotations
            .insert(ANNOTATION_PART.to_string(), format!("{}/{count}", i + 1));
        index_entries.push(desc.clone());
        parts.push((desc, manifest));
    }
    let index = Index {
        schema_version: 2,
        media_type: Some(oci::MEDIA_TYPE_INDEX.to_string()),
        artifact_type: Some(ARTIFACT_TYPE_MODULES.to_string()),
        manifests: index_entries,
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

/// One manifest of a bundle, read back and checked.
#[derive(Debug, Clone)]
pub struct BundlePart {
    pub manifest: FetchedManifest,
    pub config_descriptor: Descriptor,
    /// The config blob's exact bytes (already digest-checked).
    pub config_bytes: Vec<u8>,
    pub config: ModulesConfig,
}

/// A bundle read back: its top descriptor and every part.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub top: FetchedManifest,
    pub parts: Vec<BundlePart>,
}

impl Bundle {
    pub fn modules(&self) -> impl Iterator<Item = &ModuleEntry> {
        self.parts.iter().flat_map(|p| p.config.modules.iter())
    }

    /// Stores the bundle's configs and manifests (already fetched and
    /// checked) in `repo`, tagging the top; the layers must be there.
    pub fn store_in(&self, repo: &dyn Repository, tag: Option<&str>) -> Result<()> {
        for part in &self.parts {
            if !repo.blob_exists(&part.config_descriptor.digest)? {
                repo.push_blob(&part.config_descriptor, &mut &part.config_bytes[..])?;
            }
            if part.manifest.descriptor.digest != self.top.descriptor.digest {
                repo.push_manifest(
                    &part.manifest.descriptor.media_type,
                    &part.manifest.bytes,
                    None,
                )?;
            }
        }
        repo.push_manifest(&self.top.descriptor.media_type, &self.top.bytes, tag)?;
        Ok(())
    }
}

/// Reads a module bundle from a repository: the manifest or index, each
/// part's config (digest-checked), and checks that every zip named in a
/// config is a layer of that manifest and every layer is named.
pub fn load(repo: &dyn Repository, top: &Descriptor) -> Result<Bundle> {
    let fetched = repo.fetch_manifest(top)?;
    let mut parts = Vec::new();
    if fetched.is_index() {
        let index = fetched.index()?;
        expect_modules_type(
            index.artifact_type.as_deref(),
            &repo.location(),
            &top.digest,
        )?;
        if index.manifests.is_empty() {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "bundle index {} in {} lists no manifests",
                    top.digest,
                    repo.location()
                ),
            ));
        }
        // A project packed with its toolchain: the toolchain entries are
        // `toolchain`'s to read.
        for child in index
            .manifests
            .iter()
            .filter(|c| !crate::toolchain::format::is_toolchain(c))
        {
            let m = repo.fetch_manifest(child)?;
            if child.is_index() || m.is_index() {
                return Err(fail(
                    Kind::Integrity,
                    format!(
                        "bundle index {} nests another index, {}",
                        top.digest, child.digest
                    ),
                ));
            }
            parts.push(load_part(repo, m)?);
        }
    } else {
        parts.push(load_part(repo, fetched.clone())?);
    }
    let mut seen = HashSet::new();
    for m in parts.iter().flat_map(|p| p.config.modules.iter()) {
        if !seen.insert((m.path.clone(), m.version.clone())) {
            return Err(fail(
                Kind::Integrity,
                format!("bundle {} lists {}@{} twice", top.digest, m.path, m.version),
            ));
        }
    }
    Ok(Bundle {
        top: fetched,
        parts,
    })
}

fn expect_modules_type(artifact_type: Option<&str>, location: &str, digest: &Digest) -> Result<()> {
    if artifact_type != Some(ARTIFACT_TYPE_MODULES) {
        return Err(fail(
            Kind::Usage,
            format!(
                "{location}@{digest} is not an ocigo module bundle (artifactType {:?}, want {ARTIFACT_TYPE_MODULES})",
                artifact_type.unwrap_or("none")
            ),
        ));
    }
    Ok(())
}

fn load_part(repo: &dyn Repository, fetched: FetchedManifest) -> Result<BundlePart> {
    let manifest = fetched.manifest()?;
    let digest = &fetched.descriptor.digest;
    expect_modules_type(manifest.artifact_type.as_deref(), &repo.location(), digest)?;
    if manifest.config.media_type != MEDIA_TYPE_MODULES_CONFIG {
        return Err(fail(
            Kind::Integrity,
            format!(
                "manifest {digest} has config media type {}, want {MEDIA_TYPE_MODULES_CONFIG}",
                manifest.config.media_type
            ),
        ));
    }
    if manifest.config.size > 256 << 20 {
        return Err(fail(
            Kind::Integrity,
            format!(
                "config of manifest {digest} claims {} bytes: refusing",
                manifest.config.size
            ),
        ));
    }
    let mut bytes = Vec::with_capacity(manifest.config.size.min(1 << 20) as usize);
    repo.fetch_blob(&manifest.config)?
        .read_to_end(&mut bytes)
        .map_err(|e| {
            oci::classify_io(e, || {
                format!(
                    "reading config {} of manifest {digest}",
                    manifest.config.digest
                )
            })
        })?;
    let config: ModulesConfig = serde_json::from_slice(&bytes).map_err(|e| {
        fail(
            Kind::Integrity,
            format!(
                "config {} is not a valid ocigo config: {e}",
                manifest.config.digest
            ),
        )
    })?;
    config
        .validate()
        .with_context(|| format!("in config {}", manifest.config.digest))?;

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
    for m in &config.modules {
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
    let config_descriptor = manifest.config.clone();
    Ok(BundlePart {
        manifest: fetched,
        config_descriptor,
        config_bytes: bytes,
        config,
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

    #[test]
    fn building_is_deterministic_and_order_independent() {
        let a = build(header((0..50).map(entry).collect()), SplitLimits::default()).unwrap();
        let b = build(
            header((0..50).rev().map(entry).collect()),
            SplitLimits::default(),
        )
        .unwrap();
        assert_eq!(a.top, b.top);
        assert_eq!(a.top_media_type, oci::MEDIA_TYPE_MANIFEST);
    }

    #[test]
    fn twenty_thousand_modules_split_under_the_registry_limit() {
        let built = build(
            header((0..20_000).map(entry).collect()),
            SplitLimits::default(),
        )
        .unwrap();
        assert_eq!(built.top_media_type, oci::MEDIA_TYPE_INDEX);
        assert!(built.parts.len() >= 4, "{} parts", built.parts.len());
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

    #[test]
    fn duplicate_modules_are_refused() {
        let e = build(header(vec![entry(1), entry(1)]), SplitLimits::default()).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
    }
}
