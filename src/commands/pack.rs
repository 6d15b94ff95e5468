//! `ocigo pack`: resolve a project's closure, store it, build the
//! artifact, copy it to its destination and optionally sign it.

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use super::sbom::attach_sbom;
use super::sign::{AttestReport, SignReport, SignWith, describe_attestation, describe_signature};
use super::{Global, Outcome, human_bytes, tag_move_note};
use crate::artifact::{self, MainModule, ModuleEntry, ModulesConfig, SplitLimits, ZipRef};
use crate::closure::{self, ModuleSource, ResolveOptions};
use crate::error::{Kind, fail, fail_hint};
use crate::oci::{Descriptor, Reference, Repository as _};
use crate::transfer::CopyStats;

pub struct PackArgs {
    pub project_dir: PathBuf,
    pub dest: String,
    pub platforms: Vec<String>,
    pub from_cache: Option<PathBuf>,
    pub created: Option<String>,
    pub limits: SplitLimits,
    pub sign: Option<SignWith>,
    /// Add the toolchain the project asks for, under the same reference.
    pub with_toolchain: bool,
    /// `--toolchain-delta-from REF`: that toolchain as deltas against REF.
    pub toolchain_delta_from: Option<String>,
    /// Attach a signed CycloneDX SBOM (needs `sign`).
    pub sbom: bool,
    /// Carry no checksum-database data.
    pub no_sumdb: bool,
    /// `--closure tidy`: also what go mod tidy/verify need.
    pub tidy_closure: bool,
    /// Earlier bundles whose trusted trees this one must join.
    pub sumdb_since: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub struct PackReport {
    pub reference: String,
    pub digest: String,
    pub media_type: String,
    pub modules: usize,
    pub zips: usize,
    pub zip_bytes: u64,
    pub manifests: usize,
    pub copy: CopyStats,
    /// The digest the destination tag named before (null: a new tag).
    pub previous_digest: Option<String>,
    /// Whether the tag now names other content than before.
    pub tag_moved: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignReport>,
    /// The SBOM attestation (`--sbom`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sbom: Option<AttestReport>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub toolchains: Vec<super::toolchain::PackedToolchain>,
    /// The checksum-database data carried (absent: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sumdb: Option<SumdbPacked>,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub struct SumdbPacked {
    pub database: Option<String>,
    pub tree_size: u64,
    /// The newest tree the records' lookups came with: older than
    /// `tree_size` when the database's head was newer (it is carried).
    pub lookups_tree_size: u64,
    pub records: usize,
    pub tiles: usize,
    /// Bytes of the config and the tiles.
    pub bytes: u64,
    /// Module paths left out (GONOSUMDB, GOPRIVATE).
    pub private: Vec<String>,
    pub fetch_seconds: f64,
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
    if args.sbom && args.sign.is_none() {
        return Err(fail_hint(
            Kind::Usage,
            "--sbom attaches a signed attestation, and no key was given",
            "add --sign KEY",
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
    let mut closure = closure::resolve(
        &ResolveOptions {
            project_dir: args.project_dir.clone(),
            platforms: args.platforms.clone(),
            source,
            go: std::env::var_os("OCIGO_GO").unwrap_or_else(|| "go".into()),
            tidy: args.tidy_closure,
        },
        &|step| progress.status(step),
    )?;
    progress.finish();

    // The resolved modules are moved into the entries, not copied: the
    // go.mod texts are most of pack's live memory.
    let modules = std::mem::take(&mut closure.modules);
    progress.start("storing", modules.len() as u64);
    let mut entries = Vec::with_capacity(modules.len());
    let mut zip_bytes = 0;
    for m in modules {
        let zip = match m.zip {
            Some((path, hash)) => {
                let desc = store.ingest_file(&path, artifact::MEDIA_TYPE_MODULE_ZIP)?;
                zip_bytes += desc.size;
                Some(ZipRef {
                    hash,
                    layer: desc.digest,
                    size: desc.size,
                })
            }
            None => None,
        };
        entries.push(ModuleEntry {
            path: m.module.path,
            version: m.module.version,
            info: m.info,
            go_mod: m.go_mod,
            mod_hash: m.mod_hash,
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
    // The checksum database's records and tiles for the public modules
    // (and the toolchains), gathered once everything is packed.
    let want_sumdb = !args.no_sumdb && args.from_cache.is_none();
    let mut sum_inputs = if want_sumdb {
        crate::sumdata::inputs_of(&header.modules)
    } else {
        Vec::new()
    };
    let built = artifact::build(header, args.limits)?;
    let store_tag = dest.to_string();
    let mut top = artifact::push_built(&store, &built, Some(&store_tag))?;
    let mut extra: Vec<Descriptor> = Vec::new();
    let mut toolchains = Vec::new();
    if args.with_toolchain {
        let version = super::toolchain::project_toolchain(&args.project_dir)?;
        let (entries, packed, inputs) = super::toolchain::pack_into_store(
            g,
            &store,
            &super::toolchain::ToolchainSource::Proxy { version },
            &closure.platforms,
            args.toolchain_delta_from.as_deref(),
        )?;
        toolchains = packed;
        sum_inputs.extend(inputs);
        extra.extend(crate::toolchain::format::sorted_entries(entries));
    }
    let sumdb = if want_sumdb {
        let mut since = Vec::new();
        for r in &args.sumdb_since {
            let reference = Reference::parse(r)?;
            let repo = g.open(&reference, false)?;
            let top = repo.resolve(reference.tag_or_digest())?;
            let config = crate::sumdata::read_config(repo.as_ref(), &top)?.ok_or_else(|| {
                fail(
                    Kind::Usage,
                    format!("--sumdb-since {r}: that bundle carries no checksum database data"),
                )
            })?;
            since.push(crate::sumdata::Since {
                what: r.clone(),
                config,
            });
        }
        progress.status("fetching checksum database records");
        let started = std::time::Instant::now();
        let gathered = crate::sumdata::gather(&sum_inputs, g.concurrency().max(8), &since)?;
        progress.finish();
        gathered.map(|g| (g, started.elapsed().as_secs_f64()))
    } else {
        None
    };
    let mut sumdb_report = None;
    if let Some((gathered, secs)) = sumdb {
        let (desc, bytes) = crate::sumdata::store_gathered(&store, &gathered)?;
        let db = gathered.config.databases.first();
        sumdb_report = Some(SumdbPacked {
            database: db.map(|d| d.name.clone()),
            tree_size: db
                .and_then(|d| crate::gomod::sumdb::parse_tree(d.tree.split("\n\n").next()?).ok())
                .map(|t| t.n)
                .unwrap_or(0),
            lookups_tree_size: gathered.lookups_tree,
            records: db.map(|d| d.records.len()).unwrap_or(0),
            tiles: gathered.tiles.len(),
            bytes,
            private: gathered.config.private.clone(),
            fetch_seconds: secs,
        });
        if db.is_some() {
            // Before the toolchains: module readers skip both.
            extra.insert(0, desc);
        }
    }
    if !extra.is_empty() {
        // The bundle's index (header, then parts, unchanged) with the
        // checksum-database and toolchain manifests after them: module
        // readers skip those.
        let mut index: crate::oci::Index = serde_json::from_slice(&built.top)?;
        index.manifests.extend(extra);
        let index = crate::oci::to_canonical_json(&index);
        top = store.push_manifest(crate::oci::MEDIA_TYPE_INDEX, &index, Some(&store_tag))?;
    }

    let super::Published {
        target,
        copy,
        previous_digest,
        signature,
    } = super::publish(g, &store, &top, &dest, signer.as_ref(), &progress)?;
    let sbom = match (&signer, args.sbom) {
        (Some(signer), true) => Some(attach_sbom(&store, target.as_ref(), &dest, &top, signer)?),
        _ => None,
    };
    let report = PackReport {
        reference: dest.to_string(),
        digest: top.digest.to_string(),
        media_type: top.media_type.clone(),
        modules,
        zips,
        zip_bytes,
        // Part manifests (the header is not counted).
        manifests: built.parts.len() - 1,
        copy,
        tag_moved: previous_digest
            .as_ref()
            .is_some_and(|p| *p != top.digest.to_string()),
        previous_digest,
        signature,
        sbom,
        toolchains,
        sumdb: sumdb_report,
    };
    let mut human = format!(
        "packed {} module versions ({} zips, {}) into {}\ndigest: {}\n",
        report.modules,
        report.zips,
        human_bytes(report.zip_bytes),
        report.reference,
        report.digest
    );
    human.push_str(&tag_move_note(
        &dest,
        report.previous_digest.as_deref(),
        &report.digest,
    ));
    if let Some(s) = &report.sumdb {
        if let Some(db) = &s.database {
            human.push_str(&format!(
                "checksum database {db}: {} records proven in its tree of {} records, {} tiles ({}), fetched in {:.1} s\n",
                s.records,
                s.tree_size,
                s.tiles,
                human_bytes(s.bytes),
                s.fetch_seconds
            ));
        }
        if !s.private.is_empty() {
            human.push_str(&format!(
                "not in the checksum database (GONOSUMDB/GOPRIVATE): {}\n",
                s.private
                    .iter()
                    .map(|p| crate::text::field(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    for t in &report.toolchains {
        human.push_str(&format!(
            "with toolchain {} {} ({} files, {})\n",
            t.version,
            t.platform,
            t.files,
            human_bytes(t.stored_bytes)
        ));
    }
    if let Some(s) = &report.signature {
        human.push_str(&describe_signature(s));
    }
    if let Some(s) = &report.sbom {
        human.push_str(&describe_attestation(s));
    }
    Ok((Outcome::ok(human, &report), top))
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, as the OCI annotation
/// `org.opencontainers.image.created` and the config's `created` use.
fn is_rfc3339(s: &str) -> bool {
    crate::rfc3339::parse(s).is_some()
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
