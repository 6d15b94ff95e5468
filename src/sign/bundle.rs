//! Sigstore bundles as cosign v3 stores them: an OCI 1.1 referrer of the
//! signed manifest (`artifactType` and its one layer
//! `application/vnd.dev.sigstore.bundle.v0.3+json`, config the empty
//! descriptor, annotations `dev.sigstore.bundle.content=dsse-envelope` and
//! `dev.sigstore.bundle.predicateType`), the layer being a bundle JSON:
//!
//! ```text
//! {"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json",
//!  "verificationMaterial":{"publicKey":{"hint":"<base64 sha256 of PKIX DER>"}},
//!  "dsseEnvelope":{"payload":"<base64 in-toto Statement>",
//!                  "payloadType":"application/vnd.in-toto+json",
//!                  "signatures":[{"sig":"<base64 DER ECDSA over the PAE>"}]}}
//! ```
//!
//! The Statement's `subject` holds the manifest digest (`{"sha256": hex}`);
//! a signature has predicate type `https://sigstore.dev/cosign/sign/v1` and
//! an empty predicate (cosign puts `-a key=value` in the subject's
//! `annotations`); an attestation has its own predicate type and predicate.
//! Checked against cosign v3.1.3's output (key-only signing, no log).
//!
//! Identity: cosign v3's signature Statements name no repository; its
//! attestation Statements put `registry/repository` in the subject's
//! `name`. ocigo writes `name` the same way in both (the `docker-reference`
//! a legacy payload would name; none for a layout) and reads it as the
//! legacy identity: a named bundle counts only in that repository (host
//! ignored, as for legacy), an unnamed one is bound to no repository.
//!
//! Transparency-log entries and timestamps in a bundle are not checked
//! (offline, key-based verification, as `cosign verify --key
//! --insecure-ignore-tlog`); the results say when a bundle carried them.
//!
//! Owns: the bundle, Statement and referrer-manifest formats, writing them
//! to a [`Repository`] and reading and verifying them from one. Must not:
//! decide thresholds or policy (that is [`super::verify`]'s), reach the
//! network other than through [`Repository`].

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::dsse::{self, Envelope, IN_TOTO_PAYLOAD_TYPE};
use super::keys::{SigningKey, VerifyingKey};
use super::storage::repository_path;
use crate::error::{Kind, fail};
use crate::oci::{self, Descriptor, MEDIA_TYPE_EMPTY, MEDIA_TYPE_MANIFEST, Manifest, Repository};

/// The bundle media type cosign v3 writes (artifactType and layer).
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The older bundle media types, `...;version=0.1` to `0.3`.
const OLD_BUNDLE_MEDIA_TYPE_PREFIX: &str = "application/vnd.dev.sigstore.bundle+json;version=0.";
/// Referrer annotation: what the bundle holds (`dsse-envelope`).
pub const CONTENT_ANNOTATION: &str = "dev.sigstore.bundle.content";
/// Referrer annotation: the Statement's predicate type (unsigned: a hint
/// for listing; the signed Statement decides).
pub const PREDICATE_TYPE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";
const CREATED_ANNOTATION: &str = "org.opencontainers.image.created";
/// The predicate type of a cosign v3 signature.
pub const SIGN_PREDICATE_TYPE: &str = "https://sigstore.dev/cosign/sign/v1";
/// in-toto Statement `_type`s read; ocigo writes v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
const STATEMENT_TYPE_V01: &str = "https://in-toto.io/Statement/v0.1";

/// More bundle referrers than anyone makes: refuse rather than fetch them all.
const MAX_BUNDLES: usize = 256;
/// A signature bundle is about a kilobyte.
const MAX_SIGNATURE_BUNDLE_BYTES: u64 = 64 * 1024;
/// An attestation bundle holds its predicate (an SBOM can be large).
const MAX_ATTESTATION_BUNDLE_BYTES: u64 = 32 * 1024 * 1024;

/// Whether `t` is a sigstore bundle media type ocigo reads.
pub fn is_bundle_media_type(t: &str) -> bool {
    t == BUNDLE_MEDIA_TYPE
        || t.strip_prefix(OLD_BUNDLE_MEDIA_TYPE_PREFIX)
            .is_some_and(|v| matches!(v, "1" | "2" | "3"))
}

