//! `ocigo pack toolchain` and the toolchain half of `ocigo pull`: pack a Go
//! toolchain (from the module proxy, an official archive or a local
//! GOROOT) for one or more platforms under one index; install one as a
//! GOROOT or as the module the go command switches to.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use super::sign::{SignReport, SignWith, describe_signature};
use super::{Global, Outcome, human_bytes, shell_quote};
use crate::artifact::{ModuleEntry, ZipRef};
use crate::error::{Kind, fail};
use crate::install::{self, InstallItem};
use crate::oci::{self, Descriptor, Digest, Reference, Repository};
use crate::store::Layout;
use crate::toolchain::extract::{self, LayerFile};
use crate::toolchain::format::{self, ToolchainConfig, ToolchainPart};
use crate::toolchain::{self, fetch, tree};
use crate::transfer::CopyStats;

/// Where `pack toolchain` takes the toolchain from.
pub enum ToolchainSource {
    /// `golang.org/toolchain` through GOPROXY, checked against GOSUMDB.
    Proxy { version: String },
    /// An official release archive and its expected SHA-256.
    Archive { path: PathBuf, sha256: String },
    /// A local GOROOT.
    Goroot { dir: PathBuf },
}

pub struct PackToolchainArgs {
    pub source: ToolchainSource,
    pub platforms: Vec<String>,
    pub dest: String,
    pub sign: Option<SignWith>,
    /// `--delta-from REF`: an earlier release's toolchain artifact.
    pub delta_from: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub struct PackedToolchain {
    pub version: String,
    pub platform: String,
    pub digest: String,
    pub source: String,
    pub module_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_with: Option<String>,
    pub files: u64,
    pub bytes: u64,
    pub layers: usize,
    pub stored_bytes: u64,
    /// With `--delta-from`: the release its platform layers are deltas
    /// against (whose layers the manifest lists too; `stored_bytes` counts
    /// the platform's own layers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta_from: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub struct PackToolchainReport {
    pub reference: String,
    pub digest: String,
    pub toolchains: Vec<PackedToolchain>,
    pub copy: CopyStats,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignReport>,
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Packs toolchains into the store; returns their index entries and reports.
pub(super) fn pack_into_store(
    g: &Global,
    store: &Layout,
    source: &ToolchainSource,
    platforms: &[String],
    delta_from: Option<&str>,
) -> Result<(
    Vec<Descriptor>,
    Vec<PackedToolchain>,
    Vec<crate::sumdata::SumInput>,
)> {
    let progress = g.progress();
    let mut sum_inputs = Vec::new();
    let tmp_dir = store.scratch_dir()?;
    let mut platforms: Vec<(String, String)> = platforms
        .iter()
        .map(|p| toolchain::parse_platform(p))
        .collect::<Result<_>>()?;
    platforms.sort();
    platforms.dedup();
    let base = match delta_from {
        Some(r) => {
            let r = Reference::parse(r)?;
            let repo = g.open(&r, false)?;
            let top = repo.resolve(r.tag_or_digest())?;
            Some((r, repo, top))
        }
        None => None,
    };
    let mut entries = Vec::new();
    let mut reports = Vec::new();
    let mut pack_tree = |t: &tree::Tree, checked: Option<(String, String)>| -> Result<()> {
        let delta = match &base {
            Some((r, repo, top)) => {
                delta_base(store, r, repo.as_ref(), top, t, &tmp_dir, default_jobs())?
            }
            None => None,
        };
        progress.status(&format!("packing {} {}/{}", t.version, t.os, t.arch));
        let built = toolchain::build(t, store, &tmp_dir, checked, default_jobs(), delta.as_ref());
        if let Some(d) = &delta {
            crate::fs::remove_tree(&d.dir)?;
        }
        let (built, config) = built?;
        let layer_sizes: u64 = oci::Manifest::clone(&serde_json::from_slice(&built.manifest)?)
            .layers
            .iter()
            .filter(|l| !config.bases.iter().any(|b| b.digest == l.digest))
            .map(|l| l.size)
            .sum();
        reports.push(PackedToolchain {
            version: config.version.clone(),
            platform: config.platform(),
            digest: built.entry.digest.to_string(),
            source: format!("{} {}", config.source.kind, config.source.name),
            module_hash: config.module.hash.clone(),
            checked_with: config.module.checked_with.clone(),
            files: config.files,
            bytes: config.bytes,
            layers: config.layers.len(),
            stored_bytes: layer_sizes,
            delta_from: config.base_version.clone(),
        });
        entries.push(built.entry);
        Ok(())
    };
    match source {
        ToolchainSource::Proxy { version } => {
            if !tree::is_go_version(version) {
                return Err(fail(
                    Kind::Usage,
                    format!("{version:?} is not a Go release version such as go1.26.8"),
                ));
            }
            if platforms.is_empty() {
                platforms.push(toolchain::host_platform());
            }
            for (os, arch) in &platforms {
                progress.status(&format!("fetching {version} {os}/{arch}"));
                let m = fetch::fetch_module(version, os, arch, &tmp_dir)?;
                // Its checksum-database record travels with it, so the
                // go command can switch to it offline with GOSUMDB on.
                sum_inputs.push(crate::sumdata::toolchain_input(version, os, arch, &m.h1));
                let t = tree::from_module_zip(m.file.path(), version, os, arch, m.sha256.clone())?;
                pack_tree(&t, Some((m.checked_with.clone(), m.h1.clone())))?;
            }
        }
        ToolchainSource::Archive { path, sha256 } => {
            if !platforms.is_empty() {
                return Err(fail(
                    Kind::Usage,
                    "--platform does not apply to --from-archive: the archive's name says its platform",
                ));
            }
            // Checked before a byte of it is interpreted.
            let sum = tree::check_sha256(path, sha256)?;
            let t = tree::from_archive(path, sum, &tmp_dir)?;
            pack_tree(&t, None)?;
        }
        ToolchainSource::Goroot { dir } => {
            let platform = match platforms.as_slice() {
                [] => None,
                [one] => Some((one.0.as_str(), one.1.as_str())),
                _ => {
                    return Err(fail(
                        Kind::Usage,
                        "--from-goroot packs the one platform the GOROOT was built for",
                    ));
                }
            };
            let t = tree::from_goroot(dir, platform)?;
            pack_tree(&t, None)?;
        }
    }
    progress.finish();
    Ok((entries, reports, sum_inputs))
}

/// The delta base for `t` from the artifact `top` in `repo`: the same
/// platform's full `bin` and `pkg/tool` layers, copied into the store and
/// extracted into a new scratch directory in `tmp_dir` (the caller removes
/// it). `None` when the artifact has no toolchain for that platform.
fn delta_base(
    store: &Layout,
    r: &Reference,
    repo: &dyn Repository,
    top: &Descriptor,
    t: &tree::Tree,
    tmp_dir: &Path,
    jobs: usize,
) -> Result<Option<toolchain::DeltaBase>> {
    let entries = format::toolchain_entries(repo, top)?;
    if entries.is_empty() {
        return Err(fail(
            Kind::Usage,
            format!("--delta-from {r}: it holds no Go toolchain"),
        ));
    }
    let desc = match format::select(&entries, &t.os, &t.arch, &repo.location()) {
        Ok(d) => d,
        // A platform the base lacks gets full layers.
        Err(e) if crate::error::kind_of(&e) == Some(Kind::NotFound) => return Ok(None),
        Err(e) => return Err(e),
    };
    let part = format::load_part(repo, desc)?;
    let c = &part.config;
    if c.format_version != format::FORMAT_VERSION {
        return Err(fail(
            Kind::Usage,
            format!(
                "--delta-from {r}: its {} {} is itself a delta (of {}); name a toolchain packed without --delta-from",
                c.version,
                c.platform(),
                c.base_version.as_deref().unwrap_or("?")
            ),
        ));
    }
    if c.version == t.version {
        return Err(fail(
            Kind::Usage,
            format!(
                "--delta-from {r} holds {} itself: name an earlier release",
                t.version
            ),
        ));
    }
    let wanted: Vec<(&Descriptor, &format::LayerInfo)> = part
        .own_layers()
        .filter(|(_, l)| l.name == "bin" || l.name == "pkg/tool")
        .collect();
    if wanted.is_empty() {
        return Ok(None);
    }
    for (d, _) in &wanted {
        if !store.blob_exists(&d.digest)? {
            let mut rd = repo.fetch_blob(d)?;
            store
                .push_blob(d, &mut rd)
                .with_context(|| format!("fetching base layer {} from {r}", d.digest))?;
        }
    }
    let files: Vec<LayerFile> = wanted
        .iter()
        .map(|(d, info)| LayerFile {
            descriptor: d,
            info,
            path: store.blob_path(&d.digest),
            just_verified: false,
        })
        .collect();
    let dir = crate::fs::create_temp_dir(tmp_dir, ".ocigo-delta-base-")?;
    if let Err(e) = extract::extract_layers(&dir, &files, None, jobs) {
        let _ = crate::fs::remove_tree(&dir);
        return Err(e);
    }
    Ok(Some(toolchain::DeltaBase {
        version: c.version.clone(),
        dir,
        layers: wanted.iter().map(|(d, l)| ((*l).clone(), d.size)).collect(),
    }))
}

/// `ocigo pack toolchain`.
pub fn pack_toolchain(g: &Global, args: &PackToolchainArgs) -> Result<Outcome> {
    let dest = Reference::parse(&args.dest)?;
    let signer = args.sign.as_ref().map(SignWith::load).transpose()?;
    let store = g.open_store()?;
    let _store_in_use = store.use_lock()?;
    let (mut entries, toolchains, sum_inputs) = pack_into_store(
        g,
        &store,
        &args.source,
        &args.platforms,
        args.delta_from.as_deref(),
    )?;
    if !sum_inputs.is_empty()
        && let Some(gathered) = crate::sumdata::gather(&sum_inputs, g.concurrency().max(8), &[])?
        && !gathered.config.databases.is_empty()
    {
        entries.push(crate::sumdata::store_gathered(&store, &gathered)?.0);
    }
    let index = format::build_index(entries, format::ARTIFACT_TYPE_TOOLCHAIN);
    let top = store.push_manifest(oci::MEDIA_TYPE_INDEX, &index, Some(&dest.to_string()))?;
    let super::Published {
        copy, signature, ..
    } = super::publish(g, &store, &top, &dest, signer.as_ref(), &g.progress())?;
    let mut human = String::new();
    for t in &toolchains {
        let _ = writeln!(
            human,
            "packed {} {} from {}: {} files, {} in {} layers{} ({})",
            t.version,
            t.platform,
            t.source,
            t.files,
            human_bytes(t.stored_bytes),
            t.layers,
            match &t.delta_from {
                Some(v) => format!(", platform files as deltas against {v}"),
                None => String::new(),
            },
            match &t.checked_with {
                Some(db) => format!("{} checked against {db}", t.module_hash),
                None => format!("module form {}", t.module_hash),
            }
        );
    }
    let _ = writeln!(human, "into {dest}\ndigest: {}", top.digest);
    let report = PackToolchainReport {
        reference: dest.to_string(),
        digest: top.digest.to_string(),
        toolchains,
        copy,
        signature,
    };
    if let Some(s) = &report.signature {
        human.push_str(&describe_signature(s));
    }
    Ok(Outcome::ok(human, &report))
}

/// The Go version a project asks for: go.work's or go.mod's `toolchain`
/// line, else its `go` line (`go 1.27.4` -> `go1.27.4`, `go 1.27` ->
/// `go1.27.0`).
pub fn project_toolchain(project_dir: &Path) -> Result<String> {
    for name in ["go.work", "go.mod"] {
        let p = project_dir.join(name);
        let Some(bytes) = crate::fs::read_capped(&p, crate::gomod::zipcheck::MAX_GOMOD_BYTES)?
        else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        let field = |key: &str| {
            text.lines()
                .map(|l| l.split("//").next().unwrap_or("").trim())
                .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
        };
        let version = match (field("toolchain "), field("go ")) {
            (Some(t), _) => t,
            (None, Some(g)) => {
                let g = format!("go{g}");
                if g.matches('.').count() == 1 && !g.contains("rc") && !g.contains("beta") {
                    format!("{g}.0")
                } else {
                    g
                }
            }
            (None, None) => {
                return Err(fail(
                    Kind::Usage,
                    format!("{} has neither a toolchain nor a go line", p.display()),
                ));
            }
        };
        if !tree::is_go_version(&version) {
            return Err(fail(
                Kind::Usage,
                format!(
                    "{} asks for {version:?}, which is not a Go release",
                    p.display()
                ),
            ));
        }
        return Ok(version);
    }
    Err(fail(
        Kind::NotFound,
        format!("{} has no go.mod or go.work", project_dir.display()),
    ))
}

/// What an artifact holds: (module bundle, toolchain).
pub(super) fn contents(src: &dyn Repository, top: &Descriptor) -> Result<(bool, bool)> {
    let fetched = src.fetch_manifest(top)?;
    if !fetched.is_index() {
        let is_tc =
            fetched.manifest()?.artifact_type.as_deref() == Some(format::ARTIFACT_TYPE_TOOLCHAIN);
        return Ok((!is_tc, is_tc));
    }
    let index = fetched.index()?;
    if index.artifact_type.as_deref() == Some(format::ARTIFACT_TYPE_TOOLCHAIN) {
        return Ok((false, true));
    }
    let toolchains = index
        .manifests
        .iter()
        .filter(|d| format::is_toolchain(d))
        .count();
    Ok((toolchains < index.manifests.len(), toolchains > 0))
}

/// The module forms of every toolchain `top` holds, as checksum-database
/// inputs: the records a bundle carries for them must agree.
pub(super) fn sum_inputs(
    src: &dyn Repository,
    top: &Descriptor,
) -> Result<Vec<crate::sumdata::SumInput>> {
    format::toolchain_entries(src, top)?
        .iter()
        .map(|d| {
            let c = format::load_part(src, d)?.config;
            Ok(crate::sumdata::toolchain_input(
                &c.version,
                &c.os,
                &c.arch,
                &c.module.hash,
            ))
        })
        .collect()
}

/// Where `pull` puts a toolchain.
pub enum ToolchainTarget {
    Goroot { dir: PathBuf, force: bool },
    ModCache { dir: PathBuf, sumdb: ToolchainSumdb },
}

/// Who installs the checksum-database data that holds the toolchain's
/// record, for a pull into a module cache.
pub enum ToolchainSumdb {
    /// This step, with the trusted head under this GOPATH.
    Install(PathBuf),
    /// A module bundle's pull just before, in the same run: `skipped` is
    /// why its data (the toolchain's record among it) was not installed,
    /// `hint` what to do about it (as in its `sumdb[]` report).
    ByBundle {
        skipped: Option<String>,
        hint: Option<String>,
    },
}

/// What the go command needs to switch to a toolchain in a module cache
/// whose checksum database does not hold its record: with GOPROXY one
/// `file://` URL, it checks `golang.org/toolchain` against the database
/// unless GOSUMDB is off or GONOSUMDB matches it (cmd/go modfetch
/// `useSumDB`); this keeps every other module checked.
pub const TOOLCHAIN_NOSUMDB: &str = "golang.org/toolchain";

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub struct ToolchainPullReport {
    pub version: String,
    pub platform: String,
    pub digest: String,
    pub layers_fetched: usize,
    pub bytes_fetched: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goroot: Option<extract::GorootReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module_installed: Option<bool>,
    pub env: Vec<(String, String)>,
    /// Into a module cache: why the checksum-database data holding the
    /// toolchain's record was not installed (then `env` sets GONOSUMDB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sumdb_skipped: Option<String>,
    /// What to do about it, when there is something to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sumdb_hint: Option<String>,
}

/// The toolchain manifest for `platform` (default: the host's) in `top`,
/// its config read and validated (the delta form's cross-references too).
/// A combined pull calls it before installing any module, so a toolchain
/// refused here leaves GOMODCACHE as it was.
pub(super) fn select_toolchain(
    src: &dyn Repository,
    top: &Descriptor,
    platform: Option<&str>,
) -> Result<ToolchainPart> {
    let (os, arch) = match platform {
        Some(p) => toolchain::parse_platform(p)?,
        None => toolchain::host_platform(),
    };
    let entries = format::toolchain_entries(src, top)?;
    if entries.is_empty() {
        return Err(fail(
            Kind::Usage,
            format!("{}@{} holds no Go toolchain", src.location(), top.digest),
        ));
    }
    let desc = format::select(&entries, &os, &arch, &src.location())?;
    format::load_part(src, desc)
}

/// Installs the toolchain for `platform` (default: the host's) from the
/// already resolved (and, if asked, verified) `top`. Once it installed, the
/// store records the toolchain manifest (tagged `tag`) so prune keeps it;
/// a refused toolchain leaves at most untagged blobs in the store.
pub(super) fn pull_toolchain(
    g: &Global,
    src: &(dyn Repository + Sync),
    top: &Descriptor,
    platform: Option<&str>,
    target: &ToolchainTarget,
    jobs: usize,
    tag: &str,
) -> Result<(String, ToolchainPullReport)> {
    let part = select_toolchain(src, top, platform)?;
    let store = g.open_store()?;
    let _store_in_use = store.use_lock()?;
    let progress = g.progress();
    let mut missing = Vec::new();
    for l in &part.layers {
        if !store.blob_exists(&l.digest)?
            && !missing.iter().any(|m: &Descriptor| m.digest == l.digest)
        {
            missing.push(l.clone());
        }
    }
    let bytes_fetched: u64 = missing.iter().map(|l| l.size).sum();
    progress.start_bytes("fetching", bytes_fetched);
    // Several at once: a toolchain is ~140 layers, and each is hashed as
    // the store writes it.
    crate::parallel::for_each_index(missing.len(), g.concurrency(), |i| {
        let l = &missing[i];
        let mut r = src.fetch_blob(l)?;
        store
            .push_blob(l, &mut progress.reader(&mut r))
            .with_context(|| format!("fetching layer {} from {}", l.digest, src.location()))
    })?;
    progress.finish();
    if !store.blob_exists(&part.config_descriptor.digest)? {
        store.push_blob(&part.config_descriptor, &mut &part.config_bytes[..])?;
    }
    let top_bytes = src.fetch_manifest(top)?;
    // Recorded (so `store list` shows it and prune keeps it) only once it
    // installed: a refused artifact leaves at most untagged blobs behind.
    let record = || -> Result<()> {
        store.push_manifest(
            &part.manifest.descriptor.media_type,
            &part.manifest.bytes,
            None,
        )?;
        store.push_manifest(&top.media_type, &top_bytes.bytes, Some(tag))?;
        Ok(())
    };
    let layers = layer_files(&store, part.own_layers(), &missing);
    let bases = layer_files(&store, part.base_layers(), &missing);
    let config = &part.config;
    let mut report = ToolchainPullReport {
        version: config.version.clone(),
        platform: config.platform(),
        digest: part.manifest.descriptor.digest.to_string(),
        layers_fetched: missing.len(),
        bytes_fetched,
        goroot: None,
        module: None,
        module_installed: None,
        env: Vec::new(),
        sumdb_skipped: None,
        sumdb_hint: None,
    };
    let mut human = String::new();
    match target {
        ToolchainTarget::Goroot { dir, force } => {
            let dir =
                std::path::absolute(dir).with_context(|| format!("resolving {}", dir.display()))?;
            progress.status(&format!(
                "installing {} into {}",
                config.version,
                dir.display()
            ));
            let r = extract::install_goroot(&dir, config, &layers, &bases, *force, jobs)?;
            progress.finish();
            record()?;
            let _ = writeln!(
                human,
                "{} {} {} in {} ({} files, {}; {} fetched)",
                match r.action.as_str() {
                    "already-present" => "already present:",
                    "replaced" => "replaced with",
                    _ => "installed",
                },
                config.version,
                config.platform(),
                dir.display(),
                r.files,
                human_bytes(r.bytes),
                human_bytes(bytes_fetched)
            );
            report.env = vec![
                ("GOROOT".into(), dir.display().to_string()),
                ("PATH".into(), format!("{}/bin:$PATH", dir.display())),
            ];
            human.push_str("Use it with:\n");
            let _ = writeln!(
                human,
                "  export GOROOT={}",
                shell_quote(&dir.display().to_string())
            );
            let _ = writeln!(
                human,
                "  export PATH={}/bin:\"$PATH\"",
                shell_quote(&dir.display().to_string())
            );
            report.goroot = Some(r);
        }
        ToolchainTarget::ModCache { dir, sumdb: by } => {
            let sumdb_gopath = match by {
                ToolchainSumdb::Install(gopath) => Some(gopath),
                ToolchainSumdb::ByBundle { .. } => None,
            };
            // The record and tiles are proven before anything is written.
            let mut sumdb = Vec::new();
            let mut carried_inputs = None;
            if let Some(gopath) = sumdb_gopath
                && let Some(desc) = top_bytes
                    .is_index()
                    .then(|| top_bytes.index())
                    .transpose()?
                    .and_then(|i| i.manifests.into_iter().find(crate::sumdata::is_sumdb))
            {
                let carried = crate::sumdata::fetch_carried(src, &desc)?;
                let inputs = sum_inputs(src, top)?;
                sumdb = crate::sumdata::prepare(&carried, &inputs, dir, gopath)?;
                // Proven: now the store keeps it.
                carried.store_in(&store)?;
                carried_inputs = Some((carried, inputs));
            }
            let installed = install_module_form(&store, dir, &part, &layers, &bases, jobs, g)?;
            record()?;
            let mut sumdb_installed = false;
            let mut not_installed: Option<(String, Option<String>)> = match by {
                ToolchainSumdb::Install(_) => None,
                ToolchainSumdb::ByBundle { skipped, hint } => {
                    skipped.clone().map(|s| (s, hint.clone()))
                }
            };
            if sumdb_gopath.is_some() && sumdb.is_empty() {
                not_installed = Some((
                    "this artifact carries no checksum database data".into(),
                    None,
                ));
            }
            for p in sumdb {
                let (carried, inputs) = carried_inputs.as_ref().expect("prepared from it");
                let p = crate::sumdata::install(p, carried, inputs)?;
                if p.skipped.is_none() {
                    sumdb_installed = true;
                    let _ = writeln!(
                        human,
                        "checksum database {}: {} records and {} tiles written, trusted tree of {} records",
                        crate::text::field(p.database()),
                        p.records,
                        p.tiles,
                        p.tree
                    );
                } else if let Some(why) = &p.skipped {
                    if let Some(hint) = &p.hint {
                        let _ = writeln!(
                            human,
                            "warning: checksum database {}: not installed: {}\n  {}",
                            crate::text::field(p.database()),
                            crate::text::field(why),
                            crate::text::field(hint)
                        );
                    }
                    not_installed.get_or_insert((why.clone(), p.hint.clone()));
                }
            }
            if sumdb_installed {
                not_installed = None;
            }
            let mv = format!("{}@{}", tree::MODULE_PATH, config.module.version);
            let _ = writeln!(
                human,
                "{} {mv} in {} ({} fetched)",
                if installed {
                    "installed"
                } else {
                    "already present:"
                },
                dir.display(),
                human_bytes(bytes_fetched)
            );
            report.env = vec![
                ("GOMODCACHE".into(), dir.display().to_string()),
                (
                    "GOPROXY".into(),
                    format!("file://{}/cache/download", dir.display()),
                ),
            ];
            match (&not_installed, sumdb_gopath) {
                (None, Some(gopath)) => {
                    report
                        .env
                        .push(("GOPATH".into(), gopath.display().to_string()));
                }
                // The module bundle's pull printed its GOPATH.
                (None, None) => {}
                (Some(_), _) => report
                    .env
                    .push(("GONOSUMDB".into(), TOOLCHAIN_NOSUMDB.into())),
            }
            report
                .env
                .push(("GOTOOLCHAIN".into(), config.version.clone()));
            human.push_str("Switch to it with no network (or GOTOOLCHAIN=auto and a go.mod that asks for it):\n");
            for (k, v) in &report.env {
                let _ = writeln!(human, "  export {k}={}", shell_quote(v));
            }
            match &not_installed {
                None => human.push_str("(GOSUMDB stays at its default: the toolchain's checksum-database record is in the cache)\n"),
                Some((why, _)) => {
                    let _ = writeln!(
                        human,
                        "(the checksum database data holding the toolchain's record was not installed: {}. \
                         The go command checks toolchain downloads against the checksum database unless GONOSUMDB matches {TOOLCHAIN_NOSUMDB}; \
                         ocigo checked the toolchain's h1 against the artifact, and every other module is still checked)",
                        crate::text::field(why)
                    );
                }
            }
            if let Some((why, hint)) = not_installed {
                report.sumdb_skipped = Some(why);
                report.sumdb_hint = hint;
            }
            report.module = Some(mv);
            report.module_installed = Some(installed);
        }
    }
    Ok((human, report))
}

fn layer_files<'a>(
    store: &Layout,
    layers: impl Iterator<Item = (&'a Descriptor, &'a format::LayerInfo)>,
    fetched_now: &[Descriptor],
) -> Vec<LayerFile<'a>> {
    layers
        .map(|(d, info)| LayerFile {
            descriptor: d,
            info,
            path: store.blob_path(&d.digest),
            // Digest-checked by the store as this run fetched it.
            just_verified: fetched_now.iter().any(|m| m.digest == d.digest),
        })
        .collect()
}

