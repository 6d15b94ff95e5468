//! Go toolchains as OCI artifacts: what a toolchain is made of and where
//! to get it (`tree`, `fetch`), how it is split into layers (`layers`),
//! platform files as deltas against an earlier release (`delta`), the
//! artifact format (`format`), and installing it as a GOROOT or as the
//! module the go command switches to (`extract`).
//!
//! Owns: toolchain knowledge (FORMATS.md section 5). Must not: parse
//! command lines, decide host policy, or write GOMODCACHE directly (the
//! module form goes through `install`). Sits beside `gomod`, below
//! `commands`; nothing here reaches up.

pub mod delta;
pub mod extract;
pub mod fetch;
pub mod format;
pub mod layers;
pub mod tree;

use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use sha2::{Digest as _, Sha256};

use crate::oci::{Descriptor, Digest, Repository};
use format::{BuiltManifest, LayerInfo, ModuleForm, ToolchainConfig};
use tree::Tree;

/// The earlier release a platform's delta layers are made against: its
/// full platform layers (already in the repository `build` stores into),
/// and their files extracted under `dir`.
pub struct DeltaBase {
    pub version: String,
    pub dir: std::path::PathBuf,
    /// (config entry, compressed size) of each base layer, by its name
    /// (`bin`, `pkg/tool`): the layer of the same name is made against it.
    pub layers: Vec<(LayerInfo, u64)>,
}

impl DeltaBase {
    fn layer(&self, name: &str) -> Option<&(LayerInfo, u64)> {
        self.layers.iter().find(|(l, _)| l.name == name)
    }
}

/// A layer written to a temporary file, ready to store.
struct WrittenLayer {
    file: tempfile::NamedTempFile,
    digest: Digest,
    size: u64,
    stats: layers::LayerStats,
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    n: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Builds the toolchain's layers (in parallel, `jobs` at once, into
/// temporary files in `tmp_dir`), stores the ones `repo` lacks, and
/// returns the per-platform manifest. `module` says what the checksum
/// database confirmed, when it was asked; the h1 of the module form is
/// computed from the files either way. With `delta`, the platform layers
/// whose base has a layer of the same name are written as delta layers
/// against it (format v2); without, the format is v1 and unchanged.
pub fn build(
    tree: &Tree,
    repo: &dyn Repository,
    tmp_dir: &Path,
    checked_with: Option<(String, String)>,
    jobs: usize,
    delta: Option<&DeltaBase>,
) -> Result<(BuiltManifest, ToolchainConfig)> {
    let plan = layers::plan(&tree.files, layers::target_bytes());
    // For each layer: the base layer it is a delta against.
    let bases: Vec<Option<&(LayerInfo, u64)>> = plan
        .iter()
        .map(|p| {
            delta
                .filter(|_| {
                    p.files
                        .iter()
                        .all(|&f| delta::is_platform_file(&tree.files[f].name))
                })
                .and_then(|d| d.layer(&p.name))
        })
        .collect();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<WrittenLayer>>>> =
        Mutex::new((0..plan.len()).map(|_| None).collect());
    let mut order: Vec<usize> = (0..plan.len()).collect();
    order.sort_by_key(|&i| {
        std::cmp::Reverse(
            plan[i]
                .files
                .iter()
                .map(|&f| tree.files[f].size)
                .sum::<u64>(),
        )
    });
    // A tree read from the module zip whose h1 the checksum database
    // confirmed has that h1 as its module form: the names map back one to
    // one. Anything else is hashed while the layers are built.
    let known = checked_with
        .as_ref()
        .filter(|_| tree.source.kind == "module")
        .map(|(_, h1)| h1.clone());
    let module_hash = std::thread::scope(|s| {
        let hash = s.spawn(|| match &known {
            Some(h1) => Ok(h1.clone()),
            None => tree.module_hash(),
        });
        for _ in 0..jobs.clamp(1, plan.len().max(1)) {
            s.spawn(|| {
                let mut zip = match tree.open_zip() {
                    Ok(z) => z,
                    Err(e) => {
                        results.lock().expect("not poisoned")[0] = Some(Err(e));
                        return;
                    }
                };
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = order.get(k) else { return };
                    let base_dir = bases[i].and(delta).map(|d| d.dir.as_path());
                    let r = write_one(tree, &plan[i].files, zip.as_mut(), tmp_dir, base_dir);
                    let failed = r.is_err();
                    results.lock().expect("not poisoned")[i] = Some(r);
                    if failed {
                        next.store(usize::MAX / 2, Ordering::Relaxed);
                        return;
                    }
                }
            });
        }
        hash.join().expect("hashing thread panicked")
    })?;
    let mut written = Vec::with_capacity(plan.len());
    for (i, r) in results
        .into_inner()
        .expect("not poisoned")
        .into_iter()
        .enumerate()
    {
        match r {
            Some(r) => written.push(r?),
            None => {
                return Err(anyhow::anyhow!("layer {} was not built", plan[i].name));
            }
        }
    }
    let mut infos = Vec::with_capacity(written.len());
    let mut sizes = Vec::with_capacity(written.len());
    let mut base_infos: Vec<LayerInfo> = Vec::new();
    let mut base_sizes = Vec::new();
    for ((p, w), base) in plan.iter().zip(&written).zip(&bases) {
        let info = LayerInfo {
            digest: w.digest.clone(),
            name: p.name.clone(),
            files: w.stats.files,
            bytes: w.stats.file_bytes,
            tar_bytes: w.stats.tar_bytes,
            delta_from: base
                .map(|(b, _)| vec![b.digest.clone()])
                .unwrap_or_default(),
        };
        let desc = Descriptor::new(info.media_type(), w.digest.clone(), w.size);
        if !repo.blob_exists(&w.digest)? {
            let mut f = crate::fs::open_regular_required(w.file.path(), "layer")?;
            repo.push_blob(&desc, &mut f)
                .with_context(|| format!("storing layer {} ({})", w.digest, p.name))?;
        }
        if let Some((b, size)) = base
            && !base_infos.iter().any(|x| x.digest == b.digest)
        {
            base_infos.push(b.clone());
            base_sizes.push(*size);
        }
        infos.push(info);
        sizes.push(w.size);
    }
    sizes.extend(base_sizes);
    if let Some((_, recorded)) = &checked_with
        && *recorded != module_hash
    {
        return Err(crate::error::fail(
            crate::error::Kind::Integrity,
            format!(
                "the toolchain's files hash to {module_hash}, but the checksum database records {recorded}"
            ),
        ));
    }
    let config = ToolchainConfig {
        format_version: if base_infos.is_empty() {
            format::FORMAT_VERSION
        } else {
            format::FORMAT_VERSION_DELTA
        },
        version: tree.version.clone(),
        os: tree.os.clone(),
        arch: tree.arch.clone(),
        time: tree.time.clone(),
        source: tree.source.clone(),
        module: ModuleForm {
            version: tree::module_version(&tree.version, &tree.os, &tree.arch),
            hash: module_hash,
            checked_with: checked_with.map(|(db, _)| db),
        },
        files: infos.iter().map(|l| l.files).sum(),
        bytes: infos.iter().map(|l| l.bytes).sum(),
        layers: infos,
        base_version: (!base_infos.is_empty())
            .then(|| delta.map(|d| d.version.clone()))
            .flatten(),
        bases: base_infos,
    };
    config.validate()?;
    let built = format::build_manifest(&config, &sizes);
    repo.push_blob(&built.config_descriptor, &mut &built.config_bytes[..])
        .context("storing the toolchain config")?;
    repo.push_manifest(crate::oci::MEDIA_TYPE_MANIFEST, &built.manifest, None)?;
    Ok((built, config))
}

