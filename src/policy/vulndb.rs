//! The Go vulnerability database, in the file layout it is published in
//! and `govulncheck -db file:///DIR` reads: `index/db.json`
//! (`{"modified": TIME}`), `index/modules.json` (per module path, each
//! vulnerability's ID, modified time and latest non-superseded fix),
//! `index/vulns.json` (ID, modified, aliases) and `ID/<ID>.json`, one OSV
//! record each.
//!
//! [`read_records`] takes either that layout or a directory of OSV records
//! (golang.org/x/vulndb's `data/osv/`) and [`build_layout`] writes the
//! indexes again from the records, as golang.org/x/vuln's
//! `internal/client` derives them (`NonSupersededFix`), so the indexes
//! always agree with the records they are shipped with.
//!
//! [`Database::affecting`] decides whether a module version is affected
//! exactly as govulncheck (v1.9.0) does: the index's `fixed` first (`fixed`
//! empty, or the version below it), then the record's ranges for that
//! module path with `internal/semver.Affects` (no ranges, or no SEMVER
//! range: all versions; events sorted, `introduced: "0"` first; versions
//! compared by `semver.Compare` after `v`/`go` prefixes are normalised, so
//! pseudo-versions are prereleases and `+incompatible` is ignored); records
//! withdrawn before now do not count.
//!
//! Owns: reading, checking and writing the layout. Must not: fetch, or
//! decide what a policy does with a finding.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::error::{Kind, fail, fail_hint};
use crate::gomod::semver;

/// One OSV record is at most this big (the largest in x/vulndb is ~100 KB).
pub const MAX_RECORD_BYTES: u64 = 4 << 20;
/// At most this many records (x/vulndb has ~5,000).
pub const MAX_RECORDS: usize = 200_000;
/// An index file is at most this big.
pub const MAX_INDEX_BYTES: u64 = 256 << 20;

