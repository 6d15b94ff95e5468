//! The checksum database data a bundle carries, so that the go command
//! can verify modules offline with GOSUMDB at its default: for every
//! public module version, the database's signed lookup record, and the
//! tiles that prove it in one signed tree.
//!
//! In the artifact (README "Checksum database data"): one more manifest in
//! the bundle's index (artifactType [`ARTIFACT_TYPE_SUMDB`], annotated
//! `dev.ocigo.bundle.role: sumdb`), whose config lists the records and
//! which tile is which blob, and whose layers are the tiles, one blob each,
//! so bundles near each other in the log share them.
//!
//! On pull, everything is proven before a byte is written, the way the
//! go command's client (`golang.org/x/mod/sumdb`) proves it: the tree note
//! with the key GOSUMDB names, each record in the newest tree the cache
//! will trust, with exactly the tiles the go command reads ([`tlog::plan`]),
//! the tree the cache trusted before consistent with it, and every record
//! the cache already holds still provable. Then the tiles, the records and
//! last the trusted tree head (`$GOPATH/pkg/sumdb/<db>/latest`) are written,
//! under that file's lock as the go command takes it (exclusive when the
//! head moves, shared otherwise), deciding again if the head (or, when it
//! moves, the cached records) changed since they were read (it never
//! moves back).
//! When the bundle's tree and the cache's cannot be joined (no proof
//! either way), nothing is written and the data is reported skipped, with
//! a hint; a proven fork is refused.
//!
//! Owns: gathering (pack), checking and installing (pull) that data. Must
//! not: know about parts, zips or signatures; write anywhere but the
//! go command's checksum-database cache and its `latest` file, and only
//! through `crate::fs`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::artifact::ModuleEntry;
use crate::error::{Kind, fail, fail_hint};
use crate::gomod::sumdb::{self, Fetch, Hash, TreeHead, UrlFetch, Verifier};
use crate::gomod::tlog::{self, Tile};
use crate::oci::{Descriptor, Digest, Repository};

pub use crate::artifact::ARTIFACT_TYPE_SUMDB;
pub const MEDIA_TYPE_SUMDB_CONFIG: &str = "application/vnd.ocigo.sumdb.config.v1+json";
pub const MEDIA_TYPE_SUMDB_TILE: &str = "application/vnd.ocigo.sumdb.tile.v1";
/// The `dev.ocigo.bundle.role` of that manifest.
pub const ROLE_SUMDB: &str = "sumdb";
pub const FORMAT_VERSION: u32 = 1;
const MAX_CONFIG_BYTES: u64 = 64 << 20;
const MAX_RECORD_BYTES: u64 = 64 << 10;
const MAX_NOTE_BYTES: u64 = 16 << 10;
const TILE_BYTES: u64 = 256 * tlog::HASH_SIZE as u64;
/// Bounds the walk of a cache's records.
const MAX_CACHED_RECORDS: usize = 1 << 20;

/// The config of the checksum-database manifest
/// (`schemas/sumdb-config.v1.schema.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SumdbConfig {
    pub format_version: u32,
    pub databases: Vec<Database>,
    /// Module paths left out: GONOSUMDB (or GOPRIVATE) matched them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub private: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Database {
    /// The database's name (`sum.golang.org`).
    pub name: String,
    /// The verifier key pack checked with (informational: pull checks
    /// with the key its own GOSUMDB names).
    pub key: String,
    /// The signed tree note every record is proven in.
    pub tree: String,
    pub records: Vec<Record>,
    pub tiles: Vec<TileRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Record {
    pub path: String,
    pub version: String,
    /// The record's position in the log.
    pub id: u64,
    /// The record's text: its go.sum lines, each ending in `\n`.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TileRef {
    /// `tile/8/<L>/<N>[.p/<W>]`.
    pub path: String,
    pub digest: Digest,
    pub size: u64,
}

pub fn is_sumdb(desc: &Descriptor) -> bool {
    desc.artifact_type.as_deref() == Some(ARTIFACT_TYPE_SUMDB)
}

/// GOSUMDB as the go command reads it: `None` for `off`; else the
/// verifier and the database's own URL if one is given.
pub fn gosumdb() -> Result<Option<(Verifier, Option<String>)>> {
    let v = std::env::var("GOSUMDB").unwrap_or_default();
    if v.trim() == "off" {
        return Ok(None);
    }
    crate::toolchain::fetch::sumdb_config().map(Some)
}

/// `GONOSUMDB`, defaulting to `GOPRIVATE`, as the go command reads them.
pub fn nosumdb_patterns() -> String {
    match std::env::var("GONOSUMDB") {
        Ok(v) if !v.is_empty() => v,
        _ => std::env::var("GOPRIVATE").unwrap_or_default(),
    }
}

// ------------------------------------------------------------------ pack

/// What pack gathered: the config, and the tiles' bytes by digest.
pub struct Gathered {
    pub config: SumdbConfig,
    /// The newest tree the lookups came with (the carried tree, the
    /// database's head, may be newer); 0 when there were none.
    pub lookups_tree: u64,
    pub tiles: Vec<(Descriptor, Vec<u8>)>,
}

/// Where the database is read from at pack time: the database's own URL
/// if GOSUMDB gives one, else the first proxy of GOPROXY that serves it
/// (`<proxy>/sumdb/<name>/supported`), else `https://<name>`, as the go
/// command chooses.
fn source(v: &Verifier, url: Option<String>) -> Result<UrlFetch> {
    if let Some(u) = url {
        return Ok(UrlFetch::new(&u));
    }
    let goproxy = std::env::var("GOPROXY").unwrap_or_default();
    let goproxy = if goproxy.is_empty() {
        "https://proxy.golang.org,direct".to_string()
    } else {
        goproxy
    };
    for p in goproxy.split([',', '|']).map(str::trim) {
        if p == "direct" || p == "off" {
            break;
        }
        if let Some(dir) = p.strip_prefix("file://") {
            // A module cache's download area: the go command's own cache
            // of the database, used when it has one.
            let base = format!("{}/sumdb/{}", dir.trim_end_matches('/'), v.name);
            if crate::fs::dir_exists(Path::new(&base))? {
                return Ok(UrlFetch::new(&format!("file://{base}")));
            }
            continue;
        }
        if !(p.starts_with("https://") || p.starts_with("http://")) {
            continue;
        }
        let f = UrlFetch::new(&format!("{}/sumdb/{}", p.trim_end_matches('/'), v.name));
        match f.get("supported", 1 << 10) {
            Ok(Some(_)) => return Ok(f),
            Ok(None) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(UrlFetch::new(&format!("https://{}", v.name)))
}

/// `fetch.get`, tried three times over about two seconds when the network
/// fails (name resolution and connections fail now and then under a
/// burst of parallel requests); what the server says is not retried.
fn get_retrying(fetch: &UrlFetch, path: &str, limit: u64) -> Result<Option<Vec<u8>>> {
    let mut attempt = 0;
    loop {
        match fetch.get(path, limit) {
            Err(e) if attempt < 2 && crate::error::kind_of(&e) == Some(Kind::Remote) => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(500 * attempt));
            }
            r => return r,
        }
    }
}

