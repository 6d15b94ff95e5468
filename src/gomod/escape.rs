//! Case escaping of module paths and versions in cache file names, and the
//! character rules that keep a path from escaping GOMODCACHE.

use anyhow::Result;

use super::{paths, semver};
use crate::error::{Kind, fail};

/// Escapes a module path for the cache (`github.com/Azure/x` becomes
/// `github.com/!azure/x`), refusing anything that could name a file outside
/// its own directory or that the go command itself would refuse.
pub fn escape_path(path: &str) -> Result<String> {
    check_module_path(path)?;
    escape(path, path)
}

/// Escapes a version the same way. Versions must be canonical semantic
/// versions exactly as the go command writes them in caches (see
/// [`semver::is_canonical`]): anything else could collide with the go
/// command's own temporary names (`m@v1.0.0.tmp-123`) or give `list` lines
/// the go command never writes.
pub fn escape_version(version: &str) -> Result<String> {
    if !semver::is_canonical(version) {
        let why = match semver::canonical_version(version) {
            Some(c) => format!(
                "not canonical (the go command writes it as {c:?}; build metadata other than +incompatible is not allowed)"
            ),
            None => {
                "not a semantic version vMAJOR.MINOR.PATCH[-PRERELEASE][+incompatible]".to_string()
            }
        };
        return Err(fail(
            Kind::Integrity,
            format!("invalid module version {version:?}: {why}"),
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

/// `module.CheckPath` (see [`paths::check_path`]): what it refuses, this
/// refuses, with the reason. The rules keep a path inside its own
/// directories of GOMODCACHE (no `..`, no absolute or empty elements), out
/// of the go command's own areas (`cache/...` has no dot in its first
/// element) and away from names the go command would never write or
/// another operating system could not store.
fn check_module_path(path: &str) -> Result<()> {
    paths::check_path(path).map_err(|why| {
        fail(
            Kind::Integrity,
            format!("invalid module path {path:?}: {why}"),
        )
    })
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

    /// Module paths found in real closures, and the edge cases the go
    /// command accepts.
    #[test]
    fn accepts_what_check_path_accepts() {
        for good in [
            "golang.org/x/sync",
            "golang.org/x/mod",
            "github.com/Azure/azure-sdk-for-go/sdk/azcore",
            "github.com/BurntSushi/toml",
            "github.com/cespare/xxhash/v2",
            "github.com/cpuguy83/go-md2man/v2",
            "github.com/google/go-cmp",
            "github.com/spf13/cobra",
            "github.com/a/b.v2",
            "github.com/a_b/c~d",
            "gopkg.in/yaml.v3",
            "gopkg.in/check.v1",
            "gopkg.in/src-d/go-git.v4",
            "gopkg.in/yaml.v0",
            "gopkg.in/yaml.v2-unstable",
            "cloud.google.com/go",
            "cloud.google.com/go/compute/metadata",
            "google.golang.org/protobuf",
            "go.opentelemetry.io/otel",
            "honnef.co/go/tools",
            "sigs.k8s.io/yaml",
            "k8s.io/api",
            "dario.cat/mergo",
            "4d63.com/gocheckcompilerdirectives",
            "example.com",
            "example.com/v2",
            "example.com/x/v10",
            "example.com/x/v1x",
            "example.com/x/2",
            "example.com/x/v",
            "example.com/x.y-z_~",
            "example.com/CONSOLE",
            "example.com/COM10",
            "example.com/COM",
            "example.com/x~",
            "example.com/x~a",
            "example.com/x~1a",
            "example.com/con-x",
            "a-.b",
            "x.-y",
        ] {
            if let Err(e) = escape_path(good) {
                panic!("{good}: {e:#}");
            }
        }
    }

    /// One path per `CheckPath` rule, with the reason the error must give.
    #[test]
    fn refuses_what_check_path_refuses() {
        for (bad, why) in [
            // The checksum database cache of the go command.
            (
                "cache/download/sumdb/sum.golang.org/lookup/golang.org/x/sync",
                "missing dot in first path element",
            ),
            ("cache/download/golang.org/x/sync/@v", "invalid char '@'"),
            ("", "empty string"),
            ("-dash", "leading dash"),
            ("-dash.com/x", "leading dash"),
            ("example.com//x", "double slash"),
            ("example.com/x/", "trailing slash"),
            ("/example.com/x", "empty path element"),
            ("example.com/./x", "invalid path element"),
            ("example.com/../x", "invalid path element"),
            ("example.com/..", "invalid path element"),
            ("..", "invalid path element"),
            ("example.com/.../x", "invalid path element"),
            ("example.com/.hidden/x", "leading dot"),
            ("example.com/.hidden/x.", "leading dot"),
            (".example.com/x", "leading dot"),
            ("example.com/x.", "trailing dot"),
            ("example.com./x", "trailing dot"),
            ("example.com/x y", "invalid char"),
            ("example.com/x\\y", "invalid char"),
            ("example.com/x!y", "invalid char"),
            ("example.com/x@v1", "invalid char"),
            ("example.com/x:y", "invalid char"),
            ("example.com/x+y", "invalid char"),
            ("example.com/ümlaut", "invalid char"),
            ("example.com/x\u{0}", "invalid char"),
            ("example.com/\u{fffd}", "invalid char"),
            ("ümlaut.com/x", "invalid char"),
            ("example", "missing dot in first path element"),
            ("github/x/y", "missing dot in first path element"),
            ("Example.com/x", "invalid char 'E' in first path element"),
            ("example_x.com/x", "invalid char '_' in first path element"),
            ("example~x.com/x", "invalid char '~' in first path element"),
            (
                "example.com/CON",
                "disallowed as path element component on Windows",
            ),
            ("example.com/con", "on Windows"),
            ("example.com/Aux.go", "on Windows"),
            ("example.com/nul.x.y", "on Windows"),
            ("example.com/prn", "on Windows"),
            ("example.com/com1", "on Windows"),
            ("example.com/COM9", "on Windows"),
            ("example.com/lpt1", "on Windows"),
            ("example.com/LpT9.txt", "on Windows"),
            ("con.com/x", "on Windows"),
            ("example.com/PROGRA~1", "trailing tilde and digits"),
            ("example.com/x~1.y", "trailing tilde and digits"),
            ("example.com/x/v1", "major version suffix"),
            ("example.com/x/v0", "major version suffix"),
            ("example.com/x/v02", "major version suffix"),
            ("example.com/x/v2.0", "major version suffix"),
            ("example.com/x/v2.", "trailing dot"),
            ("gopkg.in/yaml", "major version suffix"),
            ("gopkg.in/yaml.v", "major version suffix"),
            ("gopkg.in/yaml.v01", "major version suffix"),
            ("gopkg.in/yaml/v3", "major version suffix"),
        ] {
            let err = match escape_path(bad) {
                Ok(esc) => panic!("{bad:?} accepted as {esc:?}"),
                Err(e) => e,
            };
            assert_eq!(
                crate::error::kind_of(&err),
                Some(Kind::Integrity),
                "{bad:?}"
            );
            let msg = format!("{err:#}");
            assert!(
                msg.contains(&format!("invalid module path {bad:?}")),
                "{bad:?}: {msg}"
            );
            assert!(msg.contains(why), "{bad:?}: want {why:?} in {msg}");
        }
    }

    #[test]
    fn accepts_canonical_versions_only() {
        for (good, escaped) in [
            ("v0.0.0", "v0.0.0"),
            ("v1.2.3", "v1.2.3"),
            ("v1.2.3-RC.1", "v1.2.3-!r!c.1"),
            (
                "v0.0.0-20230102030405-abcdef123456",
                "v0.0.0-20230102030405-abcdef123456",
            ),
            (
                "v1.2.4-0.20190102030405-abcdef123456",
                "v1.2.4-0.20190102030405-abcdef123456",
            ),
            ("v2.0.0+incompatible", "v2.0.0+incompatible"),
            ("v2.1.0-pre.1+incompatible", "v2.1.0-pre.1+incompatible"),
        ] {
            assert_eq!(escape_version(good).unwrap(), escaped, "{good}");
            assert_eq!(unescape(escaped).unwrap(), good, "{good}");
        }
        for (bad, why) in [
            (
                "v1",
                "not canonical (the go command writes it as \"v1.0.0\"",
            ),
            ("v1.0", "not canonical"),
            ("v1.0.0+meta", "not canonical"),
            ("v1.0.0-rc.1+build.5", "not canonical"),
            ("v01.0.0", "not a semantic version"),
            ("v1.0.0.tmp-x", "not a semantic version"),
            ("v1.0.0.tmp-123", "not a semantic version"),
            ("v1.0.0-01", "not a semantic version"),
            ("v1.0.0-", "not a semantic version"),
            ("v1.0.0-a..b", "not a semantic version"),
            ("v1.0.0-a!b", "not a semantic version"),
            ("v1.0.0-ä", "not a semantic version"),
            ("v1.0.0/x", "not a semantic version"),
            ("v1.0.0-x/../../y", "not a semantic version"),
            ("1.0.0", "not a semantic version"),
            ("v", "not a semantic version"),
            ("", "not a semantic version"),
        ] {
            let err = match escape_version(bad) {
                Ok(esc) => panic!("{bad:?} accepted as {esc:?}"),
                Err(e) => e,
            };
            assert_eq!(
                crate::error::kind_of(&err),
                Some(Kind::Integrity),
                "{bad:?}"
            );
            let msg = format!("{err:#}");
            assert!(
                msg.contains(&format!("invalid module version {bad:?}")),
                "{bad:?}: {msg}"
            );
            assert!(msg.contains(why), "{bad:?}: want {why:?} in {msg}");
        }
    }
}