#[derive(Debug, Clone, Deserialize)]
pub struct OsvEntry {
    pub id: String,
    pub modified: String,
    #[serde(default)]
    pub withdrawn: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub affected: Vec<Affected>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Affected {
    pub package: Package,
    #[serde(default)]
    pub ranges: Vec<OsvRange>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Package {
    pub name: String,
    #[serde(default)]
    pub ecosystem: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OsvRange {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub events: Vec<RangeEvent>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RangeEvent {
    #[serde(default)]
    pub introduced: String,
    #[serde(default)]
    pub fixed: String,
}

/// A record as read: its file bytes and what they say.
pub struct Record {
    pub bytes: Vec<u8>,
    pub entry: OsvEntry,
}

/// `semver.Compare` after x/vuln's `canonicalizeSemverPrefix`.
fn canon(v: &str) -> String {
    let v = v.strip_prefix('v').unwrap_or(v);
    let v = v.strip_prefix("go").unwrap_or(v);
    format!("v{v}")
}

/// x/vuln `internal/semver.Less`.
pub fn less(a: &str, b: &str) -> bool {
    semver::compare_precedence(&canon(a), &canon(b)) == Ordering::Less
}

/// x/vuln `internal/semver.ContainsSemver`.
fn contains_semver(r: &OsvRange, v: &str) -> bool {
    if r.kind != "SEMVER" {
        return false;
    }
    if r.events.is_empty() {
        return true;
    }
    let v = canon(v);
    let key = |e: &RangeEvent| -> Option<String> {
        if e.introduced == "0" {
            None
        } else if !e.fixed.is_empty() {
            Some(e.fixed.clone())
        } else {
            Some(e.introduced.clone())
        }
    };
    let mut events: Vec<&RangeEvent> = r.events.iter().collect();
    // sort.SliceStable with x/vuln's less: "0" first, then by version.
    events.sort_by(|a, b| match (key(a), key(b)) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => {
            if less(&x, &y) {
                Ordering::Less
            } else if less(&y, &x) {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        }
    });
    let mut affected = false;
    for e in events {
        if !affected && !e.introduced.is_empty() {
            affected = e.introduced == "0" || !less(&v, &e.introduced);
        } else if affected && !e.fixed.is_empty() {
            affected = less(&v, &e.fixed);
        }
    }
    affected
}

/// x/vuln `internal/semver.Affects`.
pub fn affects(ranges: &[OsvRange], v: &str) -> bool {
    if ranges.is_empty() {
        return true;
    }
    let mut semver_present = false;
    for r in ranges.iter().filter(|r| r.kind == "SEMVER") {
        semver_present = true;
        if contains_semver(r, v) {
            return true;
        }
    }
    !semver_present
}

/// x/vuln `internal/semver.NonSupersededFix`.
pub fn non_superseded_fix(ranges: &[OsvRange]) -> String {
    let mut latest = String::new();
    for r in ranges.iter().filter(|r| r.kind == "SEMVER") {
        for e in &r.events {
            if !e.fixed.is_empty() && less(&latest, &e.fixed) {
                latest = e.fixed.clone();
            }
        }
        for e in &r.events {
            if !e.introduced.is_empty() && e.introduced != "0" && less(&latest, &e.introduced) {
                latest.clear();
                break;
            }
        }
    }
    latest
}

pub use crate::rfc3339::{format as format_time, parse as parse_time};

/// Whether an ID is safe as a file name and looks like an OSV ID: 1 to
/// 128 ASCII letters, digits, `-`, `_` and `.`, not starting with `.`.
/// The one rule for reading records, indexes and pulled layouts.
pub fn is_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

fn bad(path: &Path, why: impl std::fmt::Display) -> anyhow::Error {
    fail(
        Kind::Integrity,
        format!("{}: not a valid OSV record: {why}", path.display()),
    )
}

/// Reads one record, checking its file name is `<id>.json`.
fn read_record(path: &Path) -> Result<Record> {
    let bytes = crate::fs::read_capped(path, MAX_RECORD_BYTES)?
        .ok_or_else(|| fail(Kind::NotFound, format!("{} is missing", path.display())))?;
    let entry: OsvEntry = serde_json::from_slice(&bytes).map_err(|e| bad(path, e))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if !is_id(&entry.id) || name != format!("{}.json", entry.id) {
        return Err(bad(
            path,
            format!(
                "an OSV record must be in <ID>.json, and {:?} is in {name:?}",
                entry.id
            ),
        ));
    }
    if parse_time(&entry.modified).is_none() {
        return Err(bad(
            path,
            format!("modified {:?} is not an RFC 3339 time", entry.modified),
        ));
    }
    if let Some(w) = &entry.withdrawn
        && parse_time(w).is_none()
    {
        return Err(bad(
            path,
            format!("withdrawn {w:?} is not an RFC 3339 time"),
        ));
    }
    Ok(Record { bytes, entry })
}

/// The records of a published layout (`DIR/ID/*.json`) or of a directory
/// of OSV records (`DIR/*.json`, as x/vulndb's `data/osv/`), sorted by ID.
/// Other files are skipped, as govulncheck skips them; links and special
/// files are refused.
pub fn read_records(dir: &Path) -> Result<Vec<Record>> {
    if !crate::fs::dir_exists(dir)? {
        return Err(fail_hint(
            Kind::NotFound,
            format!(
                "vulnerability database {} is not a directory",
                dir.display()
            ),
            "give the published layout (index/, ID/) or a directory of OSV records (x/vulndb's data/osv)",
        ));
    }
    let records_dir = if crate::fs::dir_exists(&dir.join("ID"))? {
        dir.join("ID")
    } else {
        dir.to_path_buf()
    };
    let mut names: Vec<String> = Vec::new();
    for (name, ft) in crate::fs::list_dir(&records_dir)? {
        let Some(name) = name.to_str() else {
            continue;
        };
        if !name.ends_with(".json") {
            continue;
        }
        if !ft.is_file() {
            return Err(crate::fs::wrong_type(
                &records_dir.join(name),
                "not a regular file",
                "an OSV record (a regular file)",
            ));
        }
        names.push(name.to_string());
        if names.len() > MAX_RECORDS {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "{} holds more than {MAX_RECORDS} records",
                    records_dir.display()
                ),
            ));
        }
    }
    if names.is_empty() {
        return Err(fail_hint(
            Kind::NotFound,
            format!("{} holds no OSV records (*.json)", records_dir.display()),
            "give the published layout (index/, ID/) or a directory of OSV records (x/vulndb's data/osv)",
        ));
    }
    names.sort();
    crate::parallel::for_each_index(names.len(), 4, |i| {
        read_record(&records_dir.join(&names[i]))
    })
}

#[derive(Serialize, Deserialize)]
struct DbMeta {
    modified: String,
}

#[derive(Serialize, Deserialize, Clone)]
struct ModuleVuln {
    id: String,
    modified: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    fixed: String,
}

#[derive(Serialize, Deserialize)]
struct ModuleMeta {
    path: String,
    vulns: Vec<ModuleVuln>,
}

#[derive(Serialize)]
struct VulnMeta<'a> {
    id: &'a str,
    modified: String,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    aliases: &'a [String],
}