fn write_one(
    tree: &Tree,
    files: &[usize],
    zip: Option<&mut zip::ZipArchive<std::fs::File>>,
    tmp_dir: &Path,
    base_dir: Option<&Path>,
) -> Result<WrittenLayer> {
    let file = tempfile::Builder::new()
        .prefix(".ocigo-layer-")
        .tempfile_in(tmp_dir)
        .with_context(|| format!("creating a temporary file in {}", tmp_dir.display()))?;
    let mut w = HashingWriter {
        inner: io::BufWriter::with_capacity(1 << 20, file.reopen()?),
        hasher: Sha256::new(),
        n: 0,
    };
    let stats = match base_dir {
        Some(dir) => delta::write_delta_layer(tree, files, zip, dir, &mut w)?,
        None => layers::write_layer(tree, files, zip, &mut w)?,
    };
    w.flush().context("writing a layer")?;
    Ok(WrittenLayer {
        digest: Digest::from_sha256(w.hasher),
        size: w.n,
        file,
        stats,
    })
}

/// The `os/arch` of this host, as Go names it.
pub fn host_platform() -> (String, String) {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        o => o,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "loongarch64" => "loong64",
        a => a,
    };
    (os.to_string(), arch.to_string())
}

/// Parses `os/arch`.
pub fn parse_platform(s: &str) -> Result<(String, String)> {
    match s.split_once('/') {
        Some((os, arch)) if tree::is_platform_token(os) && tree::is_platform_token(arch) => {
            Ok((os.to_string(), arch.to_string()))
        }
        _ => Err(crate::error::fail(
            crate::error::Kind::Usage,
            format!("--platform {s:?} is not os/arch (such as linux/amd64)"),
        )),
    }
}
