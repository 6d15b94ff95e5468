//! The rules of a policy, evaluated over facts gathered from a bundle (and
//! a project and a vulnerability database): `coverage`, `modules`,
//! `toolchain`, `vulnerabilities` and `age` here; `signatures` needs the
//! repository, so the command verifies and this module only words the
//! result ([`signatures_result`]).
//!
//! Coverage, exactly (with `--project DIR`, offline, reading DIR/go.mod and
//! DIR/go.sum only):
//! 1. every module go.mod requires (after its `replace` directives; a
//!    directory replacement is local and not looked for) is in the bundle
//!    at that version. For a go.mod at `go 1.17` or later this is every
//!    module that provides a package to the main module's packages and
//!    tests (the go command keeps that list complete), at the version the
//!    build selects;
//! 2. for each of those, go.sum has its `/go.mod` line and the bundle's
//!    `.mod` hash equals it; where go.sum has the zip line, the bundle has
//!    the zip and its h1 equals it;
//! 3. no go.sum line is contradicted: for every module version go.sum
//!    names that the bundle holds, the hashes are equal;
//! 4. the bundle was resolved for every platform `coverage.platforms`
//!    names;
//! 5. with `exact: true`, every module version in the bundle is named by
//!    go.mod or go.sum.
//!
//! Violations point at the go.mod or go.sum line, or at the policy line of
//! the rule they break.
//!
//! Owns: rule semantics and finding wording. Must not: read files or
//! reach repositories (facts come in already read).

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::pattern;
use super::spec::{Loaded, Mode, RetractedAction};
use super::vulndb::Database;
use crate::gomod::modfile::ModFile;
use crate::gomod::semver;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// A violation: the check fails.
    Error,
    /// Worth reading; the check does not fail for it.
    Warning,
    /// Information (an ignored vulnerability, what was checked).
    Note,
}

/// Where a finding points: a file and a 1-based line (and column).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    pub file: String,
    pub line: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub level: Level,
    /// What it concerns: `path@version`, `toolchain go1.26.8 linux/amd64`,
    /// `signatures`, `bundle`, a file.
    pub subject: String,
    pub message: String,
    /// A vulnerability's ID, for vulnerability findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleResult {
    pub rule: String,
    pub status: Status,
    /// One line: what was checked.
    pub summary: String,
    pub findings: Vec<Finding>,
}

impl RuleResult {
    pub fn new(rule: &str, summary: String, findings: Vec<Finding>) -> RuleResult {
        let status = if findings.iter().any(|f| f.level == Level::Error) {
            Status::Fail
        } else {
            Status::Pass
        };
        RuleResult {
            rule: rule.to_string(),
            status,
            summary,
            findings,
        }
    }
}

/// A module version in the bundle.
#[derive(Debug, Clone)]
pub struct BundleModule {
    pub path: String,
    pub version: String,
    pub mod_hash: String,
    pub zip_hash: Option<String>,
}

/// One go.sum line.
#[derive(Debug, Clone)]
pub struct SumLine {
    pub path: String,
    pub version: String,
    pub go_mod: bool,
    pub hash: String,
    pub line: usize,
}

/// The project given with `--project`.
#[derive(Debug, Clone)]
pub struct Project {
    pub go_mod_file: String,
    pub go_sum_file: String,
    pub go_mod: ModFile,
    pub go_sum: Vec<SumLine>,
}

/// Parses go.sum text (`path version[/go.mod] hash` lines); a malformed
/// line is an error naming it.
pub fn parse_go_sum(text: &str, file: &str) -> Result<Vec<SumLine>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        if f.len() != 3 {
            return Err(format!("{file}:{}: malformed go.sum line", i + 1));
        }
        let (version, go_mod) = match f[1].strip_suffix("/go.mod") {
            Some(v) => (v, true),
            None => (f[1], false),
        };
        out.push(SumLine {
            path: f[0].to_string(),
            version: version.to_string(),
            go_mod,
            hash: f[2].to_string(),
            line: i + 1,
        });
    }
    Ok(out)
}

/// What the rules are evaluated over.
pub struct Facts {
    /// Every module version in the bundle.
    pub modules: Vec<BundleModule>,
    /// Per module path, its newest version in the bundle and that
    /// version's go.mod text (for `retract`).
    pub newest_go_mod: HashMap<String, (String, String)>,
    pub platforms: Vec<String>,
    pub created: Option<String>,
    /// (Go release, os/arch) of each toolchain in the bundle.
    pub toolchains: Vec<(String, String)>,
    pub project: Option<Project>,
    /// The time of the check, seconds since the epoch.
    pub now: i64,
}

