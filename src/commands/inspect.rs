//! `ocigo inspect`: what a bundle holds and what a pull would fetch.

use std::collections::HashSet;
use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;

use super::{Global, Outcome, human_bytes};
use crate::artifact::{self, Outline};
use crate::error::{Kind, kind_of};
use crate::gomod;
use crate::oci::{Descriptor, Digest, FetchedManifest, Reference, Repository};
use crate::store::Layout;
use crate::text::field;
use crate::toolchain::format as tc;

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub struct InspectModule {
    pub path: String,
    pub version: String,
    pub zip_size: Option<u64>,
    pub zip_hash: Option<String>,
    pub mod_hash: String,
    /// Why the path or version is not one a module cache can hold (a pull
    /// refuses the bundle); absent for a valid module.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalid: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub struct InspectMainModule {
    pub path: String,
    pub go_version: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub struct InspectReport {
    pub reference: String,
    pub digest: String,
    pub media_type: String,
    pub format_version: u32,
    /// Part manifests.
    pub manifests: usize,
    pub main_modules: Vec<InspectMainModule>,
    pub platforms: Vec<String>,
    pub module_versions: u64,
    pub zips: u64,
    pub zip_bytes: u64,
    /// Every module version, only with `--modules`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modules: Option<Vec<InspectModule>>,
    /// Module versions whose path or version is invalid (each is listed,
    /// with or without `--modules`).
    pub invalid_modules: usize,
    /// Signatures attached to the bundle, in either format (see
    /// [`Attached`]); not verified here (see `ocigo verify`).
    pub signatures: usize,
    /// The same, by format, and the attestations (referrers).
    pub attached: Attached,
    /// Every blob and manifest, counted once per reference.
    pub total_bytes: u64,
    /// The same, counted once per digest.
    pub unique_bytes: u64,
    /// Bytes a pull would fetch, given what the local store already holds.
    pub bytes_missing_from_store: u64,
    /// The toolchains packed under the same reference (`pack
    /// --with-toolchain`); absent when there are none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub toolchains: Option<InspectToolchains>,
}

/// A toolchain artifact (or the toolchains of a combined index): each
/// platform, and which layers the platforms share.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub struct InspectToolchains {
    pub platforms: Vec<InspectToolchainPlatform>,
    /// Distinct layers over all platforms.
    pub layers: usize,
    /// Layers that more than one platform uses, and their compressed bytes
    /// (stored once).
    pub shared_layers: usize,
    pub shared_bytes: u64,
    /// Compressed bytes of every platform's layers counted separately (what
    /// separate artifacts would store), and counted once per digest.
    pub total_bytes: u64,
    pub unique_bytes: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub struct InspectToolchainPlatform {
    pub version: String,
    pub platform: String,
    pub manifest: String,
    /// `golang.org/toolchain@<this>` and its h1 hash.
    pub module_version: String,
    pub module_hash: String,
    pub files: u64,
    /// Uncompressed file bytes.
    pub bytes: u64,
    pub layers: usize,
    /// Compressed bytes of its layers.
    pub layer_bytes: u64,
    /// Its layers no other platform uses, and their compressed bytes.
    pub own_layers: usize,
    pub own_bytes: u64,
    /// The delta form (`pack toolchain --delta-from`): the release its
    /// delta layers are made against, and how many of its `layers` are
    /// that release's (fetched with it, never extracted as such).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_layers: Option<usize>,
    /// Per layer, with `--modules`: name, files, bytes, compressed size,
    /// and whether other platforms share it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer_list: Option<Vec<InspectToolchainLayer>>,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub struct InspectToolchainLayer {
    pub digest: String,
    pub name: String,
    pub files: u64,
    pub bytes: u64,
    pub size: u64,
    pub shared: bool,
    /// `delta` (decoded against a base layer) or `base` (a base layer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
}

/// A toolchain-only artifact, as `inspect` shows it.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub struct InspectToolchainReport {
    pub reference: String,
    pub digest: String,
    pub media_type: String,
    pub artifact_type: String,
    pub signatures: usize,
    pub attached: Attached,
    pub bytes_missing_from_store: u64,
    pub toolchains: InspectToolchains,
}