/// Fetches, checks and proves the records of every public module version
/// in `entries` (`jobs` at once). `Ok(None)`: GOSUMDB is off.
/// A module version to carry the record of, with the hashes the bundle
/// holds for it (the record must agree).
#[derive(Debug, Clone)]
pub struct SumInput {
    pub path: String,
    pub version: String,
    pub mod_hash: String,
    /// `None` when the bundle holds only the go.mod.
    pub zip_hash: Option<String>,
}

/// The inputs for a bundle's module entries.
pub fn inputs_of(entries: &[ModuleEntry]) -> Vec<SumInput> {
    entries
        .iter()
        .map(|e| SumInput {
            path: e.path.clone(),
            version: e.version.clone(),
            mod_hash: e.mod_hash.clone(),
            zip_hash: e.zip.as_ref().map(|z| z.hash.clone()),
        })
        .collect()
}

/// The input for a toolchain's module form (`golang.org/toolchain`):
/// its go.mod is fixed, its zip hash is the one the toolchain's config holds.
pub fn toolchain_input(version: &str, os: &str, arch: &str, zip_hash: &str) -> SumInput {
    SumInput {
        path: crate::toolchain::tree::MODULE_PATH.to_string(),
        version: crate::toolchain::tree::module_version(version, os, arch),
        mod_hash: crate::gomod::hash_gomod(crate::toolchain::tree::MODULE_GO_MOD.as_bytes()),
        zip_hash: Some(zip_hash.to_string()),
    }
}

/// An older tree a bundle packed earlier trusts: the newer bundle carries
/// the tiles that prove it a prefix of its own tree and its records in it.
pub struct Since {
    /// What it is called in messages (the reference given).
    pub what: String,
    pub config: SumdbConfig,
}

pub fn gather(entries: &[SumInput], jobs: usize, since: &[Since]) -> Result<Option<Gathered>> {
    let Some((verifier, url)) = gosumdb()? else {
        return Ok(None);
    };
    let patterns = nosumdb_patterns();
    let mut private = BTreeSet::new();
    let public: Vec<&SumInput> = entries
        .iter()
        .filter(|e| {
            if crate::gomod::glob::match_prefix_patterns(&patterns, &e.path) {
                private.insert(e.path.clone());
                false
            } else {
                true
            }
        })
        .collect();
    let private: Vec<String> = private.into_iter().collect();
    if public.is_empty() {
        return Ok(Some(Gathered {
            config: SumdbConfig {
                format_version: FORMAT_VERSION,
                databases: Vec::new(),
                private,
            },
            lookups_tree: 0,
            tiles: Vec::new(),
        }));
    }
    let fetch = source(&verifier, url)?;
    // 1. The records, in parallel, each checked against the bundle's hashes.
    let fetched = crate::parallel::for_each_index(public.len(), jobs, |i| {
        fetch_record(&fetch, &verifier, public[i])
    })?;
    // 2. Earlier bundles' trees and records (--sumdb-since).
    let mut older: Vec<(TreeHead, String, Vec<u64>)> = Vec::new();
    for s in since {
        for db in s
            .config
            .databases
            .iter()
            .filter(|d| d.name == verifier.name)
        {
            let t = note_tree(db.tree.as_bytes(), &verifier, &s.what)?;
            older.push((
                t,
                db.tree.clone(),
                db.records.iter().map(|r| r.id).collect(),
            ));
        }
    }
    // 3. The database's current head (`<db>/latest`, as the go command
    // reads it): when it is newer than every tree the records came with
    // (a proxy answers lookups from its cache, signed in older trees),
    // the bundle carries it, so that it joins caches that trust a tree
    // newer than the lookups'. The lookups' trees are then proven
    // prefixes of it, like earlier bundles'.
    let head = match get_retrying(&fetch, "latest", MAX_NOTE_BYTES)? {
        Some(n) => {
            let what = format!("the tree head of {}", fetch.describe());
            let t = note_tree(&n, &verifier, &what)?;
            let n = String::from_utf8(n).map_err(|_| {
                fail(
                    Kind::Integrity,
                    format!("checksum database: {what} is not UTF-8"),
                )
            })?;
            Some((t, n))
        }
        None => None,
    };
    let lookups_n = fetched.iter().map(|(_, t, _)| t.n).max().unwrap_or(0);
    if let Some((h, _)) = &head
        && h.n > lookups_n
    {
        let mut seen = BTreeSet::new();
        for (_, t, n) in &fetched {
            if seen.insert(t.n) {
                older.push((*t, n.clone(), Vec::new()));
            }
        }
    }
    // One hash per tree size among the trees the records, earlier bundles
    // and the head came with: two signed trees of one size with different
    // hashes are a forked log (the rest proves each tree a prefix of the
    // newest, and keeps one tree per size).
    let mut by_size: BTreeMap<u64, Hash> = BTreeMap::new();
    for t in fetched
        .iter()
        .map(|(_, t, _)| *t)
        .chain(older.iter().map(|(t, _, _)| *t))
        .chain(head.iter().map(|(t, _)| *t))
    {
        if let Some(h) = by_size.insert(t.n, t.hash)
            && h != t.hash
        {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "checksum database ({}): two signed trees of {} records with different hashes (a forked log); nothing was packed",
                    fetch.describe(),
                    t.n
                ),
            ));
        }
    }
    // The newest tree any record, earlier bundle or the head came with:
    // every record is proven in it.
    let (tree, note) = fetched
        .iter()
        .map(|(_, t, n)| (*t, n.clone()))
        .chain(older.iter().map(|(t, n, _)| (*t, n.clone())))
        .chain(head)
        .max_by_key(|(t, _)| t.n)
        .expect("not empty");
    let leaves: Vec<u64> = fetched
        .iter()
        .map(|(r, _, _)| tlog::leaf_index(r.id))
        .collect();
    // What the go command reads when the cache holds an earlier bundle's
    // records: the older tree's hash from this tree's tiles, and their
    // records' paths in this tree.
    let mut extra: Vec<u64> = Vec::new();
    for (t, _, ids) in &older {
        // Each in its own tree (the one its bundle's note signs).
        if ids.iter().any(|&id| id >= t.n) {
            return Err(fail(
                Kind::Integrity,
                "checksum database: an earlier bundle's record lies outside its own tree",
            ));
        }
        extra.extend(tlog::tree_indexes(t.n));
        extra.extend(ids.iter().map(|&id| tlog::leaf_index(id)));
    }
    let mut wanted = leaves.clone();
    wanted.extend(&extra);
    let plan = tlog::plan(tree.n, &wanted)?;
    let tiles = crate::parallel::for_each_index(plan.len(), jobs, |i| {
        let t = plan[i];
        let mut data = get_retrying(&fetch, &t.path(), TILE_BYTES)?;
        if data.is_none() && t.w < 256 {
            let full = Tile { w: 256, ..t }.path();
            data = get_retrying(&fetch, &full, TILE_BYTES)?;
            // A module cache holds the partial tiles of the tree the go
            // command proved against last: a wider one has the same prefix
            // (the proof below checks whatever is used).
            let mut wider: Vec<u64> = fetch
                .partial_widths(&full)
                .into_iter()
                .filter(|&w| w > t.w && w < 256)
                .collect();
            wider.sort_unstable();
            for w in wider {
                if data.is_some() {
                    break;
                }
                data = get_retrying(&fetch, &Tile { w, ..t }.path(), TILE_BYTES)?;
            }
        }
        let mut data = data.ok_or_else(|| {
            fail(
                Kind::NotFound,
                format!(
                    "the checksum database ({}) has no tile {}",
                    fetch.describe(),
                    t.path()
                ),
            )
        })?;
        if (data.len() as u64) < t.w * tlog::HASH_SIZE as u64 {
            return Err(fail(
                Kind::Integrity,
                format!("checksum database: tile {} is too short", t.path()),
            ));
        }
        data.truncate(t.w as usize * tlog::HASH_SIZE);
        Ok(data)
    })?;
    let by_tile: HashMap<Tile, &Vec<u8>> = plan.iter().copied().zip(tiles.iter()).collect();
    let get = |t: &Tile| Ok(by_tile.get(t).map(|d| d.to_vec()));
    let proven = tlog::read_hashes(tree.n, &tree.hash, &leaves, &get)?
        .map_err(|t| fail(Kind::Integrity, format!("bad tile plan: {}", t.path())))?;
    for (t, _, _) in &older {
        match tlog::tree_hash_in(t.n, tree.n, &tree.hash, &get)? {
            Ok(h) if h == t.hash => {}
            Ok(_) => {
                return Err(fail(
                    Kind::Integrity,
                    format!(
                        "checksum database ({}): the tree of {} records (an earlier bundle's or a lookup's) is not a prefix of the tree of {} records (a forked log)",
                        fetch.describe(),
                        t.n,
                        tree.n
                    ),
                ));
            }
            Err(t) => {
                return Err(fail(
                    Kind::Integrity,
                    format!("bad tile plan: {}", t.path()),
                ));
            }
        }
    }
    for ((r, _, _), h) in fetched.iter().zip(&proven) {
        if sumdb::record_hash(r.text.as_bytes()) != *h {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "checksum database ({}): the record for {}@{} is not in the signed tree of {} records",
                    fetch.describe(),
                    r.path,
                    r.version,
                    tree.n
                ),
            ));
        }
    }
    let mut tile_refs = Vec::new();
    let mut blobs: BTreeMap<Digest, (Descriptor, Vec<u8>)> = BTreeMap::new();
    for (t, data) in plan.iter().zip(tiles) {
        let desc = Descriptor::for_bytes(MEDIA_TYPE_SUMDB_TILE, &data);
        tile_refs.push(TileRef {
            path: t.path(),
            digest: desc.digest.clone(),
            size: desc.size,
        });
        blobs.entry(desc.digest.clone()).or_insert((desc, data));
    }
    tile_refs.sort_by(|a, b| a.path.cmp(&b.path));
    let mut records: Vec<Record> = fetched.into_iter().map(|(r, _, _)| r).collect();
    records.sort_by(|a, b| {
        a.path
            .cmp(&b.path)
            .then_with(|| crate::gomod::semver::compare(&a.version, &b.version))
    });
    Ok(Some(Gathered {
        config: SumdbConfig {
            format_version: FORMAT_VERSION,
            databases: vec![Database {
                name: verifier.name.clone(),
                key: verifier_key_text(&verifier),
                tree: note,
                records,
                tiles: tile_refs,
            }],
            private,
        },
        lookups_tree: lookups_n,
        tiles: blobs.into_values().collect(),
    }))
}