fn policy_at(loaded: &Loaded, pointer: &str) -> Option<Location> {
    let p = loaded.pos(pointer);
    Some(Location {
        file: loaded.file.display().to_string(),
        line: p.line,
        column: Some(p.column),
    })
}

fn at(file: &str, line: usize) -> Option<Location> {
    Some(Location {
        file: file.to_string(),
        line,
        column: None,
    })
}

fn error(subject: String, message: String, location: Option<Location>) -> Finding {
    Finding {
        level: Level::Error,
        subject,
        message,
        id: None,
        location,
    }
}

/// `coverage`: see the module documentation.
pub fn coverage(loaded: &Loaded, facts: &Facts) -> RuleResult {
    let spec = loaded.policy.coverage.as_ref().expect("rule present");
    let project = facts.project.as_ref().expect("checked by the caller");
    let mut findings = Vec::new();
    let bundle: HashMap<(&str, &str), &BundleModule> = facts
        .modules
        .iter()
        .map(|m| ((m.path.as_str(), m.version.as_str()), m))
        .collect();
    let mut sums: HashMap<(&str, &str, bool), &SumLine> = HashMap::new();
    for s in &project.go_sum {
        sums.insert((s.path.as_str(), s.version.as_str(), s.go_mod), s);
    }
    let gm = &project.go_mod;
    let (gmf, gsf) = (&project.go_mod_file, &project.go_sum_file);
    if let Some((go, line)) = &gm.go
        && semver::compare_precedence(&format!("v{go}"), "v1.17") == std::cmp::Ordering::Less
    {
        findings.push(Finding {
            level: Level::Warning,
            subject: gmf.clone(),
            message: format!(
                "go.mod says go {go}: before go 1.17, go.mod need not list every module that provides packages, so only the modules it lists and go.sum are checked"
            ),
            id: None,
            location: at(gmf, *line),
        });
    }
    let mut needed = 0;
    for r in &gm.require {
        let replaced = gm.replace.iter().rev().find(|x| {
            x.old_path == r.path && x.old_version.as_deref().is_none_or(|v| v == r.version)
        });
        let (path, version) = match replaced {
            Some(x) => match &x.new_version {
                Some(v) => (x.new_path.as_str(), v.as_str()),
                None => continue, // a directory: not a module download
            },
            None => (r.path.as_str(), r.version.as_str()),
        };
        needed += 1;
        let subject = format!("{path}@{version}");
        let Some(m) = bundle.get(&(path, version)) else {
            findings.push(error(
                subject,
                format!("required by go.mod line {}, not in the bundle", r.line),
                at(gmf, r.line),
            ));
            continue;
        };
        match sums.get(&(path, version, true)) {
            None => findings.push(error(
                subject.clone(),
                "go.sum has no /go.mod line for it (run `go mod tidy`)".into(),
                at(gmf, r.line),
            )),
            Some(s) if s.hash != m.mod_hash => {} // reported below, with every line
            Some(_) => {}
        }
        if let Some(s) = sums.get(&(path, version, false))
            && m.zip_hash.is_none()
        {
            findings.push(error(
                subject,
                format!(
                    "go.sum line {} records its zip, but the bundle holds only its go.mod",
                    s.line
                ),
                at(gsf, s.line),
            ));
        }
    }
    for s in &project.go_sum {
        let Some(m) = bundle.get(&(s.path.as_str(), s.version.as_str())) else {
            continue;
        };
        let have = if s.go_mod {
            Some(&m.mod_hash)
        } else {
            m.zip_hash.as_ref()
        };
        if let Some(have) = have
            && *have != s.hash
        {
            findings.push(error(
                format!("{}@{}", s.path, s.version),
                format!(
                    "the bundle's {} hash {have} contradicts go.sum's {}",
                    if s.go_mod { ".mod" } else { "zip" },
                    s.hash
                ),
                at(gsf, s.line),
            ));
        }
    }
    for (i, p) in spec.platforms.iter().enumerate() {
        if !facts.platforms.contains(p) {
            findings.push(error(
                "bundle".into(),
                format!(
                    "not resolved for {p} (it was for: {})",
                    if facts.platforms.is_empty() {
                        "none recorded".into()
                    } else {
                        facts.platforms.join(", ")
                    }
                ),
                policy_at(loaded, &format!("/coverage/platforms/{i}")),
            ));
        }
    }
    if spec.exact {
        let named: HashSet<(&str, &str)> = project
            .go_sum
            .iter()
            .map(|s| (s.path.as_str(), s.version.as_str()))
            .chain(
                gm.require
                    .iter()
                    .map(|r| (r.path.as_str(), r.version.as_str())),
            )
            .collect();
        for m in &facts.modules {
            if !named.contains(&(m.path.as_str(), m.version.as_str())) {
                findings.push(error(
                    format!("{}@{}", m.path, m.version),
                    "in the bundle, but neither go.mod nor go.sum names it (exact coverage)".into(),
                    policy_at(loaded, "/coverage/exact"),
                ));
            }
        }
    }
    RuleResult::new(
        "coverage",
        format!(
            "{needed} required module(s) of {gmf}, {} go.sum line(s), against {} module version(s)",
            project.go_sum.len(),
            facts.modules.len()
        ),
        findings,
    )
}