/// Shows a bundle: a summary, and every module version with `--modules`.
/// Every value read from the bundle is shown escaped ([`field`]); modules
/// with an invalid path or version are always listed, marked as such, and
/// make the exit code 3 (integrity), as a pull would refuse them.
pub fn inspect(g: &Global, src: &str, list_modules: bool) -> Result<Outcome> {
    let src_ref = Reference::parse(src)?;
    let repo = g.open(&src_ref, false)?;
    let top = repo.resolve(src_ref.tag_or_digest())?;
    let store = g.open_store().ok();
    let top_manifest = repo.fetch_manifest(&top)?;
    let top_type = if top_manifest.is_index() {
        top_manifest.index()?.artifact_type
    } else {
        top_manifest.manifest()?.artifact_type
    };
    if top_type.as_deref() == Some(tc::ARTIFACT_TYPE_TOOLCHAIN) {
        return inspect_toolchain(&src_ref, repo.as_ref(), &top, store.as_ref(), list_modules);
    }
    let outline = artifact::open(repo.as_ref(), &top)?;
    let mut report = inspect_report(
        &src_ref,
        repo.as_ref(),
        &outline,
        store.as_ref(),
        list_modules,
    )?;
    report.attached = count_attached(repo.as_ref(), &top.digest)?;
    report.signatures = report.attached.signatures();
    let entries = tc::toolchain_entries(repo.as_ref(), &top)?;
    if !entries.is_empty() {
        let (t, missing) = toolchains_of(repo.as_ref(), &entries, store.as_ref(), list_modules)?;
        report.bytes_missing_from_store += missing;
        report.toolchains = Some(t);
    }

    let mut human = format!(
        "{} ({})\n  main modules: {}\n  platforms: {}\n  {} module versions ({} with zips, {}) in {} manifest(s)\n  total {}, unique {}, missing from the local store {}\n",
        report.reference,
        report.digest,
        report
            .main_modules
            .iter()
            .map(|m| field(&m.path).into_owned())
            .collect::<Vec<_>>()
            .join(", "),
        report
            .platforms
            .iter()
            .map(|p| field(p).into_owned())
            .collect::<Vec<_>>()
            .join(", "),
        report.module_versions,
        report.zips,
        human_bytes(report.zip_bytes),
        report.manifests,
        human_bytes(report.total_bytes),
        human_bytes(report.unique_bytes),
        human_bytes(report.bytes_missing_from_store),
    );
    human.push_str(&report.attached.text(&report.reference));
    for m in report.modules.iter().flatten() {
        let size = m
            .zip_size
            .map(human_bytes)
            .unwrap_or_else(|| "go.mod only".to_string());
        match &m.invalid {
            None => {
                let _ = writeln!(human, "  {} {} ({size})", m.path, m.version);
            }
            Some(why) => {
                let _ = writeln!(
                    human,
                    "  INVALID {} {}: {}",
                    field(&m.path),
                    field(&m.version),
                    field(why)
                );
            }
        }
    }
    if let Some(t) = &report.toolchains {
        human.push_str(&toolchains_text(t));
    }
    let invalid = report.invalid_modules;
    let mut outcome = Outcome::ok(human, &report);
    if invalid > 0 {
        let _ = writeln!(
            outcome.human,
            "{invalid} module version(s) have an invalid path or version: `ocigo pull` refuses this bundle"
        );
        outcome.exit_code = Kind::Integrity.exit_code();
    }
    Ok(outcome)
}

/// What is attached to an artifact: signatures in cosign v2's legacy
/// format (the `sha256-<hex>.sig` tag) and in cosign v3's bundle format
/// (referrers), and attestations (bundle referrers of any other predicate
/// type: SBOMs, policy decisions). Counted, not verified.
#[derive(Serialize, Default, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub struct Attached {
    pub legacy_signatures: usize,
    pub bundle_signatures: usize,
    pub attestations: usize,
}

impl Attached {
    pub fn signatures(&self) -> usize {
        self.legacy_signatures + self.bundle_signatures
    }

