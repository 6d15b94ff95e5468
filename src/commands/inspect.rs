//! `ocigo inspect`: what a bundle holds and what a pull would fetch.

use std::collections::HashSet;
use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;

use super::{Global, Outcome, human_bytes};
use crate::artifact::{self, MainModule, Outline};
use crate::oci::{FetchedManifest, Reference, Repository};
use crate::store::Layout;

#[derive(Serialize)]
pub struct InspectModule {
    pub path: String,
    pub version: String,
    pub zip_size: Option<u64>,
    pub zip_hash: Option<String>,
    pub mod_hash: String,
}

#[derive(Serialize)]
pub struct InspectReport {
    pub reference: String,
    pub digest: String,
    pub media_type: String,
    pub format_version: u32,
    /// Part manifests.
    pub manifests: usize,
    pub main_modules: Vec<MainModule>,
    pub platforms: Vec<String>,
    pub module_versions: u64,
    pub zips: u64,
    pub zip_bytes: u64,
    /// Every module version, only with `--modules`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modules: Option<Vec<InspectModule>>,
    /// Every blob and manifest, counted once per reference.
    pub total_bytes: u64,
    /// The same, counted once per digest.
    pub unique_bytes: u64,
    /// Bytes a pull would fetch, given what the local store already holds.
    pub bytes_missing_from_store: u64,
}

pub fn inspect(g: &Global, src: &str, list_modules: bool) -> Result<Outcome> {
    let src_ref = Reference::parse(src)?;
    let repo = g.open(&src_ref, false)?;
    let top = repo.resolve(src_ref.tag_or_digest())?;
    let outline = artifact::open(repo.as_ref(), &top)?;
    let store = g.open_store().ok();
    let report = inspect_report(
        &src_ref,
        repo.as_ref(),
        &outline,
        store.as_ref(),
        list_modules,
    )?;

    let mut human = format!(
        "{} ({})\n  main modules: {}\n  platforms: {}\n  {} module versions ({} with zips, {}) in {} manifest(s)\n  total {}, unique {}, missing from the local store {}\n",
        report.reference,
        report.digest,
        report
            .main_modules
            .iter()
            .map(|m| m.path.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        report.platforms.join(", "),
        report.module_versions,
        report.zips,
        human_bytes(report.zip_bytes),
        report.manifests,
        human_bytes(report.total_bytes),
        human_bytes(report.unique_bytes),
        human_bytes(report.bytes_missing_from_store),
    );
    for m in report.modules.iter().flatten() {
        let size = m
            .zip_size
            .map(human_bytes)
            .unwrap_or_else(|| "go.mod only".to_string());
        let _ = writeln!(human, "  {} {} ({size})", m.path, m.version);
    }
    Ok(Outcome::ok(human, &report))
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
    let read_configs = list_modules || outline.counts.is_none();
    let mut checker = artifact::PartChecker::new(outline);
    for i in 0..outline.parts.len() {
        if read_configs {
            let part = artifact::load_part(repo, outline, i)?;
            checker.check(&part)?;
            if outline.counts.is_none() {
                count += part.modules.len() as u64;
                for z in part.modules.iter().filter_map(|m| m.zip.as_ref()) {
                    zips += 1;
                    zip_bytes += z.size;
                }
            }
            if let Some(list) = &mut modules {
                list.extend(part.modules.iter().map(|m| InspectModule {
                    path: m.path.clone(),
                    version: m.version.clone(),
                    zip_size: m.zip.as_ref().map(|z| z.size),
                    zip_hash: m.zip.as_ref().map(|z| z.hash.clone()),
                    mod_hash: m.mod_hash.clone(),
                }));
            }
            manifests.push(part.manifest);
        } else {
            manifests.push(repo.fetch_manifest(&outline.parts[i])?);
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
    if read_configs {
        checker.finish(outline)?;
    }
    Ok(InspectReport {
        reference: src.to_string(),
        digest: top.digest.to_string(),
        media_type: top.media_type.clone(),
        format_version: outline.format_version,
        manifests: outline.parts.len(),
        main_modules: outline.main_modules.clone(),
        platforms: outline.platforms.clone(),
        module_versions: count,
        zips,
        zip_bytes,
        modules,
        total_bytes: total,
        unique_bytes: unique,
        bytes_missing_from_store: missing,
    })
}