fn verifier_key_text(v: &Verifier) -> String {
    match std::env::var("GOSUMDB")
        .unwrap_or_default()
        .split_whitespace()
        .next()
    {
        Some(k) if k.contains('+') => k.to_string(),
        _ if v.name == "sum.golang.org" => sumdb::SUM_GOLANG_ORG_KEY.to_string(),
        _ => v.name.clone(),
    }
}

/// Looks one module version up: the record, the tree its note signs.
fn fetch_record(
    fetch: &UrlFetch,
    v: &Verifier,
    e: &SumInput,
) -> Result<(Record, TreeHead, String)> {
    let what = format!("{}@{}", e.path, e.version);
    let epath = crate::gomod::escape_path(&e.path)?;
    let ever = crate::gomod::escape_version(&e.version)?;
    let body = get_retrying(fetch, &format!("lookup/{epath}@{ever}"), MAX_RECORD_BYTES)?
        .ok_or_else(|| {
            fail_hint(
                Kind::NotFound,
                format!(
                    "the checksum database ({}) has no record of {what}",
                    fetch.describe()
                ),
                "if the module is private, list it in GONOSUMDB or GOPRIVATE",
            )
        })?;
    let (id, text, note) = sumdb::parse_record(&body).ok_or_else(|| {
        fail(
            Kind::Integrity,
            format!("checksum database: the record of {what} is malformed"),
        )
    })?;
    let tree = sumdb::parse_tree(sumdb::open_note(note, v)?)?;
    if id >= tree.n {
        return Err(fail(
            Kind::Integrity,
            format!("checksum database: record {id} of {what} is outside its signed tree"),
        ));
    }
    let text = std::str::from_utf8(text)
        .map_err(|_| fail(Kind::Integrity, "checksum database: a record is not UTF-8"))?;
    check_lines(text, e)?;
    let note = std::str::from_utf8(note)
        .expect("checked by open_note")
        .to_string();
    Ok((
        Record {
            path: e.path.clone(),
            version: e.version.clone(),
            id,
            text: text.to_string(),
        },
        tree,
        note,
    ))
}