/// `modules`: deny and allow entries, allow-list mode, retractions.
pub fn modules(loaded: &Loaded, facts: &Facts) -> RuleResult {
    let spec = loaded.policy.modules.as_ref().expect("rule present");
    let mut findings = Vec::new();
    let matches =
        |r: &super::spec::ModuleRule, range: &Option<pattern::Range>, m: &BundleModule| {
            pattern::match_prefix_patterns(&r.path, &m.path)
                && range.as_ref().is_none_or(|x| x.contains(&m.version))
        };
    // Retractions, from the newest go.mod of each path in the bundle.
    let mut retracts: HashMap<&str, (&str, ModFile)> = HashMap::new();
    if spec.retracted != RetractedAction::Allow {
        for (path, (version, text)) in &facts.newest_go_mod {
            if text.contains("retract") {
                let mf = crate::gomod::modfile::parse(text);
                if !mf.retract.is_empty() {
                    retracts.insert(path, (version, mf));
                }
            }
        }
    }
    for m in &facts.modules {
        let subject = format!("{}@{}", m.path, m.version);
        for (i, r) in spec.deny.iter().enumerate() {
            if matches(r, &loaded.deny[i], m) {
                findings.push(error(
                    subject.clone(),
                    format!(
                        "denied by modules.deny[{i}] ({}{}){}",
                        r.path,
                        r.versions
                            .as_deref()
                            .map(|v| format!(" {v}"))
                            .unwrap_or_default(),
                        r.reason
                            .as_deref()
                            .map(|x| format!(": {x}"))
                            .unwrap_or_default()
                    ),
                    policy_at(loaded, &format!("/modules/deny/{i}")),
                ));
            }
        }
        if spec.mode == Mode::AllowList
            && !spec
                .allow
                .iter()
                .enumerate()
                .any(|(i, r)| matches(r, &loaded.allow[i], m))
        {
            findings.push(error(
                subject.clone(),
                "matches no modules.allow entry (allow_list mode)".into(),
                policy_at(loaded, "/modules/allow"),
            ));
        }
        if let Some((newest, mf)) = retracts.get(m.path.as_str()) {
            for r in &mf.retract {
                use std::cmp::Ordering::*;
                if semver::compare_precedence(&m.version, &r.low) != Less
                    && semver::compare_precedence(&m.version, &r.high) != Greater
                {
                    let why = if r.rationale.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", r.rationale)
                    };
                    findings.push(Finding {
                        level: if spec.retracted == RetractedAction::Deny {
                            Level::Error
                        } else {
                            Level::Warning
                        },
                        subject: subject.clone(),
                        message: format!(
                            "retracted by {}@{newest}'s go.mod (line {}){why}",
                            m.path, r.line
                        ),
                        id: None,
                        location: policy_at(loaded, "/modules/retracted"),
                    });
                    break;
                }
            }
        }
    }
    RuleResult::new(
        "modules",
        format!(
            "{} module version(s): {} deny, {} allow entr(ies), {} mode",
            facts.modules.len(),
            spec.deny.len(),
            spec.allow.len(),
            match spec.mode {
                Mode::AllowList => "allow_list",
                Mode::DenyList => "deny_list",
            }
        ),
        findings,
    )
}

/// The Go release a go.mod asks for: its `toolchain` line, else `go`
/// (`go 1.22` means go1.22.0 from Go 1.21 on).
pub fn project_go_release(m: &ModFile) -> Option<(String, usize)> {
    if let Some((t, line)) = &m.toolchain {
        return Some((t.clone(), *line));
    }
    let (g, line) = m.go.as_ref()?;
    let v = format!("go{g}");
    let v = if v.matches('.').count() == 1 && !v.contains("rc") && !v.contains("beta") {
        format!("{v}.0")
    } else {
        v
    };
    Some((v, *line))
}

