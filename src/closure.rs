//! Resolving a project's module closure with the go command's own
//! resolution, in a private and empty GOMODCACHE, and checking everything
//! it fetched against go.sum with ocigo's own hashes.
//!
//! Owns: running `go` (env, list, mod download) for pack, and reading the
//! private cache it fills. Must not: write to the user's GOMODCACHE, change
//! the user's go.mod/go.sum (if the go command does, the original bytes are
//! put back), or know about OCI.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::error::{Kind, WithHint, fail, fail_hint};
use crate::gomod::gosum::SumKind;
use crate::gomod::{self, GoSum, ModuleVersion};

/// Where pack gets modules from.
#[derive(Debug, Clone)]
pub enum ModuleSource {
    /// The user's GOPROXY/GOPRIVATE/GONOSUMDB/GOFLAGS settings.
    Network,
    /// An existing module cache, with no network at all.
    Cache(PathBuf),
}

#[derive(Debug, Clone)]
pub struct ResolveOptions {
    pub project_dir: PathBuf,
    /// `os/arch` pairs; empty means the host's.
    pub platforms: Vec<String>,
    pub source: ModuleSource,
    /// The go command to run.
    pub go: OsString,
    /// Also everything `go mod tidy`, `go mod download`, `go list -m all`
    /// and `go mod verify` need, on any platform and with any build tags
    /// (`pack --closure tidy`).
    pub tidy: bool,
}

/// One module version the closure needs, as files in the private cache.
#[derive(Debug, Clone)]
pub struct ResolvedModule {
    pub module: ModuleVersion,
    pub info: Option<String>,
    pub go_mod: String,
    pub mod_hash: String,
    /// The zip and its h1 hash, when the module's source is needed.
    pub zip: Option<(PathBuf, String)>,
}

#[derive(Debug)]
pub struct Closure {
    pub main_modules: Vec<(String, Option<String>)>,
    pub platforms: Vec<String>,
    pub modules: Vec<ResolvedModule>,
    /// Keeps the private cache alive while its zips are ingested.
    _cache: PrivateCache,
}

/// The private GOMODCACHE, removed when dropped without making the user
/// wait: it holds one file per source file of every extracted module
/// (~100,000 files for a 6,000-zip closure, 7 s to 70 s to delete), so it
/// is renamed aside and deleted by a detached `rm -rf` that outlives ocigo.
/// If that cannot start, it is deleted in place.
/// `OCIGO_PRIVATE_CACHE_SYNC_DELETE=1` deletes it in place, waiting.
#[derive(Debug)]
struct PrivateCache(Option<tempfile::TempDir>);

impl PrivateCache {
    fn path(&self) -> &Path {
        self.0.as_ref().expect("alive until dropped").path()
    }
}

