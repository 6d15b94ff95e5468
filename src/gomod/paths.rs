//! Module paths, import paths, file paths and path/version pairs, valid
//! exactly when `golang.org/x/mod/module` says they are: `CheckPath`,
//! `CheckImportPath`, `CheckFilePath`, `SplitPathVersion`, `CheckPathMajor`
//! and `Check`. The reasons are the go command's own words, so an error
//! reads the same as the go command's would.
//!
//! Owns: the rules only (pure functions of strings). Escaping for the cache
//! is `escape`; zip rules are `zipcheck`.
//!
//! tests/go_rules.rs compares every function here with x/mod itself over a
//! generated corpus.

use super::semver;
use super::unicode::{equal_fold, is_letter};

/// Which rules a path is checked against (x/mod's `pathKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathKind {
    Module,
    Import,
    File,
}

/// Element names Windows reserves for devices, compared with
/// `strings.EqualFold` against the part before the first dot.
const WINDOWS_RESERVED: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// `modPathOK`: ASCII letters and digits and `-._~`.
fn mod_path_ok(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')
}

/// `importPathOK`: `modPathOK` plus `+`.
fn import_path_ok(c: char) -> bool {
    mod_path_ok(c) || c == '+'
}

/// `fileNameOK`: ASCII letters, digits, space and `!#$%&()+,-.=@[]^_{}~`,
/// and every rune Go's `unicode.IsLetter` calls a letter.
fn file_name_ok(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || "!#$%&()+,-.=@[]^_{}~ ".contains(c)
    } else {
        is_letter(c)
    }
}

/// `firstPathOK`: lower-case ASCII letters, digits, `-` and `.`.
fn first_path_ok(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'
}

/// `module.CheckPath`: a module path (`golang.org/x/mod`, `gopkg.in/yaml.v3`).
pub fn check_path(path: &str) -> Result<(), String> {
    check_path_kind(path, PathKind::Module)?;
    let first = path.split('/').next().unwrap_or(path);
    if first.is_empty() {
        return Err("leading slash".into());
    }
    if !first.contains('.') {
        return Err("missing dot in first path element".into());
    }
    if path.starts_with('-') {
        return Err("leading dash in first path element".into());
    }
    if let Some(c) = first.chars().find(|&c| !first_path_ok(c)) {
        return Err(format!("invalid char {c:?} in first path element"));
    }
    if split_path_version(path).is_none() {
        return Err(
            "invalid version (a final /vN major version suffix needs N >= 2 without leading zeros \
             or dots; a gopkg.in path must end in .vN)"
                .into(),
        );
    }
    Ok(())
}

/// `module.CheckImportPath`: a package import path.
pub fn check_import_path(path: &str) -> Result<(), String> {
    check_path_kind(path, PathKind::Import)
}

/// `module.CheckFilePath`: a slash-separated file name inside a module.
pub fn check_file_path(path: &str) -> Result<(), String> {
    check_path_kind(path, PathKind::File)
}

/// `checkPath`: the rules all three kinds share.
fn check_path_kind(path: &str, kind: PathKind) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty string".into());
    }
    if path.starts_with('-') && kind != PathKind::File {
        return Err("leading dash".into());
    }
    if path.contains("//") {
        return Err("double slash".into());
    }
    if path.ends_with('/') {
        return Err("trailing slash".into());
    }
    path.split('/').try_for_each(|elem| check_elem(elem, kind))
}

/// `checkElem`: one path element.
fn check_elem(elem: &str, kind: PathKind) -> Result<(), String> {
    if elem.is_empty() {
        return Err("empty path element".into());
    }
    if elem.bytes().all(|b| b == b'.') {
        return Err(format!("invalid path element {elem:?}"));
    }
    if elem.starts_with('.') && kind == PathKind::Module {
        return Err("leading dot in path element".into());
    }
    if elem.ends_with('.') {
        return Err("trailing dot in path element".into());
    }
    let ok = match kind {
        PathKind::Module => mod_path_ok,
        PathKind::Import => import_path_ok,
        PathKind::File => file_name_ok,
    };
    if let Some(c) = elem.chars().find(|&c| !ok(c)) {
        return Err(format!("invalid char {c:?}"));
    }
    let short = elem.split('.').next().unwrap_or(elem);
    if WINDOWS_RESERVED.iter().any(|bad| equal_fold(bad, short)) {
        return Err(format!(
            "{short:?} disallowed as path element component on Windows"
        ));
    }
    if kind == PathKind::File {
        // Windows short names (PROGRA~1) only matter for import paths.
        return Ok(());
    }
    if let Some(t) = short.rfind('~')
        && t + 1 < short.len()
        && short[t + 1..].bytes().all(|b| b.is_ascii_digit())
    {
        return Err("trailing tilde and digits in path element".into());
    }
    Ok(())
}

/// `module.SplitPathVersion`: `(prefix, path_major)` with `prefix +
/// path_major == path`, where `path_major` is `""`, `/vN` (N >= 2) or, for
/// gopkg.in paths, `.vN` or `.vN-unstable`. `None` when the final element
/// looks like a major version suffix but is not a valid one (`/v1`, `/v02`,
/// `/v2.0`, a gopkg.in path without `.vN`).
pub fn split_path_version(path: &str) -> Option<(&str, &str)> {
    if path.starts_with("gopkg.in/") {
        return split_gopkg_in(path);
    }
    let b = path.as_bytes();
    let mut i = b.len();
    let mut dot = false;
    while i > 0 && (b[i - 1].is_ascii_digit() || b[i - 1] == b'.') {
        dot |= b[i - 1] == b'.';
        i -= 1;
    }
    if i <= 1 || i == b.len() || b[i - 1] != b'v' || b[i - 2] != b'/' {
        return Some((path, ""));
    }
    let (prefix, major) = path.split_at(i - 2);
    if dot || major.len() <= 2 || major.as_bytes()[2] == b'0' || major == "/v1" {
        return None;
    }
    Some((prefix, major))
}

