//! `ocigo login` and `ocigo logout`: filing registry credentials in the
//! docker config (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`) the way `docker login`/`docker logout` do, so
//! docker, podman, oras and ocigo share them.
//!
//! Login checks the credentials against the registry first (a refusal
//! writes nothing), then stores them with the credential helper the config
//! names for the host (`credHelpers[HOST]`, else `credsStore`; docker's
//! protocol: `docker-credential-NAME store`, JSON on stdin) and records an
//! empty `auths[HOST]` entry as docker does, or else writes
//! `auths[HOST].auth` = base64 of `user:password`. Every other key of the
//! file is kept (key order is not: the file is re-serialised, tab-indented
//! as docker writes it). The file is replaced by temp + rename with mode
//! 0600; a missing directory is created with mode 0700. A `config.json`
//! that is a link or not a regular file is refused, not followed.
//!
//! Owns: editing the docker config file. Must not: print, log or report a
//! password, token or `auth` value, nor a credential helper's output.

use std::io::{BufRead, Read};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use base64::Engine as _;
use serde::Serialize;
use serde_json::{Map, Value};

use super::{Global, Outcome};
use crate::error::{Kind, fail, fail_hint};
use crate::fs::{self as safe_fs, Durability};
use crate::registry::{
    self, DOCKER_HUB_KEY, HelperError, LoginCredentials, RegistryOptions, RegistryRepository,
};

