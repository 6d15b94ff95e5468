//! `ocigo policy check` and `ocigo policy init`: the deployment gate.
//!
//! Check reads the policy (usage error when it cannot), the project's
//! go.mod and go.sum (with `--project`) and the vulnerability database
//! (`--vulndb` or the policy's `database`), then SRC: the bundle's header
//! and parts one at a time, its toolchains' configs, its signatures. It
//! asks [`crate::policy::rules`] for each rule's result and prints the
//! decision as text, JSON or SARIF. Exit 0: every rule holds; 1: a rule is
//! violated; 2: the check could not run (main.rs maps every error of this
//! command to 2). No network beyond SRC's registry.
//!
//! `--attest KEY` signs the decision (pass or fail) as an in-toto
//! statement, predicate type [`crate::policy::report::PREDICATE_TYPE`],
//! in a sigstore bundle attached to the bundle as an OCI 1.1 referrer
//! (`crate::sign::attach_attestation`, as `cosign attest` stores it).
//! [`check_decisions`] is what `ocigo verify --attestation-type` adds for
//! that type: the gate passed, for exactly this digest (and policy).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::{Global, Outcome};
use crate::artifact;
use crate::error::{Kind, fail, fail_hint};
use crate::gomod::modfile;
use crate::oci::{Descriptor, Reference, Repository};
use crate::policy::report::{BundleRef, DatabaseInfo, Decision, PolicyRef};
use crate::policy::rules::{self, BundleModule, Facts, Project, SignatureFacts};
use crate::policy::spec::{self, Loaded, SignatureFormat};
use crate::policy::vulndb::{self, Database};
use crate::toolchain::format as tformat;

/// How the decision is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Sarif,
}

pub struct CheckArgs {
    pub policy: PathBuf,
    pub project: Option<PathBuf>,
    pub format: Format,
    pub vulndb: Option<PathBuf>,
    pub attest: Option<super::SignWith>,
    pub src: String,
}

/// `ocigo policy init`: the commented example policy.
pub fn init(output: Option<&Path>) -> Result<Outcome> {
    match output {
        None => Ok(Outcome {
            human: spec::EXAMPLE.to_string(),
            json: serde_json::json!({"policy": spec::EXAMPLE}),
            exit_code: 0,
            hints: Vec::new(),
        }),
        Some(p) => {
            crate::fs::write_new_file(p, spec::EXAMPLE.as_bytes(), 0o644, "policy")?;
            Ok(Outcome {
                human: format!(
                    "wrote an example policy to {}: edit it, then run `ocigo policy check --policy {} REF`\n",
                    p.display(),
                    p.display()
                ),
                json: serde_json::json!({"written": p.display().to_string()}),
                exit_code: 0,
                hints: Vec::new(),
            })
        }
    }
}

fn read_text(path: &Path, what: &str) -> Result<String> {
    let bytes = crate::fs::read_capped(path, crate::gomod::zipcheck::MAX_GOMOD_BYTES)?.ok_or_else(
        || {
            fail(
                Kind::Usage,
                format!("{} has no {what}", path.parent().unwrap_or(path).display()),
            )
        },
    )?;
    String::from_utf8(bytes)
        .map_err(|_| fail(Kind::Usage, format!("{} is not UTF-8", path.display())))
}

fn read_project(dir: &Path) -> Result<Project> {
    let gm = dir.join("go.mod");
    let gs = dir.join("go.sum");
    let go_mod = modfile::parse(&read_text(&gm, "go.mod")?);
    let sum_text = match crate::fs::read_capped(&gs, 64 << 20)? {
        Some(b) => String::from_utf8(b)
            .map_err(|_| fail(Kind::Usage, format!("{} is not UTF-8", gs.display())))?,
        None => String::new(),
    };
    let (gmf, gsf) = (gm.display().to_string(), gs.display().to_string());
    let go_sum = rules::parse_go_sum(&sum_text, &gsf).map_err(|e| fail(Kind::Usage, e))?;
    Ok(Project {
        go_mod_file: gmf,
        go_sum_file: gsf,
        go_mod,
        go_sum,
    })
}