/// The record's go.sum lines must agree with the bundle's own hashes.
fn check_lines(text: &str, e: &SumInput) -> Result<()> {
    let find = |suffix: &str| {
        text.lines().find_map(|l| {
            let mut f = l.split(' ');
            match (f.next(), f.next(), f.next(), f.next()) {
                (Some(p), Some(v), Some(h), None)
                    if p == e.path && v == format!("{}{suffix}", e.version) =>
                {
                    Some(h.to_string())
                }
                _ => None,
            }
        })
    };
    let mismatch = |what: &str, db: &str, ours: &str| {
        fail_hint(
            Kind::Integrity,
            format!(
                "{}@{}: the checksum database records {what} {db}, the bundle's is {ours}",
                e.path, e.version
            ),
            "the module the go command resolved is not the one the database vouches for: \
             check GOPROXY and the module cache you packed from",
        )
    };
    match find("/go.mod") {
        Some(h) if h == e.mod_hash => {}
        Some(h) => return Err(mismatch("go.mod hash", &h, &e.mod_hash)),
        None => {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "checksum database: the record for {}@{} has no go.mod line",
                    e.path, e.version
                ),
            ));
        }
    }
    if let Some(zh) = &e.zip_hash {
        match find("") {
            Some(h) if h == *zh => {}
            Some(h) => return Err(mismatch("zip hash", &h, zh)),
            None => {
                return Err(fail(
                    Kind::Integrity,
                    format!(
                        "checksum database: the record for {}@{} has no zip line",
                        e.path, e.version
                    ),
                ));
            }
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ pull

/// `$GOPATH/pkg/sumdb`, where the go command keeps the tree heads it
/// trusts (`cfg.SumdbDir`): the first GOPATH entry, default `~/go`.
pub fn default_gopath() -> Result<PathBuf> {
    if let Some(gopath) = std::env::var_os("GOPATH").filter(|v| !v.is_empty())
        && let Some(first) = std::env::split_paths(&gopath).next()
    {
        return Ok(first);
    }
    dirs::home_dir().map(|h| h.join("go")).ok_or_else(|| {
        fail(
            Kind::Usage,
            "cannot find the home directory: set GOPATH or pass --gopath",
        )
    })
}

/// A bundle's checksum-database manifest, read into memory (digest-checked,
/// bounded) and not yet stored: [`prepare`] proves it first, then
/// [`Carried::store_in`] keeps it in the store.
pub struct Carried {
    pub config: SumdbConfig,
    pub tiles: Vec<Descriptor>,
    tile_data: HashMap<Digest, Vec<u8>>,
    manifest: Descriptor,
    manifest_bytes: Vec<u8>,
    config_desc: Descriptor,
    config_bytes: Vec<u8>,
}

impl Carried {
    /// Keeps the manifest, its config and its tiles in `store` (what the
    /// bundle's index names; prune walks it). Call after [`prepare`].
    pub fn store_in(&self, store: &crate::store::Layout) -> Result<()> {
        for l in &self.tiles {
            if !store.blob_exists(&l.digest)? {
                store.push_blob(l, &mut &self.tile_data[&l.digest][..])?;
            }
        }
        if !store.blob_exists(&self.config_desc.digest)? {
            store.push_blob(&self.config_desc, &mut &self.config_bytes[..])?;
        }
        store.push_manifest(&self.manifest.media_type, &self.manifest_bytes, None)?;
        Ok(())
    }
}

/// Reads a checksum-database manifest and its config (bounded, checked).
fn read_manifest(
    src: &dyn Repository,
    desc: &Descriptor,
) -> Result<(crate::oci::Manifest, SumdbConfig, Vec<u8>, Vec<u8>)> {
    let fetched = src.fetch_manifest(desc)?;
    let m = fetched.manifest()?;
    if m.config.media_type != MEDIA_TYPE_SUMDB_CONFIG || m.config.size > MAX_CONFIG_BYTES {
        return Err(fail(
            Kind::Integrity,
            format!(
                "checksum database manifest {} must have a {MEDIA_TYPE_SUMDB_CONFIG} config of at most {MAX_CONFIG_BYTES} bytes",
                desc.digest
            ),
        ));
    }
    let mut bytes = Vec::new();
    src.fetch_blob(&m.config)?
        .take(MAX_CONFIG_BYTES)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading checksum database config {}", m.config.digest))?;
    let config: SumdbConfig = serde_json::from_slice(&bytes).map_err(|e| {
        fail(
            Kind::Integrity,
            format!(
                "checksum database config {} is not valid: {e}",
                m.config.digest
            ),
        )
    })?;
    if config.format_version != FORMAT_VERSION {
        return Err(fail(
            Kind::Integrity,
            format!(
                "checksum database data format {} is not supported by this ocigo (it reads {FORMAT_VERSION}); upgrade ocigo",
                config.format_version
            ),
        ));
    }
    check_config(&config)
        .with_context(|| format!("checksum database config {}", m.config.digest))?;
    Ok((m, config, fetched.bytes, bytes))
}

/// What the schema cannot say: each name a checksum database's name as
/// `golang.org/x/mod/sumdb/note` accepts a verifier name (not empty, no
/// white space, no `+`), and no control character either (it is printed
/// and is a directory name); one entry per database (a second entry of
/// the same name could move the trusted head back).
fn check_config(config: &SumdbConfig) -> Result<()> {
    let mut names = BTreeSet::new();
    for db in &config.databases {
        if db.name.is_empty()
            || db
                .name
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '+')
        {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "the bundle names a checksum database \"{}\", which is not a database name (empty, or with white space, '+' or a control character)",
                    crate::text::field(&db.name)
                ),
            ));
        }
        if !names.insert(db.name.as_str()) {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "checksum database {} is listed more than once; a bundle carries one entry per database",
                    db.name
                ),
            ));
        }
    }
    Ok(())
}

/// The checksum-database data of the bundle `top` in `src`, if it has any.
pub fn read_config(src: &dyn Repository, top: &Descriptor) -> Result<Option<SumdbConfig>> {
    let fetched = src.fetch_manifest(top)?;
    if !fetched.is_index() {
        return Ok(None);
    }
    match fetched.index()?.manifests.into_iter().find(is_sumdb) {
        Some(d) => Ok(Some(read_manifest(src, &d)?.1)),
        None => Ok(None),
    }
}

/// Reads the manifest `desc`, its config and its tiles from `src` into
/// memory (each tile at most 8 KiB, digest-checked); writes nothing.
pub fn fetch_carried(src: &dyn Repository, desc: &Descriptor) -> Result<Carried> {
    let (m, config, manifest_bytes, config_bytes) = read_manifest(src, desc)?;
    let mut tile_data: HashMap<Digest, Vec<u8>> = HashMap::new();
    for l in &m.layers {
        if l.media_type != MEDIA_TYPE_SUMDB_TILE || l.size != l.size.min(TILE_BYTES) {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "checksum database manifest {}: layer {} is not a tile",
                    desc.digest, l.digest
                ),
            ));
        }
        if tile_data.contains_key(&l.digest) {
            continue;
        }
        let mut data = Vec::new();
        src.fetch_blob(l)?
            .take(TILE_BYTES + 1)
            .read_to_end(&mut data)
            .with_context(|| format!("reading checksum database tile {}", l.digest))?;
        if data.len() as u64 != l.size
            || Descriptor::for_bytes(&l.media_type, &data).digest != l.digest
        {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "checksum database manifest {}: tile {} does not match its digest and size",
                    desc.digest, l.digest
                ),
            ));
        }
        tile_data.insert(l.digest.clone(), data);
    }
    let listed: BTreeSet<&Digest> = config
        .databases
        .iter()
        .flat_map(|d| d.tiles.iter().map(|t| &t.digest))
        .collect();
    let layers: BTreeSet<&Digest> = m.layers.iter().map(|l| &l.digest).collect();
    if listed != layers {
        return Err(fail(
            Kind::Integrity,
            format!(
                "checksum database manifest {}: its config and its layers name different tiles",
                desc.digest
            ),
        ));
    }
    Ok(Carried {
        config,
        tiles: m.layers,
        tile_data,
        manifest: desc.clone(),
        manifest_bytes,
        config_desc: m.config,
        config_bytes,
    })
}

/// What [`prepare`] decided to write.
pub struct Prepared {
    database: String,
    /// GOMODCACHE and GOPATH: nothing below them is a link ocigo follows.
    gomodcache: PathBuf,
    gopath: PathBuf,
    /// (path below the cache dir, bytes), tiles first.
    writes: Vec<(String, Vec<u8>)>,
    /// The new `latest`, when the trusted head moves forward.
    latest: Option<String>,
    /// `latest` as it was when this was decided (`None`: absent or empty):
    /// [`install`] writes only if it is still so.
    seen_latest: Option<Vec<u8>>,
    /// The cached records (paths below the cache dir) proven in the final
    /// tree: when the head moves, [`install`] writes only if the cache
    /// still holds exactly these (a pull that leaves the head alone may
    /// add records proven in the old head only).
    seen_records: BTreeSet<String>,
    pub records: usize,
    pub tiles: usize,
    pub tree: u64,
    /// Why nothing is installed (GOSUMDB off, another database, or a
    /// bundle whose tree cannot be joined to the cache's).
    pub skipped: Option<String>,
    /// What to do about it, when there is something to do.
    pub hint: Option<String>,
}

