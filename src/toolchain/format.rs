//! The toolchain artifact, format v1: one OCI image manifest per platform
//! (config of our own media type, tar + zstd layers), under an OCI image
//! index whose entries carry their `platform`. Schema:
//! `schemas/toolchain-config.v1.schema.json`.
//!
//! Format v2 (`schemas/toolchain-config.v2.schema.json`) is the delta form
//! of a platform (`pack toolchain --delta-from`): some layers are delta
//! layers (see `delta`) whose `deltaFrom` names the earlier release's full
//! layers they are decoded against; those base layers are listed in the
//! config's `bases` and, after the config's own layers, in the manifest
//! (so the artifact is self-contained). Bases are never extracted as
//! such. A full platform stays v1, byte for byte.
//!
//! Owns: the JSON of configs, manifests and the index, built
//! deterministically, and reading them back with every cross-reference and
//! bound checked. Must not: do I/O other than through the
//! `oci::Repository` it is given.

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::tree::{self, MAX_FILES, MAX_TOTAL_BYTES, SourceInfo};
use crate::error::{Kind, fail};
use crate::oci::{
    self, Descriptor, Digest, FetchedManifest, Index, Manifest, Platform, Repository,
    to_canonical_json,
};

pub const ARTIFACT_TYPE_TOOLCHAIN: &str = "application/vnd.ocigo.toolchain.v1";
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.ocigo.toolchain.config.v1+json";
/// The config media type of format v2 (the delta form): ocigo before v2
/// checks the config's media type first, so it refuses these manifests
/// naming this type ("has a config of type ...config.v2+json"), not with a
/// field error.
pub const MEDIA_TYPE_CONFIG_V2: &str = "application/vnd.ocigo.toolchain.config.v2+json";

/// The config media type of a format version.
pub fn config_media_type(format_version: u32) -> &'static str {
    if format_version == FORMAT_VERSION_DELTA {
        MEDIA_TYPE_CONFIG_V2
    } else {
        MEDIA_TYPE_CONFIG
    }
}
pub const MEDIA_TYPE_LAYER: &str = "application/vnd.ocigo.toolchain.layer.v1.tar+zstd";
/// On each manifest and index entry: the Go version (`go1.26.8`).
pub const ANNOTATION_VERSION: &str = "dev.ocigo.toolchain.version";
pub const FORMAT_VERSION: u32 = 1;
/// A platform with delta layers.
pub const FORMAT_VERSION_DELTA: u32 = 2;
/// Bounds checked before anything is fetched.
const MAX_CONFIG_BYTES: u64 = 4 << 20;
const MAX_LAYERS: usize = 4096;
/// Tar adds headers (512 bytes, up to three per entry with long names) and
/// padding to each file.
const TAR_OVERHEAD_PER_FILE: u64 = 4 * 512;

/// The module form of a toolchain: what the go command downloads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModuleForm {
    /// `v0.0.1-go1.26.8.linux-amd64` of `golang.org/toolchain`.
    pub version: String,
    /// h1 of the module zip (computed from the files when packing).
    pub hash: String,
    /// The checksum database the hash was checked against, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_with: Option<String>,
}

/// One layer, as the config describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LayerInfo {
    pub digest: Digest,
    /// What it holds, for people (`bin`, `src/net`, `src/ (+3 more)`).
    pub name: String,
    pub files: u64,
    /// Bytes of file content.
    pub bytes: u64,
    /// Exact length of the uncompressed tar stream: decompression stops there.
    pub tar_bytes: u64,
    /// A delta layer (format v2): the digests of the base layers (in the
    /// config's `bases`) its frames are decoded against.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delta_from: Vec<Digest>,
}

