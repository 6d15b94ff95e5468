//! Name resolution for the HTTP agents: the system resolver, asked once per
//! host and port for a short while instead of once per request.
//!
//! ureq 3 resolves the host name on every request, before it looks for a
//! pooled connection, so a transfer of a thousand small blobs made a
//! thousand `getaddrinfo` calls. Measured on this project's build machine:
//! 828 checksum-database GETs through proxy.golang.org took 145 s, 224 of
//! those lookups stalling for glibc's 5 s retry timeout (a lost UDP
//! answer), against about 15 s with one lookup per host. The go command
//! and curl resolve once per connection, not per request.
//!
//! Owns: the per-agent cache of resolved addresses. Must not: change which
//! addresses are used (whatever the system resolver answered is used, in
//! its order), or cache failures.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// How long an answer is reused: long enough for one command's burst of
/// requests, short enough to follow a registry that moves.
const TTL: Duration = Duration::from_secs(60);

/// The system resolver with a small cache in front.
pub(super) struct CachingResolver {
    inner: DefaultResolver,
    cache: Mutex<HashMap<String, (Instant, ResolvedSocketAddrs)>>,
}

impl CachingResolver {
    pub(super) fn new() -> CachingResolver {
        CachingResolver {
            inner: DefaultResolver::default(),
            cache: Mutex::new(HashMap::new()),
        }
    }
}

impl fmt::Debug for CachingResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CachingResolver")
    }
}

/// `host:port` of `uri`, with the scheme's default port.
fn key(uri: &Uri) -> Option<String> {
    let host = uri.host()?;
    let port = uri.port_u16().or_else(|| match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    })?;
    Some(format!("{host}:{port}"))
}

impl Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let Some(key) = key(uri) else {
            return self.inner.resolve(uri, config, timeout);
        };
        let now = Instant::now();
        if let Some((at, addrs)) = self.cache.lock().expect("not poisoned").get(&key)
            && now.duration_since(*at) < TTL
        {
            return Ok(addrs.clone());
        }
        let addrs = self.inner.resolve(uri, config, timeout)?;
        self.cache
            .lock()
            .expect("not poisoned")
            .insert(key, (now, addrs.clone()));
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_host_and_port() {
        let k = |u: &str| key(&u.parse::<Uri>().unwrap());
        assert_eq!(
            k("https://harbor.corp/v2/").as_deref(),
            Some("harbor.corp:443")
        );
        assert_eq!(
            k("http://127.0.0.1:5000/v2/").as_deref(),
            Some("127.0.0.1:5000")
        );
        assert_eq!(k("http://[::1]/x").as_deref(), Some("[::1]:80"));
    }

    #[test]
    fn an_answer_is_reused_and_stays_what_the_system_said() {
        let r = CachingResolver::new();
        let config = Config::default();
        let uri: Uri = "http://localhost:5000/v2/".parse().unwrap();
        let first = r.resolve(&uri, &config, NextTimeout::default()).unwrap();
        let direct = DefaultResolver::default()
            .resolve(&uri, &config, NextTimeout::default())
            .unwrap();
        let v = |a: &ResolvedSocketAddrs| a.iter().copied().collect::<Vec<_>>();
        assert_eq!(v(&first), v(&direct));
        assert_eq!(r.cache.lock().unwrap().len(), 1);
        let again = r.resolve(&uri, &config, NextTimeout::default()).unwrap();
        assert_eq!(v(&first), v(&again));
    }
}
