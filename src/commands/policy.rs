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
//! `--attest KEY` signs the decision as an in-toto statement (predicate
//! type [`crate::policy::report::PREDICATE_TYPE`]) and attaches it to the
//! bundle as a referrer, through the [`DecisionAttester`] interface.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::{Global, Outcome};
use crate::artifact;
use crate::error::{Kind, fail, fail_hint, kind_of};
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

/// Signs a decision and attaches it to the bundle; the cosign v3 work
/// provides the implementation (DSSE envelope, in-toto statement, bundle
/// referrer). Returns the attestation's manifest digest.
pub trait DecisionAttester {
    fn attest(
        &self,
        repo: &dyn Repository,
        reference: &Reference,
        subject: &Descriptor,
        predicate_type: &str,
        predicate: &serde_json::Value,
    ) -> Result<String>;
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
    for format in &s.formats {
        match format {
            SignatureFormat::Legacy => {
                facts.formats.push("legacy".into());
                let verified = crate::sign::storage::verify(
                    repo,
                    top,
                    &crate::sign::storage::VerifyPolicy {
                        keys: &keys,
                        threshold: 1,
                        repository: repository.as_deref(),
                    },
                );
                match verified {
                    Ok(report) => {
                        for (label, ann) in &report.annotations {
                            let missing: Vec<String> = s
                                .annotations
                                .iter()
                                .filter(|(k, v)| ann.get(*k) != Some(*v))
                                .map(|(k, v)| format!("{k}={v}"))
                                .collect();
                            if missing.is_empty() {
                                if !facts.signed_by.contains(label) {
                                    facts.signed_by.push(label.clone());
                                }
                            } else {
                                facts.notes.push(format!(
                                    "a signature by {label} lacks the annotation(s) {}",
                                    missing.join(", ")
                                ));
                            }
                        }
                        facts.notes.extend(report.rejected);
                    }
                    // Not signed, or not by these keys: a violation.
                    Err(e) if kind_of(&e) == Some(Kind::Integrity) => {
                        facts.notes.push(format!("{e:#}"));
                    }
                    Err(e) => return Err(e),
                }
            }
            SignatureFormat::Bundle => {
                facts.formats.push("bundle".into());
                facts.notes.push(
                    "cosign v3 bundle signatures cannot be verified by this ocigo yet".into(),
                );
            }
        }
    }
    Ok(facts)
}

/// `ocigo policy check`.
pub fn check(
    g: &Global,
    args: &CheckArgs,
    attester: Option<&dyn DecisionAttester>,
) -> Result<Outcome> {
    let loaded = spec::load(&args.policy)?;
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
    if let Some(with) = &args.attest {
        let attester = attester.ok_or_else(|| {
            fail(
                Kind::Usage,
                "--attest: this ocigo has no in-toto attestation support yet",
            )
        })?;
        let _ = with;
        let predicate = serde_json::to_value(&decision)?;
        let digest = attester.attest(
            repo.as_ref(),
            &src_ref,
            &top,
            crate::policy::report::PREDICATE_TYPE,
            &predicate,
        )?;
        decision.attestation = Some(digest);
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
