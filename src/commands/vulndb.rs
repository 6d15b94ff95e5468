//! `ocigo pack vulndb DIR -o DEST` and `ocigo pull REF --vulndb DIR`: the
//! Go vulnerability database as an OCI artifact of its own, so it travels
//! into the air gap (and is signed) like a bundle, and lands as the
//! published file layout that `govulncheck -db file:///DIR` and `ocigo
//! policy check` read.
//!
//! Format v1 (`schemas/vulndb-config.v1.schema.json`): an OCI image
//! manifest, `artifactType: application/vnd.ocigo.vulndb.v1`; its config
//! (`application/vnd.ocigo.vulndb.config.v1+json`) holds `formatVersion`,
//! `modified` (the database's time), `records`, `files` and `tarBytes`;
//! one layer (`application/vnd.ocigo.vulndb.layer.v1.tar+zstd`), a tar of
//! the layout (`index/db.json`, `index/modules.json`, `index/vulns.json`,
//! `ID/<ID>.json`), names sorted, mode 0644, uid/gid 0, mtime 0: the same
//! records give the same digest.
//!
//! Pull checks everything before it writes: the layer's digest, the tar's
//! declared length (zstd bombs stop there), only regular files with those
//! names, each bounded, no name twice; and that the indexes are exactly
//! what the records give (an index cannot hide a record). It writes into a
//! temporary directory beside DIR and renames it into place; a DIR that
//! holds anything but an earlier database (exactly the directories and
//! files a pull writes, no links) is refused (exit 5) and left as it was.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::sign::{SignWith, describe_signature};
use super::{Global, Outcome, human_bytes};
use crate::error::{Kind, fail, fail_hint};
use crate::oci::{self, Descriptor, Digest, Manifest, Reference, Repository};
use crate::policy::vulndb;

pub const ARTIFACT_TYPE_VULNDB: &str = "application/vnd.ocigo.vulndb.v1";
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.ocigo.vulndb.config.v1+json";
pub const MEDIA_TYPE_LAYER: &str = "application/vnd.ocigo.vulndb.layer.v1.tar+zstd";
const FORMAT_VERSION: u32 = 1;
const ZSTD_LEVEL: i32 = 9;
/// The compressed layer and the tar are at most this big (the full
/// database is ~30 MB of JSON); the tar is read as a stream, never
/// buffered whole, so a claim is only a ceiling, not an allocation.
const MAX_LAYER_BYTES: u64 = 1 << 30;
const MAX_TAR_BYTES: u64 = 512 << 20;
const MAX_CONFIG_BYTES: u64 = 64 << 10;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VulndbConfig {
    pub format_version: u32,
    pub modified: String,
    pub records: u64,
    pub files: u64,
    pub tar_bytes: u64,
}

#[derive(Serialize)]
pub struct PackVulndbReport {
    pub reference: String,
    pub digest: String,
    pub modified: String,
    pub records: u64,
    pub layer_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<super::SignReport>,
}

fn tar_of(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, bytes) in files {
        let mut h = tar::Header::new_ustar();
        h.set_path(name)?;
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, &bytes[..])?;
    }
    Ok(b.into_inner()?)
}

