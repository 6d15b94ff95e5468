//! The user-facing operations (pack, push, pull, inspect, store), each
//! composed from the concern modules and returning a report that prints
//! both for people and as `--json`.
//!
//! Owns: opening repositories from references, the order of steps in each
//! command, and report wording. Must not: parse command lines (that is
//! `main.rs`) or reimplement what a concern module owns.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::artifact::{self, Bundle, MainModule, ModuleEntry, ModulesConfig, SplitLimits, ZipRef};
use crate::closure::{self, ModuleSource, ResolveOptions};
use crate::error::{Kind, fail};
use crate::install::{self, InstallItem, InstallReport};
use crate::oci::{Descriptor, Reference, Repository};
use crate::progress::Progress;
use crate::registry::{RegistryOptions, RegistryRepository};
use crate::sign;
use crate::store::{self, Layout};
use crate::transfer::{self, CopyStats};

/// Options every command shares.
#[derive(Debug, Clone, Default)]
pub struct Global {
    pub store: Option<PathBuf>,
    pub plain_http: bool,
    pub json: bool,
    pub quiet: bool,
}

impl Global {
    pub fn progress(&self) -> Progress {
        Progress::for_terminal(self.quiet || self.json)
    }

    pub fn open_store(&self) -> Result<Layout> {
        let dir = match &self.store {
            Some(d) => d.clone(),
            None => store::default_store_dir()?,
        };
        Layout::open_or_create(&dir)
            .with_context(|| format!("opening the content store {}", dir.display()))
    }

    fn registry_options(&self) -> RegistryOptions {
        RegistryOptions {
            plain_http: self.plain_http,
            ..RegistryOptions::default()
        }
    }

    /// Opens where a reference points. A layout destination is created if
    /// absent; a layout source must exist.
    pub fn open(&self, reference: &Reference, for_writing: bool) -> Result<Box<dyn Repository>> {
        Ok(match reference {
            Reference::Layout { dir, .. } => Box::new(if for_writing {
                Layout::open_or_create(dir)?
            } else {
                Layout::open(dir)?
            }),
            Reference::Registry {
                host, repository, ..
            } => Box::new(RegistryRepository::open(
                host,
                repository,
                &self.registry_options(),
            )?),
        })
    }
}

/// A command's result: what to print, and the exit code.
pub struct Outcome {
    pub human: String,
    pub json: serde_json::Value,
    pub exit_code: i32,
}

impl Outcome {
    fn ok<T: Serialize>(human: String, report: &T) -> Outcome {
        Outcome {
            human,
            json: serde_json::to_value(report).expect("reports serialise"),
            exit_code: 0,
        }
    }

    /// Prints to stdout in the chosen form.
    pub fn print(&self, json: bool) {
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&self.json).expect("serialisable")
            );
        } else if !self.human.is_empty() {
            print!("{}", self.human);
        }
    }
}

// ---------------------------------------------------------------- pack

pub struct PackArgs {
    pub project_dir: PathBuf,
    pub dest: String,
    pub platforms: Vec<String>,
    pub from_cache: Option<PathBuf>,
    pub created: Option<String>,
    pub limits: SplitLimits,
    pub sign: Option<SignWith>,
}

#[derive(Serialize)]
pub struct PackReport {
    pub reference: String,
    pub digest: String,
    pub media_type: String,
    pub modules: usize,
    pub zips: usize,
    pub zip_bytes: u64,
    pub manifests: usize,
    pub copy: CopyStats,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignReport>,
}

