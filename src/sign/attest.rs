//! Signing with the bundle format: cosign v3-style signatures (predicate
//! type `https://sigstore.dev/cosign/sign/v1`) and in-toto attestations of
//! any predicate type, each a sigstore bundle stored as an OCI 1.1
//! referrer of the signed manifest; and reading attestations back, verified.
//!
//! Owns: the library API for attestations (create and attach; verify and
//! return predicates) and bundle signing. Must not: read files or prompt
//! (callers pass keys and predicate bytes), decide policy.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use super::bundle::{self, SIGN_PREDICATE_TYPE, Want};
use super::keys::{SigningKey, VerifyingKey};
use crate::error::{Kind, fail};
use crate::oci::{Descriptor, Repository};

/// The largest predicate ocigo signs (an SBOM of a big closure fits).
pub const MAX_PREDICATE_BYTES: usize = 16 * 1024 * 1024;

/// cosign's short names for predicate types (`--type` of `cosign attest`
/// and `verify-attestation`), as cosign v3.1.3 maps them.
pub const PREDICATE_TYPE_NAMES: &[(&str, &str)] = &[
    ("cyclonedx", "https://cyclonedx.org/bom"),
    ("spdx", "https://spdx.dev/Document"),
    ("spdxjson", "https://spdx.dev/Document"),
    ("slsaprovenance", "https://slsa.dev/provenance/v0.2"),
    ("slsaprovenance02", "https://slsa.dev/provenance/v0.2"),
    ("slsaprovenance1", "https://slsa.dev/provenance/v1"),
    ("link", "https://in-toto.io/Link/v1"),
    ("vuln", "https://cosign.sigstore.dev/attestation/vuln/v1"),
    ("openvex", "https://openvex.dev/ns"),
    ("custom", "https://cosign.sigstore.dev/attestation/v1"),
];