    /// The lines `inspect` prints (`reference` already made printable).
    fn text(&self, reference: &str) -> String {
        let mut out = String::new();
        if self.signatures() == 0 {
            out.push_str("  signatures: none\n");
        } else {
            let _ = writeln!(
                out,
                "  signatures: {} attached ({} legacy, {} bundle; not verified: use `ocigo verify --key PUB {reference}`)",
                self.signatures(),
                self.legacy_signatures,
                self.bundle_signatures,
            );
        }
        if self.attestations > 0 {
            let _ = writeln!(
                out,
                "  attestations: {} attached (not verified: use `ocigo verify --key PUB --attestation-type URI {reference}`)",
                self.attestations
            );
        }
        out
    }
}

/// Counts what is attached to `digest`: the `.sig` tag (one HEAD, and one
/// GET when it exists) and the referrers listing (one request; the
/// fallback tag where the registry has no API).
fn count_attached(repo: &dyn Repository, digest: &Digest) -> Result<Attached> {
    let legacy_signatures = match repo.resolve(&crate::sign::signature_tag(digest)) {
        Ok(desc) => repo.fetch_manifest(&desc)?.manifest()?.layers.len(),
        Err(e) if kind_of(&e) == Some(Kind::NotFound) => 0,
        Err(e) => return Err(e),
    };
    let mut attached = Attached {
        legacy_signatures,
        ..Attached::default()
    };
    for r in repo
        .referrers(digest, None)?
        .iter()
        .filter(|d| crate::sign::bundle::is_bundle_referrer(d))
    {
        // A listing normally carries the referrer's annotations; where it
        // does not, the manifest says.
        let key = crate::sign::bundle::PREDICATE_TYPE_ANNOTATION;
        let predicate = match r.annotations.get(key) {
            Some(p) => Some(p.clone()),
            None => repo
                .fetch_manifest(r)?
                .manifest()?
                .annotations
                .get(key)
                .cloned(),
        };
        if predicate.as_deref() == Some(crate::sign::bundle::SIGN_PREDICATE_TYPE) {
            attached.bundle_signatures += 1;
        } else {
            attached.attestations += 1;
        }
    }
    Ok(attached)
}

/// Walks the bundle one part at a time: part manifests only, unless the
/// modules are listed (or a v1 bundle, whose counts are in its configs).
fn inspect_report(
    src: &Reference,
    repo: &dyn Repository,
    outline: &Outline,
    store: Option<&Layout>,
    list_modules: bool,
) -> Result<InspectReport> {
    let top = &outline.top.descriptor;
    let mut total = outline.top.bytes.len() as u64;
    let mut seen = HashSet::new();
    seen.insert(top.digest.clone());
    let mut unique = total;
    let mut missing = 0;
    let mut manifests: Vec<FetchedManifest> = Vec::new();
    if let Some((header, _)) = &outline.header {
        manifests.push(header.clone());
    }
    let mut modules = list_modules.then(Vec::new);
    let (mut count, mut zips, mut zip_bytes) = outline.counts.unwrap_or_default();
    // Configs are always read: an invalid module path or version must show
    // even in the summary. Only the listing of valid ones needs --modules.
    let mut invalid_modules = 0;
    let mut checker = artifact::PartChecker::new(outline);
    for i in 0..outline.parts.len() {
        {
            let part = artifact::load_part(repo, outline, i)?;
            checker.check(&part)?;
            if outline.counts.is_none() {
                count += part.modules.len() as u64;
                for z in part.modules.iter().filter_map(|m| m.zip.as_ref()) {
                    zips += 1;
                    zip_bytes += z.size;
                }
            }
            for m in &part.modules {
                let invalid = module_problem(&m.path, &m.version);
                invalid_modules += usize::from(invalid.is_some());
                if invalid.is_none() && !list_modules {
                    continue;
                }
                modules.get_or_insert_with(Vec::new).push(InspectModule {
                    invalid,
                    path: m.path.clone(),
                    version: m.version.clone(),
                    zip_size: m.zip.as_ref().map(|z| z.size),
                    zip_hash: m.zip.as_ref().map(|z| z.hash.clone()),
                    mod_hash: m.mod_hash.clone(),
                });
            }
            manifests.push(part.manifest);
        }
        for m in manifests.drain(..) {
            let manifest = m.manifest()?;
            let mut blobs = vec![m.descriptor.clone(), manifest.config.clone()];
            blobs.extend(manifest.layers.iter().cloned());
            for b in blobs {
                if b.digest == top.digest {
                    continue;
                }
                total += b.size;
                if seen.insert(b.digest.clone()) {
                    unique += b.size;
                    if let Some(s) = store
                        && !s.blob_exists(&b.digest)?
                    {
                        missing += b.size;
                    }
                }
            }
        }
    }
    checker.finish(outline)?;
    Ok(InspectReport {
        reference: src.to_string(),
        digest: top.digest.to_string(),
        media_type: top.media_type.clone(),
        format_version: outline.format_version,
        manifests: outline.parts.len(),
        main_modules: outline
            .main_modules
            .iter()
            .map(|m| InspectMainModule {
                path: m.path.clone(),
                go_version: m.go_version.clone(),
            })
            .collect(),
        platforms: outline.platforms.clone(),
        module_versions: count,
        zips,
        zip_bytes,
        modules,
        invalid_modules,
        signatures: 0,
        attached: Attached::default(),
        total_bytes: total,
        unique_bytes: unique,
        bytes_missing_from_store: missing,
        toolchains: None,
    })
}

