//! Plain GETs to web servers that are not registries (a GOPROXY, the Go
//! checksum database), with the same system certificate store, proxies
//! (`HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`) and deadlines
//! (`OCIGO_CONNECT_TIMEOUT`, `OCIGO_IDLE_TIMEOUT`) as registry requests.
//!
//! Owns: the agent for those GETs and how their failures read. Must not:
//! send credentials (it sends no `Authorization` header), or read the
//! registry flags (`--ca-file`, `--insecure` and `certs.d` are for
//! registries).

use std::io::Read;

use anyhow::Result;
use ureq::SendBody;
use ureq::http;

use super::deadlines::NetworkLimits;
use super::proxy::ProxyEnv;
use super::tls::{for_host, tls_failure};
use crate::error::{Kind, WithHint, fail};

/// Redirects followed for one GET (proxies may send zips to object storage).
const MAX_REDIRECTS: u32 = 5;

/// A client for public GETs; build once per run of a command.
pub struct WebClient {
    agent: ureq::Agent,
    proxies: ProxyEnv,
}

impl WebClient {
    /// Reads the proxy and deadline variables and the system certificate
    /// store; a malformed variable is a usage error.
    pub fn from_env() -> Result<WebClient> {
        let limits = NetworkLimits::from_env()?;
        let tls = for_host("", &[], &[], false)?;
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(limits.connect_timeout))
            .timeout_per_read(Some(limits.idle_timeout))
            .timeout_per_write(Some(limits.idle_timeout))
            .timeout_recv_response(Some(limits.idle_timeout))
            .user_agent(concat!("ocigo/", env!("CARGO_PKG_VERSION")))
            .http_status_as_error(false)
            .max_redirects(MAX_REDIRECTS)
            .max_idle_connections(super::client::IDLE_CONNECTIONS)
            .max_idle_connections_per_host(super::client::IDLE_CONNECTIONS_PER_HOST)
            // Chosen per request (see `proxy`), never by ureq.
            .proxy(None)
            .tls_config(tls)
            .build();
        let agent = super::client::agent_with(config);
        Ok(WebClient {
            agent,
            proxies: ProxyEnv::from_env()?,
        })
    }

    /// GETs `url` (`what` names it in messages, without credentials):
    /// `Ok(None)` on 404 or 410, the body on 2xx, a remote failure
    /// otherwise.
    pub fn get(&self, url: &str, what: &str) -> Result<Option<Box<dyn Read + Send>>> {
        let proxy = self.proxies.for_url(url);
        let req = http::Request::builder()
            .method("GET")
            .uri(url)
            .body(SendBody::none())
            .map_err(|e| fail(Kind::Usage, format!("{what} is not a usable URL: {e}")))?;
        let req = self
            .agent
            .configure_request(req)
            .proxy(proxy.map(|p| p.proxy.clone()))
            .build();
        let via = proxy
            .map(|p| format!(" (through proxy {}, from HTTPS_PROXY/HTTP_PROXY)", p.shown))
            .unwrap_or_default();
        let resp = match self.agent.run(req) {
            Ok(resp) => resp,
            Err(e) => {
                let why = tls_failure(&e).unwrap_or_else(|| e.to_string());
                let err = fail(
                    Kind::Remote,
                    format!(
                        "fetching {what}{via}: {}",
                        crate::text::scrub_credentials(&why)
                    ),
                );
                return Err(if via.is_empty() {
                    err
                } else {
                    err.hint("check HTTPS_PROXY, HTTP_PROXY and NO_PROXY")
                });
            }
        };
        match resp.status().as_u16() {
            200..=299 => Ok(Some(Box::new(resp.into_body().into_reader()))),
            404 | 410 => Ok(None),
            s => Err(fail(
                Kind::Remote,
                format!("fetching {what}{via}: the server answered HTTP {s}"),
            )),
        }
    }
}
