//! Sending requests to a registry: the HTTP agent and its deadlines, the
//! one-time `GET /v2/` probe, redirects (followed here, hop by hop, so that
//! credentials never leave the registry's origin and a failing hop is named
//! by host only), and the request loop that answers a 401 once.
//!
//! Owns: how a request goes out, the [`Reply`] it comes back as, and how a
//! transport failure is reported. Must not: interpret what an endpoint's
//! answer means (that is `mod.rs`) or how credentials are obtained (that is
//! `auth` and `credentials`).

use std::io::Read;
use std::time::Duration;

use anyhow::Result;
use ureq::SendBody;
use ureq::http;

use super::auth::Access;
use super::challenge::pick_challenge;
use super::deadlines::{
    ENV_CONNECT_TIMEOUT, ENV_IDLE_TIMEOUT, NetworkLimits, describe_io, format_secs,
};
use super::retry::{parse_retry_after, status_is_transient, transport_is_transient};
use super::tls::tls_failure;
use super::url::{join_url, same_origin, shown_url, url_authority};
use super::{Payload, RegistryRepository};
use crate::error::{Kind, WithHint, fail};
use crate::oci::io_error_kind;

/// Whole-request limit for small requests (probe, token, manifest, tags),
/// on top of the idle timeout.
pub(super) const SMALL_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Blobs up to this size are fetched under SMALL_REQUEST_TIMEOUT.
pub(super) const SMALL_BLOB_BYTES: u64 = 1024 * 1024;

/// Redirects followed for one request (blob GETs go to object storage).
const MAX_REDIRECTS: usize = 5;

/// Idle connections kept per host (and in all). ureq keeps 3 per host by
/// default: with 8 transfers at once, 5 connections were closed after
/// every request and opened again (a DNS lookup, a TCP and a TLS
/// handshake each time; measured: 828 checksum-database GETs through
/// proxy.golang.org took 145 s instead of about 15 s, mostly 5 s DNS
/// timeouts of those repeated lookups). Only connections the concurrency
/// actually opened are kept, so a high cap costs nothing when unused.
pub(super) const IDLE_CONNECTIONS_PER_HOST: usize = 64;
pub(super) const IDLE_CONNECTIONS: usize = 256;

/// The agent every request of one client goes through. Redirects are not
/// followed by ureq: [`RegistryRepository::exchange`] follows them.
pub(super) fn build_agent(limits: &NetworkLimits, tls: ureq::tls::TlsConfig) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .timeout_connect(Some(limits.connect_timeout))
        // Every read and write, on new and pooled connections alike.
        .timeout_per_read(Some(limits.idle_timeout))
        .timeout_per_write(Some(limits.idle_timeout))
        // Response headers must be complete within the idle timeout too
        // (a server trickling headers never trips a per-read limit).
        .timeout_recv_response(Some(limits.idle_timeout))
        .user_agent(concat!("ocigo/", env!("CARGO_PKG_VERSION")))
        .http_status_as_error(false)
        .max_redirects(0)
        .max_idle_connections(IDLE_CONNECTIONS)
        .max_idle_connections_per_host(IDLE_CONNECTIONS_PER_HOST)
        // Proxies are chosen per request (see `proxy`), never by ureq.
        .proxy(None)
        .tls_config(tls)
        .build();
    agent_with(config)
}

/// An agent with `config`, the default connectors and the caching resolver
/// (see [`super::resolver`]).
pub(super) fn agent_with(config: ureq::config::Config) -> ureq::Agent {
    ureq::Agent::with_parts(
        config,
        ureq::unversioned::transport::DefaultConnector::new(),
        super::resolver::CachingResolver::new(),
    )
}

/// A response, with the URL it finally came from (after redirects).
pub(super) struct Reply {
    inner: http::Response<ureq::Body>,
    url: String,
    /// How many times the request was sent (more than 1 after retries).
    pub(super) attempts: u32,
}