/// `ocigo pack vulndb DIR -o DEST [--sign KEY]`.
pub fn pack_vulndb(
    g: &Global,
    source: &Path,
    dest: &str,
    modified: Option<&str>,
    sign: Option<&SignWith>,
) -> Result<Outcome> {
    let dest = Reference::parse(dest)?;
    let floor = match modified {
        Some(m) => Some(vulndb::parse_time(m).ok_or_else(|| {
            fail(
                Kind::Usage,
                format!("--modified {m:?} is not an RFC 3339 time (such as 2026-11-05T23:49:57Z)"),
            )
        })?),
        None => None,
    };
    let signer = sign.map(SignWith::load).transpose()?;
    let records = vulndb::read_records(source)?;
    let (modified, files) = vulndb::build_layout(&records, floor)?;
    let tar = tar_of(&files)?;
    let layer = zstd::encode_all(&tar[..], ZSTD_LEVEL).context("compressing the database")?;
    let config = VulndbConfig {
        format_version: FORMAT_VERSION,
        modified: modified.clone(),
        records: records.len() as u64,
        files: files.len() as u64,
        tar_bytes: tar.len() as u64,
    };
    let config_bytes = serde_json::to_vec(&config)?;
    let config_desc = Descriptor::for_bytes(MEDIA_TYPE_CONFIG, &config_bytes);
    let layer_desc = Descriptor::for_bytes(MEDIA_TYPE_LAYER, &layer);
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(oci::MEDIA_TYPE_MANIFEST.into()),
        artifact_type: Some(ARTIFACT_TYPE_VULNDB.into()),
        config: config_desc.clone(),
        layers: vec![layer_desc.clone()],
        subject: None,
        annotations: Default::default(),
    };
    let manifest_bytes = oci::to_canonical_json(&manifest);
    let store = g.open_store()?;
    let _in_use = store.use_lock()?;
    store.push_blob(&config_desc, &mut &config_bytes[..])?;
    store.push_blob(&layer_desc, &mut &layer[..])?;
    let top = store.push_manifest(
        oci::MEDIA_TYPE_MANIFEST,
        &manifest_bytes,
        Some(&dest.to_string()),
    )?;
    let super::Published { signature, .. } =
        super::publish(g, &store, &top, &dest, signer.as_ref(), &g.progress())?;
    let mut human = format!(
        "packed the vulnerability database of {modified}: {} records, {} compressed\ninto {dest}\ndigest: {}\n",
        records.len(),
        human_bytes(layer.len() as u64),
        top.digest
    );
    if let Some(s) = &signature {
        human.push_str(&describe_signature(s));
    }
    let report = PackVulndbReport {
        reference: dest.to_string(),
        digest: top.digest.to_string(),
        modified,
        records: records.len() as u64,
        layer_bytes: layer.len() as u64,
        signature,
    };
    Ok(Outcome::ok(human, &report))
}

#[derive(Serialize)]
pub struct PullVulndbReport {
    pub source: String,
    pub digest: String,
    pub directory: String,
    pub modified: String,
    pub records: u64,
    /// `govulncheck -db` value for this directory.
    pub govulncheck_db: String,
}

fn read_bounded(r: &mut dyn Read, limit: u64, what: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    r.take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| oci::classify_io(e, || format!("reading {what}")))?;
    if out.len() as u64 > limit {
        return Err(fail(
            Kind::Integrity,
            format!("{what} is over {limit} bytes"),
        ));
    }
    Ok(out)
}

/// The ID of a record file name, `ID/<ID>.json` (not yet checked).
fn record_id(name: &str) -> Option<&str> {
    name.strip_prefix("ID/")?.strip_suffix(".json")
}

/// The size limit of an entry the layout may hold: the three indexes, and
/// `ID/<ID>.json` for an ID [`vulndb::is_id`] accepts (the rule `policy
/// check` reads the database by).
fn allowed(name: &str) -> Option<u64> {
    match name {
        "index/db.json" | "index/modules.json" | "index/vulns.json" => {
            Some(vulndb::MAX_INDEX_BYTES)
        }
        _ => vulndb::is_id(record_id(name)?).then_some(vulndb::MAX_RECORD_BYTES),
    }
}

/// A name from the artifact, for one line of a message: control
/// characters escaped, and shortened if long.
fn shown(s: &str) -> String {
    const MAX: usize = 100;
    if s.len() <= MAX {
        return format!("\"{}\"", crate::text::field(s));
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "\"{}...\" ({} bytes)",
        crate::text::field(&s[..end]),
        s.len()
    )
}

