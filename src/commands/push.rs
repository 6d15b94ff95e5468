//! `ocigo push`: copy an artifact, its referrers (OCI 1.1) and its cosign
//! `.sig` signatures between a layout and a registry, either direction,
//! sending only missing blobs.

use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;

use super::sign::{SignReport, SignWith, describe_signature, sign_at};
use super::{Global, Outcome, digest_before, human_bytes, tag_move_note};
use crate::oci::{Descriptor, Reference};
use crate::sign;
use crate::transfer::{self, CopyStats};

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub struct PushReport {
    pub source: String,
    pub destination: String,
    pub digest: String,
    pub copy: CopyStats,
    /// Signatures copied along (merged with any the destination has).
    pub signatures_copied: usize,
    /// The digest the destination tag named before (null: a new tag).
    pub previous_digest: Option<String>,
    /// Whether the tag now names other content than before.
    pub tag_moved: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignReport>,
}

/// Copies an artifact and, as `cosign copy` does, its signatures.
pub fn push(
    g: &Global,
    src: &str,
    dest: &str,
    sign_with: Option<&SignWith>,
) -> Result<(Outcome, Descriptor)> {
    let src_ref = Reference::parse(src)?;
    let dest_ref = Reference::parse(dest)?;
    let signer = sign_with.map(SignWith::load).transpose()?;
    let from = g.open(&src_ref, false)?;
    let to = g.open(&dest_ref, true)?;
    let top = from.resolve(src_ref.tag_or_digest())?;
    let previous_digest = digest_before(to.as_ref(), dest_ref.tag())?;
    let progress = g.progress();
    let (copy, referrers) = transfer::copy_with_referrers(
        from.as_ref(),
        &top,
        to.as_ref(),
        dest_ref.tag(),
        &g.copy_options()?,
        &progress,
    )?;
    // cosign's legacy `.sig` tags: of the artifact and of each referrer.
    let mut signatures_copied = 0;
    for signed in std::iter::once(&top).chain(&referrers) {
        signatures_copied += sign::storage::copy_signatures(from.as_ref(), to.as_ref(), signed)?;
    }
    let signature = match &signer {
        Some(signer) => Some(sign_at(to.as_ref(), &dest_ref, &top, signer)?),
        None => None,
    };
    let report = PushReport {
        source: src_ref.to_string(),
        destination: dest_ref.to_string(),
        digest: top.digest.to_string(),
        copy,
        signatures_copied,
        tag_moved: previous_digest
            .as_ref()
            .is_some_and(|p| *p != top.digest.to_string()),
        previous_digest,
        signature,
    };
    let mut human = format!(
        "copied {} to {}: {} of {} blobs sent ({} of {})\ndigest: {}\n",
        report.source,
        report.destination,
        report.copy.blobs_sent,
        report.copy.blobs,
        human_bytes(report.copy.bytes_sent),
        human_bytes(report.copy.bytes_total),
        report.digest
    );
    human.push_str(&tag_move_note(
        &dest_ref,
        report.previous_digest.as_deref(),
        &report.digest,
    ));
    if report.copy.referrers > 0 {
        let _ = writeln!(
            human,
            "{} referrer(s) copied (signatures, attestations, SBOMs)",
            report.copy.referrers
        );
    }
    if report.signatures_copied > 0 {
        let _ = writeln!(human, "{} signature(s) copied", report.signatures_copied);
    }
    if let Some(s) = &report.signature {
        human.push_str(&describe_signature(s));
    }
    Ok((Outcome::ok(human, &report), top))
}
