//! Go toolchains end to end, judged by the real go command: packed from
//! the host's GOROOT, from an official archive (`/usr/local/go` tarred
//! back up as released) and from the module proxy (two platforms of one
//! release; the zips are cached in ~/.cache/ocigo-ci between runs), pulled
//! as a GOROOT and into GOMODCACHE under `unshare -n`, switched to with
//! GOTOOLCHAIN offline, and bad archives and layers refused with nothing
//! written.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::ocigo::{Scratch, assert_exit, assert_mentions, ocigo, process_dir, stderr, stdout};
use common::registry::TestRegistry;
use ocigo::oci::{Descriptor, Digest, Index, Manifest, Repository};
use ocigo::store::Layout;
use ocigo::toolchain::format::{self, LayerInfo, ModuleForm, ToolchainConfig};
use ocigo::toolchain::tree::SourceInfo;

/// The release the proxy tests use: newer than the host's go1.26.x.
const NEW: &str = "go1.27.4";
/// An older release to switch down to.
const OLD: &str = "go1.25.14";
/// NEW's predecessor: the base of its delta form.
const PREV: &str = "go1.27.3";
const PASSWORD: &str = "correct horse";

fn host_go_version() -> String {
    fs::read_to_string("/usr/local/go/VERSION")
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string()
}

/// ~/.cache/ocigo-ci/modcache, holding the golang.org/toolchain zips the
/// tests use (downloaded by the go command once, with its checksum
/// database cache): served to ocigo as a `file://` GOPROXY.
fn toolchain_proxy() -> &'static str {
    static PROXY: OnceLock<String> = OnceLock::new();
    PROXY.get_or_init(|| {
        let home = std::env::var("HOME").unwrap();
        let cache = PathBuf::from(home).join(".cache/ocigo-ci/modcache");
        let versions = [
            format!("v0.0.1-{NEW}.linux-amd64"),
            format!("v0.0.1-{NEW}.linux-arm64"),
            format!("v0.0.1-{PREV}.linux-amd64"),
            format!("v0.0.1-{OLD}.linux-amd64"),
            format!("v0.0.1-{OLD}.windows-amd64"),
        ];
        for v in &versions {
            let zip = cache.join(format!("cache/download/golang.org/toolchain/@v/{v}.zip"));
            if zip.exists() {
                continue;
            }
            let out = Command::new("go")
                .args([
                    "mod",
                    "download",
                    "-json",
                    &format!("golang.org/toolchain@{v}"),
                ])
                .current_dir(std::env::temp_dir())
                .env("GOMODCACHE", &cache)
                .env("GOFLAGS", "-modcacherw")
                .env("GOTOOLCHAIN", "local")
                .env("GOPATH", cache.join("gopath"))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "go mod download {v}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        format!("file://{}/cache/download", cache.display())
    })
}

fn proxy_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("GOPROXY", toolchain_proxy()),
        ("GOSUMDB", "sum.golang.org"),
    ]
}

/// The NEW release for linux/amd64 and linux/arm64, packed once per test
/// binary into a layout (and the store that packed it).
struct Packed {
    layout: PathBuf,
    store: PathBuf,
}

fn packed_new() -> &'static Packed {
    static PACKED: OnceLock<Packed> = OnceLock::new();
    PACKED.get_or_init(|| {
        // A static is never dropped: this directory is removed at exit.
        let dir = process_dir("packed-new");
        let layout = dir.join("layout");
        let store = dir.join("store");
        let out = ocigo(
            &store,
            &[
                "pack",
                "toolchain",
                NEW,
                "--platform",
                "linux/amd64",
                "--platform",
                "linux/arm64",
                "-o",
                &format!("oci:{}:{NEW}", layout.display()),
            ],
            &proxy_env(),
        );
        assert_exit(&out, 0, "pack toolchain from the proxy");
        assert_mentions(
            &stdout(&out),
            &["checked against sum.golang.org"],
            "pack output",
        );
        Packed { layout, store }
    })
}

fn read_json<T: serde::de::DeserializeOwned>(layout: &Path, d: &Digest) -> T {
    serde_json::from_slice(&fs::read(layout.join("blobs/sha256").join(d.hex())).unwrap()).unwrap()
}

/// (index, [(manifest, config)]) of a toolchain in a layout.
fn toolchain_parts(layout: &Path, tag: &str) -> (Index, Vec<(Manifest, ToolchainConfig)>) {
    let l = Layout::open(layout).unwrap();
    let top = l.resolve(tag).unwrap();
    let index: Index = read_json(layout, &top.digest);
    let parts = index
        .manifests
        .iter()
        .filter(|d| format::is_toolchain(d))
        .map(|d| {
            let m: Manifest = read_json(layout, &d.digest);
            let c: ToolchainConfig = read_json(layout, &m.config.digest);
            (m, c)
        })
        .collect();
    (index, parts)
}

fn run(cmd: &mut Command, what: &str) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    common::go::assert_success(&out, what);
    out
}

/// A go command with a clean environment under `unshare -n`.
fn go_offline(go: &Path, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new("unshare");
    c.args(["-n", "--"])
        .arg(go)
        .args(args)
        .current_dir(dir)
        .env_clear();
    c.env("HOME", std::env::var("HOME").unwrap())
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("GOCACHE", common::go::gocache())
        .env("GOENV", "off")
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-modcacherw");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

fn hello_project(dir: &Path, go_line: &str) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    fs::write(
        dir.join("go.mod"),
        format!("module example.com/hello\n\ngo {go_line}\n"),
    )
    .unwrap();
    fs::write(
        dir.join("main.go"),
        "package main\n\nimport (\n\t\"fmt\"\n\t\"runtime\"\n)\n\nfunc main() { fmt.Println(\"hello from\", runtime.Version()) }\n",
    )
    .unwrap();
    dir.to_path_buf()
}

/// Lists a directory's entries (to show nothing was left beside a target).
fn entries(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn key_pair(dir: &Path) -> (PathBuf, PathBuf) {
    let prefix = dir.join("cosign");
    let out = ocigo(
        &dir.join("keystore"),
        &[
            "key",
            "generate",
            "--output-prefix",
            prefix.to_str().unwrap(),
        ],
        &[("COSIGN_PASSWORD", PASSWORD)],
    );
    assert_exit(&out, 0, "key generate");
    (prefix.with_extension("key"), prefix.with_extension("pub"))
}

#[test]
fn host_goroot_through_a_registry_pulled_offline_with_a_signature_required() {
    let s = Scratch::new();
    let registry = TestRegistry::start();
    let (key, public) = key_pair(s.path());
    let dest = format!("{}/toolchains/go:host", registry.addr);
    let pack = ocigo(
        &s.join("store-a"),
        &[
            "pack",
            "toolchain",
            "--from-goroot",
            "/usr/local/go",
            "-o",
            &dest,
            "--sign",
            key.to_str().unwrap(),
        ],
        &[("COSIGN_PASSWORD", PASSWORD)],
    );
    assert_exit(&pack, 0, "pack --from-goroot");
    let version = host_go_version();
    assert_mentions(
        &stdout(&pack),
        &[&version, "linux/amd64", "signed"],
        "pack output",
    );

    // Carry it to a "removable disk", then pull with no network at all.
    let disk = format!("oci:{}:host", s.join("disk").display());
    assert_exit(
        &ocigo(&s.join("store-a"), &["push", &dest, &disk], &[]),
        0,
        "push to disk",
    );
    let goroot = s.join("offline/go");
    let require = [("OCIGO_REQUIRE_SIGNATURE", "1")];
    let refused = common::ocigo::ocigo_offline(
        &s.join("store-b"),
        &["pull", &disk, "--goroot", goroot.to_str().unwrap()],
        &require,
    );
    assert_exit(
        &refused,
        3,
        "pull without a key where signatures are required",
    );
    assert!(!s.join("offline").exists(), "nothing written on refusal");
    let pulled = common::ocigo::ocigo_offline(
        &s.join("store-b"),
        &[
            "pull",
            &disk,
            "--goroot",
            goroot.to_str().unwrap(),
            "--verify-key",
            public.to_str().unwrap(),
        ],
        &require,
    );
    assert_exit(&pulled, 0, "verified offline pull --goroot");
    assert_mentions(
        &stdout(&pulled),
        &["signature verified", &version, "GOROOT="],
        "pull output",
    );
    assert_eq!(
        entries(&s.join("offline")),
        BTreeSet::from(["go".to_string()]),
        "no leftovers"
    );

    // The installed tree is the release: same files, same modes.
    let listing = |root: &Path| {
        let out = run(
            Command::new("find")
                .arg(".")
                .args(["-printf", "%m %y %P\\n"])
                .current_dir(root),
            "find",
        );
        let mut l: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        l.sort();
        l
    };
    assert_eq!(listing(&goroot), listing(Path::new("/usr/local/go")));

    // go version, and a program that builds and runs with that go, offline.
    let go = goroot.join("bin/go");
    let v = run(
        &mut go_offline(&go, s.path(), &["version"], &[]),
        "go version",
    );
    assert_mentions(
        &String::from_utf8_lossy(&v.stdout),
        &[&format!("go version {version} linux/amd64")],
        "go version",
    );
    let project = hello_project(&s.join("hello"), &version["go".len()..]);
    let mc = s.join("gomodcache");
    run(
        &mut go_offline(
            &go,
            &project,
            &["build", "-o", "hello", "."],
            &[("GOMODCACHE", mc.to_str().unwrap()), ("GOPROXY", "off")],
        ),
        "go build offline",
    );
    let hello = run(&mut Command::new(project.join("hello")), "hello");
    assert_eq!(
        String::from_utf8_lossy(&hello.stdout),
        format!("hello from {version}\n")
    );

    // Pulled again: already there, nothing touched.
    let before = common::ocigo::snapshot(&goroot);
    let again = ocigo(
        &s.join("store-b"),
        &["pull", &disk, "--goroot", goroot.to_str().unwrap()],
        &[],
    );
    assert_exit(&again, 0, "second pull");
    assert_mentions(&stdout(&again), &["already present"], "second pull");
    common::ocigo::assert_unchanged(&before, &goroot, "second pull");
}

#[test]
fn an_official_archive_gives_the_same_layers_as_its_goroot_and_a_bad_one_writes_nothing() {
    let s = Scratch::new();
    let version = host_go_version();
    // /usr/local/go is an unpacked official archive: tar it back up as released.
    let archive = s.join(&format!("{version}.linux-amd64.tar.gz"));
    run(
        Command::new("tar").args(["-czf", archive.to_str().unwrap(), "-C", "/usr/local", "go"]),
        "tar -czf",
    );
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        fs::read(&archive).unwrap(),
    ));
    let store = s.join("store");
    let from_archive = format!("oci:{}:a", s.join("layout").display());
    let out = ocigo(
        &store,
        &[
            "pack",
            "toolchain",
            "--from-archive",
            archive.to_str().unwrap(),
            "--sha256",
            &sha,
            "-o",
            &from_archive,
        ],
        &[],
    );
    assert_exit(&out, 0, "pack --from-archive");
    let from_goroot = format!("oci:{}:g", s.join("layout").display());
    let out = ocigo(
        &store,
        &[
            "pack",
            "toolchain",
            "--from-goroot",
            "/usr/local/go",
            "-o",
            &from_goroot,
        ],
        &[],
    );
    assert_exit(&out, 0, "pack --from-goroot");
    let (_, a) = toolchain_parts(&s.join("layout"), "a");
    let (_, g) = toolchain_parts(&s.join("layout"), "g");
    let digests = |p: &[(Manifest, ToolchainConfig)]| -> Vec<Digest> {
        p[0].0.layers.iter().map(|l| l.digest.clone()).collect()
    };
    assert_eq!(
        digests(&a),
        digests(&g),
        "same tree, same layers, whatever the source"
    );
    assert_eq!(a[0].1.module.hash, g[0].1.module.hash);
    assert_eq!(a[0].1.source.sha256.as_deref(), Some(sha.as_str()));

    // A wrong SHA-256: refused before anything is read; nothing stored or written.
    let bad_layout = s.join("bad-layout");
    let wrong = "0".repeat(64);
    let before = common::ocigo::snapshot(&store);
    let out = ocigo(
        &store,
        &[
            "pack",
            "toolchain",
            "--from-archive",
            archive.to_str().unwrap(),
            "--sha256",
            &wrong,
            "-o",
            &format!("oci:{}", bad_layout.display()),
        ],
        &[],
    );
    assert_exit(&out, 3, "pack with a wrong --sha256");
    assert_mentions(&stderr(&out), &["SHA-256", &wrong], "wrong sha256");
    assert!(!bad_layout.exists());
    common::ocigo::assert_unchanged(&before, &store, "wrong sha256");

    // Archives that leave the tree, hold links or special files, or no bin/go.
    type Entry = (
        &'static str,
        tar::EntryType,
        &'static [u8],
        Option<&'static str>,
    );
    let cases: Vec<(&str, Vec<Entry>, &str)> = vec![
        (
            "dotdot",
            vec![("go/../evil", tar::EntryType::Regular, b"x", None)],
            "go/../evil",
        ),
        (
            "absolute",
            vec![("/go/evil", tar::EntryType::Regular, b"x", None)],
            "outside go/",
        ),
        (
            "symlink",
            vec![("go/src/link", tar::EntryType::Symlink, b"", Some("/etc"))],
            "not a regular file",
        ),
        (
            "hardlink",
            vec![("go/src/link", tar::EntryType::Link, b"", Some("go/VERSION"))],
            "not a regular file",
        ),
        (
            "fifo",
            vec![("go/src/fifo", tar::EntryType::Fifo, b"", None)],
            "not a regular file",
        ),
        (
            "device",
            vec![("go/src/dev", tar::EntryType::Char, b"", None)],
            "not a regular file",
        ),
        ("no-bin-go", vec![], "no bin/go"),
    ];
    for (name, extra, want) in cases {
        let path = s.join(&format!("{name}/{version}.linux-amd64.tar.gz"));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let gz = flate2::write::GzEncoder::new(
            fs::File::create(&path).unwrap(),
            flate2::Compression::fast(),
        );
        let mut b = tar::Builder::new(gz);
        let mut add = |p: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            {
                let raw = h.as_old_mut();
                raw.name[..p.len()].copy_from_slice(p.as_bytes());
            }
            if let Some(l) = link {
                h.set_link_name(l).unwrap();
            }
            h.set_cksum();
            b.append(&h, data).unwrap();
        };
        add(
            "go/VERSION",
            tar::EntryType::Regular,
            format!("{version}\ntime 2026-01-01T00:00:00Z\n").as_bytes(),
            None,
        );
        if name != "no-bin-go" {
            add("go/bin/go", tar::EntryType::Regular, b"#!/bin/sh\n", None);
        }
        for (p, kind, data, link) in extra {
            add(p, kind, data, link);
        }
        b.into_inner().unwrap().finish().unwrap().flush().unwrap();
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            fs::read(&path).unwrap(),
        ));
        let before = common::ocigo::snapshot(&store);
        let dest = s.join(&format!("{name}/layout"));
        let out = ocigo(
            &store,
            &[
                "pack",
                "toolchain",
                "--from-archive",
                path.to_str().unwrap(),
                "--sha256",
                &sha,
                "-o",
                &format!("oci:{}", dest.display()),
            ],
            &[],
        );
        assert_exit(&out, 3, name);
        assert_mentions(&stderr(&out), &[want], name);
        assert!(!dest.exists(), "{name}: nothing written");
        assert!(
            !Path::new("/evil").exists() && !s.path().join("evil").exists(),
            "{name}"
        );
        common::ocigo::assert_unchanged(&before, &store, name);
    }
}

