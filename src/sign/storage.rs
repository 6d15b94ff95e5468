//! Where signatures live, as cosign stores them: the `sha256-<hex>.sig` tag
//! in the signed artifact's own repository, an OCI image manifest with one
//! simple-signing layer per signature, the DER signature in the layer's
//! `dev.cosignproject.cosign/signature` annotation. Signing appends a layer.
//!
//! Verification is offline and key based: no transparency log, no
//! certificate authority. A signature counts only if its payload names the
//! very manifest digest being verified and the repository it was found in.
//! Thresholds, and the bundle format next to this one, are
//! [`super::verify`]'s.

use std::collections::BTreeMap;
use std::io::Read;

use super::keys::{SigningKey, VerifyingKey};
use super::payload::{
    SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE, parse_payload, signature_tag,
    simple_signing_payload,
};
use super::verify::{SignatureFormat, SignatureScan, ValidSignature};
use crate::error::{Kind, fail};
use crate::oci::{self, Descriptor, Manifest, Repository};
use anyhow::{Context, Result};
use base64::Engine;

/// More signature layers than anyone makes: refuse rather than fetch them all.
const MAX_SIGNATURES: usize = 256;
/// Payloads are a few hundred bytes; refuse anything that is not.
const MAX_PAYLOAD_BYTES: u64 = 64 * 1024;
const IMAGE_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";

/// Signs `target` (a manifest or index in `repo`) and stores the signature
/// next to it, appending to signatures already there. `identity` is the
/// `docker-reference` the payload names (registry/repository).
pub fn sign(
    repo: &dyn Repository,
    identity: &str,
    target: &Descriptor,
    key: &SigningKey,
    annotations: &BTreeMap<String, String>,
) -> Result<Descriptor> {
    let payload = simple_signing_payload(identity, &target.digest, annotations);
    let signature = key.sign(&payload);
    let mut layer = Descriptor::for_bytes(SIMPLE_SIGNING_MEDIA_TYPE, &payload);
    layer.annotations.insert(
        SIGNATURE_ANNOTATION.to_string(),
        base64::engine::general_purpose::STANDARD.encode(&signature),
    );

    if !repo.blob_exists(&layer.digest)? {
        repo.push_blob(&layer, &mut &payload[..])
            .with_context(|| format!("storing a signature payload in {}", repo.location()))?;
    }
    let tag = signature_tag(&target.digest);
    let mut layers = match existing_signatures(repo, &tag)? {
        Some(m) => m.layers,
        None => Vec::new(),
    };
    // ECDSA here is deterministic (RFC 6979): signing again adds nothing new.
    if !layers.contains(&layer) {
        layers.push(layer);
    }
    store_signatures(repo, &tag, layers)
}

/// Copies the signatures of `target` from `src` to `dst`, keeping any the
/// destination already has (a countersignature made there survives a
/// re-sync). Returns how many signatures were added.
pub fn copy_signatures(
    src: &dyn Repository,
    dst: &dyn Repository,
    target: &Descriptor,
) -> Result<usize> {
    let tag = signature_tag(&target.digest);
    let Some(theirs) = existing_signatures(src, &tag)? else {
        return Ok(0);
    };
    let mut layers = match existing_signatures(dst, &tag)? {
        Some(m) => m.layers,
        None => Vec::new(),
    };
    let mut added = 0;
    for layer in theirs.layers {
        if layers.contains(&layer) {
            continue;
        }
        if !dst.blob_exists(&layer.digest)? {
            let mut payload = src.fetch_blob(&layer)?;
            dst.push_blob(&layer, &mut payload).with_context(|| {
                format!(
                    "copying signature payload {} to {}",
                    layer.digest,
                    dst.location()
                )
            })?;
        }
        layers.push(layer);
        added += 1;
    }
    if added > 0 {
        store_signatures(dst, &tag, layers)?;
    }
    Ok(added)
}

/// Writes the signature manifest for `tag` with these layers (their payload
/// blobs must be there already).
fn store_signatures(
    repo: &dyn Repository,
    tag: &str,
    layers: Vec<Descriptor>,
) -> Result<Descriptor> {
    // A plain image config listing the layers, as cosign's (go-containerregistry)
    // has: tools that show images (Harbor) can read it; nothing else depends on it.
    let config = serde_json::json!({
        "architecture": "",
        "config": {},
        "os": "",
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.digest.to_string()).collect::<Vec<_>>(),
        },
    });
    let config_bytes = oci::to_canonical_json(&config);
    let config_desc = Descriptor::for_bytes(IMAGE_CONFIG_MEDIA_TYPE, &config_bytes);
    if !repo.blob_exists(&config_desc.digest)? {
        repo.push_blob(&config_desc, &mut &config_bytes[..])
            .with_context(|| format!("storing a signature config in {}", repo.location()))?;
    }
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(oci::MEDIA_TYPE_MANIFEST.to_string()),
        artifact_type: None,
        config: config_desc,
        layers,
        subject: None,
        annotations: BTreeMap::new(),
    };
    repo.push_manifest(
        oci::MEDIA_TYPE_MANIFEST,
        &oci::to_canonical_json(&manifest),
        Some(tag),
    )
    .with_context(|| {
        format!(
            "storing the signature under tag {tag} in {}",
            repo.location()
        )
    })
}