/// `inspect` of a toolchain artifact (an index of platforms, or one
/// platform's manifest).
fn inspect_toolchain(
    src: &Reference,
    repo: &dyn Repository,
    top: &Descriptor,
    store: Option<&Layout>,
    list_layers: bool,
) -> Result<Outcome> {
    let entries = tc::toolchain_entries(repo, top)?;
    let (toolchains, missing) = toolchains_of(repo, &entries, store, list_layers)?;
    let attached = count_attached(repo, &top.digest)?;
    let report = InspectToolchainReport {
        reference: src.to_string(),
        digest: top.digest.to_string(),
        media_type: top.media_type.clone(),
        artifact_type: tc::ARTIFACT_TYPE_TOOLCHAIN.to_string(),
        signatures: attached.signatures(),
        attached,
        bytes_missing_from_store: missing,
        toolchains,
    };
    let mut human = format!(
        "{} ({})\n  Go toolchain, {} platform(s)\n",
        field(&report.reference),
        report.digest,
        report.toolchains.platforms.len()
    );
    human.push_str(&toolchains_text(&report.toolchains));
    let _ = writeln!(
        human,
        "  missing from the local store {}",
        human_bytes(report.bytes_missing_from_store)
    );
    human.push_str(&report.attached.text(&field(&report.reference)));
    Ok(Outcome::ok(human, &report))
}

