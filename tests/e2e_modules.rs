//! End to end: `ocigo pack` a Go project's module closure (resolved by the
//! real go command from a `file://` fixture proxy), move it through a real
//! registry and OCI layouts, `ocigo pull` it into an empty GOMODCACHE, and
//! build, test and verify the project with the real go command in a network
//! namespace with no network at all.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::fixtures::{
    copy_project, copy_tree, escape_path, fixture_env, fixture_modules, semver_cmp, testdata_dir,
};
use common::go::{assert_success, go_offline};
use common::ocigo::{
    Generated, Scratch, add_to_proxy, assert_exit, assert_mentions, assert_unchanged, download_dir,
    generate_modules, go_sum_lines, json_ok, make_writable, ocigo, ocigo_command, ocigo_offline,
    process_dir, remove_module, snapshot, split_error, stderr, stdout, tree_dir,
    write_module_source,
};
use common::registry::{Kind as RegistryKind, TestRegistry};

/// What `go run .` prints for the fixture project on linux.
const PROJECT_OUTPUT: &str = "Upper/Case+Inner+v1.1.0 legacy 2 abcdef123456 unpruned";
const PLATFORMS: [&str; 4] = ["--platform", "linux/amd64", "--platform", "windows/amd64"];

/// The fixture proxy, built once for this test binary.
fn proxy() -> &'static Path {
    common::ocigo::fixture_proxy()
}

/// A new, empty, uniquely named directory below the scratch directory.
fn fresh(s: &Scratch, prefix: &str) -> PathBuf {
    tempfile::Builder::new()
        .prefix(&format!("{prefix}-"))
        .tempdir_in(s.path())
        .unwrap()
        .keep()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// `ocigo pack <project> -o <dest> --json <extra>` with a fresh store and
/// the given proxy, and a GOMODCACHE in the environment that already holds
/// something: pack must resolve in a private cache and leave that one alone.
fn pack(
    sc: &Scratch,
    proxy: &Path,
    project: &Path,
    dest: &str,
    extra: &[&str],
) -> serde_json::Value {
    let user_cache = fresh(sc, "user-modcache");
    fs::write(
        user_cache.join("marker"),
        "pack must not touch this cache\n",
    )
    .unwrap();
    let before = snapshot(&user_cache);
    let mut env = fixture_env(proxy);
    env.push(("GOMODCACHE".into(), s(&user_cache)));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let project = s(project);
    let mut args = vec!["pack", project.as_str(), "-o", dest, "--json"];
    args.extend_from_slice(extra);
    let out = ocigo(&fresh(sc, "store"), &args, &env);
    let report = json_ok(&out, &format!("ocigo pack -o {dest}"));
    assert_unchanged(&before, &user_cache, "the GOMODCACHE in pack's environment");
    report
}

/// `ocigo pull <src> --gomodcache <cache> --json` with a fresh store.
fn pull(sc: &Scratch, src: &str, cache: &Path) -> serde_json::Value {
    let out = ocigo(
        &fresh(sc, "store"),
        &["pull", src, "--gomodcache", &s(cache), "--json"],
        &[],
    );
    json_ok(&out, &format!("ocigo pull {src}"))
}

/// go.sum of the fixture project: (path, version or version/go.mod) -> h1.
fn fixture_go_sum() -> BTreeMap<(String, String), String> {
    fs::read_to_string(testdata_dir().join("project/go.sum"))
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            ((f[0].to_string(), f[1].to_string()), f[2].to_string())
        })
        .collect()
}

/// The go command, offline, with only `modcache`: build, test, verify, the
/// full module graph with `.info` files, the windows-only dependency, and
/// the program's output.
fn assert_go_works_offline(project: &Path, modcache: &Path) {
    let mc = s(modcache);
    // GOSUMDB stays at its default: a complete go.sum means no lookups.
    let env = [
        ("GOMODCACHE", mc.as_str()),
        ("GOPROXY", "off"),
        ("GOFLAGS", ""),
    ];
    for args in [
        &["build", "./..."][..],
        &["test", "./..."],
        &["mod", "verify"],
        &["list", "-m", "all"],
    ] {
        let out = go_offline(project, args, &env);
        assert_success(&out, &format!("offline go {}", args.join(" ")));
    }
    let mut win = env.to_vec();
    win.push(("GOOS", "windows"));
    let out = go_offline(project, &["list", "-deps", "./..."], &win);
    assert_success(&out, "offline GOOS=windows go list -deps ./...");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l == "example.com/winonly"),
        "winonly missing from the windows build:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = go_offline(project, &["run", "."], &env);
    assert_success(&out, "offline go run .");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), PROJECT_OUTPUT);
}

/// The cache holds exactly what the go command would have written for
/// the fixture closure, laid out and permissioned as it lays them out.
fn assert_fixture_cache_layout(modcache: &Path) {
    let sums = fixture_go_sum();
    let proxy = proxy();
    assert!(
        modcache
            .join("cache/download/example.com/!upper/!case/@v/v1.0.0.ziphash")
            .is_file(),
        "no .ziphash for example.com/Upper/Case"
    );
    for m in fixture_modules() {
        let dl = download_dir(modcache, &m.path);
        let ev = escape_path(&m.version);
        let at = |ext: &str| dl.join(format!("{ev}.{ext}"));
        assert_eq!(
            fs::read(at("mod")).unwrap(),
            m.go_mod(),
            "{}@{} .mod",
            m.path,
            m.version
        );
        // `.info` comes with every selected version (`go list -m all` wants
        // it); shared v1.0.0 is only read for its go.mod while loading the
        // graph, so the go command never fetched one.
        if !(m.path == "example.com/shared" && m.version == "v1.0.0") {
            let info = fs::read(at("info"))
                .unwrap_or_else(|e| panic!("{}@{} .info: {e}", m.path, m.version));
            let info: serde_json::Value = serde_json::from_slice(&info).unwrap();
            assert_eq!(info["Version"], m.version.as_str());
        }
        let tree = tree_dir(modcache, &m.path, &m.version);
        match sums.get(&(m.path.clone(), m.version.clone())) {
            Some(h1) => {
                assert_eq!(
                    fs::read_to_string(at("ziphash")).unwrap().trim(),
                    h1,
                    "{}@{} .ziphash",
                    m.path,
                    m.version
                );
                // The layer is the proxy's zip, byte for byte.
                let proxied = proxy
                    .join(m.escaped_path())
                    .join("@v")
                    .join(format!("{ev}.zip"));
                assert_eq!(fs::read(at("zip")).unwrap(), fs::read(proxied).unwrap());
                let files: Vec<String> = snapshot(&tree)
                    .files()
                    .map(|f| f.trim_start_matches('/').to_string())
                    .collect();
                assert_eq!(
                    files,
                    m.files(),
                    "extracted tree of {}@{}",
                    m.path,
                    m.version
                );
                assert_read_only(&tree);
            }
            None => {
                // go.mod only (modonly, shared v1.0.0): no zip, no tree.
                for ext in ["zip", "ziphash"] {
                    assert!(!at(ext).exists(), "{}@{} has a .{ext}", m.path, m.version);
                }
                assert!(!tree.exists(), "{}@{} has a tree", m.path, m.version);
            }
        }
    }
    assert!(
        download_dir(modcache, "example.com/modonly")
            .join("v1.0.0.mod")
            .is_file()
    );
    assert_eq!(
        fs::read_to_string(download_dir(modcache, "example.com/shared").join("list")).unwrap(),
        "v1.0.0\nv1.1.0\n"
    );
    assert_lists_and_no_leftovers(modcache);
}