fn existing_signatures(repo: &dyn Repository, tag: &str) -> Result<Option<Manifest>> {
    let desc = match repo.resolve(tag) {
        Ok(d) => d,
        Err(e) if crate::error::kind_of(&e) == Some(Kind::NotFound) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(Some(repo.fetch_manifest(&desc)?.manifest()?))
}

/// Repository path of a `docker-reference`, without registry host, tag or
/// digest (`host:5000/team/mods:v1` -> `team/mods`).
pub fn repository_path(docker_reference: &str) -> &str {
    let name = docker_reference
        .split_once('@')
        .map_or(docker_reference, |(n, _)| n);
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let name = match name[last_slash..].rfind(':') {
        Some(i) => &name[..last_slash + i],
        None => name,
    };
    match name.split_once('/') {
        Some((host, rest)) if host.contains('.') || host.contains(':') || host == "localhost" => {
            rest
        }
        _ => name,
    }
}

/// What the legacy `.sig` tag of `target` holds: how many signatures, those
/// that verified with `keys` (and name `repository`, when given and the
/// payload names one), and why each other one was rejected. Fetches one
/// manifest and each (small) payload blob; nothing when there is no tag.
pub fn legacy_signatures(
    repo: &dyn Repository,
    target: &Descriptor,
    keys: &[(String, VerifyingKey)],
    repository: Option<&str>,
) -> Result<SignatureScan> {
    let tag = signature_tag(&target.digest);
    let mut out = SignatureScan::default();
    let Some(manifest) = existing_signatures(repo, &tag)? else {
        return Ok(out);
    };
    if manifest.layers.len() > MAX_SIGNATURES {
        return Err(fail(
            Kind::Integrity,
            format!(
                "{}@{} has {} signatures under {tag}, more than the {MAX_SIGNATURES} ocigo reads",
                repo.location(),
                target.digest,
                manifest.layers.len()
            ),
        ));
    }
    out.found = manifest.layers.len();
    for (i, layer) in manifest.layers.iter().enumerate() {
        let n = i + 1;
        if layer.media_type != SIMPLE_SIGNING_MEDIA_TYPE {
            out.rejected.push(format!(
                "signature {n}: layer media type {}",
                layer.media_type
            ));
            continue;
        }
        let Some(sig_b64) = layer.annotations.get(SIGNATURE_ANNOTATION) else {
            out.rejected.push(format!(
                "signature {n}: no {SIGNATURE_ANNOTATION} annotation"
            ));
            continue;
        };
        let Ok(signature) = base64::engine::general_purpose::STANDARD.decode(sig_b64.trim()) else {
            out.rejected
                .push(format!("signature {n}: annotation is not base64"));
            continue;
        };
        if layer.size > MAX_PAYLOAD_BYTES {
            out.rejected.push(format!(
                "signature {n}: payload of {} bytes is too large",
                layer.size
            ));
            continue;
        }
        // One unreadable signature does not hide the others: it is rejected.
        let mut payload = Vec::new();
        let read = repo.fetch_blob(layer).and_then(|mut r| {
            r.read_to_end(&mut payload).map_err(|e| {
                oci::classify_io(e, || {
                    format!(
                        "reading signature payload {} from {}",
                        layer.digest,
                        repo.location()
                    )
                })
            })
        });
        if let Err(e) = read {
            out.rejected
                .push(format!("signature {n}: payload unreadable: {e:#}"));
            continue;
        }
        let Some((label, key)) = keys.iter().find(|(_, k)| k.verify(&payload, &signature)) else {
            out.rejected
                .push(format!("signature {n}: not made by any of the keys tried"));
            continue;
        };
        let parsed = match parse_payload(&payload) {
            Ok(p) => p,
            Err(e) => {
                out.rejected
                    .push(format!("signature {n} (by {label}): bad payload: {e}"));
                continue;
            }
        };
        if parsed.manifest_digest != target.digest.as_str() {
            out.rejected.push(format!(
                "signature {n} (by {label}): signs another manifest, {}",
                parsed.manifest_digest
            ));
            continue;
        }
        // An empty docker-reference (signed on a layout, which has no name)
        // binds the signature to no repository.
        if let Some(want) = repository
            && !parsed.docker_reference.is_empty()
            && repository_path(&parsed.docker_reference) != want
        {
            out.rejected.push(format!(
                "signature {n} (by {label}): made for repository {:?}, not {want:?}",
                parsed.docker_reference
            ));
            out.other_repository = true;
            continue;
        }
        out.valid.push(ValidSignature {
            format: SignatureFormat::Legacy,
            key: label.clone(),
            key_fingerprint: key.fingerprint(),
            identity: parsed.docker_reference,
            annotations: parsed.annotations,
            stored_in: tag.clone(),
            unchecked_transparency_log: false,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::repository_path;

    #[test]
    fn repository_path_ignores_host_tag_and_digest() {
        for (reference, want) in [
            ("127.0.0.1:5000/team/mods", "team/mods"),
            ("127.0.0.1:5000/team/mods:v1", "team/mods"),
            ("harbor.corp/team/mods@sha256:abcd", "team/mods"),
            ("localhost/x", "x"),
            ("team/mods", "team/mods"),
        ] {
            assert_eq!(repository_path(reference), want, "{reference}");
        }
    }
}
