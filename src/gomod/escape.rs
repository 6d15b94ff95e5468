//! Case escaping of module paths and versions in cache file names, and the
//! character rules that keep a path from escaping GOMODCACHE.

use anyhow::Result;

use crate::error::{Kind, fail};

/// Escapes a module path for the cache (`github.com/Azure/x` becomes
/// `github.com/!azure/x`), refusing anything that could name a file outside
/// its own directory or that the go command itself would refuse.
pub fn escape_path(path: &str) -> Result<String> {
    check_module_path(path)?;
    escape(path, path)
}

/// Escapes a version the same way; versions must look like semver.
pub fn escape_version(version: &str) -> Result<String> {
    let ok = version.starts_with('v')
        && version.len() > 1
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.+".contains(&b))
        && !version.contains("..");
    if !ok {
        return Err(fail(
            Kind::Integrity,
            format!("invalid module version {version:?}: not a semantic version"),
        ));
    }
    escape(version, version)
}

fn escape(s: &str, whole: &str) -> Result<String> {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if c == '!' || !c.is_ascii() {
            return Err(fail(
                Kind::Integrity,
                format!("{whole:?} has a character that cannot be stored in a module cache: {c:?}"),
            ));
        }
        if c.is_ascii_uppercase() {
            out.push('!');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// Reverses [`escape_path`]/[`escape_version`] (for reading a cache).
pub fn unescape(s: &str) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut bang = false;
    for c in s.chars() {
        if bang {
            if !c.is_ascii_lowercase() {
                return Err(fail(Kind::Integrity, format!("bad escaping in {s:?}")));
            }
            out.push(c.to_ascii_uppercase());
            bang = false;
        } else if c == '!' {
            bang = true;
        } else if c.is_ascii_uppercase() {
            return Err(fail(
                Kind::Integrity,
                format!("upper-case letter in escaped name {s:?}"),
            ));
        } else {
            out.push(c);
        }
    }
    if bang {
        return Err(fail(Kind::Integrity, format!("bad escaping in {s:?}")));
    }
    Ok(out)
}

/// The part of `module.CheckPath` that matters for safety and for the
/// cache layout: slash-separated non-empty elements of letters, digits and
/// `-._~`, no element of only dots, no leading dot in the first element.
fn check_module_path(path: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(fail(
            Kind::Integrity,
            format!("invalid module path {path:?}: {why}"),
        ))
    };
    if path.is_empty() {
        return bad("empty");
    }
    for (i, elem) in path.split('/').enumerate() {
        if elem.is_empty() {
            return bad("empty path element");
        }
        if elem.bytes().all(|b| b == b'.') {
            return bad("path element of only dots");
        }
        if i == 0 && elem.starts_with('.') {
            return bad("leading dot");
        }
        if !elem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        {
            return bad("only letters, digits and -._~ are allowed");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_the_go_command() {
        assert_eq!(
            escape_path("github.com/Azure/azure-sdk").unwrap(),
            "github.com/!azure/azure-sdk"
        );
        assert_eq!(escape_version("v1.0.0-RC1").unwrap(), "v1.0.0-!r!c1");
        assert_eq!(
            escape_version("v2.0.0+incompatible").unwrap(),
            "v2.0.0+incompatible"
        );
        assert_eq!(
            unescape("github.com/!azure/azure-sdk").unwrap(),
            "github.com/Azure/azure-sdk"
        );
    }

    #[test]
    fn refuses_paths_that_escape_the_cache() {
        for bad in [
            "../x",
            "a/../b",
            "/abs",
            "a//b",
            "a/./b",
            "a\\b",
            "a!b",
            "ümlaut.com/x",
            "",
        ] {
            assert!(escape_path(bad).is_err(), "{bad}");
        }
        for bad in ["1.0.0", "v1/../x", "v1.0.0/x", "v1..0"] {
            assert!(escape_version(bad).is_err(), "{bad}");
        }
    }
}
