//! The user-facing operations, one file per verb (pack, push, pull,
//! inspect, store, sign/attest/verify, sbom, key, login/logout, policy; vulndb
//! for `pack vulndb` and `pull --vulndb`; toolchain for `pack
//! toolchain` and the toolchain half of pull), each composed from the concern
//! modules and returning a report that prints both for people and as
//! `--json`.
//!
//! Owns: opening repositories from references, the order of steps in each
//! command, and report wording. Must not: parse command lines (that is
//! `main.rs`), decide host policy (that is [`crate::policy`]) or
//! reimplement what a concern module owns.

mod inspect;
mod key;
mod login;
mod pack;
mod policy;
mod pull;
mod push;
mod sbom;
mod sign;
mod store;
mod toolchain;
mod vulndb;

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::oci::{Reference, Repository};
use crate::progress::Progress;
use crate::registry::{RegistryOptions, RegistryRepository};
use crate::store::{self as content_store, Layout};

pub use inspect::{InspectModule, InspectReport, inspect};
pub use key::{KeyReport, key_generate};
pub use login::{LoginReport, LogoutReport, login, logout, read_password_line};
pub use pack::{PackArgs, PackReport, pack};
pub use policy::{
    CheckArgs as PolicyCheckArgs, Format as PolicyFormat, check as policy_check,
    check_decisions as policy_check_decisions, init as policy_init,
};
pub use pull::{PullArgs, PullReport, pull, pull_verified};
pub use push::{PushReport, push};
pub use sbom::sbom_command;
pub use sign::{
    AttestReport, SignReport, SignWith, VerifyWith, attest_command, sign_command, verify_command,
};
pub use store::{PruneReport, StoreEntry, StoreReport, store_list, store_prune};
pub use toolchain::{
    PackToolchainArgs, PackToolchainReport, ToolchainSource, pack_toolchain, project_toolchain,
};
pub use vulndb::{ARTIFACT_TYPE_VULNDB, pack_vulndb};

/// Options every command shares.
#[derive(Debug, Clone, Default)]
pub struct Global {
    pub store: Option<PathBuf>,
    pub plain_http: bool,
    /// `--ca-file`: more certificate authorities to trust.
    pub ca_files: Vec<PathBuf>,
    /// `--insecure`: do not verify registries' TLS certificates.
    pub insecure: bool,
    pub json: bool,
    pub quiet: bool,
    /// `--concurrency`: blobs transferred at once (0: the default).
    pub concurrency: usize,
    /// `--chunk-size`: upload blobs larger than this in chunks.
    pub chunk_size: Option<u64>,
    /// `--mount-from`: a repository of the destination registry to mount
    /// blobs from.
    pub mount_from: Option<String>,
}

impl Global {
    pub fn progress(&self) -> Progress {
        Progress::for_terminal(self.quiet || self.json)
    }

    pub fn open_store(&self) -> Result<Layout> {
        let dir = match &self.store {
            Some(d) => d.clone(),
            None => content_store::default_store_dir()?,
        };
        let store = Layout::open_or_create(&dir)
            .with_context(|| format!("opening the content store {}", dir.display()))?;
        // Its scratch directory exists from the start, so a refused run
        // leaves the store exactly as it found it.
        store.scratch_dir()?;
        Ok(store)
    }

    fn registry_options(&self) -> RegistryOptions {
        RegistryOptions {
            plain_http: self.plain_http,
            ca_files: self.ca_files.clone(),
            insecure: self.insecure,
            chunk_size: self.chunk_size,
            ..RegistryOptions::default()
        }
    }

    /// Blobs transferred at once.
    pub fn concurrency(&self) -> usize {
        if self.concurrency == 0 {
            crate::transfer::DEFAULT_CONCURRENCY
        } else {
            self.concurrency
        }
    }

    /// How `transfer::copy` moves blobs: `--concurrency`, `--mount-from`,
    /// and `OCIGO_RETRIES`.
    pub fn copy_options(&self) -> Result<crate::transfer::CopyOptions> {
        if let Some(m) = &self.mount_from
            && !crate::oci::is_repository_name(m)
        {
            return Err(crate::error::fail(
                crate::error::Kind::Usage,
                format!(
                    "--mount-from {}: not a repository name (lower-case letters, digits, '.', \
                     '_', '-' and '/', without the registry host)",
                    crate::text::field(m)
                ),
            ));
        }
        Ok(crate::transfer::CopyOptions {
            concurrency: self.concurrency(),
            mount_from: self.mount_from.clone(),
            retry: crate::registry::RetryPolicy::from_env()?,
        })
    }

