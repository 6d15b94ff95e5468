//! Error classes and the exit codes they map to.
//!
//! Owns: the [`Failure`] type that library code attaches to an `anyhow` chain
//! to say which class of failure happened, and the exit code table (README
//! "Exit codes" documents the same table). Must not: print anything or decide
//! wording of messages; callers write the message, this only classifies it.

use std::fmt;

/// The class of a failure; each maps to one documented exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Bad arguments or a bad reference: fix the command line.
    Usage,
    /// Content failed verification: digest, h1 hash, zip rules, go.sum, signature.
    Integrity,
    /// The registry or network failed (unreachable, refused, auth).
    Remote,
    /// The target already holds something different; nothing was overwritten.
    Conflict,
    /// Something needed is missing (module not in cache, tag not found).
    NotFound,
}

impl Kind {
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::Usage => 2,
            Kind::Integrity => 3,
            Kind::Remote => 4,
            Kind::Conflict => 5,
            Kind::NotFound => 6,
        }
    }
}

/// A classified failure. Create with [`fail`]; find it again with [`kind_of`].
#[derive(Debug)]
pub struct Failure {
    pub kind: Kind,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Builds a classified error: `return Err(fail(Kind::Integrity, format!(..)))`.
pub fn fail(kind: Kind, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Failure {
        kind,
        message: message.into(),
    })
}

/// The class of the innermost classified failure in the chain, if any.
pub fn kind_of(err: &anyhow::Error) -> Option<Kind> {
    err.chain()
        .filter_map(|e| e.downcast_ref::<Failure>())
        .map(|f| f.kind)
        .last()
}

/// Exit code for an error: the classified kind, or 1 for anything else.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    kind_of(err).map(Kind::exit_code).unwrap_or(1)
}

/// The whole chain, outermost first: "pulling x: reading layer y: digest mismatch".
pub fn render(err: &anyhow::Error) -> String {
    format!("{err:#}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn kind_survives_context() {
        let err: anyhow::Result<()> = Err(fail(Kind::Integrity, "bad"));
        let err = err.context("pulling x").unwrap_err();
        assert_eq!(kind_of(&err), Some(Kind::Integrity));
        assert_eq!(exit_code(&err), 3);
        assert_eq!(exit_code(&anyhow::anyhow!("plain")), 1);
    }
}
