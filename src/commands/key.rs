//! `ocigo key generate`: a cosign-format key pair.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Serialize;

use super::Outcome;
use crate::error::{Kind, fail_hint};
use crate::sign;

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub struct KeyReport {
    pub private_key: String,
    pub public_key: String,
    pub fingerprint: String,
}

/// Writes `<prefix>.key` (encrypted, cosign's format) and `<prefix>.pub`.
/// Existing files are refused unless `force`; if the public key cannot be
/// written, the private key just written is removed again.
pub fn key_generate(prefix: &str, allow_empty_password: bool, force: bool) -> Result<Outcome> {
    let private_path = PathBuf::from(format!("{prefix}.key"));
    let public_path = PathBuf::from(format!("{prefix}.pub"));
    let password = sign::password_from_env_or_prompt(true, allow_empty_password)?;
    let key = sign::generate();
    let pem = sign::encrypt_private_key(&key, &password)?;
    let public = key.verifying_key();
    if force {
        for p in [&private_path, &public_path] {
            match std::fs::remove_file(p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("replacing {}", p.display()));
                }
                _ => {}
            }
        }
    } else if let Some(p) = [&private_path, &public_path]
        .into_iter()
        .find(|p| p.exists())
    {
        return Err(fail_hint(
            Kind::Conflict,
            format!("{} already exists; nothing was written", p.display()),
            "pass --force to replace it, or --output-prefix to write another pair",
        ));
    }
    sign::write_private_key_file(&private_path, &pem)?;
    if let Err(e) = sign::write_public_key_file(&public_path, &sign::public_key_pem(&public)) {
        let _ = std::fs::remove_file(&private_path);
        return Err(e);
    }
    let report = KeyReport {
        private_key: private_path.display().to_string(),
        public_key: public_path.display().to_string(),
        fingerprint: public.fingerprint(),
    };
    let human = format!(
        "wrote {} and {} ({})\n",
        report.private_key, report.public_key, report.fingerprint
    );
    Ok(Outcome::ok(human, &report))
}