/// Windows releases are `.zip` archives with a `go/` prefix. One is made
/// here as released from the golang.org/toolchain windows/amd64 module zip
/// (the same files, renamed below `go/`, each `_go.mod` back to `go.mod`,
/// with the directory entries the release zips carry): packed `--from-archive`, it gives the same layers
/// and module hash as the module packed through the proxy (whose hash the
/// checksum database vouches for). A zip with an entry outside `go/`, or a
/// link, is refused (exit 3) with nothing stored.
#[test]
fn a_windows_zip_archive_gives_the_same_layers_as_its_module() {
    let s = Scratch::new();
    let cache = toolchain_proxy().strip_prefix("file://").unwrap();
    let module = format!("v0.0.1-{OLD}.windows-amd64");
    let module_zip = Path::new(cache).join(format!("golang.org/toolchain/@v/{module}.zip"));
    let prefix = format!("golang.org/toolchain@{module}/");
    let archive = s.join(&format!("{OLD}.windows-amd64.zip"));
    {
        let mut zr = zip::ZipArchive::new(fs::File::open(&module_zip).unwrap()).unwrap();
        let mut zw = zip::ZipWriter::new(fs::File::create(&archive).unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        let mut dirs = BTreeSet::new();
        for i in 0..zr.len() {
            let mut e = zr.by_index(i).unwrap();
            let name = e.name().unwrap().strip_prefix(&prefix).unwrap().to_string();
            // The module form stores each go.mod as _go.mod; releases do not.
            let name = match name.strip_suffix("_go.mod") {
                Some(dir) if dir.is_empty() || dir.ends_with('/') => format!("{dir}go.mod"),
                _ => name,
            };
            let mut parent = Path::new(&name).parent();
            while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
                if dirs.insert(p.to_path_buf()) {
                    zw.add_directory(format!("go/{}/", p.display()), opts)
                        .unwrap();
                }
                parent = p.parent();
            }
            zw.start_file(format!("go/{name}"), opts).unwrap();
            std::io::copy(&mut e, &mut zw).unwrap();
        }
        zw.finish().unwrap();
    }
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        fs::read(&archive).unwrap(),
    ));
    let store = s.join("store");
    let out = ocigo(
        &store,
        &[
            "pack",
            "toolchain",
            "--from-archive",
            archive.to_str().unwrap(),
            "--sha256",
            &sha,
            "-o",
            &format!("oci:{}:zip", s.join("layout").display()),
        ],
        &[],
    );
    assert_exit(&out, 0, "pack --from-archive of a Windows zip");
    let out = ocigo(
        &store,
        &[
            "pack",
            "toolchain",
            OLD,
            "--platform",
            "windows/amd64",
            "-o",
            &format!("oci:{}:proxy", s.join("layout").display()),
        ],
        &proxy_env(),
    );
    assert_exit(&out, 0, "pack the windows/amd64 module through the proxy");
    let (_, z) = toolchain_parts(&s.join("layout"), "zip");
    let (_, p) = toolchain_parts(&s.join("layout"), "proxy");
    assert_eq!(z.len(), 1);
    assert_eq!(z[0].1.os, "windows");
    assert_eq!(z[0].1.arch, "amd64");
    assert_eq!(z[0].1.version, OLD);
    let layers = |p: &[(Manifest, ToolchainConfig)]| -> Vec<Digest> {
        p[0].0.layers.iter().map(|l| l.digest.clone()).collect()
    };
    assert_eq!(layers(&z), layers(&p), "same files, same layers");
    assert_eq!(z[0].1.module.hash, p[0].1.module.hash);
    assert_eq!(z[0].1.source.sha256.as_deref(), Some(sha.as_str()));

    // Bad zips: an entry outside go/, a symbolic link.
    for (case, name, link) in [
        ("outside", "other/evil.txt", false),
        ("symlink", "go/bin/link", true),
    ] {
        let bad = s.join(&format!("bad-{case}/{OLD}.windows-amd64.zip"));
        fs::create_dir_all(bad.parent().unwrap()).unwrap();
        {
            let mut zw = zip::ZipWriter::new(fs::File::create(&bad).unwrap());
            let opts = zip::write::SimpleFileOptions::default();
            zw.start_file("go/VERSION", opts).unwrap();
            zw.write_all(format!("{OLD}\ntime 2025-01-01T00:00:00Z\n").as_bytes())
                .unwrap();
            if link {
                zw.add_symlink(name, "/etc/passwd", opts).unwrap();
            } else {
                zw.start_file(name, opts).unwrap();
                zw.write_all(b"x").unwrap();
            }
            zw.finish().unwrap();
        }
        let bad_sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            fs::read(&bad).unwrap(),
        ));
        let before = common::ocigo::snapshot(&store);
        let dest = s.join(&format!("bad-layout-{case}"));
        let out = ocigo(
            &store,
            &[
                "pack",
                "toolchain",
                "--from-archive",
                bad.to_str().unwrap(),
                "--sha256",
                &bad_sha,
                "-o",
                &format!("oci:{}", dest.display()),
            ],
            &[],
        );
        assert_exit(&out, 3, &format!("a Windows zip with {case}"));
        assert_mentions(
            &stderr(&out),
            &["not a valid Go release archive", name],
            case,
        );
        assert!(!dest.exists(), "{case}: nothing written");
        common::ocigo::assert_unchanged(&before, &store, case);
    }
}

