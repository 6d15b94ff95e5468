//! Host pull policy: the operator's rules for what `ocigo pull` may install
//! on this host (`/etc/ocigo/config.json`, `$OCIGO_CONFIG`,
//! `OCIGO_REQUIRE_SIGNATURE`).
//!
//! Owns: reading and merging the host configuration files (a later file can
//! only narrow, never widen). Must not: fetch, verify or install anything;
//! the pull command applies what this returns.

use std::path::PathBuf;

use anyhow::Result;

use crate::error::{Kind, fail};
use crate::sign;

/// The system's rules for pulls, set by an operator to make verification
/// mandatory on a host.
pub const SYSTEM_CONFIG: &str = "/etc/ocigo/config.json";

/// A host configuration file (JSON, `schemas/host-config.v1.schema.json`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostConfig {
    #[serde(default)]
    pub pull: PullPolicy,
}

#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PullPolicy {
    #[serde(default)]
    pub require_signature: bool,
    /// Absolute paths of the only public keys trusted for pulls.
    #[serde(default)]
    pub verify_keys: Vec<PathBuf>,
    #[serde(default)]
    pub threshold: Option<usize>,
}

impl PullPolicy {
    /// Whether the host restricts pulls at all.
    pub fn is_set(&self) -> bool {
        self.require_signature || !self.verify_keys.is_empty() || self.threshold.is_some()
    }
}

/// The pull policy in force: [`SYSTEM_CONFIG`], made stricter (never looser)
/// by the file `$OCIGO_CONFIG` names and by `OCIGO_REQUIRE_SIGNATURE`.
/// Returns the policy and the files it came from, for messages. A file that
/// cannot be read or parsed is an error, never an empty policy.
pub fn pull_policy() -> Result<(PullPolicy, Vec<PathBuf>)> {
    let mut files = vec![PathBuf::from(SYSTEM_CONFIG)];
    if let Some(extra) = std::env::var_os("OCIGO_CONFIG").filter(|v| !v.is_empty()) {
        files.push(PathBuf::from(extra));
    }
    let mut policy = PullPolicy::default();
    let mut sources = Vec::new();
    for (i, path) in files.into_iter().enumerate() {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            // No system file: no system policy. A named file must exist.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && i == 0 => continue,
            Err(e) => {
                return Err(fail(
                    Kind::Usage,
                    format!(
                        "cannot read the ocigo host configuration {}: {e}",
                        path.display()
                    ),
                ));
            }
        };
        let config: HostConfig = serde_json::from_str(&text).map_err(|e| {
            fail(
                Kind::Usage,
                format!(
                    "the ocigo host configuration {} is not valid: {e}",
                    path.display()
                ),
            )
        })?;
        let more = config.pull;
        if let Some(relative) = more.verify_keys.iter().find(|k| !k.is_absolute()) {
            return Err(fail(
                Kind::Usage,
                format!(
                    "{}: verifyKeys entry {} must be an absolute path",
                    path.display(),
                    relative.display()
                ),
            ));
        }
        if !policy.verify_keys.is_empty() && !more.verify_keys.is_empty() {
            // A second file may narrow the trusted keys, never add to them.
            let trusted = sign::read_public_key_files(&policy.verify_keys)?;
            for (label, key) in sign::read_public_key_files(&more.verify_keys)? {
                if !trusted.iter().any(|(_, t)| *t == key) {
                    return Err(fail(
                        Kind::Usage,
                        format!(
                            "{} names key {label}, which {} does not trust",
                            path.display(),
                            sources
                                .iter()
                                .map(|p: &PathBuf| p.display().to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
        }
        policy.require_signature |= more.require_signature;
        if !more.verify_keys.is_empty() {
            policy.verify_keys = more.verify_keys;
        }
        policy.threshold = policy.threshold.max(more.threshold);
        sources.push(path);
    }
    match std::env::var("OCIGO_REQUIRE_SIGNATURE")
        .unwrap_or_default()
        .to_ascii_lowercase()
        .as_str()
    {
        "" | "0" | "false" | "no" | "off" => {}
        "1" | "true" | "yes" | "on" => policy.require_signature = true,
        other => {
            return Err(fail(
                Kind::Usage,
                format!("OCIGO_REQUIRE_SIGNATURE={other:?}: use 1 or 0"),
            ));
        }
    }
    Ok((policy, sources))
}