impl LayerInfo {
    pub fn is_delta(&self) -> bool {
        !self.delta_from.is_empty()
    }
    /// The layer's media type in the manifest.
    pub fn media_type(&self) -> &'static str {
        if self.is_delta() {
            super::delta::MEDIA_TYPE_DELTA
        } else {
            MEDIA_TYPE_LAYER
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ToolchainConfig {
    pub format_version: u32,
    /// `go1.26.8`.
    pub version: String,
    pub os: String,
    pub arch: String,
    /// The `time` line of `VERSION`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    pub source: SourceInfo,
    pub module: ModuleForm,
    pub files: u64,
    pub bytes: u64,
    pub layers: Vec<LayerInfo>,
    /// Format v2: the release the delta layers were made against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_version: Option<String>,
    /// Format v2: the base release's full layers the delta layers use (in
    /// the manifest after `layers`; not extracted, not in the totals).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bases: Vec<LayerInfo>,
}

impl ToolchainConfig {
    pub fn platform(&self) -> String {
        format!("{}/{}", self.os, self.arch)
    }

    /// What the JSON schema cannot check.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(fail(Kind::Integrity, format!("toolchain config: {m}")));
        check_format_version(self.format_version)?;
        let delta = self.format_version == FORMAT_VERSION_DELTA;
        let any_delta = self.layers.iter().any(LayerInfo::is_delta);
        if !delta && (any_delta || !self.bases.is_empty() || self.base_version.is_some()) {
            return bad(format!(
                "format version {FORMAT_VERSION} names delta layers or bases; only version {FORMAT_VERSION_DELTA} may"
            ));
        }
        if delta {
            let Some(base) = self
                .base_version
                .as_deref()
                .filter(|v| tree::is_go_version(v))
            else {
                return bad("a delta config has no base version (a Go release)".into());
            };
            if base == self.version {
                return bad(format!("{base} is made against itself"));
            }
            if !any_delta || self.bases.is_empty() || self.bases.len() > MAX_LAYERS {
                return bad(format!(
                    "a delta config with {} bases and no delta layer",
                    self.bases.len()
                ));
            }
            let mut used = vec![false; self.bases.len()];
            for l in &self.layers {
                for d in &l.delta_from {
                    let Some(k) = self.bases.iter().position(|b| &b.digest == d) else {
                        return bad(format!(
                            "delta layer {} names base {d}, which is not among its bases",
                            l.digest
                        ));
                    };
                    used[k] = true;
                }
            }
            if let Some(k) = used.iter().position(|u| !u) {
                return bad(format!(
                    "base layer {} is used by no delta layer",
                    self.bases[k].digest
                ));
            }
            let mut seen = std::collections::HashSet::new();
            for b in &self.bases {
                if b.is_delta() || !seen.insert(&b.digest) {
                    return bad(format!(
                        "base layer {} is listed twice or is itself a delta",
                        b.digest
                    ));
                }
            }
            let files = checked_sum(self.bases.iter().map(|l| l.files));
            let bytes = checked_sum(self.bases.iter().map(|l| l.bytes));
            let within = matches!((files, bytes),
                (Some(f), Some(b)) if f <= MAX_FILES && b <= MAX_TOTAL_BYTES);
            if !within {
                let show = |v: Option<u64>| v.map_or("over 2^64".to_string(), |v| v.to_string());
                let (files, bytes) = (show(files), show(bytes));
                return bad(format!(
                    "bases of {files} files, {bytes} bytes: over the limits ({MAX_FILES} files, {MAX_TOTAL_BYTES} bytes)"
                ));
            }
        }
        if !tree::is_go_version(&self.version)
            || !tree::is_platform_token(&self.os)
            || !tree::is_platform_token(&self.arch)
        {
            return bad(format!(
                "{:?} {:?}/{:?} is not a Go version and platform",
                self.version, self.os, self.arch
            ));
        }
        if self.module.version != tree::module_version(&self.version, &self.os, &self.arch) {
            return bad(format!(
                "module version {:?} does not match {} {}",
                self.module.version,
                self.version,
                self.platform()
            ));
        }
        if self.layers.is_empty() || self.layers.len() > MAX_LAYERS {
            return bad(format!("{} layers", self.layers.len()));
        }
        let files = checked_sum(self.layers.iter().map(|l| l.files));
        let bytes = checked_sum(self.layers.iter().map(|l| l.bytes));
        if files != Some(self.files) || bytes != Some(self.bytes) {
            return bad("layer totals do not add up".into());
        }
        if self.files > MAX_FILES || self.bytes > MAX_TOTAL_BYTES {
            return bad(format!(
                "{} files, {} bytes: over the limits ({MAX_FILES} files, {MAX_TOTAL_BYTES} bytes)",
                self.files, self.bytes
            ));
        }
        for l in self.layers.iter().chain(&self.bases) {
            // Directory entries count too: allow as many as files, plus
            // some; a delta's frames may exceed incompressible files a little.
            let frames = if l.is_delta() { l.bytes / 64 } else { 0 };
            // Checked: a layer's own counts may be anything (only the
            // totals are capped above).
            let cap = l
                .files
                .checked_mul(2)
                .and_then(|n| n.checked_add(64))
                .and_then(|n| n.checked_mul(TAR_OVERHEAD_PER_FILE))
                .and_then(|n| checked_sum([l.bytes, frames, n, 1024].into_iter()));
            if cap.is_none_or(|cap| l.tar_bytes > cap) {
                return bad(format!(
                    "layer {} claims a {}-byte tar for {} bytes of files",
                    l.digest, l.tar_bytes, l.bytes
                ));
            }
        }
        Ok(())
    }
}

/// The sum of sizes read from an artifact, `None` past `u64::MAX`.
fn checked_sum(values: impl Iterator<Item = u64>) -> Option<u64> {
    values.into_iter().try_fold(0u64, u64::checked_add)
}

/// A built per-platform manifest: its config blob and manifest bytes.
pub struct BuiltManifest {
    pub config_descriptor: Descriptor,
    pub config_bytes: Vec<u8>,
    pub manifest: Vec<u8>,
    /// The manifest's descriptor as an index entry (platform, version).
    pub entry: Descriptor,
}

/// The config's format version, read before the rest (whose fields a
/// later version may change): a version this ocigo does not read is refused
/// with that, not a field error.
fn check_format_version(v: u32) -> Result<()> {
    if v != FORMAT_VERSION && v != FORMAT_VERSION_DELTA {
        return Err(fail(
            Kind::Integrity,
            format!(
                "toolchain config: format version {v} is not supported by this ocigo (it reads {FORMAT_VERSION} and {FORMAT_VERSION_DELTA}); upgrade ocigo"
            ),
        ));
    }
    Ok(())
}

/// Parses a config blob: its format version first.
pub fn parse_config(bytes: &[u8], digest: &Digest) -> Result<ToolchainConfig> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Version {
        format_version: u32,
    }
    let invalid = |e: serde_json::Error| {
        fail(
            Kind::Integrity,
            format!("config {digest} is not a valid ocigo toolchain config: {e}"),
        )
    };
    let v: Version = serde_json::from_slice(bytes).map_err(invalid)?;
    check_format_version(v.format_version).with_context(|| format!("in config {digest}"))?;
    serde_json::from_slice(bytes).map_err(invalid)
}