#[test]
fn two_platforms_from_the_module_proxy_share_their_common_layers() {
    let p = packed_new();
    let (index, parts) = toolchain_parts(&p.layout, NEW);
    assert_eq!(
        index.artifact_type.as_deref(),
        Some(format::ARTIFACT_TYPE_TOOLCHAIN)
    );
    // The index also holds the checksum database's record of each
    // platform's module (a manifest with no platform).
    let platforms: Vec<String> = index
        .manifests
        .iter()
        .filter(|d| format::is_toolchain(d))
        .map(|d| {
            let pl = d.platform.as_ref().unwrap();
            format!("{}/{}", pl.os, pl.architecture)
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    for (_, c) in &parts {
        assert_eq!(c.version, NEW);
        assert_eq!(c.module.checked_with.as_deref(), Some("sum.golang.org"));
        assert_eq!(c.source.kind, "module");
    }
    // Everything but bin/ and pkg/tool/ is the same blob in both.
    let by_name = |c: &ToolchainConfig| -> BTreeMap<String, Digest> {
        c.layers
            .iter()
            .map(|l| (l.name.clone(), l.digest.clone()))
            .collect()
    };
    let (a, b) = (by_name(&parts[0].1), by_name(&parts[1].1));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, d) in &a {
        let shared = *d == b[name];
        assert_eq!(shared, name != "bin" && name != "pkg/tool", "layer {name}");
    }
    // Stored once: the layout holds each shared layer one time.
    let size = |m: &Manifest| m.layers.iter().map(|l| l.size).sum::<u64>();
    let mut stored = BTreeMap::new();
    for (m, _) in &parts {
        for l in &m.layers {
            stored.insert(l.digest.clone(), l.size);
        }
    }
    let total: u64 = stored.values().sum();
    let one = size(&parts[0].0);
    let on_disk: u64 = stored
        .keys()
        .map(|d| {
            fs::metadata(p.layout.join("blobs/sha256").join(d.hex()))
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(on_disk, total);
    assert!(
        (total as f64) < 1.5 * one as f64,
        "two platforms store {total} bytes, one {one}: over 1.5x"
    );

    // inspect says the same: versions, platforms, shared and own layers.
    let reference = format!("oci:{}:{NEW}", p.layout.display());
    let out = ocigo(&p.store, &["inspect", &reference, "--json"], &[]);
    assert_exit(&out, 0, "inspect --json a toolchain");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["artifact_type"], format::ARTIFACT_TYPE_TOOLCHAIN);
    let t = &j["toolchains"];
    let listed: Vec<&str> = t["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["platform"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["linux/amd64", "linux/arm64"]);
    assert_eq!(t["unique_bytes"], total, "{t:#}");
    assert_eq!(t["layers"], stored.len(), "{t:#}");
    assert_eq!(t["shared_layers"], a.len() - 2, "{t:#}");
    for (k, (m, c)) in parts.iter().enumerate() {
        let pj = &t["platforms"][k];
        assert_eq!(pj["version"], NEW);
        assert_eq!(pj["module_hash"], c.module.hash.as_str());
        assert_eq!(pj["layer_bytes"], size(m));
        assert_eq!(pj["own_layers"], 2, "bin and pkg/tool: {pj:#}");
        assert!(pj.get("layer_list").is_none());
    }
    let out = ocigo(&p.store, &["inspect", &reference, "--modules"], &[]);
    assert_exit(&out, 0, "inspect --modules a toolchain");
    assert_mentions(
        &stdout(&out),
        &[
            &format!("toolchain {NEW} linux/arm64"),
            "pkg/tool",
            ", shared",
            &format!("{} shared by platforms", a.len() - 2),
        ],
        "inspect human output",
    );

    // The host's platform installs and runs.
    let s = Scratch::new();
    let goroot = s.join("go");
    let out = ocigo(
        &p.store,
        &[
            "pull",
            &format!("oci:{}:{NEW}", p.layout.display()),
            "--goroot",
            goroot.to_str().unwrap(),
        ],
        &[],
    );
    assert_exit(&out, 0, "pull --goroot");
    let v = run(
        &mut go_offline(&goroot.join("bin/go"), s.path(), &["version"], &[]),
        "go version",
    );
    assert_eq!(
        String::from_utf8_lossy(&v.stdout),
        format!("go version {NEW} linux/amd64\n")
    );

    // A different toolchain there is left alone without --force.
    let host = ocigo(
        &s.join("store2"),
        &[
            "pack",
            "toolchain",
            "--from-goroot",
            "/usr/local/go",
            "-o",
            &format!("oci:{}:host", s.join("l2").display()),
        ],
        &[],
    );
    assert_exit(&host, 0, "pack host goroot");
    let before = common::ocigo::snapshot(&goroot);
    let l2 = format!("oci:{}:host", s.join("l2").display());
    let out = ocigo(
        &s.join("store2"),
        &["pull", &l2, "--goroot", goroot.to_str().unwrap()],
        &[],
    );
    assert_exit(&out, 5, "pull over a different toolchain");
    assert_mentions(&stderr(&out), &[NEW, "--force"], "conflict message");
    common::ocigo::assert_unchanged(&before, &goroot, "refused pull");
    let out = ocigo(
        &s.join("store2"),
        &["pull", &l2, "--goroot", goroot.to_str().unwrap(), "--force"],
        &[],
    );
    assert_exit(&out, 0, "pull --force");
    let v = run(
        &mut go_offline(&goroot.join("bin/go"), s.path(), &["version"], &[]),
        "go version",
    );
    assert_mentions(
        &String::from_utf8_lossy(&v.stdout),
        &[&host_go_version()],
        "replaced",
    );
    assert_eq!(
        entries(s.path())
            .iter()
            .filter(|e| e.starts_with(".ocigo"))
            .count(),
        0,
        "no leftovers"
    );
}

#[test]
fn gotoolchain_switches_up_and_down_offline_with_toolchains_in_gomodcache() {
    let p = packed_new();
    let s = Scratch::new();
    let mc = s.join("gomodcache");
    let gp = s.join("gopath");
    let out = ocigo(
        &p.store,
        &[
            "pull",
            &format!("oci:{}:{NEW}", p.layout.display()),
            "--gomodcache",
            mc.to_str().unwrap(),
            "--gopath",
            gp.to_str().unwrap(),
        ],
        &[],
    );
    assert_exit(&out, 0, "pull --gomodcache");
    // The toolchain's checksum-database record travelled with it: GOSUMDB
    // stays at its default.
    assert_mentions(
        &stdout(&out),
        &[
            &format!("GOPATH={}", gp.display()),
            &format!("GOPROXY=file://{}/cache/download", mc.display()),
            "checksum database sum.golang.org",
        ],
        "printed env",
    );
    assert!(!stdout(&out).contains("GOSUMDB=off"), "{}", stdout(&out));
    assert!(gp.join("pkg/sumdb/sum.golang.org/latest").is_file());
    let old_layout = format!("oci:{}:{OLD}", s.join("old").display());
    let out = ocigo(
        &p.store,
        &["pack", "toolchain", OLD, "-o", &old_layout],
        &proxy_env(),
    );
    assert_exit(&out, 0, "pack the older release");
    // Into a cache of its own: its record was fetched at another tree size
    // than the newer release's, and `pack toolchain` has no --sumdb-since
    // (README "Checksum database data").
    let (mc_old, gp_old) = (s.join("gomodcache-old"), s.join("gopath-old"));
    let out = ocigo(
        &p.store,
        &[
            "pull",
            &old_layout,
            "--gomodcache",
            mc_old.to_str().unwrap(),
            "--gopath",
            gp_old.to_str().unwrap(),
        ],
        &[],
    );
    assert_exit(&out, 0, "pull the older release");
    // Into the newer release's cache, its checksum database data cannot
    // join that cache's tree: the module form is installed, the data
    // skipped, and pull says so and prints the GONOSUMDB that lets the go
    // command switch to it (not GOSUMDB=off, not "carries no record").
    let (mc_both, gp_both) = (s.join("gomodcache-both"), s.join("gopath-both"));
    // (its checksum database cache and trusted head; not its toolchain)
    common::fixtures::copy_tree(
        &mc.join("cache/download/sumdb"),
        &mc_both.join("cache/download/sumdb"),
    );
    common::fixtures::copy_tree(&gp, &gp_both);
    let pull_both = |json: bool| {
        let mut args = vec![
            "pull",
            &old_layout,
            "--gomodcache",
            mc_both.to_str().unwrap(),
            "--gopath",
            gp_both.to_str().unwrap(),
        ];
        if json {
            args.insert(0, "--json");
        }
        ocigo(&p.store, &args, &[])
    };
    let latest_before = fs::read(gp_both.join("pkg/sumdb/sum.golang.org/latest")).unwrap();
    let out = pull_both(false);
    assert_exit(&out, 0, "pull the older release into the newer's cache");
    assert_mentions(
        &stdout(&out),
        &[
            "warning: checksum database sum.golang.org: not installed",
            "export GONOSUMDB=golang.org/toolchain",
            "holding the toolchain's record was not installed",
        ],
        "a toolchain whose record was skipped",
    );
    for wrong in [
        "GOSUMDB=off",
        "carries no",
        "GOPATH=",
        "stays at its default",
    ] {
        assert!(!stdout(&out).contains(wrong), "{wrong}: {}", stdout(&out));
    }
    assert_eq!(
        fs::read(gp_both.join("pkg/sumdb/sum.golang.org/latest")).unwrap(),
        latest_before
    );
    let out = pull_both(true);
    assert_exit(&out, 0, "pull --json of the skipped toolchain");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = if j["toolchain"].is_object() {
        &j["toolchain"]
    } else {
        &j
    };
    assert!(
        t["sumdb_skipped"].as_str().is_some_and(|s| !s.is_empty())
            && t["sumdb_hint"].as_str().is_some_and(|s| !s.is_empty()),
        "{j}"
    );
    assert!(
        t["env"]
            .to_string()
            .contains("[\"GONOSUMDB\",\"golang.org/toolchain\"]"),
        "{j}"
    );
    // The go command switches to it with that environment, offline.
    let proxy_both = format!("file://{}/cache/download", mc_both.display());
    let env_both = [
        ("GOMODCACHE", mc_both.to_str().unwrap()),
        ("GOPROXY", proxy_both.as_str()),
        ("GOPATH", gp_both.to_str().unwrap()),
        ("GONOSUMDB", "golang.org/toolchain"),
        ("GOTOOLCHAIN", OLD),
    ];
    let v = run(
        &mut go_offline(
            Path::new("/usr/local/go/bin/go"),
            s.path(),
            &["version"],
            &env_both,
        ),
        "go version (switch with GONOSUMDB)",
    );
    assert_eq!(
        String::from_utf8_lossy(&v.stdout),
        format!("go version {OLD} linux/amd64\n")
    );

    // The .ziphash is the checksum database's record (the go command's own download).
    let cache = toolchain_proxy().strip_prefix("file://").unwrap();
    for (v, mc) in [
        (format!("v0.0.1-{NEW}.linux-amd64"), &mc),
        (format!("v0.0.1-{OLD}.linux-amd64"), &mc_old),
    ] {
        let rel = format!("golang.org/toolchain/@v/{v}.ziphash");
        assert_eq!(
            fs::read_to_string(mc.join("cache/download").join(&rel)).unwrap(),
            fs::read_to_string(Path::new(cache).join(&rel)).unwrap(),
            "{v}"
        );
    }

    // GOSUMDB at its default: the go command checks the toolchain module
    // against the records ocigo wrote (GOPROXY=file:// does not exempt it).
    let env = [
        ("GOMODCACHE", mc.to_str().unwrap()),
        (
            "GOPROXY",
            &*format!("file://{}/cache/download", mc.display()),
        ),
        ("GOPATH", gp.to_str().unwrap()),
        ("GOTOOLCHAIN", "auto"),
    ];
    let host_go = Path::new("/usr/local/go/bin/go");
    // Up: go.mod asks for NEW, the host go (1.26.x) switches to it.
    let up = hello_project(&s.join("up"), &NEW["go".len()..]);
    let v = run(
        &mut go_offline(host_go, &up, &["version"], &env),
        "go version (switch up)",
    );
    assert_eq!(
        String::from_utf8_lossy(&v.stdout),
        format!("go version {NEW} linux/amd64\n")
    );
    run(
        &mut go_offline(host_go, &up, &["build", "-o", "hello", "."], &env),
        "go build (switch up)",
    );
    let hello = run(&mut Command::new(up.join("hello")), "hello");
    assert_eq!(
        String::from_utf8_lossy(&hello.stdout),
        format!("hello from {NEW}\n")
    );

    // Down: an explicit GOTOOLCHAIN of an older release.
    let down = hello_project(&s.join("down"), "1.25");
    let proxy_old = format!("file://{}/cache/download", mc_old.display());
    let env_down = [
        ("GOMODCACHE", mc_old.to_str().unwrap()),
        ("GOPROXY", proxy_old.as_str()),
        ("GOPATH", gp_old.to_str().unwrap()),
        ("GOTOOLCHAIN", OLD),
    ];
    let v = run(
        &mut go_offline(host_go, &down, &["version"], &env_down),
        "go version (switch down)",
    );
    assert_eq!(
        String::from_utf8_lossy(&v.stdout),
        format!("go version {OLD} linux/amd64\n")
    );
    run(
        &mut go_offline(host_go, &down, &["build", "-o", "hello", "."], &env_down),
        "go build (switch down)",
    );
    let hello = run(&mut Command::new(down.join("hello")), "hello");
    assert_eq!(
        String::from_utf8_lossy(&hello.stdout),
        format!("hello from {OLD}\n")
    );
}

#[test]
fn a_project_and_its_toolchain_under_one_reference_build_where_there_is_no_go() {
    let s = Scratch::new();
    let fixture_proxy = s.join("fixture-proxy");
    common::fixtures::build_file_proxy(&fixture_proxy);
    let project = common::fixtures::copy_project(s.path());
    let gomod = fs::read_to_string(project.join("go.mod")).unwrap();
    fs::write(
        project.join("go.mod"),
        gomod.replacen("go 1.22\n", &format!("go 1.22\n\ntoolchain {NEW}\n"), 1),
    )
    .unwrap();
    let mut env: Vec<(String, String)> = common::fixtures::fixture_env(&fixture_proxy);
    for (k, v) in &mut env {
        if k == "GOPROXY" {
            *v = format!("{v},{}", toolchain_proxy());
        }
    }
    env.push(("GOSUMDB".into(), "sum.golang.org".into()));
    let env_refs = common::go::env_refs(&env);
    let dest = format!("oci:{}:both", s.join("layout").display());
    let store = packed_new().store.clone();
    let out = ocigo(
        &store,
        &[
            "pack",
            project.to_str().unwrap(),
            "--with-toolchain",
            "-o",
            &dest,
        ],
        &env_refs,
    );
    assert_exit(&out, 0, "pack --with-toolchain");
    // inspect shows both: the modules and the toolchain.
    let inspected = ocigo(&store, &["inspect", &dest, "--json"], &[]);
    assert_exit(&inspected, 0, "inspect a combined index");
    let j: serde_json::Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert!(j["module_versions"].as_u64().unwrap() > 0, "{j:#}");
    let t = &j["toolchains"]["platforms"];
    assert_eq!(t.as_array().unwrap().len(), 1, "{j:#}");
    assert_eq!(t[0]["platform"], "linux/amd64");
    assert!(
        t[0]["version"].as_str().unwrap().starts_with("go1."),
        "{j:#}"
    );
    assert_mentions(
        &stdout(&out),
        &[&format!("with toolchain {NEW} linux/amd64")],
        "pack output",
    );
    let (index, parts) = toolchain_parts(&s.join("layout"), "both");
    assert_eq!(parts.len(), 1);
    assert!(
        index
            .manifests
            .iter()
            .any(|d| d.artifact_type.as_deref() == Some(ocigo::artifact::ARTIFACT_TYPE_MODULES))
    );

    // One pull, offline: modules into GOMODCACHE, the toolchain as a GOROOT.
    let mc = s.join("gomodcache");
    let goroot = s.join("go");
    let out = common::ocigo::ocigo_offline(
        &s.join("store-offline"),
        &[
            "pull",
            &dest,
            "--gomodcache",
            mc.to_str().unwrap(),
            "--gopath",
            s.join("gopath").to_str().unwrap(),
            "--goroot",
            goroot.to_str().unwrap(),
        ],
        &[],
    );
    assert_exit(&out, 0, "one pull of both");
    // Build with a PATH that has no go at all but the pulled one.
    let build_env = [("GOMODCACHE", mc.to_str().unwrap()), ("GOPROXY", "off")];
    let mut cmd = go_offline(
        &goroot.join("bin/go"),
        &project,
        &["build", "./..."],
        &build_env,
    );
    cmd.env(
        "PATH",
        format!("{}/bin:/usr/sbin:/usr/bin:/sbin:/bin", goroot.display()),
    );
    assert!(
        Command::new("sh")
            .args(["-c", "command -v go"])
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .output()
            .unwrap()
            .stdout
            .is_empty(),
        "go on the base PATH"
    );
    run(&mut cmd, "go build with the pulled toolchain");
    let v = run(
        &mut go_offline(&goroot.join("bin/go"), &project, &["version"], &[]),
        "go version",
    );
    assert_eq!(
        String::from_utf8_lossy(&v.stdout),
        format!("go version {NEW} linux/amd64\n")
    );
}

// ------------------------------------------------------- hostile layers

/// A toolchain artifact whose only layer holds `entries`, with a config
/// that declares exactly what the tar holds (so only the entry checks can
/// catch it) unless `declared_tar` overrides the tar length.
fn craft(
    layout: &Path,
    build: impl FnOnce(&mut tar::Builder<Vec<u8>>),
    declared_tar: Option<u64>,
    files: u64,
    bytes: u64,
) {
    let mut b = tar::Builder::new(Vec::new());
    build(&mut b);
    let tar_bytes = b.into_inner().unwrap();
    let z = zstd::encode_all(&tar_bytes[..], 3).unwrap();
    let l = Layout::open_or_create(layout).unwrap();
    let d = Descriptor::for_bytes(format::MEDIA_TYPE_LAYER, &z);
    l.push_blob(&d, &mut &z[..]).unwrap();
    let config = ToolchainConfig {
        format_version: 1,
        version: "go1.26.8".into(),
        os: "linux".into(),
        arch: "amd64".into(),
        time: None,
        source: SourceInfo {
            kind: "goroot".into(),
            name: "crafted".into(),
            sha256: None,
        },
        module: ModuleForm {
            version: "v0.0.1-go1.26.8.linux-amd64".into(),
            hash: "h1:x".into(),
            checked_with: None,
        },
        files,
        bytes,
        layers: vec![LayerInfo {
            digest: d.digest.clone(),
            name: "all".into(),
            files,
            bytes,
            tar_bytes: declared_tar.unwrap_or(tar_bytes.len() as u64),
            delta_from: vec![],
        }],
        base_version: None,
        bases: vec![],
    };
    let built = format::build_manifest(&config, &[d.size]);
    l.push_blob(&built.config_descriptor, &mut &built.config_bytes[..])
        .unwrap();
    l.push_manifest(ocigo::oci::MEDIA_TYPE_MANIFEST, &built.manifest, None)
        .unwrap();
    let index = format::build_index(vec![built.entry], format::ARTIFACT_TYPE_TOOLCHAIN);
    l.push_manifest(ocigo::oci::MEDIA_TYPE_INDEX, &index, Some("bad"))
        .unwrap();
}

fn file(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8], mode: u32) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(mode);
    h.set_size(data.len() as u64);
    b.append_data(&mut h, name, data).unwrap();
}

fn raw(b: &mut tar::Builder<Vec<u8>>, name: &str, kind: tar::EntryType, link: Option<&str>) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(0);
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            old.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
    }
    h.set_cksum();
    b.append(&h, &[][..]).unwrap();
}

