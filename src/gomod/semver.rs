//! Semantic version ordering as `golang.org/x/mod/semver.Compare` defines
//! it (build metadata such as `+incompatible` ignored), used to sort `list`.

use std::cmp::Ordering;

struct Parsed<'a> {
    major: &'a str,
    minor: &'a str,
    patch: &'a str,
    pre: &'a str,
}

fn parse(v: &str) -> Option<Parsed<'_>> {
    let v = v.strip_prefix('v')?;
    let v = v.split('+').next().unwrap_or(v);
    let (core, pre) = match v.find('-') {
        Some(i) => (&v[..i], &v[i..]),
        None => (v, ""),
    };
    let mut parts = core.split('.');
    let major = parts.next()?;
    let minor = parts.next().unwrap_or("0");
    let patch = parts.next().unwrap_or("0");
    if parts.next().is_some() {
        return None;
    }
    for n in [major, minor, patch] {
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    Some(Parsed {
        major,
        minor,
        patch,
        pre,
    })
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
}