/// Module versions of the bundle (part by part), and each path's newest
/// go.mod; toolchains from their configs.
fn gather(repo: &dyn Repository, top: &Descriptor, facts: &mut Facts) -> Result<()> {
    let (has_modules, has_toolchain) = super::toolchain::contents(repo, top)?;
    if has_modules {
        let outline = artifact::open(repo, top)?;
        facts.platforms = outline.platforms.clone();
        facts.created = outline.created.clone();
        let mut checker = artifact::PartChecker::new(&outline);
        for i in 0..outline.parts.len() {
            let part = artifact::load_part(repo, &outline, i)?;
            checker.check(&part)?;
            for m in part.modules {
                facts.modules.push(BundleModule {
                    path: m.path.clone(),
                    version: m.version.clone(),
                    mod_hash: m.mod_hash,
                    zip_hash: m.zip.map(|z| z.hash),
                });
                let newer = facts.newest_go_mod.get(&m.path).is_none_or(|(v, _)| {
                    crate::gomod::semver::compare(&m.version, v) == std::cmp::Ordering::Greater
                });
                if newer {
                    facts.newest_go_mod.insert(m.path, (m.version, m.go_mod));
                }
            }
        }
        checker.finish(&outline)?;
    }
    if has_toolchain {
        for d in tformat::toolchain_entries(repo, top)? {
            let part = tformat::load_part(repo, &d)?;
            facts
                .toolchains
                .push((part.config.version.clone(), part.config.platform()));
        }
    }
    Ok(())
}

fn now() -> (i64, u32) {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() as i64, d.subsec_nanos())
}

/// Verifies the policy's signature formats over `top`.
fn check_signatures(
    loaded: &Loaded,
    repo: &dyn Repository,
    reference: &Reference,
    top: &Descriptor,
) -> Result<SignatureFacts> {
    let s = loaded.policy.signatures.as_ref().expect("rule present");
    let paths: Vec<PathBuf> = s.keys.iter().map(|k| loaded.resolve(k)).collect();
    let keys = crate::sign::read_public_key_files(&paths)?;
    let repository = match (&s.identity, reference) {
        (Some(id), _) => Some(crate::sign::storage::repository_path(id).to_string()),
        (None, Reference::Registry { repository, .. }) => Some(repository.clone()),
        (None, Reference::Layout { .. }) => None,
    };
    let mut facts = SignatureFacts {
        signed_by: Vec::new(),
        notes: Vec::new(),
        formats: Vec::new(),
    };
    // Both formats in one scan (the legacy tag, then the bundle referrers);
    // a signature counts when its format is accepted and it carries every
    // required annotation.
    let scan = crate::sign::verify::verify_signatures(repo, top, &keys, repository.as_deref())?;
    for f in &s.formats {
        facts.formats.push(
            match f {
                SignatureFormat::Legacy => "legacy",
                SignatureFormat::Bundle => "bundle",
            }
            .into(),
        );
    }
    for v in &scan.valid {
        let accepted = s.formats.iter().any(|f| {
            matches!(
                (f, v.format),
                (
                    SignatureFormat::Legacy,
                    crate::sign::verify::SignatureFormat::Legacy
                ) | (
                    SignatureFormat::Bundle,
                    crate::sign::verify::SignatureFormat::Bundle
                )
            )
        });
        if !accepted {
            facts.notes.push(format!(
                "a {} signature by {} does not count: the policy accepts {}",
                v.format,
                v.key,
                facts.formats.join(", ")
            ));
            continue;
        }
        let missing: Vec<String> = s
            .annotations
            .iter()
            .filter(|(k, want)| v.annotations.get(*k) != Some(*want))
            .map(|(k, want)| format!("{k}={want}"))
            .collect();
        if !missing.is_empty() {
            facts.notes.push(format!(
                "a {} signature by {} lacks the annotation(s) {}",
                v.format,
                v.key,
                missing.join(", ")
            ));
        } else if !facts.signed_by.contains(&v.key) {
            facts.signed_by.push(v.key.clone());
        }
    }
    if scan.found == 0 {
        facts
            .notes
            .push(format!("{}@{} is not signed", repo.location(), top.digest));
    }
    facts.notes.extend(scan.rejected);
    Ok(facts)
}