#[test]
fn hostile_toolchain_layers_are_refused_with_nothing_written() {
    let version = b"go1.26.8\n";
    let go = b"#!/bin/sh\n";
    type Case = (
        &'static str,
        Box<dyn FnOnce(&mut tar::Builder<Vec<u8>>)>,
        Option<u64>,
        u64,
        u64,
        &'static str,
    );
    let ok_files = |b: &mut tar::Builder<Vec<u8>>| {
        file(b, "VERSION", b"go1.26.8\n", 0o644);
        file(b, "bin/go", b"#!/bin/sh\n", 0o755);
    };
    let base = (version.len() + go.len()) as u64;
    // An extension entry declaring 100 MiB (the tar crate would read it
    // wholly into memory): refused by its header, before it is read.
    let huge_extension = |kind: tar::EntryType| {
        move |b: &mut tar::Builder<Vec<u8>>| {
            ok_files(b);
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_path("././@LongLink").unwrap();
            h.set_size(100 << 20);
            h.set_cksum();
            b.append(&h, &[0u8; 512][..]).unwrap();
        }
    };
    let cases: Vec<Case> = vec![
        (
            "huge PAX entry",
            Box::new(huge_extension(tar::EntryType::XHeader)),
            None,
            2,
            base,
            "PAX or long-name entry of 104857600 bytes, over the 65536-byte limit",
        ),
        (
            "huge GNU long name",
            Box::new(huge_extension(tar::EntryType::GNULongName)),
            None,
            2,
            base,
            "PAX or long-name entry of 104857600 bytes, over the 65536-byte limit",
        ),
        (
            "dotdot",
            Box::new(move |b| {
                ok_files(b);
                raw(b, "../evil", tar::EntryType::Regular, None)
            }),
            None,
            3,
            base,
            "not allowed",
        ),
        (
            "absolute",
            Box::new(move |b| {
                ok_files(b);
                raw(b, "/tmp/evil", tar::EntryType::Regular, None)
            }),
            None,
            3,
            base,
            "absolute",
        ),
        (
            "symlink",
            Box::new(move |b| {
                ok_files(b);
                raw(b, "src/link", tar::EntryType::Symlink, Some("/etc"))
            }),
            None,
            2,
            base,
            "symbolic link",
        ),
        (
            "hardlink",
            Box::new(move |b| {
                ok_files(b);
                raw(b, "src/link", tar::EntryType::Link, Some("/etc/passwd"))
            }),
            None,
            2,
            base,
            "hard link",
        ),
        (
            "fifo",
            Box::new(move |b| {
                ok_files(b);
                raw(b, "src/fifo", tar::EntryType::Fifo, None)
            }),
            None,
            2,
            base,
            "FIFO",
        ),
        (
            "device",
            Box::new(move |b| {
                ok_files(b);
                raw(b, "src/null", tar::EntryType::Char, None)
            }),
            None,
            2,
            base,
            "device",
        ),
        (
            "no-bin-go",
            Box::new(move |b| file(b, "VERSION", b"go1.26.8\n", 0o644)),
            None,
            1,
            version.len() as u64,
            "no bin/go",
        ),
        (
            "twice",
            Box::new(move |b| {
                ok_files(b);
                file(b, "bin/go", b"#!/bin/sh\n", 0o755)
            }),
            None,
            3,
            base + go.len() as u64,
            "twice",
        ),
        (
            "setuid",
            Box::new(move |b| {
                ok_files(b);
                file(b, "bin/su", b"x", 0o4755)
            }),
            None,
            3,
            base + 1,
            "mode",
        ),
        // A bomb: the config declares a small tar; the layer expands far past it.
        (
            "bomb",
            Box::new(move |b| {
                ok_files(b);
                file(b, "src/big", &vec![0u8; 8 << 20], 0o644)
            }),
            Some(8192),
            3,
            base + (8 << 20),
            "more than its declared",
        ),
    ];
    for (name, build, declared, files, bytes, want) in cases {
        let s = Scratch::new();
        let layout = s.join("layout");
        craft(&layout, build, declared, files, bytes);
        let parent = s.dir("target");
        let goroot = parent.join("go");
        let out = ocigo(
            &s.join("store"),
            &[
                "pull",
                &format!("oci:{}:bad", layout.display()),
                "--goroot",
                goroot.to_str().unwrap(),
            ],
            &[],
        );
        assert_exit(&out, 3, name);
        assert_mentions(&stderr(&out), &[want], name);
        assert!(
            entries(&parent).is_empty(),
            "{name}: left {:?}",
            entries(&parent)
        );
        assert!(
            !Path::new("/tmp/evil").exists() && !s.path().join("evil").exists(),
            "{name}"
        );
    }
}

