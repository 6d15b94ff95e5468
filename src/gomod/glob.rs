//! The go command's module path globs: Go's `path.Match` and
//! golang.org/x/mod `module.MatchPrefixPatterns`, the rule GOPRIVATE,
//! GONOSUMDB, GONOPROXY and GOINSECURE are read with (and policy files
//! reuse). A comma-separated list of globs; a trailing `/` is dropped
//! (nothing else is trimmed); a glob of N path elements is matched with
//! `path.Match` against the first N elements of the path, so
//! `github.com/acme` matches `github.com/acme/x/v2` and `*.corp/*` matches
//! `git.corp/team/lib`. `path.Match`: `*` is any run of non-`/`
//! characters, `?` one non-`/` character, `[...]` a class (ranges, `^`
//! negation), `\` escapes; a malformed glob matches nothing.
//!
//! Owns: parsing and matching globs. Must not: read the environment or
//! files.

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
    fn spaces_are_part_of_a_glob_as_in_go() {
        assert!(!match_prefix_patterns(
            "a.com/x, example.com",
            "example.com"
        ));
        assert!(match_prefix_patterns("a.com/x,example.com", "example.com"));
        assert!(!match_prefix_patterns("example.com", "example.community/a"));
        assert!(!match_prefix_patterns("", "github.com/acme"));
    }
}