/// `layer_sizes`: the compressed size of each of the config's layers, then
/// of each of its bases.
pub fn build_manifest(config: &ToolchainConfig, layer_sizes: &[u64]) -> BuiltManifest {
    let config_bytes = to_canonical_json(config);
    let config_descriptor =
        Descriptor::for_bytes(config_media_type(config.format_version), &config_bytes);
    let mut annotations = BTreeMap::new();
    annotations.insert(ANNOTATION_VERSION.to_string(), config.version.clone());
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(oci::MEDIA_TYPE_MANIFEST.to_string()),
        artifact_type: Some(ARTIFACT_TYPE_TOOLCHAIN.to_string()),
        config: config_descriptor.clone(),
        layers: config
            .layers
            .iter()
            .chain(&config.bases)
            .zip(layer_sizes)
            .map(|(l, &size)| Descriptor::new(l.media_type(), l.digest.clone(), size))
            .collect(),
        subject: None,
        annotations: annotations.clone(),
    };
    let manifest = to_canonical_json(&manifest);
    let mut entry = Descriptor::for_bytes(oci::MEDIA_TYPE_MANIFEST, &manifest);
    entry.artifact_type = Some(ARTIFACT_TYPE_TOOLCHAIN.to_string());
    entry.platform = Some(Platform {
        os: config.os.clone(),
        architecture: config.arch.clone(),
        variant: None,
    });
    entry.annotations = annotations;
    BuiltManifest {
        config_descriptor,
        config_bytes,
        manifest,
        entry,
    }
}

