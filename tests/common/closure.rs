//! A generated organisation-scale module closure, written straight into a
//! static `file://` GOPROXY tree (no go command, no source directories), and
//! main modules that need all of it. Generation is deterministic and cached
//! between runs under `target/ocigo-gen/`, keyed by the spec.
//!
//! The mix: `packages` module versions with a package (a zip of
//! `files_per_zip` files; every tenth path upper-case, every tenth with a
//! `/v2` suffix, every tenth a pseudo-version) that the main module imports;
//! the rest graph-only (`go 1.16`, no zip needed), a quarter of them as
//! paths with three versions, some upper-case, `/v3` or pseudo-versions;
//! and "hub" modules (`go 1.16`, so their graphs are not pruned) that the
//! main module requires and that require every graph-only version, so the
//! go command reads every `.mod` when it loads the module graph.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::fixtures::{FIXTURE_TIME, escape_path, semver_cmp};

/// What to generate. `versions` counts every module version in the
/// closure (packages, graph-only and hubs).
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub versions: usize,
    pub packages: usize,
    pub files_per_zip: usize,
}

/// One module version of the closure.
#[derive(Debug, Clone)]
pub struct Gen {
    pub path: String,
    pub version: String,
    pub go_mod: String,
    /// Files (name, content) when the module has a package.
    pub files: Option<Vec<(String, Vec<u8>)>>,
}