/// Every `list` holds the versions that have a `.mod`, semver-sorted; no
/// temporary files anywhere. (`<v>.lock` files stay, empty, as the go
/// command leaves its own: ocigo takes the same lock while installing.)
fn assert_lists_and_no_leftovers(modcache: &Path) {
    let tree = snapshot(modcache);
    let mut mods: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for path in tree.0.keys() {
        let name = path.rsplit('/').next().unwrap();
        if name.ends_with(".lock") {
            const EMPTY_SHA256: &str =
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
            assert!(
                tree.0[path].ends_with(EMPTY_SHA256),
                "lock file {path} is not empty"
            );
        }
        assert!(
            !name.ends_with(".partial")
                && !name.starts_with(".ocigo-tmp-")
                && !name.starts_with(".tmp-")
                && !name.contains(".tmp-"),
            "leftover {path} in {}",
            modcache.display()
        );
        if let Some(dir) = path.strip_suffix(&format!("/{name}"))
            && dir.ends_with("/@v")
            && let Some(v) = name.strip_suffix(".mod")
        {
            mods.entry(dir.to_string()).or_default().push(v.to_string());
        }
    }
    assert!(!mods.is_empty(), "no .mod files in {}", modcache.display());
    for (dir, mut versions) in mods {
        versions.sort_by(|a, b| semver_cmp(a, b));
        let want: String = versions.iter().map(|v| format!("{v}\n")).collect();
        let list = fs::read_to_string(modcache.join(dir.trim_start_matches('/')).join("list"))
            .unwrap_or_else(|e| panic!("{dir}/list: {e}"));
        assert_eq!(list, want, "{dir}/list");
    }
}

/// Files 0444 and directories 0555 below (and including) `root`.
fn assert_read_only(root: &Path) {
    let mode = |p: &Path| fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(root), 0o555, "{}", root.display());
    for (rel, what) in &snapshot(root).0 {
        let p = root.join(rel.trim_start_matches('/'));
        if what.starts_with("dir ") {
            assert_eq!(mode(&p), 0o555, "{}", p.display());
        } else {
            assert!(what.starts_with("file "), "{} is {what}", p.display());
            assert_eq!(mode(&p), 0o444, "{}", p.display());
        }
    }
}

/// 1. Pack through a real registry, pull into an empty cache, and the go
///    command builds, tests and verifies offline with only that cache.
#[test]
fn registry_round_trip_builds_offline() {
    registry_round_trip(RegistryKind::Distribution2);
}

/// 1b. The same with CNCF distribution v3 (the referrers API).
#[test]
fn registry_round_trip_builds_offline_distribution_v3() {
    registry_round_trip(RegistryKind::Distribution3);
}

/// 1c. The same with tests/refregistry (a registry with the referrers API).
#[test]
fn registry_round_trip_builds_offline_with_the_referrers_api() {
    registry_round_trip(RegistryKind::Ggcr);
}

fn registry_round_trip(kind: RegistryKind) {
    let sc = Scratch::new();
    let reg = TestRegistry::start_kind(kind);
    let project = copy_project(sc.path());
    let dest = format!("{}/team/mods:v1", reg.addr);
    let packed = pack(&sc, proxy(), &project, &dest, &PLATFORMS);
    assert_eq!(packed["modules"], 10, "{packed:#}");
    assert_eq!(packed["zips"], 8, "{packed:#}");
    // Format v2: an index of a header manifest and one part.
    assert_eq!(packed["manifests"], 1, "{packed:#}");
    assert_eq!(
        packed["media_type"],
        "application/vnd.oci.image.index.v1+json"
    );

    let modcache = sc.dir("modcache");
    let pulled = pull(&sc, &dest, &modcache);
    assert_eq!(pulled["digest"], packed["digest"]);
    assert_eq!(pulled["installed"], 10, "{pulled:#}");
    assert_eq!(pulled["already_present"], 0, "{pulled:#}");
    assert_eq!(pulled["conflicts"], serde_json::json!([]));

    assert_fixture_cache_layout(&modcache);
    assert_go_works_offline(&project, &modcache);
}

/// 2. The same through an OCI layout only, with the pull itself offline.
#[test]
fn layout_round_trip_with_offline_pull() {
    let sc = Scratch::new();
    let project = copy_project(sc.path());
    let dest = format!("oci:{}:v1", s(&sc.join("disk")));
    let packed = pack(&sc, proxy(), &project, &dest, &PLATFORMS);

    let modcache = sc.dir("modcache");
    let out = ocigo_offline(
        &fresh(&sc, "store"),
        &["pull", &dest, "--gomodcache", &s(&modcache), "--json"],
        &[],
    );
    let pulled = json_ok(&out, "offline ocigo pull from a layout");
    assert_eq!(pulled["digest"], packed["digest"]);
    assert_eq!(pulled["installed"], 10, "{pulled:#}");
    assert_eq!(
        pulled["env"],
        serde_json::json!({"GOMODCACHE": s(&modcache), "GOPROXY": "off"})
    );

    assert_fixture_cache_layout(&modcache);
    assert_go_works_offline(&project, &modcache);
}

