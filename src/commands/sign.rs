//! `ocigo sign` and `ocigo verify`, and the signing and verification steps
//! that pack, push and pull share.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use super::{Global, Outcome};
use crate::error::{Kind, fail};
use crate::oci::{Descriptor, Reference, Repository};
use crate::sign;

/// How a command signs, when asked to.
pub struct SignWith {
    pub key: PathBuf,
    pub annotations: BTreeMap<String, String>,
    /// Overrides the `docker-reference` the payload names.
    pub identity: Option<String>,
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
        let password = sign::password_from_env_or_prompt(false, true)?;
        Ok(Signer {
            key: sign::read_private_key_file(&self.key, &password)?,
            with: self,
        })
    }
}

pub(super) struct Signer<'a> {
    key: sign::SigningKey,
    with: &'a SignWith,
}

#[derive(Serialize)]
pub struct SignReport {
    pub reference: String,
    pub digest: String,
    pub identity: String,
    pub signature_tag: String,
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
    let sig = sign::storage::sign(
        repo,
        &identity,
        target,
        &signer.key,
        &signer.with.annotations,
    )?;
    Ok(SignReport {
        reference: reference.to_string(),
        digest: target.digest.to_string(),
        identity,
        signature_tag: sign::signature_tag(&target.digest),
        signature_manifest: sig.digest.to_string(),
    })
}

pub(super) fn describe_signature(r: &SignReport) -> String {
    format!(
        "signed {} ({}) as {:?}: tag {}\n",
        r.reference,
        r.digest,
        if r.identity.is_empty() {
            "any repository"
        } else {
            &r.identity
        },
        r.signature_tag
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
}

pub(super) fn verify_at(
    repo: &dyn Repository,
    reference: &Reference,
    target: &Descriptor,
    with: &VerifyWith,
) -> Result<sign::storage::VerifyReport> {
    if with.keys.is_empty() {
        return Err(fail(
            Kind::Usage,
            "no public key given: pass --key PUB (or --verify-key PUB)",
        ));
    }
    let keys = sign::read_public_key_files(&with.keys)?;
    let repository = match (&with.identity, reference) {
        (Some(id), _) => Some(sign::storage::repository_path(id).to_string()),
        (None, Reference::Registry { repository, .. }) => Some(repository.clone()),
        (None, Reference::Layout { .. }) => None,
    };
    sign::storage::verify(
        repo,
        target,
        &sign::storage::VerifyPolicy {
            keys: &keys,
            threshold: with.threshold.unwrap_or(1),
            repository: repository.as_deref(),
        },
    )
}

pub fn verify_command(g: &Global, reference: &str, with: &VerifyWith) -> Result<Outcome> {
    let r = Reference::parse(reference)?;
    let repo = g.open(&r, false)?;
    let target = repo.resolve(r.tag_or_digest())?;
    let report = verify_at(repo.as_ref(), &r, &target, with)?;
    let human = format!(
        "verified {r} ({}): signed by {}\n",
        report.digest,
        report.signed_by.join(", ")
    );
    Ok(Outcome::ok(human, &report))
}