/// Writes the module form through `install` (the go command's layout,
/// locks and commit order). Returns whether it was written.
fn install_module_form(
    store: &Layout,
    gomodcache: &Path,
    part: &ToolchainPart,
    layers: &[LayerFile],
    bases: &[LayerFile],
    jobs: usize,
    g: &Global,
) -> Result<bool> {
    let config: &ToolchainConfig = &part.config;
    let (tmp, zip) = extract::build_module_zip(config, layers, bases, &store.scratch_dir()?, jobs)?;
    let info = match &config.time {
        Some(t) => format!(
            "{{\"Version\":{:?}, \"Time\":{:?}}}\n",
            config.module.version, t
        ),
        None => format!("{{\"Version\":{:?}}}\n", config.module.version),
    };
    let entry = ModuleEntry {
        path: tree::MODULE_PATH.into(),
        version: config.module.version.clone(),
        info: Some(info),
        go_mod: tree::MODULE_GO_MOD.into(),
        mod_hash: crate::gomod::hash_gomod(tree::MODULE_GO_MOD.as_bytes()),
        zip: Some(ZipRef {
            hash: zip.h1.clone(),
            layer: Digest::parse(&format!("sha256:{}", hex::encode(zip.sha256)))?,
            size: zip.size,
        }),
    };
    let items = [InstallItem {
        entry: &entry,
        zip_blob: Some(zip.path.clone()),
        zip_checked: false,
        extract: true,
    }];
    let report = install::install(gomodcache, &items, jobs, &g.progress(), None)?;
    drop(tmp);
    if let Some(c) = report.conflicts.first() {
        return Err(fail(
            Kind::Conflict,
            format!("{c}; nothing was changed in {}", gomodcache.display()),
        ));
    }
    Ok(report.installed > 0)
}
