//! Copying artifacts between any two repositories (layout or registry, either
//! direction), sending only the blobs the destination lacks.
//!
//! Referrers (OCI 1.1) travel too: every manifest whose `subject` is the
//! copied one, and recursively every referrer of those (a signature of an
//! SBOM), each with what it references, pushed after its subject through
//! [`crate::oci::Referrers::push_referrer`] so the destination lists it
//! (its referrers API, or the fallback tag it maintains). Referrers of the
//! top and of referrers are looked up, not those of an index's children (as
//! oras-go's extended copy starts from the copied node). A referrer whose
//! own `subject` is not the manifest it was listed for is refused (exit 3)
//! before anything is pushed.
//!
//! Owns: walking manifests and indexes, and the order of pushes (blobs, then
//! child manifests, then the top, then its referrers, so a registry never
//! sees a manifest whose blobs or subject are missing). Must not: interpret artifact contents beyond the OCI
//! structure; that is `artifact`.

use anyhow::{Context, Result};
use serde::Serialize;

use crate::error::{Kind, fail};
use crate::oci::{Descriptor, FetchedManifest, ReferrerInfo, Repository};
use crate::progress::Progress;

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub struct CopyStats {
    pub blobs: usize,
    pub blobs_sent: usize,
    pub blobs_mounted: usize,
    pub bytes_total: u64,
    pub bytes_sent: u64,
    pub manifests: usize,
    /// Referrers copied along (all generations), counted in `manifests` too.
    pub referrers: usize,
}

/// At most this many referrers travel with one artifact (all generations):
/// a source listing more is refused rather than walked without end.
const MAX_REFERRERS: usize = 10_000;

/// Copies the manifest or index `top` (and everything it references, and
/// its referrers, recursively) from `src` to `dst`, tagging the top with
/// `tag`.
pub fn copy(
    src: &dyn Repository,
    top: &Descriptor,
    dst: &dyn Repository,
    tag: Option<&str>,
    progress: &Progress,
) -> Result<CopyStats> {
    Ok(copy_with_referrers(src, top, dst, tag, progress)?.0)
}

/// [`copy`], also returning the descriptors of the referrers copied (in the
/// order pushed), for callers that carry more along (cosign's `.sig` tags).
pub fn copy_with_referrers(
    src: &dyn Repository,
    top: &Descriptor,
    dst: &dyn Repository,
    tag: Option<&str>,
    progress: &Progress,
) -> Result<(CopyStats, Vec<Descriptor>)> {
    let mut stats = CopyStats::default();
    // Groups: the top's graph, then each referrer's graph (subject first).
    let mut groups: Vec<(Option<Descriptor>, Vec<FetchedManifest>)> = Vec::new();
    let mut manifests = Vec::new();
    collect(src, top, &mut manifests, 0)?;
    groups.push((None, manifests));
    let mut queue = std::collections::VecDeque::from([top.clone()]);
    let mut seen = std::collections::HashSet::from([top.digest.clone()]);
    let mut referrers = Vec::new();
    while let Some(subject) = queue.pop_front() {
        for r in src.referrers(&subject.digest, None)? {
            if !seen.insert(r.digest.clone()) {
                continue;
            }
            if referrers.len() >= MAX_REFERRERS {
                return Err(fail(
                    Kind::Integrity,
                    format!(
                        "{} lists more than {MAX_REFERRERS} referrers of {}; refusing to copy them",
                        src.location(),
                        top.digest
                    ),
                ));
            }
            let mut manifests = Vec::new();
            collect(src, &r, &mut manifests, 0)?;
            let named = ReferrerInfo::of(&manifests[0].bytes).and_then(|i| i.subject);
            if named.as_ref().map(|s| &s.digest) != Some(&subject.digest) {
                return Err(fail(
                    Kind::Integrity,
                    format!(
                        "{} lists {} as a referrer of {}, but its subject is {}",
                        src.location(),
                        r.digest,
                        subject.digest,
                        named.map_or("missing".to_string(), |s| s.digest.to_string())
                    ),
                ));
            }
            referrers.push(manifests[0].descriptor.clone());
            groups.push((Some(subject.clone()), manifests));
            queue.push_back(r);
        }
    }
    stats.referrers = referrers.len();

    let mut missing: Vec<Descriptor> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for m in groups.iter().flat_map(|(_, g)| g) {
        if m.is_index() {
            continue;
        }
        let manifest = m.manifest()?;
        for blob in std::iter::once(&manifest.config).chain(manifest.layers.iter()) {
            if !seen.insert(blob.digest.clone()) {
                continue;
            }
            stats.blobs += 1;
            stats.bytes_total += blob.size;
            if !dst.blob_exists(&blob.digest)? {
                missing.push(blob.clone());
            }
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

    for (i, (subject, manifests)) in groups.iter().enumerate() {
        // Children before parents; `collect` put parents first.
        for (j, m) in manifests.iter().enumerate().rev() {
            let pushed = match (j, subject) {
                (0, Some(subject)) => {
                    dst.push_referrer(&m.descriptor.media_type, &m.bytes, subject)
                }
                _ => {
                    let tag = if i == 0 && j == 0 { tag } else { None };
                    dst.push_manifest(&m.descriptor.media_type, &m.bytes, tag)
                }
            };
            pushed.with_context(|| {
                format!(
                    "pushing manifest {} to {}",
                    m.descriptor.digest,
                    dst.location()
                )
            })?;
            stats.manifests += 1;
        }
    }
    Ok((stats, referrers))
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