/// `ocigo policy check`.
pub fn check(g: &Global, args: &CheckArgs) -> Result<Outcome> {
    let loaded = spec::load(&args.policy)?;
    // The key and its password before any work.
    let signer = args
        .attest
        .as_ref()
        .map(super::SignWith::load)
        .transpose()?;
    let p = &loaded.policy;
    let needs_project =
        p.coverage.is_some() || p.toolchain.as_ref().is_some_and(|t| t.match_project);
    let project = match (&args.project, needs_project) {
        (Some(dir), _) => Some(read_project(dir)?),
        (None, true) => {
            return Err(fail_hint(
                Kind::Usage,
                format!(
                    "the policy {} has a rule that reads the project (coverage, or toolchain.match_project)",
                    args.policy.display()
                ),
                "pass --project DIR (the directory with go.mod and go.sum)",
            ));
        }
        (None, false) => None,
    };
    let db = match &p.vulnerabilities {
        Some(v) => {
            let dir = match (&args.vulndb, &v.database) {
                (Some(d), _) => d.clone(),
                (None, Some(d)) => loaded.resolve(d),
                (None, None) => {
                    return Err(fail_hint(
                        Kind::Usage,
                        format!(
                            "the policy {} has a vulnerabilities rule but names no database",
                            args.policy.display()
                        ),
                        "pass --vulndb DIR or set vulnerabilities.database (write one with `ocigo pull REF --vulndb DIR`)",
                    ));
                }
            };
            Some(Database::open(&dir)?)
        }
        None => None,
    };
    let (now, nanos) = now();
    let src_ref = Reference::parse(&args.src)?;
    let repo = g.open(&src_ref, false)?;
    let top = repo.resolve(src_ref.tag_or_digest())?;
    let mut facts = Facts {
        modules: Vec::new(),
        newest_go_mod: HashMap::new(),
        platforms: Vec::new(),
        created: None,
        toolchains: Vec::new(),
        project,
        now,
    };
    gather(repo.as_ref(), &top, &mut facts)?;

    let mut results = Vec::new();
    if p.signatures.is_some() {
        let sig = check_signatures(&loaded, repo.as_ref(), &src_ref, &top)?;
        results.push(rules::signatures_result(&loaded, &sig));
    }
    if p.coverage.is_some() {
        results.push(rules::coverage(&loaded, &facts));
    }
    if p.modules.is_some() {
        results.push(rules::modules(&loaded, &facts));
    }
    if p.toolchain.is_some() {
        results.push(rules::toolchain(&loaded, &facts));
    }
    if let Some(db) = &db {
        results.push(rules::vulnerabilities(&loaded, &facts, db)?);
    }
    if p.age.is_some() {
        results.push(rules::age(&loaded, &facts));
    }
    let mut decision = Decision::new(
        PolicyRef {
            file: args.policy.display().to_string(),
            digest: loaded.digest.clone(),
        },
        BundleRef {
            reference: src_ref.to_string(),
            digest: top.digest.to_string(),
        },
        vulndb::format_time((now, nanos)),
        db.as_ref().map(|d| DatabaseInfo {
            modified: d.modified.clone(),
            age_seconds: now - d.modified_time.0,
        }),
        results,
    );
    if let Some(signer) = &signer {
        let predicate = serde_json::to_vec(&decision)?;
        let report = super::sign::attest_at(
            repo.as_ref(),
            &src_ref,
            &top,
            signer,
            crate::policy::report::PREDICATE_TYPE,
            &predicate,
        )?;
        decision.attestation = Some(report.attestation_manifest);
    }
    let json = serde_json::to_value(&decision)?;
    let human = match args.format {
        Format::Text => decision.human(),
        Format::Json => format!("{}\n", serde_json::to_string_pretty(&json)?),
        Format::Sarif => format!("{}\n", serde_json::to_string_pretty(&decision.sarif())?),
    };
    Ok(Outcome {
        human,
        json,
        exit_code: if decision.passed { 0 } else { 1 },
        hints: Vec::new(),
    })
}

/// For `ocigo verify --attestation-type <the decision type>`: among the
/// decisions that verified, one must say the gate passed, for exactly
/// `target` (its `bundle.digest`) and, when `policy` is given, for exactly
/// that policy file (its sha256). Anything else is refused (exit 3), saying
/// what the decisions found were about.
pub fn check_decisions(
    found: &crate::sign::attest::Attestations,
    target: &Descriptor,
    policy: Option<&Path>,
) -> Result<()> {
    let want_policy = match policy {
        Some(p) => {
            let bytes = crate::fs::read_capped(p, spec::MAX_POLICY_BYTES)?.ok_or_else(|| {
                fail(
                    Kind::Usage,
                    format!("policy file {} does not exist", p.display()),
                )
            })?;
            Some(crate::oci::Digest::of_bytes(&bytes).to_string())
        }
        None => None,
    };
    let mut seen = Vec::new();
    for a in &found.verified {
        let d = &a.predicate;
        let bundle = d["bundle"]["digest"].as_str().unwrap_or("");
        let pol = d["policy"]["digest"].as_str().unwrap_or("");
        let passed = d["passed"].as_bool() == Some(true);
        let why = if bundle != target.digest.as_str() {
            format!("decides about {bundle}, not {}", target.digest)
        } else if want_policy.as_deref().is_some_and(|w| w != pol) {
            format!(
                "was made with policy {pol}, not {}",
                want_policy.as_deref().unwrap_or_default()
            )
        } else if !passed {
            format!("says the gate failed (checked at {})", d["checked_at"])
        } else {
            return Ok(());
        };
        seen.push(format!("decision in {} {why}", a.stored_in));
    }
    Err(fail_hint(
        Kind::Integrity,
        format!(
            "no policy decision says the gate passed for {}{}: {}",
            target.digest,
            want_policy
                .map(|p| format!(" with policy {p}"))
                .unwrap_or_default(),
            seen.join("; ")
        ),
        "run `ocigo policy check --policy POLICY --attest KEY` on this digest",
    ))
}
