//! Text that came from outside (a bundle, a layout, a registry) made safe to
//! show: control characters escaped, credentials scrubbed.
//!
//! Owns: [`field`] (one value on one line: every control character, line
//! breaks included, escaped), [`terminal_safe`] (a whole message or report:
//! line breaks and tabs kept, every other control character escaped) and
//! [`scrub_credentials`] (Basic/Bearer values, `token=`, `password=` and the
//! JSON fields registries and token services use, replaced by
//! `[redacted]`). Must not: decide what is printed or where; callers and
//! the CLI's printers call these on the way out.

use std::borrow::Cow;

const REDACTED: &str = "[redacted]";

/// One value for one line: every control character (C0, DEL, C1), line
/// breaks included, and the Unicode bidirectional controls that can make
/// text display in another order than it reads, written as `\u{..}` (or
/// `\n`, `\r`, `\t`, `\e`). Text with none of them is returned as is.
pub fn field(s: &str) -> Cow<'_, str> {
    escape(s, false)
}

/// A whole message or report: like [`field`], but line feeds and tabs are
/// kept, so multi-line output stays multi-line.
pub fn terminal_safe(s: &str) -> Cow<'_, str> {
    escape(s, true)
}

fn needs_escape(c: char, keep_layout: bool) -> bool {
    if keep_layout && (c == '\n' || c == '\t') {
        return false;
    }
    c.is_control() || is_bidi_control(c)
}

/// U+061C, U+200E/F, U+202A-E, U+2066-9: bidirectional formatting controls.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn escape(s: &str, keep_layout: bool) -> Cow<'_, str> {
    if !s.chars().any(|c| needs_escape(c, keep_layout)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !needs_escape(c, keep_layout) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{1b}' => out.push_str("\\e"),
            _ => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

/// Words after which a credential follows (`Basic dXNlcjpwYXNz`,
/// `token=abc`, `"password": "abc"`), matched case-insensitively.
const SECRET_KEYS: &[&str] = &[
    "access_token",
    "refresh_token",
    "identitytoken",
    "id_token",
    "registrytoken",
    "client_secret",
    "password",
    "passwd",
    "secret",
    "token",
    "auth",
];
const SCHEMES: &[&str] = &["basic", "bearer"];

/// Replaces anything that looks like a credential with `[redacted]`: the
/// value after `Basic ` or `Bearer ` (an `Authorization` header echoed back),
/// and the value of a `token`, `access_token`, `password`, `auth`, ... field,
/// whether written `key=value`, `key: value` or as JSON `"key": "value"`.
pub fn scrub_credentials(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !s.is_char_boundary(i) {
            i += 1;
            continue;
        }
        if let Some((value_start, value_end)) = secret_at(&lower, bytes, i) {
            out.push_str(&s[copied..value_start]);
            out.push_str(REDACTED);
            copied = value_end;
            i = value_end.max(i + 1);
            continue;
        }
        i += 1;
    }
    out.push_str(&s[copied..]);
    out
}

