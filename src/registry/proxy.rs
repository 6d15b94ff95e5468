//! Which proxy a request goes through, decided per URL the way the go
//! command (golang.org/x/net/http/httpproxy) and curl decide it:
//! `HTTPS_PROXY` for https URLs, `HTTP_PROXY` for http URLs (upper case
//! first, then lower case; a value without a scheme means `http://`), and
//! `NO_PROXY` to go direct. Requests to `localhost` and loopback addresses
//! never use a proxy.
//!
//! `NO_PROXY` is a comma-separated list of: `*` (no proxy at all); an IP
//! address or a CIDR block (`10.0.0.0/8`); a host name, which matches the
//! name and every name below it (`example.com` matches `a.example.com`);
//! a name with a leading `.` or `*.`, which matches only names below it;
//! each optionally with `:PORT` (then only that port; default ports count).
//!
//! Owns: reading the proxy variables and matching hosts. Must not: make
//! requests, or put a proxy's credentials into a message.

use std::net::IpAddr;

use anyhow::Result;

use crate::error::{Kind, fail_hint};

/// The proxy settings of the environment, read once per client.
#[derive(Debug, Clone, Default)]
pub(super) struct ProxyEnv {
    https: Option<ProxyTarget>,
    http: Option<ProxyTarget>,
    no_proxy: NoProxy,
}

/// One proxy: ureq's handle and a name for messages (`host:port`, never
/// the credentials).
#[derive(Debug, Clone)]
pub(super) struct ProxyTarget {
    pub(super) proxy: ureq::Proxy,
    pub(super) shown: String,
}

impl ProxyEnv {
    pub(super) fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let any = |names: &[&'static str]| -> Option<(&'static str, String)> {
            names
                .iter()
                .find_map(|n| get(n).filter(|v| !v.trim().is_empty()).map(|v| (*n, v)))
        };
        let https = any(&["HTTPS_PROXY", "https_proxy"]);
        // As the go command: HTTP_PROXY is ignored under CGI (httpoxy).
        let http = if get("REQUEST_METHOD").is_some() {
            None
        } else {
            any(&["HTTP_PROXY", "http_proxy"])
        };
        let no_proxy = any(&["NO_PROXY", "no_proxy"])
            .map(|(_, v)| NoProxy::parse(&v))
            .unwrap_or_default();
        Ok(ProxyEnv {
            https: https.map(|(n, v)| parse_proxy(n, &v)).transpose()?,
            http: http.map(|(n, v)| parse_proxy(n, &v)).transpose()?,
            no_proxy,
        })
    }

    /// The proxy for a request to `url`, or `None` to go direct.
    pub(super) fn for_url(&self, url: &str) -> Option<&ProxyTarget> {
        let u = ::url::Url::parse(url).ok()?;
        let proxy = match u.scheme() {
            "https" => self.https.as_ref(),
            "http" => self.http.as_ref(),
            _ => None,
        }?;
        let host = u.host_str()?;
        let port = u.port_or_known_default()?;
        self.use_proxy(host, port).then_some(proxy)
    }

    fn use_proxy(&self, host: &str, port: u16) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if host == "localhost" {
            return false;
        }
        if let Ok(ip) = bare.parse::<IpAddr>() {
            if ip.is_loopback() {
                return false;
            }
            return !self.no_proxy.matches_ip(ip, port);
        }
        !self.no_proxy.matches_name(&host, port)
    }
}

