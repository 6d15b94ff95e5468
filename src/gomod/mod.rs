//! Go module knowledge that does not need the go command: module path,
//! file path and version rules (`paths`, with Go's own Unicode tables in
//! `unicode`), case escaping, semver ordering, go.sum, h1 hashes, the
//! module zip rules, and a client for the checksum database (`sumdb`).
//! golang.org/x/mod is the judge: tests/go_rules.rs compares these rules
//! with it over a generated corpus.
//!
//! Owns: everything byte-exact about Go modules (FORMATS.md sections 1-2).
//! Must not: write to GOMODCACHE (that is `install`), run the go command
//! (that is `closure`), or know about OCI.

pub mod escape;
pub mod glob;
pub mod gosum;
pub mod hash;
pub mod modfile;
pub mod paths;
pub mod semver;
pub mod sumdb;
pub mod tlog;
pub mod unicode;
#[rustfmt::skip]
mod unicode_tables;
pub mod zipcheck;

pub use escape::{escape_path, escape_version, unescape};
pub use gosum::GoSum;
pub use hash::{hash_dir, hash_gomod, hash_zip_entries};
pub use paths::check_module_version;
pub use zipcheck::{ZipSummary, check_zip, check_zip_into};

/// A module version: `golang.org/x/mod v0.17.0`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModuleVersion {
    pub path: String,
    pub version: String,
}

impl std::fmt::Display for ModuleVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.path, self.version)
    }
}