pub fn pack(g: &Global, args: &PackArgs) -> Result<(Outcome, Descriptor)> {
    let dest = Reference::parse(&args.dest)?;
    if let Some(created) = &args.created
        && !is_rfc3339(created)
    {
        return Err(fail(
            Kind::Usage,
            format!("--created {created:?} is not an RFC 3339 time such as 2026-11-21T06:00:00Z"),
        ));
    }
    let signer = args.sign.as_ref().map(SignWith::load).transpose()?;
    let progress = g.progress();
    let store = g.open_store()?;
    // Held for the whole run: `store prune` waits for no one and deletes
    // only what no running pack or pull may still need.
    let _store_in_use = store.use_lock()?;
    let source = match &args.from_cache {
        Some(dir) => ModuleSource::Cache(dir.clone()),
        None => ModuleSource::Network,
    };
    let closure = closure::resolve(
        &ResolveOptions {
            project_dir: args.project_dir.clone(),
            platforms: args.platforms.clone(),
            source,
            go: std::env::var_os("OCIGO_GO").unwrap_or_else(|| "go".into()),
        },
        &|step| progress.status(step),
    )?;
    progress.finish();

    progress.start("storing", closure.modules.len() as u64);
    let mut entries = Vec::with_capacity(closure.modules.len());
    let mut zip_bytes = 0;
    for m in &closure.modules {
        let zip = match &m.zip {
            Some((path, hash)) => {
                let desc = store.ingest_file(path, artifact::MEDIA_TYPE_MODULE_ZIP)?;
                zip_bytes += desc.size;
                Some(ZipRef {
                    hash: hash.clone(),
                    layer: desc.digest,
                    size: desc.size,
                })
            }
            None => None,
        };
        entries.push(ModuleEntry {
            path: m.module.path.clone(),
            version: m.module.version.clone(),
            info: m.info.clone(),
            go_mod: m.go_mod.clone(),
            mod_hash: m.mod_hash.clone(),
            zip,
        });
        progress.inc(1);
    }
    progress.finish();

    let zips = entries.iter().filter(|e| e.zip.is_some()).count();
    let header = ModulesConfig {
        format_version: artifact::FORMAT_VERSION,
        main_modules: closure
            .main_modules
            .iter()
            .map(|(path, go)| MainModule {
                path: path.clone(),
                go_version: go.clone(),
            })
            .collect(),
        platforms: closure.platforms.clone(),
        created: args.created.clone(),
        modules: entries,
    };
    let modules = header.modules.len();
    let built = artifact::build(header, args.limits)?;
    let store_tag = dest.to_string();
    let top = artifact::push_built(&store, &built, Some(&store_tag))?;

    let target = g.open(&dest, true)?;
    let copy = transfer::copy(&store, &top, target.as_ref(), dest.tag(), &progress)?;
    let signature = match &signer {
        Some(signer) => Some(sign_at(target.as_ref(), &dest, &top, signer)?),
        None => None,
    };
    let report = PackReport {
        reference: dest.to_string(),
        digest: top.digest.to_string(),
        media_type: top.media_type.clone(),
        modules,
        zips,
        zip_bytes,
        manifests: built.parts.len().max(1),
        copy,
        signature,
    };
    let mut human = format!(
        "packed {} module versions ({} zips, {}) into {}\ndigest: {}\n",
        report.modules,
        report.zips,
        human_bytes(report.zip_bytes),
        report.reference,
        report.digest
    );
    if let Some(s) = &report.signature {
        human.push_str(&describe_signature(s));
    }
    Ok((Outcome::ok(human, &report), top))
}

// ---------------------------------------------------------------- push

#[derive(Serialize)]
pub struct PushReport {
    pub source: String,
    pub destination: String,
    pub digest: String,
    pub copy: CopyStats,
    /// Signatures copied along (merged with any the destination has).
    pub signatures_copied: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignReport>,
}

/// Copies an artifact and, as `cosign copy` does, its signatures.
pub fn push(
    g: &Global,
    src: &str,
    dest: &str,
    sign_with: Option<&SignWith>,
) -> Result<(Outcome, Descriptor)> {
    let src_ref = Reference::parse(src)?;
    let dest_ref = Reference::parse(dest)?;
    let signer = sign_with.map(SignWith::load).transpose()?;
    let from = g.open(&src_ref, false)?;
    let to = g.open(&dest_ref, true)?;
    let top = from.resolve(src_ref.tag_or_digest())?;
    let progress = g.progress();
    let copy = transfer::copy(from.as_ref(), &top, to.as_ref(), dest_ref.tag(), &progress)?;
    let signatures_copied = sign::storage::copy_signatures(from.as_ref(), to.as_ref(), &top)?;
    let signature = match &signer {
        Some(signer) => Some(sign_at(to.as_ref(), &dest_ref, &top, signer)?),
        None => None,
    };
    let report = PushReport {
        source: src_ref.to_string(),
        destination: dest_ref.to_string(),
        digest: top.digest.to_string(),
        copy,
        signatures_copied,
        signature,
    };
    let mut human = format!(
        "copied {} to {}: {} of {} blobs sent ({} of {})\ndigest: {}\n",
        report.source,
        report.destination,
        report.copy.blobs_sent,
        report.copy.blobs,
        human_bytes(report.copy.bytes_sent),
        human_bytes(report.copy.bytes_total),
        report.digest
    );
    if report.signatures_copied > 0 {
        let _ = writeln!(human, "{} signature(s) copied", report.signatures_copied);
    }
    if let Some(s) = &report.signature {
        human.push_str(&describe_signature(s));
    }
    Ok((Outcome::ok(human, &report), top))
}