/// The index over per-platform manifests (and, for a project packed with
/// its toolchain, the module bundle's manifests), sorted so that the same
/// inputs give the same bytes.
pub fn build_index(entries: Vec<Descriptor>, artifact_type: &str) -> Vec<u8> {
    to_canonical_json(&Index {
        schema_version: 2,
        media_type: Some(oci::MEDIA_TYPE_INDEX.to_string()),
        artifact_type: Some(artifact_type.to_string()),
        manifests: sorted_entries(entries),
        subject: None,
        annotations: BTreeMap::new(),
    })
}

/// Index entries in a fixed order (artifact type, version, platform,
/// digest), each digest once: the same inputs give the same bytes.
pub fn sorted_entries(mut entries: Vec<Descriptor>) -> Vec<Descriptor> {
    entries.sort_by(|a, b| {
        let key = |d: &Descriptor| {
            (
                d.artifact_type.clone(),
                d.annotations.get(ANNOTATION_VERSION).cloned(),
                d.platform
                    .as_ref()
                    .map(|p| (p.os.clone(), p.architecture.clone())),
                d.digest.to_string(),
            )
        };
        key(a).cmp(&key(b))
    });
    entries.dedup_by(|a, b| a.digest == b.digest);
    entries
}

/// One platform's toolchain, read back and checked.
#[derive(Debug, Clone)]
pub struct ToolchainPart {
    pub manifest: FetchedManifest,
    pub config_descriptor: Descriptor,
    pub config_bytes: Vec<u8>,
    pub config: ToolchainConfig,
    /// Every layer of the manifest: the config's `layers`, then its `bases`.
    pub layers: Vec<Descriptor>,
}

impl ToolchainPart {
    /// The layers to extract, each with its config entry.
    pub fn own_layers(&self) -> impl Iterator<Item = (&Descriptor, &LayerInfo)> {
        self.layers.iter().zip(&self.config.layers)
    }
    /// The base layers (delta form), each with its config entry.
    pub fn base_layers(&self) -> impl Iterator<Item = (&Descriptor, &LayerInfo)> {
        self.layers[self.config.layers.len()..]
            .iter()
            .zip(&self.config.bases)
    }
}

/// Whether an index entry or manifest is a toolchain.
pub fn is_toolchain(desc: &Descriptor) -> bool {
    desc.artifact_type.as_deref() == Some(ARTIFACT_TYPE_TOOLCHAIN)
}

