//! `ocigo inspect`: what a bundle holds and what a pull would fetch.

use std::collections::HashSet;
use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;

use super::{Global, Outcome, human_bytes};
use crate::artifact::{self, Bundle, MainModule};
use crate::oci::{Reference, Repository};
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
    pub manifests: usize,
    pub main_modules: Vec<MainModule>,
    pub platforms: Vec<String>,
    pub modules: Vec<InspectModule>,
    /// Every blob and manifest, counted once per reference.
    pub total_bytes: u64,
    /// The same, counted once per digest.
    pub unique_bytes: u64,
    /// Bytes a pull would fetch, given what the local store already holds.
    pub bytes_missing_from_store: u64,
}

pub fn inspect(g: &Global, src: &str) -> Result<Outcome> {
    let src_ref = Reference::parse(src)?;
    let repo = g.open(&src_ref, false)?;
    let top = repo.resolve(src_ref.tag_or_digest())?;
    let bundle = artifact::load(repo.as_ref(), &top)?;
    let store = g.open_store().ok();
    let report = inspect_report(&src_ref, &bundle, store.as_ref())?;

    let mut human = format!(
        "{} ({})\n  main modules: {}\n  platforms: {}\n  {} module versions in {} manifest(s)\n  total {}, unique {}, missing from the local store {}\n",
        report.reference,
        report.digest,
        report
            .main_modules
            .iter()
            .map(|m| m.path.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        report.platforms.join(", "),
        report.modules.len(),
        report.manifests,
        human_bytes(report.total_bytes),
        human_bytes(report.unique_bytes),
        human_bytes(report.bytes_missing_from_store),
    );
    for m in &report.modules {
        let size = m
            .zip_size
            .map(human_bytes)
            .unwrap_or_else(|| "go.mod only".to_string());
        let _ = writeln!(human, "  {} {} ({size})", m.path, m.version);
    }
    Ok(Outcome::ok(human, &report))
}

fn inspect_report(
    src: &Reference,
    bundle: &Bundle,
    store: Option<&Layout>,
) -> Result<InspectReport> {
    let mut total = bundle.top.bytes.len() as u64;
    let mut seen = HashSet::new();
    seen.insert(bundle.top.descriptor.digest.clone());
    let mut unique = total;
    let mut missing = 0;
    for part in &bundle.parts {
        let manifest = part.manifest.manifest()?;
        let mut blobs = vec![part.manifest.descriptor.clone(), manifest.config.clone()];
        blobs.extend(manifest.layers.iter().cloned());
        for b in blobs {
            if b.digest == bundle.top.descriptor.digest {
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
    let first = &bundle.parts[0].config;
    Ok(InspectReport {
        reference: src.to_string(),
        digest: bundle.top.descriptor.digest.to_string(),
        media_type: bundle.top.descriptor.media_type.clone(),
        manifests: bundle.parts.len(),
        main_modules: first.main_modules.clone(),
        platforms: first.platforms.clone(),
        modules: bundle
            .modules()
            .map(|m| InspectModule {
                path: m.path.clone(),
                version: m.version.clone(),
                zip_size: m.zip.as_ref().map(|z| z.size),
                zip_hash: m.zip.as_ref().map(|z| z.hash.clone()),
                mod_hash: m.mod_hash.clone(),
            })
            .collect(),
        total_bytes: total,
        unique_bytes: unique,
        bytes_missing_from_store: missing,
    })
}
