//! `ocigo sign`, `ocigo attest` and `ocigo verify` (signatures, or with
//! `--attestation-type` attestations), and the signing and verification
//! steps that pack, push and pull share.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use super::{Global, Outcome};
use crate::error::{Kind, fail, fail_hint};
use crate::oci::{Descriptor, Reference, Repository};
use crate::sign;

/// How a command signs, when asked to.
pub struct SignWith {
    pub key: PathBuf,
    pub annotations: BTreeMap<String, String>,
    /// Overrides the `docker-reference` the payload names.
    pub identity: Option<String>,
    /// Legacy `.sig` tag (the default) or a sigstore bundle referrer.
    pub format: sign::SignatureFormat,
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
    pub(super) fn load(&self) -> Result<Signer<'_>> {
        // Before asking for a password: a missing key file is said at once.
        match std::fs::metadata(&self.key) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(fail_hint(
                    Kind::Usage,
                    format!("private key file {} does not exist", self.key.display()),
                    "give the path of a cosign private key, or make a key pair with `ocigo key generate`",
                ));
            }
            Err(e) => {
                return Err(fail(
                    Kind::Usage,
                    format!("cannot read private key file {}: {e}", self.key.display()),
                ));
            }
            Ok(m) if !m.is_file() => {
                return Err(fail(
                    Kind::Usage,
                    format!("private key {} is not a regular file", self.key.display()),
                ));
            }
            Ok(_) => {}
        }
        let password = sign::password_from_env_or_prompt(false, true)?;
        Ok(Signer {
            key: sign::read_private_key_file(&self.key, &password)?,
            with: self,
        })
    }
}

pub struct Signer<'a> {
    key: sign::SigningKey,
    with: &'a SignWith,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub struct SignReport {
    pub reference: String,
    pub digest: String,
    pub identity: String,
    /// `legacy` or `bundle`.
    pub format: sign::SignatureFormat,
    /// The `.sig` tag (legacy format only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature_tag: Option<String>,
    /// The signature manifest: the `.sig` tag's, or the bundle referrer's.
    pub signature_manifest: String,
}

pub(super) fn sign_at(
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
    let format = signer.with.format;
    let (sig, signature_tag) = match format {
        sign::SignatureFormat::Legacy => (
            sign::storage::sign(
                repo,
                &identity,
                target,
                &signer.key,
                &signer.with.annotations,
            )?,
            Some(sign::signature_tag(&target.digest)),
        ),
        sign::SignatureFormat::Bundle => (
            sign::sign_bundle(
                repo,
                &identity,
                target,
                &signer.key,
                &signer.with.annotations,
            )?,
            None,
        ),
    };
    Ok(SignReport {
        reference: reference.to_string(),
        digest: target.digest.to_string(),
        identity,
        format,
        signature_tag,
        signature_manifest: sig.digest.to_string(),
    })
}

fn describe_identity(identity: &str) -> &str {
    if identity.is_empty() {
        "any repository"
    } else {
        identity
    }
}