impl Drop for PrivateCache {
    fn drop(&mut self) {
        let Some(dir) = self.0.take() else { return };
        if std::env::var_os("OCIGO_PRIVATE_CACHE_SYNC_DELETE").is_some() {
            return; // TempDir's own drop deletes it, waiting.
        }
        let path = dir.path().to_path_buf();
        let doomed = path.with_file_name(format!(
            "{}.deleting",
            path.file_name().expect("named").to_string_lossy()
        ));
        if fs::rename(&path, &doomed).is_err() {
            return;
        }
        // Nothing is left at the old path for TempDir to delete.
        let _ = dir.keep();
        let spawned = Command::new("rm")
            .arg("-rf")
            .arg("--")
            .arg(&doomed)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if spawned.is_err() {
            let _ = fs::remove_dir_all(&doomed);
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListedModule {
    path: String,
    dir: Option<String>,
    go_version: Option<String>,
    #[serde(default)]
    main: bool,
}

/// Resolves the closure. `progress` is told each step.
pub fn resolve(opts: &ResolveOptions, progress: &dyn Fn(&str)) -> Result<Closure> {
    let project = opts.project_dir.canonicalize().map_err(|e| {
        fail(
            Kind::Usage,
            format!("project directory {}: {e}", opts.project_dir.display()),
        )
    })?;
    let cache = PrivateCache(Some(
        tempfile::Builder::new()
            .prefix("ocigo-modcache-")
            .tempdir()
            .context("creating a private module cache")?,
    ));
    let go = GoRunner::new(opts, cache.path(), &project)?;

    progress("finding main modules");
    // Outside a module the go command invents a "command-line-arguments"
    // main module; ask it where go.mod and go.work are instead.
    let gomod = go.env_var(&project, "GOMOD")?;
    let gowork_in_use = go.env_var(&project, "GOWORK")?;
    if (gomod.is_empty() || gomod == "/dev/null")
        && (gowork_in_use.is_empty() || gowork_in_use == "off")
    {
        return Err(fail(
            Kind::Usage,
            format!(
                "{} is not in a Go module: no go.mod or go.work in it or above it",
                project.display()
            ),
        ));
    }
    let listed = go.output(&project, &["list", "-m", "-json"], &[])?;
    let mains: Vec<ListedModule> = serde_json::Deserializer::from_slice(&listed)
        .into_iter::<ListedModule>()
        .collect::<std::result::Result<_, _>>()
        .context("reading `go list -m -json` output")?;
    let mains: Vec<ListedModule> = mains.into_iter().filter(|m| m.main).collect();
    if mains.is_empty() {
        return Err(fail(
            Kind::Usage,
            format!(
                "{} is not in a Go module (no go.mod found)",
                project.display()
            ),
        ));
    }

    // Read go.sum before the go command runs, so what it might add cannot vouch
    // for itself, and so the user's files can be put back exactly.
    let mut sums = GoSum::default();
    let mut originals: Vec<Original> = Vec::new();
    let gowork = go.env_var(&project, "GOWORK")?;
    let mut sum_files: Vec<PathBuf> = mains
        .iter()
        .filter_map(|m| m.dir.as_ref())
        .flat_map(|d| [Path::new(d).join("go.sum"), Path::new(d).join("go.mod")])
        .collect();
    if !gowork.is_empty() && gowork != "off" {
        sum_files.push(PathBuf::from(format!("{gowork}.sum")));
        sum_files.push(PathBuf::from(&gowork));
    }
    for f in &sum_files {
        // Read once: the same bytes are parsed and kept to put back.
        let bytes = match fs::read(f) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("reading {}", f.display())),
        };
        if let Some(b) = &bytes
            && f.extension().is_some_and(|e| e == "sum")
        {
            let text = std::str::from_utf8(b).map_err(|_| {
                fail(
                    Kind::Integrity,
                    format!("{} is not UTF-8 text", f.display()),
                )
            })?;
            sums.parse_into(text, &f.display().to_string())?;
        }
        originals.push(Original {
            path: f.clone(),
            bytes,
            permissions: fs::metadata(f).ok().map(|m| m.permissions()),
        });
    }
    let mut restore = Restore(originals);

    let platforms = if opts.platforms.is_empty() {
        let goos = go.env_var(&project, "GOOS")?;
        let goarch = go.env_var(&project, "GOARCH")?;
        vec![format!("{goos}/{goarch}")]
    } else {
        opts.platforms.clone()
    };

    progress("downloading the main modules' requirements");
    go.run(&project, &["mod", "download"], &[])?;
    for platform in &platforms {
        let (goos, goarch) = platform.split_once('/').ok_or_else(|| {
            fail(
                Kind::Usage,
                format!("platform {platform:?} is not of the form os/arch"),
            )
        })?;
        progress(&format!("loading packages and tests for {platform}"));
        for m in &mains {
            let dir = m.dir.as_deref().map(Path::new).unwrap_or(&project);
            go.run(
                dir,
                &["list", "-deps", "-test", "-e=false", "./..."],
                &[("GOOS", goos), ("GOARCH", goarch)],
            )?;
        }
    }
    progress("loading the module graph");
    go.run(&project, &["list", "-m", "all"], &[])?;
    if opts.tidy {
        // `go mod tidy` loads every package of the main modules with all
        // build tags and their tests; `-diff` changes no file and fails
        // when the module is not tidy. `go mod download all` fetches every
        // module of the build list, which `go mod verify` checks.
        progress("loading what go mod tidy needs (all platforms and tags)");
        for m in &mains {
            let dir = m.dir.as_deref().map(Path::new).unwrap_or(&project);
            go.run(dir, &["mod", "tidy", "-diff"], &[]).map_err(|e| {
                e.context(format!(
                    "`go mod tidy -diff` in {} reports changes or failed: run `go mod tidy` there first",
                    dir.display()
                ))
            })?;
        }
        go.run(&project, &["mod", "download", "all"], &[])?;
    }
    restore.put_back()?;

    progress("verifying modules against go.sum");
    let modules = collect(cache.path(), &sums)?;
    Ok(Closure {
        main_modules: mains.into_iter().map(|m| (m.path, m.go_version)).collect(),
        platforms,
        modules,
        _cache: cache,
    })
}

/// A user's file as it was before the go command ran (`None`: absent).
struct Original {
    path: PathBuf,
    bytes: Option<Vec<u8>>,
    permissions: Option<fs::Permissions>,
}

/// Puts the user's go.mod/go.sum/go.work files back if the go command
/// changed them: the same bytes and the same permissions. Once: explicitly
/// on success, or on drop after a failure.
struct Restore(Vec<Original>);

impl Restore {
    fn put_back(&mut self) -> Result<()> {
        for Original {
            path,
            bytes: original,
            permissions,
        } in std::mem::take(&mut self.0)
        {
            let (path, original) = (&path, &original);
            let now = fs::read(path).ok();
            if now != *original {
                match original {
                    Some(bytes) => {
                        // The same mode, set on the new file's handle; a
                        // link where the file was is refused, not followed.
                        let mode = permissions.as_ref().map_or(0o644, |p| p.mode() & 0o7777);
                        crate::fs::write_atomic(
                            path,
                            ".ocigo-tmp-",
                            bytes,
                            mode,
                            crate::fs::Durability::Synced,
                        )
                        .with_context(|| format!("restoring {}", path.display()))?;
                    }
                    None => fs::remove_file(path).with_context(|| {
                        format!("removing {} that the go command created", path.display())
                    })?,
                }
            }
        }
        Ok(())
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = self.put_back();
    }
}

struct GoRunner {
    go: OsString,
    env: Vec<(String, OsString)>,
    /// Said after a failure, to point at the likely cause.
    hint: String,
}

impl GoRunner {
    fn new(opts: &ResolveOptions, cache: &Path, project: &Path) -> Result<GoRunner> {
        // The user's GOFLAGS as the go command sees them (environment or
        // `go env -w`), plus -modcacherw so the private cache can be deleted.
        let user_flags = {
            let bare = GoRunner {
                go: opts.go.clone(),
                env: Vec::new(),
                hint: String::new(),
            };
            bare.env_var(project, "GOFLAGS")?
        };
        let mut env: Vec<(String, OsString)> = vec![("GOMODCACHE".into(), cache.into())];
        env.push((
            "GOFLAGS".into(),
            format!("{user_flags} -modcacherw").trim().into(),
        ));
        if let ModuleSource::Cache(dir) = &opts.source {
            let download = dir.join("cache/download");
            if !download.is_dir() {
                return Err(fail(
                    Kind::NotFound,
                    format!(
                        "{} is not a module cache (no cache/download directory)",
                        dir.display()
                    ),
                ));
            }
            let abs = download.canonicalize()?;
            env.push(("GOPROXY".into(), format!("file://{}", abs.display()).into()));
            // go.sum is checked by ocigo itself below; no checksum database.
            env.push(("GOSUMDB".into(), "off".into()));
            env.push(("GOTOOLCHAIN".into(), "local".into()));
            env.push(("GOVCS".into(), "*:off".into()));
        }
        let hint = match &opts.source {
            ModuleSource::Cache(dir) => format!(
                "the module cache {} does not hold everything the project needs: fill it with \
                 `go mod download` and `go test ./...` on a machine that has the modules",
                dir.display()
            ),
            ModuleSource::Network => String::new(),
        };
        Ok(GoRunner {
            go: opts.go.clone(),
            env,
            hint,
        })
    }

