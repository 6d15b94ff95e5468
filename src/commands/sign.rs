//! `ocigo sign` and `ocigo verify`, and the signing and verification steps
//! that pack, push and pull share.

use std::collections::BTreeMap;
use std::path::PathBuf;

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

pub(super) struct Signer<'a> {
    key: sign::SigningKey,
    with: &'a SignWith,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
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

pub(super) fn verify_at(
    repo: &dyn Repository,
    reference: &Reference,
    target: &Descriptor,
    with: &VerifyWith,
) -> Result<sign::storage::VerifyReport> {
    let keys = with.read_keys()?;
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
    with.read_keys()?;
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
