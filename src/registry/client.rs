//! Sending requests to a registry: the HTTP agent and its timeouts, the
//! one-time `GET /v2/` probe, and the request loop that answers a 401 once.
//!
//! Owns: how a request goes out and how a transport failure is reported.
//! Must not: interpret what an endpoint's answer means (that is `mod.rs`)
//! or how credentials are obtained (that is `auth` and `credentials`).

use std::io::{self, Read};
use std::time::Duration;

use anyhow::Result;

use super::auth::Access;
use super::challenge::pick_challenge;
use super::url::{same_origin, url_authority};
use super::{Payload, RegistryRepository};
use crate::error::{Kind, fail};
use crate::oci::io_error_is_integrity;

pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest a single socket read or write may stall (not a whole-body limit:
/// large blobs take as long as they take).
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Whole-request limit for small requests (probe, token, manifest, tags).
pub(super) const SMALL_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Blobs up to this size are fetched under SMALL_REQUEST_TIMEOUT.
pub(super) const SMALL_BLOB_BYTES: u64 = 1024 * 1024;

impl RegistryRepository {
    /// Sends a request with a small (or no) body, authenticating as needed:
    /// on a 401 it answers the challenge once and retries. Returns the
    /// response whatever its status; transport failures are errors.
    pub(super) fn request(
        &self,
        method: &str,
        url: &str,
        access: Access<'_>,
        headers: &[(&str, &str)],
        payload: Payload<'_>,
        timeout: Option<Duration>,
    ) -> Result<ureq::Response> {
        self.ensure_probed()?;
        let mut auth = self.authorization(url, access, None, false)?;
        let mut retried = false;
        loop {
            let mut req = self.agent.request(method, url);
            for (k, v) in headers {
                req = req.set(k, v);
            }
            if let Some(a) = &auth {
                req = req.set("Authorization", a);
            }
            if let Some(t) = timeout {
                req = req.timeout(t);
            }
            let result = match payload {
                Payload::Empty => req.call(),
                Payload::Bytes(b) => req.send_bytes(b),
            };
            let resp = self.response_or_error(method, url, result)?;
            // A 401 from wherever the registry redirected to (object
            // storage, a CDN) is not the registry's challenge: it is never
            // answered with credentials, and the caller reports it.
            if resp.status() == 401 && !retried && self.is_registry_origin(resp.get_url()) {
                retried = true;
                if let Some(new_auth) = self.reauthorize(&resp, url, access, auth.as_deref())? {
                    auth = Some(new_auth);
                    continue;
                }
            }
            return Ok(resp);
        }
    }

    /// Sends a streamed body. Cannot retry (the stream is consumed), so the
    /// auth must already be settled by an earlier request.
    pub(super) fn request_streaming(
        &self,
        method: &str,
        url: &str,
        access: Access<'_>,
        headers: &[(&str, &str)],
        body: impl Read,
    ) -> Result<ureq::Response> {
        self.ensure_probed()?;
        let auth = self.authorization(url, access, None, false)?;
        let mut req = self.agent.request(method, url);
        for (k, v) in headers {
            req = req.set(k, v);
        }
        if let Some(a) = &auth {
            req = req.set("Authorization", a);
        }
        let result = req.send(body);
        self.response_or_error(method, url, result)
    }

    pub(super) fn response_or_error(
        &self,
        method: &str,
        url: &str,
        result: std::result::Result<ureq::Response, ureq::Error>,
    ) -> Result<ureq::Response> {
        match result {
            Ok(resp) => Ok(resp),
            Err(ureq::Error::Status(_, resp)) => Ok(resp),
            Err(ureq::Error::Transport(t)) => Err(self.transport_error(method, url, &t)),
        }
    }

    pub(super) fn transport_error(
        &self,
        method: &str,
        url: &str,
        t: &ureq::Transport,
    ) -> anyhow::Error {
        // A failure of a stream we were sending (a VerifyingReader over the
        // caller's content) keeps its integrity class.
        if let Some(io_err) =
            std::error::Error::source(t).and_then(|s| s.downcast_ref::<io::Error>())
            && io_error_is_integrity(io_err)
        {
            return fail(
                Kind::Integrity,
                format!("{method} {url}: the content sent does not match its descriptor: {io_err}"),
            );
        }
        let mut why = t.kind().to_string();
        if let Some(m) = t.message() {
            // ureq quotes a bad redirect's Location, which may be a
            // pre-signed URL: never repeat it.
            let m = if m.starts_with("Bad redirection") {
                "the redirect's Location is not a valid URL"
            } else {
                m
            };
            why.push_str(": ");
            why.push_str(m);
        }
        if let Some(s) = std::error::Error::source(t) {
            why.push_str(": ");
            why.push_str(&s.to_string());
        }
        // Failed after a redirect elsewhere: name only that host (its URL
        // may carry a pre-signed query).
        if let Some(failed) = t.url().map(|u| u.as_str())
            && !same_origin(failed, url)
        {
            return fail(
                Kind::Remote,
                format!(
                    "{method} {url}: the request was redirected to {}, which failed: {why}",
                    url_authority(failed).unwrap_or_else(|| "?".into())
                ),
            );
        }
        let hint = if self.plain_http {
            format!(
                "Is the registry running at {}, and does it speak plain HTTP?",
                self.host
            )
        } else {
            format!(
                "Is the registry running at {}? If it speaks plain HTTP and is not on localhost, \
                 use --plain-http",
                self.host
            )
        };
        fail(
            Kind::Remote,
            format!(
                "cannot talk to registry {}: {method} {url}: {why}. {hint}",
                self.host
            ),
        )
    }

    /// Asks `GET /v2/` once per client, to learn whether and how the
    /// registry wants authentication before any request with a body.
    pub(super) fn ensure_probed(&self) -> Result<()> {
        let mut state = self.lock();
        if state.probed {
            return Ok(());
        }
        let url = format!("{}/v2/", self.base);
        let result = self.agent.get(&url).timeout(SMALL_REQUEST_TIMEOUT).call();
        let resp = self.response_or_error("GET", &url, result)?;
        if resp.status() == 401 && self.is_registry_origin(resp.get_url()) {
            state.challenge = pick_challenge(&resp);
        }
        state.probed = true;
        Ok(())
    }
}