    fn command(&self, dir: &Path, args: &[&str], extra: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(&self.go);
        cmd.args(args).current_dir(dir);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd
    }

    fn output(&self, dir: &Path, args: &[&str], extra: &[(&str, &str)]) -> Result<Vec<u8>> {
        let out = self.command(dir, args, extra).output().map_err(|e| {
            fail(
                Kind::NotFound,
                format!("cannot run {:?} (pack needs the go command): {e}", self.go),
            )
        })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let extra_env = extra
                .iter()
                .map(|(k, v)| format!("{k}={v} "))
                .collect::<String>();
            let command = format!("{extra_env}go {}", args.join(" "));
            let mut err = if stderr.contains("missing go.sum entry") {
                fail_hint(
                    Kind::Usage,
                    format!(
                        "go.sum in {} lacks lines the build needs; `{command}` said:\n{}",
                        dir.display(),
                        stderr.trim_end(),
                    ),
                    format!(
                        "run `go mod tidy` in {} on a connected machine, commit go.sum, and pack again",
                        dir.display()
                    ),
                )
            } else {
                fail(
                    go_failure_kind(&stderr),
                    format!(
                        "`{command}` failed in {}:\n{}",
                        dir.display(),
                        stderr.trim_end(),
                    ),
                )
            };
            if !self.hint.is_empty() {
                err = err.hint(self.hint.clone());
            }
            return Err(err);
        }
        Ok(out.stdout)
    }

