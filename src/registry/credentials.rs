//! Credentials for a registry from the docker config: `config.json`
//! (`auths`, identity tokens) and its credential helpers, in docker's order.
//!
//! Owns: finding and reading the docker config. Must not: send anything
//! anywhere, or put a secret (or a helper's output) into a message.

use std::io;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::RegistryRepository;
use crate::error::{Kind, fail};

pub(super) enum Secret {
    Anonymous,
    Basic { user: String, pass: String },
    IdentityToken(String),
}

pub(super) struct Credentials {
    pub(super) secret: Secret,
    /// Where the credentials came from, for messages. Never the secret.
    pub(super) source: String,
}

impl RegistryRepository {
    /// Reads the credentials for this host from the docker config.
    pub(super) fn load_credentials(&self) -> Result<Credentials> {
        let anonymous = |why: String| Credentials {
            secret: Secret::Anonymous,
            source: format!("no credentials ({why})"),
        };
        let Some(path) = &self.config_path else {
            return Ok(anonymous(
                "no docker config: neither DOCKER_CONFIG nor a home directory is set".into(),
            ));
        };
        let shown = path.display();
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(anonymous(format!("there is no docker config at {shown}")));
            }
            Err(e) => {
                return Err(fail(
                    Kind::Usage,
                    format!("cannot read docker config {shown}: {e}"),
                ));
            }
        };
        let config: serde_json::Value = serde_json::from_slice(&text).map_err(|_| {
            fail(
                Kind::Usage,
                format!("docker config {shown} is not valid JSON"),
            )
        })?;
        let helper = credential_helper(&config, &self.host);
        let helper_source = |h: &str| {
            format!(
                "credentials for {} from credential helper docker-credential-{h} (configured in \
                 {shown})",
                self.host
            )
        };
        use docker_credential::{CredentialRetrievalError as E, DockerCredential as C};
        match docker_credential::get_credential_from_reader(&text[..], &self.host) {
            Ok(C::UsernamePassword(user, pass)) => {
                let source = match &helper {
                    Some(h) => helper_source(h),
                    None => format!("user {user:?} for {} from {shown}", self.host),
                };
                Ok(Credentials {
                    secret: Secret::Basic { user, pass },
                    source,
                })
            }
            Ok(C::IdentityToken(token)) => Ok(Credentials {
                secret: Secret::IdentityToken(token),
                source: format!("the identity token for {} from {shown}", self.host),
            }),
            Err(E::NoCredentialConfigured) => {
                Ok(anonymous(format!("none for {} in {shown}", self.host)))
            }
            // Helpers answer "credentials not found" for unknown hosts.
            Err(E::HelperFailure { stdout, .. })
                if stdout
                    .to_ascii_lowercase()
                    .contains("credentials not found") =>
            {
                Ok(anonymous(format!(
                    "none for {} in credential helper docker-credential-{}",
                    self.host,
                    helper.as_deref().unwrap_or("?")
                )))
            }
            // The helper's output is not shown: it may hold a secret.
            Err(
                E::HelperFailure { .. } | E::HelperCommunicationError | E::MalformedHelperResponse,
            ) => {
                let h = helper.as_deref().unwrap_or("?");
                Err(fail(
                    Kind::Usage,
                    format!(
                        "credential helper docker-credential-{h} (configured in {shown}) failed \
                         to give credentials for {}; is it installed? Try `echo {} | \
                         docker-credential-{h} get`",
                        self.host, self.host
                    ),
                ))
            }
            Err(E::CredentialDecodingError | E::CredentialMismatchError) => Err(fail(
                Kind::Usage,
                format!(
                    "the auths entry for {} in docker config {shown} cannot be decoded (want \
                     base64 of user:password)",
                    self.host
                ),
            )),
            Err(E::ConfigNotFound | E::ConfigReadError) => Err(fail(
                Kind::Usage,
                format!("docker config {shown} is not a valid docker config"),
            )),
        }
    }
}

pub(super) fn default_docker_config() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(d) if !d.is_empty() => Some(Path::new(&d).join("config.json")),
        _ => dirs::home_dir().map(|h| h.join(".docker").join("config.json")),
    }
}

/// The credential helper that the docker config uses for `host`, following
/// docker's order: `credHelpers[host]`, then a plain `auths` entry (no
/// helper), then `credsStore`.
pub(super) fn credential_helper(config: &serde_json::Value, host: &str) -> Option<String> {
    if let Some(h) = config["credHelpers"][host]
        .as_str()
        .filter(|h| !h.is_empty())
    {
        return Some(h.to_string());
    }
    let has_auth_entry = config["auths"].as_object().is_some_and(|auths| {
        auths.iter().any(|(key, entry)| {
            auths_key_host(key) == host
                && ["auth", "identitytoken", "username"]
                    .iter()
                    .any(|f| entry[*f].as_str().is_some_and(|v| !v.is_empty()))
        })
    });
    if has_auth_entry {
        return None;
    }
    config["credsStore"]
        .as_str()
        .filter(|h| !h.is_empty())
        .map(str::to_string)
}

/// `https://host/v1/` (as `docker login` may write keys) -> `host`.
pub(super) fn auths_key_host(key: &str) -> &str {
    match key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
    {
        Some(rest) => rest.split('/').next().unwrap_or(rest),
        None => key,
    }
}