// ------------------------------------------------------------ writing

#[derive(Serialize)]
struct StatementOut<'a> {
    #[serde(rename = "_type")]
    kind: &'a str,
    subject: [SubjectOut<'a>; 1],
    #[serde(rename = "predicateType")]
    predicate_type: &'a str,
    predicate: &'a serde_json::Value,
}

#[derive(Serialize)]
struct SubjectOut<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'a str,
    digest: BTreeMap<&'a str, &'a str>,
    annotations: &'a BTreeMap<String, String>,
}

/// The in-toto Statement ocigo signs: one subject (`name` = `identity`
/// unless empty, `digest.sha256` = the manifest's), the subject
/// `annotations`, the predicate. Compact JSON, object keys sorted (the
/// predicate's too), so the same input gives the same bytes.
pub fn statement(
    identity: &str,
    target: &Descriptor,
    annotations: &BTreeMap<String, String>,
    predicate_type: &str,
    predicate: &serde_json::Value,
) -> Vec<u8> {
    let st = StatementOut {
        kind: STATEMENT_TYPE,
        subject: [SubjectOut {
            name: identity,
            digest: BTreeMap::from([("sha256", target.digest.hex())]),
            annotations,
        }],
        predicate_type,
        predicate,
    };
    serde_json::to_vec(&st).expect("a Statement always serialises")
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BundleOut<'a> {
    media_type: &'a str,
    verification_material: MaterialOut,
    dsse_envelope: &'a Envelope,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MaterialOut {
    public_key: HintOut,
}

#[derive(Serialize)]
struct HintOut {
    hint: String,
}

/// A v0.3 bundle of `statement` signed by `key`, the way cosign v3 writes
/// a key-only bundle (public-key hint, no log entries, no timestamps).
pub fn bundle_json(key: &SigningKey, statement: &[u8]) -> Vec<u8> {
    let envelope = dsse::sign(key, IN_TOTO_PAYLOAD_TYPE, statement);
    let b = BundleOut {
        media_type: BUNDLE_MEDIA_TYPE,
        verification_material: MaterialOut {
            public_key: HintOut {
                hint: key.verifying_key().sigstore_hint(),
            },
        },
        dsse_envelope: &envelope,
    };
    serde_json::to_vec(&b).expect("a bundle always serialises")
}

/// Stores `bundle` (bundle JSON whose Statement has `predicate_type`) as a
/// referrer of `target` in `repo`: the empty config blob, the bundle blob,
/// and the manifest, through [`oci::Referrers::push_referrer`] (referrers
/// API, fallback tag, or an untagged `index.json` entry in a layout).
/// `org.opencontainers.image.created` is written only when
/// `SOURCE_DATE_EPOCH` is set (cosign writes the signing time), so signing
/// twice gives the same manifest and adds nothing.
pub fn attach(
    repo: &dyn Repository,
    target: &Descriptor,
    bundle: &[u8],
    predicate_type: &str,
) -> Result<Descriptor> {
    let empty = Descriptor::for_bytes(MEDIA_TYPE_EMPTY, b"{}");
    if !repo.blob_exists(&empty.digest)? {
        repo.push_blob(&empty, &mut &b"{}"[..])
            .with_context(|| format!("storing the empty config blob in {}", repo.location()))?;
    }
    let layer = Descriptor::for_bytes(BUNDLE_MEDIA_TYPE, bundle);
    if !repo.blob_exists(&layer.digest)? {
        repo.push_blob(&layer, &mut &bundle[..])
            .with_context(|| format!("storing a sigstore bundle in {}", repo.location()))?;
    }
    let mut annotations = BTreeMap::from([
        (CONTENT_ANNOTATION.to_string(), "dsse-envelope".to_string()),
        (
            PREDICATE_TYPE_ANNOTATION.to_string(),
            predicate_type.to_string(),
        ),
    ]);
    if let Some(created) = source_date_epoch() {
        annotations.insert(CREATED_ANNOTATION.to_string(), created);
    }
    let mut subject = Descriptor::new(
        target.media_type.clone(),
        target.digest.clone(),
        target.size,
    );
    subject.annotations.clear();
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_MANIFEST.to_string()),
        artifact_type: Some(BUNDLE_MEDIA_TYPE.to_string()),
        config: empty,
        layers: vec![layer],
        subject: Some(subject.clone()),
        annotations,
    };
    repo.push_referrer(
        MEDIA_TYPE_MANIFEST,
        &oci::to_canonical_json(&manifest),
        &subject,
    )
    .with_context(|| {
        format!(
            "storing a sigstore bundle as a referrer of {} in {}",
            target.digest,
            repo.location()
        )
    })
}

