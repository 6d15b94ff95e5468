//! `ocigo inspect`: what a bundle holds and what a pull would fetch.

use std::collections::HashSet;
use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;

use super::{Global, Outcome, human_bytes};
use crate::artifact::{self, Bundle};
use crate::error::{Kind, kind_of};
use crate::gomod;
use crate::oci::{Digest, Reference, Repository};
use crate::store::Layout;
use crate::text::field;

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
    pub manifests: usize,
    pub main_modules: Vec<InspectMainModule>,
    pub platforms: Vec<String>,
    pub modules: Vec<InspectModule>,
    /// Module versions whose path or version is invalid.
    pub invalid_modules: usize,
    /// Signatures stored beside the bundle (the `sha256-<hex>.sig` tag);
    /// not verified here (see `ocigo verify`).
    pub signatures: usize,
    /// Every blob and manifest, counted once per reference.
    pub total_bytes: u64,
    /// The same, counted once per digest.
    pub unique_bytes: u64,
    /// Bytes a pull would fetch, given what the local store already holds.
    pub bytes_missing_from_store: u64,
}

/// Shows a bundle. Every value read from the bundle is shown escaped
/// ([`field`]); modules with an invalid path or version are marked as such
/// and make the exit code 3 (integrity), as a pull would refuse them.
pub fn inspect(g: &Global, src: &str) -> Result<Outcome> {
    let src_ref = Reference::parse(src)?;
    let repo = g.open(&src_ref, false)?;
    let top = repo.resolve(src_ref.tag_or_digest())?;
    let bundle = artifact::load(repo.as_ref(), &top)?;
    let store = g.open_store().ok();
    let mut report = inspect_report(&src_ref, &bundle, store.as_ref())?;
    report.signatures = count_signatures(repo.as_ref(), &top.digest)?;

    let mut human = format!(
        "{} ({})\n  main modules: {}\n  platforms: {}\n  {} module versions in {} manifest(s)\n  total {}, unique {}, missing from the local store {}\n",
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
        report.modules.len(),
        report.manifests,
        human_bytes(report.total_bytes),
        human_bytes(report.unique_bytes),
        human_bytes(report.bytes_missing_from_store),
    );
    if report.signatures == 0 {
        human.push_str("  signatures: none\n");
    } else {
        let _ = writeln!(
            human,
            "  signatures: {} attached (tag {}; not verified: use `ocigo verify --key PUB {}`)",
            report.signatures,
            crate::sign::signature_tag(&top.digest),
            report.reference
        );
    }
    for m in &report.modules {
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

/// How many signatures the `sha256-<hex>.sig` tag holds (0 when absent):
/// one HEAD, and one GET when there are some.
fn count_signatures(repo: &dyn Repository, digest: &Digest) -> Result<usize> {
    match repo.resolve(&crate::sign::signature_tag(digest)) {
        Ok(desc) => Ok(repo.fetch_manifest(&desc)?.manifest()?.layers.len()),
        Err(e) if kind_of(&e) == Some(Kind::NotFound) => Ok(0),
        Err(e) => Err(e),
    }
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
        main_modules: first
            .main_modules
            .iter()
            .map(|m| InspectMainModule {
                path: m.path.clone(),
                go_version: m.go_version.clone(),
            })
            .collect(),
        platforms: first.platforms.clone(),
        modules: bundle
            .modules()
            .map(|m| InspectModule {
                invalid: module_problem(&m.path, &m.version),
                path: m.path.clone(),
                version: m.version.clone(),
                zip_size: m.zip.as_ref().map(|z| z.size),
                zip_hash: m.zip.as_ref().map(|z| z.hash.clone()),
                mod_hash: m.mod_hash.clone(),
            })
            .collect(),
        invalid_modules: 0,
        signatures: 0,
        total_bytes: total,
        unique_bytes: unique,
        bytes_missing_from_store: missing,
    })
    .map(|mut r| {
        r.invalid_modules = r.modules.iter().filter(|m| m.invalid.is_some()).count();
        r
    })
}

/// Why a module path or version could not be written to a module cache
/// (the rules pull applies), if it could not.
fn module_problem(path: &str, version: &str) -> Option<String> {
    let path_err = gomod::escape_path(path).err();
    let version_err = gomod::escape_version(version).err();
    path_err.or(version_err).map(|e| crate::error::render(&e))
}