fn parse_proxy(var: &str, value: &str) -> Result<ProxyTarget> {
    let value = value.trim();
    let with_scheme = if value.contains("://") {
        value.to_string()
    } else {
        format!("http://{value}")
    };
    let bad = |why: &str| {
        fail_hint(
            Kind::Usage,
            format!("{var} is not a usable proxy URL: {why}"),
            format!("set {var} to http://HOST:PORT (or https://HOST:PORT), or unset it"),
        )
    };
    let u = ::url::Url::parse(&with_scheme).map_err(|_| bad("it does not parse"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(bad("ocigo speaks to http:// and https:// proxies only"));
    }
    let host = u.host_str().ok_or_else(|| bad("it names no host"))?;
    let shown = match u.port() {
        Some(p) => format!("{}://{host}:{p}", u.scheme()),
        None => format!("{}://{host}", u.scheme()),
    };
    let proxy = ureq::Proxy::new(&with_scheme).map_err(|_| bad("ureq refuses it"))?;
    Ok(ProxyTarget { proxy, shown })
}

#[derive(Debug, Clone, Default)]
struct NoProxy {
    all: bool,
    ips: Vec<(IpAddr, Option<u16>)>,
    nets: Vec<(IpAddr, u8)>,
    /// (suffix starting with '.', also the bare name?, port)
    names: Vec<(String, bool, Option<u16>)>,
}

impl NoProxy {
    fn parse(value: &str) -> NoProxy {
        let mut np = NoProxy::default();
        for entry in value.split(',') {
            let entry = entry.trim().to_ascii_lowercase();
            if entry.is_empty() {
                continue;
            }
            if entry == "*" {
                np.all = true;
                return np;
            }
            if let Some((addr, bits)) = entry.split_once('/')
                && let (Ok(ip), Ok(bits)) = (addr.parse::<IpAddr>(), bits.parse::<u8>())
            {
                np.nets.push((ip, bits));
                continue;
            }
            let (host, port) = split_host_port(&entry);
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            if let Ok(ip) = bare.parse::<IpAddr>() {
                np.ips.push((ip, port));
                continue;
            }
            if host.is_empty() {
                continue;
            }
            let host = host.strip_prefix('*').unwrap_or(host);
            let name = host.trim_end_matches('.');
            if let Some(below) = name.strip_prefix('.') {
                np.names.push((format!(".{below}"), false, port));
            } else {
                np.names.push((format!(".{name}"), true, port));
            }
        }
        np
    }

    fn matches_ip(&self, ip: IpAddr, port: u16) -> bool {
        self.all
            || self
                .ips
                .iter()
                .any(|(i, p)| *i == ip && p.is_none_or(|p| p == port))
            || self.nets.iter().any(|(net, bits)| in_net(ip, *net, *bits))
    }

    fn matches_name(&self, host: &str, port: u16) -> bool {
        self.all
            || self.names.iter().any(|(suffix, bare, p)| {
                (host.ends_with(suffix.as_str()) || (*bare && host == &suffix[1..]))
                    && p.is_none_or(|p| p == port)
            })
    }
}

/// `host:port` -> (host, Some(port)); `[v6]:port` too; otherwise no port.
fn split_host_port(s: &str) -> (&str, Option<u16>) {
    if s.starts_with('[') {
        if let Some(end) = s.find(']') {
            let port = s[end + 1..].strip_prefix(':').and_then(|p| p.parse().ok());
            return (&s[..=end], port);
        }
        return (s, None);
    }
    match s.rsplit_once(':') {
        // One colon: a port. More: a bare IPv6 address.
        Some((h, p)) if !h.contains(':') => match p.parse() {
            Ok(p) => (h, Some(p)),
            Err(_) => (s, None),
        },
        _ => (s, None),
    }
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&'static str, &'static str)]) -> ProxyEnv {
        let pairs = pairs.to_vec();
        ProxyEnv::from_lookup(move |n| {
            pairs
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        })
        .unwrap()
    }

    fn proxied(e: &ProxyEnv, url: &str) -> Option<String> {
        e.for_url(url).map(|p| p.shown.clone())
    }

    #[test]
    fn scheme_picks_the_variable_and_loopback_is_never_proxied() {
        let e = env(&[
            ("HTTPS_PROXY", "proxy.corp:3128"),
            ("http_proxy", "http://u:p@plain.corp:8080"),
        ]);
        assert_eq!(
            proxied(&e, "https://reg.example/v2/").as_deref(),
            Some("http://proxy.corp:3128")
        );
        // The shown name never carries the credentials.
        assert_eq!(
            proxied(&e, "http://reg.example:5000/v2/").as_deref(),
            Some("http://plain.corp:8080")
        );
        for direct in [
            "https://localhost:5000/v2/",
            "https://127.0.0.1/v2/",
            "https://127.8.9.1/v2/",
            "https://[::1]:5000/v2/",
        ] {
            assert_eq!(proxied(&e, direct), None, "{direct}");
        }
        // Upper case wins; under CGI HTTP_PROXY is ignored, as Go does.
        let e = env(&[
            ("HTTPS_PROXY", "http://upper:1"),
            ("https_proxy", "http://lower:2"),
            ("HTTP_PROXY", "http://h:3"),
            ("REQUEST_METHOD", "GET"),
        ]);
        assert_eq!(proxied(&e, "https://r/").as_deref(), Some("http://upper:1"));
        assert_eq!(proxied(&e, "http://r/"), None);
        assert!(
            ProxyEnv::from_lookup(|n| (n == "HTTPS_PROXY").then(|| "socks5://s:1".into())).is_err()
        );
    }

    #[test]
    fn no_proxy_matches_as_the_go_command_does() {
        let e = env(&[
            ("HTTPS_PROXY", "http://p:1"),
            ("HTTP_PROXY", "http://p:1"),
            (
                "NO_PROXY",
                " corp.example, .sub.example,*.star.example, 10.1.0.0/16, 192.168.1.7, \
                 port.example:8443, [2001:db8::1]:443, 172.16.0.9:5000",
            ),
        ]);
        let direct = [
            "https://corp.example/",
            "https://reg.corp.example/",
            "https://REG.Corp.Example./",
            "https://a.sub.example/",
            "https://a.star.example/",
            "https://10.1.200.3/",
            "https://192.168.1.7:5000/",
            "https://port.example:8443/",
            "https://[2001:db8::1]/",
            "https://172.16.0.9:5000/",
        ];
        for u in direct {
            assert_eq!(proxied(&e, u), None, "{u}");
        }
        let via = [
            "https://notcorp.example/",
            "https://sub.example/",
            "https://star.example/",
            "https://10.2.0.1/",
            "https://192.168.1.8/",
            "https://port.example/",
            "https://[2001:db8::1]:8443/",
            "http://172.16.0.9/",
        ];
        for u in via {
            assert!(proxied(&e, u).is_some(), "{u}");
        }
        let all = env(&[("HTTPS_PROXY", "http://p:1"), ("no_proxy", "x.example,*")]);
        assert_eq!(proxied(&all, "https://anything.example/"), None);
    }
}