/// `SOURCE_DATE_EPOCH` as RFC 3339 UTC, when set to a number.
fn source_date_epoch() -> Option<String> {
    let secs: i64 = std::env::var("SOURCE_DATE_EPOCH")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(crate::rfc3339::format((secs, 0)))
}

// ------------------------------------------------------------ reading

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BundleIn {
    #[serde(default)]
    media_type: String,
    #[serde(default)]
    verification_material: MaterialIn,
    #[serde(default)]
    dsse_envelope: Option<Envelope>,
    #[serde(default)]
    message_signature: Option<serde_json::Value>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MaterialIn {
    #[serde(default)]
    tlog_entries: Vec<serde_json::Value>,
    #[serde(default)]
    timestamp_verification_data: Option<TimestampsIn>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TimestampsIn {
    #[serde(default)]
    rfc3161_timestamps: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatementIn {
    #[serde(rename = "_type")]
    kind: String,
    #[serde(default)]
    subject: Vec<SubjectIn>,
    predicate_type: String,
    #[serde(default)]
    predicate: serde_json::Value,
}

#[derive(Deserialize)]
struct SubjectIn {
    #[serde(default)]
    name: String,
    #[serde(default)]
    digest: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, serde_json::Value>,
}

/// Which bundles a scan looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want<'a> {
    /// Signatures (predicate type [`SIGN_PREDICATE_TYPE`]).
    Signatures,
    /// Attestations of this predicate type.
    Attestations(&'a str),
}

impl Want<'_> {
    fn predicate_type(&self) -> &str {
        match self {
            Want::Signatures => SIGN_PREDICATE_TYPE,
            Want::Attestations(t) => t,
        }
    }

    fn max_bytes(&self) -> u64 {
        match self {
            Want::Signatures => MAX_SIGNATURE_BUNDLE_BYTES,
            Want::Attestations(_) => MAX_ATTESTATION_BUNDLE_BYTES,
        }
    }
}

/// One bundle that verified.
#[derive(Debug, Clone)]
pub struct VerifiedBundle {
    /// Indices into the keys given of those that signed it.
    pub signed_by: Vec<usize>,
    /// The referrer manifest it was found in.
    pub referrer: Descriptor,
    /// The matching subject's `name` (empty: bound to no repository).
    pub identity: String,
    /// The matching subject's annotations (non-string values as JSON text).
    pub annotations: BTreeMap<String, String>,
    pub predicate_type: String,
    pub predicate: serde_json::Value,
    /// The bundle carried transparency-log entries or timestamps, which
    /// were not checked.
    pub unchecked_log: bool,
}

/// What a scan found: the bundles of the wanted kind, and why each one
/// that did not verify was rejected.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// Bundles of the wanted kind found (verified or not).
    pub found: usize,
    pub verified: Vec<VerifiedBundle>,
    pub rejected: Vec<String>,
    /// A bundle failed only because it names another repository.
    pub other_repository: bool,
    /// Predicate types of bundles skipped as not wanted (for messages).
    pub other_types: Vec<String>,
}

/// Finds the bundle referrers of `target` in `repo` and verifies those of
/// the wanted kind with `keys`. `repository`: the repository path a named
/// bundle must name (`None`: any). Costs one referrers query, then one
/// manifest and one blob per bundle of the wanted kind.
pub fn scan(
    repo: &dyn Repository,
    target: &Descriptor,
    keys: &[(String, VerifyingKey)],
    repository: Option<&str>,
    want: Want,
) -> Result<Scan> {
    let listed: Vec<Descriptor> = repo
        .referrers(&target.digest, None)?
        .into_iter()
        .filter(|d| d.artifact_type.as_deref().is_some_and(is_bundle_media_type))
        .collect();
    let mut out = Scan::default();
    let mut candidates = Vec::new();
    for d in listed {
        // The listing's predicate type is a hint that spares fetching
        // bundles of another kind; the signed Statement decides.
        match d.annotations.get(PREDICATE_TYPE_ANNOTATION) {
            Some(t) if t != want.predicate_type() => {
                if !out.other_types.contains(t) {
                    out.other_types.push(t.clone());
                }
            }
            _ => candidates.push(d),
        }
    }
    if candidates.len() > MAX_BUNDLES {
        return Err(fail(
            Kind::Integrity,
            format!(
                "{}@{} has {} sigstore bundles, more than the {MAX_BUNDLES} ocigo reads",
                repo.location(),
                target.digest,
                candidates.len()
            ),
        ));
    }
    out.found = candidates.len();
    for d in candidates {
        match check_one(repo, target, keys, repository, want, &d) {
            Ok(v) => out.verified.push(v),
            Err(Rejection::NotWanted(t)) => {
                out.found -= 1;
                if !out.other_types.contains(&t) {
                    out.other_types.push(t);
                }
            }
            Err(Rejection::OtherRepository(why)) => {
                out.other_repository = true;
                out.rejected.push(format!("bundle {}: {why}", d.digest));
            }
            Err(Rejection::Bad(why)) => out.rejected.push(format!("bundle {}: {why}", d.digest)),
        }
    }
    Ok(out)
}

enum Rejection {
    /// Verified, but of another predicate type than wanted.
    NotWanted(String),
    OtherRepository(String),
    Bad(String),
}

impl From<anyhow::Error> for Rejection {
    fn from(e: anyhow::Error) -> Rejection {
        Rejection::Bad(format!("{e:#}"))
    }
}

fn check_one(
    repo: &dyn Repository,
    target: &Descriptor,
    keys: &[(String, VerifyingKey)],
    repository: Option<&str>,
    want: Want,
    listed: &Descriptor,
) -> std::result::Result<VerifiedBundle, Rejection> {
    let bad = |s: String| Err(Rejection::Bad(s));
    if listed.size > oci::MAX_MANIFEST_BYTES as u64 {
        return bad(format!("manifest of {} bytes is too large", listed.size));
    }
    let manifest = repo.fetch_manifest(listed)?;
    if manifest.is_index() {
        return bad("an index, not a bundle manifest".into());
    }
    let manifest = manifest.manifest()?;
    match &manifest.subject {
        Some(s) if s.digest == target.digest => {}
        Some(s) => {
            return bad(format!(
                "its manifest's subject is {}, not {}",
                s.digest, target.digest
            ));
        }
        None => return bad("its manifest has no subject".into()),
    }
    let [layer] = manifest.layers.as_slice() else {
        return bad(format!(
            "{} layers, want the one bundle layer",
            manifest.layers.len()
        ));
    };
    if !is_bundle_media_type(&layer.media_type) {
        return bad(format!("layer media type {}", layer.media_type));
    }
    if layer.size > want.max_bytes() {
        return bad(format!(
            "bundle of {} bytes is larger than the {} ocigo reads",
            layer.size,
            want.max_bytes()
        ));
    }
    let mut bytes = Vec::new();
    repo.fetch_blob(layer)?
        .take(want.max_bytes() + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            oci::classify_io(e, || {
                format!("reading bundle {} from {}", layer.digest, repo.location())
            })
        })?;
    let bundle: BundleIn = match serde_json::from_slice(&bytes) {
        Ok(b) => b,
        Err(e) => return bad(format!("not a sigstore bundle: {e}")),
    };
    if !bundle.media_type.is_empty() && !is_bundle_media_type(&bundle.media_type) {
        return bad(format!("bundle media type {}", bundle.media_type));
    }
    let Some(envelope) = bundle.dsse_envelope else {
        return bad(if bundle.message_signature.is_some() {
            "a message-signature bundle (not a DSSE envelope over an in-toto Statement), which \
             ocigo does not read"
                .into()
        } else {
            "no DSSE envelope".into()
        });
    };
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return bad(format!(
            "DSSE payload type {:?} is not in-toto ({IN_TOTO_PAYLOAD_TYPE})",
            envelope.payload_type
        ));
    }
    let (signed_by, payload) = envelope.verify(keys)?;
    if signed_by.is_empty() {
        return bad("not signed by any of the keys tried (or the envelope was altered)".into());
    }
    let by = keys[signed_by[0]].0.as_str();
    let statement: StatementIn = match serde_json::from_slice(&payload) {
        Ok(s) => s,
        Err(e) => {
            return bad(format!(
                "(by {by}) payload is not an in-toto Statement: {e}"
            ));
        }
    };
    if statement.kind != STATEMENT_TYPE && statement.kind != STATEMENT_TYPE_V01 {
        return bad(format!(
            "(by {by}) Statement type {:?} is not in-toto's",
            statement.kind
        ));
    }
    if statement.predicate_type != want.predicate_type() {
        return Err(Rejection::NotWanted(statement.predicate_type));
    }
    let hex = target.digest.hex();
    let Some(subject) = statement
        .subject
        .iter()
        .find(|s| s.digest.get("sha256").is_some_and(|d| d == hex))
    else {
        let named: Vec<String> = statement
            .subject
            .iter()
            .map(|s| {
                s.digest
                    .iter()
                    .map(|(a, h)| format!("{a}:{h}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        return bad(format!(
            "(by {by}) signs another manifest: its subject names {}",
            if named.is_empty() {
                "nothing".to_string()
            } else {
                named.join(" and ")
            }
        ));
    };
    if let Some(want_repo) = repository
        && !subject.name.is_empty()
        && repository_path(&subject.name) != want_repo
    {
        return Err(Rejection::OtherRepository(format!(
            "(by {by}) made for repository {:?}, not {want_repo:?}",
            subject.name
        )));
    }
    let annotations = subject
        .annotations
        .iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), v)
        })
        .collect();
    let unchecked_log = !bundle.verification_material.tlog_entries.is_empty()
        || bundle
            .verification_material
            .timestamp_verification_data
            .is_some_and(|t| !t.rfc3161_timestamps.is_empty());
    Ok(VerifiedBundle {
        signed_by,
        referrer: listed.clone(),
        identity: subject.name.clone(),
        annotations,
        predicate_type: statement.predicate_type,
        predicate: statement.predicate,
        unchecked_log,
    })
}