/// Counts the bytes read through it.
struct Counted<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// Reads the layer's files from the decompressed stream `tar`, checking
/// names, types and sizes, and that the tar is exactly `tar_bytes` long.
/// The stream is never read past `tar_bytes + 1` bytes, and only the
/// entries' contents are kept.
fn untar(tar: impl Read, tar_bytes: u64) -> Result<vulndb::Files> {
    let bad = |m: String| {
        fail(
            Kind::Integrity,
            format!("vulnerability database layer: {m}"),
        )
    };
    let mut counted = Counted {
        inner: tar.take(tar_bytes + 1),
        read: 0,
    };
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    {
        let mut archive = tar::Archive::new(&mut counted);
        let mut seen = std::collections::HashSet::new();
        for entry in archive.entries().map_err(|e| bad(e.to_string()))? {
            let mut entry = entry.map_err(|e| bad(e.to_string()))?;
            let name = String::from_utf8(entry.path_bytes().into_owned())
                .map_err(|_| bad("a name that is not UTF-8".into()))?;
            if entry.header().entry_type() != tar::EntryType::Regular {
                return Err(bad(format!("{} is not a regular file", shown(&name))));
            }
            let limit = allowed(&name).ok_or_else(|| match record_id(&name) {
                Some(id) => bad(format!(
                    "record ID {} is not an OSV ID (1 to 128 ASCII letters, digits, '-', '_' and '.')",
                    shown(id)
                )),
                None => bad(format!("unexpected entry {}", shown(&name))),
            })?;
            if !seen.insert(name.clone()) {
                return Err(bad(format!("{} appears twice", shown(&name))));
            }
            let bytes = read_bounded(&mut entry, limit, &name)?;
            files.push((name, bytes));
            if files.len() > vulndb::MAX_RECORDS + 3 {
                return Err(bad("too many entries".into()));
            }
        }
    }
    // The end-of-archive blocks and any padding count towards the length.
    std::io::copy(&mut counted, &mut std::io::sink())
        .map_err(|e| bad(format!("it does not decompress: {e}")))?;
    if counted.read != tar_bytes {
        return Err(bad(format!(
            "it holds {}{} bytes of tar, the config says {tar_bytes}",
            if counted.read > tar_bytes {
                "more than "
            } else {
                ""
            },
            counted.read.min(tar_bytes)
        )));
    }
    Ok(files)
}

/// Fetches and checks a vulnerability database artifact and writes its
/// layout into `dir`.
pub fn pull_vulndb(
    src_ref: &Reference,
    repo: &dyn Repository,
    top: &Descriptor,
    dir: &Path,
) -> Result<Outcome> {
    let fetched = repo.fetch_manifest(top)?;
    let not_db = || {
        fail_hint(
            Kind::Usage,
            format!("{src_ref} is not a vulnerability database artifact"),
            "--vulndb is for artifacts made by `ocigo pack vulndb`",
        )
    };
    if fetched.is_index() {
        return Err(not_db());
    }
    let manifest = fetched.manifest()?;
    if manifest.artifact_type.as_deref() != Some(ARTIFACT_TYPE_VULNDB) {
        return Err(not_db());
    }
    let integrity = |m: String| fail(Kind::Integrity, format!("{src_ref}: {m}"));
    if manifest.config.media_type != MEDIA_TYPE_CONFIG
        || manifest.config.size > MAX_CONFIG_BYTES
        || manifest.layers.len() != 1
        || manifest.layers[0].media_type != MEDIA_TYPE_LAYER
        || manifest.layers[0].size > MAX_LAYER_BYTES
    {
        return Err(integrity(
            "the manifest is not a vulnerability database v1 (config, one tar+zstd layer, sizes)"
                .into(),
        ));
    }
    let config_bytes = read_bounded(
        &mut *repo.fetch_blob(&manifest.config)?,
        MAX_CONFIG_BYTES,
        "the config",
    )?;
    if Digest::of_bytes(&config_bytes) != manifest.config.digest {
        return Err(integrity("the config does not match its digest".into()));
    }
    let config: VulndbConfig = serde_json::from_slice(&config_bytes)
        .map_err(|e| integrity(format!("the config is not valid: {e}")))?;
    if config.format_version != FORMAT_VERSION {
        return Err(integrity(format!(
            "format version {} (this ocigo reads {FORMAT_VERSION})",
            config.format_version
        )));
    }
    if config.tar_bytes > MAX_TAR_BYTES {
        return Err(integrity(format!(
            "the config says the database is a tar of {} bytes; this ocigo reads at most {MAX_TAR_BYTES} (the full Go database is about 30 MB)",
            config.tar_bytes
        )));
    }
    let layer_desc = &manifest.layers[0];
    let layer = read_bounded(
        &mut *repo.fetch_blob(layer_desc)?,
        layer_desc.size,
        "the database layer",
    )?;
    if layer.len() as u64 != layer_desc.size || Digest::of_bytes(&layer) != layer_desc.digest {
        return Err(integrity(
            "the database layer does not match its digest".into(),
        ));
    }
    let decoder = zstd::Decoder::new(&layer[..]).context("reading the database layer")?;
    let files = untar(decoder, config.tar_bytes)?;
    // The indexes must be exactly what the records give.
    let mut records = Vec::new();
    for (name, bytes) in files.iter().filter(|(n, _)| n.starts_with("ID/")) {
        let entry: vulndb::OsvEntry = serde_json::from_slice(bytes)
            .map_err(|e| integrity(format!("{name} is not an OSV record: {e}")))?;
        if format!("ID/{}.json", entry.id) != *name || vulndb::parse_time(&entry.modified).is_none()
        {
            return Err(integrity(format!(
                "{name} does not hold a record of that ID"
            )));
        }
        records.push(vulndb::Record {
            bytes: bytes.clone(),
            entry,
        });
    }
    // The config's time may be later than every record's (`--modified`).
    let (modified, expected) =
        vulndb::build_layout(&records, vulndb::parse_time(&config.modified))?;
    if expected != files || modified != config.modified || records.len() as u64 != config.records {
        return Err(integrity(
            "the database's indexes or config do not match its records".into(),
        ));
    }
    install(dir, &files)?;
    let dir_abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let report = PullVulndbReport {
        source: src_ref.to_string(),
        digest: top.digest.to_string(),
        directory: dir_abs.display().to_string(),
        modified: modified.clone(),
        records: records.len() as u64,
        govulncheck_db: format!("file://{}", dir_abs.display()),
    };
    let human = format!(
        "wrote the vulnerability database of {modified} ({} records) to {}\nuse it with: govulncheck -db {}\n",
        report.records, report.directory, report.govulncheck_db
    );
    Ok(Outcome::ok(human, &report))
}