/// `splitGopkgIn`.
fn split_gopkg_in(path: &str) -> Option<(&str, &str)> {
    let b = path.as_bytes();
    let mut i = b.len();
    if path.ends_with("-unstable") {
        i -= "-unstable".len();
    }
    while i > 0 && b[i - 1].is_ascii_digit() {
        i -= 1;
    }
    if i <= 1 || b[i - 1] != b'v' || b[i - 2] != b'.' {
        return None;
    }
    let (prefix, major) = path.split_at(i - 2);
    if major.len() <= 2 || (major.as_bytes()[2] == b'0' && major != ".v0") {
        return None;
    }
    Some((prefix, major))
}

/// `module.CheckPathMajor`: whether version `v` belongs with the path's
/// major version suffix (`""`, `/vN`, `.vN`, `.vN-unstable`).
pub fn check_path_major(v: &str, path_major: &str) -> Result<(), String> {
    let mut path_major = path_major;
    if path_major.starts_with(".v") {
        path_major = path_major.strip_suffix("-unstable").unwrap_or(path_major);
    }
    if v.starts_with("v0.0.0-") && path_major == ".v1" {
        // Old pseudo-versions of gopkg.in .v1 paths, allowed by x/mod.
        return Ok(());
    }
    let m = semver::major(v);
    let want = if path_major.is_empty() {
        if m == "v0" || m == "v1" || semver::build(v) == "+incompatible" {
            return Ok(());
        }
        "v0 or v1"
    } else if path_major.starts_with('/') || path_major.starts_with('.') {
        if m == path_major[1..] {
            return Ok(());
        }
        &path_major[1..]
    } else {
        path_major
    };
    Err(format!("version {v:?} invalid: should be {want}, not {m}"))
}

/// `module.Check`: a valid module path, a valid semantic version, and the
/// two agreeing on the major version (`example.com/m/v2` needs `v2.x.y`).
pub fn check(path: &str, version: &str) -> Result<(), String> {
    check_path(path).map_err(|why| format!("malformed module path {path:?}: {why}"))?;
    if !semver::is_valid(version) {
        return Err(format!(
            "module {path}: version {version:?} invalid: not a semantic version"
        ));
    }
    let (_, major) = split_path_version(path).expect("check_path accepted it");
    check_path_major(version, major).map_err(|why| format!("module {path}: {why}"))
}

/// What x/mod's `zip.CheckZip` requires of the module itself: a canonical
/// version (`module.CanonicalVersion(v) == v`) and `module.Check`.
pub fn check_module_version(path: &str, version: &str) -> Result<(), String> {
    let canonical = semver::canonical_version(version).unwrap_or_default();
    if canonical != version {
        return Err(format!(
            "version {version:?} is not canonical (should be {canonical:?})"
        ));
    }
    check(path, version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn major_versions_match_like_x_mod() {
        for (path, version, ok) in [
            ("example.com/m", "v1.0.0", true),
            ("example.com/m", "v0.1.0", true),
            ("example.com/m", "v2.0.0", false),
            ("example.com/m", "v2.0.0+incompatible", true),
            ("example.com/m/v2", "v2.0.0", true),
            ("example.com/m/v2", "v1.0.0", false),
            ("example.com/m/v2", "v3.0.0", false),
            ("example.com/m/v2", "v2.0.0+incompatible", true),
            ("gopkg.in/yaml.v2", "v2.4.0", true),
            ("gopkg.in/yaml.v2", "v1.0.0", false),
            (
                "gopkg.in/check.v1",
                "v0.0.0-20161208181325-20d25e280405",
                true,
            ),
            ("gopkg.in/check.v1", "v0.1.0", false),
            ("gopkg.in/yaml.v2-unstable", "v2.0.0", true),
            ("gopkg.in/yaml.v0", "v0.3.0", true),
        ] {
            assert_eq!(check(path, version).is_ok(), ok, "{path}@{version}");
        }
        let e = check("example.com/m/v2", "v1.0.0").unwrap_err();
        assert!(e.contains("should be v2, not v1"), "{e}");
        let e = check_module_version("example.com/m", "v1.0").unwrap_err();
        assert!(e.contains("not canonical"), "{e}");
    }

    #[test]
    fn file_paths_use_go_letters_and_folding() {
        assert!(check_file_path("a/ß/ſ/Ａ.go").is_ok());
        assert!(check_file_path(".hidden/-x").is_ok());
        assert!(check_file_path("PROGRA~1").is_ok());
        // U+2160 ROMAN NUMERAL ONE is alphabetic to Rust, not a letter to Go.
        assert!(check_file_path("\u{2160}.go").is_err());
        assert!(check_file_path("e\u{301}.go").is_err());
        assert!(check_file_path("CoM1.txt").is_err());
        assert!(check_file_path("a./b").is_err());
        assert!(check_import_path("c++").is_ok());
        assert!(check_path("example.com/c++").is_err());
    }
}