#[test]
fn a_goroot_that_is_not_a_plain_toolchain_is_refused_with_nothing_written() {
    let s = Scratch::new();
    // The host's content store exists already (as it does after any pack).
    let store = s.join("store");
    assert_exit(&ocigo(&store, &["store", "prune"], &[]), 0, "store prune");
    let fake = s.dir("fake");
    fs::write(
        fake.join("VERSION"),
        "go1.26.8\ntime 2026-01-01T00:00:00Z\n",
    )
    .unwrap();
    fs::create_dir_all(fake.join("src")).unwrap();
    fs::write(fake.join("src/x.go"), "package x\n").unwrap();
    let pack = |what: &str| {
        let dest = s.join(&format!("layout-{what}"));
        let before = common::ocigo::snapshot(&store);
        let out = ocigo(
            &store,
            &[
                "pack",
                "toolchain",
                "--from-goroot",
                fake.to_str().unwrap(),
                "--platform",
                "linux/amd64",
                "-o",
                &format!("oci:{}", dest.display()),
            ],
            &[],
        );
        assert!(!dest.exists(), "{what}: nothing written");
        common::ocigo::assert_unchanged(&before, &store, what);
        out
    };
    let out = pack("no-bin-go");
    assert_exit(&out, 3, "a GOROOT without bin/go");
    assert_mentions(&stderr(&out), &["no bin/go"], "no bin/go");
    fs::create_dir_all(fake.join("bin")).unwrap();
    fs::write(fake.join("bin/go"), "#!/bin/sh\n").unwrap();
    std::os::unix::fs::symlink("/etc", fake.join("src/etc")).unwrap();
    let out = pack("symlink");
    assert_exit(&out, 3, "a GOROOT with a symbolic link");
    assert_mentions(&stderr(&out), &["src/etc", "not a regular file"], "symlink");
}

/// The checksum database client against the real one (through the module
/// proxy), judged by the go command's own verified download.
#[test]
fn the_checksum_database_client_agrees_with_the_go_command() {
    let (module, version) = ("golang.org/x/text", "v0.14.0");
    let s = Scratch::new();
    let out = run(
        Command::new("go")
            .args(["mod", "download", "-json", &format!("{module}@{version}")])
            .current_dir(s.path())
            .env("GOMODCACHE", s.join("mc"))
            .env("GOFLAGS", "-modcacherw")
            .env("GOTOOLCHAIN", "local"),
        "go mod download",
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let proxy = std::env::var("GOPROXY")
        .ok()
        .and_then(|p| {
            p.split([',', '|'])
                .find(|e| e.starts_with("http"))
                .map(str::to_string)
        })
        .unwrap_or_else(|| "https://proxy.golang.org".into());
    let fetch = ocigo::gomod::sumdb::UrlFetch::new(&format!("{proxy}/sumdb/sum.golang.org"));
    let verifier =
        ocigo::gomod::sumdb::Verifier::parse(ocigo::gomod::sumdb::SUM_GOLANG_ORG_KEY).unwrap();
    let lookup = ocigo::gomod::sumdb::Client::new(verifier, &fetch)
        .lookup(module, version)
        .unwrap();
    assert_eq!(lookup.zip_hash(module, version), j["Sum"].as_str());
    assert!(lookup.tree.n > lookup.id);
}

/// Bytes of the blobs a distribution registry stores.
fn registry_blob_bytes(registry: &TestRegistry) -> u64 {
    fn walk(dir: &Path, total: &mut u64) {
        for e in fs::read_dir(dir).into_iter().flatten() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                walk(&e.path(), total);
            } else if t.is_file() && e.file_name() == "data" {
                *total += e.metadata().unwrap().len();
            }
        }
    }
    let mut total = 0;
    walk(
        &registry.storage_dir().join("docker/registry/v2/blobs"),
        &mut total,
    );
    total
}

