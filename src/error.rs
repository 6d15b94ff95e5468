//! Error classes, the exit codes they map to, and advice carried as data.
//!
//! Owns: the [`Failure`] type that library code attaches to an `anyhow` chain
//! to say which class of failure happened and what the user can do about it
//! (hints, printed by the CLI as their own `hint:` lines), and the exit code
//! table (README "Exit codes" documents the same table). Must not: print
//! anything or decide wording of messages; callers write the message and the
//! hint, this only classifies and carries them.

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
    /// What to do next: one imperative sentence each, naming a flag, an
    /// environment variable or a command. Not part of the message.
    pub hints: Vec<String>,
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
        hints: Vec::new(),
    })
}

/// [`fail`] with a hint: `fail_hint(Kind::Usage, "no key given", "pass --key PUB")`.
pub fn fail_hint(kind: Kind, message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Failure {
        kind,
        message: message.into(),
        hints: vec![hint.into()],
    })
}

/// Adds a hint to an error that already carries a [`Failure`] (the innermost
/// one); an unclassified error gets a [`Kind`]-less hint holder of its own,
/// so the advice is never lost.
pub trait WithHint {
    fn hint(self, hint: impl Into<String>) -> Self;
}

impl WithHint for anyhow::Error {
    fn hint(mut self, hint: impl Into<String>) -> Self {
        let hint = hint.into();
        if let Some(f) = self.downcast_mut::<Failure>() {
            f.hints.push(hint);
            return self;
        }
        anyhow::Error::new(HintOnly {
            hint,
            inner: self.into(),
        })
    }
}

impl<T> WithHint for Result<T, anyhow::Error> {
    fn hint(self, hint: impl Into<String>) -> Self {
        self.map_err(|e| e.hint(hint))
    }
}

/// A hint wrapped around an error with no class. [`render`] leaves it out
/// of the chain; its source is the error it advises on.
#[derive(Debug)]
struct HintOnly {
    hint: String,
    inner: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl fmt::Display for HintOnly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hint)
    }
}

impl std::error::Error for HintOnly {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.inner.as_ref())
    }
}

/// Every hint in the chain, outermost first, without repeats.
pub fn hints(err: &anyhow::Error) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in err.chain() {
        let found: Vec<&String> = if let Some(f) = e.downcast_ref::<Failure>() {
            f.hints.iter().collect()
        } else if let Some(h) = e.downcast_ref::<HintOnly>() {
            vec![&h.hint]
        } else {
            Vec::new()
        };
        for h in found {
            if !out.contains(h) {
                out.push(h.clone());
            }
        }
    }
    out
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

/// The whole chain, outermost first: "pulling x: reading layer y: digest
/// mismatch". Hints are not part of it (see [`hints`]).
pub fn render(err: &anyhow::Error) -> String {
    let parts: Vec<String> = err
        .chain()
        .filter(|e| e.downcast_ref::<HintOnly>().is_none())
        .map(|e| e.to_string())
        .collect();
    parts.join(": ")
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

    #[test]
    fn hints_are_data_beside_the_message() {
        let err: anyhow::Result<()> = Err(fail_hint(Kind::Usage, "no key", "pass --key PUB"));
        let err = err
            .context("verifying x")
            .hint("see `ocigo help verify`")
            .unwrap_err();
        assert_eq!(render(&err), "verifying x: no key");
        assert_eq!(hints(&err), ["pass --key PUB", "see `ocigo help verify`"]);
        assert_eq!(exit_code(&err), 2);

        let plain = anyhow::anyhow!("disk full").hint("free some space");
        assert_eq!(render(&plain), "disk full");
        assert_eq!(hints(&plain), ["free some space"]);
        assert_eq!(exit_code(&plain), 1);
    }
}