impl Gen {
    fn zip_bytes(&self) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(0o644);
        let mut files = self.files.clone().expect("a package module");
        files.sort();
        for (name, data) in files {
            w.start_file(format!("{}@{}/{name}", self.path, self.version), opts)
                .unwrap();
            w.write_all(&data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    /// go.sum lines: the zip's (for package modules) and the go.mod's.
    pub fn sum_lines(&self) -> String {
        let mut out = String::new();
        if let Some(files) = &self.files {
            let mut entries: Vec<(String, [u8; 32])> = files
                .iter()
                .map(|(n, d)| {
                    (
                        format!("{}@{}/{n}", self.path, self.version),
                        Sha256::digest(d).into(),
                    )
                })
                .collect();
            let h1 = ::ocigo::gomod::hash_zip_entries(&mut entries).unwrap();
            let _ = writeln!(out, "{} {} {h1}", self.path, self.version);
        }
        let _ = writeln!(
            out,
            "{} {}/go.mod {}",
            self.path,
            self.version,
            ::ocigo::gomod::hash_gomod(self.go_mod.as_bytes())
        );
        out
    }
}

/// The generated closure: its proxy and every module version in it.
pub struct Closure {
    pub proxy: PathBuf,
    /// Package modules the base project imports, in order.
    pub packages: Vec<Gen>,
    pub graph: Vec<Gen>,
    pub hubs: Vec<Gen>,
    /// In the proxy but not in the base project: a newer version of
    /// `packages[3]` and one more package module.
    pub upgrade: Gen,
    pub extra: Gen,
}

impl Closure {
    /// Module versions in the base project's closure.
    pub fn versions(&self) -> usize {
        self.packages.len() + self.graph.len() + self.hubs.len()
    }
}

fn package(i: usize, files_per_zip: usize, version_override: Option<&str>) -> Gen {
    let (path, version) = match i % 10 {
        0 => (format!("example.com/Pkg/Up{i:05}"), "v1.0.0".to_string()),
        1 => (format!("example.com/pkg/m{i:05}/v2"), "v2.0.0".to_string()),
        2 => (
            format!("example.com/pkg/m{i:05}"),
            format!("v0.0.0-20230102030405-{:012x}", i),
        ),
        _ => (format!("example.com/pkg/m{i:05}"), "v1.0.0".to_string()),
    };
    let version = version_override.map(str::to_string).unwrap_or(version);
    let go_mod = format!("module {path}\n\ngo 1.22\n");
    let mut files = vec![
        ("go.mod".to_string(), go_mod.clone().into_bytes()),
        (
            "p.go".to_string(),
            format!("package p{i}\n\n// Name names the module version.\nconst Name = \"{path}@{version}\"\n")
                .into_bytes(),
        ),
    ];
    for k in 0..files_per_zip.saturating_sub(2) {
        let mut text = format!("{path}@{version} file {k}\n");
        for line in 0..(8 + (i + k) % 24) {
            let _ = writeln!(text, "line {line} of data for module {i}, file {k}");
        }
        files.push((format!("data/d{k:02}.txt"), text.into_bytes()));
    }
    Gen {
        path,
        version,
        go_mod,
        files: Some(files),
    }
}

fn graph_only(path: String, version: String) -> Gen {
    Gen {
        go_mod: format!("module {path}\n\ngo 1.16\n"),
        path,
        version,
        files: None,
    }
}

/// Builds (or reuses) the closure for `spec`.
pub fn generate(spec: Spec) -> Closure {
    assert!(spec.packages >= 10 && spec.versions > spec.packages + 10);
    let packages: Vec<Gen> = (0..spec.packages)
        .map(|i| package(i, spec.files_per_zip, None))
        .collect();
    let upgrade = package(3, spec.files_per_zip, Some("v1.1.0"));
    let extra = {
        let mut g = package(spec.packages + 7, spec.files_per_zip, None);
        g.path = "example.com/pkg/extra".into();
        g.go_mod = format!("module {}\n\ngo 1.22\n", g.path);
        if let Some(files) = &mut g.files {
            files[0].1 = g.go_mod.clone().into_bytes();
        }
        g
    };

    // Hubs require up to PER_HUB graph-only versions each.
    const PER_HUB: usize = 200;
    let rest = spec.versions - spec.packages;
    let hubs_n = rest.div_ceil(PER_HUB + 1);
    let graph_n = rest - hubs_n;
    let multi_paths = graph_n / 12;
    let mut graph = Vec::with_capacity(graph_n);
    for j in 0..multi_paths {
        for minor in 0..3 {
            graph.push(graph_only(
                format!("example.com/multi/k{j:05}"),
                format!("v1.{minor}.0"),
            ));
        }
    }
    let mut i = 0;
    while graph.len() < graph_n {
        let (path, version) = match i % 7 {
            0 => (format!("example.com/Graph/G{i:05}"), "v1.0.0".to_string()),
            1 => (
                format!("example.com/graph/g{i:05}/v3"),
                "v3.0.0".to_string(),
            ),
            2 => (
                format!("example.com/graph/g{i:05}"),
                format!("v0.0.0-20230102030405-{:012x}", i + 1_000_000),
            ),
            _ => (format!("example.com/graph/g{i:05}"), "v1.0.0".to_string()),
        };
        graph.push(graph_only(path, version));
        i += 1;
    }
    // Versions of one path go to different hubs (a go.mod requires a path once).
    let mut requires: Vec<Vec<usize>> = vec![Vec::new(); hubs_n];
    for k in 0..graph.len() {
        requires[k % hubs_n].push(k);
    }
    let hubs: Vec<Gen> = requires
        .iter()
        .enumerate()
        .map(|(h, list)| {
            let path = format!("example.com/hub/h{h:04}");
            let mut go_mod = format!("module {path}\n\ngo 1.16\n\nrequire (\n");
            for &k in list {
                let _ = writeln!(go_mod, "\t{} {}", graph[k].path, graph[k].version);
            }
            go_mod.push_str(")\n");
            // `go mod download` fetches the zip of every module the main
            // go.mod requires: a hub's holds its go.mod only.
            Gen {
                path,
                version: "v1.0.0".into(),
                files: Some(vec![("go.mod".to_string(), go_mod.clone().into_bytes())]),
                go_mod,
            }
        })
        .collect();

    let key = format!(
        "v2-{}-{}-{}",
        spec.versions, spec.packages, spec.files_per_zip
    );
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("ocigo-gen")
        .join(&key);
    let proxy = root.join("proxy");
    if !root.join("complete").exists() {
        let _ = fs::remove_dir_all(&root);
        let tmp = root.with_extension(format!("tmp-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        let all = packages
            .iter()
            .chain(&graph)
            .chain(&hubs)
            .chain([&upgrade, &extra]);
        write_proxy(&tmp.join("proxy"), all);
        fs::write(tmp.join("complete"), key.as_bytes()).unwrap();
        match fs::rename(&tmp, &root) {
            Ok(()) => {}
            // Another test process made it first.
            Err(_) if root.join("complete").exists() => {
                let _ = fs::remove_dir_all(&tmp);
            }
            Err(e) => panic!("renaming {} to {}: {e}", tmp.display(), root.display()),
        }
    }
    Closure {
        proxy,
        packages,
        graph,
        hubs,
        upgrade,
        extra,
    }
}

fn write_proxy<'a>(proxy: &Path, modules: impl Iterator<Item = &'a Gen>) {
    let mut by_path: std::collections::BTreeMap<&str, Vec<&Gen>> = Default::default();
    for m in modules {
        by_path.entry(&m.path).or_default().push(m);
    }
    for (path, mut versions) in by_path {
        let at_v = proxy.join(escape_path(path)).join("@v");
        fs::create_dir_all(&at_v).unwrap();
        versions.sort_by(|a, b| semver_cmp(&a.version, &b.version));
        let mut list = String::new();
        for m in versions {
            let ev = escape_path(&m.version);
            fs::write(
                at_v.join(format!("{ev}.info")),
                format!(r#"{{"Version":"{}","Time":"{FIXTURE_TIME}"}}"#, m.version),
            )
            .unwrap();
            fs::write(at_v.join(format!("{ev}.mod")), &m.go_mod).unwrap();
            if m.files.is_some() {
                fs::write(at_v.join(format!("{ev}.zip")), m.zip_bytes()).unwrap();
            }
            if !m.version.starts_with("v0.0.0-") {
                let _ = writeln!(list, "{}", m.version);
            }
        }
        fs::write(at_v.join("list"), list).unwrap();
    }
}

/// Writes a main module in `dir` that imports `packages` and requires them
/// and every hub, with a complete go.sum.
pub fn write_project(dir: &Path, packages: &[&Gen], hubs: &[Gen], graph: &[Gen]) {
    fs::create_dir_all(dir).unwrap();
    let mut go_mod = String::from("module example.com/orgbundle\n\ngo 1.22\n\nrequire (\n");
    let mut main = String::from("package main\n\nimport (\n\t\"fmt\"\n\n");
    let mut names = String::new();
    let mut sum = String::new();
    for (n, m) in packages.iter().enumerate() {
        let _ = writeln!(go_mod, "\t{} {}", m.path, m.version);
        let _ = writeln!(main, "\tp{n} \"{}\"", m.path);
        let _ = writeln!(names, "\t\tp{n}.Name,");
        sum.push_str(&m.sum_lines());
    }
    for h in hubs {
        let _ = writeln!(go_mod, "\t{} {}", h.path, h.version);
        sum.push_str(&h.sum_lines());
    }
    for g in graph {
        sum.push_str(&g.sum_lines());
    }
    go_mod.push_str(")\n");
    let _ = write!(
        main,
        ")\n\nfunc main() {{\n\tfmt.Println(len([]string{{\n{names}\t}}))\n}}\n"
    );
    let mut lines: Vec<&str> = sum.lines().collect();
    lines.sort();
    let sum: String = lines.iter().map(|l| format!("{l}\n")).collect();
    fs::write(dir.join("go.mod"), go_mod).unwrap();
    fs::write(dir.join("go.sum"), sum).unwrap();
    fs::write(dir.join("main.go"), main).unwrap();
}