/// The predicate type for `name`: a cosign short name (`cyclonedx`) or a
/// URI as is. Anything else is a usage error.
pub fn predicate_type(name: &str) -> Result<String> {
    if let Some((_, uri)) = PREDICATE_TYPE_NAMES.iter().find(|(n, _)| *n == name) {
        return Ok(uri.to_string());
    }
    let is_uri = name.split_once(':').is_some_and(|(scheme, rest)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            && !rest.is_empty()
    }) && !name.chars().any(|c| c.is_whitespace() || c.is_control());
    if !is_uri {
        return Err(fail(
            Kind::Usage,
            format!(
                "attestation type {name:?} is neither a URI nor one of cosign's names ({})",
                PREDICATE_TYPE_NAMES
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(name.to_string())
}

/// Signs `target` in the bundle format (a cosign v3 signature) and stores
/// it as a referrer in `repo`. `identity`: the `registry/repository` the
/// Statement's subject names (empty: none, bound to no repository);
/// `annotations`: cosign's `-a key=value`. Deterministic: signing again
/// with the same key stores nothing new (unless `SOURCE_DATE_EPOCH`
/// changes). Returns the referrer manifest's descriptor.
pub fn sign_bundle(
    repo: &dyn Repository,
    identity: &str,
    target: &Descriptor,
    key: &SigningKey,
    annotations: &BTreeMap<String, String>,
) -> Result<Descriptor> {
    let statement = bundle::statement(
        identity,
        target,
        annotations,
        SIGN_PREDICATE_TYPE,
        &serde_json::json!({}),
    );
    let b = bundle::bundle_json(key, &statement);
    bundle::attach(repo, target, &b, SIGN_PREDICATE_TYPE)
}

/// Creates an in-toto attestation of `target` (predicate type
/// `predicate_type`, predicate the JSON `predicate`), signs it with `key`
/// in a sigstore bundle and stores it as a referrer in `repo`, as `cosign
/// attest` does. The predicate must be a JSON value (its object keys are
/// written sorted, compact). Returns the referrer manifest's descriptor.
pub fn attach_attestation(
    repo: &dyn Repository,
    identity: &str,
    target: &Descriptor,
    key: &SigningKey,
    predicate_type: &str,
    predicate: &[u8],
) -> Result<Descriptor> {
    if predicate.len() > MAX_PREDICATE_BYTES {
        return Err(fail(
            Kind::Usage,
            format!(
                "the predicate is {} bytes, more than the {MAX_PREDICATE_BYTES} ocigo signs",
                predicate.len()
            ),
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(predicate)
        .map_err(|e| fail(Kind::Usage, format!("the predicate is not JSON: {e}")))?;
    if predicate_type == SIGN_PREDICATE_TYPE {
        return Err(fail(
            Kind::Usage,
            format!("{SIGN_PREDICATE_TYPE} is the signature predicate type; use sign instead"),
        ));
    }
    let statement = bundle::statement(identity, target, &BTreeMap::new(), predicate_type, &value);
    let b = bundle::bundle_json(key, &statement);
    bundle::attach(repo, target, &b, predicate_type)
}

/// One attestation that verified.
#[derive(Debug, Clone, Serialize)]
pub struct VerifiedAttestation {
    pub predicate_type: String,
    pub predicate: serde_json::Value,
    /// Labels of the keys that signed it.
    pub signed_by: Vec<String>,
    /// The repository its subject names (empty: none).
    pub identity: String,
    /// The digest of its referrer manifest.
    pub stored_in: String,
    /// It carried transparency-log entries or timestamps, not checked.
    pub unchecked_transparency_log: bool,
}

/// The attestations of one type found for a manifest.
#[derive(Debug, Clone, Serialize)]
pub struct Attestations {
    pub digest: String,
    pub predicate_type: String,
    /// Attestations of that type found (verified or not).
    pub found: usize,
    pub verified: Vec<VerifiedAttestation>,
    pub rejected: Vec<String>,
    /// Predicate types of the other bundles found (signatures included).
    pub other_types: Vec<String>,
}

/// Finds and verifies the attestations of `target` with predicate type
/// `predicate_type` in `repo`, with `keys`; `repository` as for
/// signatures. Never fails for want of attestations: see
/// [`require_attestation`].
pub fn verify_attestations(
    repo: &dyn Repository,
    target: &Descriptor,
    keys: &[(String, VerifyingKey)],
    predicate_type: &str,
    repository: Option<&str>,
) -> Result<Attestations> {
    let scan = bundle::scan(
        repo,
        target,
        keys,
        repository,
        Want::Attestations(predicate_type),
    )?;
    Ok(Attestations {
        digest: target.digest.to_string(),
        predicate_type: predicate_type.to_string(),
        found: scan.found,
        verified: scan
            .verified
            .into_iter()
            .map(|b| VerifiedAttestation {
                predicate_type: b.predicate_type,
                predicate: b.predicate,
                signed_by: b.signed_by.iter().map(|&i| keys[i].0.clone()).collect(),
                identity: b.identity,
                stored_in: b.referrer.digest.to_string(),
                unchecked_transparency_log: b.unchecked_log,
            })
            .collect(),
        rejected: scan.rejected,
        other_types: scan.other_types,
    })
}

/// [`verify_attestations`], failing (exit 3) unless at least one
/// attestation of the type verified; the error lists what was found.
pub fn require_attestation(
    repo: &dyn Repository,
    target: &Descriptor,
    keys: &[(String, VerifyingKey)],
    predicate_type: &str,
    repository: Option<&str>,
) -> Result<Attestations> {
    let found = verify_attestations(repo, target, keys, predicate_type, repository)?;
    if found.verified.is_empty() {
        let mut why = format!(
            "no valid attestation of type {predicate_type} for {}@{}: found {}",
            repo.location(),
            target.digest,
            found.found
        );
        if !found.other_types.is_empty() {
            why.push_str(&format!(
                "; bundles of other types there: {}",
                found.other_types.join(", ")
            ));
        }
        if !found.rejected.is_empty() {
            why.push_str(&format!(":\n  {}", found.rejected.join("\n  ")));
        }
        return Err(fail(Kind::Integrity, why));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicate_type_names_and_uris() {
        assert_eq!(
            predicate_type("cyclonedx").unwrap(),
            "https://cyclonedx.org/bom"
        );
        assert_eq!(
            predicate_type("https://example.com/approval/v1").unwrap(),
            "https://example.com/approval/v1"
        );
        assert!(predicate_type("approval").is_err());
        assert!(predicate_type("https://x y").is_err());
    }
}