#[test]
fn a_patch_release_as_deltas_stores_under_half_and_installs_the_same_files_offline() {
    let s = Scratch::new();
    let registry = TestRegistry::start();
    let (key, public) = key_pair(s.path());
    let base = format!("{}/toolchains/go:{PREV}", registry.addr);
    let out = ocigo(
        &s.join("store-a"),
        &[
            "pack",
            "toolchain",
            PREV,
            "--platform",
            "linux/amd64",
            "-o",
            &base,
        ],
        &proxy_env(),
    );
    assert_exit(&out, 0, "pack the predecessor");
    let before = registry_blob_bytes(&registry);
    let dest = format!("{}/toolchains/go:{NEW}", registry.addr);
    let mut env = proxy_env();
    env.push(("COSIGN_PASSWORD", PASSWORD));
    let pack_delta = |store: &Path, to: &str, extra: &[&str]| {
        let mut args = vec![
            "pack",
            "toolchain",
            NEW,
            "--platform",
            "linux/amd64",
            "--platform",
            "linux/arm64",
            "--delta-from",
            &base,
            "-o",
            to,
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = ocigo(store, &args, &env);
        assert_exit(&out, 0, "pack --delta-from");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let j = pack_delta(
        &s.join("store-a"),
        &dest,
        &["--sign", key.to_str().unwrap()],
    );
    // linux/amd64 is a delta of PREV's; the base has no linux/arm64, which
    // gets full layers.
    let t = j["toolchains"].as_array().unwrap();
    assert_eq!(t[0]["platform"], "linux/amd64");
    assert_eq!(t[0]["delta_from"], PREV);
    assert_eq!(t[1]["platform"], "linux/arm64");
    assert!(t[1].get("delta_from").is_none(), "{t:?}");

    // The registry's new bytes against NEW's amd64 layers packed alone.
    let added = registry_blob_bytes(&registry) - before;
    let (_, full_parts) = toolchain_parts(&packed_new().layout, NEW);
    let layer_bytes = |m: &Manifest| m.layers.iter().map(|l| l.size).sum::<u64>();
    let full_amd64 = layer_bytes(&full_parts[0].0);
    let full_arm64 = layer_bytes(&full_parts[1].0);
    assert_eq!(full_parts[0].1.arch, "amd64");
    // The arm64 part is stored in full (bar the layers it shares with
    // amd64): count amd64's share as what was added beyond arm64's own layers.
    let arm_own: u64 = full_parts[1]
        .0
        .layers
        .iter()
        .filter(|l| !full_parts[0].0.layers.iter().any(|m| m.digest == l.digest))
        .map(|l| l.size)
        .sum();
    let amd64_added = added - arm_own;
    assert!(
        (amd64_added as f64) < 0.5 * full_amd64 as f64,
        "the patch release added {amd64_added} bytes for linux/amd64; packed alone its layers are {full_amd64}: not under 0.5x"
    );
    assert!(full_arm64 > 0);

    // The delta platform's config: format v2, bases listed in the manifest.
    let disk = s.join("disk");
    let disk_ref = format!("oci:{}:{NEW}", disk.display());
    assert_exit(
        &ocigo(&s.join("store-a"), &["push", &dest, &disk_ref], &[]),
        0,
        "push to disk",
    );
    let (_, parts) = toolchain_parts(&disk, NEW);
    let (m, c) = &parts[0];
    assert_eq!(c.format_version, format::FORMAT_VERSION_DELTA);
    assert_eq!(c.base_version.as_deref(), Some(PREV));
    let names: Vec<&str> = c
        .layers
        .iter()
        .filter(|l| l.is_delta())
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(names, ["bin", "pkg/tool"]);
    assert_eq!(m.layers.len(), c.layers.len() + c.bases.len());
    for (d, b) in m.layers[c.layers.len()..].iter().zip(&c.bases) {
        assert_eq!(d.digest, b.digest);
        assert!(disk.join("blobs/sha256").join(d.digest.hex()).is_file());
    }
    assert_eq!(parts[1].1.format_version, format::FORMAT_VERSION);
    let out = ocigo(&s.join("store-a"), &["inspect", &disk_ref, "--json"], &[]);
    assert_exit(&out, 0, "inspect the delta form");
    let ij: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pj = &ij["toolchains"]["platforms"][0];
    assert_eq!(pj["delta_from"], PREV, "{pj:#}");
    assert_eq!(pj["base_layers"], c.bases.len(), "{pj:#}");
    assert!(ij["toolchains"]["platforms"][1].get("delta_from").is_none());
    let out = ocigo(
        &s.join("store-a"),
        &["inspect", &disk_ref, "--modules"],
        &[],
    );
    assert_exit(&out, 0, "inspect --modules the delta form");
    assert_mentions(
        &stdout(&out),
        &[
            &format!("as deltas against {PREV}"),
            ", delta",
            ", base (not extracted)",
        ],
        "inspect of the delta form",
    );

    // Determinism: another store, another destination, the same manifest.
    let again = pack_delta(
        &s.join("store-c"),
        &format!("oci:{}:{NEW}", s.join("again").display()),
        &[],
    );
    assert_eq!(again["toolchains"][0]["digest"], t[0]["digest"]);

    // A fresh host, no network, signature required: a GOROOT ...
    let require = [("OCIGO_REQUIRE_SIGNATURE", "1")];
    let goroot = s.join("offline/go");
    let pulled = common::ocigo::ocigo_offline(
        &s.join("store-b"),
        &[
            "pull",
            &disk_ref,
            "--goroot",
            goroot.to_str().unwrap(),
            "--verify-key",
            public.to_str().unwrap(),
        ],
        &require,
    );
    assert_exit(
        &pulled,
        0,
        "verified offline pull --goroot of the delta form",
    );
    assert_mentions(&stdout(&pulled), &["signature verified", NEW], "pull");
    assert_eq!(
        entries(&s.join("offline")),
        BTreeSet::from(["go".to_string()]),
        "no leftovers"
    );
    // ... byte for byte the full form's.
    let full_goroot = s.join("full/go");
    let out = ocigo(
        &packed_new().store,
        &[
            "pull",
            &format!("oci:{}:{NEW}", packed_new().layout.display()),
            "--goroot",
            full_goroot.to_str().unwrap(),
        ],
        &[],
    );
    assert_exit(&out, 0, "pull --goroot of the full form");
    let diff = common::ocigo::snapshot(&full_goroot).diff(&common::ocigo::snapshot(&goroot));
    assert!(diff.is_empty(), "the delta form differs: {diff:?}");
    let go = goroot.join("bin/go");
    let project = hello_project(&s.join("hello"), &NEW["go".len()..]);
    run(
        &mut go_offline(
            &go,
            &project,
            &["build", "-o", "hello", "."],
            &[
                ("GOMODCACHE", s.join("mc0").to_str().unwrap()),
                ("GOPROXY", "off"),
            ],
        ),
        "go build offline with the delta form's go",
    );
    let hello = run(&mut Command::new(project.join("hello")), "hello");
    assert_eq!(
        String::from_utf8_lossy(&hello.stdout),
        format!("hello from {NEW}\n")
    );

    // ... and the module form, which the host's go switches to.
    let (mc, gp) = (s.join("gomodcache"), s.join("gopath"));
    let pulled = common::ocigo::ocigo_offline(
        &s.join("store-b"),
        &[
            "pull",
            &disk_ref,
            "--gomodcache",
            mc.to_str().unwrap(),
            "--gopath",
            gp.to_str().unwrap(),
            "--verify-key",
            public.to_str().unwrap(),
        ],
        &require,
    );
    assert_exit(
        &pulled,
        0,
        "verified offline pull --gomodcache of the delta form",
    );
    let cache = toolchain_proxy().strip_prefix("file://").unwrap();
    let rel = format!("golang.org/toolchain/@v/v0.0.1-{NEW}.linux-amd64.ziphash");
    assert_eq!(
        fs::read_to_string(mc.join("cache/download").join(&rel)).unwrap(),
        fs::read_to_string(Path::new(cache).join(&rel)).unwrap(),
    );
    let env = [
        ("GOMODCACHE", mc.to_str().unwrap()),
        (
            "GOPROXY",
            &*format!("file://{}/cache/download", mc.display()),
        ),
        ("GOPATH", gp.to_str().unwrap()),
        ("GOTOOLCHAIN", "auto"),
    ];
    let up = hello_project(&s.join("up"), &NEW["go".len()..]);
    let host_go = Path::new("/usr/local/go/bin/go");
    let v = run(
        &mut go_offline(host_go, &up, &["version"], &env),
        "go version (switch to the delta form)",
    );
    assert_eq!(
        String::from_utf8_lossy(&v.stdout),
        format!("go version {NEW} linux/amd64\n")
    );
    run(
        &mut go_offline(host_go, &up, &["build", "-o", "hello", "."], &env),
        "go build (switched)",
    );
    let hello = run(&mut Command::new(up.join("hello")), "hello");
    assert_eq!(
        String::from_utf8_lossy(&hello.stdout),
        format!("hello from {NEW}\n")
    );
    assert!(
        !entries(&s.join("store-b"))
            .iter()
            .any(|e| e.starts_with(".ocigo-")),
        "scratch left in the store: {:?}",
        entries(&s.join("store-b"))
    );

    // A project packed with its toolchain as deltas: the same toolchain
    // manifest as the standalone delta pack, one offline pull of both.
    let fixture_proxy = s.join("fixture-proxy");
    common::fixtures::build_file_proxy(&fixture_proxy);
    let project = common::fixtures::copy_project(s.path());
    let gomod = fs::read_to_string(project.join("go.mod")).unwrap();
    fs::write(
        project.join("go.mod"),
        gomod.replacen("go 1.22\n", &format!("go 1.22\n\ntoolchain {NEW}\n"), 1),
    )
    .unwrap();
    let mut penv: Vec<(String, String)> = common::fixtures::fixture_env(&fixture_proxy);
    for (k, v) in &mut penv {
        if k == "GOPROXY" {
            *v = format!("{v},{}", toolchain_proxy());
        }
    }
    penv.push(("GOSUMDB".into(), "sum.golang.org".into()));
    let both = format!("oci:{}:both", s.join("both").display());
    let out = ocigo(
        &s.join("store-a"),
        &[
            "pack",
            project.to_str().unwrap(),
            "--with-toolchain",
            "--toolchain-delta-from",
            &base,
            "-o",
            &both,
        ],
        &common::go::env_refs(&penv),
    );
    assert_exit(&out, 0, "pack --with-toolchain --toolchain-delta-from");
    let (index, parts) = toolchain_parts(&s.join("both"), "both");
    assert_eq!(parts[0].1.format_version, format::FORMAT_VERSION_DELTA);
    let entry = index
        .manifests
        .iter()
        .find(|d| format::is_toolchain(d))
        .unwrap();
    assert_eq!(entry.digest.to_string(), t[0]["digest"].as_str().unwrap());
    let goroot2 = s.join("both-go");
    let out = common::ocigo::ocigo_offline(
        &s.join("store-d"),
        &[
            "pull",
            &both,
            "--gomodcache",
            s.join("both-mc").to_str().unwrap(),
            "--gopath",
            s.join("both-gopath").to_str().unwrap(),
            "--goroot",
            goroot2.to_str().unwrap(),
        ],
        &[],
    );
    assert_exit(
        &out,
        0,
        "one offline pull of the project and its delta toolchain",
    );
    let diff = common::ocigo::snapshot(&full_goroot).diff(&common::ocigo::snapshot(&goroot2));
    assert!(diff.is_empty(), "the delta form differs: {diff:?}");

    // A delta of a delta is refused: the base must be a full toolchain.
    let out = ocigo(
        &s.join("store-a"),
        &[
            "pack",
            "toolchain",
            PREV,
            "--platform",
            "linux/amd64",
            "--delta-from",
            &disk_ref,
            "-o",
            &format!("oci:{}:x", s.join("x").display()),
        ],
        &proxy_env(),
    );
    assert_exit(&out, 2, "--delta-from a delta");
    assert_mentions(
        &stderr(&out),
        &["itself a delta", "--delta-from"],
        "delta of a delta",
    );
}

/// What [`craft_delta`] spoils in an otherwise valid delta artifact.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Spoil {
    Nothing,
    BaseNotInManifest,
    BaseBlobWrong,
    SizeOffByOne,
    WrongBytes,
    HugeWindow,
    OutsidePlatform,
    Twice,
    NoBaseFile,
    NoContentSize,
    WrappingSum,
    BaseIsDir,
    BaseNotDir,
    /// The v2 config under the v1 config media type.
    V1MediaType,
    DeltaSymlink,
    DeltaHardlink,
    DeltaDir,
    DotDot,
    BadMode,
    MissingRecord,
    UnknownRecord,
    UnknownBaseKind,
    BaseTooBig,
    /// Not a spoil: a second base holding another bin/go, listed second
    /// in the delta layer's deltaFrom (and first among the bases).
    OverlappingBases,
}

const BASE_GO: &[u8] = b"#!/bin/sh\necho go1.26.7\n";

fn new_go() -> Vec<u8> {
    let mut v = BASE_GO.repeat(400);
    v.extend_from_slice(b"echo go1.26.8\n");
    v
}

fn base_go() -> Vec<u8> {
    BASE_GO.repeat(400)
}

fn frame(data: &[u8], base: Option<&[u8]>, window_log: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = match base {
        Some(b) => zstd::stream::Encoder::with_ref_prefix(&mut out, 9, b).unwrap(),
        None => zstd::stream::Encoder::new(&mut out, 9).unwrap(),
    };
    e.window_log(window_log).unwrap();
    e.include_checksum(true).unwrap();
    e.include_contentsize(true).unwrap();
    e.set_pledged_src_size(Some(data.len() as u64)).unwrap();
    e.write_all(data).unwrap();
    e.finish().unwrap();
    out
}

/// A frame of `data` against `base` with no content size in its header.
fn frame_without_size(data: &[u8], base: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = zstd::stream::Encoder::with_ref_prefix(&mut out, 9, base).unwrap();
    e.include_contentsize(false).unwrap();
    e.write_all(data).unwrap();
    e.finish().unwrap();
    out
}

/// A frame of `data` against `base` (1 KiB window, content size), whose
/// header then claims a window of 2^`window_log` bytes.
fn frame_claiming_window(data: &[u8], base: &[u8], window_log: u32) -> Vec<u8> {
    let mut out = frame(data, Some(base), 10);
    // Magic, then the header descriptor: not single segment, so the
    // window descriptor follows (exponent = log - 10).
    assert_eq!(out[4] & 0x20, 0, "not single segment");
    out[5] = ((window_log - 10) as u8) << 3;
    out
}

fn delta_entry(b: &mut tar::Builder<Vec<u8>>, name: &str, size: u64, sha: &[u8], body: &[u8]) {
    let size = size.to_string();
    let hex = hex::encode(sha);
    b.append_pax_extensions([
        ("OCIGO.size", size.as_bytes()),
        ("OCIGO.sha256", hex.as_bytes()),
        ("OCIGO.base", &b"same"[..]),
    ])
    .unwrap();
    file(b, name, body, 0o755);
}

/// A go1.26.8 toolchain whose bin/go is a delta against a go1.26.7 base
/// layer, with one thing spoilt.
fn craft_delta(layout: &Path, spoil: Spoil) {
    use sha2::Digest as _;
    let l = Layout::open_or_create(layout).unwrap();
    let push = |media: &str, bytes: &[u8]| {
        let d = Descriptor::for_bytes(media, bytes);
        l.push_blob(&d, &mut &bytes[..]).unwrap();
        d
    };
    let full = |files: &[(&str, &[u8], u32)]| {
        let mut b = tar::Builder::new(Vec::new());
        for (n, data, mode) in files {
            file(&mut b, n, data, *mode);
        }
        let t = b.into_inner().unwrap();
        (zstd::encode_all(&t[..], 3).unwrap(), t.len() as u64)
    };
    // The base release's bin/go (under another name when the case wants none).
    let base_name = match spoil {
        Spoil::NoBaseFile => "bin/gofmt",
        // bin/go is a directory in the base.
        Spoil::BaseIsDir => "bin/go/x",
        _ => "bin/go",
    };
    let base_content = if spoil == Spoil::BaseTooBig {
        let mut v = base_go();
        v.resize((128 << 20) + 1, 0);
        v
    } else {
        base_go()
    };
    let base_files = [(base_name, &base_content[..], 0o755)];
    let (base_z, base_tar) = full(&base_files);
    let base_d = push(format::MEDIA_TYPE_LAYER, &base_z);
    let version = b"go1.26.8\n";
    let (own_z, own_tar) = full(&[("VERSION", version, 0o644)]);
    let own_d = push(format::MEDIA_TYPE_LAYER, &own_z);

    let go = new_go();
    let sha: Vec<u8> = sha2::Sha256::digest(&go).to_vec();
    let mut b = tar::Builder::new(Vec::new());
    let f = match spoil {
        Spoil::HugeWindow => frame_claiming_window(&go, &base_content, 28),
        Spoil::NoContentSize => frame_without_size(&go, &base_content),
        _ => frame(&go, Some(&base_content), 20),
    };
    let (mut files, mut bytes) = (1u64, go.len() as u64);
    match spoil {
        Spoil::SizeOffByOne => delta_entry(&mut b, "bin/go", go.len() as u64 + 1, &sha, &f),
        Spoil::WrongBytes => {
            let mut bad = sha.clone();
            bad[0] ^= 1;
            delta_entry(&mut b, "bin/go", go.len() as u64, &bad, &f)
        }
        // A name below the base's file bin/go.
        Spoil::BaseNotDir => delta_entry(&mut b, "bin/go/x", go.len() as u64, &sha, &f),
        Spoil::DeltaSymlink => raw(&mut b, "bin/go", tar::EntryType::Symlink, Some("gofmt")),
        Spoil::DeltaHardlink => raw(&mut b, "bin/go", tar::EntryType::Link, Some("bin/gofmt")),
        Spoil::DeltaDir => raw(&mut b, "bin/go", tar::EntryType::Directory, None),
        Spoil::DotDot => raw(&mut b, "bin/../go", tar::EntryType::Regular, None),
        Spoil::BadMode | Spoil::MissingRecord | Spoil::UnknownRecord | Spoil::UnknownBaseKind => {
            let size = go.len().to_string();
            let hex = hex::encode(&sha);
            let mut pax: Vec<(&str, &[u8])> = vec![("OCIGO.size", size.as_bytes())];
            if spoil != Spoil::MissingRecord {
                pax.push(("OCIGO.sha256", hex.as_bytes()));
            }
            pax.push((
                "OCIGO.base",
                if spoil == Spoil::UnknownBaseKind {
                    b"other"
                } else {
                    b"same"
                },
            ));
            if spoil == Spoil::UnknownRecord {
                pax.push(("OCIGO.transform", b"x86-bcj"));
            }
            b.append_pax_extensions(pax).unwrap();
            let mode = if spoil == Spoil::BadMode {
                0o4755
            } else {
                0o755
            };
            file(&mut b, "bin/go", &f, mode);
        }
        _ => delta_entry(&mut b, "bin/go", go.len() as u64, &sha, &f),
    }
    if spoil == Spoil::SizeOffByOne {
        bytes += 1;
    }
    if spoil == Spoil::OutsidePlatform || spoil == Spoil::Twice {
        let name = if spoil == Spoil::Twice {
            "bin/go"
        } else {
            "src/evil.go"
        };
        delta_entry(&mut b, name, go.len() as u64, &sha, &f);
        files += 1;
        bytes += go.len() as u64;
    }
    if spoil == Spoil::WrappingSum {
        // Declared sizes that add up to less than the first alone: the
        // second entry would decode unbounded if the sum wrapped.
        let huge = u64::MAX - go.len() as u64 + 1;
        delta_entry(&mut b, "bin/gofmt", huge, &sha, &f);
        files += 1;
    }
    let delta_tar = b.into_inner().unwrap();
    let delta_d = push(ocigo::toolchain::delta::MEDIA_TYPE_DELTA, &delta_tar);
    let info = |d: &Descriptor, name: &str, files: u64, bytes: u64, tar: u64| LayerInfo {
        digest: d.digest.clone(),
        name: name.into(),
        files,
        bytes,
        tar_bytes: tar,
        delta_from: vec![],
    };
    let mut delta_info = info(&delta_d, "bin", files, bytes, delta_tar.len() as u64);
    delta_info.delta_from = vec![if spoil == Spoil::BaseNotInManifest {
        own_d.digest.clone()
    } else {
        base_d.digest.clone()
    }];
    let mut bases = vec![info(&base_d, "bin", 1, base_content.len() as u64, base_tar)];
    let mut sizes = vec![own_d.size, delta_d.size, base_d.size];
    if spoil == Spoil::OverlappingBases {
        let other = b"#!/bin/sh\necho another base\n".repeat(50);
        let (z, t) = full(&[("bin/go", &other[..], 0o755)]);
        let d = push(format::MEDIA_TYPE_LAYER, &z);
        delta_info.delta_from.push(d.digest.clone());
        bases.insert(0, info(&d, "bin", 1, other.len() as u64, t));
        sizes.insert(2, d.size);
    }
    let config = ToolchainConfig {
        format_version: format::FORMAT_VERSION_DELTA,
        version: "go1.26.8".into(),
        os: "linux".into(),
        arch: "amd64".into(),
        time: None,
        source: SourceInfo {
            kind: "goroot".into(),
            name: "crafted".into(),
            sha256: None,
        },
        module: ModuleForm {
            version: "v0.0.1-go1.26.8.linux-amd64".into(),
            hash: "h1:x".into(),
            checked_with: None,
        },
        files: 1 + files,
        bytes: version.len() as u64 + bytes,
        layers: vec![
            info(&own_d, "version", 1, version.len() as u64, own_tar),
            delta_info,
        ],
        base_version: Some("go1.26.7".into()),
        bases,
    };
    let mut built = format::build_manifest(&config, &sizes);
    assert_eq!(
        built.config_descriptor.media_type,
        format::MEDIA_TYPE_CONFIG_V2
    );
    if spoil == Spoil::V1MediaType {
        let mut m: Manifest = serde_json::from_slice(&built.manifest).unwrap();
        m.config.media_type = format::MEDIA_TYPE_CONFIG.into();
        built.manifest = serde_json::to_vec(&m).unwrap();
        built.entry.digest = Descriptor::for_bytes("x", &built.manifest).digest;
        built.entry.size = built.manifest.len() as u64;
    }
    l.push_blob(&built.config_descriptor, &mut &built.config_bytes[..])
        .unwrap();
    l.push_manifest(ocigo::oci::MEDIA_TYPE_MANIFEST, &built.manifest, None)
        .unwrap();
    let index = format::build_index(vec![built.entry], format::ARTIFACT_TYPE_TOOLCHAIN);
    l.push_manifest(ocigo::oci::MEDIA_TYPE_INDEX, &index, Some("bad"))
        .unwrap();
    if spoil == Spoil::BaseBlobWrong {
        let mut other = base_z.clone();
        let n = other.len();
        other[n / 2] ^= 0xff;
        fs::write(layout.join("blobs/sha256").join(base_d.digest.hex()), other).unwrap();
    }
}

#[test]
fn a_combined_index_whose_toolchain_is_refused_installs_no_module() {
    use ocigo::oci::Repository as _;
    let s = Scratch::new();
    let fixture_proxy = s.join("fixture-proxy");
    common::fixtures::build_file_proxy(&fixture_proxy);
    let project = common::fixtures::copy_project(s.path());
    let env = common::fixtures::fixture_env(&fixture_proxy);
    let env_refs = common::go::env_refs(&env);
    let layout = s.join("layout");
    let out = ocigo(
        &s.join("store"),
        &[
            "pack",
            project.to_str().unwrap(),
            "-o",
            &format!("oci:{}:mods", layout.display()),
        ],
        &env_refs,
    );
    assert_exit(&out, 0, "pack the project");
    // A delta toolchain whose config names a base it does not list,
    // joined to the modules' index as `pack --with-toolchain` would.
    craft_delta(&layout, Spoil::BaseNotInManifest);
    let l = Layout::open_or_create(&layout).unwrap();
    let index_of = |tag: &str| -> serde_json::Value {
        let d = l.resolve(tag).unwrap();
        serde_json::from_slice(&l.fetch_manifest(&d).unwrap().bytes).unwrap()
    };
    let mut both = index_of("mods");
    let tc = index_of("bad")["manifests"].as_array().unwrap().clone();
    both["manifests"].as_array_mut().unwrap().extend(tc);
    l.push_manifest(
        ocigo::oci::MEDIA_TYPE_INDEX,
        &serde_json::to_vec(&both).unwrap(),
        Some("both"),
    )
    .unwrap();

    let mc = s.join("gomodcache");
    let out = ocigo(
        &s.join("store2"),
        &[
            "pull",
            &format!("oci:{}:both", layout.display()),
            "--gomodcache",
            mc.to_str().unwrap(),
            "--gopath",
            s.join("gopath").to_str().unwrap(),
        ],
        &[],
    );
    assert_exit(&out, 3, "a combined index with a refused toolchain");
    assert_mentions(&stderr(&out), &["not among its bases"], "combined");
    assert!(!mc.exists(), "modules were installed before the refusal");
    assert!(store_tags(&s.join("store2")).is_empty());
}

/// A go1.26.8 toolchain with `n` delta layers, each one plain frame (no
/// base file) of `size` zero bytes: what decoding them at once holds is
/// `n` windows of `size` bytes.
fn craft_big_deltas(layout: &Path, n: usize, size: usize) {
    use sha2::Digest as _;
    let l = Layout::open_or_create(layout).unwrap();
    let push = |media: &str, bytes: &[u8]| {
        let d = Descriptor::for_bytes(media, bytes);
        l.push_blob(&d, &mut &bytes[..]).unwrap();
        d
    };
    let full = |files: &[(&str, &[u8], u32)]| {
        let mut b = tar::Builder::new(Vec::new());
        for (n, data, mode) in files {
            file(&mut b, n, data, *mode);
        }
        let t = b.into_inner().unwrap();
        (zstd::encode_all(&t[..], 3).unwrap(), t.len() as u64)
    };
    let info = |d: &Descriptor, name: &str, files: u64, bytes: u64, tar: u64| LayerInfo {
        digest: d.digest.clone(),
        name: name.into(),
        files,
        bytes,
        tar_bytes: tar,
        delta_from: vec![],
    };
    let base = base_go();
    let (base_z, base_tar) = full(&[("bin/go", &base[..], 0o755)]);
    let base_d = push(format::MEDIA_TYPE_LAYER, &base_z);
    let version = b"go1.26.8\n";
    let go = new_go();
    let (own_z, own_tar) = full(&[("VERSION", version, 0o644), ("bin/go", &go, 0o755)]);
    let own_d = push(format::MEDIA_TYPE_LAYER, &own_z);
    let mut layers = vec![info(
        &own_d,
        "own",
        2,
        (version.len() + go.len()) as u64,
        own_tar,
    )];
    let mut sizes = vec![own_d.size];
    let zeros = vec![0u8; size];
    let sha = sha2::Sha256::digest(&zeros).to_vec();
    let f = frame(&zeros, None, 27);
    for k in 0..n {
        let mut b = tar::Builder::new(Vec::new());
        let size_s = size.to_string();
        let hex = hex::encode(&sha);
        b.append_pax_extensions([
            ("OCIGO.size", size_s.as_bytes()),
            ("OCIGO.sha256", hex.as_bytes()),
        ])
        .unwrap();
        file(&mut b, &format!("bin/zero{k}"), &f, 0o755);
        let t = b.into_inner().unwrap();
        let d = push(ocigo::toolchain::delta::MEDIA_TYPE_DELTA, &t);
        let mut i = info(&d, "bin", 1, size as u64, t.len() as u64);
        i.delta_from = vec![base_d.digest.clone()];
        layers.push(i);
        sizes.push(d.size);
    }
    sizes.push(base_d.size);
    let config = ToolchainConfig {
        format_version: format::FORMAT_VERSION_DELTA,
        version: "go1.26.8".into(),
        os: "linux".into(),
        arch: "amd64".into(),
        time: None,
        source: SourceInfo {
            kind: "goroot".into(),
            name: "crafted".into(),
            sha256: None,
        },
        module: ModuleForm {
            version: "v0.0.1-go1.26.8.linux-amd64".into(),
            hash: "h1:x".into(),
            checked_with: None,
        },
        files: layers.iter().map(|l| l.files).sum(),
        bytes: layers.iter().map(|l| l.bytes).sum(),
        layers,
        base_version: Some("go1.26.7".into()),
        bases: vec![info(&base_d, "bin", 1, base.len() as u64, base_tar)],
    };
    let built = format::build_manifest(&config, &sizes);
    l.push_blob(&built.config_descriptor, &mut &built.config_bytes[..])
        .unwrap();
    l.push_manifest(ocigo::oci::MEDIA_TYPE_MANIFEST, &built.manifest, None)
        .unwrap();
    let index = format::build_index(vec![built.entry], format::ARTIFACT_TYPE_TOOLCHAIN);
    l.push_manifest(ocigo::oci::MEDIA_TYPE_INDEX, &index, Some("big"))
        .unwrap();
}

#[test]
fn decoding_many_large_delta_files_at_once_stays_within_the_decode_budget() {
    // Four 100 MiB files, four workers: unbounded, four windows (400 MiB);
    // the budget (256 MiB) lets two decode at once.
    let s = Scratch::new();
    let layout = s.join("layout");
    craft_big_deltas(&layout, 4, 100 << 20);
    let goroot = s.join("go");
    let out = common::ocigo::ocigo_command(
        &["/usr/bin/time", "-f", "maxrss-kib=%M"],
        &s.join("store"),
        &[
            "pull",
            &format!("oci:{}:big", layout.display()),
            "--goroot",
            goroot.to_str().unwrap(),
            "--jobs",
            "4",
        ],
        &[],
    )
    .output()
    .unwrap();
    assert_exit(&out, 0, "pull of four large delta files");
    assert_eq!(
        fs::metadata(goroot.join("bin/zero3")).unwrap().len(),
        100 << 20
    );
    let err = stderr(&out);
    let kib: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("maxrss-kib="))
        .unwrap_or_else(|| panic!("no maxrss in {err}"))
        .trim()
        .parse()
        .unwrap();
    let mib = kib / 1024;
    eprintln!("peak RSS of the pull: {mib} MiB");
    assert!(
        mib < 320,
        "peak RSS {mib} MiB: more than two 100 MiB windows at once"
    );
}

