//! Copying artifacts between any two repositories (layout or registry, either
//! direction), sending only the blobs the destination lacks.
//!
//! Owns: walking manifests and indexes, the order of pushes (blobs, then
//! child manifests, then the top, so a registry never sees a manifest whose
//! blobs are missing), how many blobs move at once ([`CopyOptions`]), and
//! restarting a blob whose upload was interrupted (re-read from the source,
//! sent from a fresh upload). Must not: interpret artifact contents beyond
//! the OCI structure; that is `artifact`. Retrying single requests and
//! resuming downloads is the registry client's (`registry::retry`).

use std::io::Read;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::error::{Kind, fail};
use crate::oci::{Descriptor, FetchedManifest, Repository};
use crate::parallel::for_each_index;
use crate::progress::Progress;
use crate::registry::{RetryPolicy, is_interrupted};

/// Blobs transferred at once by default. Module bundles are many small
/// blobs, so the time goes to round trips, not bandwidth: 8 hides a 25 ms
/// latency (README "Performance") without crowding a registry.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// How a copy moves blobs.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Blobs checked, mounted or sent at once (`--concurrency`).
    pub concurrency: usize,
    /// Another repository of the destination registry to mount blobs from
    /// before sending them (`--mount-from`). Within one registry the source
    /// repository is tried without asking.
    pub mount_from: Option<String>,
    /// Restarts of an interrupted blob upload.
    pub retry: RetryPolicy,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            concurrency: DEFAULT_CONCURRENCY,
            mount_from: None,
            retry: RetryPolicy::default(),
        }
    }
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
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
    src: &(dyn Repository + Sync),
    top: &Descriptor,
    dst: &(dyn Repository + Sync),
    tag: Option<&str>,
    opts: &CopyOptions,
    progress: &Progress,
) -> Result<CopyStats> {
    let mut stats = CopyStats::default();
    let mut manifests = Vec::new();
    collect(src, top, &mut manifests, 0)?;
    let jobs = opts.concurrency.max(1);

    let mut blobs: Vec<Descriptor> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for m in &manifests {
        if m.is_index() {
            continue;
        }
        let manifest = m.manifest()?;
        for blob in std::iter::once(&manifest.config).chain(manifest.layers.iter()) {
            if seen.insert(blob.digest.clone()) {
                stats.blobs += 1;
                stats.bytes_total += blob.size;
                blobs.push(blob.clone());
            }
        }
    }
    // One HEAD per blob, several in flight.
    let present = for_each_index(blobs.len(), jobs, |i| dst.blob_exists(&blobs[i].digest))?;
    let mut missing: Vec<Descriptor> = blobs
        .into_iter()
        .zip(present)
        .filter(|(_, p)| !p)
        .map(|(b, _)| b)
        .collect();

    // Same registry, other repository: mount instead of sending (Harbor
    // projects, distribution repositories); `--mount-from` names one more.
    let mut mount_sources = Vec::new();
    if let (Some((src_host, src_repo)), Some((dst_host, dst_repo))) =
        (src.registry_name(), dst.registry_name())
        && src_host == dst_host
        && src_repo != dst_repo
    {
        mount_sources.push(src_repo);
    }
    if let Some(from) = &opts.mount_from
        && !mount_sources.contains(from)
    {
        mount_sources.push(from.clone());
    }
    for from in &mount_sources {
        if missing.is_empty() {
            break;
        }
        let mounted = for_each_index(missing.len(), jobs, |i| {
            dst.mount_blob_from(&missing[i].digest, from)
        })?;
        let mut still_missing = Vec::with_capacity(missing.len());
        for (blob, mounted) in missing.into_iter().zip(mounted) {
            if mounted {
                stats.blobs_mounted += 1;
            } else {
                still_missing.push(blob);
            }
        }
        missing = still_missing;
    }

    let to_send: u64 = missing.iter().map(|b| b.size).sum();
    progress.start_bytes("sending", to_send);
    progress.set_items(0, missing.len());
    let done = std::sync::atomic::AtomicUsize::new(0);
    for_each_index(missing.len(), jobs, |i| {
        send_blob(src, dst, &missing[i], &opts.retry, progress)?;
        let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        progress.set_items(n, missing.len());
        Ok(())
    })?;
    stats.blobs_sent = missing.len();
    stats.bytes_sent = to_send;
    progress.finish();

    // Children before parents; `collect` put parents first.
    for (i, m) in manifests.iter().enumerate().rev() {
        let tag = if i == 0 { tag } else { None };
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

/// Sends one blob, restarting from a fresh fetch and upload when the upload
/// was interrupted (up to `retry.retries` times). The progress bar counts
/// each byte once, however often it is sent.
fn send_blob(
    src: &dyn Repository,
    dst: &dyn Repository,
    blob: &Descriptor,
    retry: &RetryPolicy,
    progress: &Progress,
) -> Result<()> {
    let mut shown = 0u64;
    let mut attempt = 1;
    loop {
        let result = src.fetch_blob(blob).and_then(|mut reader| {
            let mut counted = Counted {
                inner: &mut reader,
                read: 0,
                shown: &mut shown,
                progress,
            };
            dst.push_blob(blob, &mut counted)
        });
        match result {
            Ok(()) => return Ok(()),
            Err(e) if is_interrupted(&e) && attempt <= retry.retries => {
                if let Some(wait) = retry.delay(attempt, None) {
                    std::thread::sleep(wait);
                }
                attempt += 1;
            }
            Err(e) => {
                let tries = if attempt > 1 {
                    format!(" (gave up after {attempt} attempts)")
                } else {
                    String::new()
                };
                return Err(e.context(format!(
                    "copying blob {} from {} to {}{tries}",
                    blob.digest,
                    src.location(),
                    dst.location()
                )));
            }
        }
    }
}

/// Advances the progress bar by the bytes read beyond the most any earlier
/// attempt of the same blob read.
struct Counted<'a> {
    inner: &'a mut dyn Read,
    read: u64,
    shown: &'a mut u64,
    progress: &'a Progress,
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > *self.shown {
            self.progress.inc(self.read - *self.shown);
            *self.shown = self.read;
        }
        Ok(n)
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
