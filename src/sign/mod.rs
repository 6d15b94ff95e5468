//! cosign-compatible signing: key files, signature payloads, and where
//! signatures are stored and how they are verified.
//!
//! Owns: the cosign key file formats (scrypt + NaCl secretbox encrypted
//! PKCS#8 private keys, PKIX public keys) and the key password prompt
//! ([`keys`]); the "simple signing" payload a signature covers, its media
//! type, annotation and `sha256-<hex>.sig` tag naming ([`payload`]); and the
//! layout of legacy signature manifests in a repository ([`storage`]); DSSE
//! envelopes ([`dsse`]), sigstore bundles as OCI 1.1 referrers
//! ([`bundle`]), bundle signatures and in-toto attestations ([`attest`]);
//! and offline verification across both formats ([`verify`]), built on the
//! [`crate::oci::Repository`] trait. Must not: touch GOMODCACHE or GOROOT, or
//! reach the network directly; registries are only reached through
//! `oci::Repository`. Files it reads or writes are key files only.

pub mod attest;
pub mod bundle;
pub mod dsse;
pub mod keys;
pub mod payload;
pub mod storage;
pub mod verify;

pub use attest::{
    Attestations, VerifiedAttestation, attach_attestation, require_attestation, sign_bundle,
    verify_attestations,
};
pub use keys::{
    COSIGN_PRIVATE_KEY_LABEL, PASSWORD_ENV, PUBLIC_KEY_LABEL, SIGSTORE_PRIVATE_KEY_LABEL,
    SigningKey, VerifyingKey, decrypt_private_key, encrypt_private_key, generate,
    password_from_env_or_prompt, public_key_pem, read_private_key_file, read_public_key,
    read_public_key_file, write_private_key_file, write_public_key_file,
};
pub use payload::{
    COSIGN_SIGNATURE_TYPE, ParsedPayload, SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE,
    parse_payload, signature_tag, simple_signing_payload,
};
pub use verify::{
    SignatureFormat, SignatureScan, ValidSignature, VerifyPolicy, VerifyReport, verify_signatures,
};

/// Reads several public key files, each labelled with its path for messages.
pub fn read_public_key_files(
    paths: &[std::path::PathBuf],
) -> anyhow::Result<Vec<(String, VerifyingKey)>> {
    paths
        .iter()
        .map(|p| Ok((p.display().to_string(), read_public_key_file(p)?)))
        .collect()
}