/// Reads one per-platform manifest and its config, checking that the
/// config's layers are exactly the manifest's and within bounds.
pub fn load_part(repo: &dyn Repository, desc: &Descriptor) -> Result<ToolchainPart> {
    let fetched = repo.fetch_manifest(desc)?;
    if fetched.is_index() {
        return Err(fail(
            Kind::Integrity,
            format!(
                "toolchain entry {} is an index, not a manifest",
                desc.digest
            ),
        ));
    }
    let manifest = fetched.manifest()?;
    let digest = &fetched.descriptor.digest;
    if manifest.artifact_type.as_deref() != Some(ARTIFACT_TYPE_TOOLCHAIN) {
        return Err(fail(
            Kind::Usage,
            format!(
                "{}@{digest} is not an ocigo toolchain (artifactType {:?})",
                repo.location(),
                manifest.artifact_type.as_deref().unwrap_or("none")
            ),
        ));
    }
    let known = [MEDIA_TYPE_CONFIG, MEDIA_TYPE_CONFIG_V2];
    if !known.contains(&manifest.config.media_type.as_str())
        || manifest.config.size > MAX_CONFIG_BYTES
    {
        return Err(fail(
            Kind::Integrity,
            format!(
                "toolchain manifest {digest} has a config of type {} and {} bytes",
                manifest.config.media_type, manifest.config.size
            ),
        ));
    }
    let mut bytes = Vec::new();
    repo.fetch_blob(&manifest.config)?
        .read_to_end(&mut bytes)
        .map_err(|e| {
            oci::classify_io(e, || {
                format!("reading config {} of {digest}", manifest.config.digest)
            })
        })?;
    let config = parse_config(&bytes, &manifest.config.digest)?;
    if manifest.config.media_type != config_media_type(config.format_version) {
        return Err(fail(
            Kind::Integrity,
            format!(
                "toolchain manifest {digest}: its config is format version {} under media type {} (version {} is {})",
                config.format_version,
                manifest.config.media_type,
                config.format_version,
                config_media_type(config.format_version)
            ),
        ));
    }
    config
        .validate()
        .with_context(|| format!("in config {}", manifest.config.digest))?;
    if let Some(p) = &desc.platform
        && (p.os != config.os || p.architecture != config.arch)
    {
        return Err(fail(
            Kind::Integrity,
            format!(
                "index entry {} says {}/{} but its config says {}",
                desc.digest,
                p.os,
                p.architecture,
                config.platform()
            ),
        ));
    }
    let same = manifest.layers.len() == config.layers.len() + config.bases.len()
        && manifest
            .layers
            .iter()
            .zip(config.layers.iter().chain(&config.bases))
            .all(|(m, c)| {
                m.digest == c.digest
                    && m.media_type == c.media_type()
                    // A delta layer is stored as it is read: its length is its tar's.
                    && (!c.is_delta() || m.size == c.tar_bytes)
            });
    if !same {
        return Err(fail(
            Kind::Integrity,
            format!(
                "toolchain manifest {digest}: its layers are not the ones its config {} lists",
                manifest.config.digest
            ),
        ));
    }
    if let Some(l) = manifest.layers.iter().find(|l| l.size > MAX_TOTAL_BYTES) {
        return Err(fail(
            Kind::Integrity,
            format!("toolchain layer {} claims {} bytes", l.digest, l.size),
        ));
    }
    Ok(ToolchainPart {
        config_descriptor: manifest.config.clone(),
        layers: manifest.layers.clone(),
        manifest: fetched,
        config_bytes: bytes,
        config,
    })
}

/// The toolchain entries of an index (or the manifest itself).
pub fn toolchain_entries(repo: &dyn Repository, top: &Descriptor) -> Result<Vec<Descriptor>> {
    let fetched = repo.fetch_manifest(top)?;
    if !fetched.is_index() {
        let m = fetched.manifest()?;
        return Ok(
            if m.artifact_type.as_deref() == Some(ARTIFACT_TYPE_TOOLCHAIN) {
                vec![fetched.descriptor.clone()]
            } else {
                Vec::new()
            },
        );
    }
    Ok(fetched
        .index()?
        .manifests
        .into_iter()
        .filter(is_toolchain)
        .collect())
}