/// Reads every platform's manifest and config (checked as a pull checks
/// them) and counts shared and per-platform layers. Also returns the bytes
/// of manifests, configs and layers the local store lacks.
fn toolchains_of(
    repo: &dyn Repository,
    entries: &[Descriptor],
    store: Option<&Layout>,
    list_layers: bool,
) -> Result<(InspectToolchains, u64)> {
    let mut parts = Vec::with_capacity(entries.len());
    for e in entries {
        parts.push(tc::load_part(repo, e)?);
    }
    // How many platforms use each layer.
    let mut users: std::collections::HashMap<&Digest, usize> = std::collections::HashMap::new();
    for p in &parts {
        let mine: HashSet<&Digest> = p.layers.iter().map(|l| &l.digest).collect();
        for d in mine {
            *users.entry(d).or_default() += 1;
        }
    }
    let mut seen = HashSet::new();
    let (mut total, mut unique, mut shared_bytes, mut missing) = (0u64, 0u64, 0u64, 0u64);
    let mut shared_layers = 0;
    let mut platforms = Vec::with_capacity(parts.len());
    for p in &parts {
        let (mut own_layers, mut own_bytes, mut layer_bytes) = (0, 0u64, 0u64);
        for blob in [&p.manifest.descriptor, &p.config_descriptor] {
            if let Some(s) = store
                && !s.blob_exists(&blob.digest)?
            {
                missing += blob.size;
            }
        }
        for l in &p.layers {
            layer_bytes += l.size;
            total += l.size;
            let shared = users.get(&l.digest).copied().unwrap_or(0) > 1;
            if !shared {
                own_layers += 1;
                own_bytes += l.size;
            }
            if seen.insert(l.digest.clone()) {
                unique += l.size;
                if shared {
                    shared_layers += 1;
                    shared_bytes += l.size;
                }
                if let Some(s) = store
                    && !s.blob_exists(&l.digest)?
                {
                    missing += l.size;
                }
            }
        }
        let layer_list = list_layers.then(|| {
            p.config
                .layers
                .iter()
                .map(|info| (info, info.is_delta().then_some("delta")))
                .chain(p.config.bases.iter().map(|info| (info, Some("base"))))
                .zip(&p.layers)
                .map(|((info, role), l)| InspectToolchainLayer {
                    digest: l.digest.to_string(),
                    name: info.name.clone(),
                    files: info.files,
                    bytes: info.bytes,
                    size: l.size,
                    shared: users.get(&l.digest).copied().unwrap_or(0) > 1,
                    role,
                })
                .collect()
        });
        platforms.push(InspectToolchainPlatform {
            version: p.config.version.clone(),
            platform: p.config.platform(),
            manifest: p.manifest.descriptor.digest.to_string(),
            module_version: p.config.module.version.clone(),
            module_hash: p.config.module.hash.clone(),
            files: p.config.files,
            bytes: p.config.bytes,
            layers: p.layers.len(),
            layer_bytes,
            own_layers,
            own_bytes,
            delta_from: p.config.base_version.clone(),
            base_layers: (!p.config.bases.is_empty()).then_some(p.config.bases.len()),
            layer_list,
        });
    }
    Ok((
        InspectToolchains {
            platforms,
            layers: seen.len(),
            shared_layers,
            shared_bytes,
            total_bytes: total,
            unique_bytes: unique,
        },
        missing,
    ))
}

/// The toolchain lines of `inspect`'s human output.
fn toolchains_text(t: &InspectToolchains) -> String {
    let mut out = String::new();
    for p in &t.platforms {
        let _ = writeln!(
            out,
            "  toolchain {} {}: {} files, {} in {} layers ({}), {} of them its own ({})",
            field(&p.version),
            field(&p.platform),
            p.files,
            human_bytes(p.bytes),
            p.layers,
            human_bytes(p.layer_bytes),
            p.own_layers,
            human_bytes(p.own_bytes),
        );
        if let (Some(v), Some(n)) = (&p.delta_from, p.base_layers) {
            let _ = writeln!(
                out,
                "    bin/ and pkg/tool/ as deltas against {}: {n} of its layers travel with it",
                field(v)
            );
        }
        for l in p.layer_list.iter().flatten() {
            let _ = writeln!(
                out,
                "    {} {}: {} files, {} ({}){}{}",
                l.digest,
                field(&l.name),
                l.files,
                human_bytes(l.bytes),
                human_bytes(l.size),
                if l.shared { ", shared" } else { "" },
                match l.role {
                    Some("delta") => ", delta",
                    Some("base") => ", base (not extracted)",
                    _ => "",
                }
            );
        }
    }
    let _ = writeln!(
        out,
        "  toolchain layers: {} distinct, {} shared by platforms ({}); {} stored of {} for separate platforms",
        t.layers,
        t.shared_layers,
        human_bytes(t.shared_bytes),
        human_bytes(t.unique_bytes),
        human_bytes(t.total_bytes),
    );
    out
}

/// Why a module path or version could not be written to a module cache
/// (the rules pull applies), if it could not.
fn module_problem(path: &str, version: &str) -> Option<String> {
    let path_err = gomod::escape_path(path).err();
    let version_err = gomod::escape_version(version).err();
    let major_err = || {
        gomod::check_module_version(path, version)
            .err()
            .map(|why| anyhow::anyhow!(why))
    };
    path_err
        .or(version_err)
        .or_else(major_err)
        .map(|e| crate::error::render(&e))
}
