//! Verifying the signatures of a manifest in both formats cosign uses: the
//! legacy `sha256-<hex>.sig` tag ([`super::storage`]) and sigstore bundles
//! stored as OCI 1.1 referrers ([`super::bundle`]), with one set of rules:
//! a signature counts only if one of the given keys made it, it names the
//! digest being verified, and, when it names a repository, the one
//! expected; `threshold` distinct keys must have signed, in either format.
//!
//! Owns: combining the formats, the threshold, the report and the "not
//! signed" errors. Must not: read keys from files or host policy (the
//! commands do), or reach a repository other than through
//! [`crate::oci::Repository`].

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use super::bundle::{self, Want};
use super::keys::VerifyingKey;
use super::payload::signature_tag;
use super::storage::legacy_signatures;
use crate::error::{Kind, WithHint, fail};
use crate::oci::{Descriptor, Repository};

/// Where a signature was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureFormat {
    /// cosign v2's `sha256-<hex>.sig` tag (simple signing payload).
    Legacy,
    /// A sigstore bundle (DSSE, in-toto) as an OCI 1.1 referrer (cosign v3).
    Bundle,
}

impl std::fmt::Display for SignatureFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SignatureFormat::Legacy => "legacy",
            SignatureFormat::Bundle => "bundle",
        })
    }
}

/// One signature that verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidSignature {
    pub format: SignatureFormat,
    /// The label of the key that made it (as given; usually its file path).
    pub key: String,
    /// `sha256:<hex>` of the key's PKIX DER.
    pub key_fingerprint: String,
    /// The repository the signature names (`host/repo`; legacy:
    /// `docker-reference`, bundle: the subject's `name`); empty when it
    /// names none (signed on a layout, or by cosign v3).
    pub identity: String,
    /// The signed annotations (legacy: `optional`; bundle: the subject's
    /// `annotations`), cosign's `-a key=value`.
    pub annotations: BTreeMap<String, String>,
    /// The `.sig` tag, or the digest of the bundle's referrer manifest.
    pub stored_in: String,
    /// The bundle carried transparency-log entries or timestamps, which
    /// were not checked (offline, key-based verification).
    pub unchecked_transparency_log: bool,
}

/// The signatures of one manifest, both formats.
#[derive(Debug, Clone, Default)]
pub struct SignatureScan {
    /// Signatures found (valid or not).
    pub found: usize,
    pub valid: Vec<ValidSignature>,
    /// Why each signature that did not count was rejected.
    pub rejected: Vec<String>,
    /// Some signature failed only because it names another repository.
    pub other_repository: bool,
}

/// Verifies every signature of `target` in `repo`, both formats, with
/// `keys` (label, key). `repository`: the repository path (no host) a
/// signature that names one must name; `None` accepts any. No threshold:
/// the caller decides what is enough. Costs the legacy tag lookup (one
/// manifest and a payload blob per signature when there) and one referrers
/// query (then one manifest and one blob per bundle signature).
pub fn verify_signatures(
    repo: &dyn Repository,
    target: &Descriptor,
    keys: &[(String, VerifyingKey)],
    repository: Option<&str>,
) -> Result<SignatureScan> {
    let mut out = legacy_signatures(repo, target, keys, repository)?;
    let bundles = bundle::scan(repo, target, keys, repository, Want::Signatures)?;
    out.found += bundles.found;
    out.rejected.extend(bundles.rejected);
    out.other_repository |= bundles.other_repository;
    for b in bundles.verified {
        for i in b.signed_by {
            let (label, key) = &keys[i];
            out.valid.push(ValidSignature {
                format: SignatureFormat::Bundle,
                key: label.clone(),
                key_fingerprint: key.fingerprint(),
                identity: b.identity.clone(),
                annotations: b.annotations.clone(),
                stored_in: b.referrer.digest.to_string(),
                unchecked_transparency_log: b.unchecked_log,
            });
        }
    }
    Ok(out)
}

/// What verification must hold to.
pub struct VerifyPolicy<'a> {
    /// Keys with a label for messages (usually the file name).
    pub keys: &'a [(String, VerifyingKey)],
    /// How many distinct keys must have signed.
    pub threshold: usize,
    /// The repository path (without registry host) a signature that names
    /// one must name; `None` skips the identity check.
    pub repository: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub digest: String,
    /// Labels of the keys that signed (each once).
    pub signed_by: Vec<String>,
    pub signatures_found: usize,
    /// Each valid signature: its format, key, identity and annotations.
    pub signatures: Vec<ValidSignature>,
    /// Why each signature that did not count was rejected.
    pub rejected: Vec<String>,
    /// A valid bundle carried transparency-log entries or timestamps; the
    /// log was not checked.
    pub transparency_log_not_checked: bool,
}

impl VerifyReport {
    /// `key (format)` for each valid signature, for human output.
    pub fn describe_signers(&self) -> String {
        self.signatures
            .iter()
            .map(|s| format!("{} ({})", s.key, s.format))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Verifies `target`'s signatures in both formats and requires
/// `policy.threshold` (at least 1) distinct keys among the valid ones.
pub fn verify(
    repo: &dyn Repository,
    target: &Descriptor,
    policy: &VerifyPolicy,
) -> Result<VerifyReport> {
    let tried = || {
        policy
            .keys
            .iter()
            .map(|(label, k)| format!("{label} ({})", k.fingerprint()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let scan = verify_signatures(repo, target, policy.keys, policy.repository)?;
    if scan.found == 0 {
        return Err(fail(
            Kind::Integrity,
            format!(
                "{}@{} is not signed: no signature tag {} and no sigstore bundle signature \
                 among its referrers. Keys tried: {}",
                repo.location(),
                target.digest,
                signature_tag(&target.digest),
                tried()
            ),
        ));
    }
    let mut signed_by: Vec<String> = Vec::new();
    let mut distinct: Vec<String> = Vec::new();
    for s in &scan.valid {
        if !signed_by.contains(&s.key) {
            signed_by.push(s.key.clone());
        }
        if !distinct.contains(&s.key_fingerprint) {
            distinct.push(s.key_fingerprint.clone());
        }
    }
    let report = VerifyReport {
        digest: target.digest.to_string(),
        signed_by,
        signatures_found: scan.found,
        transparency_log_not_checked: scan.valid.iter().any(|s| s.unchecked_transparency_log),
        signatures: scan.valid,
        rejected: scan.rejected,
    };
    let need = policy.threshold.max(1);
    if distinct.len() < need {
        let err = fail(
            Kind::Integrity,
            format!(
                "no valid signature for {}@{}: {} of {need} required keys signed. Keys tried: \
                 {}. Found {} signature(s){}",
                repo.location(),
                target.digest,
                distinct.len(),
                tried(),
                report.signatures_found,
                if report.rejected.is_empty() {
                    String::new()
                } else {
                    format!(":\n  {}", report.rejected.join("\n  "))
                }
            ),
        );
        return Err(if scan.other_repository {
            err.hint(
                "if the bundle was signed under another repository name on purpose, pass \
                 --expect-identity REPO",
            )
        } else {
            err
        });
    }
    Ok(report)
}