    fn run(&self, dir: &Path, args: &[&str], extra: &[(&str, &str)]) -> Result<()> {
        self.output(dir, args, extra).map(|_| ())
    }

    fn env_var(&self, dir: &Path, name: &str) -> Result<String> {
        let out = self.output(dir, &["env", name], &[])?;
        Ok(String::from_utf8_lossy(&out).trim().to_string())
    }
}

/// The class of a failed go command: a go.sum that lacks lines is a usage
/// error (the project must be tidied: `go mod tidy`), a line that does not
/// match or a checksum database mismatch is an integrity failure, and
/// anything else means something could not be found.
fn go_failure_kind(stderr: &str) -> Kind {
    const INTEGRITY: [&str; 2] = ["checksum mismatch", "SECURITY ERROR"];
    if INTEGRITY.iter().any(|s| stderr.contains(s)) {
        Kind::Integrity
    } else if stderr.contains("missing go.sum entry") {
        Kind::Usage
    } else {
        Kind::NotFound
    }
}

/// Reads every module version in the private cache's download area (except
/// the checksum database and toolchains) and checks it against go.sum.
fn collect(cache: &Path, sums: &GoSum) -> Result<Vec<ResolvedModule>> {
    let download = cache.join("cache/download");
    let mut found: BTreeMap<ModuleVersion, PathBuf> = BTreeMap::new();
    let mut stack = vec![download.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let rel = path.strip_prefix(&download).expect("below download");
            if rel == Path::new("sumdb") {
                continue;
            }
            if entry.file_name() == "@v" {
                let esc_path = dir
                    .strip_prefix(&download)
                    .expect("below")
                    .to_string_lossy()
                    .to_string();
                let module_path = gomod::unescape(&esc_path)?;
                if module_path == "golang.org/toolchain" {
                    continue;
                }
                for f in fs::read_dir(&path)? {
                    let name = f?.file_name().to_string_lossy().to_string();
                    if let Some(esc_v) = name.strip_suffix(".mod") {
                        let mv = ModuleVersion {
                            path: module_path.clone(),
                            version: gomod::unescape(esc_v)?,
                        };
                        found.insert(mv, path.clone());
                    }
                }
            } else {
                stack.push(path);
            }
        }
    }

    let mut modules = Vec::with_capacity(found.len());
    for (mv, dir) in found {
        let esc_v = gomod::escape_version(&mv.version)?;
        let mod_path = dir.join(format!("{esc_v}.mod"));
        let go_mod = fs::read_to_string(&mod_path)
            .with_context(|| format!("reading {}", mod_path.display()))?;
        let mod_hash = gomod::hash_gomod(go_mod.as_bytes());
        sums.check(&mv.path, &mv.version, SumKind::GoMod, &mod_hash)?;
        let info = fs::read_to_string(dir.join(format!("{esc_v}.info"))).ok();
        let zip_path = dir.join(format!("{esc_v}.zip"));
        let zip = if zip_path.is_file() {
            let summary = gomod::check_zip(&zip_path, &mv, &zip_path.display().to_string())?;
            sums.check(&mv.path, &mv.version, SumKind::Zip, &summary.h1)?;
            Some((zip_path, summary.h1))
        } else {
            None
        };
        modules.push(ResolvedModule {
            module: mv,
            info,
            go_mod,
            mod_hash,
            zip,
        });
    }
    Ok(modules)
}