/// Whether `d` (a referrers listing entry) is a sigstore bundle.
pub fn is_bundle_referrer(d: &Descriptor) -> bool {
    d.artifact_type.as_deref().is_some_and(is_bundle_media_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_media_types() {
        assert!(is_bundle_media_type(BUNDLE_MEDIA_TYPE));
        assert!(is_bundle_media_type(
            "application/vnd.dev.sigstore.bundle+json;version=0.1"
        ));
        assert!(is_bundle_media_type(
            "application/vnd.dev.sigstore.bundle+json;version=0.3"
        ));
        assert!(!is_bundle_media_type(
            "application/vnd.dev.sigstore.bundle+json;version=0.9"
        ));
        assert!(!is_bundle_media_type(
            "application/vnd.dev.cosign.simplesigning.v1+json"
        ));
    }

    #[test]
    fn statement_matches_cosigns_shape() {
        let target = Descriptor::for_bytes(MEDIA_TYPE_MANIFEST, b"m");
        let st = statement(
            "",
            &target,
            &BTreeMap::new(),
            SIGN_PREDICATE_TYPE,
            &serde_json::json!({}),
        );
        // cosign v3.1.3 writes exactly this for an unannotated signature.
        assert_eq!(
            String::from_utf8(st).unwrap(),
            format!(
                "{{\"_type\":\"https://in-toto.io/Statement/v1\",\"subject\":[{{\"digest\":\
                 {{\"sha256\":\"{}\"}},\"annotations\":{{}}}}],\"predicateType\":\
                 \"https://sigstore.dev/cosign/sign/v1\",\"predicate\":{{}}}}",
                target.digest.hex()
            )
        );
    }
}
