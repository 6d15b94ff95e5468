//! Module path patterns and version ranges, as policy rules write them.
//!
//! Patterns follow the go command's glob rules for GOPRIVATE and friends
//! (golang.org/x/mod `module.MatchPrefixPatterns`): a comma-separated list
//! of globs; a trailing `/` is dropped; a glob of N path elements is matched
//! with Go's `path.Match` against the first N elements of the module path,
//! so `github.com/acme` matches `github.com/acme/x/v2` and `*.corp/*`
//! matches `git.corp/team/lib`. `path.Match`: `*` is any run of non-`/`
//! characters, `?` one non-`/` character, `[...]` a class (ranges, `^`
//! negation), `\` escapes.
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

use crate::gomod::semver;

/// Checks a `path.Match` pattern is well formed (Go's `ErrBadPattern`).
pub fn check_glob(pattern: &str) -> Result<(), String> {
    // Matching against the empty string walks the whole pattern in Go's
    // implementation; here, a dedicated scan.
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if i + 1 >= chars.len() {
                    return Err(format!("{pattern:?}: ends with a lone backslash"));
                }
                i += 2;
            }
            '[' => {
                let (_, next) = class(&chars, i + 1, '\0')
                    .ok_or_else(|| format!("{pattern:?}: malformed character class"))?;
                i = next;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Parses a character class starting after `[`; returns whether `c`
/// matched and the index after `]`. `None`: malformed.
fn class(p: &[char], mut i: usize, c: char) -> Option<(bool, usize)> {
    let mut negated = false;
    if p.get(i) == Some(&'^') {
        negated = true;
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let ch = *p.get(i)?;
        if ch == ']' && !first {
            i += 1;
            break;
        }
        first = false;
        let (lo, ni) = class_char(p, i)?;
        i = ni;
        let mut hi = lo;
        if p.get(i) == Some(&'-') {
            let (h, ni) = class_char(p, i + 1)?;
            hi = h;
            i = ni;
        }
        if lo <= c && c <= hi {
            matched = true;
        }
    }
    Some((matched != negated, i))
}

fn class_char(p: &[char], i: usize) -> Option<(char, usize)> {
    match *p.get(i)? {
        '-' | ']' => None,
        '\\' => Some((*p.get(i + 1)?, i + 2)),
        c => Some((c, i + 1)),
    }
}

/// Go's `path.Match` (pattern already checked by [`check_glob`]).
pub fn path_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    glob(&p, &n)
}

fn glob(p: &[char], n: &[char]) -> bool {
    let (mut pi, mut ni) = (0, 0);
    // Backtracking point for the last `*`.
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' if ni < n.len() && n[ni] != '/' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' if ni < n.len() && n[ni] != '/' => {
                    if let Some((true, next)) = class(p, pi + 1, n[ni]) {
                        pi = next;
                        ni += 1;
                        continue;
                    }
                }
                '\\' if ni < n.len() && pi + 1 < p.len() && p[pi + 1] == n[ni] => {
                    pi += 2;
                    ni += 1;
                    continue;
                }
                c if c != '?' && c != '[' && c != '\\' && ni < n.len() && c == n[ni] => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        } else if ni == n.len() {
            return true;
        }
        // Mismatch: let the last `*` take one more character, never a `/`.
        match star {
            Some((sp, sn)) if sn < n.len() && n[sn] != '/' => {
                star = Some((sp, sn + 1));
                pi = sp + 1;
                ni = sn + 1;
            }
            _ => return false,
        }
    }
}

/// `module.MatchPrefixPatterns(globs, target)`.
pub fn match_prefix_patterns(globs: &str, target: &str) -> bool {
    for glob in globs.split(',') {
        let glob = glob.strip_suffix('/').unwrap_or(glob);
        if glob.is_empty() {
            continue;
        }
        let mut n = glob.matches('/').count();
        let mut prefix = target;
        for (i, b) in target.bytes().enumerate() {
            if b == b'/' {
                if n == 0 {
                    prefix = &target[..i];
                    break;
                }
                n -= 1;
            }
        }
        if n > 0 {
            continue;
        }
        if check_glob(glob).is_ok() && path_match(glob, prefix) {
            return true;
        }
    }
    false
}

/// Checks every glob of a comma-separated pattern list.
pub fn check_patterns(globs: &str) -> Result<(), String> {
    if globs.split(',').all(|g| g.trim_end_matches('/').is_empty()) {
        return Err("an empty module path pattern matches nothing".into());
    }
    globs
        .split(',')
        .map(|g| g.strip_suffix('/').unwrap_or(g))
        .filter(|g| !g.is_empty())
        .try_for_each(check_glob)
}

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
    fn prefix_patterns_as_the_go_command() {
        for (globs, target, want) in [
            ("github.com/acme/*", "github.com/acme/lib", true),
            ("github.com/acme/*", "github.com/acme/lib/v2", true),
            ("github.com/acme/*", "github.com/acme", false),
            ("github.com/acme", "github.com/acme/lib", true),
            ("github.com/acme/", "github.com/acme/lib", true),
            ("github.com/acme", "github.com/acmex", false),
            ("*.corp", "git.corp/team/x", true),
            ("*.corp", "git.corp.example/team", false),
            ("*", "anything/at/all", true),
            ("x.io/a,github.com/b", "github.com/b/c", true),
            (",,", "github.com/b", false),
            ("github.com/[a-c]cme", "github.com/bcme/x", true),
            ("github.com/[^a-c]cme", "github.com/bcme/x", false),
            ("github.com/?cme", "github.com/acme", true),
            ("github.com/a*e", "github.com/a/e", false),
            ("github.com/a\\*", "github.com/a*", true),
            ("github.com/a\\*", "github.com/ab", false),
            ("github.com/[", "github.com/[", false),
        ] {
            assert_eq!(
                match_prefix_patterns(globs, target),
                want,
                "{globs} {target}"
            );
        }
        assert!(check_patterns("github.com/[").is_err());
        assert!(check_patterns("x\\").is_err());
        assert!(check_patterns("").is_err());
        assert!(check_patterns("a/*,b").is_ok());
    }

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