// ---------------------------------------------------------------- pull

pub struct PullArgs {
    pub src: String,
    pub gomodcache: Option<PathBuf>,
    /// Modules verified and installed at once.
    pub jobs: usize,
}

#[derive(Serialize)]
pub struct PullReport {
    pub source: String,
    pub digest: String,
    pub gomodcache: String,
    pub modules: usize,
    pub blobs_fetched: usize,
    pub bytes_fetched: u64,
    #[serde(flatten)]
    pub install: InstallReport,
    pub env: Vec<(String, String)>,
}

/// Pulls a module bundle into GOMODCACHE.
pub fn pull(g: &Global, args: &PullArgs) -> Result<Outcome> {
    let src_ref = Reference::parse(&args.src)?;
    let src = g.open(&src_ref, false)?;
    let top = src.resolve(src_ref.tag_or_digest())?;
    pull_from(g, args, &src_ref, src.as_ref(), &top)
}

/// Pulls the bundle `top` from `src`. The caller resolved the reference
/// once (and, when verifying, checked the signature over this digest):
/// everything is fetched by digest from here on.
fn pull_from(
    g: &Global,
    args: &PullArgs,
    src_ref: &Reference,
    src: &dyn Repository,
    top: &Descriptor,
) -> Result<Outcome> {
    let gomodcache = match &args.gomodcache {
        Some(d) => d.clone(),
        None => install::default_gomodcache()?,
    };
    // The go command refuses a relative GOMODCACHE; print and use an absolute one.
    let gomodcache = std::path::absolute(&gomodcache)
        .with_context(|| format!("resolving GOMODCACHE {}", gomodcache.display()))?;
    let progress = g.progress();
    let store = g.open_store()?;
    // Held for the whole run: `store prune` waits for no one and deletes
    // only what no running pack or pull may still need.
    let _store_in_use = store.use_lock()?;
    let bundle = artifact::load(src, top)?;

    // Fetch what the store lacks; the store checks each digest as it writes.
    // Every layer is fetched and digest-checked, even for modules the cache
    // already holds, so a corrupt bundle is never accepted.
    let mut missing = Vec::new();
    let mut seen = HashSet::new();
    for part in &bundle.parts {
        for layer in &part.manifest.manifest()?.layers {
            if seen.insert(layer.digest.clone()) && !store.blob_exists(&layer.digest)? {
                missing.push(layer.clone());
            }
        }
    }
    let bytes_fetched: u64 = missing.iter().map(|l| l.size).sum();
    progress.start_bytes("fetching", bytes_fetched);
    for layer in &missing {
        let mut reader = src.fetch_blob(layer)?;
        store
            .push_blob(layer, &mut progress.reader(&mut reader))
            .with_context(|| format!("fetching layer {} from {}", layer.digest, src.location()))?;
    }
    progress.finish();
    // Record the bundle in the store so `store list` shows it and prune keeps it.
    bundle.store_in(&store, Some(&src_ref.to_string()))?;

    let items: Vec<InstallItem> = bundle
        .modules()
        .map(|entry| InstallItem {
            entry,
            zip_blob: entry.zip.as_ref().map(|z| store.blob_path(&z.layer)),
        })
        .collect();
    // install creates GOMODCACHE only once everything is verified.
    let report = install::install(&gomodcache, &items, args.jobs, &progress)?;

    let env = vec![
        ("GOMODCACHE".to_string(), gomodcache.display().to_string()),
        ("GOPROXY".to_string(), "off".to_string()),
    ];
    let mut human = format!(
        "pulled {} ({}): {} module versions, {} installed, {} already present, {} fetched\n",
        src_ref,
        top.digest,
        items.len(),
        report.installed,
        report.already_present,
        human_bytes(bytes_fetched),
    );
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
    }
    let report = PullReport {
        source: src_ref.to_string(),
        digest: top.digest.to_string(),
        gomodcache: gomodcache.display().to_string(),
        modules: items.len(),
        blobs_fetched: missing.len(),
        bytes_fetched,
        install: report,
        env,
    };
    let mut outcome = Outcome::ok(human, &report);
    if !conflicts.is_empty() {
        let _ = writeln!(
            outcome.human,
            "{} module versions in {} differ from the bundle and were left alone:",
            conflicts.len(),
            gomodcache.display()
        );
        for c in &conflicts {
            let _ = writeln!(outcome.human, "  {c}");
        }
        outcome.human.push_str(
            "Check where they came from; `go clean -modcache` (or removing those versions) lets ocigo install the bundle's.\n",
        );
        outcome.exit_code = Kind::Conflict.exit_code();
    }
    Ok(outcome)
}