/// If a credential's key or scheme starts at `i` (a char boundary, at the
/// start of a field: after white space or punctuation that separates fields,
/// not inside a path such as `/etc/passwd` or a word), where its value
/// starts and ends.
fn secret_at(lower: &str, bytes: &[u8], i: usize) -> Option<(usize, usize)> {
    let starts_field = i == 0
        || matches!(
            bytes[i - 1],
            b' ' | b'\t' | b'\n' | b'\r' | b'"' | b'\'' | b'{' | b',' | b';' | b'&' | b'?' | b'('
        );
    if !starts_field {
        return None;
    }
    let rest = &lower[i..];
    for scheme in SCHEMES {
        if rest.starts_with(scheme) && bytes.get(i + scheme.len()) == Some(&b' ') {
            let start = skip(bytes, i + scheme.len(), |b| b == b' ');
            let end = skip(bytes, start, is_token_byte);
            if end > start {
                return Some((start, end));
            }
        }
    }
    for key in SECRET_KEYS {
        if !rest.starts_with(key) {
            continue;
        }
        let mut j = i + key.len();
        if bytes.get(j).is_some_and(|&b| is_word_byte(b)) {
            continue;
        }
        // `"key"` in JSON: step over the closing quote.
        if bytes.get(j) == Some(&b'"') {
            j += 1;
        }
        j = skip(bytes, j, |b| b == b' ');
        if !matches!(bytes.get(j), Some(b'=' | b':')) {
            continue;
        }
        j = skip(bytes, j + 1, |b| b == b' ');
        if bytes.get(j) == Some(&b'"') {
            let start = j + 1;
            let mut end = start;
            while end < bytes.len() && bytes[end] != b'"' {
                end += if bytes[end] == b'\\' { 2 } else { 1 };
            }
            let end = end.min(bytes.len());
            return (end > start).then_some((start, end));
        }
        // An unquoted value; `Bearer x` after `auth:` is left to the scheme rule.
        let start = j;
        if SCHEMES.iter().any(|s| lower[start..].starts_with(s)) {
            return None;
        }
        let end = skip(bytes, start, |b| {
            !matches!(
                b,
                b' ' | b'&' | b',' | b';' | b'"' | b'\'' | b'\n' | b'\r' | b'}' | b')'
            )
        });
        return (end > start).then_some((start, end));
    }
    None
}

fn skip(bytes: &[u8], mut i: usize, keep: impl Fn(u8) -> bool) -> usize {
    while i < bytes.len() && keep(bytes[i]) {
        i += 1;
    }
    i
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Characters of base64, base64url, JWTs and opaque tokens.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_' | b'.' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(field("example.com/m"), "example.com/m");
        assert!(matches!(field("plain"), Cow::Borrowed(_)));
        assert_eq!(field("a\u{1b}[31mred\u{7}"), "a\\e[31mred\\u{7}");
        assert_eq!(field("two\nlines\r"), "two\\nlines\\r");
        assert_eq!(field("c1\u{9b}31m"), "c1\\u{9b}31m");
        assert_eq!(field("rtl\u{202e}txt.exe"), "rtl\\u{202e}txt.exe");
        assert_eq!(
            terminal_safe("a\n\tb\u{1b}]0;x\u{7}"),
            "a\n\tb\\e]0;x\\u{7}"
        );
        assert_eq!(field("ünïcode ſ K"), "ünïcode ſ K");
    }

    #[test]
    fn credentials_are_scrubbed() {
        let cases = [
            (
                "denied: Authorization: Basic dXNlcjpzM2NyZXQ= was refused",
                "denied: Authorization: Basic [redacted] was refused",
            ),
            (
                "header Authorization: Bearer eyJhbGc.eyJzdWIi.sig-_x",
                "header Authorization: Bearer [redacted]",
            ),
            (
                "GET /token?account=a&token=abc123&x=1",
                "GET /token?account=a&token=[redacted]&x=1",
            ),
            ("password=hunter2; next", "password=[redacted]; next"),
            (
                r#"{"token":"t0k","access_token": "a\"b","expires_in":60}"#,
                r#"{"token":"[redacted]","access_token": "[redacted]","expires_in":60}"#,
            ),
            (r#"{"auth":"dXNlcjpwYXNz"}"#, r#"{"auth":"[redacted]"}"#),
            (
                "no secrets here, basically a token-less text",
                "no secrets here, basically a token-less text",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(scrub_credentials(input), want, "{input}");
        }
    }

    #[test]
    fn scrubbing_never_splits_a_character() {
        let pieces = [
            "Ⅰ", "ſ", "token", "=", ":", "\"", " ", "Basic ", "ü", "a", "🦀", "&",
        ];
        // Every sequence of three pieces: keys and values next to
        // multi-byte characters at every offset.
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let text = format!("{a}{b}{c}{a}");
                    let out = scrub_credentials(&text);
                    assert!(
                        out.len() + 16 >= text.len() || out.contains(REDACTED),
                        "{text:?}"
                    );
                }
            }
        }
    }
}
