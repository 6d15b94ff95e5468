//! `ocigo sbom`: the CycloneDX SBOM of a module bundle, printed, or (with
//! a key) attached as a signed attestation; and the same step for
//! `pack --sbom`.

use anyhow::Result;

use super::sign::{AttestReport, SignWith, Signer, attest_at, describe_attestation};
use super::{Global, Outcome};
use crate::oci::{Descriptor, Reference, Repository};
use crate::sbom;

/// Makes the SBOM of `top` (read from `from`) and attaches it to `top` in
/// `to` as a signed CycloneDX attestation.
pub(super) fn attach_sbom(
    from: &dyn Repository,
    to: &dyn Repository,
    reference: &Reference,
    top: &Descriptor,
    signer: &Signer,
) -> Result<AttestReport> {
    let bom = sbom::module_bundle_sbom(from, top)?;
    attest_at(
        to,
        reference,
        top,
        signer,
        sbom::CYCLONEDX_PREDICATE_TYPE,
        &bom,
    )
}

/// `ocigo sbom REF`: prints the SBOM (JSON) to stdout; with `sign`, signs
/// it and attaches it to REF as an attestation instead.
pub fn sbom_command(g: &Global, reference: &str, sign: Option<&SignWith>) -> Result<Outcome> {
    let r = Reference::parse(reference)?;
    let repo = g.open(&r, false)?;
    let signer = sign.map(SignWith::load).transpose()?;
    let top = repo.resolve(r.tag_or_digest())?;
    match signer {
        Some(signer) => {
            let report = attach_sbom(repo.as_ref(), repo.as_ref(), &r, &top, &signer)?;
            Ok(Outcome::ok(describe_attestation(&report), &report))
        }
        None => {
            let bom = sbom::module_bundle_sbom(repo.as_ref(), &top)?;
            let value: serde_json::Value = serde_json::from_slice(&bom)?;
            // stdout: the SBOM itself; --json: a report holding it.
            let mut human = serde_json::to_string_pretty(&value).expect("a JSON value serialises");
            human.push('\n');
            let report = serde_json::json!({
                "reference": r.to_string(),
                "digest": top.digest.to_string(),
                "sbom": value,
            });
            Ok(Outcome::ok(human, &report))
        }
    }
}