// ---------------------------------------------------------------- inspect

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

// ---------------------------------------------------------------- store

#[derive(Serialize)]
pub struct StoreEntry {
    pub reference: String,
    pub digest: String,
    pub media_type: String,
    pub artifact_type: Option<String>,
}

#[derive(Serialize)]
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
        let _ = writeln!(human, "  {}  {}", e.digest, e.reference);
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
        .context("a name given is not in the content store, so nothing was forgotten; see `ocigo store list`")?;
    let (removed, freed) = exclusive.prune()?;
    let report = PruneReport {
        forgotten,
        blobs_removed: removed,
        bytes_freed: freed,
    };
    let human = format!("removed {removed} blobs, freed {}\n", human_bytes(freed));
    Ok(Outcome::ok(human, &report))
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, as the OCI annotation
/// `org.opencontainers.image.created` and the config's `created` use.
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(digits(0..4) && at(4, b'-') && digits(5..7) && at(7, b'-') && digits(8..10))
        || !(at(10, b'T') || at(10, b't'))
        || !(digits(11..13) && at(13, b':') && digits(14..16) && at(16, b':') && digits(17..19))
    {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    match rest.as_bytes() {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()),
        _ => false,
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn shell_quote(s: &str) -> String {
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-:=,".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

// ---------------------------------------------------------------- signing

/// How a command signs, when asked to.
pub struct SignWith {
    pub key: PathBuf,
    pub annotations: BTreeMap<String, String>,
    /// Overrides the `docker-reference` the payload names.
    pub identity: Option<String>,
}

/// The identity a signature names by default: `host/repository` for a
/// registry; none (an unbound signature) for a layout, which has no name.
fn default_identity(r: &Reference) -> String {
    match r {
        Reference::Registry {
            host, repository, ..
        } => format!("{host}/{repository}"),
        Reference::Layout { .. } => String::new(),
    }
}

impl SignWith {
    /// Reads and decrypts the key first, so a wrong password fails before
    /// any work is done or anything is pushed.
    fn load(&self) -> Result<Signer<'_>> {
        let password = sign::password_from_env_or_prompt(false, true)?;
        Ok(Signer {
            key: sign::read_private_key_file(&self.key, &password)?,
            with: self,
        })
    }
}

struct Signer<'a> {
    key: sign::SigningKey,
    with: &'a SignWith,
}

#[derive(Serialize)]
pub struct SignReport {
    pub reference: String,
    pub digest: String,
    pub identity: String,
    pub signature_tag: String,
    pub signature_manifest: String,
}

fn sign_at(
    repo: &dyn Repository,
    reference: &Reference,
    target: &Descriptor,
    signer: &Signer,
) -> Result<SignReport> {
    let identity = signer
        .with
        .identity
        .clone()
        .unwrap_or_else(|| default_identity(reference));
    let sig = sign::storage::sign(
        repo,
        &identity,
        target,
        &signer.key,
        &signer.with.annotations,
    )?;
    Ok(SignReport {
        reference: reference.to_string(),
        digest: target.digest.to_string(),
        identity,
        signature_tag: sign::signature_tag(&target.digest),
        signature_manifest: sig.digest.to_string(),
    })
}

fn describe_signature(r: &SignReport) -> String {
    format!(
        "signed {} ({}) as {:?}: tag {}\n",
        r.reference,
        r.digest,
        if r.identity.is_empty() {
            "any repository"
        } else {
            &r.identity
        },
        r.signature_tag
    )
}

pub fn sign_command(g: &Global, reference: &str, with: &SignWith) -> Result<Outcome> {
    let r = Reference::parse(reference)?;
    let repo = g.open(&r, false)?;
    let signer = with.load()?;
    let target = repo.resolve(r.tag_or_digest())?;
    let report = sign_at(repo.as_ref(), &r, &target, &signer)?;
    Ok(Outcome::ok(describe_signature(&report), &report))
}

