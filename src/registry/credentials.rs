//! Credentials for a registry: the docker config (`config.json`: `auths`,
//! identity tokens, `credsStore`/`credHelpers`, in docker's order), then
//! podman's `auth.json`; the docker-style host names `ocigo login` files
//! credentials under; running a credential helper's `store`/`erase` for
//! `ocigo login`/`logout`; and checking a user name and password against a
//! registry before they are filed.
//!
//! Owns: finding and reading credential files, and talking to credential
//! helpers. Must not: write any file (`commands::login` edits
//! `config.json`), or put a secret (or a helper's output) into a message
//! or a `Debug` form.

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Result;

use super::auth::Access;
use super::client::SMALL_REQUEST_TIMEOUT;
use super::{Payload, RegistryRepository};
use crate::error::{Kind, WithHint as _, fail};

/// The `auths` key docker files Docker Hub's credentials under.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// A user name and password given to ocigo directly (`ocigo login`), not
/// read from a file. `Debug` shows the user only.
#[derive(Clone)]
pub struct LoginCredentials {
    pub user: String,
    pub pass: String,
}

impl fmt::Debug for LoginCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginCredentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

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

impl Credentials {
    pub(super) fn given(c: LoginCredentials) -> Credentials {
        Credentials {
            source: format!("user {:?} as given to ocigo login", c.user),
            secret: Secret::Basic {
                user: c.user,
                pass: c.pass,
            },
        }
    }
}

impl RegistryRepository {
    /// Checks the credentials given in [`super::RegistryOptions::credentials`] the
    /// way `docker login` does: `GET /v2/`, answering the registry's
    /// challenge (Basic, or a Bearer token with no scope from its token
    /// service). `Ok(false)`: the registry asks for no authentication at
    /// all. A refusal is an error (exit 4) naming the user, never the
    /// password.
    pub fn check_login(&self) -> Result<bool> {
        let url = format!("{}/v2/", self.base);
        let resp = self.request(
            "GET",
            &url,
            Access::Registry,
            &[],
            Payload::Empty,
            Some(SMALL_REQUEST_TIMEOUT),
        )?;
        let challenged = self.lock().challenge.is_some();
        match resp.status() {
            200 => Ok(challenged),
            401 | 403 => Err(fail(
                Kind::Remote,
                format!(
                    "registry {} refused the login: HTTP {}, using {}",
                    self.host,
                    resp.status(),
                    self.credentials_source()
                ),
            )
            .hint(
                "check the user name and password (a Harbor robot account is named \
                   robot$PROJECT+NAME; quote the $ in a shell)",
            )),
            _ => Err(self.status_error(resp, "check the login")),
        }
    }

    /// The credentials for this host: the first of the credential files
    /// (`config_paths`: the docker config, then podman's `auth.json`) that
    /// has any for it; anonymous if none has.
    pub(super) fn load_credentials(&self) -> Result<Credentials> {
        if self.config_paths.is_empty() {
            return Ok(Credentials {
                secret: Secret::Anonymous,
                source: "no credentials (no docker config: neither DOCKER_CONFIG nor a home \
                         directory is set)"
                    .into(),
            });
        }
        let mut why = Vec::new();
        for path in &self.config_paths {
            let found = self.credentials_from(path)?;
            match found.secret {
                Secret::Anonymous => why.push(found.source),
                _ => return Ok(found),
            }
        }
        Ok(Credentials {
            secret: Secret::Anonymous,
            source: format!("no credentials ({})", why.join("; ")),
        })
    }

