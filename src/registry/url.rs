//! URLs as the registry client uses them: origins compared parsed (never as
//! string prefixes), `Location` and `Link` targets resolved, and the
//! `host[:port]` of a URL that messages may name.
//!
//! Owns: URL handling and which hosts count as loopback. Must not: make
//! requests.

use ::url::Url;

/// Hosts that get plain HTTP without asking: the loopback names.
pub(super) fn is_loopback_host(host: &str) -> bool {
    let name = if host.starts_with('[') {
        host.split_once(']')
            .map(|(h, _)| &host[..h.len() + 1])
            .unwrap_or(host)
    } else {
        host.split(':').next().unwrap_or(host)
    };
    matches!(name, "localhost" | "127.0.0.1" | "[::1]")
}

/// Does `url` go to the same scheme://host[:port] as `base`? Compares
/// parsed origins (scheme and host case-insensitively, default ports
/// filled in), never string prefixes.
pub(super) fn same_origin(url: &str, base: &str) -> bool {
    match (origin(url), origin(base)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// The scheme, host and port of an absolute http(s) URL.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Origin {
    /// `http` or `https`.
    pub(super) scheme: String,
    /// Lower-cased; IPv6 addresses keep their brackets.
    pub(super) host: String,
    pub(super) port: u16,
}

/// Parses an absolute `http` or `https` URL; anything else is `None`.
pub(super) fn parse_http(url: &str) -> Option<Url> {
    let u = Url::parse(url).ok()?;
    matches!(u.scheme(), "http" | "https").then_some(u)
}

pub(super) fn origin(url: &str) -> Option<Origin> {
    let u = parse_http(url)?;
    Some(Origin {
        scheme: u.scheme().to_string(),
        host: u.host_str().filter(|h| !h.is_empty())?.to_ascii_lowercase(),
        port: u.port_or_known_default()?,
    })
}

/// `host[:port]` of an absolute URL, without any `user:password@`, path or
/// query: what messages may name of a URL that is not the registry's.
pub(super) fn url_authority(url: &str) -> Option<String> {
    let u = parse_http(url)?;
    let host = u.host_str()?;
    Some(match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    })
}

/// Resolves a `Location` or `Link` target against the URL it came from
/// (RFC 3986 reference resolution). `None` when the result is not an
/// http(s) URL.
pub(super) fn join_url(from: &str, location: &str) -> Option<String> {
    let joined = Url::parse(from).ok()?.join(location.trim()).ok()?;
    matches!(joined.scheme(), "http" | "https").then(|| joined.to_string())
}

/// The target of a `Link: <url>; rel="next"` header value, if it is one.
pub(super) fn next_link(value: &str) -> Option<String> {
    value.split(',').find_map(|part| {
        let part = part.trim();
        let rest = part.strip_prefix('<')?;
        let (target, params) = rest.split_once('>')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim();
            p.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("rel")
                    && v.trim()
                        .trim_matches('"')
                        .split_whitespace()
                        .any(|r| r == "next")
            })
        });
        is_next.then(|| target.to_string())
    })
}

/// A server-given URL as a message may show it: `scheme://host[:port]/path`
/// without credentials, query or fragment (a query may be pre-signed), and
/// with control characters escaped. Text that is not a URL is scrubbed and
/// escaped.
pub(super) fn shown_url(url: &str) -> String {
    match parse_http(url) {
        Some(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            crate::text::field(u.as_str()).into_owned()
        }
        None => super::errors::server_text(url, 200),
    }
}
