//! `WWW-Authenticate` challenges (RFC 7235): parsing a header into
//! challenges and picking the one to answer.
//!
//! Owns: the challenge grammar. Must not: make requests or hold state.

use super::client::Reply;

/// One parsed `WWW-Authenticate` challenge: a lower-cased scheme and its
/// parameters (names lower-cased, values unquoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Challenge {
    pub(super) scheme: String,
    pub(super) params: Vec<(String, String)>,
}

impl Challenge {
    pub(super) fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The challenge to answer from a 401: Bearer if offered, else Basic, else
/// whatever came first (reported as unsupported when used).
pub(super) fn pick_challenge(resp: &Reply) -> Option<Challenge> {
    let all: Vec<Challenge> = resp
        .all("www-authenticate")
        .into_iter()
        .flat_map(parse_challenges)
        .collect();
    ["bearer", "basic"]
        .iter()
        .find_map(|s| all.iter().find(|c| c.scheme == *s).cloned())
        .or_else(|| all.into_iter().next())
}

/// Parses a `WWW-Authenticate` value (RFC 7235): one or more challenges
/// `scheme param=value, param="quoted, \"value\"", Other p=v`. Lenient:
/// unquoted values run to the next comma or space, junk is skipped.
pub(super) fn parse_challenges(header: &str) -> Vec<Challenge> {
    let b = header.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    let is_tchar = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c);
    let read_token = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && is_tchar(b[*i]) {
            *i += 1;
        }
        header[start..*i].to_string()
    };
    let skip = |i: &mut usize, commas: bool| {
        while *i < b.len() && (b[*i] == b' ' || b[*i] == b'\t' || (commas && b[*i] == b',')) {
            *i += 1;
        }
    };
    while i < b.len() {
        skip(&mut i, true);
        if i >= b.len() {
            break;
        }
        let scheme = read_token(&mut i);
        if scheme.is_empty() {
            i += 1;
            continue;
        }
        let mut params = Vec::new();
        loop {
            skip(&mut i, true);
            if i >= b.len() {
                break;
            }
            let start = i;
            let name = read_token(&mut i);
            if name.is_empty() {
                // Junk: skip one byte and go on looking for params.
                i += 1;
                continue;
            }
            skip(&mut i, false);
            if i < b.len() && b[i] == b'=' {
                i += 1;
                skip(&mut i, false);
                let value = if i < b.len() && b[i] == b'"' {
                    i += 1;
                    let mut v = Vec::new();
                    while i < b.len() && b[i] != b'"' {
                        if b[i] == b'\\' && i + 1 < b.len() {
                            i += 1;
                        }
                        v.push(b[i]);
                        i += 1;
                    }
                    i += 1; // closing quote (or end)
                    String::from_utf8_lossy(&v).into_owned()
                } else {
                    let start = i;
                    while i < b.len() && b[i] != b',' && b[i] != b' ' && b[i] != b'\t' {
                        i += 1;
                    }
                    header[start..i].to_string()
                };
                params.push((name.to_ascii_lowercase(), value));
            } else {
                // A token not followed by '=' starts the next challenge.
                i = start;
                break;
            }
        }
        out.push(Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params,
        });
    }
    out
}