/// The files of the published layout for `records` (relative name, bytes),
/// sorted by name; record files are the records' own bytes. The database's
/// time (`index/db.json`) is the newest record's `modified`, or `floor` if
/// that is later: golang.org/x/vulndb's `data/osv` records carry the zero
/// time, the real times being set when the database is published.
pub fn build_layout(records: &[Record], floor: Option<(i64, u32)>) -> Result<(String, Files)> {
    let mut latest: Option<(i64, u32)> = floor;
    let mut modules: BTreeMap<&str, Vec<ModuleVuln>> = BTreeMap::new();
    let mut vulns = Vec::with_capacity(records.len());
    let mut files = Vec::with_capacity(records.len() + 3);
    let mut seen = std::collections::HashSet::new();
    for r in records {
        let e = &r.entry;
        if !seen.insert(e.id.as_str()) {
            return Err(fail(
                Kind::Integrity,
                format!("two records have ID {}", e.id),
            ));
        }
        let t = parse_time(&e.modified).expect("checked when read");
        latest = latest.max(Some(t));
        let modified = format_time(t);
        for a in &e.affected {
            modules
                .entry(a.package.name.as_str())
                .or_default()
                .push(ModuleVuln {
                    id: e.id.clone(),
                    modified: modified.clone(),
                    fixed: non_superseded_fix(&a.ranges),
                });
        }
        vulns.push(VulnMeta {
            id: &e.id,
            modified,
            aliases: &e.aliases,
        });
        files.push((format!("ID/{}.json", e.id), r.bytes.clone()));
    }
    let modified = format_time(latest.unwrap_or((0, 0)));
    let mut index: Vec<ModuleMeta> = modules
        .into_iter()
        .map(|(path, mut vulns)| {
            vulns.sort_by(|a, b| a.id.cmp(&b.id));
            ModuleMeta {
                path: path.to_string(),
                vulns,
            }
        })
        .collect();
    index.sort_by(|a, b| a.path.cmp(&b.path));
    vulns.sort_by(|a, b| a.id.cmp(b.id));
    files.push((
        "index/db.json".into(),
        serde_json::to_vec(&DbMeta {
            modified: modified.clone(),
        })?,
    ));
    files.push(("index/modules.json".into(), serde_json::to_vec(&index)?));
    files.push(("index/vulns.json".into(), serde_json::to_vec(&vulns)?));
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((modified, files))
}

/// Files of a layout: (relative name, bytes), sorted by name.
pub type Files = Vec<(String, Vec<u8>)>;

/// A vulnerability that affects a module version.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    pub id: String,
    pub aliases: Vec<String>,
    pub summary: Option<String>,
    /// The latest fix the index records (`""`: none).
    pub fixed: String,
}

/// A published layout opened for queries: the indexes in memory, records
/// read on demand (only those the index says may apply).
pub struct Database {
    dir: PathBuf,
    pub modified: String,
    pub modified_time: (i64, u32),
    modules: HashMap<String, Vec<ModuleVuln>>,
    entries: Mutex<HashMap<String, OsvEntry>>,
}

impl Database {
    pub fn open(dir: &Path) -> Result<Database> {
        let read = |name: &str| -> Result<Vec<u8>> {
            let p = dir.join(name);
            crate::fs::read_capped(&p, MAX_INDEX_BYTES)?.ok_or_else(|| {
                fail_hint(
                    Kind::NotFound,
                    format!(
                        "{} is not a vulnerability database: {name} is missing",
                        dir.display()
                    ),
                    "write one with `ocigo pull REF --vulndb DIR` from an artifact made by `ocigo pack vulndb`",
                )
            })
        };
        let bad_index = |name: &str, e: String| {
            fail(
                Kind::Integrity,
                format!("{}: {name} is not valid: {e}", dir.display()),
            )
        };
        let meta: DbMeta = serde_json::from_slice(&read("index/db.json")?)
            .map_err(|e| bad_index("index/db.json", e.to_string()))?;
        let modified_time = parse_time(&meta.modified).ok_or_else(|| {
            bad_index(
                "index/db.json",
                format!("modified {:?} is not an RFC 3339 time", meta.modified),
            )
        })?;
        let index: Vec<ModuleMeta> = serde_json::from_slice(&read("index/modules.json")?)
            .map_err(|e| bad_index("index/modules.json", e.to_string()))?;
        let mut modules = HashMap::with_capacity(index.len());
        for m in index {
            if let Some(v) = m.vulns.iter().find(|v| !is_id(&v.id)) {
                return Err(bad_index(
                    "index/modules.json",
                    format!("{:?} is not an OSV ID", v.id),
                ));
            }
            modules.insert(m.path, m.vulns);
        }
        Ok(Database {
            dir: dir.to_path_buf(),
            modified: meta.modified,
            modified_time,
            modules,
            entries: Mutex::new(HashMap::new()),
        })
    }

