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
    /// `annotations`), cosign's `-a key=value`. In JSON reports a list of
    /// `{"key", "value"}` (the keys are the signer's, not ocigo's).
    #[serde(serialize_with = "annotations_as_list")]
    pub annotations: BTreeMap<String, String>,
    /// The `.sig` tag, or the digest of the bundle's referrer manifest.
    pub stored_in: String,
    /// The bundle carried transparency-log entries or timestamps, which
    /// were not checked (offline, key-based verification).
    pub unchecked_transparency_log: bool,
}

fn annotations_as_list<S: serde::Serializer>(
    map: &BTreeMap<String, String>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(map.len()))?;
    for (key, value) in map {
        seq.serialize_element(&serde_json::json!({"key": key, "value": value}))?;
    }
    seq.end()
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
    // A registry whose referrers endpoint fails (rather than answering 404
    // for "no API") must not make legacy signatures unverifiable: the
    // failure is reported with the rejections, and counts as no bundle.
    let bundles = match bundle::scan(repo, target, keys, repository, Want::Signatures) {
        Ok(b) => b,
        Err(e) => {
            out.rejected.push(format!(
                "sigstore bundles: could not read the referrers of {}: {e:#}",
                target.digest
            ));
            return Ok(out);
        }
    };
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
                 among its referrers. Keys tried: {}{}",
                repo.location(),
                target.digest,
                signature_tag(&target.digest),
                tried(),
                if scan.rejected.is_empty() {
                    String::new()
                } else {
                    format!("\n  {}", scan.rejected.join("\n  "))
                }
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Read;

    use super::*;
    use crate::error::{Kind, fail};
    use crate::oci::{Digest, FetchedManifest, MEDIA_TYPE_MANIFEST, Referrers};
    use crate::sign::keys::generate;
    use crate::store::Layout;

    /// A layout whose referrers listing fails (a registry answering 500
    /// on the referrers endpoint).
    struct NoReferrers(Layout);

    impl Referrers for NoReferrers {
        fn referrers(&self, _: &Digest, _: Option<&str>) -> Result<Vec<Descriptor>> {
            Err(fail(Kind::Remote, "referrers endpoint answered 500"))
        }
        fn push_referrer(&self, m: &str, b: &[u8], s: &Descriptor) -> Result<Descriptor> {
            self.0.push_referrer(m, b, s)
        }
    }

    impl Repository for NoReferrers {
        fn location(&self) -> String {
            self.0.location()
        }
        fn resolve(&self, r: &str) -> Result<Descriptor> {
            self.0.resolve(r)
        }
        fn fetch_manifest(&self, d: &Descriptor) -> Result<FetchedManifest> {
            self.0.fetch_manifest(d)
        }
        fn push_manifest(&self, m: &str, b: &[u8], t: Option<&str>) -> Result<Descriptor> {
            self.0.push_manifest(m, b, t)
        }
        fn blob_exists(&self, d: &Digest) -> Result<bool> {
            self.0.blob_exists(d)
        }
        fn fetch_blob(&self, d: &Descriptor) -> Result<Box<dyn Read + '_>> {
            self.0.fetch_blob(d)
        }
        fn push_blob(&self, d: &Descriptor, c: &mut dyn Read) -> Result<()> {
            self.0.push_blob(d, c)
        }
        fn list_tags(&self) -> Result<Vec<String>> {
            self.0.list_tags()
        }
    }

    fn artifact(layout: &Layout) -> Descriptor {
        let empty = Descriptor::for_bytes(crate::oci::MEDIA_TYPE_EMPTY, b"{}");
        layout.push_blob(&empty, &mut &b"{}"[..]).unwrap();
        let m = serde_json::json!({
            "schemaVersion": 2, "mediaType": MEDIA_TYPE_MANIFEST,
            "config": empty, "layers": [],
        });
        layout
            .push_manifest(
                MEDIA_TYPE_MANIFEST,
                &serde_json::to_vec(&m).unwrap(),
                Some("v1"),
            )
            .unwrap()
    }

    #[test]
    fn both_formats_count_towards_the_threshold_and_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::open_or_create(dir.path().join("l")).unwrap();
        let target = artifact(&layout);
        let (a, b) = (generate(), generate());
        let notes = BTreeMap::from([("release".to_string(), "1".to_string())]);
        crate::sign::storage::sign(&layout, "", &target, &a, &notes).unwrap();
        crate::sign::attest::sign_bundle(&layout, "reg.example/team/mods", &target, &b, &notes)
            .unwrap();
        let keys = vec![
            ("a".to_string(), a.verifying_key()),
            ("b".to_string(), b.verifying_key()),
        ];
        let policy = VerifyPolicy {
            keys: &keys,
            threshold: 2,
            repository: Some("team/mods"),
        };
        let report = verify(&layout, &target, &policy).unwrap();
        assert_eq!(report.signatures_found, 2);
        let mut got: Vec<(SignatureFormat, &str, &str)> = report
            .signatures
            .iter()
            .map(|s| (s.format, s.key.as_str(), s.identity.as_str()))
            .collect();
        got.sort_by_key(|g| g.1);
        assert_eq!(
            got,
            vec![
                (SignatureFormat::Legacy, "a", ""),
                (SignatureFormat::Bundle, "b", "reg.example/team/mods"),
            ]
        );
        assert!(report.signatures.iter().all(|s| s.annotations == notes));
        // The bundle names team/mods: elsewhere it does not count.
        let elsewhere = VerifyPolicy {
            keys: &keys,
            threshold: 2,
            repository: Some("team/other"),
        };
        let e = verify(&layout, &target, &elsewhere).unwrap_err();
        assert!(format!("{e:#}").contains("made for repository"), "{e:#}");
    }

    #[test]
    fn a_failing_referrers_listing_leaves_legacy_signatures_verifiable() {
        let dir = tempfile::tempdir().unwrap();
        let repo = NoReferrers(Layout::open_or_create(dir.path().join("l")).unwrap());
        let target = artifact(&repo.0);
        let key = generate();
        crate::sign::storage::sign(&repo, "", &target, &key, &BTreeMap::new()).unwrap();
        let keys = vec![("k".to_string(), key.verifying_key())];
        let scan = verify_signatures(&repo, &target, &keys, None).unwrap();
        assert_eq!(scan.valid.len(), 1);
        assert!(
            scan.rejected[0].contains("referrers endpoint answered 500"),
            "{:?}",
            scan.rejected
        );
    }
}
