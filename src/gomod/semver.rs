//! Semantic versions as `golang.org/x/mod/semver` defines them: validity,
//! the canonical form the go command writes in caches, and the ordering
//! of `semver.Compare` (build metadata such as `+incompatible` ignored),
//! used to sort `list`.

use std::cmp::Ordering;

/// A version split into its parts; `pre` keeps its leading `-` and `build`
/// its leading `+` (each empty when absent). `short` is set for the
/// shorthands `vMAJOR` and `vMAJOR.MINOR`, whose missing parts are `0`.
struct Parsed<'a> {
    major: &'a str,
    minor: &'a str,
    patch: &'a str,
    pre: &'a str,
    build: &'a str,
    short: bool,
}

/// Splits a decimal number without leading zeros off the front of `s`.
fn take_num(s: &str) -> Option<(&str, &str)> {
    let end = s
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    if end == 0 || (end > 1 && s.starts_with('0')) {
        return None;
    }
    Some(s.split_at(end))
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

/// Dot-separated identifiers of `[0-9A-Za-z-]`, none empty; with
/// `numbers_checked`, purely numeric ones must not have leading zeros
/// (true for a prerelease, not for build metadata).
fn idents_ok(s: &str, numbers_checked: bool) -> bool {
    s.split('.').all(|id| {
        !id.is_empty()
            && id.bytes().all(is_ident_byte)
            && !(numbers_checked
                && id.len() > 1
                && id.starts_with('0')
                && id.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// Parses `v` as `semver.IsValid` accepts it: `vMAJOR[.MINOR[.PATCH
/// [-PRERELEASE][+BUILD]]]`, prerelease and build only after a patch.
fn parse(v: &str) -> Option<Parsed<'_>> {
    let rest = v.strip_prefix('v')?;
    let (major, rest) = take_num(rest)?;
    let Some(rest) = rest.strip_prefix('.') else {
        return rest.is_empty().then_some(Parsed {
            major,
            minor: "0",
            patch: "0",
            pre: "",
            build: "",
            short: true,
        });
    };
    let (minor, rest) = take_num(rest)?;
    let Some(rest) = rest.strip_prefix('.') else {
        return rest.is_empty().then_some(Parsed {
            major,
            minor,
            patch: "0",
            pre: "",
            build: "",
            short: true,
        });
    };
    let (patch, rest) = take_num(rest)?;
    let (pre, build) = match rest.find('+') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let pre_ok = match pre.strip_prefix('-') {
        Some(ids) => idents_ok(ids, true),
        None => pre.is_empty(),
    };
    let build_ok = match build.strip_prefix('+') {
        Some(ids) => idents_ok(ids, false),
        None => build.is_empty(),
    };
    if !pre_ok || !build_ok {
        return None;
    }
    Some(Parsed {
        major,
        minor,
        patch,
        pre,
        build,
        short: false,
    })
}

/// Whether `v` is a valid semantic version (`semver.IsValid`), canonical or
/// not: `v1`, `v1.2` and `v1.2.3+meta` are valid.
pub fn is_valid(v: &str) -> bool {
    parse(v).is_some()
}

/// The canonical form of `v` as `module.CanonicalVersion` computes it:
/// shorthands completed (`v1` becomes `v1.0.0`) and build metadata dropped
/// unless it is exactly `+incompatible`. `None` if `v` is not valid.
pub fn canonical_version(v: &str) -> Option<String> {
    let p = parse(v)?;
    let mut out = format!("v{}.{}.{}{}", p.major, p.minor, p.patch, p.pre);
    if p.build == "+incompatible" {
        out.push_str(p.build);
    }
    Some(out)
}

/// `semver.Major`: `vMAJOR` of a valid version, `""` otherwise.
pub fn major(v: &str) -> String {
    parse(v).map_or_else(String::new, |p| format!("v{}", p.major))
}

/// `semver.Build`: the build suffix with its `+` (`""` if none or invalid).
pub fn build(v: &str) -> &str {
    parse(v).map_or("", |p| p.build)
}

/// Whether `v` is a version exactly as the go command writes it in module
/// caches: `vMAJOR.MINOR.PATCH`, numbers without leading zeros, an optional
/// `-PRERELEASE` of non-empty dot-separated `[0-9A-Za-z-]` identifiers
/// (numeric ones without leading zeros), and no build metadata except
/// exactly `+incompatible`. That is `semver.IsValid(v)` and
/// `module.CanonicalVersion(v) == v`.
pub fn is_canonical(v: &str) -> bool {
    parse(v).is_some_and(|p| !p.short && (p.build.is_empty() || p.build == "+incompatible"))
}

fn cmp_num(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn cmp_pre(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        _ => {}
    }
    let mut xs = a[1..].split('.');
    let mut ys = b[1..].split('.');
    loop {
        match (xs.next(), ys.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let xn = x.bytes().all(|c| c.is_ascii_digit());
                let yn = y.bytes().all(|c| c.is_ascii_digit());
                let o = match (xn, yn) {
                    (true, true) => cmp_num(x, y),
                    (true, false) => Ordering::Less,
                    (false, true) => Ordering::Greater,
                    (false, false) => x.cmp(y),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

/// `semver.Compare` exactly: precedence only (build metadata such as
/// `+incompatible` ignored, so `v2.0.0+incompatible` equals `v2.0.0`, and
/// `v1` equals `v1.0.0`); an invalid version is less than every valid one
/// and equal to every other invalid one.
pub fn compare_precedence(a: &str, b: &str) -> Ordering {
    match (parse(a), parse(b)) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => cmp_num(x.major, y.major)
            .then_with(|| cmp_num(x.minor, y.minor))
            .then_with(|| cmp_num(x.patch, y.patch))
            .then_with(|| cmp_pre(x.pre, y.pre)),
    }
}

/// Compares two versions; invalid versions sort before valid ones and among
/// themselves by string, as `semver.Sort` does.
pub fn compare(a: &str, b: &str) -> Ordering {
    match (parse(a), parse(b)) {
        (None, None) => a.cmp(b),
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => cmp_num(x.major, y.major)
            .then_with(|| cmp_num(x.minor, y.minor))
            .then_with(|| cmp_num(x.patch, y.patch))
            .then_with(|| cmp_pre(x.pre, y.pre))
            .then_with(|| a.cmp(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_like_go() {
        let mut v = vec![
            "v1.10.0",
            "v1.2.0",
            "v1.2.0-rc.1",
            "v1.2.0-beta.2",
            "v1.2.0-beta.11",
            "v0.0.0-20230102030405-abcdef123456",
            "v2.0.0+incompatible",
            "v1.2.0-alpha",
        ];
        v.sort_by(|a, b| compare(a, b));
        assert_eq!(
            v,
            [
                "v0.0.0-20230102030405-abcdef123456",
                "v1.2.0-alpha",
                "v1.2.0-beta.2",
                "v1.2.0-beta.11",
                "v1.2.0-rc.1",
                "v1.2.0",
                "v1.10.0",
                "v2.0.0+incompatible",
            ]
        );
    }

    #[test]
    fn canonical_versions_are_accepted() {
        for v in [
            "v0.0.0",
            "v1.2.3",
            "v10.20.30",
            "v1.2.3-RC.1",
            "v1.0.0-rc1",
            "v1.0.0-0",
            "v1.0.0-alpha.0.beta",
            "v1.0.0--x-",
            "v1.0.0-01a",
            "v0.0.0-20230102030405-abcdef123456",
            "v1.2.4-0.20230102030405-abcdef123456",
            "v2.0.0+incompatible",
            "v2.0.1-pre+incompatible",
        ] {
            assert!(is_valid(v), "{v}");
            assert!(is_canonical(v), "{v}");
            assert_eq!(canonical_version(v).as_deref(), Some(v), "{v}");
        }
    }

    #[test]
    fn valid_but_not_canonical_versions_are_refused() {
        for (v, canonical) in [
            ("v1", "v1.0.0"),
            ("v1.2", "v1.2.0"),
            ("v1.0.0+meta", "v1.0.0"),
            ("v1.0.0+incompatible.x", "v1.0.0"),
            ("v1.0.0-pre+build.1", "v1.0.0-pre"),
            ("v1.0.0+Incompatible", "v1.0.0"),
            ("v1.0.0+01", "v1.0.0"),
        ] {
            assert!(is_valid(v), "{v}");
            assert!(!is_canonical(v), "{v}");
            assert_eq!(canonical_version(v).as_deref(), Some(canonical), "{v}");
        }
    }

    #[test]
    fn invalid_versions_are_refused() {
        for v in [
            "",
            "v",
            "1.0.0",
            "V1.0.0",
            "v01.0.0",
            "v1.00.0",
            "v1.0.00",
            "v1.0.0.tmp-x",
            "v1.0.0.0",
            "v1..0",
            "v1.",
            "v1.0.",
            "v1-pre",
            "v1.0-pre",
            "v1+incompatible",
            "v1.0.0-",
            "v1.0.0-pre.",
            "v1.0.0-.pre",
            "v1.0.0-a..b",
            "v1.0.0-01",
            "v1.0.0-rc.01",
            "v1.0.0-a_b",
            "v1.0.0-a/b",
            "v1.0.0+",
            "v1.0.0+a+b",
            "v1.0.0+a..b",
            "v1.0.0 ",
            "v1.0.0x",
            "v1.0.0-\u{e9}",
            "v+1.0.0",
            "v-1.0.0",
        ] {
            assert!(!is_valid(v), "{v}");
            assert!(!is_canonical(v), "{v}");
            assert_eq!(canonical_version(v), None, "{v}");
        }
    }

    #[test]
    fn compare_follows_semver_validity() {
        // Shorthands equal their canonical forms; ties break by string.
        assert_eq!(compare("v1", "v1.0.0"), Ordering::Less);
        assert_eq!(compare("v1.2", "v1.1.9"), Ordering::Greater);
        // Invalid versions sort before every valid one.
        assert_eq!(compare("v01.0.0", "v0.0.0"), Ordering::Less);
        assert_eq!(compare("v1.0-pre", "v0.0.1"), Ordering::Less);
        // Build metadata is ignored.
        assert_eq!(
            compare("v2.0.0+incompatible", "v2.0.0-rc.1"),
            Ordering::Greater
        );
    }
}