fn conflict(db: &str, what: String, hint: &str) -> anyhow::Error {
    fail_hint(
        Kind::Conflict,
        format!("checksum database {db}: {what}"),
        hint.to_string(),
    )
}

/// Proves everything and decides what to write; writes nothing.
/// `entries`: the module versions the bundle holds (its modules and its
/// toolchains' module forms); every carried record must be the record of
/// one of them and agree with its hashes.
pub fn prepare(
    carried: &Carried,
    entries: &[SumInput],
    gomodcache: &Path,
    gopath: &Path,
) -> Result<Vec<Prepared>> {
    check_config(&carried.config)?;
    let settings = gosumdb()?;
    let mut out = Vec::new();
    for db in &carried.config.databases {
        let skip = |why: String| Prepared::skipped(&db.name, 0, why, None);
        let Some((verifier, _)) = &settings else {
            out.push(skip("GOSUMDB=off".into()));
            continue;
        };
        if verifier.name != db.name {
            out.push(skip(format!("GOSUMDB names {}", verifier.name)));
            continue;
        }
        // No link below GOMODCACHE and GOPATH on the way (a planted one is
        // a conflict before anything is read or written); `latest` read
        // under a shared lock, as the go command reads it: its writers
        // rewrite it in place under the exclusive one.
        real_dirs(gomodcache, &cache_rel(&db.name))?;
        real_dirs(gopath, &latest_rel(&db.name))?;
        let latest_path = gopath.join(latest_rel(&db.name)).join("latest");
        let latest = crate::fs::read_capped_locked(&latest_path, MAX_NOTE_BYTES)
            .map_err(|e| oversized_latest(&db.name, &latest_path, e))?;
        out.push(prepare_one(
            db,
            entries,
            verifier,
            &carried.tile_data,
            gomodcache,
            gopath,
            latest,
        )?);
    }
    Ok(out)
}

/// A `latest` too large to be a tree note is local state gone wrong, as an
/// unsigned one is: a conflict with the same way out ([`Kind::Integrity`]
/// is the size check's own kind; other errors pass through).
fn oversized_latest(db: &str, path: &Path, e: anyhow::Error) -> anyhow::Error {
    if crate::error::kind_of(&e) != Some(Kind::Integrity) {
        return e;
    }
    conflict(
        db,
        format!("{} does not hold a tree head: {e:#}", path.display()),
        "the go command refuses it too: remove it (it is re-created) or use another GOPATH (--gopath)",
    )
}

fn note_tree(note: &[u8], v: &Verifier, what: &str) -> Result<TreeHead> {
    sumdb::parse_tree(sumdb::open_note(note, v).with_context(|| what.to_string())?)
        .with_context(|| what.to_string())
}

