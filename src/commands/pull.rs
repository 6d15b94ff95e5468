//! `ocigo pull`: verify (when asked or required by host policy), fetch into
//! the local content store, then install into GOMODCACHE.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Serialize;

use super::sign::{VerifyWith, verify_at};
use super::{Global, Outcome, human_bytes, shell_quote, toolchain};
use crate::artifact::{self, ModuleEntry};
use crate::error::{Kind, fail, fail_hint};
use crate::install::{self, InstallItem, InstallReport};
use crate::oci::{Descriptor, Digest, Reference, Repository};
use crate::parallel::for_each_index;
use crate::policy::host::pull_policy;
use crate::sign;

pub struct PullArgs {
    pub src: String,
    pub gomodcache: Option<PathBuf>,
    /// Where the checksum database's trusted tree head goes (`pkg/sumdb`).
    pub gopath: Option<PathBuf>,
    /// Modules verified and installed at once.
    pub jobs: usize,
    /// Write only the download area, not the extracted trees.
    pub no_extract: bool,
    /// Install a toolchain as a GOROOT here (instead of into GOMODCACHE).
    pub goroot: Option<PathBuf>,
    /// The toolchain platform to install (default: the host's).
    pub platform: Option<String>,
    /// Replace a different toolchain already in `goroot`.
    pub force: bool,
    /// Write a vulnerability database artifact's layout here.
    pub vulndb: Option<PathBuf>,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub struct PullReport {
    pub source: String,
    pub digest: String,
    pub gomodcache: String,
    pub modules: usize,
    pub blobs_fetched: usize,
    pub bytes_fetched: u64,
    #[serde(flatten)]
    pub install: InstallReport,
    /// Environment variables to use the modules with, by name
    /// (`{"GOMODCACHE": "...", "GOPROXY": "off"}`): the names are the
    /// variables' own, not snake_case keys.
    pub env: BTreeMap<String, String>,
    /// The checksum-database data installed, per database.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sumdb: Vec<SumdbInstalled>,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub struct SumdbInstalled {
    pub database: String,
    pub records_written: usize,
    pub tiles_written: usize,
    /// Size of the tree the go command trusts afterwards.
    pub tree_size: u64,
    /// Why nothing was installed (GOSUMDB off, another database).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// What to do when the data could be carried but was not (a tree that
    /// cannot be joined to the cache's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    pub verify_seconds: f64,
}

/// Modules installed at once: bounds memory (configs of one batch of
/// parts) while giving `--jobs` threads enough to share.
const INSTALL_BATCH: usize = 2048;

/// What a zip check proved: that the zip of this layer holds a valid
/// module zip of this module version hashing to this h1. A layer is
/// content-addressed, but another entry may name the same layer with
/// another module version or h1: its zip is checked again.
type CheckedZip = (Digest, String, String, String);

fn checked_zip_key(entry: &ModuleEntry) -> Option<CheckedZip> {
    entry.zip.as_ref().map(|z| {
        (
            z.layer.clone(),
            entry.path.clone(),
            entry.version.clone(),
            z.hash.clone(),
        )
    })
}

fn install_items<'a>(
    store: &crate::store::Layout,
    entries: impl IntoIterator<Item = &'a ModuleEntry>,
    zips_checked: &HashSet<CheckedZip>,
    extract: bool,
) -> Vec<InstallItem<'a>> {
    entries
        .into_iter()
        .map(|entry| InstallItem {
            entry,
            zip_blob: entry.zip.as_ref().map(|z| store.blob_path(&z.layer)),
            zip_checked: checked_zip_key(entry).is_some_and(|k| zips_checked.contains(&k)),
            extract,
        })
        .collect()
}

/// Pulls a module bundle into GOMODCACHE.
pub fn pull(g: &Global, args: &PullArgs) -> Result<Outcome> {
    let src_ref = Reference::parse(&args.src)?;
    let src = g.open(&src_ref, false)?;
    let top = src.resolve(src_ref.tag_or_digest())?;
    pull_from(g, args, &src_ref, src.as_ref(), &top)
}

fn gomodcache_of(args: &PullArgs) -> Result<PathBuf> {
    let gomodcache = match &args.gomodcache {
        Some(d) => d.clone(),
        None => install::default_gomodcache()?,
    };
    // The go command refuses a relative GOMODCACHE; print and use an absolute one.
    std::path::absolute(&gomodcache)
        .with_context(|| format!("resolving GOMODCACHE {}", gomodcache.display()))
}