/// `toolchain`: versions within bounds, platforms present, the project's.
pub fn toolchain(loaded: &Loaded, facts: &Facts) -> RuleResult {
    let spec = loaded.policy.toolchain.as_ref().expect("rule present");
    let mut findings = Vec::new();
    let cmp = |a: &str, b: &str| {
        semver::compare_precedence(
            &pattern::go_release_semver(a).unwrap_or_default(),
            &pattern::go_release_semver(b).unwrap_or_default(),
        )
    };
    for (v, platform) in &facts.toolchains {
        let subject = format!("toolchain {v} {platform}");
        if let Some(min) = &spec.min
            && cmp(v, min) == std::cmp::Ordering::Less
        {
            findings.push(error(
                subject.clone(),
                format!("older than toolchain.min {min}"),
                policy_at(loaded, "/toolchain/min"),
            ));
        }
        if let Some(max) = &spec.max
            && cmp(v, max) == std::cmp::Ordering::Greater
        {
            findings.push(error(
                subject,
                format!("newer than toolchain.max {max}"),
                policy_at(loaded, "/toolchain/max"),
            ));
        }
    }
    for (i, p) in spec.platforms.iter().enumerate() {
        if !facts.toolchains.iter().any(|(_, tp)| tp == p) {
            findings.push(error(
                format!("toolchain {p}"),
                format!("the bundle holds no toolchain for {p}"),
                policy_at(loaded, &format!("/toolchain/platforms/{i}")),
            ));
        }
    }
    if spec.match_project {
        let project = facts.project.as_ref().expect("checked by the caller");
        match project_go_release(&project.go_mod) {
            None => findings.push(error(
                project.go_mod_file.clone(),
                "go.mod has neither a toolchain nor a go line".into(),
                at(&project.go_mod_file, 1),
            )),
            Some((want, line)) => {
                if !facts.toolchains.iter().any(|(v, _)| *v == want) {
                    findings.push(error(
                        format!("toolchain {want}"),
                        format!(
                            "go.mod asks for {want}; the bundle holds {}",
                            if facts.toolchains.is_empty() {
                                "no toolchain".to_string()
                            } else {
                                facts
                                    .toolchains
                                    .iter()
                                    .map(|(v, p)| format!("{v} {p}"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            }
                        ),
                        at(&project.go_mod_file, line),
                    ));
                }
            }
        }
    }
    RuleResult::new(
        "toolchain",
        format!("{} toolchain(s) in the bundle", facts.toolchains.len()),
        findings,
    )
}

/// Age in days, for messages.
fn days(secs: i64) -> String {
    format!("{:.1} days", secs as f64 / 86_400.0)
}

/// `vulnerabilities`: every module version with source in the bundle (a
/// zip), and each toolchain as the `stdlib` and `toolchain` modules,
/// against the database.
pub fn vulnerabilities(
    loaded: &Loaded,
    facts: &Facts,
    db: &Database,
) -> anyhow::Result<RuleResult> {
    let spec = loaded
        .policy
        .vulnerabilities
        .as_ref()
        .expect("rule present");
    let mut findings = Vec::new();
    let age = facts.now - db.modified_time.0;
    if let Some(max) = loaded.max_db_age
        && age > max as i64
    {
        findings.push(error(
            "vulnerability database".into(),
            format!(
                "last modified {} ({} ago), older than max_db_age {}",
                db.modified,
                days(age),
                spec.max_db_age.as_deref().unwrap_or_default()
            ),
            policy_at(loaded, "/vulnerabilities/max_db_age"),
        ));
    }
    // Module versions whose source the bundle carries: a go.mod-only
    // version (read to load the module graph, never built) holds no code.
    let mut queries: Vec<(String, String, String)> = facts
        .modules
        .iter()
        .filter(|m| m.zip_hash.is_some())
        .map(|m| {
            (
                m.path.clone(),
                m.version.clone(),
                format!("{}@{}", m.path, m.version),
            )
        })
        .collect();
    for (v, platform) in &facts.toolchains {
        if let Some(sv) = pattern::go_release_semver(v) {
            for module in ["stdlib", "toolchain"] {
                queries.push((
                    module.into(),
                    sv.clone(),
                    format!("toolchain {v} {platform} ({module})"),
                ));
            }
        }
    }
    let mut affected = 0;
    for (path, version, subject) in &queries {
        for hit in db.affecting(path, version, facts.now)? {
            let ignore = spec
                .ignore
                .iter()
                .enumerate()
                .find(|(_, ig)| ig.id == hit.id || hit.aliases.contains(&ig.id));
            let fixed = if hit.fixed.is_empty() {
                "no fixed version".to_string()
            } else {
                format!("fixed in v{}", hit.fixed.trim_start_matches('v'))
            };
            let what = format!(
                "{}{}: {}{}",
                hit.id,
                if hit.aliases.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", hit.aliases.join(", "))
                },
                fixed,
                hit.summary
                    .as_deref()
                    .map(|s| format!("; {s}"))
                    .unwrap_or_default()
            );
            let finding = match ignore {
                Some((i, ig)) if facts.now < loaded.ignore_expires[i] => Finding {
                    level: Level::Note,
                    subject: subject.clone(),
                    message: format!(
                        "affected by {what}; ignored until {} by vulnerabilities.ignore[{i}]: {}",
                        ig.expires, ig.reason
                    ),
                    id: Some(hit.id.clone()),
                    location: policy_at(loaded, &format!("/vulnerabilities/ignore/{i}")),
                },
                Some((i, ig)) => {
                    affected += 1;
                    Finding {
                        level: Level::Error,
                        subject: subject.clone(),
                        message: format!(
                            "affected by {what}; the ignore entry expired on {}",
                            ig.expires
                        ),
                        id: Some(hit.id.clone()),
                        location: policy_at(
                            loaded,
                            &format!("/vulnerabilities/ignore/{i}/expires"),
                        ),
                    }
                }
                None => {
                    affected += 1;
                    Finding {
                        level: Level::Error,
                        subject: subject.clone(),
                        message: format!("affected by {what}"),
                        id: Some(hit.id.clone()),
                        location: None,
                    }
                }
            };
            findings.push(finding);
        }
    }
    Ok(RuleResult::new(
        "vulnerabilities",
        format!(
            "{} module version(s) against the database of {} ({} old): {affected} affected",
            queries.len(),
            db.modified,
            days(age)
        ),
        findings,
    ))
}

/// `age`: the bundle's `created` time.
pub fn age(loaded: &Loaded, facts: &Facts) -> RuleResult {
    let spec = loaded.policy.age.as_ref().expect("rule present");
    let max = loaded.max_age.expect("checked when loaded") as i64;
    let mut findings = Vec::new();
    let summary;
    match facts
        .created
        .as_deref()
        .map(|c| (c, super::vulndb::parse_time(c)))
    {
        None => {
            summary = "the bundle records no creation time".to_string();
            findings.push(error(
                "bundle".into(),
                "records no creation time, so its age is unknown (pack it with --created)".into(),
                policy_at(loaded, "/age/max"),
            ));
        }
        Some((c, None)) => {
            summary = format!("created {c:?}");
            findings.push(error(
                "bundle".into(),
                format!("its creation time {c:?} is not an RFC 3339 time"),
                None,
            ));
        }
        Some((c, Some(t))) => {
            let a = facts.now - t.0;
            summary = format!("created {c} ({} ago)", days(a.max(0)));
            if a > max {
                findings.push(error(
                    "bundle".into(),
                    format!(
                        "created {c}, {} ago: older than age.max {}",
                        days(a),
                        spec.max
                    ),
                    policy_at(loaded, "/age/max"),
                ));
            }
        }
    }
    RuleResult::new("age", summary, findings)
}

/// What signature verification found, for [`signatures_result`].
pub struct SignatureFacts {
    /// Per format checked: the key labels that signed with every required
    /// annotation, and what else was found (rejections, annotations
    /// missing).
    pub signed_by: Vec<String>,
    pub notes: Vec<String>,
    pub formats: Vec<String>,
}

/// `signatures`: enough of the policy's keys signed.
pub fn signatures_result(loaded: &Loaded, facts: &SignatureFacts) -> RuleResult {
    let spec = loaded.policy.signatures.as_ref().expect("rule present");
    let mut findings = Vec::new();
    if facts.signed_by.len() < spec.threshold {
        findings.push(error(
            "signatures".into(),
            format!(
                "{} of the required {} key(s) signed ({}){}",
                facts.signed_by.len(),
                spec.threshold,
                if facts.signed_by.is_empty() {
                    "none".to_string()
                } else {
                    facts.signed_by.join(", ")
                },
                if facts.notes.is_empty() {
                    String::new()
                } else {
                    format!(": {}", facts.notes.join("; "))
                }
            ),
            policy_at(loaded, "/signatures/threshold"),
        ));
    }
    RuleResult::new(
        "signatures",
        format!(
            "{} format(s) checked ({}); signed by {}",
            facts.formats.len(),
            facts.formats.join(", "),
            if facts.signed_by.is_empty() {
                "no policy key".to_string()
            } else {
                facts.signed_by.join(", ")
            }
        ),
        findings,
    )
}