/// Keys and rules for verification, from flags and the host's configuration.
pub struct VerifyWith {
    pub keys: Vec<PathBuf>,
    /// How many distinct keys must have signed (default 1).
    pub threshold: Option<usize>,
    /// Repository path the signatures must name; default: the one verified.
    pub identity: Option<String>,
}

fn load_keys(paths: &[PathBuf]) -> Result<Vec<(String, sign::VerifyingKey)>> {
    paths
        .iter()
        .map(|p| Ok((p.display().to_string(), sign::read_public_key_file(p)?)))
        .collect()
}

fn verify_at(
    repo: &dyn Repository,
    reference: &Reference,
    target: &Descriptor,
    with: &VerifyWith,
) -> Result<sign::storage::VerifyReport> {
    if with.keys.is_empty() {
        return Err(fail(
            Kind::Usage,
            "no public key given: pass --key PUB (or --verify-key PUB)",
        ));
    }
    let keys = load_keys(&with.keys)?;
    let repository = match (&with.identity, reference) {
        (Some(id), _) => Some(sign::storage::repository_path(id).to_string()),
        (None, Reference::Registry { repository, .. }) => Some(repository.clone()),
        (None, Reference::Layout { .. }) => None,
    };
    sign::storage::verify(
        repo,
        target,
        &sign::storage::VerifyPolicy {
            keys: &keys,
            threshold: with.threshold.unwrap_or(1),
            repository: repository.as_deref(),
        },
    )
}

pub fn verify_command(g: &Global, reference: &str, with: &VerifyWith) -> Result<Outcome> {
    let r = Reference::parse(reference)?;
    let repo = g.open(&r, false)?;
    let target = repo.resolve(r.tag_or_digest())?;
    let report = verify_at(repo.as_ref(), &r, &target, with)?;
    let human = format!(
        "verified {r} ({}): signed by {}\n",
        report.digest,
        report.signed_by.join(", ")
    );
    Ok(Outcome::ok(human, &report))
}

#[derive(Serialize)]
pub struct KeyReport {
    pub private_key: String,
    pub public_key: String,
    pub fingerprint: String,
}

/// Writes `<prefix>.key` (encrypted, cosign's format) and `<prefix>.pub`.
/// Existing files are refused unless `force`; if the public key cannot be
/// written, the private key just written is removed again.
pub fn key_generate(prefix: &str, allow_empty_password: bool, force: bool) -> Result<Outcome> {
    let private_path = PathBuf::from(format!("{prefix}.key"));
    let public_path = PathBuf::from(format!("{prefix}.pub"));
    let password = sign::password_from_env_or_prompt(true, allow_empty_password)?;
    let key = sign::generate();
    let pem = sign::encrypt_private_key(&key, &password)?;
    let public = key.verifying_key();
    if force {
        for p in [&private_path, &public_path] {
            match std::fs::remove_file(p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("replacing {}", p.display()));
                }
                _ => {}
            }
        }
    } else if let Some(p) = [&private_path, &public_path]
        .into_iter()
        .find(|p| p.exists())
    {
        return Err(fail(
            Kind::Conflict,
            format!("{} already exists: pass --force to replace it", p.display()),
        ));
    }
    sign::write_private_key_file(&private_path, &pem)?;
    if let Err(e) = sign::write_public_key_file(&public_path, &sign::public_key_pem(&public)) {
        let _ = std::fs::remove_file(&private_path);
        return Err(e);
    }
    let report = KeyReport {
        private_key: private_path.display().to_string(),
        public_key: public_path.display().to_string(),
        fingerprint: public.fingerprint(),
    };
    let human = format!(
        "wrote {} and {} ({})\n",
        report.private_key, report.public_key, report.fingerprint
    );
    Ok(Outcome::ok(human, &report))
}

/// The system's rules for pulls, set by an operator to make verification
/// mandatory on a host.
pub const SYSTEM_CONFIG: &str = "/etc/ocigo/config.json";

/// A host configuration file (JSON, `schemas/host-config.v1.schema.json`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostConfig {
    #[serde(default)]
    pub pull: PullPolicy,
}

#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PullPolicy {
    #[serde(default)]
    pub require_signature: bool,
    /// Absolute paths of the only public keys trusted for pulls.
    #[serde(default)]
    pub verify_keys: Vec<PathBuf>,
    #[serde(default)]
    pub threshold: Option<usize>,
}

impl PullPolicy {
    /// Whether the host restricts pulls at all.
    fn is_set(&self) -> bool {
        self.require_signature || !self.verify_keys.is_empty() || self.threshold.is_some()
    }
}

