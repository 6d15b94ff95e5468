//! The policy file (`ocigo policy check --policy FILE`): YAML, schema
//! `schemas/policy.v1.schema.json`, every key snake_case, unknown keys
//! refused. A rule that is present is enforced; an absent rule is not
//! checked. Errors name the file, line and column.
//!
//! Owns: the file's shape, its checks beyond the shape (patterns, ranges,
//! durations, dates) and the commented example `ocigo policy init` writes.
//! Must not: evaluate rules (that is [`super::rules`]) or read anything
//! but the policy file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Deserialize;

use super::pattern::{self, Range};
use super::yaml::{self, Located, Pos};
use crate::error::{Kind, fail, fail_hint};

/// A policy file is at most this big.
pub const MAX_POLICY_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Always 1.
    pub version: u32,
    #[serde(default)]
    pub signatures: Option<Signatures>,
    #[serde(default)]
    pub coverage: Option<Coverage>,
    #[serde(default)]
    pub modules: Option<Modules>,
    #[serde(default)]
    pub toolchain: Option<Toolchain>,
    #[serde(default)]
    pub vulnerabilities: Option<Vulnerabilities>,
    #[serde(default)]
    pub age: Option<Age>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureFormat {
    /// cosign's `sha256-<hex>.sig` tag (simple signing payloads).
    Legacy,
    /// cosign v3's Sigstore bundles, attached as OCI referrers.
    Bundle,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signatures {
    /// Public key files (cosign PEM), relative to the policy file.
    pub keys: Vec<PathBuf>,
    #[serde(default = "one")]
    pub threshold: usize,
    #[serde(default = "legacy")]
    pub formats: Vec<SignatureFormat>,
    /// Repository the signatures must name (default: the one checked).
    #[serde(default)]
    pub identity: Option<String>,
    /// `key: value` pairs every counted signature's payload must carry.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

fn one() -> usize {
    1
}
fn legacy() -> Vec<SignatureFormat> {
    vec![SignatureFormat::Legacy]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Coverage {
    /// Platforms (`os/arch`) the bundle must have been resolved for.
    #[serde(default)]
    pub platforms: Vec<String>,
    /// Nothing in the bundle that the project's go.sum does not name.
    #[serde(default)]
    pub exact: bool,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Only `deny` entries refuse modules (the default).
    #[default]
    DenyList,
    /// Every module must match an `allow` entry (and no `deny` entry).
    AllowList,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum RetractedAction {
    #[default]
    Deny,
    Warn,
    Allow,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleRule {
    /// Comma-separated module path globs, as GOPRIVATE.
    pub path: String,
    /// A version range; absent: every version.
    #[serde(default)]
    pub versions: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Modules {
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub allow: Vec<ModuleRule>,
    #[serde(default)]
    pub deny: Vec<ModuleRule>,
    #[serde(default)]
    pub retracted: RetractedAction,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Toolchain {
    /// Lowest Go release allowed (`go1.25.0`).
    #[serde(default)]
    pub min: Option<String>,
    /// Highest Go release allowed.
    #[serde(default)]
    pub max: Option<String>,
    /// Platforms the bundle must hold a toolchain for.
    #[serde(default)]
    pub platforms: Vec<String>,
    /// The bundle must hold the toolchain the project's go.mod asks for
    /// (its `toolchain` line, else its `go` line); needs `--project`.
    #[serde(default)]
    pub match_project: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ignore {
    pub id: String,
    pub reason: String,
    /// `YYYY-MM-DD`: the entry no longer applies from this day on (UTC).
    pub expires: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vulnerabilities {
    /// The database directory (published layout), relative to the policy
    /// file; `--vulndb DIR` overrides it.
    #[serde(default)]
    pub database: Option<PathBuf>,
    /// The database may be at most this old (`7d`, `36h`).
    #[serde(default)]
    pub max_db_age: Option<String>,
    #[serde(default)]
    pub ignore: Vec<Ignore>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Age {
    /// The bundle may be at most this old (`30d`), from its `created` time.
    pub max: String,
}

/// A policy read from a file, with where its parts are.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub file: PathBuf,
    /// The file's bytes' sha256 (`sha256:<hex>`), named in decisions.
    pub digest: String,
    pub policy: Policy,
    pub located: Located,
    // Checked forms.
    pub allow: Vec<Option<Range>>,
    pub deny: Vec<Option<Range>>,
    pub max_db_age: Option<u64>,
    pub max_age: Option<u64>,
    pub ignore_expires: Vec<i64>,
}

impl Loaded {
    /// Where a node of the policy is (`/modules/deny/0`).
    pub fn pos(&self, pointer: &str) -> Pos {
        self.located.pos(pointer)
    }

    /// A path the policy names, relative to the policy file.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.file.parent().unwrap_or(Path::new(".")).join(p)
        }
    }
}

/// `30d`, `12h`, `2w`, `90m`, `45s` in seconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    let unit = s.chars().last()?;
    let n: u64 = s[..s.len() - unit.len_utf8()].parse().ok()?;
    let mul = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(mul)
}

/// `YYYY-MM-DD` as seconds since the epoch at 00:00 UTC.
pub fn parse_date(s: &str) -> Option<i64> {
    if s.len() != 10 {
        return None;
    }
    super::vulndb::parse_time(&format!("{s}T00:00:00Z")).map(|t| t.0)
}

fn is_platform(p: &str) -> bool {
    let ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    p.split_once('/')
        .is_some_and(|(os, arch)| ok(os) && ok(arch))
}

/// Reads and checks a policy file. Every error is a usage error (the
/// check cannot run) naming `file:line:column`.
pub fn load(file: &Path) -> Result<Loaded> {
    let shown = file.display().to_string();
    let bytes = crate::fs::read_capped(file, MAX_POLICY_BYTES)
        .map_err(|e| {
            fail(
                Kind::Usage,
                format!("cannot read the policy {shown}: {e:#}"),
            )
        })?
        .ok_or_else(|| {
            fail_hint(
                Kind::Usage,
                format!("policy file {shown} does not exist"),
                "write an example with `ocigo policy init > policy.yaml`",
            )
        })?;
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        fail(
            Kind::Usage,
            format!("{shown}: the policy is not UTF-8 text"),
        )
    })?;
    let at = |p: Pos, m: &str| {
        fail_hint(
            Kind::Usage,
            format!("{shown}:{p}: {m}"),
            "the policy's format: schemas/policy.v1.schema.json (`ocigo policy init` writes an example)",
        )
    };
    let located = yaml::parse(text).map_err(|e| at(e.pos, &e.message))?;
    if !located.value.is_object() {
        return Err(at(
            Pos { line: 1, column: 1 },
            "a policy is a mapping with `version: 1` and rules",
        ));
    }
    let policy: Policy = located.deserialize().map_err(|e| at(e.pos, &e.message))?;
    let pos = |p: &str| located.pos(p);
    if policy.version != 1 {
        return Err(at(
            pos("/version"),
            &format!(
                "version {}: this ocigo reads policy version 1",
                policy.version
            ),
        ));
    }
    if let Some(s) = &policy.signatures {
        if s.keys.is_empty() {
            return Err(at(
                pos("/signatures/keys"),
                "signatures: name at least one public key",
            ));
        }
        if s.threshold == 0 || s.threshold > s.keys.len() {
            return Err(at(
                pos("/signatures/threshold"),
                &format!(
                    "threshold {} must be between 1 and the {} key(s) given",
                    s.threshold,
                    s.keys.len()
                ),
            ));
        }
        if s.formats.is_empty() {
            return Err(at(
                pos("/signatures/formats"),
                "formats: name legacy, bundle or both",
            ));
        }
    }
    let check_platforms = |list: &[String], ptr: &str| -> Result<()> {
        for (i, p) in list.iter().enumerate() {
            if !is_platform(p) {
                return Err(at(
                    pos(&format!("{ptr}/{i}")),
                    &format!("{p:?} is not a platform (os/arch, such as linux/amd64)"),
                ));
            }
        }
        Ok(())
    };
    if let Some(c) = &policy.coverage {
        check_platforms(&c.platforms, "/coverage/platforms")?;
    }
    let mut allow = Vec::new();
    let mut deny = Vec::new();
    if let Some(m) = &policy.modules {
        for (list, out, name) in [
            (&m.allow, &mut allow, "allow"),
            (&m.deny, &mut deny, "deny"),
        ] {
            for (i, r) in list.iter().enumerate() {
                pattern::check_patterns(&r.path)
                    .map_err(|e| at(pos(&format!("/modules/{name}/{i}/path")), &e))?;
                out.push(match &r.versions {
                    Some(v) => Some(
                        Range::parse(v)
                            .map_err(|e| at(pos(&format!("/modules/{name}/{i}/versions")), &e))?,
                    ),
                    None => None,
                });
            }
        }
        if m.mode == Mode::AllowList && m.allow.is_empty() {
            return Err(at(
                pos("/modules/mode"),
                "allow_list mode with no allow entries would refuse every module",
            ));
        }
    }
    if let Some(t) = &policy.toolchain {
        for (v, ptr) in [(&t.min, "/toolchain/min"), (&t.max, "/toolchain/max")] {
            if let Some(v) = v
                && pattern::go_release_semver(v).is_none()
            {
                return Err(at(
                    pos(ptr),
                    &format!("{v:?} is not a Go release (such as go1.26.3)"),
                ));
            }
        }
        check_platforms(&t.platforms, "/toolchain/platforms")?;
    }
    let mut max_db_age = None;
    let mut ignore_expires = Vec::new();
    if let Some(v) = &policy.vulnerabilities {
        if let Some(a) = &v.max_db_age {
            max_db_age = Some(parse_duration(a).ok_or_else(|| {
                at(
                    pos("/vulnerabilities/max_db_age"),
                    &format!("{a:?} is not a duration (such as 7d, 36h, 2w)"),
                )
            })?);
        }
        for (i, ig) in v.ignore.iter().enumerate() {
            if ig.reason.trim().is_empty() {
                return Err(at(
                    pos(&format!("/vulnerabilities/ignore/{i}/reason")),
                    "an ignore entry needs a reason",
                ));
            }
            ignore_expires.push(parse_date(&ig.expires).ok_or_else(|| {
                at(
                    pos(&format!("/vulnerabilities/ignore/{i}/expires")),
                    &format!("{:?} is not a date (YYYY-MM-DD)", ig.expires),
                )
            })?);
        }
    }
    let mut max_age = None;
    if let Some(a) = &policy.age {
        max_age = Some(parse_duration(&a.max).ok_or_else(|| {
            at(
                pos("/age/max"),
                &format!("{:?} is not a duration (such as 30d, 12h)", a.max),
            )
        })?);
    }
    Ok(Loaded {
        file: file.to_path_buf(),
        digest: crate::oci::Digest::of_bytes(&bytes).to_string(),
        policy,
        located,
        allow,
        deny,
        max_db_age,
        max_age,
        ignore_expires,
    })
}

/// What `ocigo policy init` writes: every rule, commented.
pub const EXAMPLE: &str = r#"# ocigo policy (version 1). Check a bundle with:
#   ocigo policy check --policy policy.yaml [--project DIR] REF
# A rule that is present is enforced; delete a rule to skip it.
# Format: schemas/policy.v1.schema.json. Paths are relative to this file.
version: 1

# Who must have signed the bundle (offline, key based).
signatures:
  keys: [release.pub]          # cosign public keys (PEM)
  threshold: 1                 # how many of them must have signed
  formats: [legacy]            # legacy: cosign's .sig tag; bundle: cosign v3 bundles (referrers)
  # identity: team/mods        # repository the signatures must name (default: the one checked)
  annotations: {}              # key: value pairs each counted signature must carry

# With --project DIR: the bundle holds what the project needs (go >= 1.17
# go.mod lists every module that provides packages), with go.sum's hashes.
coverage:
  platforms: [linux/amd64]     # the bundle was resolved for these
  exact: false                 # true: nothing in the bundle that go.sum does not name

# Module paths (the go command's glob rules, as GOPRIVATE) and version ranges
# (Go's semver order: pseudo-versions are prereleases, +incompatible ignored).
modules:
  mode: deny_list              # allow_list: every module must match an allow entry
  allow:
    - path: "*"
  deny:
    - path: github.com/example/abandoned
      reason: unmaintained
    - path: golang.org/x/net
      versions: "<0.23.0"
      reason: HTTP/2 CONTINUATION flood
  retracted: deny              # deny, warn or allow versions retracted by their module

toolchain:
  min: go1.25.0
  # max: go1.27.99
  platforms: []                # the bundle must hold a toolchain for each
  match_project: false         # with --project: the toolchain go.mod asks for is in the bundle

# The Go vulnerability database (`ocigo pull REF --vulndb DIR` writes it).
vulnerabilities:
  database: vulndb             # or --vulndb DIR
  max_db_age: 7d
  ignore: []
  #  - id: GO-2024-0001
  #    reason: the affected function is not used
  #    expires: 2027-01-31

age:
  max: 90d                     # from the bundle's created time (pack --created)
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_dates() {
        assert_eq!(parse_duration("7d"), Some(7 * 86_400));
        assert_eq!(parse_duration("2w"), Some(14 * 86_400));
        assert_eq!(parse_duration("36h"), Some(36 * 3600));
        assert_eq!(parse_duration("7"), None);
        assert_eq!(parse_duration("d"), None);
        assert_eq!(parse_date("1970-01-02"), Some(86_400));
        assert_eq!(parse_date("2027-02-30x"), None);
    }

    #[test]
    fn the_example_parses() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("policy.yaml");
        std::fs::write(&p, EXAMPLE).unwrap();
        let l = load(&p).unwrap();
        assert_eq!(l.deny.len(), 2);
        assert_eq!(l.pos("/modules/deny/1").line, 30);
    }
}