/// The references a store has tagged (its index.json), with their digests.
fn store_tags(store: &Path) -> BTreeMap<String, String> {
    let Ok(bytes) = fs::read(store.join("index.json")) else {
        return BTreeMap::new();
    };
    let index: Index = serde_json::from_slice(&bytes).unwrap();
    index
        .manifests
        .iter()
        .map(|d| {
            let name = d
                .annotations
                .get("org.opencontainers.image.ref.name")
                .cloned()
                .unwrap_or_default();
            (name, d.digest.to_string())
        })
        .collect()
}

#[test]
fn hostile_delta_layers_are_refused_with_nothing_written() {
    // The unspoilt artifact installs: each refusal below is its one change.
    let s = Scratch::new();
    let layout = s.join("layout");
    craft_delta(&layout, Spoil::Nothing);
    let goroot = s.join("target/go");
    let out = ocigo(
        &s.join("store"),
        &[
            "pull",
            &format!("oci:{}:bad", layout.display()),
            "--goroot",
            goroot.to_str().unwrap(),
        ],
        &[],
    );
    assert_exit(&out, 0, "the unspoilt delta artifact");
    assert_eq!(fs::read(goroot.join("bin/go")).unwrap(), new_go());
    assert_eq!(
        store_tags(&s.join("store")).len(),
        1,
        "an installed toolchain is tagged in the store"
    );
    assert_eq!(
        entries(&s.join("target")),
        BTreeSet::from(["go".to_string()]),
        "the scratch directory of the base is gone"
    );

    // What a crashed install left beside the target is removed when its
    // process is gone; a live owner's scratch and a GOROOT being replaced
    // (.ocigo-goroot-old-*) are left alone.
    let dead = {
        let mut c = Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    };
    let live = std::process::id();
    let s3 = Scratch::new();
    let parent = s3.dir("target");
    let stale = [
        format!(".ocigo-goroot-tmp-{dead}-abc"),
        format!(".ocigo-goroot-base-{dead}-abc"),
    ];
    let kept = [
        format!(".ocigo-goroot-tmp-{live}-abc"),
        format!(".ocigo-goroot-old-{dead}-abc"),
    ];
    for d in stale.iter().chain(&kept) {
        fs::create_dir_all(parent.join(d).join("bin")).unwrap();
        fs::write(parent.join(d).join("bin/go"), b"x").unwrap();
    }
    let out = ocigo(
        &s3.join("store"),
        &[
            "pull",
            &format!("oci:{}:bad", layout.display()),
            "--goroot",
            parent.join("go").to_str().unwrap(),
        ],
        &[],
    );
    assert_exit(&out, 0, "install beside stale scratch");
    let mut want: BTreeSet<String> = kept.iter().cloned().collect();
    want.insert("go".into());
    assert_eq!(
        entries(&parent),
        want,
        "stale scratch removed, the rest kept"
    );

    // Two bases holding bin/go: the delta layer's own deltaFrom order
    // picks the base, the other base's file is not mixed in.
    let s2 = Scratch::new();
    craft_delta(&s2.join("layout"), Spoil::OverlappingBases);
    let goroot2 = s2.join("go");
    let out = ocigo(
        &s2.join("store"),
        &[
            "pull",
            &format!("oci:{}:bad", s2.join("layout").display()),
            "--goroot",
            goroot2.to_str().unwrap(),
        ],
        &[],
    );
    assert_exit(&out, 0, "two bases holding the same name");
    assert_eq!(fs::read(goroot2.join("bin/go")).unwrap(), new_go());

    let cases = [
        (Spoil::BaseNotInManifest, "not among its bases"),
        (Spoil::BaseBlobWrong, "digest"),
        (Spoil::SizeOffByOne, "its frame declares"),
        (Spoil::WrongBytes, "SHA-256"),
        (Spoil::HugeWindow, "memory"),
        (
            Spoil::OutsidePlatform,
            "only files under bin/ and pkg/tool/",
        ),
        (Spoil::Twice, "twice"),
        (Spoil::NoBaseFile, "no regular file of that name"),
        (Spoil::BaseIsDir, "no regular file of that name"),
        (Spoil::V1MediaType, "format version 2 under media type"),
        (Spoil::DeltaSymlink, "a symbolic link, not a regular file"),
        (Spoil::DeltaHardlink, "a hard link, not a regular file"),
        (Spoil::DeltaDir, "a directory, not a regular file"),
        (Spoil::DotDot, "path element \"..\" is not allowed"),
        (Spoil::BadMode, "mode 4755, not 0644 or 0755"),
        (Spoil::MissingRecord, "lacks its decoded size or SHA-256"),
        (
            Spoil::UnknownRecord,
            "\"OCIGO.transform\" this ocigo does not know",
        ),
        (Spoil::UnknownBaseKind, "unknown base kind \"other\""),
        (Spoil::BaseTooBig, "over the 134217728-byte cap"),
        (Spoil::BaseNotDir, "no regular file of that name"),
        (Spoil::NoContentSize, "does not declare its content size"),
        (Spoil::WrappingSum, "more than its config declares"),
    ];
    for (spoil, want) in cases {
        let name = format!("{spoil:?}");
        let s = Scratch::new();
        let layout = s.join("layout");
        craft_delta(&layout, spoil);
        let reference = format!("oci:{}:bad", layout.display());
        let parent = s.dir("target");
        let goroot = parent.join("go");
        let store = s.join("store");
        let tags = store_tags(&store);
        let out = ocigo(
            &store,
            &["pull", &reference, "--goroot", goroot.to_str().unwrap()],
            &[],
        );
        assert_exit(&out, 3, &name);
        assert_mentions(&stderr(&out), &[want], &name);
        assert_eq!(store_tags(&store), tags, "{name}: the store's tags changed");
        assert!(
            entries(&parent).is_empty(),
            "{name}: left {:?}",
            entries(&parent)
        );
        // The module form: nothing in GOMODCACHE, no scratch in the store.
        let mc = s.join("gomodcache");
        let out = ocigo(
            &store,
            &[
                "pull",
                &reference,
                "--gomodcache",
                mc.to_str().unwrap(),
                "--gopath",
                s.join("gopath").to_str().unwrap(),
            ],
            &[],
        );
        assert_exit(&out, 3, &format!("{name} --gomodcache"));
        assert_mentions(&stderr(&out), &[want], &name);
        assert!(!mc.exists(), "{name}: GOMODCACHE written");
        assert_eq!(
            store_tags(&store),
            tags,
            "{name} --gomodcache: the store's tags changed"
        );
        assert!(
            !entries(&store).iter().any(|e| e.starts_with(".ocigo-")),
            "{name}: scratch left in the store: {:?}",
            entries(&store)
        );
        let scratch = store.join("tmp");
        assert!(
            !scratch.exists() || entries(&scratch).is_empty(),
            "{name}: scratch left in the store: {:?}",
            entries(&scratch)
        );
    }
}
