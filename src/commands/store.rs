//! `ocigo store list` and `ocigo store prune`: the local content store.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use serde::Serialize;

use super::{Global, Outcome, human_bytes};
use crate::error::WithHint;
use crate::text::field;

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub struct StoreEntry {
    pub reference: String,
    pub digest: String,
    pub media_type: String,
    pub artifact_type: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub struct StoreReport {
    pub path: String,
    pub blobs: usize,
    pub bytes: u64,
    pub entries: Vec<StoreEntry>,
}

pub fn store_list(g: &Global) -> Result<Outcome> {
    let store = g.open_store()?;
    let (blobs, bytes) = store.usage()?;
    let entries: Vec<StoreEntry> = store
        .refs()?
        .into_iter()
        .map(|(name, d)| StoreEntry {
            reference: name,
            digest: d.digest.to_string(),
            media_type: d.media_type,
            artifact_type: d.artifact_type,
        })
        .collect();
    let mut human = format!(
        "content store {}: {blobs} blobs, {}\n",
        store.root().display(),
        human_bytes(bytes)
    );
    for e in &entries {
        let _ = writeln!(human, "  {}  {}", e.digest, field(&e.reference));
    }
    let report = StoreReport {
        path: store.root().display().to_string(),
        blobs,
        bytes,
        entries,
    };
    Ok(Outcome::ok(human, &report))
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