/// The biggest docker config ocigo reads or writes.
const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;
/// The longest password line read from stdin.
const MAX_PASSWORD_BYTES: u64 = 64 * 1024;

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub struct LoginReport {
    /// The `auths` key the credentials are filed under.
    pub registry: String,
    pub username: String,
    /// The docker config file that was written.
    pub config: String,
    /// `docker-credential-NAME` when a credential helper holds the secret.
    pub credential_helper: Option<String>,
    /// False when the registry asked for no authentication at all.
    pub registry_wants_auth: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub struct LogoutReport {
    pub registry: String,
    /// False when there was nothing to remove ("Not logged in").
    pub removed: bool,
    pub config: String,
    pub credential_helper: Option<String>,
}

/// Where `ocigo login` writes: `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`.
fn config_path() -> Result<PathBuf> {
    registry::default_docker_config().ok_or_else(|| {
        fail(
            Kind::Usage,
            "cannot find the docker config: neither DOCKER_CONFIG nor a home directory is set",
        )
    })
}

/// The host to ask for the `auths` key (Docker Hub's key is not a host).
fn registry_host(key: &str) -> &str {
    if key == DOCKER_HUB_KEY {
        "registry-1.docker.io"
    } else {
        key
    }
}

/// Reads one line (the password) from `input`: at most 64 KiB, trailing
/// `\n` / `\r\n` stripped. Empty, unreadable or not UTF-8 is a usage error.
pub fn read_password_line(input: &mut dyn BufRead) -> Result<String> {
    let mut line = Vec::new();
    input
        .take(MAX_PASSWORD_BYTES + 1)
        .read_until(b'\n', &mut line)
        .context("reading the password from stdin")?;
    if line.len() as u64 > MAX_PASSWORD_BYTES {
        return Err(fail(
            Kind::Usage,
            "the password on stdin is longer than 64 KiB",
        ));
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    let pass = String::from_utf8(line)
        .map_err(|_| fail(Kind::Usage, "the password on stdin is not UTF-8"))?;
    if pass.is_empty() {
        return Err(fail_hint(
            Kind::Usage,
            "no password on stdin",
            "pipe it in: `printf '%s\\n' \"$PASSWORD\" | ocigo login HOST -u USER --password-stdin`",
        ));
    }
    Ok(pass)
}

/// `ocigo login HOST -u USER --password-stdin`, the password already read.
pub fn login(g: &Global, host_arg: &str, user: &str, pass: String) -> Result<Outcome> {
    let key = registry::docker_login_key(host_arg)?;
    if user.is_empty() || user.contains(':') || user.chars().any(char::is_control) {
        return Err(fail(
            Kind::Usage,
            format!(
                "{} is not a user name (it must be non-empty, without ':' or control characters)",
                crate::text::field(user)
            ),
        ));
    }
    let path = config_path()?;
    // Read (and judge) the config before asking the registry: a broken
    // file fails the login before anything is sent.
    let mut config = read_config(&path)?;
    let opts = RegistryOptions {
        plain_http: g.plain_http,
        ca_files: g.ca_files.clone(),
        insecure: g.insecure,
        credentials: Some(LoginCredentials {
            user: user.to_string(),
            pass: pass.clone(),
        }),
        ..RegistryOptions::default()
    };
    // Any valid repository name: the check asks `/v2/` only.
    let client = RegistryRepository::open(registry_host(&key), "ocigo-login", &opts)?;
    let wants_auth = client.check_login()?;
    let helper = helper_for(&config, &key);
    let auths = auths_mut(&mut config, &path)?;
    match &helper {
        Some(h) => {
            registry::helper_store(h, &key, user, &pass)
                .map_err(|e| helper_error(e, h, "store"))?;
            // As docker: the file keeps an empty entry naming the registry.
            auths.insert(key.clone(), Value::Object(Map::new()));
        }
        None => {
            let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            let mut entry = Map::new();
            entry.insert("auth".into(), Value::String(auth));
            auths.insert(key.clone(), Value::Object(entry));
        }
    }
    write_config(&path, &config)?;
    let report = LoginReport {
        registry: key.clone(),
        username: user.to_string(),
        config: path.display().to_string(),
        credential_helper: helper.as_ref().map(|h| format!("docker-credential-{h}")),
        registry_wants_auth: wants_auth,
    };
    let stored = match &helper {
        Some(h) => format!("credential helper docker-credential-{h}"),
        None => path.display().to_string(),
    };
    let mut human = format!(
        "Login Succeeded: {} as {} (stored in {stored})\n",
        crate::text::field(&key),
        crate::text::field(user)
    );
    if !wants_auth {
        human.push_str("note: the registry asks for no authentication\n");
    }
    Ok(Outcome::ok(human, &report))
}

/// `ocigo logout HOST`: erases the credentials from the credential helper
/// the config names for the host, and removes the host's `auths` entries.
/// Nothing to remove is not an error ("Not logged in", as docker).
pub fn logout(host_arg: &str) -> Result<Outcome> {
    let key = registry::docker_login_key(host_arg)?;
    let path = config_path()?;
    let mut config = read_config(&path)?;
    let helper = helper_for(&config, &key);
    let mut removed = false;
    if let Some(h) = &helper {
        match registry::helper_erase(h, &key) {
            Ok(()) => removed = true,
            Err(HelperError::Failed { not_found: true }) => {}
            Err(e) => return Err(helper_error(e, h, "erase")),
        }
    }
    let host = registry_host(&key).to_string();
    let mut changed = false;
    if let Some(auths) = config.get_mut("auths").and_then(Value::as_object_mut) {
        let gone: Vec<String> = auths
            .keys()
            .filter(|k| *k == &key || login_key_matches(k, &key, &host))
            .cloned()
            .collect();
        for k in gone {
            let had_secret = auths[&k].as_object().is_some_and(|o| !o.is_empty());
            auths.remove(&k);
            removed |= had_secret;
            changed = true;
        }
    }
    if changed {
        write_config(&path, &config)?;
    }
    let report = LogoutReport {
        registry: key.clone(),
        removed,
        config: path.display().to_string(),
        credential_helper: helper.as_ref().map(|h| format!("docker-credential-{h}")),
    };
    let human = if removed {
        format!(
            "Removed login credentials for {}\n",
            crate::text::field(&key)
        )
    } else {
        format!("Not logged in to {}\n", crate::text::field(&key))
    };
    Ok(Outcome::ok(human, &report))
}

/// Does an `auths` key name the registry `key` (docker also files
/// `https://HOST` and `http://HOST` forms)?
fn login_key_matches(auths_key: &str, key: &str, host: &str) -> bool {
    match registry::docker_login_key(auths_key) {
        Ok(k) => k == key || (key != DOCKER_HUB_KEY && k == host),
        Err(_) => false,
    }
}

/// The credential helper docker would store `key`'s credentials with:
/// `credHelpers[key]`, else `credsStore`.
fn helper_for(config: &Map<String, Value>, key: &str) -> Option<String> {
    let named = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .filter(|h| !h.is_empty())
            .map(str::to_string)
    };
    named(config.get("credHelpers").and_then(|c| c.get(key)))
        .or_else(|| named(config.get("credsStore")))
}

fn helper_error(e: HelperError, helper: &str, verb: &str) -> anyhow::Error {
    let program = format!("docker-credential-{helper}");
    match e {
        HelperError::NotRunnable(why) => fail_hint(
            Kind::Usage,
            format!(
                "cannot run the credential helper {program} {verb}: {why}; nothing was written"
            ),
            format!(
                "install {program} on PATH, or remove credsStore/credHelpers from the docker \
                 config to keep credentials in config.json"
            ),
        ),
        HelperError::Failed { .. } => fail_hint(
            Kind::Usage,
            format!(
                "the credential helper {program} failed to {verb} the credentials; nothing was written"
            ),
            format!("try `{program} list` to see whether the helper works"),
        ),
    }
}

/// The docker config as a JSON object; an absent file is an empty one.
fn read_config(path: &Path) -> Result<Map<String, Value>> {
    let Some(bytes) = safe_fs::read_capped(path, MAX_CONFIG_BYTES)? else {
        return Ok(Map::new());
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(fail_hint(
            Kind::Usage,
            format!(
                "docker config {} is not a JSON object; nothing was written",
                path.display()
            ),
            "fix or move the file, then log in again",
        )),
    }
}

fn auths_mut<'a>(
    config: &'a mut Map<String, Value>,
    path: &Path,
) -> Result<&'a mut Map<String, Value>> {
    let auths = config
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    if auths.is_null() {
        *auths = Value::Object(Map::new());
    }
    auths.as_object_mut().ok_or_else(|| {
        fail(
            Kind::Usage,
            format!(
                "\"auths\" in docker config {} is not an object; nothing was written",
                path.display()
            ),
        )
    })
}

