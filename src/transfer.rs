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
//! Owns: walking manifests and indexes, the order of pushes (blobs, then
//! child manifests, then the top, then its referrers, so a registry never
//! sees a manifest whose blobs or subject are missing), how many blobs move
//! at once ([`CopyOptions`]), and restarting a blob whose upload was
//! interrupted (re-read from the source, sent from a fresh upload). Must
//! not: interpret artifact contents beyond the OCI structure; that is
//! `artifact`. Retrying single requests and resuming downloads is the
//! registry client's (`registry::retry`).

use std::io::Read;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::error::{Kind, fail};
use crate::oci::{Descriptor, FetchedManifest, ReferrerInfo, Repository};
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
    src: &(dyn Repository + Sync),
    top: &Descriptor,
    dst: &(dyn Repository + Sync),
    tag: Option<&str>,
    opts: &CopyOptions,
    progress: &Progress,
) -> Result<CopyStats> {
    Ok(copy_with_referrers(src, top, dst, tag, opts, progress)?.0)
}

/// [`copy`], also returning the descriptors of the referrers copied (in the
/// order pushed), for callers that carry more along (cosign's `.sig` tags).
pub fn copy_with_referrers(
    src: &(dyn Repository + Sync),
    top: &Descriptor,
    dst: &(dyn Repository + Sync),
    tag: Option<&str>,
    opts: &CopyOptions,
    progress: &Progress,
) -> Result<(CopyStats, Vec<Descriptor>)> {
    let mut stats = CopyStats::default();
    // Groups: the top's graph, then each referrer's graph (subject first).
    let mut groups: Vec<(Option<Descriptor>, Vec<FetchedManifest>)> = Vec::new();
    let jobs = opts.concurrency.max(1);
    let mut manifests = Vec::new();
    collect(src, top, &mut manifests, jobs)?;
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
            collect(src, &r, &mut manifests, jobs)?;
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

    // A registry accepts a manifest only when every blob it names is there
    // (distribution, zot and Harbor check on upload), so a manifest the
    // destination registry already holds proves its blobs present: one HEAD
    // per manifest instead of one per blob. An incremental push of a split
    // bundle then asks only about the parts that changed.
    let mut present_manifests = std::collections::HashSet::new();
    if dst.registry_name().is_some() {
        let asked: Vec<&FetchedManifest> = groups
            .iter()
            .flat_map(|(_, g)| g)
            .skip(1)
            .filter(|m| !m.is_index())
            .collect();
        // Several in flight: a split bundle has a manifest per part.
        let present = for_each_index(asked.len(), jobs, |i| {
            manifest_present(dst, &asked[i].descriptor)
        })?;
        for (m, present) in asked.into_iter().zip(present) {
            if present {
                present_manifests.insert(m.descriptor.digest.clone());
            }
        }
    }
    let mut blobs: Vec<Descriptor> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for m in groups.iter().flat_map(|(_, g)| g) {
        if m.is_index() {
            continue;
        }
        let proven = present_manifests.contains(&m.descriptor.digest);
        let manifest = m.manifest()?;
        for blob in std::iter::once(&manifest.config).chain(manifest.layers.iter()) {
            // Counted once, whichever manifest names it first; a blob of a
            // manifest the destination holds needs no HEAD.
            if seen.insert(blob.digest.clone()) {
                stats.blobs += 1;
                stats.bytes_total += blob.size;
                if !proven {
                    blobs.push(blob.clone());
                }
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

    // The copied graph's leaf manifests (a split bundle's parts, a
    // toolchain's platforms) name only blobs, all sent by now: several at
    // once. Indexes and referrers follow in order, children before parents.
    let leaves: Vec<&FetchedManifest> = groups[0]
        .1
        .iter()
        .skip(1)
        .filter(|m| !m.is_index() && !present_manifests.contains(&m.descriptor.digest))
        .collect();
    for_each_index(leaves.len(), jobs, |k| {
        let m = leaves[k];
        dst.push_manifest(&m.descriptor.media_type, &m.bytes, None)
            .with_context(|| {
                format!(
                    "pushing manifest {} to {}",
                    m.descriptor.digest,
                    dst.location()
                )
            })
    })?;
    stats.manifests += leaves.len();
    let pushed_leaves: std::collections::HashSet<&crate::oci::Digest> =
        leaves.iter().map(|m| &m.descriptor.digest).collect();
    for (i, (subject, manifests)) in groups.iter().enumerate() {
        // Children before parents; `collect` put parents first.
        for (j, m) in manifests.iter().enumerate().rev() {
            // A referrer itself is always pushed: on a registry without the
            // referrers API that also keeps the fallback tag's index right.
            let referrer_root = j == 0 && subject.is_some();
            if (i, j) != (0, 0)
                && !referrer_root
                && (present_manifests.contains(&m.descriptor.digest)
                    || (i == 0 && pushed_leaves.contains(&m.descriptor.digest)))
            {
                continue;
            }
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

/// Whether `dst` holds the manifest `desc` (by digest).
fn manifest_present(dst: &dyn Repository, desc: &Descriptor) -> Result<bool> {
    match dst.resolve(desc.digest.as_str()) {
        Ok(found) => Ok(found.digest == desc.digest),
        Err(e) if crate::error::kind_of(&e) == Some(Kind::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
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

/// Fetches `top` and, when it is an index, every manifest below it, parents
/// before children (depth first, in index order). The top's own children
/// are fetched up to `jobs` at once (a split bundle has a part per child);
/// deeper levels one at a time.
fn collect(
    src: &(dyn Repository + Sync),
    top: &Descriptor,
    out: &mut Vec<FetchedManifest>,
    jobs: usize,
) -> Result<()> {
    let fetched = src.fetch_manifest(top)?;
    let children = if fetched.is_index() {
        fetched.index()?.manifests
    } else {
        Vec::new()
    };
    out.push(fetched);
    let below = for_each_index(children.len(), jobs, |i| {
        let mut sub = Vec::new();
        collect_below(src, &children[i], &mut sub, 1)?;
        Ok(sub)
    })?;
    out.extend(below.into_iter().flatten());
    Ok(())
}

fn collect_below(
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
        collect_below(src, child, out, depth + 1)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::artifact::{self, MainModule, ModuleEntry, ModulesConfig, SplitLimits, ZipRef};
    use crate::oci::{Digest, FetchedManifest};
    use crate::store::Layout;

    /// A layout that calls itself a registry and counts blob HEADs.
    struct Counting {
        inner: Layout,
        heads: AtomicUsize,
    }

    impl crate::oci::Referrers for Counting {
        fn referrers(&self, subject: &Digest, t: Option<&str>) -> Result<Vec<Descriptor>> {
            self.inner.referrers(subject, t)
        }
        fn push_referrer(&self, m: &str, b: &[u8], subject: &Descriptor) -> Result<Descriptor> {
            self.inner.push_referrer(m, b, subject)
        }
    }

    impl Repository for Counting {
        fn location(&self) -> String {
            self.inner.location()
        }
        fn resolve(&self, reference: &str) -> Result<Descriptor> {
            self.inner.resolve(reference)
        }
        fn fetch_manifest(&self, desc: &Descriptor) -> Result<FetchedManifest> {
            self.inner.fetch_manifest(desc)
        }
        fn push_manifest(&self, m: &str, b: &[u8], t: Option<&str>) -> Result<Descriptor> {
            self.inner.push_manifest(m, b, t)
        }
        fn blob_exists(&self, digest: &Digest) -> Result<bool> {
            self.heads.fetch_add(1, Ordering::Relaxed);
            self.inner.blob_exists(digest)
        }
        fn fetch_blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + '_>> {
            self.inner.fetch_blob(desc)
        }
        fn push_blob(&self, desc: &Descriptor, content: &mut dyn Read) -> Result<()> {
            self.inner.push_blob(desc, content)
        }
        fn list_tags(&self) -> Result<Vec<String>> {
            self.inner.list_tags()
        }
        fn registry_name(&self) -> Option<(String, String)> {
            Some(("registry.test".into(), "dst".into()))
        }
    }

    fn bundle(src: &Layout, versions: &[(usize, &str)], tag: &str) -> Descriptor {
        let modules = versions
            .iter()
            .map(|&(i, v)| {
                let zip = format!("zip of m{i} {v}");
                let desc = Descriptor::for_bytes(artifact::MEDIA_TYPE_MODULE_ZIP, zip.as_bytes());
                src.push_blob(&desc, &mut zip.as_bytes()).unwrap();
                ModuleEntry {
                    path: format!("example.com/m{i:04}"),
                    version: v.to_string(),
                    info: None,
                    go_mod: format!("module example.com/m{i:04}\n"),
                    mod_hash: "h1:x".into(),
                    zip: Some(ZipRef {
                        hash: "h1:y".into(),
                        layer: desc.digest,
                        size: desc.size,
                    }),
                }
            })
            .collect();
        let built = artifact::build(
            ModulesConfig {
                format_version: artifact::FORMAT_VERSION,
                main_modules: vec![MainModule {
                    path: "example.com/main".into(),
                    go_version: None,
                }],
                platforms: vec![],
                created: None,
                modules,
            },
            SplitLimits {
                paths_per_part: 16,
                ..SplitLimits::default()
            },
        )
        .unwrap();
        artifact::push_built(src, &built, Some(tag)).unwrap()
    }

    /// An update asks the destination registry only about the blobs of the
    /// parts it does not hold yet, and sends only what changed.
    #[test]
    fn present_manifests_prove_their_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let src = Layout::open_or_create(dir.path().join("src")).unwrap();
        let dst = Counting {
            inner: Layout::open_or_create(dir.path().join("dst")).unwrap(),
            heads: AtomicUsize::new(0),
        };
        let mut versions: Vec<(usize, &str)> = (0..400).map(|i| (i, "v1.0.0")).collect();
        let first = bundle(&src, &versions, "one");
        let hidden = Progress::hidden();
        let stats = copy(
            &src,
            &first,
            &dst,
            Some("one"),
            &CopyOptions::default(),
            &hidden,
        )
        .unwrap();
        assert_eq!(stats.blobs, 400 + 1 + stats.manifests - 2);
        assert_eq!(
            dst.heads.load(Ordering::Relaxed),
            stats.blobs,
            "first copy: every blob asked"
        );

        versions[200].1 = "v1.1.0";
        let second = bundle(&src, &versions, "two");
        dst.heads.store(0, Ordering::Relaxed);
        let stats = copy(
            &src,
            &second,
            &dst,
            Some("two"),
            &CopyOptions::default(),
            &hidden,
        )
        .unwrap();
        // The new zip and the changed part's config (the zip has the same
        // size, so the header's counts, and the header, are unchanged).
        assert_eq!(stats.blobs_sent, 2, "{stats:?}");
        // Asked: the blobs of the changed part and the header, not the rest.
        assert!(
            dst.heads.load(Ordering::Relaxed) < 60,
            "{} HEAD requests for a one-module update of 400",
            dst.heads.load(Ordering::Relaxed)
        );
        // The index and the changed part.
        assert_eq!(stats.manifests, 2, "{stats:?}");
    }
}