fn prepare_one(
    db: &Database,
    entries: &[SumInput],
    v: &Verifier,
    tile_data: &HashMap<Digest, Vec<u8>>,
    gomodcache: &Path,
    gopath: &Path,
    old_latest: Option<Vec<u8>>,
) -> Result<Prepared> {
    let name = &db.name;
    let cache_dir = gomodcache.join(cache_rel(name));
    let latest_path = gopath.join(latest_rel(name)).join("latest");
    // No link anywhere below GOMODCACHE and GOPATH on the way: a planted
    // one is a conflict before anything is read or written.
    real_dirs(gomodcache, &cache_rel(name))?;
    real_dirs(gopath, &latest_rel(name))?;
    let bundle_tree = note_tree(db.tree.as_bytes(), v, "the bundle's signed tree")?;
    // The bundle's tiles, by path.
    let mut ours: HashMap<String, &Vec<u8>> = HashMap::new();
    for t in &db.tiles {
        if Tile::parse(&t.path).is_none() {
            return Err(fail(
                Kind::Integrity,
                format!("checksum database {name}: {:?} is not a tile path", t.path),
            ));
        }
        let data = tile_data.get(&t.digest).ok_or_else(|| {
            fail(
                Kind::Integrity,
                format!(
                    "checksum database {name}: tile {} is not among the manifest's layers",
                    t.digest
                ),
            )
        })?;
        ours.insert(t.path.clone(), data);
    }
    let read_ours = |p: &str| -> Result<Option<Vec<u8>>> {
        match ours.get(p) {
            Some(data) => Ok(Some(data.to_vec())),
            None => Ok(None),
        }
    };
    let read_cached = |p: &str| -> Result<Option<Vec<u8>>> {
        real_dirs(&cache_dir, Path::new(p).parent().unwrap_or(Path::new("")))?;
        crate::fs::read_capped(&cache_dir.join(p), TILE_BYTES)
    };
    // Tiles as the go command's cache will serve them once ours are
    // written: the exact tile, else the full one cut to width.
    let get = |t: &Tile| -> Result<Option<Vec<u8>>> {
        let exact = t.path();
        if let Some(d) = read_ours(&exact)?.or(read_cached(&exact)?) {
            return Ok(Some(d));
        }
        if t.w < 256 {
            let full = Tile { w: 256, ..*t }.path();
            if let Some(mut d) = read_ours(&full)?.or(read_cached(&full)?) {
                d.truncate(t.w as usize * tlog::HASH_SIZE);
                return Ok(Some(d));
            }
        }
        Ok(None)
    };
    // 1. The bundle's own records, in its own tree.
    let leaves: Vec<u64> = db.records.iter().map(|r| tlog::leaf_index(r.id)).collect();
    let own = |t: &Tile| read_ours(&t.path());
    match tlog::read_hashes(bundle_tree.n, &bundle_tree.hash, &leaves, &own)
        .with_context(|| format!("checking the bundle's data for checksum database {name}"))?
    {
        Ok(hashes) => {
            for (r, h) in db.records.iter().zip(hashes) {
                if sumdb::record_hash(r.text.as_bytes()) != h {
                    return Err(fail(
                        Kind::Integrity,
                        format!(
                            "checksum database {name}: the bundle's record for {}@{} is not in its signed tree",
                            r.path, r.version
                        ),
                    ));
                }
                check_record_text(r)?;
            }
        }
        Err(t) => {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "checksum database {name}: the bundle lacks tile {} that proves its records",
                    t.path()
                ),
            ));
        }
    }
    // Each record is named for a module version of the bundle, holds that
    // version's go.sum lines and nothing else, and agrees with its hashes:
    // a genuine record of one module cannot be filed under another's name.
    let by_name: HashMap<(&str, &str), &SumInput> = entries
        .iter()
        .map(|e| ((e.path.as_str(), e.version.as_str()), e))
        .collect();
    let mut seen = BTreeSet::new();
    for r in &db.records {
        check_record_text(r)?;
        let Some(e) = by_name.get(&(r.path.as_str(), r.version.as_str())) else {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "checksum database {name}: the bundle carries a record for {}@{}, which is not one of its modules",
                    r.path, r.version
                ),
            ));
        };
        if !seen.insert((r.path.as_str(), r.version.as_str())) {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "checksum database {name}: the bundle carries two records for {}@{}",
                    r.path, r.version
                ),
            ));
        }
        check_record_names(r)?;
        check_lines(&r.text, e)?;
    }
    // 1b. Every carried tile is a tile of the bundle's tree, of the width
    // that tree gives it, with the hashes the signed root proves: none is
    // written unchecked.
    check_carried_tiles(db, &bundle_tree, &own)?;
    // 2. The head the cache trusts now, if any (read by the caller: under
    // a shared lock, or under install's exclusive one).
    let old_latest = old_latest.filter(|l| !l.is_empty());
    let cache_tree = match &old_latest {
        Some(n) if !n.is_empty() => Some(
            note_tree(n, v, &format!("{}", latest_path.display())).map_err(|e| {
                conflict(
                    name,
                    format!("{} does not hold a tree head signed by GOSUMDB's key: {e:#}", latest_path.display()),
                    "the go command refuses it too: remove it (it is re-created) or use another GOPATH (--gopath)",
                )
            })?,
        ),
        _ => None,
    };
    let (final_tree, final_note, moves) = match cache_tree {
        Some(c) if c.n > bundle_tree.n => (c, None, false),
        Some(c) if c.n == bundle_tree.n => {
            if c.hash != bundle_tree.hash {
                return Err(fail(
                    Kind::Integrity,
                    format!(
                        "checksum database {name}: the cache's tree and the bundle's have the same size and different hashes (a forked log)"
                    ),
                ));
            }
            (c, None, false)
        }
        _ => (bundle_tree, Some(db.tree.clone()), true),
    };
    // No proof either way (a tile neither the bundle nor the cache holds):
    // the modules still install (their own hashes and the bundle's digests
    // vouch for them) and the checksum database data is left out, as with
    // GOSUMDB=off; the cache stays as it was. A proven fork is refused.
    let unjoined = |t: Tile, what: &str| {
        let cache_n = cache_tree.map(|c| c.n).unwrap_or(0);
        Prepared::skipped(
            name,
            cache_n,
            format!(
                "the module cache trusts a tree of {cache_n} records and this bundle carries one of {}; {what} needs tile {} of the tree of {} records, which neither holds",
                bundle_tree.n,
                t.path(),
                final_tree.n
            ),
            Some(format!(
                "the modules are installed and verified by their own hashes; the go command keeps checking new go.sum lines (go get, go mod tidy) against {name} online. \
                 To have the data offline: {}, or pull into another GOMODCACHE and GOPATH (--gomodcache, --gopath)",
                if moves {
                    "if the cache was filled from an earlier bundle, pack this one again with --sumdb-since naming that bundle"
                } else {
                    "pull a bundle packed later (pack carries the newest tree head the database serves), or pack this one again with --sumdb-since naming the bundle the cache was filled from"
                }
            )),
        )
    };
    // 3. The older of the two trees must be in the newer.
    let older = if moves { cache_tree } else { Some(bundle_tree) };
    if let Some(o) = older
        && o.n != final_tree.n
    {
        match tlog::tree_hash_in(o.n, final_tree.n, &final_tree.hash, &get)? {
            Ok(h) if h == o.hash => {}
            Ok(_) => {
                return Err(fail(
                    Kind::Integrity,
                    format!(
                        "checksum database {name}: the tree of {} records is not a prefix of the tree of {} records (a forked log)",
                        o.n, final_tree.n
                    ),
                ));
            }
            Err(t) => return Ok(unjoined(t, "proving the two trees consistent")),
        }
    }
    // 4. Every record, ours and those already cached, in the final tree.
    let mut writes: Vec<(String, Vec<u8>)> = Vec::new();
    let mut record_files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut check: Vec<(String, u64, Hash)> = Vec::new();
    for r in &db.records {
        let rel = format!(
            "lookup/{}@{}",
            crate::gomod::escape_path(&r.path)?,
            crate::gomod::escape_version(&r.version)?
        );
        let body = format!("{}\n{}\n{}", r.id, r.text, db.tree).into_bytes();
        real_dirs(&cache_dir, Path::new(&rel).parent().expect("lookup/…"))?;
        match crate::fs::read_capped(&cache_dir.join(&rel), MAX_RECORD_BYTES)? {
            Some(existing) if !existing.is_empty() => {
                let same = sumdb::parse_record(&existing)
                    .is_some_and(|(id, text, _)| id == r.id && text == r.text.as_bytes());
                if !same {
                    return Err(fail(
                        Kind::Integrity,
                        format!(
                            "checksum database {name}: the cached record for {}@{} ({}) differs from the bundle's",
                            r.path,
                            r.version,
                            cache_dir.join(&rel).display()
                        ),
                    ));
                }
            }
            _ => record_files.push((rel.clone(), body)),
        }
        check.push((
            format!("{}@{}", r.path, r.version),
            r.id,
            sumdb::record_hash(r.text.as_bytes()),
        ));
    }
    let mut notes_seen: HashMap<Vec<u8>, ()> = HashMap::new();
    let mut seen_records = BTreeSet::new();
    for (rel, body) in cached_records(&cache_dir)? {
        seen_records.insert(rel.clone());
        let (id, text, note) = sumdb::parse_record(&body).ok_or_else(|| {
            conflict(
                name,
                format!(
                    "{} is not a checksum database record",
                    cache_dir.join(&rel).display()
                ),
                "the go command refuses it too: remove it",
            )
        })?;
        if !notes_seen.contains_key(note) {
            let t = note_tree(note, v, &rel)?;
            if t.n > final_tree.n {
                return Err(conflict(
                    name,
                    format!(
                        "{} was proven in a tree newer than the one the cache trusts",
                        rel
                    ),
                    "remove it, or pull the bundle it came from again",
                ));
            }
            if t.n != final_tree.n || t.hash != final_tree.hash {
                match tlog::tree_hash_in(t.n, final_tree.n, &final_tree.hash, &get)? {
                    Ok(h) if h == t.hash => {}
                    Ok(_) => {
                        return Err(fail(
                            Kind::Integrity,
                            format!(
                                "checksum database {name}: {rel} carries a tree that is not a prefix of the trusted one"
                            ),
                        ));
                    }
                    Err(t) => return Ok(unjoined(t, &format!("proving the cached {rel}"))),
                }
            }
            notes_seen.insert(note.to_vec(), ());
        }
        check.push((rel, id, sumdb::record_hash(text)));
    }
    for (what, id, hash) in &check {
        if *id >= final_tree.n {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "checksum database {name}: record {id} ({what}) is outside the trusted tree"
                ),
            ));
        }
        match tlog::read_hashes(
            final_tree.n,
            &final_tree.hash,
            &[tlog::leaf_index(*id)],
            &get,
        )? {
            Ok(h) if h[0] == *hash => {}
            Ok(_) => {
                return Err(fail(
                    Kind::Integrity,
                    format!(
                        "checksum database {name}: the record of {what} is not in the trusted tree"
                    ),
                ));
            }
            Err(t) => return Ok(unjoined(t, &format!("proving {what}"))),
        }
    }
    // 5. Tiles the cache lacks (those it has must be the same bytes).
    let mut tiles = 0;
    for t in &db.tiles {
        let data = read_ours(&t.path)?.ok_or_else(|| {
            fail(
                Kind::Integrity,
                format!("tile blob {} is missing from the store", t.digest),
            )
        })?;
        let width = Tile::parse(&t.path).expect("checked above").w;
        if data.len() as u64 != width * tlog::HASH_SIZE as u64 {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "checksum database {name}: tile {} is not {width} hashes long",
                    t.path
                ),
            ));
        }
        match read_cached(&t.path)? {
            Some(c) if c == data => {}
            Some(c) if !c.is_empty() => {
                return Err(fail(
                    Kind::Integrity,
                    format!(
                        "checksum database {name}: the cached {} differs from the bundle's (both cannot be right)",
                        t.path
                    ),
                ));
            }
            _ => {
                writes.push((t.path.clone(), data));
                tiles += 1;
            }
        }
    }
    let records = record_files.len();
    writes.extend(record_files);
    for (rel, _) in &writes {
        real_dirs(
            &cache_dir,
            Path::new(rel).parent().expect("tile or lookup path"),
        )?;
    }
    Ok(Prepared {
        database: name.clone(),
        gomodcache: gomodcache.to_path_buf(),
        gopath: gopath.to_path_buf(),
        writes,
        latest: final_note.filter(|_| moves),
        seen_latest: old_latest,
        seen_records,
        records,
        tiles,
        tree: final_tree.n,
        skipped: None,
        hint: None,
    })
}

