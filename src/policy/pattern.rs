//! Module path patterns and version ranges, as policy rules write them.
//!
//! Patterns are the go command's GOPRIVATE-style globs
//! ([`crate::gomod::glob`], re-exported here).
//!
//! Ranges use Go's semver ordering (golang.org/x/mod `semver.Compare`):
//! pseudo-versions are prereleases of the version they follow, build
//! metadata such as `+incompatible` is ignored. A range is `||`-separated
//! alternatives, each a space-separated list of comparisons that must all
//! hold: `<1.4.2`, `>=2.0.0 <2.3.1`, `=v1.0.0`, `!=v1.2.0`; a bare version
//! means `=`. Versions may omit the `v`; `1.4` means `v1.4.0` as in x/mod.
//!
//! Owns: parsing and matching. Must not: read files.

use std::cmp::Ordering;

pub use crate::gomod::glob::{check_patterns, match_prefix_patterns};
use crate::gomod::semver;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

/// A parsed version range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    alternatives: Vec<Vec<(Op, String)>>,
}

/// `1.2.3` -> `v1.2.3`; a `go` prefix is not a module version.
fn with_v(v: &str) -> String {
    if v.starts_with('v') {
        v.to_string()
    } else {
        format!("v{v}")
    }
}

impl Range {
    pub fn parse(text: &str) -> Result<Range, String> {
        let mut alternatives = Vec::new();
        for alt in text.split("||") {
            let mut all = Vec::new();
            let tokens: Vec<&str> = alt.split_whitespace().collect();
            let mut i = 0;
            while i < tokens.len() {
                let mut t = tokens[i].to_string();
                // Allow a space after the operator: `>= 1.2.0`.
                if matches!(t.as_str(), "<" | "<=" | ">" | ">=" | "=" | "!=") {
                    i += 1;
                    let v = tokens
                        .get(i)
                        .ok_or_else(|| format!("{text:?}: {t} needs a version"))?;
                    t.push_str(v);
                }
                let (op, v) = if let Some(v) = t.strip_prefix("<=") {
                    (Op::Le, v)
                } else if let Some(v) = t.strip_prefix(">=") {
                    (Op::Ge, v)
                } else if let Some(v) = t.strip_prefix("!=") {
                    (Op::Ne, v)
                } else if let Some(v) = t.strip_prefix('<') {
                    (Op::Lt, v)
                } else if let Some(v) = t.strip_prefix('>') {
                    (Op::Gt, v)
                } else if let Some(v) = t.strip_prefix('=') {
                    (Op::Eq, v)
                } else {
                    (Op::Eq, t.as_str())
                };
                let v = with_v(v);
                if !semver::is_valid(&v) {
                    return Err(format!(
                        "{text:?}: {v:?} is not a semantic version (Go's semver: vMAJOR[.MINOR[.PATCH]][-PRERELEASE][+BUILD])"
                    ));
                }
                all.push((op, v));
                i += 1;
            }
            if all.is_empty() {
                return Err(format!("{text:?}: an empty range (between `||`?)"));
            }
            alternatives.push(all);
        }
        Ok(Range { alternatives })
    }

    /// Whether module version `version` is in the range.
    pub fn contains(&self, version: &str) -> bool {
        self.alternatives.iter().any(|all| {
            all.iter().all(|(op, bound)| {
                let c = semver::compare_precedence(version, bound);
                match op {
                    Op::Lt => c == Ordering::Less,
                    Op::Le => c != Ordering::Greater,
                    Op::Gt => c == Ordering::Greater,
                    Op::Ge => c != Ordering::Less,
                    Op::Eq => c == Ordering::Equal,
                    Op::Ne => c != Ordering::Equal,
                }
            })
        })
    }
}

/// A Go release name (`go1.21.3`, `go1.22rc1`, `1.21.3`) as a semantic
/// version (`v1.21.3`, `v1.22.0-rc.1`), as golang.org/x/vuln's
/// `GoTagToSemver` converts it; `None` if it is not one.
pub fn go_release_semver(tag: &str) -> Option<String> {
    let tag = tag.strip_prefix("go").unwrap_or(tag);
    if tag == "1" {
        return Some("v1.0.0".into());
    }
    // (\d+\.\d+)(\.\d+|)((beta|rc|-pre)(\d+))?
    let split = tag.find(['b', 'r', '-']).unwrap_or(tag.len());
    let (num, pre) = tag.split_at(split);
    let parts: Vec<&str> = num.split('.').collect();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !(parts.len() == 2 || parts.len() == 3) || !parts.iter().all(|p| digits(p)) {
        return None;
    }
    if tag == "1.0" {
        return None;
    }
    let mut v = format!(
        "v{}.{}.{}",
        parts[0],
        parts[1],
        parts.get(2).copied().unwrap_or("0")
    );
    if !pre.is_empty() {
        let (kind, n) = ["beta", "rc", "-pre"]
            .iter()
            .find_map(|k| pre.strip_prefix(k).map(|n| (*k, n)))?;
        if !digits(n) {
            return None;
        }
        if !kind.starts_with('-') {
            v.push('-');
        }
        v.push_str(kind);
        v.push('.');
        v.push_str(n);
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_in_go_semver_order() {
        let r = Range::parse(">=2.0.0 <2.3.1").unwrap();
        assert!(r.contains("v2.0.0"));
        assert!(r.contains("v2.3.0"));
        assert!(
            r.contains("v2.3.1-0.20230102030405-abcdef123456"),
            "pseudo-version before v2.3.1"
        );
        assert!(!r.contains("v2.3.1"));
        assert!(!r.contains("v1.9.9"));
        assert!(
            r.contains("v2.1.0+incompatible"),
            "+incompatible is ignored"
        );
        let r = Range::parse("<1.4.2").unwrap();
        assert!(r.contains("v0.0.0-20230102030405-abcdef123456"));
        assert!(r.contains("v1.4.2-rc.1"));
        assert!(!r.contains("v1.4.2"));
        let r = Range::parse("v1.0.0 || >= 3").unwrap();
        assert!(r.contains("v1.0.0") && r.contains("v3.0.0") && !r.contains("v2.0.0"));
        assert!(Range::parse("<x").is_err());
        assert!(Range::parse("<").is_err());
        assert!(Range::parse("1.0.0 ||").is_err());
    }

    #[test]
    fn go_releases_as_semver() {
        for (tag, want) in [
            ("go1.21.3", Some("v1.21.3")),
            ("go1.20", Some("v1.20.0")),
            ("go1.22rc1", Some("v1.22.0-rc.1")),
            ("go1.8beta2", Some("v1.8.0-beta.2")),
            ("go1", Some("v1.0.0")),
            ("go1.0", None),
            ("gox", None),
        ] {
            assert_eq!(go_release_semver(tag).as_deref(), want, "{tag}");
        }
    }
}