pub(super) fn describe_signature(r: &SignReport) -> String {
    let stored = match &r.signature_tag {
        Some(tag) => format!("tag {tag}"),
        None => format!("sigstore bundle, referrer {}", r.signature_manifest),
    };
    format!(
        "signed {} ({}) as {:?}: {stored}\n",
        r.reference,
        r.digest,
        describe_identity(&r.identity),
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
    /// Verify attestations of this predicate type instead of signatures.
    pub attestation_type: Option<String>,
    /// With the policy-decision type: the policy file the decision must
    /// have been made with.
    pub policy: Option<PathBuf>,
}

impl VerifyWith {
    /// Reads the keys and checks the threshold against them: usage errors,
    /// found before anything is fetched.
    pub(super) fn read_keys(&self) -> Result<Vec<(String, sign::VerifyingKey)>> {
        if self.keys.is_empty() {
            return Err(fail_hint(
                Kind::Usage,
                "no public key given",
                "pass --key PUB (pull: --verify-key PUB)",
            ));
        }
        let keys = sign::read_public_key_files(&self.keys)?;
        let mut distinct: Vec<&sign::VerifyingKey> = Vec::new();
        for (_, k) in &keys {
            if !distinct.contains(&k) {
                distinct.push(k);
            }
        }
        match self.threshold {
            Some(0) => Err(fail_hint(
                Kind::Usage,
                "--threshold 0 would accept a bundle nobody signed",
                "pass --threshold 1 or more (the default is 1)",
            )),
            Some(t) if t > distinct.len() => Err(fail_hint(
                Kind::Usage,
                format!(
                    "--threshold {t} asks for more signers than the {} distinct key(s) given",
                    distinct.len()
                ),
                format!(
                    "give at least {t} different keys, or lower --threshold to {} or less",
                    distinct.len()
                ),
            )),
            _ => Ok(keys),
        }
    }
}

/// The repository path signatures must name: `--expect-identity`, else
/// the one verified; none for a layout.
fn expected_repository(with: &VerifyWith, reference: &Reference) -> Option<String> {
    match (&with.identity, reference) {
        (Some(id), _) => Some(sign::storage::repository_path(id).to_string()),
        (None, Reference::Registry { repository, .. }) => Some(repository.clone()),
        (None, Reference::Layout { .. }) => None,
    }
}

pub(super) fn verify_at(
    repo: &dyn Repository,
    reference: &Reference,
    target: &Descriptor,
    with: &VerifyWith,
) -> Result<sign::VerifyReport> {
    let keys = with.read_keys()?;
    let repository = expected_repository(with, reference);
    sign::verify::verify(
        repo,
        target,
        &sign::VerifyPolicy {
            keys: &keys,
            threshold: with.threshold.unwrap_or(1),
            repository: repository.as_deref(),
        },
    )
}

/// The note verification output carries when a bundle held log entries.
pub(super) const UNCHECKED_LOG_NOTE: &str = "note: a bundle carries transparency-log entries or \
     timestamps; they were not checked (offline, key-based verification)\n";

pub fn verify_command(g: &Global, reference: &str, with: &VerifyWith) -> Result<Outcome> {
    let r = Reference::parse(reference)?;
    let predicate_type = with
        .attestation_type
        .as_deref()
        .map(sign::attest::predicate_type)
        .transpose()?;
    with.read_keys()?;
    let repo = g.open(&r, false)?;
    let target = repo.resolve(r.tag_or_digest())?;
    if let Some(t) = predicate_type {
        return verify_attestation_at(repo.as_ref(), &r, &target, with, &t, g.quiet || g.json);
    }
    let report = verify_at(repo.as_ref(), &r, &target, with)?;
    let mut human = format!(
        "verified {r} ({}): signed by {}\n",
        report.digest,
        report.describe_signers()
    );
    if report.transparency_log_not_checked {
        human.push_str(UNCHECKED_LOG_NOTE);
    }
    Ok(Outcome::ok(human, &report))
}

/// `verify --attestation-type`: the attestations of that type that verify
/// (threshold as for signatures), their predicates printed.
fn verify_attestation_at(
    repo: &dyn Repository,
    reference: &Reference,
    target: &Descriptor,
    with: &VerifyWith,
    predicate_type: &str,
    quiet: bool,
) -> Result<Outcome> {
    let keys = with.read_keys()?;
    let repository = expected_repository(with, reference);
    let found =
        sign::require_attestation(repo, target, &keys, predicate_type, repository.as_deref())?;
    // Distinct keys (by fingerprint) among the attestations' signers.
    let mut signers: Vec<&str> = Vec::new();
    let mut fingerprints: Vec<String> = Vec::new();
    for label in found.verified.iter().flat_map(|a| &a.signed_by) {
        if let Some((_, key)) = keys.iter().find(|(l, _)| l == label)
            && !fingerprints.contains(&key.fingerprint())
        {
            fingerprints.push(key.fingerprint());
            signers.push(label);
        }
    }
    let need = with.threshold.unwrap_or(1).max(1);
    if signers.len() < need {
        return Err(fail(
            Kind::Integrity,
            format!(
                "attestations of type {predicate_type} for {}@{} are signed by {} of {need} \
                 required keys ({})",
                repo.location(),
                target.digest,
                signers.len(),
                signers.join(", ")
            ),
        ));
    }
    // A policy decision must also say the gate passed, for this digest.
    if predicate_type == crate::policy::report::PREDICATE_TYPE {
        super::policy::check_decisions(&found, target, with.policy.as_deref())?;
    } else if with.policy.is_some() {
        return Err(fail(
            Kind::Usage,
            format!(
                "--policy applies to policy decisions ({}), not to {predicate_type}",
                crate::policy::report::PREDICATE_TYPE
            ),
        ));
    }
    let mut human = String::new();
    for a in &found.verified {
        human.push_str(
            &serde_json::to_string_pretty(&a.predicate).expect("a JSON value serialises"),
        );
        human.push('\n');
    }
    // stdout holds the predicates only (`> predicate.json` works); the
    // summary goes to stderr.
    let note = format!(
        "verified {} attestation(s) of type {predicate_type} for {reference} ({}), signed by \
         {}\n{}",
        found.verified.len(),
        target.digest,
        signers.join(", "),
        if found.verified.iter().any(|a| a.unchecked_transparency_log) {
            UNCHECKED_LOG_NOTE
        } else {
            ""
        }
    );
    if !quiet {
        eprint!("{}", crate::text::terminal_safe(&note));
    }
    Ok(Outcome::ok(human, &found))
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub struct AttestReport {
    pub reference: String,
    pub digest: String,
    pub predicate_type: String,
    pub identity: String,
    /// The bundle referrer's manifest digest.
    pub attestation_manifest: String,
}

/// Creates a signed in-toto attestation of `predicate_type` with the JSON
/// in `predicate` and attaches it to `target` as a bundle referrer.
pub(super) fn attest_at(
    repo: &dyn Repository,
    reference: &Reference,
    target: &Descriptor,
    signer: &Signer,
    predicate_type: &str,
    predicate: &[u8],
) -> Result<AttestReport> {
    let identity = signer
        .with
        .identity
        .clone()
        .unwrap_or_else(|| default_identity(reference));
    let referrer = sign::attach_attestation(
        repo,
        &identity,
        target,
        &signer.key,
        predicate_type,
        predicate,
    )?;
    Ok(AttestReport {
        reference: reference.to_string(),
        digest: target.digest.to_string(),
        predicate_type: predicate_type.to_string(),
        identity,
        attestation_manifest: referrer.digest.to_string(),
    })
}

pub(super) fn describe_attestation(r: &AttestReport) -> String {
    format!(
        "attested {} ({}) as {:?}: {}, referrer {}\n",
        r.reference,
        r.digest,
        describe_identity(&r.identity),
        r.predicate_type,
        r.attestation_manifest
    )
}

/// `ocigo attest`: reads the predicate file (a regular file, bounded),
/// then signs and attaches.
pub fn attest_command(
    g: &Global,
    reference: &str,
    with: &SignWith,
    predicate: &Path,
    type_name: &str,
) -> Result<Outcome> {
    let r = Reference::parse(reference)?;
    let predicate_type = sign::attest::predicate_type(type_name)?;
    let bytes = crate::fs::read_capped(predicate, sign::attest::MAX_PREDICATE_BYTES as u64)?
        .ok_or_else(|| {
            fail(
                Kind::Usage,
                format!("predicate file {} does not exist", predicate.display()),
            )
        })?;
    if let Err(e) = serde_json::from_slice::<serde_json::Value>(&bytes) {
        return Err(fail(
            Kind::Usage,
            format!("predicate file {} is not JSON: {e}", predicate.display()),
        ));
    }
    let repo = g.open(&r, false)?;
    let signer = with.load()?;
    let target = repo.resolve(r.tag_or_digest())?;
    let report = attest_at(repo.as_ref(), &r, &target, &signer, &predicate_type, &bytes)?;
    Ok(Outcome::ok(describe_attestation(&report), &report))
}