    /// The credentials for this host in one docker-format file.
    fn credentials_from(&self, path: &Path) -> Result<Credentials> {
        let anonymous = |why: String| Credentials {
            secret: Secret::Anonymous,
            source: why,
        };
        let shown = path.display();
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(anonymous(format!("there is no {shown}")));
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

/// Where the credentials of a client that was given no docker config are
/// looked for, in order: the docker config (where `ocigo login` writes),
/// then podman's `auth.json`: `$REGISTRY_AUTH_FILE`, else
/// `$XDG_RUNTIME_DIR/containers/auth.json`; then
/// `~/.config/containers/auth.json`.
pub(super) fn default_credential_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = default_docker_config().into_iter().collect();
    let env_path = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(f) = env_path("REGISTRY_AUTH_FILE") {
        files.push(PathBuf::from(f));
    } else if let Some(d) = env_path("XDG_RUNTIME_DIR") {
        files.push(Path::new(&d).join("containers").join("auth.json"));
    }
    if let Some(h) = dirs::home_dir() {
        files.push(h.join(".config").join("containers").join("auth.json"));
    }
    files
}

/// `config.json` in `$DOCKER_CONFIG`, else in `~/.docker`.
pub fn default_docker_config() -> Option<PathBuf> {
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

/// The `auths` key `docker login HOST` files credentials under: Docker
/// Hub's names (`docker.io`, `index.docker.io`, `registry-1.docker.io`, with
/// or without a scheme) are [`DOCKER_HUB_KEY`]; anything else is reduced to
/// `HOST[:PORT]` (a scheme and a path are dropped, as docker does).
pub fn docker_login_key(arg: &str) -> Result<String> {
    let bare = arg
        .strip_prefix("https://")
        .or_else(|| arg.strip_prefix("http://"))
        .unwrap_or(arg);
    let host = bare.split('/').next().unwrap_or("");
    let bad = host.is_empty()
        || host.contains('@')
        || host
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control());
    if bad {
        return Err(fail(
            Kind::Usage,
            format!(
                "{} is not a registry host (want HOST or HOST:PORT)",
                crate::text::field(arg)
            ),
        ));
    }
    let lower = host.to_ascii_lowercase();
    if ["docker.io", "index.docker.io", "registry-1.docker.io"].contains(&lower.as_str()) {
        return Ok(DOCKER_HUB_KEY.to_string());
    }
    Ok(host.to_string())
}

/// A credential helper failed. Its output is never kept: it may hold a
/// secret.
#[derive(Debug)]
pub enum HelperError {
    /// `docker-credential-NAME` could not be started.
    NotRunnable(String),
    /// It ran and failed; `not_found`: it said "credentials not found".
    Failed { not_found: bool },
}

/// `docker-credential-NAME store`, with `{"ServerURL", "Username",
/// "Secret"}` on stdin (the credential helper protocol).
pub fn helper_store(
    helper: &str,
    server: &str,
    user: &str,
    secret: &str,
) -> std::result::Result<(), HelperError> {
    let input = serde_json::json!({"ServerURL": server, "Username": user, "Secret": secret});
    run_helper(helper, "store", input.to_string().as_bytes())
}

/// `docker-credential-NAME erase`, with the server URL on stdin.
pub fn helper_erase(helper: &str, server: &str) -> std::result::Result<(), HelperError> {
    run_helper(helper, "erase", server.as_bytes())
}

fn run_helper(helper: &str, verb: &str, input: &[u8]) -> std::result::Result<(), HelperError> {
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| HelperError::NotRunnable(format!("{program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading is judged by its status.
        let _ = stdin.write_all(input);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| HelperError::NotRunnable(format!("{program}: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let not_found = String::from_utf8_lossy(&out.stdout)
        .to_ascii_lowercase()
        .contains("credentials not found");
    Err(HelperError::Failed { not_found })
}

#[cfg(test)]
mod login_key_tests {
    use super::*;

    #[test]
    fn docker_hub_names_become_the_index_key() {
        for a in [
            "docker.io",
            "index.docker.io",
            "https://index.docker.io/v1/",
            "registry-1.docker.io",
            "DOCKER.IO",
        ] {
            assert_eq!(docker_login_key(a).unwrap(), DOCKER_HUB_KEY, "{a}");
        }
    }

    #[test]
    fn other_hosts_keep_host_and_port() {
        assert_eq!(
            docker_login_key("harbor.corp:8443").unwrap(),
            "harbor.corp:8443"
        );
        assert_eq!(
            docker_login_key("https://harbor.corp/v2/").unwrap(),
            "harbor.corp"
        );
        for bad in ["", "https://", "a b", "user@host", "/path"] {
            assert!(docker_login_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn login_credentials_debug_hides_the_password() {
        let c = LoginCredentials {
            user: "robot$p+n".into(),
            pass: "pw-SECRET".into(),
        };
        assert!(!format!("{c:?}").contains("SECRET"));
    }
}