/// The text of a record carried in a bundle: go.sum lines only.
fn check_record_text(r: &Record) -> Result<()> {
    let ok = r.text.ends_with('\n')
        && !r.text.contains("\n\n")
        && r.text
            .bytes()
            .all(|b| b == b'\n' || (0x20..0x7f).contains(&b));
    if !ok {
        return Err(fail(
            Kind::Integrity,
            format!(
                "checksum database: the record for {}@{} is malformed",
                r.path, r.version
            ),
        ));
    }
    Ok(())
}

/// Proves every tile `db` carries in its signed tree `tree` (`own` reads
/// the bundle's tiles): each must be a tile the tree holds, exactly as
/// wide as the tree makes it, and read back by a proof of all its hashes.
fn check_carried_tiles(db: &Database, tree: &TreeHead, own: &tlog::GetTile<'_>) -> Result<()> {
    let name = &db.name;
    let mut indexes = Vec::new();
    let mut carried = Vec::new();
    for t in &db.tiles {
        let tile = Tile::parse(&t.path).expect("checked above");
        // The hashes of a level-L tile are those at hash level 8L.
        let level = tile.l * tlog::HEIGHT;
        let end = (tile.n.checked_mul(256).and_then(|x| x.checked_add(tile.w)))
            .and_then(|e| e.checked_shl(level).filter(|s| s >> level == e));
        if end.is_none_or(|e| e > tree.n) || t.size != tile.w * tlog::HASH_SIZE as u64 {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "checksum database {name}: the bundle carries {} ({} bytes), which is not a tile of its signed tree of {} records",
                    t.path, t.size, tree.n
                ),
            ));
        }
        indexes.extend((0..tile.w).map(|i| tlog::stored_hash_index(level, tile.n * 256 + i)));
        carried.push((tile, &t.path));
    }
    if indexes.is_empty() {
        return Ok(());
    }
    let plan: BTreeSet<Tile> = tlog::plan(tree.n, &indexes)?.into_iter().collect();
    for (tile, path) in &carried {
        if !plan.contains(tile) {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "checksum database {name}: the bundle carries {path}, which its signed tree of {} records does not have at that width",
                    tree.n
                ),
            ));
        }
    }
    match tlog::read_hashes(tree.n, &tree.hash, &indexes, own).with_context(|| {
        format!("checking the tiles the bundle carries for checksum database {name}")
    })? {
        Ok(_) => Ok(()),
        Err(t) => Err(fail(
            Kind::Integrity,
            format!(
                "checksum database {name}: the bundle lacks tile {} that proves the tiles it carries",
                t.path()
            ),
        )),
    }
}

/// The database's cache below GOMODCACHE.
fn cache_rel(db: &str) -> PathBuf {
    Path::new("cache/download/sumdb").join(db)
}

/// The directory of the trusted head below GOPATH.
fn latest_rel(db: &str) -> PathBuf {
    Path::new("pkg/sumdb").join(db)
}

/// Each directory from `root` down `rel` that exists is a real directory
/// (not a link): [`Kind::Conflict`] otherwise. `root` itself may be a link.
fn real_dirs(root: &Path, rel: &Path) -> Result<()> {
    let mut d = root.to_path_buf();
    for c in rel.components() {
        d.push(c);
        if !crate::fs::dir_exists(&d)? {
            break;
        }
    }
    Ok(())
}

/// Every line of a carried record is a go.sum line of the module version
/// it is filed under (`path version h1:…` or `path version/go.mod h1:…`).
fn check_record_names(r: &Record) -> Result<()> {
    let gomod = format!("{}/go.mod", r.version);
    for l in r.text.lines() {
        let mut f = l.split(' ');
        let ok = match (f.next(), f.next(), f.next(), f.next()) {
            (Some(p), Some(ver), Some(h), None) => {
                p == r.path && (ver == r.version || ver == gomod) && h.starts_with("h1:")
            }
            _ => false,
        };
        if !ok {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "checksum database: the record filed under {}@{} holds a line for another module version: {:?}",
                    r.path, r.version, l
                ),
            ));
        }
    }
    Ok(())
}

/// Every record file below `<cache>/lookup`, walked without following
/// links, bounded.
fn cached_records(cache_dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut stack = vec![(cache_dir.join("lookup"), "lookup".to_string(), 0usize)];
    while let Some((dir, rel, depth)) = stack.pop() {
        if !crate::fs::dir_exists(&dir)? {
            continue;
        }
        for (n, ft) in crate::fs::list_dir(&dir)? {
            let Some(n) = n.to_str() else { continue };
            let (p, r) = (dir.join(n), format!("{rel}/{n}"));
            if ft.is_dir() && depth < 64 {
                stack.push((p, r, depth + 1));
            } else if ft.is_file() && n.contains('@') {
                if let Some(b) = crate::fs::read_capped(&p, MAX_RECORD_BYTES)?
                    && !b.is_empty()
                {
                    out.push((r, b));
                }
                if out.len() > MAX_CACHED_RECORDS {
                    return Err(anyhow::anyhow!(
                        "{} holds more than {MAX_CACHED_RECORDS} records",
                        cache_dir.display()
                    ));
                }
            }
        }
    }
    Ok(out)
}

impl Prepared {
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Nothing to write for `database`, and why; `tree`: the tree the
    /// cache trusts (0 if none or not read).
    fn skipped(database: &str, tree: u64, why: String, hint: Option<String>) -> Prepared {
        Prepared {
            database: database.to_string(),
            gomodcache: PathBuf::new(),
            gopath: PathBuf::new(),
            writes: Vec::new(),
            latest: None,
            seen_latest: None,
            seen_records: BTreeSet::new(),
            records: 0,
            tiles: 0,
            tree,
            skipped: Some(why),
            hint,
        }
    }
}

