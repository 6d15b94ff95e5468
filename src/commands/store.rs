//! `ocigo store list` and `ocigo store prune`: the local content store.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use serde::Serialize;

use super::{Global, Outcome, human_bytes};
use crate::artifact;
use crate::error::WithHint;
use crate::text::field;

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub struct StoreEntry {
    pub reference: String,
    pub digest: String,
    pub media_type: String,
    pub artifact_type: Option<String>,
    /// For module bundles: what the bundle holds (from its header, or its
    /// config for v1). Absent for other artifacts, or when the store lacks
    /// the bundle's manifests (`error` says why).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<BundleSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Every module version (`path@version`), with `--modules` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modules: Option<Vec<String>>,
}

#[derive(Serialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub struct BundleSummary {
    pub format_version: u32,
    pub modules: u64,
    pub zips: u64,
    pub zip_bytes: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub struct StoreReport {
    pub path: String,
    pub blobs: usize,
    pub bytes: u64,
    pub entries: Vec<StoreEntry>,
}

pub fn store_list(g: &Global, list_modules: bool) -> Result<Outcome> {
    let store = g.open_store()?;
    // Shared, like pack and pull: a prune (exclusive) is not deleting the
    // blobs this reads, and waits for it to finish.
    let _store_in_use = store.use_lock()?;
    let (blobs, bytes) = store.usage()?;
    let mut entries = Vec::new();
    for (name, d) in store.refs()? {
        let mut entry = StoreEntry {
            reference: name,
            digest: d.digest.to_string(),
            media_type: d.media_type.clone(),
            artifact_type: d.artifact_type.clone(),
            summary: None,
            error: None,
            modules: None,
        };
        let bundle = matches!(
            d.artifact_type.as_deref(),
            Some(artifact::ARTIFACT_TYPE_MODULES | artifact::ARTIFACT_TYPE_MODULES_V1)
        );
        if bundle {
            match summarize(&store, &d, list_modules) {
                Ok((summary, modules)) => {
                    entry.summary = Some(summary);
                    entry.modules = modules;
                }
                Err(e) => entry.error = Some(format!("{e:#}")),
            }
        }
        entries.push(entry);
    }
    let mut human = format!(
        "content store {}: {blobs} blobs, {}\n",
        store.root().display(),
        human_bytes(bytes)
    );
    for e in &entries {
        let _ = writeln!(human, "  {}  {}", e.digest, field(&e.reference));
        match (&e.summary, &e.error) {
            (Some(s), _) => {
                let _ = writeln!(
                    human,
                    "      module bundle v{}: {} module versions, {} zips ({})",
                    s.format_version,
                    s.modules,
                    s.zips,
                    human_bytes(s.zip_bytes)
                );
            }
            (None, Some(err)) => {
                let _ = writeln!(human, "      unreadable: {}", field(err));
            }
            (None, None) => {
                if let Some(t) = &e.artifact_type {
                    let _ = writeln!(human, "      {}", field(t));
                }
            }
        }
        for m in e.modules.iter().flatten() {
            let _ = writeln!(human, "      {}", field(m));
        }
    }
    let report = StoreReport {
        path: store.root().display().to_string(),
        blobs,
        bytes,
        entries,
    };
    Ok(Outcome::ok(human, &report))
}

/// A bundle's counts: from its v2 header without reading the parts, unless
/// every module version is asked for (or it is v1, whose one config holds
/// everything).
fn summarize(
    store: &crate::store::Layout,
    top: &crate::oci::Descriptor,
    list_modules: bool,
) -> Result<(BundleSummary, Option<Vec<String>>)> {
    let outline = artifact::open(store, top)?;
    let format_version = outline.format_version;
    if let (Some((modules, zips, zip_bytes)), false) = (outline.counts, list_modules) {
        return Ok((
            BundleSummary {
                format_version,
                modules,
                zips,
                zip_bytes,
            },
            None,
        ));
    }
    let (mut modules, mut zips, mut zip_bytes) = (0u64, 0u64, 0u64);
    let mut names = list_modules.then(Vec::new);
    for i in 0..outline.parts.len() {
        let part = artifact::load_part(store, &outline, i)?;
        for m in &part.modules {
            modules += 1;
            if let Some(z) = &m.zip {
                zips += 1;
                zip_bytes += z.size;
            }
            if let Some(n) = names.as_mut() {
                n.push(format!("{}@{}", m.path, m.version));
            }
        }
    }
    Ok((
        BundleSummary {
            format_version,
            modules,
            zips,
            zip_bytes,
        },
        names,
    ))
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub struct PruneReport {
    pub forgotten: Vec<String>,
    pub blobs_removed: usize,
    pub bytes_freed: u64,
}

/// Forgets the named references (all with `all`), then deletes every blob
/// no remaining reference reaches.
pub fn store_prune(g: &Global, forget: &[String], all: bool) -> Result<Outcome> {
    let store = g.open_store()?;
    // Refused at once (exit 5) while a pack or pull uses the store.
    let exclusive = store.exclusive_use()?;
    let names: Vec<String> = if all {
        store.refs()?.into_iter().map(|(n, _)| n).collect()
    } else {
        forget.to_vec()
    };
    // All named references are forgotten, or none.
    let forgotten = store
        .remove_refs(&names)
        .context("a name given is not in the content store, so nothing was forgotten")
        .hint("`ocigo store list` shows the names the store holds")?;
    let (removed, freed) = exclusive.prune()?;
    let report = PruneReport {
        forgotten,
        blobs_removed: removed,
        bytes_freed: freed,
    };
    let human = format!("removed {removed} blobs, freed {}\n", human_bytes(freed));
    Ok(Outcome::ok(human, &report))
}