/// The pull policy in force: [`SYSTEM_CONFIG`], made stricter (never looser)
/// by the file `$OCIGO_CONFIG` names and by `OCIGO_REQUIRE_SIGNATURE`.
/// Returns the policy and the files it came from, for messages. A file that
/// cannot be read or parsed is an error, never an empty policy.
pub fn pull_policy() -> Result<(PullPolicy, Vec<PathBuf>)> {
    let mut files = vec![PathBuf::from(SYSTEM_CONFIG)];
    if let Some(extra) = std::env::var_os("OCIGO_CONFIG").filter(|v| !v.is_empty()) {
        files.push(PathBuf::from(extra));
    }
    let mut policy = PullPolicy::default();
    let mut sources = Vec::new();
    for (i, path) in files.into_iter().enumerate() {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            // No system file: no system policy. A named file must exist.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && i == 0 => continue,
            Err(e) => {
                return Err(fail(
                    Kind::Usage,
                    format!(
                        "cannot read the ocigo host configuration {}: {e}",
                        path.display()
                    ),
                ));
            }
        };
        let config: HostConfig = serde_json::from_str(&text).map_err(|e| {
            fail(
                Kind::Usage,
                format!(
                    "the ocigo host configuration {} is not valid: {e}",
                    path.display()
                ),
            )
        })?;
        let more = config.pull;
        if let Some(relative) = more.verify_keys.iter().find(|k| !k.is_absolute()) {
            return Err(fail(
                Kind::Usage,
                format!(
                    "{}: verifyKeys entry {} must be an absolute path",
                    path.display(),
                    relative.display()
                ),
            ));
        }
        if !policy.verify_keys.is_empty() && !more.verify_keys.is_empty() {
            // A second file may narrow the trusted keys, never add to them.
            let trusted = load_keys(&policy.verify_keys)?;
            for (label, key) in load_keys(&more.verify_keys)? {
                if !trusted.iter().any(|(_, t)| *t == key) {
                    return Err(fail(
                        Kind::Usage,
                        format!(
                            "{} names key {label}, which {} does not trust",
                            path.display(),
                            sources
                                .iter()
                                .map(|p: &PathBuf| p.display().to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
        }
        policy.require_signature |= more.require_signature;
        if !more.verify_keys.is_empty() {
            policy.verify_keys = more.verify_keys;
        }
        policy.threshold = policy.threshold.max(more.threshold);
        sources.push(path);
    }
    match std::env::var("OCIGO_REQUIRE_SIGNATURE")
        .unwrap_or_default()
        .to_ascii_lowercase()
        .as_str()
    {
        "" | "0" | "false" | "no" | "off" => {}
        "1" | "true" | "yes" | "on" => policy.require_signature = true,
        other => {
            return Err(fail(
                Kind::Usage,
                format!("OCIGO_REQUIRE_SIGNATURE={other:?}: use 1 or 0"),
            ));
        }
    }
    Ok((policy, sources))
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
        let trusted = load_keys(&policy.verify_keys)?;
        for (label, key) in load_keys(&with.keys)? {
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
            return Err(fail(
                Kind::Integrity,
                format!(
                    "this host only installs signed bundles (required by {}), and no key was given: \
                     pass --verify-key PUB",
                    if sources.is_empty() {
                        "OCIGO_REQUIRE_SIGNATURE"
                    } else {
                        &sources
                    }
                ),
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
    let repo = g.open(&r, false)?;
    let target = repo.resolve(r.tag_or_digest())?;
    let report = verify_at(repo.as_ref(), &r, &target, &with)?;
    let mut outcome = pull_from(g, args, &r, repo.as_ref(), &target)?;
    outcome.human = format!(
        "signature verified: {} signed {}\n{}",
        report.signed_by.join(", "),
        report.digest,
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

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_times() {
        for ok in [
            "2026-11-21T06:00:00Z",
            "2026-11-21T06:00:00.123+01:00",
            "2026-11-21t06:00:00z",
        ] {
            assert!(super::is_rfc3339(ok), "{ok}");
        }
        for bad in [
            "2026-11-21",
            "2026-11-21 06:00:00Z",
            "2026-11-21T06:00:00",
            "yesterday",
            "2026-11-21T06:00:00.Z",
        ] {
            assert!(!super::is_rfc3339(bad), "{bad}");
        }
    }
}