impl Reply {
    pub(super) fn status(&self) -> u16 {
        self.inner.status().as_u16()
    }

    /// The first value of header `name`, if it is text.
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.inner.headers().get(name).and_then(|v| v.to_str().ok())
    }

    /// Every value of header `name` that is text.
    pub(super) fn all(&self, name: &str) -> Vec<&str> {
        self.inner
            .headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }

    /// The URL this response came from.
    pub(super) fn url(&self) -> &str {
        &self.url
    }

    pub(super) fn into_reader(self) -> impl Read + Send + 'static {
        self.inner.into_body().into_reader()
    }
}

/// What a request sends.
pub(super) enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    Stream(&'a mut dyn Read),
}

impl<'a> From<Payload<'a>> for Body<'a> {
    fn from(p: Payload<'a>) -> Self {
        match p {
            Payload::Empty => Body::Empty,
            Payload::Bytes(b) => Body::Bytes(b),
        }
    }
}

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
    ) -> Result<Reply> {
        self.ensure_probed()?;
        let mut auth = self.authorization(url, access, None, false)?;
        let mut retried = false;
        loop {
            let body = match payload {
                Payload::Empty => Body::Empty,
                Payload::Bytes(b) => Body::Bytes(b),
            };
            let resp = self.exchange(method, url, headers, auth.as_deref(), body, timeout)?;
            // A 401 from wherever the registry redirected to (object
            // storage, a CDN) is not the registry's challenge: it is never
            // answered with credentials, and the caller reports it.
            if resp.status() == 401 && !retried && self.is_registry_origin(resp.url()) {
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
        body: &mut dyn Read,
    ) -> Result<Reply> {
        self.ensure_probed()?;
        let auth = self.authorization(url, access, None, false)?;
        self.exchange(
            method,
            url,
            headers,
            auth.as_deref(),
            Body::Stream(body),
            None,
        )
    }

    /// One request, following redirects for GET and HEAD, retried on
    /// transient failures (see `retry`) unless its body is a stream. `auth`
    /// goes only to hops on `url`'s own origin, never where a redirect leads
    /// elsewhere; `timeout` bounds each hop of each attempt as a whole.
    /// After the last retry the last answer is returned (the caller reports
    /// its status), or the last transport failure, saying how many attempts
    /// were made.
    pub(super) fn exchange(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        auth: Option<&str>,
        body: Body<'_>,
        timeout: Option<Duration>,
    ) -> Result<Reply> {
        let bytes = match body {
            Body::Stream(_) => {
                return self
                    .exchange_once(method, url, headers, auth, body, timeout)
                    .map_err(|(e, _)| e);
            }
            Body::Empty => None,
            Body::Bytes(b) => Some(b),
        };
        let mut attempt = 1;
        loop {
            let body = bytes.map(Body::Bytes).unwrap_or(Body::Empty);
            let result = self.exchange_once(method, url, headers, auth, body, timeout);
            let retry_after = match &result {
                Ok(r) if status_is_transient(r.status()) => {
                    Some(parse_retry_after(r.header("retry-after")))
                }
                Err((_, true)) => Some(None),
                _ => None,
            };
            let wait = retry_after
                .filter(|_| attempt <= self.retry.retries)
                .and_then(|after| self.retry.delay(attempt, after));
            let Some(wait) = wait else {
                return match result {
                    Ok(mut r) => {
                        r.attempts = attempt;
                        Ok(r)
                    }
                    Err((e, transient)) if transient && attempt > 1 => {
                        Err(e.context(format!("gave up after {attempt} attempts")))
                    }
                    Err((e, _)) => Err(e),
                };
            };
            // The answer is dropped unread: its connection is not reused.
            drop(result);
            std::thread::sleep(wait);
            attempt += 1;
        }
    }

    /// One attempt of [`Self::exchange`]. A failure says whether it is
    /// worth retrying.
    fn exchange_once(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        auth: Option<&str>,
        mut body: Body<'_>,
        timeout: Option<Duration>,
    ) -> std::result::Result<Reply, (anyhow::Error, bool)> {
        let follows = matches!(method, "GET" | "HEAD");
        let mut hop = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            let hop_auth = auth.filter(|_| same_origin(&hop, url));
            let sent = std::mem::replace(&mut body, Body::Empty);
            let resp = self
                .send_once(method, &hop, headers, hop_auth, sent, timeout)
                .map_err(|e| {
                    let transient = transport_is_transient(&e);
                    (self.transport_error(method, url, &hop, e), transient)
                })?;
            let status = resp.status().as_u16();
            let location = resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .and_then(|l| join_url(&hop, l));
            match location {
                Some(next) if follows && matches!(status, 301 | 302 | 303 | 307 | 308) => {
                    hop = next;
                }
                _ => {
                    return Ok(Reply {
                        inner: resp,
                        url: hop,
                        attempts: 1,
                    });
                }
            }
        }
        Err((
            fail(
                Kind::Remote,
                format!(
                    "{method} {url}: more than {MAX_REDIRECTS} redirects (the last to {})",
                    url_authority(&hop).unwrap_or_else(|| "?".into())
                ),
            ),
            false,
        ))
    }

    fn send_once(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        auth: Option<&str>,
        body: Body<'_>,
        timeout: Option<Duration>,
    ) -> std::result::Result<http::Response<ureq::Body>, ureq::Error> {
        let mut b = http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        if let Some(a) = auth {
            b = b.header("Authorization", a);
        }
        match body {
            Body::Empty if matches!(method, "POST" | "PUT" | "PATCH") => {
                self.run(b.body(&[][..])?, timeout)
            }
            Body::Empty => self.run(b.body(SendBody::none())?, timeout),
            Body::Bytes(bytes) => self.run(b.body(bytes)?, timeout),
            Body::Stream(r) => self.run(b.body(SendBody::from_reader(r))?, timeout),
        }
    }

    fn run<B: ureq::AsSendBody>(
        &self,
        req: http::Request<B>,
        timeout: Option<Duration>,
    ) -> std::result::Result<http::Response<ureq::Body>, ureq::Error> {
        let proxy = self
            .proxies
            .for_url(&req.uri().to_string())
            .map(|p| p.proxy.clone());
        let req = self
            .agent
            .configure_request(req)
            .timeout_global(timeout)
            .proxy(proxy)
            .build();
        self.agent.run(req)
    }

    /// The error for a request that got no answer. `url` is what was asked,
    /// `hop` where it failed (another host after a redirect).
    fn transport_error(&self, method: &str, url: &str, hop: &str, e: ureq::Error) -> anyhow::Error {
        // `url` may carry a server-given upload Location: shown without its
        // query, escaped.
        let url = &shown_url(url);
        let via = self
            .proxies
            .for_url(hop)
            .map(|p| format!(" (through proxy {}, from HTTPS_PROXY/HTTP_PROXY)", p.shown))
            .unwrap_or_default();
        if let Some(why) = tls_failure(&e) {
            let host = url_authority(hop).unwrap_or_else(|| "?".into());
            return fail(
                Kind::Remote,
                format!("TLS with {host} failed{via}: {method} {url}: {why}"),
            )
            .hint(format!(
                "if {host} uses a private certificate authority, pass --ca-file FILE with its \
                 certificate, or put it in /etc/docker/certs.d/{host}/ca.crt (or \
                 /etc/containers/certs.d/{host}/)"
            ))
            .hint(format!(
                "if {host} wants a client certificate, put client.cert and client.key in that \
                 certs.d directory"
            ));
        }
        let err = self.transport_error_inner(method, url, hop, e);
        if via.is_empty() {
            err
        } else {
            err.context(format!("connecting{via}"))
                .hint("check HTTPS_PROXY, HTTP_PROXY and NO_PROXY")
        }
    }

    fn transport_error_inner(
        &self,
        method: &str,
        url: &str,
        hop: &str,
        e: ureq::Error,
    ) -> anyhow::Error {
        // A stream we were sending failed for a known reason (its content
        // does not match its descriptor, or it stalled): that reason stands.
        if let ureq::Error::Io(io_err) = e {
            if io_error_kind(&io_err).is_some() {
                return crate::oci::classify_io(io_err, || format!("{method} {url}"));
            }
            return self.unreachable(method, url, hop, describe_io(&io_err, &self.limits));
        }
        let why = match &e {
            ureq::Error::Timeout(t) => {
                let (what, d, var) = match t {
                    ureq::Timeout::Connect | ureq::Timeout::Resolve => (
                        "connecting took longer than",
                        self.limits.connect_timeout,
                        ENV_CONNECT_TIMEOUT,
                    ),
                    ureq::Timeout::Global => {
                        ("no complete answer within", SMALL_REQUEST_TIMEOUT, "")
                    }
                    _ => ("no data for", self.limits.idle_timeout, ENV_IDLE_TIMEOUT),
                };
                if var.is_empty() {
                    format!("{what} {}", format_secs(d))
                } else {
                    format!("{what} {} ({var})", format_secs(d))
                }
            }
            ureq::Error::HostNotFound => "host not found".to_string(),
            ureq::Error::ConnectionFailed => "connection failed".to_string(),
            // ureq may quote a URL (a redirect's, pre-signed): never repeat it.
            ureq::Error::BadUri(_) | ureq::Error::Http(_) => "not a valid URL".to_string(),
            other => super::errors::server_text(&other.to_string(), 300),
        };
        self.unreachable(method, url, hop, why)
    }

    fn unreachable(&self, method: &str, url: &str, hop: &str, why: String) -> anyhow::Error {
        // Failed after a redirect elsewhere: name only that host (its URL
        // may carry a pre-signed query).
        if !same_origin(hop, url) {
            return fail(
                Kind::Remote,
                format!(
                    "{method} {url}: the request was redirected to {}, which failed: {why}",
                    url_authority(hop).unwrap_or_else(|| "?".into())
                ),
            );
        }
        let err = fail(
            Kind::Remote,
            format!(
                "cannot talk to registry {}: {method} {url}: {why}",
                self.host
            ),
        )
        .hint(format!(
            "check that the registry is running at {} and reachable from here",
            self.host
        ));
        if why.contains(ENV_CONNECT_TIMEOUT) || why.contains(ENV_IDLE_TIMEOUT) {
            err.hint(format!(
                "if the registry is only slow, raise {ENV_CONNECT_TIMEOUT} or {ENV_IDLE_TIMEOUT} \
                 (seconds)"
            ))
        } else if self.plain_http_asked {
            err.hint(format!(
                "ocigo speaks plain HTTP to {} as --plain-http asks; drop it if the registry \
                 wants HTTPS",
                self.host
            ))
        } else if self.plain_http {
            err
        } else {
            err.hint(format!(
                "pass --plain-http if {} speaks plain HTTP (localhost gets it without asking)",
                self.host
            ))
        }
    }

    /// Asks `GET /v2/` once per client, to learn whether and how the
    /// registry wants authentication before any request with a body.
    pub(super) fn ensure_probed(&self) -> Result<()> {
        let mut state = self.lock();
        if state.probed {
            return Ok(());
        }
        let url = format!("{}/v2/", self.base);
        let resp = self.exchange(
            "GET",
            &url,
            &[],
            None,
            Body::Empty,
            Some(SMALL_REQUEST_TIMEOUT),
        )?;
        if resp.status() == 401 && self.is_registry_origin(resp.url()) {
            state.challenge = pick_challenge(&resp);
        }
        state.probed = true;
        Ok(())
    }
}