/// Whether `dir` holds exactly what a pull writes, so replacing it loses
/// nothing of the user's: only `index/` and `ID/`, real directories; in
/// them only regular files named as [`allowed`] accepts; `index/db.json`
/// among them. Anything else (another file, a link, a subdirectory) is
/// not ours.
fn is_earlier_database(dir: &Path) -> Result<bool> {
    let mut has_db = false;
    for (name, ft) in crate::fs::list_dir(dir)? {
        let Some(name) = name.to_str() else {
            return Ok(false);
        };
        if !ft.is_dir() || !(name == "index" || name == "ID") {
            return Ok(false);
        }
        for (child, ft) in crate::fs::list_dir(&dir.join(name))? {
            let Some(child) = child.to_str() else {
                return Ok(false);
            };
            let rel = format!("{name}/{child}");
            if !ft.is_file() || allowed(&rel).is_none() {
                return Ok(false);
            }
            has_db |= rel == "index/db.json";
        }
    }
    Ok(has_db)
}

/// Writes the files into a temporary directory beside `dir`, then puts it
/// in place of `dir` (absent, empty, or an earlier database).
fn install(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<()> {
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = dir
        .file_name()
        .ok_or_else(|| {
            fail(
                Kind::Usage,
                format!("--vulndb {}: name a directory", dir.display()),
            )
        })?
        .to_string_lossy()
        .into_owned();
    let replace = if crate::fs::dir_exists(dir)? {
        let entries = crate::fs::list_dir(dir)?;
        if entries.is_empty() {
            Some(false)
        } else if is_earlier_database(dir)? {
            Some(true)
        } else {
            return Err(fail_hint(
                Kind::Conflict,
                format!(
                    "{} exists and is not a vulnerability database written by ocigo (it holds other files); not overwriting it",
                    dir.display()
                ),
                "name a new or empty directory",
            ));
        }
    } else {
        if crate::fs::lstat(dir)?.is_some() {
            return Err(fail(
                Kind::Conflict,
                format!("{} exists and is not a directory", dir.display()),
            ));
        }
        None
    };
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let tmp = crate::fs::create_temp_dir(&parent, &format!(".{name}.ocigo-tmp-"))?;
    let written = (|| -> Result<()> {
        for sub in ["index", "ID"] {
            std::fs::create_dir(tmp.join(sub))
                .with_context(|| format!("creating {}", tmp.join(sub).display()))?;
        }
        for (rel, bytes) in files {
            let p = tmp.join(rel);
            let mut f = crate::fs::create_new(&p, 0o644)
                .with_context(|| format!("creating {}", p.display()))?;
            std::io::Write::write_all(&mut f, bytes)
                .with_context(|| format!("writing {}", p.display()))?;
        }
        crate::fs::chmod_dir(&tmp, 0o755)?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = crate::fs::remove_tree(&tmp);
        return Err(e);
    }
    match replace {
        None => crate::fs::rename(&tmp, dir)?,
        Some(false) => {
            crate::fs::remove_empty_dir(dir)?;
            crate::fs::rename(&tmp, dir)?;
        }
        Some(true) => {
            let old = crate::fs::create_temp_dir(&parent, &format!(".{name}.ocigo-old-"))?;
            crate::fs::remove_empty_dir(&old)?;
            crate::fs::rename(dir, &old)?;
            if let Err(e) = crate::fs::rename(&tmp, dir) {
                let _ = crate::fs::rename(&old, dir);
                let _ = crate::fs::remove_tree(&tmp);
                return Err(e);
            }
            crate::fs::remove_tree(&old)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(e: &anyhow::Error) -> Option<Kind> {
        crate::error::kind_of(e)
    }

    #[test]
    fn untar_holds_the_tar_to_its_declared_length() {
        let tar = tar_of(&[("index/db.json".into(), b"{}".to_vec())]).unwrap();
        let n = tar.len() as u64;
        let files = untar(&tar[..], n).unwrap();
        assert_eq!(files, vec![("index/db.json".to_string(), b"{}".to_vec())]);
        for declared in [n - 512, n + 1, 0] {
            let e = untar(&tar[..], declared).unwrap_err();
            assert_eq!(kind(&e), Some(Kind::Integrity), "{declared}: {e:#}");
        }
        // A long stream of zeros is read no further than declared + 1.
        let mut zeros = Counted {
            inner: std::io::repeat(0).take(64 << 20),
            read: 0,
        };
        let e = untar(&mut zeros, 4096).unwrap_err();
        assert_eq!(kind(&e), Some(Kind::Integrity), "{e:#}");
        assert_eq!(zeros.read, 4097);
    }

    #[test]
    fn record_names_follow_the_policy_id_rule() {
        assert!(allowed("ID/GO-2024-0001.json").is_some());
        assert!(allowed(&format!("ID/{}.json", "A".repeat(128))).is_some());
        assert!(allowed(&format!("ID/{}.json", "A".repeat(129))).is_none());
        assert!(allowed("ID/.hidden.json").is_none());
        assert!(allowed("ID/a b.json").is_none());
        assert!(allowed("index/other.json").is_none());
        let shown_id = shown(&format!("GO-\u{1b}[31m{}", "B".repeat(300)));
        assert!(!shown_id.contains('\u{1b}'), "{shown_id}");
        assert!(shown_id.len() < 160, "{shown_id}");
    }

    #[test]
    fn only_a_layout_ocigo_wrote_is_an_earlier_database() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        std::fs::create_dir_all(d.join("index")).unwrap();
        std::fs::create_dir_all(d.join("ID")).unwrap();
        assert!(!is_earlier_database(d).unwrap(), "no db.json");
        for f in ["index/db.json", "index/modules.json", "ID/GO-1.json"] {
            std::fs::write(d.join(f), "{}").unwrap();
        }
        assert!(is_earlier_database(d).unwrap());
        std::fs::write(d.join("notes.txt"), "mine").unwrap();
        assert!(!is_earlier_database(d).unwrap(), "another file at the top");
        std::fs::remove_file(d.join("notes.txt")).unwrap();
        std::fs::write(d.join("ID/README"), "mine").unwrap();
        assert!(!is_earlier_database(d).unwrap(), "another file in ID/");
        std::fs::remove_file(d.join("ID/README")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", d.join("ID/GO-2.json")).unwrap();
        assert!(!is_earlier_database(d).unwrap(), "a link");
        std::fs::remove_file(d.join("ID/GO-2.json")).unwrap();
        std::fs::create_dir(d.join("ID/GO-3.json")).unwrap();
        assert!(!is_earlier_database(d).unwrap(), "a directory");
        std::fs::remove_dir(d.join("ID/GO-3.json")).unwrap();
        assert!(is_earlier_database(d).unwrap());
    }
}
