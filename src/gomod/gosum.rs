//! go.sum (and go.work.sum) lines: `<path> <version>[/go.mod] h1:<hash>`.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};

use crate::error::{Kind, fail, fail_hint};

/// Every h1 hash a set of go.sum files records.
#[derive(Debug, Default, Clone)]
pub struct GoSum {
    /// (path, version or version + "/go.mod") -> hashes.
    lines: HashMap<(String, String), Vec<String>>,
    sources: Vec<String>,
}

/// What an expected hash is for, to say so in errors.
#[derive(Debug, Clone, Copy)]
pub enum SumKind {
    Zip,
    GoMod,
}

impl GoSum {
    pub fn parse_into(&mut self, text: &str, source: &str) -> Result<()> {
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() != 3 {
                return Err(fail(
                    Kind::Integrity,
                    format!("{source}:{}: malformed go.sum line {line:?}", n + 1),
                ));
            }
            self.lines
                .entry((f[0].to_string(), f[1].to_string()))
                .or_default()
                .push(f[2].to_string());
        }
        self.sources.push(source.to_string());
        Ok(())
    }

    /// Reads a go.sum file if it exists (a module with no dependencies has none).
    pub fn read_file(&mut self, path: &Path) -> Result<()> {
        match std::fs::read_to_string(path) {
            Ok(text) => self.parse_into(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Checks `actual` against the go.sum line for path@version; a missing or
    /// different line is an integrity error naming the module.
    pub fn check(&self, path: &str, version: &str, kind: SumKind, actual: &str) -> Result<()> {
        let (key_version, what) = match kind {
            SumKind::Zip => (version.to_string(), "module zip"),
            SumKind::GoMod => (format!("{version}/go.mod"), "go.mod"),
        };
        let sources = if self.sources.is_empty() {
            "go.sum".to_string()
        } else {
            self.sources.join(", ")
        };
        match self.lines.get(&(path.to_string(), key_version.clone())) {
            None => Err(fail_hint(
                Kind::Usage,
                format!("{sources} has no line for {path} {key_version} ({what})"),
                "run `go mod tidy` on a connected machine, commit go.sum, and pack again",
            )),
            Some(hashes) if hashes.iter().any(|h| h == actual) => Ok(()),
            Some(hashes) => Err(fail(
                Kind::Integrity,
                format!(
                    "checksum mismatch for {path} {key_version} ({what}): downloaded {actual}, \
                     {sources} says {}. The module proxy or cache served different content \
                     than go.sum records",
                    hashes.join(" or ")
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_lines_and_names_the_module() {
        let mut s = GoSum::default();
        s.parse_into(
            "example.com/a v1.0.0 h1:AAA=\nexample.com/a v1.0.0/go.mod h1:BBB=\n",
            "go.sum",
        )
        .unwrap();
        s.check("example.com/a", "v1.0.0", SumKind::Zip, "h1:AAA=")
            .unwrap();
        s.check("example.com/a", "v1.0.0", SumKind::GoMod, "h1:BBB=")
            .unwrap();
        let e = s
            .check("example.com/a", "v1.0.0", SumKind::Zip, "h1:XXX=")
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("checksum mismatch for example.com/a v1.0.0")
        );
        let e = s
            .check("example.com/b", "v1.0.0", SumKind::GoMod, "h1:BBB=")
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("no line for example.com/b v1.0.0/go.mod"),
            "{e}"
        );
        assert!(s.parse_into("bad line\n", "x").is_err());
    }
}