/// Writes what [`prepare`] decided: tiles, records, then the trusted head.
/// As the go command does: when the head moves, under the exclusive lock
/// of `latest` (its `lockedfile.Edit`); when it does not, under a shared
/// lock of the existing file, creating and opening nothing for writing
/// below GOPATH (its `lockedfile.Read`); with nothing to write, no lock.
/// If `latest` changed since [`prepare`] read it (a concurrent pull, or
/// the go command), or, when the head moves, the cached records did,
/// everything is decided again under the lock from what is there now, so
/// the head never moves back and no record is left that the new head
/// cannot prove. `carried` and `entries` are those given to [`prepare`].
/// Returns what was done.
pub fn install(p: Prepared, carried: &Carried, entries: &[SumInput]) -> Result<Prepared> {
    let mut p = p;
    let latest_path = p.gopath.join(latest_rel(&p.database)).join("latest");
    let cache_dir = p.gomodcache.join(cache_rel(&p.database));
    // Each round decides again from a head that moved forward; the head
    // never moves back, so this ends; the bound only guards against a
    // writer that keeps rewriting `latest`.
    for _ in 0..16 {
        if p.skipped.is_some() || (p.writes.is_empty() && p.latest.is_none()) {
            return Ok(p);
        }
        let moves = p.latest.is_some();
        let mut created = Vec::new();
        let lock = if moves {
            crate::fs::ensure_dir(&p.gopath, &latest_rel(&p.database), &mut created)?;
            Some(
                crate::fs::lock(
                    &latest_path,
                    crate::fs::LockMode::Exclusive,
                    crate::fs::Wait::Block,
                )?
                .expect("a blocking lock is taken"),
            )
        } else {
            crate::fs::lock_existing_shared(&latest_path)?
        };
        let now = match &lock {
            Some(l) => Some(
                l.read_capped(&latest_path, MAX_NOTE_BYTES)
                    .map_err(|e| oversized_latest(&p.database, &latest_path, e))?,
            ),
            None => None,
        }
        .filter(|l| !l.is_empty());
        let same = now == p.seen_latest
            && (!moves
                || cached_records(&cache_dir)?
                    .into_iter()
                    .map(|(rel, _)| rel)
                    .collect::<BTreeSet<_>>()
                    == p.seen_records);
        if !same {
            let db = carried
                .config
                .databases
                .iter()
                .find(|d| d.name == p.database)
                .expect("prepared from this config");
            let (verifier, _) = gosumdb()?.expect("prepared with GOSUMDB on");
            let again = prepare_one(
                db,
                entries,
                &verifier,
                &carried.tile_data,
                &p.gomodcache,
                &p.gopath,
                now,
            )
            .with_context(|| {
                format!(
                    "the checksum database cache of {} changed during the pull (another pull or the go command); checked again",
                    p.database
                )
            })?;
            p = again;
            // Under a shared lock, a decision to move the head is taken
            // again under the exclusive one.
            if p.latest.is_some() && !moves {
                continue;
            }
            if p.skipped.is_some() || (p.writes.is_empty() && p.latest.is_none()) {
                return Ok(p);
            }
        }
        for (rel, data) in &p.writes {
            let rel = Path::new(rel);
            let parent = rel.parent().expect("tile or lookup path");
            let dir = crate::fs::ensure_dir(
                &p.gomodcache,
                &cache_rel(&p.database).join(parent),
                &mut created,
            )?;
            let target = dir.join(rel.file_name().expect("a file name"));
            crate::fs::write_atomic(
                &target,
                ".ocigo-tmp-",
                data,
                0o644,
                crate::fs::Durability::Relaxed,
            )
            .with_context(|| format!("writing the checksum database cache of {}", p.database))?;
        }
        if let (Some(note), Some(lock)) = (&p.latest, &lock) {
            lock.rewrite(&latest_path, note.as_bytes(), crate::fs::Durability::Synced)?;
        }
        drop(lock);
        return Ok(p);
    }
    Err(fail(
        Kind::Conflict,
        format!(
            "{} kept changing during the pull; nothing more was written",
            latest_path.display()
        ),
    ))
}

/// Stores the gathered tiles and config in `store` and pushes the
/// manifest; returns its descriptor (for the bundle's index) and the bytes
/// of config and tiles.
pub fn store_gathered(store: &crate::store::Layout, g: &Gathered) -> Result<(Descriptor, u64)> {
    let config = crate::oci::to_canonical_json(&g.config);
    let config_desc = Descriptor::for_bytes(MEDIA_TYPE_SUMDB_CONFIG, &config);
    if !store.blob_exists(&config_desc.digest)? {
        store.push_blob(&config_desc, &mut &config[..])?;
    }
    let mut bytes = config.len() as u64;
    let mut layers = Vec::new();
    for (desc, data) in &g.tiles {
        if !store.blob_exists(&desc.digest)? {
            store.push_blob(desc, &mut &data[..])?;
        }
        bytes += desc.size;
        layers.push(desc.clone());
    }
    let manifest = crate::oci::Manifest {
        schema_version: 2,
        media_type: Some(crate::oci::MEDIA_TYPE_MANIFEST.to_string()),
        artifact_type: Some(ARTIFACT_TYPE_SUMDB.to_string()),
        config: config_desc,
        layers,
        subject: None,
        annotations: BTreeMap::new(),
    };
    let manifest = crate::oci::to_canonical_json(&manifest);
    let mut desc = store.push_manifest(crate::oci::MEDIA_TYPE_MANIFEST, &manifest, None)?;
    desc.artifact_type = Some(ARTIFACT_TYPE_SUMDB.to_string());
    desc.annotations.insert(
        crate::artifact::ANNOTATION_ROLE.to_string(),
        ROLE_SUMDB.to_string(),
    );
    Ok((desc, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(path: &str, version: &str, text: &str) -> Record {
        Record {
            path: path.into(),
            version: version.into(),
            id: 0,
            text: text.into(),
        }
    }

    #[test]
    fn a_record_holds_only_the_lines_of_the_version_it_is_filed_under() {
        let text = "example.com/a v1.0.0 h1:Zm9v\nexample.com/a v1.0.0/go.mod h1:YmFy\n";
        check_record_names(&record("example.com/a", "v1.0.0", text)).unwrap();
        for (path, version) in [
            ("example.com/victim", "v1.0.0"),
            ("example.com/a", "v1.0.1"),
        ] {
            let e = check_record_names(&record(path, version, text)).unwrap_err();
            assert_eq!(crate::error::kind_of(&e), Some(Kind::Integrity));
            assert!(format!("{e:#}").contains("another module version"), "{e:#}");
        }
        let mixed = "example.com/a v1.0.0 h1:Zm9v\nexample.com/b v1.0.0/go.mod h1:YmFy\n";
        assert!(check_record_names(&record("example.com/a", "v1.0.0", mixed)).is_err());
    }

    #[test]
    fn a_database_listed_twice_is_refused() {
        let db = Database {
            name: "sum.golang.org".into(),
            key: String::new(),
            tree: String::new(),
            records: Vec::new(),
            tiles: Vec::new(),
        };
        let mut config = SumdbConfig {
            format_version: FORMAT_VERSION,
            databases: vec![db.clone()],
            private: Vec::new(),
        };
        check_config(&config).unwrap();
        for bad in [
            "",
            "sum.golang.org\n  export GOFLAGS=-insecure",
            "sum golang.org",
            "sum.golang.org+033de0ae",
            "sum.golang.org\u{1b}[2J",
            "sum.golang.org\u{85}",
        ] {
            let mut c = config.clone();
            c.databases[0].name = bad.into();
            let e = check_config(&c).unwrap_err();
            assert_eq!(crate::error::kind_of(&e), Some(Kind::Integrity), "{bad:?}");
            let msg = format!("{e:#}");
            assert!(msg.contains("not a database name"), "{msg}");
            assert!(!msg.chars().any(|c| c.is_control()), "{msg:?}");
        }
        config.databases.push(db);
        let e = check_config(&config).unwrap_err();
        assert_eq!(crate::error::kind_of(&e), Some(Kind::Integrity));
        assert!(format!("{e:#}").contains("listed more than once"), "{e:#}");
    }
}