/// Writes the config by temp + rename, mode 0600; creates its directory
/// (mode 0700) if missing.
fn write_config(path: &Path, config: &Map<String, Value>) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    config.serialize(&mut ser).expect("a JSON map serialises");
    out.push(b'\n');
    safe_fs::write_atomic(path, ".config.json.tmp-", &out, 0o600, Durability::Synced)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_line_strips_one_line_ending() {
        let read = |s: &[u8]| read_password_line(&mut &s[..]);
        assert_eq!(read(b"pw\n").unwrap(), "pw");
        assert_eq!(read(b"pw\r\n").unwrap(), "pw");
        assert_eq!(read(b"pw").unwrap(), "pw");
        assert_eq!(read(b"p w$x\nsecond line\n").unwrap(), "p w$x");
        assert!(read(b"\n").is_err());
        assert!(read(b"").is_err());
        assert!(read(b"\xff\n").is_err());
        let long = vec![b'a'; 70 * 1024];
        assert!(read(&long).is_err());
    }

    #[test]
    fn helper_choice_follows_docker() {
        let c: Map<String, Value> =
            serde_json::from_str(r#"{"credsStore":"desktop","credHelpers":{"h:5000":"pass"}}"#)
                .unwrap();
        assert_eq!(helper_for(&c, "h:5000").as_deref(), Some("pass"));
        assert_eq!(helper_for(&c, "other").as_deref(), Some("desktop"));
        assert_eq!(helper_for(&Map::new(), "other"), None);
    }

    #[test]
    fn logout_matches_scheme_forms_of_the_key() {
        assert!(login_key_matches("https://h:5000", "h:5000", "h:5000"));
        assert!(login_key_matches("http://h:5000/v1/", "h:5000", "h:5000"));
        assert!(!login_key_matches("h:5001", "h:5000", "h:5000"));
        assert!(login_key_matches(
            "docker.io",
            DOCKER_HUB_KEY,
            "registry-1.docker.io"
        ));
    }
}