    fn entry(&self, id: &str) -> Result<OsvEntry> {
        if let Some(e) = self.entries.lock().expect("not poisoned").get(id) {
            return Ok(e.clone());
        }
        let r = read_record(&self.dir.join("ID").join(format!("{id}.json")))?;
        self.entries
            .lock()
            .expect("not poisoned")
            .insert(id.to_string(), r.entry.clone());
        Ok(r.entry)
    }

    /// The vulnerabilities affecting `path` at `version` (govulncheck's
    /// verdict; `now` in seconds since the epoch, for withdrawn records).
    pub fn affecting(&self, path: &str, version: &str, now: i64) -> Result<Vec<Hit>> {
        let Some(vulns) = self.modules.get(path) else {
            return Ok(Vec::new());
        };
        let mut hits = Vec::new();
        for v in vulns {
            if !(v.fixed.is_empty() || less(version, &v.fixed)) {
                continue;
            }
            let e = self.entry(&v.id)?;
            if let Some(w) = e.withdrawn.as_deref().and_then(parse_time)
                && w.0 < now
            {
                continue;
            }
            if e.affected
                .iter()
                .any(|a| a.package.name == path && affects(&a.ranges, version))
            {
                hits.push(Hit {
                    id: e.id.clone(),
                    aliases: e.aliases.clone(),
                    summary: e.summary.clone(),
                    fixed: v.fixed.clone(),
                });
            }
        }
        hits.sort_by(|a, b| a.id.cmp(&b.id));
        hits.dedup_by(|a, b| a.id == b.id);
        Ok(hits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(events: &[(&str, &str)]) -> Vec<OsvRange> {
        vec![OsvRange {
            kind: "SEMVER".into(),
            events: events
                .iter()
                .map(|(i, f)| RangeEvent {
                    introduced: i.to_string(),
                    fixed: f.to_string(),
                })
                .collect(),
        }]
    }

    #[test]
    fn affects_as_govulncheck() {
        let r = range(&[("0", ""), ("", "1.2.0"), ("1.5.0", ""), ("", "1.5.3")]);
        for (v, want) in [
            ("v1.0.0", true),
            ("v1.2.0-rc.1", true),
            ("v1.1.9-0.20230102030405-abcdef123456", true),
            ("v1.2.0", false),
            ("v1.2.0-0.20230102030405-abcdef123456", true),
            ("v1.4.9", false),
            ("v1.5.0", true),
            ("v1.5.3", false),
            ("v1.5.2+incompatible", true),
        ] {
            assert_eq!(affects(&r, v), want, "{v}");
        }
        assert!(affects(&[], "v9.9.9"), "no ranges: all versions");
        assert_eq!(non_superseded_fix(&r), "1.5.3");
        assert_eq!(
            non_superseded_fix(&range(&[("0", ""), ("", "1.2.0"), ("1.5.0", "")])),
            ""
        );
    }

    #[test]
    fn times() {
        for s in [
            "2026-11-05T23:49:57Z",
            "1970-01-01T00:00:00Z",
            "2024-02-29T12:00:00.5Z",
        ] {
            assert_eq!(format_time(parse_time(s).unwrap()), s);
        }
        assert_eq!(
            format_time(parse_time("2023-01-01T02:00:00+02:00").unwrap()),
            "2023-01-01T00:00:00Z"
        );
        assert_eq!(parse_time("1970-01-02T00:00:00Z"), Some((86_400, 0)));
        assert!(parse_time("2023-13-01T00:00:00Z").is_none());
        assert!(parse_time("yesterday").is_none());
    }
}