/// Picks the entry for `os/arch` (the only version, or the one asked for).
pub fn select<'a>(
    entries: &'a [Descriptor],
    os: &str,
    arch: &str,
    location: &str,
) -> Result<&'a Descriptor> {
    let matching: Vec<&Descriptor> = entries
        .iter()
        .filter(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == os && p.architecture == arch)
        })
        .collect();
    match matching.as_slice() {
        [one] => Ok(one),
        [] => {
            let have: Vec<String> = entries
                .iter()
                .filter_map(|d| d.platform.as_ref())
                .map(|p| format!("{}/{}", p.os, p.architecture))
                .collect();
            Err(fail(
                Kind::NotFound,
                format!(
                    "{location} holds no toolchain for {os}/{arch} (it has: {}); pass --platform to pick one",
                    if have.is_empty() {
                        "none".into()
                    } else {
                        have.join(", ")
                    }
                ),
            ))
        }
        _ => Err(fail(
            Kind::Integrity,
            format!("{location} holds more than one toolchain for {os}/{arch}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(n: u8, delta_from: Vec<Digest>) -> LayerInfo {
        LayerInfo {
            digest: Digest::parse(&format!("sha256:{}", hex::encode([n; 32]))).unwrap(),
            name: "bin".into(),
            files: 1,
            bytes: 100,
            tar_bytes: 2048,
            delta_from,
        }
    }

    fn config() -> ToolchainConfig {
        let base = layer(1, vec![]);
        ToolchainConfig {
            format_version: FORMAT_VERSION_DELTA,
            version: "go1.27.4".into(),
            os: "linux".into(),
            arch: "amd64".into(),
            time: None,
            source: SourceInfo {
                kind: "module".into(),
                name: "x".into(),
                sha256: None,
            },
            module: ModuleForm {
                version: "v0.0.1-go1.27.4.linux-amd64".into(),
                hash: "h1:x".into(),
                checked_with: None,
            },
            files: 1,
            bytes: 100,
            layers: vec![layer(2, vec![base.digest.clone()])],
            base_version: Some("go1.27.3".into()),
            bases: vec![base],
        }
    }

    fn refused(c: &ToolchainConfig, want: &str) {
        let e = format!("{:#}", c.validate().unwrap_err());
        assert!(e.contains(want), "{e}");
    }

    #[test]
    fn a_delta_config_must_name_bases_it_has_and_use_them_all() {
        let c = config();
        c.validate().unwrap();
        let bytes = to_canonical_json(&c);
        let d = Digest::parse(&format!("sha256:{}", hex::encode([9u8; 32]))).unwrap();
        assert_eq!(parse_config(&bytes, &d).unwrap(), c);

        let mut v1 = c.clone();
        v1.format_version = FORMAT_VERSION;
        refused(&v1, "only version 2 may");
        let mut stray = c.clone();
        stray.layers[0].delta_from = vec![layer(3, vec![]).digest];
        refused(&stray, "not among its bases");
        let mut unused = c.clone();
        unused.bases.push(layer(4, vec![]));
        refused(&unused, "used by no delta layer");
        let mut itself = c.clone();
        itself.base_version = Some(c.version.clone());
        refused(&itself, "against itself");
        let mut none = c.clone();
        none.base_version = None;
        refused(&none, "no base version");
    }

    #[test]
    fn sizes_that_add_up_only_past_u64_max_are_refused() {
        // Two own layers whose bytes wrap to the declared total.
        let mut c = config();
        let mut second = layer(5, vec![]);
        second.bytes = u64::MAX - 99;
        c.layers[0].bytes = 200;
        c.layers.push(second);
        c.files = 2;
        c.bytes = 100;
        refused(&c, "layer totals do not add up");
        // Bases whose bytes wrap below the cap.
        let mut c = config();
        let mut b = layer(6, vec![]);
        b.bytes = u64::MAX;
        c.bases.push(b.clone());
        c.layers[0].delta_from.push(b.digest.clone());
        refused(&c, "over 2^64 bytes");
    }

    #[test]
    fn a_later_format_version_is_refused_by_its_number_before_its_fields() {
        let d = Digest::parse(&format!("sha256:{}", hex::encode([9u8; 32]))).unwrap();
        let json = br#"{"formatVersion":3,"somethingNew":true}"#;
        let e = format!("{:#}", parse_config(json, &d).unwrap_err());
        assert!(
            e.contains("format version 3") && e.contains("upgrade ocigo"),
            "{e}"
        );
        // Full configs stay v1: no delta fields are written.
        let mut c = config();
        c.format_version = FORMAT_VERSION;
        c.layers[0].delta_from.clear();
        c.bases.clear();
        c.base_version = None;
        let text = String::from_utf8(to_canonical_json(&c)).unwrap();
        assert!(
            !text.contains("bases") && !text.contains("deltaFrom") && !text.contains("baseVersion")
        );
    }
}