    /// Opens where a reference points. A layout destination is created if
    /// absent; a layout source must exist.
    pub fn open(
        &self,
        reference: &Reference,
        for_writing: bool,
    ) -> Result<Box<dyn Repository + Send + Sync>> {
        Ok(match reference {
            Reference::Layout { dir, .. } => Box::new(if for_writing {
                Layout::open_or_create(dir)?
            } else {
                Layout::open(dir)?
            }),
            Reference::Registry {
                host, repository, ..
            } => Box::new(RegistryRepository::open(
                host,
                repository,
                &self.registry_options(),
            )?),
        })
    }
}

/// A command's result: what to print, and the exit code.
pub struct Outcome {
    pub human: String,
    pub json: serde_json::Value,
    pub exit_code: i32,
    /// Advice on a result that is not a plain success (a pull that left
    /// conflicting modules alone): printed on stderr as `hint:` lines, like
    /// an error's hints, in both output forms.
    pub hints: Vec<String>,
}

impl Outcome {
    fn ok<T: Serialize>(human: String, report: &T) -> Outcome {
        Outcome {
            human,
            json: serde_json::to_value(report).expect("reports serialise"),
            exit_code: 0,
            hints: Vec::new(),
        }
    }

    /// Prints to stdout in the chosen form: the human text with every
    /// control character but line feeds and tabs escaped (values quoted from
    /// bundles and servers are already [`crate::text::field`]-escaped where
    /// they are put in), or pretty JSON (serde escapes control characters).
    /// A closed stdout is not an error (see [`write_all_quietly`]).
    pub fn print(&self, json: bool) -> std::io::Result<()> {
        let text = if json {
            let mut t = serde_json::to_string_pretty(&self.json).expect("serialisable");
            t.push('\n');
            t
        } else {
            crate::text::terminal_safe(&self.human).into_owned()
        };
        write_all_quietly(&mut std::io::stdout().lock(), &text)?;
        let hints: String = self
            .hints
            .iter()
            .map(|h| format!("hint: {}\n", crate::text::field(h)))
            .collect();
        write_all_quietly(&mut std::io::stderr(), &hints)
    }
}

/// Writes `text` and flushes. A reader that went away (`ocigo store list |
/// head -1`, `| true`) ends output quietly: `BrokenPipe` counts as done, as
/// in ripgrep. Other errors (a full disk) are returned.
pub fn write_all_quietly(out: &mut dyn std::io::Write, text: &str) -> std::io::Result<()> {
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// What [`publish`] did at the destination.
pub(super) struct Published {
    pub target: Box<dyn Repository + Send + Sync>,
    pub copy: crate::transfer::CopyStats,
    /// What the tag named before (see [`tag_move_note`]).
    pub previous_digest: Option<String>,
    pub signature: Option<sign::SignReport>,
}

/// The last steps of every pack: copies `top` from the store to `dest`
/// (only the blobs it lacks), noting what the tag named before, then signs
/// it there when asked.
pub(super) fn publish(
    g: &Global,
    store: &Layout,
    top: &crate::oci::Descriptor,
    dest: &Reference,
    signer: Option<&sign::Signer>,
    progress: &Progress,
) -> Result<Published> {
    let target = g.open(dest, true)?;
    let previous_digest = digest_before(target.as_ref(), dest.tag())?;
    let copy = crate::transfer::copy(
        store,
        top,
        target.as_ref(),
        dest.tag(),
        &g.copy_options()?,
        progress,
    )?;
    let signature = match signer {
        Some(s) => Some(sign::sign_at(target.as_ref(), dest, top, s)?),
        None => None,
    };
    Ok(Published {
        target,
        copy,
        previous_digest,
        signature,
    })
}

/// The digest `tag` names in `repo` before a command overwrites it (one
/// resolve: a HEAD on a registry); `None` for a new tag or no tag.
fn digest_before(repo: &dyn Repository, tag: Option<&str>) -> Result<Option<String>> {
    let Some(tag) = tag else {
        return Ok(None);
    };
    match repo.resolve(tag) {
        Ok(d) => Ok(Some(d.digest.to_string())),
        Err(e) if crate::error::kind_of(&e) == Some(crate::error::Kind::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// "v1 moved from sha256:A to sha256:B", said when a command points an
/// existing tag at other content; empty when the tag is new or unchanged.
fn tag_move_note(reference: &Reference, previous: Option<&str>, now: &str) -> String {
    match (reference.tag(), previous) {
        (Some(tag), Some(before)) if before != now => {
            format!("{tag} moved from {before} to {now}\n")
        }
        _ => String::new(),
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn shell_quote(s: &str) -> String {
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-:=,".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
