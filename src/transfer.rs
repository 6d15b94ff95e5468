//! Copying artifacts between any two repositories (layout or registry, either
//! direction), sending only the blobs the destination lacks.
//!
//! Owns: walking manifests and indexes, and the order of pushes (blobs, then
//! child manifests, then the top, so a registry never sees a manifest whose
//! blobs are missing). Must not: interpret artifact contents beyond the OCI
//! structure; that is `artifact`.

use anyhow::{Context, Result};
use serde::Serialize;

use crate::error::{Kind, fail};
use crate::oci::{Descriptor, FetchedManifest, Repository};
use crate::progress::Progress;

#[derive(Debug, Default, Clone, Serialize)]
pub struct CopyStats {
    pub blobs: usize,
    pub blobs_sent: usize,
    pub blobs_mounted: usize,
    pub bytes_total: u64,
    pub bytes_sent: u64,
    pub manifests: usize,
}

/// Copies the manifest or index `top` (and everything it references) from
/// `src` to `dst`, tagging the top with `tag`.
pub fn copy(
    src: &dyn Repository,
    top: &Descriptor,
    dst: &dyn Repository,
    tag: Option<&str>,
    progress: &Progress,
) -> Result<CopyStats> {
    let mut stats = CopyStats::default();
    let mut manifests = Vec::new();
    collect(src, top, &mut manifests, 0)?;

    // A registry accepts a manifest only when every blob it names is there
    // (distribution, zot and Harbor check on upload), so a manifest the
    // destination registry already holds proves its blobs present: one HEAD
    // per manifest instead of one per blob. An incremental push of a split
    // bundle then asks only about the parts that changed.
    let mut present_manifests = std::collections::HashSet::new();
    if dst.registry_name().is_some() {
        for m in manifests.iter().skip(1) {
            if !m.is_index() && manifest_present(dst, &m.descriptor)? {
                present_manifests.insert(m.descriptor.digest.clone());
            }
        }
    }
    let mut missing: Vec<Descriptor> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut to_check: Vec<Descriptor> = Vec::new();
    for m in &manifests {
        if m.is_index() {
            continue;
        }
        let proven = present_manifests.contains(&m.descriptor.digest);
        let manifest = m.manifest()?;
        for blob in std::iter::once(&manifest.config).chain(manifest.layers.iter()) {
            if proven {
                // Counted once, whichever manifest names it first.
                if seen.insert(blob.digest.clone()) {
                    stats.blobs += 1;
                    stats.bytes_total += blob.size;
                }
                continue;
            }
            to_check.push(blob.clone());
        }
    }
    for blob in to_check {
        if !seen.insert(blob.digest.clone()) {
            continue;
        }
        stats.blobs += 1;
        stats.bytes_total += blob.size;
        if !dst.blob_exists(&blob.digest)? {
            missing.push(blob);
        }
    }

    // Same registry, other repository: mount instead of sending (Harbor
    // projects, distribution repositories).
    if let (Some((src_host, src_repo)), Some((dst_host, _))) =
        (src.registry_name(), dst.registry_name())
        && src_host == dst_host
    {
        let mut still_missing = Vec::with_capacity(missing.len());
        for blob in missing {
            if dst.mount_blob_from(&blob.digest, &src_repo)? {
                stats.blobs_mounted += 1;
            } else {
                still_missing.push(blob);
            }
        }
        missing = still_missing;
    }
    let to_send: u64 = missing.iter().map(|b| b.size).sum();
    progress.start_bytes("sending", to_send);
    for blob in &missing {
        let mut reader = src.fetch_blob(blob)?;
        dst.push_blob(blob, &mut progress.reader(&mut reader))
            .with_context(|| {
                format!(
                    "copying blob {} from {} to {}",
                    blob.digest,
                    src.location(),
                    dst.location()
                )
            })?;
        stats.blobs_sent += 1;
        stats.bytes_sent += blob.size;
    }
    progress.finish();

    // Children before parents; `collect` put parents first.
    for (i, m) in manifests.iter().enumerate().rev() {
        let tag = if i == 0 { tag } else { None };
        if i > 0 && present_manifests.contains(&m.descriptor.digest) {
            continue;
        }
        dst.push_manifest(&m.descriptor.media_type, &m.bytes, tag)
            .with_context(|| {
                format!(
                    "pushing manifest {} to {}",
                    m.descriptor.digest,
                    dst.location()
                )
            })?;
        stats.manifests += 1;
    }
    Ok(stats)
}

/// Whether `dst` holds the manifest `desc` (by digest).
fn manifest_present(dst: &dyn Repository, desc: &Descriptor) -> Result<bool> {
    match dst.resolve(desc.digest.as_str()) {
        Ok(found) => Ok(found.digest == desc.digest),
        Err(e) if crate::error::kind_of(&e) == Some(Kind::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}

fn collect(
    src: &dyn Repository,
    desc: &Descriptor,
    out: &mut Vec<FetchedManifest>,
    depth: usize,
) -> Result<()> {
    if depth > 4 {
        return Err(fail(
            Kind::Integrity,
            format!(
                "indexes nested too deep at {} in {}",
                desc.digest,
                src.location()
            ),
        ));
    }
    let fetched = src.fetch_manifest(desc)?;
    let children = if fetched.is_index() {
        fetched.index()?.manifests
    } else {
        Vec::new()
    };
    out.push(fetched);
    for child in &children {
        collect(src, child, out, depth + 1)?;
    }
    Ok(())
}