/// 2b. `pull --no-extract` writes only the download area: no extracted
///     trees; the go command extracts what it needs from the zips, offline,
///     and everything works as after a full pull. A later full pull adds
///     the trees.
#[test]
fn pull_without_extracting() {
    let sc = Scratch::new();
    let project = copy_project(sc.path());
    let dest = format!("oci:{}:v1", s(&sc.join("disk")));
    pack(&sc, proxy(), &project, &dest, &PLATFORMS);
    let modcache = sc.dir("modcache");
    let out = ocigo(
        &fresh(&sc, "store"),
        &[
            "pull",
            &dest,
            "--gomodcache",
            &s(&modcache),
            "--no-extract",
            "--json",
        ],
        &[],
    );
    let pulled = json_ok(&out, "ocigo pull --no-extract");
    assert_eq!(pulled["installed"], 10, "{pulled:#}");
    let trees: Vec<String> = fs::read_dir(modcache.join("example.com"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(trees.is_empty(), "extracted trees written: {trees:?}");
    let dl = download_dir(&modcache, "example.com/testonly");
    assert!(dl.join("v1.0.0.zip").is_file() && dl.join("v1.0.0.ziphash").is_file());
    // A second --no-extract pull finds everything present.
    let again = json_ok(
        &ocigo(
            &fresh(&sc, "store"),
            &[
                "pull",
                &dest,
                "--gomodcache",
                &s(&modcache),
                "--no-extract",
                "--json",
            ],
            &[],
        ),
        "a second ocigo pull --no-extract",
    );
    assert_eq!(again["installed"], 0, "{again:#}");
    assert_go_works_offline(&project, &modcache);
}

/// The fixture project plus one more module, `example.com/extra`, imported
/// by the main package: a bundle that differs from the fixture one by
/// exactly one module. Returns (proxy, project).
fn project_with_extra_module(sc: &Scratch) -> (PathBuf, PathBuf) {
    let proxy2 = sc.join("proxy-extra");
    copy_tree(proxy(), &proxy2);
    let m = write_module_source(
        &sc.join("extra-src"),
        "example.com/extra",
        "v1.0.0",
        &[
            ("go.mod", b"module example.com/extra\n\ngo 1.22\n"),
            (
                "extra.go",
                b"package extra\n\n// Name names the module.\nconst Name = \"extra\"\n",
            ),
        ],
    );
    add_to_proxy(&proxy2, &m);
    let project = sc.join("extra-project");
    copy_tree(&testdata_dir().join("project"), &project);
    let mut go_mod = fs::read_to_string(project.join("go.mod")).unwrap();
    go_mod.push_str("\nrequire example.com/extra v1.0.0\n");
    fs::write(project.join("go.mod"), go_mod).unwrap();
    let mut go_sum = fs::read_to_string(project.join("go.sum")).unwrap();
    go_sum.push_str(&go_sum_lines(&m));
    fs::write(project.join("go.sum"), go_sum).unwrap();
    fs::write(
        project.join("extra.go"),
        "package main\n\nimport _ \"example.com/extra\"\n",
    )
    .unwrap();
    (proxy2, project)
}

/// 3. `ocigo push` layout -> registry and registry -> layout; a second push
///    sends nothing; a bundle differing by one module sends only that
///    module's zip and the config.
#[test]
fn push_sends_only_missing_blobs() {
    push_sends_only_missing(RegistryKind::Distribution2);
}

/// 3b. The same with CNCF distribution v3.
#[test]
fn push_sends_only_missing_blobs_distribution_v3() {
    push_sends_only_missing(RegistryKind::Distribution3);
}

fn push_sends_only_missing(kind: RegistryKind) {
    let sc = Scratch::new();
    let reg = TestRegistry::start_kind(kind);
    let project = copy_project(sc.path());
    let layout1 = format!("oci:{}:v1", s(&sc.join("disk1")));
    let packed = pack(&sc, proxy(), &project, &layout1, &PLATFORMS);
    let digest = packed["digest"].as_str().unwrap().to_string();
    let store = fresh(&sc, "store");
    let push = |src: &str, dest: &str| {
        let out = ocigo(&store, &["push", src, dest, "--json"], &[]);
        let report = json_ok(&out, &format!("ocigo push {src} {dest}"));
        assert_eq!(report["digest"], digest.as_str(), "{report:#}");
        report
    };
    // 8 zips, the header's config and the part's config.
    let remote = format!("{}/team/mods:v1", reg.addr);
    let first = push(&layout1, &remote);
    assert_eq!(first["copy"]["blobs"], 10, "{first:#}");
    assert_eq!(first["copy"]["blobs_sent"], 10, "{first:#}");
    let again = push(&layout1, &remote);
    assert_eq!(again["copy"]["blobs_sent"], 0, "{again:#}");
    assert_eq!(again["copy"]["bytes_sent"], 0, "{again:#}");

    let layout2 = format!("oci:{}:copy", s(&sc.join("disk2")));
    let down = push(&remote, &layout2);
    assert_eq!(down["copy"]["blobs_sent"], 10, "{down:#}");
    let down_again = push(&remote, &layout2);
    assert_eq!(down_again["copy"]["blobs_sent"], 0, "{down_again:#}");
    // What came back is the same bundle, and it installs.
    let modcache = sc.dir("modcache");
    let pulled = pull(&sc, &layout2, &modcache);
    assert_eq!(pulled["digest"], digest.as_str());
    assert_eq!(pulled["installed"], 10, "{pulled:#}");

    // A second bundle with one more module: only its zip, the new part
    // config and the new header config travel (one part: all modules are
    // in it).
    let (proxy2, project2) = project_with_extra_module(&sc);
    let layout3 = format!("oci:{}:v2", s(&sc.join("disk3")));
    let packed2 = pack(&sc, &proxy2, &project2, &layout3, &PLATFORMS);
    assert_eq!(packed2["modules"], 11, "{packed2:#}");
    let out = ocigo(
        &store,
        &[
            "push",
            &layout3,
            &format!("{}/team/mods:v2", reg.addr),
            "--json",
        ],
        &[],
    );
    let second = json_ok(&out, "ocigo push of the second bundle");
    let inspect = json_ok(
        &ocigo(&store, &["inspect", &layout3, "--modules", "--json"], &[]),
        "ocigo inspect",
    );
    let modules = inspect["modules"].as_array().unwrap();
    let zip_total: u64 = modules.iter().filter_map(|m| m["zip_size"].as_u64()).sum();
    let extra_zip = modules
        .iter()
        .find(|m| m["path"] == "example.com/extra")
        .and_then(|m| m["zip_size"].as_u64())
        .expect("example.com/extra has a zip");
    let config_size = second["copy"]["bytes_total"].as_u64().unwrap() - zip_total;
    assert_eq!(second["copy"]["blobs"], 11, "{second:#}");
    assert_eq!(second["copy"]["blobs_sent"], 3, "{second:#}");
    assert_eq!(
        second["copy"]["bytes_sent"].as_u64().unwrap(),
        extra_zip + config_size,
        "{second:#}"
    );
    // The index, the header and the part: all new.
    assert_eq!(second["copy"]["manifests"], 3, "{second:#}");
}

/// 3b. Bundles in format v1, made by ocigo 0.1.0 and kept in
///     `testdata/bundle-v1` (one manifest, and split under an index), still
///     pull: from the layout directly, and (the split one) through a
///     registry; `inspect` reads them; the go command builds offline.
#[test]
fn format_v1_bundles_still_pull() {
    let sc = Scratch::new();
    let disk = sc.join("bundle-v1");
    copy_tree(&testdata_dir().join("bundle-v1"), &disk);
    let project = copy_project(sc.path());
    let reg = TestRegistry::start();
    for (tag, via_registry) in [("v1", false), ("v1-split", true)] {
        let layout = format!("oci:{}:{tag}", s(&disk));
        let store = fresh(&sc, "store");
        let inspect = json_ok(
            &ocigo(&store, &["inspect", &layout, "--modules", "--json"], &[]),
            "ocigo inspect of a v1 bundle",
        );
        assert_eq!(inspect["format_version"], 1, "{inspect:#}");
        assert_eq!(inspect["module_versions"], 10, "{inspect:#}");
        assert_eq!(inspect["zips"], 8, "{inspect:#}");
        assert_eq!(inspect["modules"].as_array().unwrap().len(), 10);
        assert_eq!(inspect["main_modules"][0]["path"], "example.com/project");
        let src = if via_registry {
            let remote = format!("{}/old/bundle:{tag}", reg.addr);
            json_ok(
                &ocigo(&store, &["push", &layout, &remote, "--json"], &[]),
                "ocigo push of a v1 bundle",
            );
            remote
        } else {
            layout
        };
        let modcache = sc.dir(&format!("modcache-{tag}"));
        let pulled = pull(&sc, &src, &modcache);
        assert_eq!(pulled["digest"], inspect["digest"], "{pulled:#}");
        assert_eq!(pulled["installed"], 10, "{pulled:#}");
        // (The zips were made by scripts/fixture-proxy.py, not byte for
        // byte the harness's, so the layout is judged by the go command.)
        assert_lists_and_no_leftovers(&modcache);
        assert_go_works_offline(&project, &modcache);
    }
}

/// 4. The same project packed twice, from two places, with fresh stores,
///    gives the same digest and the same blobs.
#[test]
fn packing_is_deterministic() {
    let sc = Scratch::new();
    let a = copy_project(&sc.dir("a"));
    let b = copy_project(&sc.dir("b/deeper"));
    let (da, db) = (sc.join("disk-a"), sc.join("disk-b"));
    let pa = pack(&sc, proxy(), &a, &format!("oci:{}:v1", s(&da)), &PLATFORMS);
    // Platform order on the command line does not matter either.
    let pb = pack(
        &sc,
        proxy(),
        &b,
        &format!("oci:{}:v1", s(&db)),
        &["--platform", "windows/amd64", "--platform", "linux/amd64"],
    );
    assert_eq!(pa["digest"], pb["digest"]);
    let blobs = |d: &Path| {
        let mut v: Vec<String> = fs::read_dir(d.join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(blobs(&da), blobs(&db));
    assert_eq!(
        blobs(&da).len(),
        13,
        "8 zips, two configs, the header, part and index manifests"
    );
}

/// The generated closure for the split test, made once per test binary.
fn generated_small() -> &'static Generated {
    static GEN: OnceLock<Generated> = OnceLock::new();
    GEN.get_or_init(|| {
        let root = process_dir("gen-small");
        generate_modules(&root, 300, 256, &root.join("tidy-modcache"))
    })
}

/// 5. ~300 modules with a small manifest limit: several manifests under an
///    OCI index, each under the limit; through a registry and back; the
///    pulled cache builds offline.
#[test]
fn split_bundle_round_trip() {
    let sc = Scratch::new();
    let generated = generated_small();
    let reg = TestRegistry::start();
    let disk = sc.join("disk");
    let layout = format!("oci:{}:v1", s(&disk));
    let packed = pack(
        &sc,
        &generated.proxy,
        &generated.project,
        &layout,
        &["--max-manifest-bytes", "8192", "--paths-per-part", "32"],
    );
    assert_eq!(packed["modules"], 300, "{packed:#}");
    assert_eq!(
        packed["media_type"],
        "application/vnd.oci.image.index.v1+json"
    );

    let store = fresh(&sc, "store");
    let inspect = json_ok(
        &ocigo(&store, &["inspect", &layout, "--modules", "--json"], &[]),
        "ocigo inspect",
    );
    let manifests = inspect["manifests"].as_u64().unwrap();
    assert!(manifests >= 4, "only {manifests} manifests:\n{inspect:#}");
    assert_eq!(
        inspect["media_type"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(inspect["modules"].as_array().unwrap().len(), 300);

    // Every part manifest in the layout respects the limit.
    let index_blob = disk.join("blobs/sha256").join(
        packed["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:"),
    );
    let index: serde_json::Value = serde_json::from_slice(&fs::read(index_blob).unwrap()).unwrap();
    // The header first, then the parts.
    let parts = &index["manifests"].as_array().unwrap()[1..];
    assert_eq!(
        index["manifests"][0]["annotations"]["dev.ocigo.bundle.role"],
        "header"
    );
    assert_eq!(parts.len() as u64, manifests);
    for (i, p) in parts.iter().enumerate() {
        let size = p["size"].as_u64().unwrap();
        assert!(size <= 8192, "part {i} is {size} bytes");
        assert_eq!(
            p["annotations"]["dev.ocigo.bundle.part"],
            format!("{}/{manifests}", i + 1)
        );
    }

    let remote = format!("{}/gen/split:v1", reg.addr);
    let pushed = json_ok(
        &ocigo(&store, &["push", &layout, &remote, "--json"], &[]),
        "ocigo push of a split bundle",
    );
    // The parts, the header and the index.
    assert_eq!(pushed["copy"]["manifests"].as_u64().unwrap(), manifests + 2);
    let modcache = sc.dir("modcache");
    let pulled = pull(&sc, &remote, &modcache);
    assert_eq!(pulled["digest"], packed["digest"]);
    assert_eq!(pulled["installed"], 300, "{pulled:#}");

    let mc = s(&modcache);
    let env = [
        ("GOMODCACHE", mc.as_str()),
        ("GOPROXY", "off"),
        ("GOFLAGS", ""),
    ];
    for args in [&["build", "./..."][..], &["mod", "verify"]] {
        let out = go_offline(&generated.project, args, &env);
        assert_success(
            &out,
            &format!("offline go {} (split bundle)", args.join(" ")),
        );
    }
    let out = go_offline(&generated.project, &["run", "."], &env);
    assert_success(&out, "offline go run . (split bundle)");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "300");
}

/// 6. Packing from the cache a pull wrote, with no network, gives the same
///    digest; a cache missing a module is refused naming the cache.
#[test]
fn pack_from_cache_matches_the_original() {
    let sc = Scratch::new();
    let project = copy_project(sc.path());
    let original = pack(
        &sc,
        proxy(),
        &project,
        &format!("oci:{}:v1", s(&sc.join("disk"))),
        &PLATFORMS,
    );
    let modcache = sc.dir("modcache");
    pull(&sc, &format!("oci:{}:v1", s(&sc.join("disk"))), &modcache);
    let before = snapshot(&modcache);

    let user_cache = sc.dir("user-modcache");
    let mc = s(&modcache);
    let uc = s(&user_cache);
    let dead = [
        ("GOPROXY", "http://127.0.0.1:9/dead"),
        ("GONOSUMDB", "example.com"),
        ("GOFLAGS", "-modcacherw"),
        ("GOMODCACHE", uc.as_str()),
    ];
    let dest = format!("oci:{}:v1", s(&sc.join("disk-from-cache")));
    let proj = s(&project);
    let mut args = vec!["pack", &proj, "-o", &dest, "--from-cache", &mc, "--json"];
    args.extend_from_slice(&PLATFORMS);
    let out = ocigo_offline(&fresh(&sc, "store"), &args, &dead);
    let from_cache = json_ok(&out, "offline ocigo pack --from-cache");
    assert_eq!(from_cache["digest"], original["digest"]);
    assert_unchanged(&before, &modcache, "the cache packed from");
    assert!(
        snapshot(&user_cache).0.is_empty(),
        "pack wrote into GOMODCACHE"
    );

    // The same, from a cache that lacks one module the build needs.
    let partial = sc.join("partial-modcache");
    copy_tree(&modcache, &partial);
    remove_module(&partial, "example.com/testonly", "v1.0.0");
    let pc = s(&partial);
    let dest = format!("oci:{}:v1", s(&sc.join("disk-partial")));
    let mut args = vec!["pack", &proj, "-o", &dest, "--from-cache", &pc];
    args.extend_from_slice(&PLATFORMS);
    let out = ocigo_offline(&fresh(&sc, "store"), &args, &dead);
    assert_exit(
        &out,
        6,
        "ocigo pack --from-cache of a cache missing a module",
    );
    let err = stderr(&out);
    let (message, hints) = split_error(&err);
    assert_mentions(
        &message,
        &["example.com/testonly"],
        "pack --from-cache error",
    );
    assert!(
        hints
            .iter()
            .any(|h| h.contains(&format!("module cache {pc} does not hold"))),
        "pack --from-cache: no hint about the module cache in:\n{err}"
    );
    // Nothing was packed, so nothing was written to the destination.
    assert!(
        !sc.join("disk-partial").exists(),
        "a failed pack created its destination"
    );
}

/// 7. A pull into a cache that has everything changes nothing; one whose
///    `.ziphash` differs for a module is a conflict that leaves it alone.
#[test]
fn pull_into_populated_cache() {
    let sc = Scratch::new();
    let project = copy_project(sc.path());
    let dest = format!("oci:{}:v1", s(&sc.join("disk")));
    pack(&sc, proxy(), &project, &dest, &PLATFORMS);
    let modcache = sc.dir("modcache");
    pull(&sc, &dest, &modcache);

    let before = snapshot(&modcache);
    let again = pull(&sc, &dest, &modcache);
    assert_eq!(again["installed"], 0, "{again:#}");
    assert_eq!(again["already_present"], 10, "{again:#}");
    assert_eq!(again["conflicts"], serde_json::json!([]));
    assert_unchanged(&before, &modcache, "a pull into a complete cache");

    // testonly's .ziphash now names other content (shared's hash).
    let ziphash = download_dir(&modcache, "example.com/testonly").join("v1.0.0.ziphash");
    let original_ziphash = fs::read(&ziphash).unwrap();
    let other =
        fs::read(download_dir(&modcache, "example.com/shared").join("v1.1.0.ziphash")).unwrap();
    fs::write(&ziphash, &other).unwrap();
    let before = snapshot(&modcache);
    let out = ocigo(
        &fresh(&sc, "store"),
        &["pull", &dest, "--gomodcache", &s(&modcache)],
        &[],
    );
    assert_exit(&out, 5, "ocigo pull into a cache with a conflicting module");
    assert_mentions(
        &stdout(&out),
        &[
            "example.com/testonly@v1.0.0",
            &s(&ziphash),
            "differ from the bundle and were left alone",
            &s(&modcache),
        ],
        "conflict report",
    );
    assert!(
        !stdout(&out).contains("example.com/shared@"),
        "only testonly conflicts:\n{}",
        stdout(&out)
    );
    assert_unchanged(&before, &modcache, "a pull that found a conflict");

    // The same as JSON, with the same exit code.
    let out = ocigo(
        &fresh(&sc, "store"),
        &["pull", &dest, "--gomodcache", &s(&modcache), "--json"],
        &[],
    );
    assert_exit(&out, 5, "ocigo pull --json with a conflict");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let conflicts = report["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{report:#}");
    assert!(
        conflicts[0]
            .as_str()
            .unwrap()
            .starts_with("example.com/testonly@v1.0.0")
    );
    assert_eq!(report["already_present"], 9, "{report:#}");
    assert_unchanged(&before, &modcache, "a pull --json that found a conflict");

    // A go command killed while extracting pseudo left `.partial` beside a
    // half-written tree (its `.ziphash` was already there): the pull redoes
    // that module as the go command would.
    fs::write(&ziphash, &original_ziphash).unwrap();
    let pseudo = "example.com/pseudo";
    let pseudo_v = "v0.0.0-20230102030405-abcdef123456";
    let tree = tree_dir(&modcache, pseudo, pseudo_v);
    make_writable(&tree);
    fs::remove_file(tree.join("pseudo.go")).unwrap();
    fs::write(
        download_dir(&modcache, pseudo).join(format!("{pseudo_v}.partial")),
        "",
    )
    .unwrap();
    let repaired = pull(&sc, &dest, &modcache);
    assert_eq!(repaired["installed"], 1, "{repaired:#}");
    assert_eq!(repaired["already_present"], 9, "{repaired:#}");
    assert_fixture_cache_layout(&modcache);
    let mc = s(&modcache);
    let env = [
        ("GOMODCACHE", mc.as_str()),
        ("GOPROXY", "off"),
        ("GOFLAGS", ""),
    ];
    assert_success(
        &go_offline(&project, &["mod", "verify"], &env),
        "offline go mod verify",
    );
}

/// The generated closure for the kill test: enough data that a pull takes
/// a moment in a debug build.
fn generated_large() -> &'static Generated {
    static GEN: OnceLock<Generated> = OnceLock::new();
    GEN.get_or_init(|| {
        let root = process_dir("gen-large");
        generate_modules(&root, 120, 96 * 1024, &root.join("tidy-modcache"))
    })
}

/// Module versions whose `.ziphash` (the commit marker) is in the cache.
fn committed(modcache: &Path) -> usize {
    let Ok(entries) = fs::read_dir(modcache.join("cache/download/example.com/gen")) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.path().join("@v/v1.0.0.ziphash").exists())
        .count()
}

/// What a killed pull may leave is safe to use: every module version whose
/// commit marker exists is complete. The marker is `.ziphash` for a module
/// with a zip (the go command trusts it without re-hashing), and `.mod` for
/// the go.mod-only versions listed in `mod_only` (path, version, whether the
/// bundle has its `.info`). Complete means `.mod`, `.info`, `.zip`, an
/// extracted tree that hashes to the `.ziphash`, no `.partial`, and a `list`
/// naming the version.
fn assert_committed_modules_complete(modcache: &Path, mod_only: &[(&str, &str, bool)]) {
    let download = modcache.join("cache/download");
    for rel in snapshot(&download).files() {
        let rel = rel.trim_start_matches('/');
        let Some((esc_path, file)) = rel.rsplit_once("/@v/") else {
            continue;
        };
        let path = ocigo::gomod::unescape(esc_path).unwrap();
        let at_v = download.join(esc_path).join("@v");
        let (version, zip, info) = if let Some(v) = file.strip_suffix(".ziphash") {
            (ocigo::gomod::unescape(v).unwrap(), true, true)
        } else if let Some(v) = file.strip_suffix(".mod")
            && let version = ocigo::gomod::unescape(v).unwrap()
            && let Some(&(_, _, info)) = mod_only.iter().find(|m| m.0 == path && m.1 == version)
        {
            (version, false, info)
        } else {
            continue;
        };
        let ev = escape_path(&version);
        let what = format!("{path}@{version} ({file} exists)");
        let list = fs::read_to_string(at_v.join("list")).unwrap_or_default();
        assert!(
            list.lines().any(|l| l == version),
            "{what}: list is {list:?}"
        );
        assert!(at_v.join(format!("{ev}.mod")).is_file(), "{what}: no .mod");
        assert!(
            !info || at_v.join(format!("{ev}.info")).is_file(),
            "{what}: no .info"
        );
        if !zip {
            continue;
        }
        assert!(at_v.join(format!("{ev}.zip")).is_file(), "{what}: no .zip");
        assert!(
            !at_v.join(format!("{ev}.partial")).exists(),
            "{what}: .partial"
        );
        let ziphash = fs::read_to_string(at_v.join(file)).unwrap();
        let tree = tree_dir(modcache, &path, &version);
        let h1 = ocigo::gomod::hash_dir(&tree, &format!("{path}@{version}/"))
            .unwrap_or_else(|e| panic!("{what}: no tree: {e:#}"));
        assert_eq!(
            h1,
            ziphash.trim(),
            "{what}: the tree does not match .ziphash"
        );
    }
}

/// 8. A pull killed with SIGKILL part way, at several points, then run
///    again, leaves a cache the go command verifies and builds from.
#[test]
fn pull_survives_sigkill() {
    let sc = Scratch::new();
    let generated = generated_large();
    let count = generated.modules.len();
    let disk = sc.join("disk");
    let layout = format!("oci:{}:v1", s(&disk));
    pack(&sc, &generated.proxy, &generated.project, &layout, &[]);

    // Kill once while fetching into the store (no module written yet), then
    // at growing numbers of committed modules.
    let targets = [0, 1, count / 4, count / 2, count * 3 / 4];
    let mut killed_mid_install = 0;
    for (round, &target) in targets.iter().enumerate() {
        let modcache = sc.dir(&format!("modcache-{round}"));
        let store = fresh(&sc, "store");
        let mc = s(&modcache);
        let mut child = ocigo_command(&[], &store, &["pull", &layout, "--gomodcache", &mc], &[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ocigo pull");
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut exited = false;
        loop {
            if child.try_wait().unwrap().is_some() {
                exited = true;
                break;
            }
            let done = committed(&modcache);
            if (target == 0 && store.join("blobs/sha256").is_dir())
                || (target > 0 && done >= target)
            {
                break;
            }
            assert!(Instant::now() < deadline, "pull made no progress in 60 s");
            std::thread::sleep(Duration::from_millis(2));
        }
        if !exited {
            // Vary where inside a module's install the kill lands.
            std::thread::sleep(Duration::from_millis((round as u64 * 7) % 11));
            child.kill().unwrap(); // SIGKILL
            let status = child.wait().unwrap();
            assert!(!status.success(), "round {round}: the pull was not killed");
        }
        let done = committed(&modcache);
        if !exited && done > 0 && done < count {
            killed_mid_install += 1;
        }
        eprintln!(
            "round {round}: target {target}, killed: {}, committed {done}/{count}",
            !exited
        );
        assert_committed_modules_complete(&modcache, &[]);

        let out = ocigo(
            &store,
            &["pull", &layout, "--gomodcache", &mc, "--json"],
            &[],
        );
        let report = json_ok(&out, &format!("round {round}: ocigo pull after SIGKILL"));
        assert_eq!(
            report["installed"].as_u64().unwrap() + report["already_present"].as_u64().unwrap(),
            count as u64,
            "{report:#}"
        );
        assert_lists_and_no_leftovers(&modcache);
        let env = [
            ("GOMODCACHE", mc.as_str()),
            ("GOPROXY", "off"),
            ("GOFLAGS", ""),
        ];
        for args in [&["mod", "verify"][..], &["build", "./..."]] {
            let out = go_offline(&generated.project, args, &env);
            assert_success(
                &out,
                &format!("round {round}: offline go {}", args.join(" ")),
            );
        }
    }
    assert!(
        killed_mid_install >= 2,
        "the pull was too fast to be killed part way through installing ({killed_mid_install} rounds)"
    );
}

/// 8b. The same, deterministically: a pull of the fixture bundle killed
///     (SIGKILL, injected by strace) on entering its k-th rename, for every
///     k, which covers every commit point of the store and of the cache.
///     Each time what is left must be safe, and a second pull must finish it.
#[test]
fn pull_killed_at_every_rename_recovers() {
    assert!(
        Path::new("/usr/bin/strace").exists(),
        "this test needs strace to inject SIGKILL at exact points: apt-get install -y strace"
    );
    let sc = Scratch::new();
    let project = copy_project(sc.path());
    let layout = format!("oci:{}:v1", s(&sc.join("disk")));
    pack(&sc, proxy(), &project, &layout, &PLATFORMS);
    let mod_only = [
        ("example.com/modonly", "v1.0.0", true),
        ("example.com/shared", "v1.0.0", false),
    ];

    let mut kills = 0;
    for syscall in ["renameat", "rename"] {
        for k in 1.. {
            let modcache = fresh(&sc, "modcache");
            let store = fresh(&sc, "store");
            let mc = s(&modcache);
            let inject = format!("inject={syscall}:signal=KILL:when={k}");
            let strace = [
                "strace",
                "-f",
                "-qq",
                "-o",
                "/dev/null",
                "-e",
                "trace=rename,renameat,renameat2",
                "-e",
                &inject,
                "--",
            ];
            // One job: strace counts renames per thread, and this test walks
            // one sequence of them (pull_survives_sigkill covers parallel pulls).
            let out = ocigo_command(
                &strace,
                &store,
                &["pull", "--jobs", "1", &layout, "--gomodcache", &mc],
                &[],
            )
            .output()
            .expect("run strace ocigo pull");
            if out.status.success() {
                // Fewer than k renames: this syscall is done. ocigo's file
                // layer renames with one of the two; the total is checked
                // below.
                break;
            }
            assert_eq!(
                out.status.code(),
                None,
                "{syscall} #{k}: the pull failed instead of being killed:\n{}",
                stderr(&out)
            );
            kills += 1;
            assert_committed_modules_complete(&modcache, &mod_only);

            let out = ocigo(
                &store,
                &["pull", &layout, "--gomodcache", &mc, "--json"],
                &[],
            );
            let report = json_ok(&out, &format!("pull after a kill at {syscall} #{k}"));
            assert_eq!(
                report["installed"].as_u64().unwrap() + report["already_present"].as_u64().unwrap(),
                10,
                "{report:#}"
            );
            assert_fixture_cache_layout(&modcache);
            if k % 8 == 0 {
                let env = [
                    ("GOMODCACHE", mc.as_str()),
                    ("GOPROXY", "off"),
                    ("GOFLAGS", ""),
                ];
                let out = go_offline(&project, &["mod", "verify"], &env);
                assert_success(
                    &out,
                    &format!("offline go mod verify after a kill at {syscall} #{k}"),
                );
            }
        }
    }
    eprintln!("{kills} kill points");
    assert!(kills > 30, "only {kills} kill points");
}

/// 9. The store lists what pack and pull put there; `prune --all` empties it.
#[test]
fn store_list_and_prune() {
    let sc = Scratch::new();
    let project = copy_project(sc.path());
    let dest = format!("oci:{}:v1", s(&sc.join("disk")));
    let packed = pack(&sc, proxy(), &project, &dest, &PLATFORMS);
    let store = fresh(&sc, "store");
    let modcache = sc.dir("modcache");
    let out = ocigo(
        &store,
        &["pull", &dest, "--gomodcache", &s(&modcache), "--json"],
        &[],
    );
    json_ok(&out, "ocigo pull");

    let list = json_ok(
        &ocigo(&store, &["store", "list", "--json"], &[]),
        "ocigo store list",
    );
    let entries = list["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{list:#}");
    assert_eq!(entries[0]["reference"], dest.as_str());
    assert_eq!(entries[0]["digest"], packed["digest"]);
    assert_eq!(
        entries[0]["artifact_type"],
        "application/vnd.ocigo.modules.v2"
    );
    // 8 zips, two configs, and the header, part and index manifests.
    assert_eq!(list["blobs"], 13, "{list:#}");
    // A summary from the header, no module list unless asked for.
    assert_eq!(
        entries[0]["summary"]["modules"], packed["modules"],
        "{list:#}"
    );
    assert_eq!(entries[0]["summary"]["zips"], packed["zips"], "{list:#}");
    assert_eq!(
        entries[0]["summary"]["zip_bytes"], packed["zip_bytes"],
        "{list:#}"
    );
    assert!(entries[0].get("modules").is_none(), "{list:#}");
    let out = ocigo(&store, &["store", "list"], &[]);
    assert_success(&out, "ocigo store list");
    let human = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        human.contains(&format!("{} module versions, 8 zips", packed["modules"])),
        "{human}"
    );
    assert!(!human.contains("example.com/shared@"), "{human}");
    // --modules lists every module version, in both forms.
    let list = json_ok(
        &ocigo(&store, &["store", "list", "--modules", "--json"], &[]),
        "ocigo store list --modules",
    );
    let listed = list["entries"][0]["modules"].as_array().unwrap();
    assert_eq!(listed.len() as u64, packed["modules"].as_u64().unwrap());
    assert!(
        listed
            .iter()
            .any(|m| m.as_str().unwrap().starts_with("example.com/shared@")),
        "{list:#}"
    );
    let out = ocigo(&store, &["store", "list", "--modules"], &[]);
    assert_success(&out, "ocigo store list --modules");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("example.com/shared@"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // While a prune holds the store lock (here flock(1) holds it as prune
    // does), list waits rather than read blobs being deleted (it showed
    // them "unreadable"); then it lists what is there.
    let held = common::ocigo::hold_flock(&store.join(".store.lock"));
    let mut waiting = common::ocigo::ocigo_command(&[], &store, &["store", "list", "--json"], &[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    assert!(
        waiting.try_wait().unwrap().is_none(),
        "store list finished while the store was locked for a prune"
    );
    drop(held);
    let out = waiting.wait_with_output().unwrap();
    let list = json_ok(&out, "ocigo store list after a prune let go");
    assert_eq!(
        list["entries"][0]["summary"]["modules"], packed["modules"],
        "{list:#}"
    );

    let out = ocigo(&store, &["store", "prune", "--all", "--json"], &[]);
    let pruned = json_ok(&out, "ocigo store prune --all");
    assert_eq!(pruned["forgotten"], serde_json::json!([dest]));
    assert_eq!(pruned["blobs_removed"], 13, "{pruned:#}");
    let list = json_ok(
        &ocigo(&store, &["store", "list", "--json"], &[]),
        "ocigo store list",
    );
    assert_eq!(list["entries"], serde_json::json!([]), "{list:#}");
    assert_eq!(list["blobs"], 0, "{list:#}");
    assert_eq!(list["bytes"], 0, "{list:#}");
    let leftovers: HashSet<String> = fs::read_dir(store.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Forgetting a reference the store does not have is "not found".
    let out = ocigo(&store, &["store", "prune", "oci:/nowhere:v9"], &[]);
    assert_exit(&out, 6, "ocigo store prune of an unknown reference");
    assert_mentions(
        &stderr(&out),
        &["oci:/nowhere:v9", "not in the content store"],
        "prune error",
    );
}

/// 10. go.work: packing a workspace resolves what every workspace module's
///     packages and tests need. The second module imports example.com/modonly,
///     which the project alone needs only for its go.mod, so its zip must be
///     in the bundle; both modules then build offline in the workspace.
#[test]
fn workspace_closure_covers_every_module() {
    let sc = Scratch::new();
    let ws = sc.join("ws");
    let project = copy_project(&ws);
    let tool = ws.join("tool");
    fs::create_dir_all(&tool).unwrap();
    fs::write(
        tool.join("go.mod"),
        "module example.com/tool\n\ngo 1.22\n\nrequire example.com/modonly v1.0.0\n",
    )
    .unwrap();
    fs::write(
        tool.join("main.go"),
        "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/modonly\"\n)\n\nfunc main() { fmt.Println(modonly.ModOnly()) }\n",
    )
    .unwrap();
    fs::write(
        ws.join("go.work"),
        "go 1.22\n\nuse (\n\t./project\n\t./tool\n)\n",
    )
    .unwrap();
    // The tool's go.sum, made by the go command from the fixture proxy.
    let fixture: Vec<(String, String)> = fixture_env(proxy());
    let mut env: Vec<(&str, &str)> = fixture
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let scratch_cache = s(&fresh(&sc, "tidy-modcache"));
    env.extend([("GOWORK", "off"), ("GOMODCACHE", scratch_cache.as_str())]);
    assert_success(
        &common::go::go(&tool, &["mod", "tidy"], &env),
        "go mod tidy in the tool module",
    );
    let ws_before = snapshot(&ws);

    let layout = format!("oci:{}:v1", s(&sc.join("disk")));
    let report = pack(&sc, proxy(), &ws, &layout, &[]);
    assert_unchanged(&ws_before, &ws, "the workspace (go.work, go.mod, go.sum)");
    let mains: Vec<String> = json_ok(
        &ocigo(&fresh(&sc, "store"), &["inspect", "--json", &layout], &[]),
        "inspect",
    )["main_modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        mains,
        ["example.com/project", "example.com/tool"],
        "{report}"
    );

    let modcache = fresh(&sc, "modcache");
    pull(&sc, &layout, &modcache);
    assert!(
        modcache
            .join("cache/download/example.com/modonly/@v/v1.0.0.ziphash")
            .is_file(),
        "the workspace needs modonly's source, and the bundle lacks it"
    );
    let mc = s(&modcache);
    let env = [
        ("GOMODCACHE", mc.as_str()),
        ("GOPROXY", "off"),
        ("GOFLAGS", ""),
    ];
    for dir in [&project, &tool] {
        for args in [
            &["build", "./..."][..],
            &["test", "./..."],
            &["mod", "verify"],
        ] {
            let out = go_offline(dir, args, &env);
            assert_success(
                &out,
                &format!("offline go {} in {}", args.join(" "), dir.display()),
            );
        }
    }
    let out = go_offline(&tool, &["run", "."], &env);
    assert_success(&out, "offline go run . in the tool module");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "modonly");
}

/// 11. Pulls racing each other, and caches that lost part of a module: four
///     pulls into one empty cache at once all succeed (the per-version lock
///     and a re-check under it), as does a pull into a cache whose
///     `cache/download` was deleted (trees left) or that lost one `.mod`; and
///     no temporary trees are left behind.
#[test]
fn concurrent_and_partial_caches_recover() {
    let sc = Scratch::new();
    let project = copy_project(sc.path());
    let layout = format!("oci:{}:v1", s(&sc.join("disk")));
    pack(&sc, proxy(), &project, &layout, &PLATFORMS);

    for round in 0..3 {
        let modcache = fresh(&sc, "modcache");
        let mc = s(&modcache);
        let children: Vec<_> = (0..4)
            .map(|_| {
                ocigo_command(
                    &[],
                    &fresh(&sc, "store"),
                    &["pull", &layout, "--gomodcache", &mc],
                    &[],
                )
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn ocigo pull")
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: a concurrent pull failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert_lists_and_no_leftovers(&modcache);
        assert_go_works_offline(&project, &modcache);
    }

    // The download area deleted, the extracted trees left in place.
    let modcache = fresh(&sc, "modcache");
    pull(&sc, &layout, &modcache);
    make_writable(&modcache.join("cache"));
    fs::remove_dir_all(modcache.join("cache/download")).unwrap();
    let report = pull(&sc, &layout, &modcache);
    assert_eq!(report["already_present"], 0, "{report}");
    assert_lists_and_no_leftovers(&modcache);
    assert_go_works_offline(&project, &modcache);

    // One `.mod` lost beside a complete tree and `.ziphash`.
    let lost = download_dir(&modcache, "example.com/Upper/Case").join("v1.0.0.mod");
    fs::remove_file(&lost).unwrap();
    let report = pull(&sc, &layout, &modcache);
    assert_eq!(report["installed"], 1, "{report}");
    assert!(lost.is_file());
    assert_lists_and_no_leftovers(&modcache);
    assert_go_works_offline(&project, &modcache);
}
