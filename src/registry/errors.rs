//! Turning a registry's failed answer into a classified error: the status
//! decides the class, the distribution error body (or a token service's)
//! adds the registry's own words, bounded and made safe to print: every
//! piece of server text goes through [`server_text`] (credentials scrubbed,
//! control characters escaped) before it reaches a message.
//!
//! Owns: the wording of HTTP failures. Must not: retry, or decide what a
//! status means for the operation (callers decide which statuses are
//! errors at all).

use std::io::Read;

use serde::Deserialize;

use super::RegistryRepository;
use super::client::Reply;
use super::url::url_authority;
use crate::error::{Kind, fail};
use crate::oci::Repository;

/// How much of an error response body is read to find the registry's message.
const MAX_ERROR_BODY: u64 = 64 * 1024;

impl RegistryRepository {
    pub(super) fn credentials_source(&self) -> String {
        match &self.lock().credentials {
            Some(c) => c.source.clone(),
            None => "no credentials (the registry did not ask for any)".to_string(),
        }
    }

    /// A classified error for a response with an unexpected status.
    pub(super) fn status_error(&self, resp: Reply, what: &str) -> anyhow::Error {
        let status = resp.status();
        if !self.is_registry_origin(resp.url()) {
            return self.redirect_target_error(resp, what);
        }
        let attempts = resp.attempts;
        let detail = error_detail(resp);
        let location = self.location();
        match status {
            401 | 403 => fail(
                Kind::Remote,
                format!(
                    "registry {} refused to {what} in {location}: not permitted (HTTP \
                     {status}{detail}) using {}",
                    self.host,
                    self.credentials_source()
                ),
            ),
            404 => fail(
                Kind::NotFound,
                format!("cannot {what}: not found in {location} (HTTP 404{detail})"),
            ),
            _ => {
                let tries = if attempts > 1 {
                    format!(" (the last of {attempts} attempts)")
                } else {
                    String::new()
                };
                fail(
                    Kind::Remote,
                    format!(
                        "registry {} failed to {what} in {location}: HTTP {status}{detail}{tries}",
                        self.host
                    ),
                )
            }
        }
    }

    /// The error for a response that came not from the registry but from
    /// where it redirected the request (object storage, a CDN). Names only
    /// that host: the URL itself may carry a pre-signed query.
    pub(super) fn redirect_target_error(&self, resp: Reply, what: &str) -> anyhow::Error {
        let status = resp.status();
        let store = url_authority(resp.url())
            .unwrap_or_else(|| "?".into())
            .to_string();
        let detail = error_detail(resp);
        let location = self.location();
        let noun = if what.contains("blob") {
            "blob store"
        } else {
            "server"
        };
        match status {
            401 | 403 => fail(
                Kind::Remote,
                format!(
                    "cannot {what} from {location}: the {noun} {store} the registry redirected \
                     to refused the request (HTTP {status}{detail}); ocigo sends no credentials \
                     there"
                ),
            ),
            404 => fail(
                Kind::NotFound,
                format!(
                    "cannot {what}: not found at the {noun} {store} the registry {} redirected \
                     to (HTTP 404{detail})",
                    self.host
                ),
            ),
            _ => fail(
                Kind::Remote,
                format!(
                    "cannot {what} from {location}: the {noun} {store} the registry redirected \
                     to failed: HTTP {status}{detail}"
                ),
            ),
        }
    }
}

/// The registry's explanation of a failed request, as `: CODE: message
/// (detail)`, from the distribution error JSON; "" when there is none.
pub(super) fn error_detail(resp: Reply) -> String {
    let mut body = Vec::new();
    if resp
        .into_reader()
        .take(MAX_ERROR_BODY)
        .read_to_end(&mut body)
        .is_err()
    {
        return String::new();
    }
    format_error_body(&body)
}

pub(super) fn format_error_body(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        #[serde(default)]
        errors: Vec<ErrorEntry>,
        #[serde(default)]
        details: Option<String>,
    }
    #[derive(Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
        #[serde(default)]
        detail: Option<serde_json::Value>,
    }
    let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) else {
        return String::new();
    };
    let mut parts: Vec<String> = parsed
        .errors
        .iter()
        .map(|e| {
            let mut s = [e.code.as_str(), e.message.as_str()]
                .iter()
                .filter(|x| !x.is_empty())
                .map(|x| server_text(x, 300))
                .collect::<Vec<_>>()
                .join(": ");
            // Only string details: distribution's structured ones (the
            // access list of a 401) are noise in a message.
            let detail = match &e.detail {
                Some(serde_json::Value::String(d)) => d.clone(),
                _ => String::new(),
            };
            if !detail.is_empty() {
                s.push_str(&format!(" ({})", server_text(&detail, 300)));
            }
            s
        })
        .filter(|s| !s.is_empty())
        .collect();
    if let Some(d) = parsed.details.filter(|d| !d.is_empty()) {
        parts.push(server_text(&d, 300));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join("; "))
    }
}

/// Text a server sent, made fit for a message: credentials it echoes
/// (`Authorization: Basic ...`, `token=...`) replaced by `[redacted]`,
/// cut to `max` bytes, every control character escaped.
pub(super) fn server_text(s: &str, max: usize) -> String {
    let scrubbed = crate::text::scrub_credentials(s);
    crate::text::field(&truncate(&scrubbed, max)).into_owned()
}

pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