fn gopath_of(args: &PullArgs) -> Result<PathBuf> {
    match &args.gopath {
        Some(d) => {
            std::path::absolute(d).with_context(|| format!("resolving GOPATH {}", d.display()))
        }
        None => crate::sumdata::default_gopath(),
    }
}

/// Pulls what `top` holds: a module bundle, a toolchain, or both (a
/// project packed `--with-toolchain`). The caller resolved the reference
/// once (and, when verifying, checked the signature over this digest):
/// everything is fetched by digest from here on.
fn pull_from(
    g: &Global,
    args: &PullArgs,
    src_ref: &Reference,
    src: &(dyn Repository + Sync),
    top: &Descriptor,
) -> Result<Outcome> {
    if let Some(dir) = &args.vulndb {
        return super::vulndb::pull_vulndb(src_ref, src, top, dir);
    }
    let (has_modules, has_toolchain) = toolchain::contents(src, top)?;
    if !has_toolchain && (args.goroot.is_some() || args.force || args.platform.is_some()) {
        return Err(fail(
            Kind::Usage,
            format!(
                "{src_ref} holds no Go toolchain: --goroot, --platform and --force apply to toolchains"
            ),
        ));
    }
    if has_modules && has_toolchain {
        // The toolchain is checked before any module is installed.
        toolchain::select_toolchain(src, top, args.platform.as_deref())?;
    }
    let mut outcome = if has_modules {
        Some(pull_modules_from(g, args, src_ref, src, top)?)
    } else {
        None
    };
    if has_toolchain && outcome.as_ref().is_none_or(|o| o.exit_code == 0) {
        let target = match &args.goroot {
            Some(dir) => toolchain::ToolchainTarget::Goroot {
                dir: dir.clone(),
                force: args.force,
            },
            None => toolchain::ToolchainTarget::ModCache {
                dir: gomodcache_of(args)?,
                // A bundle's pull already installed the records (the
                // toolchain's among them), or said why not.
                sumdb: match &outcome {
                    Some(o) => bundle_sumdb(&o.json),
                    None => toolchain::ToolchainSumdb::Install(gopath_of(args)?),
                },
            },
        };
        let (human, report) = toolchain::pull_toolchain(
            g,
            src,
            top,
            args.platform.as_deref(),
            &target,
            args.jobs.max(2),
            &src_ref.to_string(),
        )?;
        match &mut outcome {
            Some(o) => {
                o.human.push_str(&human);
                if let serde_json::Value::Object(m) = &mut o.json {
                    m.insert(
                        "toolchain".into(),
                        serde_json::to_value(&report).expect("serialisable"),
                    );
                }
            }
            None => {
                let mut o = Outcome::ok(human, &report);
                o.human = format!("pulled {src_ref} ({})\n{}", top.digest, o.human);
                outcome = Some(o);
            }
        }
    }
    Ok(outcome.expect("a bundle holds modules or a toolchain"))
}

/// What the module pull's report (`sumdb[]`) says of the checksum
/// database data it installed: none installed is skipped, with its reason.
fn bundle_sumdb(json: &serde_json::Value) -> toolchain::ToolchainSumdb {
    let dbs = json["sumdb"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
    if dbs.iter().any(|d| d["skipped"].is_null()) {
        return toolchain::ToolchainSumdb::ByBundle {
            skipped: None,
            hint: None,
        };
    }
    match dbs.first() {
        Some(d) => toolchain::ToolchainSumdb::ByBundle {
            skipped: text(&d["skipped"]),
            hint: text(&d["hint"]),
        },
        None => toolchain::ToolchainSumdb::ByBundle {
            skipped: Some("the bundle carries no checksum database data".into()),
            hint: None,
        },
    }
}

fn pull_modules_from(
    g: &Global,
    args: &PullArgs,
    src_ref: &Reference,
    src: &(dyn Repository + Sync),
    top: &Descriptor,
) -> Result<Outcome> {
    let gomodcache = gomodcache_of(args)?;
    let progress = g.progress();
    let store = g.open_store()?;
    // Held for the whole run: `store prune` waits for no one and deletes
    // only what no running pack or pull may still need.
    let _store_in_use = store.use_lock()?;
    let outline = artifact::open(src, top)?;
    // Trees are extracted as their zips are verified, into a private
    // staging directory in GOMODCACHE, and moved into place only once the
    // whole bundle is verified; dropped on any error before that, it
    // removes them (and GOMODCACHE, if this pull created it).
    let staging = install::Staging::new(&gomodcache);
    let staging = (!args.no_extract).then_some(&staging);

    // 1. Every part, a window at a time, holding only small state between windows:
    // fetch what the store lacks (the store checks each digest as it
    // writes), then check every .mod, .info, and the zip (h1, zip rules) of
    // every module not yet in the cache, writing nothing to GOMODCACHE.
    // Every layer is fetched and digest-checked, even for modules the cache
    // already holds, so a corrupt bundle is never accepted.
    let mut checker = artifact::PartChecker::new(&outline);
    let mut zips_checked: HashSet<CheckedZip> = HashSet::new();
    let mut layers_seen: HashSet<Digest> = HashSet::new();
    let (mut modules, mut blobs_fetched, mut bytes_fetched) = (0usize, 0usize, 0u64);
    progress.start("verifying", outline.counts.map(|c| c.0).unwrap_or(0));
    let quiet = crate::progress::Progress::hidden();
    // Parts are read a window at a time, their manifests and configs
    // several at once, so that a bundle of many parts does not pay two
    // round trips per part in sequence; memory holds one window's configs.
    let window = g.concurrency().max(1);
    let mut next_part = 0;
    // What the carried checksum-database records must be records of.
    let mut sum_inputs: Vec<crate::sumdata::SumInput> = Vec::new();
    while next_part < outline.parts.len() {
        let count = window.min(outline.parts.len() - next_part);
        let parts = for_each_index(count, g.concurrency(), |k| {
            artifact::load_part(src, &outline, next_part + k)
        })?;
        next_part += count;
        // The window's missing layers, several at once (`--concurrency`):
        // module bundles are many small blobs, so round trips, not
        // bandwidth, bound the time. Each is streamed into the store,
        // which keeps it only once it is verified.
        let mut missing = Vec::new();
        for part in &parts {
            checker.check(part)?;
            for layer in &part.layers {
                if layers_seen.insert(layer.digest.clone()) && !store.blob_exists(&layer.digest)? {
                    missing.push(layer);
                }
            }
        }
        for_each_index(missing.len(), g.concurrency(), |i| {
            let layer = missing[i];
            let mut reader = src.fetch_blob(layer)?;
            store.push_blob(layer, &mut reader).with_context(|| {
                format!("fetching layer {} from {}", layer.digest, src.location())
            })?;
            Ok(())
        })?;
        blobs_fetched += missing.len();
        bytes_fetched += missing.iter().map(|l| l.size).sum::<u64>();
        // The window's modules verified (and their trees staged) in one
        // go, so that `--jobs` threads share all its zips, not one part's.
        for part in &parts {
            part.store_in(&store, &top.digest)?;
        }
        let entries: Vec<&ModuleEntry> = parts.iter().flat_map(|p| p.modules.iter()).collect();
        let items = install_items(
            &store,
            entries.iter().copied(),
            &zips_checked,
            !args.no_extract,
        );
        let checked = install::verify(&gomodcache, &items, args.jobs, &quiet, staging)?;
        drop(items);
        for (entry, checked) in entries.iter().zip(checked) {
            if let (true, Some(k)) = (checked, checked_zip_key(entry)) {
                zips_checked.insert(k);
            }
        }
        for part in &parts {
            modules += part.modules.len();
            sum_inputs.extend(crate::sumdata::inputs_of(&part.modules));
            progress.inc(part.modules.len() as u64);
        }
    }
    checker.finish(&outline)?;
    progress.finish();
    drop(layers_seen);
    // The checksum database's records and tiles, proven against GOSUMDB's
    // key and the cache's trusted head before anything is installed.
    let sumdb_desc = match outline.top.is_index() {
        true => outline
            .top
            .index()?
            .manifests
            .into_iter()
            .find(crate::sumdata::is_sumdb),
        false => None,
    };
    let gopath = match &args.gopath {
        Some(d) => {
            std::path::absolute(d).with_context(|| format!("resolving GOPATH {}", d.display()))?
        }
        None => crate::sumdata::default_gopath()?,
    };
    let started = std::time::Instant::now();
    let (carried, sumdb_prepared) = match &sumdb_desc {
        Some(desc) => {
            let carried = crate::sumdata::fetch_carried(src, desc)?;
            // The toolchains the bundle holds have records too.
            sum_inputs.extend(super::toolchain::sum_inputs(src, &outline.top.descriptor)?);
            let prepared = crate::sumdata::prepare(&carried, &sum_inputs, &gomodcache, &gopath)?;
            // Proven: now the store keeps it.
            carried.store_in(&store)?;
            (Some(carried), prepared)
        }
        None => (None, Vec::new()),
    };
    let verify_seconds = started.elapsed().as_secs_f64();
    // Record the bundle in the store so `store list` shows it and prune keeps it.
    outline.store_top(&store, Some(&src_ref.to_string()))?;

    // The bundle is verified: staging directories of killed pulls are
    // removed now (never by a pull that is refused), best effort.
    for warning in install::remove_dead_stages(&gomodcache) {
        eprintln!("warning: {}", crate::text::field(&warning));
    }

    // 2. Install, a batch of parts at a time, read back from the store
    // (digest-checked again); zips checked in step 1 are not checked twice.
    let mut report = InstallReport::default();
    progress.start("installing", modules as u64);
    let mut batch: Vec<artifact::BundlePart> = Vec::new();
    let mut batch_len = 0;
    for i in 0..outline.parts.len() {
        let part = artifact::load_part(&store, &outline, i)?;
        batch_len += part.modules.len();
        batch.push(part);
        if batch_len < INSTALL_BATCH && i + 1 < outline.parts.len() {
            continue;
        }
        let entries: Vec<&ModuleEntry> = batch.iter().flat_map(|p| p.modules.iter()).collect();
        let items = install_items(
            &store,
            entries.iter().copied(),
            &zips_checked,
            !args.no_extract,
        );
        let r = install::install(&gomodcache, &items, args.jobs, &quiet, staging)?;
        report.installed += r.installed;
        report.already_present += r.already_present;
        report.conflicts.extend(r.conflicts);
        progress.inc(items.len() as u64);
        drop(items);
        batch.clear();
        batch_len = 0;
    }
    progress.finish();
    let mut sumdb = Vec::new();
    for p in sumdb_prepared {
        let carried = carried.as_ref().expect("prepared from it");
        let p = crate::sumdata::install(p, carried, &sum_inputs)?;
        sumdb.push(SumdbInstalled {
            database: p.database().to_string(),
            records_written: p.records,
            tiles_written: p.tiles,
            tree_size: p.tree,
            skipped: p.skipped.clone(),
            hint: p.hint.clone(),
            verify_seconds,
        });
    }

    let mut env = BTreeMap::from([
        ("GOMODCACHE".to_string(), gomodcache.display().to_string()),
        ("GOPROXY".to_string(), "off".to_string()),
    ]);
    if sumdb.iter().any(|s| s.skipped.is_none()) {
        env.insert("GOPATH".to_string(), gopath.display().to_string());
    }
    let mut human = format!(
        "pulled {} ({}): {} module versions, {} installed, {} already present, {} fetched\n",
        src_ref,
        top.digest,
        modules,
        report.installed,
        report.already_present,
        human_bytes(bytes_fetched),
    );
    for s in &sumdb {
        match &s.skipped {
            None => {
                let _ = writeln!(
                    human,
                    "checksum database {}: {} records and {} tiles written, trusted tree of {} records",
                    crate::text::field(&s.database),
                    s.records_written,
                    s.tiles_written,
                    s.tree_size
                );
            }
            Some(why) if s.hint.is_some() => {
                let _ = writeln!(
                    human,
                    "warning: checksum database {}: not installed: {}",
                    crate::text::field(&s.database),
                    crate::text::field(why)
                );
            }
            Some(why) => {
                let _ = writeln!(
                    human,
                    "checksum database {}: not installed ({})",
                    crate::text::field(&s.database),
                    crate::text::field(why)
                );
            }
        }
    }
    let conflicts = report.conflicts.clone();
    if conflicts.is_empty() {
        human.push_str("Use these modules with:\n");
        for (k, v) in &env {
            let _ = writeln!(human, "  export {k}={}", shell_quote(v));
        }
        let _ = writeln!(
            human,
            "(or GOPROXY=file://{}/cache/download to serve them as a module proxy)",
            gomodcache.display()
        );
        if sumdb.iter().any(|s| s.skipped.is_none()) {
            let _ = writeln!(
                human,
                "GOSUMDB stays at its default: go get, go mod tidy and toolchain switches verify offline"
            );
        }
    }
    let report = PullReport {
        source: src_ref.to_string(),
        digest: top.digest.to_string(),
        gomodcache: gomodcache.display().to_string(),
        modules,
        blobs_fetched,
        bytes_fetched,
        install: report,
        env,
        sumdb,
    };
    let mut outcome = Outcome::ok(human, &report);
    outcome
        .hints
        .extend(report.sumdb.iter().filter_map(|s| s.hint.clone()));
    if !conflicts.is_empty() {
        let _ = writeln!(
            outcome.human,
            "{} module versions in {} differ from the bundle and were left alone:",
            conflicts.len(),
            gomodcache.display()
        );
        for c in &conflicts {
            let _ = writeln!(outcome.human, "  {}", crate::text::field(c));
        }
        outcome.hints.push(
            "check where those versions came from; `go clean -modcache` (or removing just those versions) \
             lets ocigo install the bundle's"
                .to_string(),
        );
        outcome.exit_code = Kind::Conflict.exit_code();
    }
    Ok(outcome)
}

/// pull with signature verification first: the tag is resolved once, the
/// signature checked over that digest, and only then is anything fetched,
/// by digest. Verification is required when the host says so or when the
/// environment sets OCIGO_REQUIRE_SIGNATURE=1.
///
/// When the host configuration names keys, only those are trusted: a key on
/// the command line must be one of them (otherwise anyone could satisfy the
/// host's rule with a key of their own), and the host's threshold is a floor.
pub fn pull_verified(g: &Global, args: &PullArgs, with: VerifyWith) -> Result<Outcome> {
    let (policy, sources) = pull_policy()?;
    let sources = sources
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let mut with = with;
    if policy.is_set() && with.identity.is_some() {
        return Err(fail(
            Kind::Usage,
            format!("this host's pull policy ({sources}) does not allow --expect-identity"),
        ));
    }
    if !policy.verify_keys.is_empty() {
        let trusted = sign::read_public_key_files(&policy.verify_keys)?;
        for (label, key) in sign::read_public_key_files(&with.keys)? {
            if !trusted.iter().any(|(_, t)| *t == key) {
                return Err(fail(
                    Kind::Usage,
                    format!(
                        "this host trusts only the keys its pull policy ({sources}) names; \
                         {label} ({}) is not one of them",
                        key.fingerprint()
                    ),
                ));
            }
        }
        with.keys = policy.verify_keys.clone();
    }
    if let Some(t) = policy.threshold {
        with.threshold = Some(with.threshold.unwrap_or(1).max(t));
    }
    if with.keys.is_empty() {
        if policy.require_signature {
            return Err(fail_hint(
                Kind::Integrity,
                format!(
                    "this host only installs signed bundles (required by {}), and no key was given",
                    if sources.is_empty() {
                        "OCIGO_REQUIRE_SIGNATURE"
                    } else {
                        &sources
                    }
                ),
                "pass --verify-key PUB with the public key the bundle was signed with",
            ));
        }
        if with.threshold.is_some() || with.identity.is_some() {
            return Err(fail(
                Kind::Usage,
                "--threshold and --expect-identity need --verify-key: without a key nothing is verified",
            ));
        }
        return pull(g, args);
    }
    let r = Reference::parse(&args.src)?;
    // Keys and threshold are checked before anything is fetched.
    with.read_keys()?;
    let repo = g.open(&r, false)?;
    let target = repo.resolve(r.tag_or_digest())?;
    let report = verify_at(repo.as_ref(), &r, &target, &with)?;
    let mut outcome = pull_from(g, args, &r, repo.as_ref(), &target)?;
    outcome.human = format!(
        "signature verified: {} signed {}\n{}{}",
        report.describe_signers(),
        report.digest,
        if report.transparency_log_not_checked {
            super::sign::UNCHECKED_LOG_NOTE
        } else {
            ""
        },
        outcome.human
    );
    if let serde_json::Value::Object(m) = &mut outcome.json {
        m.insert(
            "signature".into(),
            serde_json::to_value(&report).expect("serialisable"),
        );
    }
    Ok(outcome)
}
