//! Hostile file systems: links, FIFOs and devices planted where ocigo
//! reads or writes (in GOMODCACHE and in OCI layouts), files too big to
//! read, names longer than the file system takes, and a bundle with
//! thousands of versions of one module.
//!
//! Each refusal is checked for its exit code and message, and for leaving
//! GOMODCACHE, the local content store and a watched directory outside
//! both exactly as they were (paths, contents, modes, link targets). Every
//! run that could hang (a FIFO opened for reading) is bounded by a timeout,
//! so a regression fails instead of hanging.
//!
//! Real parts: the ocigo binary, bundles built in real OCI layouts with
//! ocigo's own artifact code, the real go command (offline) reading what
//! the many-versions pull wrote, and strace counting directory reads.

mod common;

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::fixtures::{escape_path, semver_cmp};
use common::go::go_offline;
use common::ocigo::{
    Scratch, assert_exit, assert_mentions, assert_unchanged, json_ok, module_entry, ocigo,
    ocigo_command, push_bundle, snapshot, stderr,
};
use ocigo::oci::Repository;
use ocigo::store::Layout;

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// How long any one ocigo run may take here before it counts as hung.
const BOUND: Duration = Duration::from_secs(60);

/// Runs `ocigo <args>` with store `store`, killing it after `limit`; a run
/// that had to be killed fails the test (a hang is the bug).
fn ocigo_bounded(store: &Path, args: &[&str], env: &[(&str, &str)], limit: Duration) -> Output {
    let mut cmd = ocigo_command(&[], store, args, env);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn ocigo");
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("collect output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("collect output");
            panic!(
                "ocigo {} did not finish in {limit:?} (hung?)\nstderr:\n{}",
                args.join(" "),
                stderr(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn mkfifo(p: &Path) {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o644) },
        0,
        "mkfifo {}",
        p.display()
    );
}

// ---------------------------------------------------------------- bundles

/// One module for a bundle: its source files.
struct Spec {
    path: String,
    version: String,
    files: Vec<(String, Vec<u8>)>,
}

fn spec(path: &str, version: &str, extra: &[(&str, &[u8])]) -> Spec {
    let mut files = vec![(
        "go.mod".to_string(),
        format!("module {path}\n\ngo 1.22\n").into_bytes(),
    )];
    files.extend(extra.iter().map(|(n, d)| (n.to_string(), d.to_vec())));
    Spec {
        path: path.into(),
        version: version.into(),
        files,
    }
}

/// Builds a self-consistent bundle of `specs` (each with a zip layer) in a
/// new OCI layout at `disk`, tagged v1, and returns `oci:<disk>:v1`.
fn bundle(work: &Path, disk: &Path, specs: &[Spec]) -> String {
    bundle_with_bad_h1(work, disk, specs, None)
}

/// [`bundle`], with the h1 of the module at `bad` (if any) not its zip's.
fn bundle_with_bad_h1(work: &Path, disk: &Path, specs: &[Spec], bad: Option<usize>) -> String {
    let layout = Layout::open_or_create(disk).unwrap();
    let mut modules = Vec::with_capacity(specs.len());
    for (i, sp) in specs.iter().enumerate() {
        // Built in memory: some names here are too long for any file system.
        let zip_file = work.join(format!("zip-{i}.zip"));
        fs::create_dir_all(work).unwrap();
        fs::write(&zip_file, zip_of(sp)).unwrap();
        let go_mod = String::from_utf8(sp.files[0].1.clone()).unwrap();
        let mut entry = module_entry(&layout, &zip_file, &sp.path, &sp.version, go_mod);
        if bad == Some(i) {
            entry.zip.as_mut().expect("a zip layer").hash = format!("h1:{}=", "A".repeat(43));
        }
        modules.push(entry);
        fs::remove_file(&zip_file).unwrap();
    }
    push_bundle(&layout, disk, modules)
}

/// The module zip of `sp`: every file under `path@version/`.
fn zip_of(sp: &Spec) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default());
    for (name, data) in &sp.files {
        w.start_file(format!("{}@{}/{name}", sp.path, sp.version), opts)
            .unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

const HOSTILE: &str = "example.com/hostile";
const GOOD: &str = "example.com/aaa/good";

/// A bundle of `example.com/aaa/good` (sorted first, so it would be written
/// first) and `example.com/hostile v1.0.0`.
fn two_module_bundle(work: &Path) -> String {
    bundle(
        work,
        &work.join("disk"),
        &[
            spec(GOOD, "v1.0.0", &[("good.go", b"package good\n")]),
            spec(
                HOSTILE,
                "v1.0.0",
                &[("hostile.go", b"package hostile\n"), ("sub/x.txt", b"x\n")],
            ),
        ],
    )
}

/// A directory outside GOMODCACHE and the store that a planted link points
/// into: a file and a directory with modes ocigo has no business changing.
fn outside_dir(sc: &Scratch) -> PathBuf {
    let outside = sc.dir("outside");
    fs::create_dir(outside.join("d")).unwrap();
    fs::write(outside.join("f"), b"outside file\n").unwrap();
    fs::write(outside.join("d/g"), b"outside file in a directory\n").unwrap();
    fs::set_permissions(outside.join("f"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::set_permissions(outside.join("d/g"), fs::Permissions::from_mode(0o400)).unwrap();
    fs::set_permissions(outside.join("d"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o700)).unwrap();
    outside
}

/// What gets planted.
#[derive(Debug, Clone, Copy)]
enum Shape {
    LinkToDirOutside,
    LinkToFileOutside,
    Fifo,
    DanglingLink,
}

const SHAPES: [Shape; 4] = [
    Shape::LinkToDirOutside,
    Shape::LinkToFileOutside,
    Shape::Fifo,
    Shape::DanglingLink,
];

impl Shape {
    fn plant(self, at: &Path, outside: &Path) {
        fs::create_dir_all(at.parent().unwrap()).unwrap();
        match self {
            Shape::LinkToDirOutside => symlink(outside.join("d"), at).unwrap(),
            Shape::LinkToFileOutside => symlink(outside.join("f"), at).unwrap(),
            Shape::Fifo => mkfifo(at),
            Shape::DanglingLink => symlink(outside.join("created-through-the-link"), at).unwrap(),
        }
    }

    fn word(self) -> &'static str {
        match self {
            Shape::Fifo => "is a FIFO",
            _ => "is a symbolic link",
        }
    }
}

/// A fresh store that already holds every blob of `src` (filled by a pull
/// into a throwaway cache), so a later pull fetches nothing and the store
/// must come out unchanged.
fn filled_store(sc: &Scratch, src: &str, name: &str) -> PathBuf {
    let store = sc.join(&format!("store-{name}"));
    let out = ocigo_bounded(
        &store,
        &[
            "pull",
            "--json",
            src,
            "--gomodcache",
            &s(&sc.join(&format!("throwaway-{name}"))),
        ],
        &[],
        BOUND,
    );
    json_ok(&out, "filling the store");
    store
}

// ---------------------------------------------------------------- 1. links in GOMODCACHE

/// Every place below GOMODCACHE that a pull of example.com/hostile@v1.0.0
/// writes, removes, locks or reads, relative to GOMODCACHE.
fn places() -> Vec<(&'static str, String)> {
    let at_v = format!("cache/download/{HOSTILE}/@v");
    vec![
        ("leftover tmp tree", format!("{HOSTILE}@v1.0.0.tmp-1234")),
        (
            "leftover ocigo tmp file",
            format!("{at_v}/.v1.0.0.zip.ocigo-tmp-abcdef"),
        ),
        ("module tree", format!("{HOSTILE}@v1.0.0")),
        (
            "inside an incomplete module tree",
            format!("{HOSTILE}@v1.0.0/sub"),
        ),
        ("list", format!("{at_v}/list")),
        (".lock", format!("{at_v}/v1.0.0.lock")),
        ("download directory", at_v.clone()),
        (
            "download directory parent",
            "cache/download/example.com".into(),
        ),
        ("tree parent", "example.com".into()),
        (".mod", format!("{at_v}/v1.0.0.mod")),
        (".info", format!("{at_v}/v1.0.0.info")),
        (".zip", format!("{at_v}/v1.0.0.zip")),
        (".ziphash", format!("{at_v}/v1.0.0.ziphash")),
        (".partial", format!("{at_v}/v1.0.0.partial")),
    ]
}

/// With a link (to a directory or file outside, or dangling) or a FIFO
/// planted at any path the pull would touch, the pull is refused with exit
/// 5 naming the path, before anything is written: GOMODCACHE (the good
/// module beside the hostile one included), the store and the directory
/// outside are unchanged.
#[test]
fn links_and_fifos_in_gomodcache_are_conflicts_and_nothing_is_written() {
    let sc = Scratch::new();
    let src = two_module_bundle(&sc.join("bundle"));
    let store = filled_store(&sc, &src, "main");
    let mut n = 0;
    for (what, rel) in places() {
        for shape in SHAPES {
            n += 1;
            let case = format!("{shape:?} at the {what} ({rel})");
            let outside = outside_dir(&sc);
            let modcache = sc.dir(&format!("modcache-{n}"));
            // An unrelated complete-looking file, so "unchanged" has content.
            fs::create_dir_all(modcache.join("cache/download")).unwrap();
            fs::write(modcache.join("cache/download/keep"), b"keep\n").unwrap();
            let planted = modcache.join(&rel);
            shape.plant(&planted, &outside);
            let before = (snapshot(&modcache), snapshot(&outside), snapshot(&store));

            let out = ocigo_bounded(
                &store,
                &["pull", &src, "--gomodcache", &s(&modcache)],
                &[],
                BOUND,
            );
            assert_exit(&out, 5, &case);
            assert_mentions(&stderr(&out), &[&s(&planted), shape.word()], &case);
            assert_unchanged(&before.0, &modcache, &format!("GOMODCACHE, {case}"));
            assert_unchanged(&before.1, &outside, &format!("outside, {case}"));
            assert_unchanged(&before.2, &store, &format!("store, {case}"));

            common::ocigo::make_writable(&modcache);
            fs::remove_dir_all(&modcache).unwrap();
            fs::set_permissions(&outside, fs::Permissions::from_mode(0o700)).unwrap();
            fs::set_permissions(outside.join("d"), fs::Permissions::from_mode(0o750)).unwrap();
            fs::remove_dir_all(&outside).unwrap();
        }
    }
}

/// GOMODCACHE itself may be a link (common: a cache on another disk); what
/// is inside it is what ocigo checks. A leftover tree with a link inside
/// it that is not in the way (an unrelated complete module) is left alone.
#[test]
fn gomodcache_itself_may_be_a_link() {
    let sc = Scratch::new();
    let src = two_module_bundle(&sc.join("bundle"));
    let real = sc.dir("real-modcache");
    let link = sc.join("modcache-link");
    symlink(&real, &link).unwrap();
    let out = ocigo_bounded(
        &sc.join("store"),
        &["pull", "--json", &src, "--gomodcache", &s(&link)],
        &[],
        BOUND,
    );
    let report = json_ok(&out, "pull into a linked GOMODCACHE");
    assert_eq!(report["installed"], 2, "{report:#}");
    assert!(link.is_symlink());
    assert!(
        real.join(format!("cache/download/{HOSTILE}/@v/v1.0.0.ziphash"))
            .is_file()
    );
}

// ---------------------------------------------------------------- 2. layouts

/// A pull from a layout with a FIFO, a link or a huge sparse file where a
/// regular file belongs must end promptly with the right exit code, say
/// which file, create no GOMODCACHE, and leave the store and the directory
/// outside unchanged.
#[test]
fn special_files_in_a_layout_are_refused_without_hanging() {
    let sc = Scratch::new();
    let good = sc.join("good");
    let src = two_module_bundle(&good);
    let good_disk = good.join("disk");
    let layout = Layout::open(&good_disk).unwrap();
    let top = layout.resolve("v1").unwrap();
    // Format v2: the tag names an index; the first part with layers is the
    // manifest whose layer is planted.
    let fetched = layout.fetch_manifest(&top).unwrap();
    let manifest = if fetched.is_index() {
        fetched
            .index()
            .unwrap()
            .manifests
            .iter()
            .map(|d| layout.fetch_manifest(d).unwrap().manifest().unwrap())
            .find(|m| !m.layers.is_empty())
            .expect("a part with layers")
    } else {
        fetched.manifest().unwrap()
    };
    let layer = manifest.layers[0].digest.clone();
    let blob = |disk: &Path, d: &ocigo::oci::Digest| disk.join("blobs/sha256").join(d.hex());
    let _ = src;

    type Plant = Box<dyn Fn(&Path, &Path) -> PathBuf>;
    let cases: Vec<(&str, Plant, i32, &str)> = vec![
        (
            "a layer blob that is a FIFO",
            Box::new(move |disk: &Path, _: &Path| {
                let p = blob(disk, &layer);
                fs::remove_file(&p).unwrap();
                mkfifo(&p);
                p
            }),
            5,
            "is a FIFO",
        ),
        (
            "a layer blob linked to a file outside with the right bytes",
            Box::new({
                let layer = manifest.layers[0].digest.clone();
                move |disk: &Path, outside: &Path| {
                    let p = blob(disk, &layer);
                    let copy = outside.join("copy");
                    fs::copy(&p, &copy).unwrap();
                    fs::remove_file(&p).unwrap();
                    symlink(&copy, &p).unwrap();
                    p
                }
            }),
            5,
            "is a symbolic link",
        ),
        (
            "the manifest blob that is a FIFO",
            Box::new({
                let d = top.digest.clone();
                move |disk: &Path, _: &Path| {
                    let p = blob(disk, &d);
                    fs::remove_file(&p).unwrap();
                    mkfifo(&p);
                    p
                }
            }),
            5,
            "is a FIFO",
        ),
        (
            "index.json that is a FIFO",
            Box::new(|disk: &Path, _: &Path| {
                let p = disk.join("index.json");
                fs::remove_file(&p).unwrap();
                mkfifo(&p);
                p
            }),
            5,
            "is a FIFO",
        ),
        (
            "index.json linked to /dev/zero",
            Box::new(|disk: &Path, _: &Path| {
                let p = disk.join("index.json");
                fs::remove_file(&p).unwrap();
                symlink("/dev/zero", &p).unwrap();
                p
            }),
            5,
            "is a symbolic link",
        ),
        (
            "oci-layout linked to /dev/zero",
            Box::new(|disk: &Path, _: &Path| {
                let p = disk.join("oci-layout");
                fs::remove_file(&p).unwrap();
                symlink("/dev/zero", &p).unwrap();
                p
            }),
            5,
            "is a symbolic link",
        ),
        (
            "a huge sparse index.json",
            Box::new(|disk: &Path, _: &Path| {
                let p = disk.join("index.json");
                let f = fs::OpenOptions::new().write(true).open(&p).unwrap();
                f.set_len(64 << 30).unwrap();
                p
            }),
            3,
            "over the 8388608-byte limit",
        ),
        (
            "a huge sparse oci-layout",
            Box::new(|disk: &Path, _: &Path| {
                let p = disk.join("oci-layout");
                let f = fs::OpenOptions::new().write(true).open(&p).unwrap();
                f.set_len(64 << 30).unwrap();
                p
            }),
            3,
            "over the 65536-byte limit",
        ),
        (
            "blobs/sha256 linked to a copy outside",
            Box::new(|disk: &Path, outside: &Path| {
                let p = disk.join("blobs/sha256");
                common::fixtures::copy_tree(&p, &outside.join("blobs"));
                fs::remove_dir_all(&p).unwrap();
                symlink(outside.join("blobs"), &p).unwrap();
                p
            }),
            5,
            "is a symbolic link",
        ),
        (
            "index.json that is a directory",
            Box::new(|disk: &Path, _: &Path| {
                let p = disk.join("index.json");
                fs::remove_file(&p).unwrap();
                fs::create_dir(&p).unwrap();
                p
            }),
            5,
            "is a directory",
        ),
    ];
    for (n, (case, plant, code, word)) in cases.into_iter().enumerate() {
        let outside = outside_dir(&sc);
        let disk = sc.join(&format!("disk-{n}"));
        common::fixtures::copy_tree(&good_disk, &disk);
        let planted = plant(&disk, &outside);
        // An empty store: a layer must be read from the layout.
        let store = sc.join(&format!("store-{n}"));
        let modcache = sc.join(&format!("no-modcache-{n}/modcache"));
        let before_outside = snapshot(&outside);
        let src = format!("oci:{}:v1", s(&disk));
        let out = ocigo_bounded(
            &store,
            &["pull", &src, "--gomodcache", &s(&modcache)],
            &[],
            BOUND,
        );
        assert_exit(&out, code, case);
        assert_mentions(&stderr(&out), &[&s(&planted), word], case);
        assert!(
            !sc.join(&format!("no-modcache-{n}")).exists(),
            "{case}: a refused pull created GOMODCACHE"
        );
        assert_unchanged(&before_outside, &outside, &format!("outside, {case}"));
        // Nothing of the bad file reached the store, not even a temporary.
        let stored = snapshot(&store);
        for f in stored.files() {
            assert!(
                !f.contains(".tmp-"),
                "{case}: temporary file {f} left in the store"
            );
        }
        if planted.starts_with(disk.join("blobs")) {
            let name = planted.file_name().unwrap().to_string_lossy().to_string();
            assert!(
                !stored.0.contains_key(&format!("/blobs/sha256/{name}")),
                "{case}: the bad blob is in the store"
            );
        }
        fs::set_permissions(&outside, fs::Permissions::from_mode(0o700)).unwrap();
        fs::set_permissions(outside.join("d"), fs::Permissions::from_mode(0o750)).unwrap();
        fs::remove_dir_all(&outside).unwrap();
    }
}

/// A signature whose payload blob is a FIFO: verification ends promptly,
/// rejecting that signature and saying why.
#[test]
fn a_fifo_signature_payload_does_not_hang_verification() {
    let sc = Scratch::new();
    let src = two_module_bundle(&sc.join("bundle"));
    let disk = sc.join("bundle/disk");
    let store = sc.join("store");
    let prefix = sc.join("key");
    let env = [("COSIGN_PASSWORD", "pw")];
    let out = ocigo_bounded(
        &store,
        &["key", "generate", "--output-prefix", &s(&prefix)],
        &env,
        BOUND,
    );
    assert_exit(&out, 0, "key generate");
    let key = s(&prefix.with_extension("key"));
    let public = s(&prefix.with_extension("pub"));
    let out = ocigo_bounded(&store, &["sign", "--key", &key, &src], &env, BOUND);
    assert_exit(&out, 0, "sign");
    let out = ocigo_bounded(&store, &["verify", "--key", &public, &src], &env, BOUND);
    assert_exit(&out, 0, "verify before the payload is replaced");

    // The payload is the one simple-signing layer of the signature manifest.
    let layout = Layout::open(&disk).unwrap();
    let top = layout.resolve("v1").unwrap();
    let sig_tag = format!("sha256-{}.sig", top.digest.hex());
    let sig = layout.resolve(&sig_tag).unwrap();
    let payload = layout
        .fetch_manifest(&sig)
        .unwrap()
        .manifest()
        .unwrap()
        .layers[0]
        .digest
        .clone();
    let p = disk.join("blobs/sha256").join(payload.hex());
    fs::remove_file(&p).unwrap();
    mkfifo(&p);
    let out = ocigo_bounded(&store, &["verify", "--key", &public, &src], &env, BOUND);
    assert_exit(&out, 3, "verify with a FIFO payload");
    assert_mentions(
        &stderr(&out),
        &[&s(&p), "is a FIFO"],
        "verify with a FIFO payload",
    );
}

// ---------------------------------------------------------------- 4. names

/// Names the file system cannot hold (an element, a version, a file in the
/// zip over 255 bytes with ocigo's temporary suffix; a path over 4096
/// bytes) are refused before the first write with exit 3: the good module
/// sorted first is not written, an existing GOMODCACHE is unchanged and a
/// missing one is not created.
#[test]
fn names_too_long_for_the_file_system_are_refused_before_writing() {
    let sc = Scratch::new();
    let long_elem = format!("example.com/{}", "e".repeat(240));
    let long_version = format!("v1.0.0-{}", "r".repeat(230));
    let long_file = format!("{}.go", "f".repeat(253));
    let deep_file = format!("{}/x.go", vec!["d".repeat(200); 21].join("/"));
    let cases: Vec<(&str, Spec, &str)> = vec![
        (
            "a 240-byte path element",
            spec(&long_elem, "v1.0.0", &[("x.go", b"package x\n")]),
            "over the 255-byte limit",
        ),
        (
            "a 237-byte version",
            spec(HOSTILE, &long_version, &[("x.go", b"package x\n")]),
            "over the 255-byte limit",
        ),
        (
            "a 256-byte file name in the zip",
            spec(HOSTILE, "v1.0.0", &[(&long_file, b"package x\n")]),
            "over the 255-byte limit",
        ),
        (
            "a 4,200-byte file path in the zip",
            spec(HOSTILE, "v1.0.0", &[(&deep_file, b"package x\n")]),
            "over the 4096-byte path limit",
        ),
    ];
    for (n, (case, evil, why)) in cases.into_iter().enumerate() {
        let work = sc.join(&format!("bundle-{n}"));
        let src = bundle(
            &work,
            &work.join("disk"),
            &[
                spec(GOOD, "v1.0.0", &[("good.go", b"package good\n")]),
                evil,
            ],
        );
        let store = sc.join(&format!("store-names-{n}"));
        // An existing GOMODCACHE with a module in it, and a missing one.
        let existing = sc.dir(&format!("modcache-{n}"));
        fs::create_dir_all(existing.join("cache/download/example.com/other/@v")).unwrap();
        fs::write(
            existing.join("cache/download/example.com/other/@v/list"),
            b"v1.0.0\n",
        )
        .unwrap();
        let missing = sc.join(&format!("missing-{n}/modcache"));
        for modcache in [&existing, &missing] {
            let before = snapshot(modcache);
            let out = ocigo_bounded(
                &store,
                &["pull", &src, "--gomodcache", &s(modcache)],
                &[],
                BOUND,
            );
            assert_exit(&out, 3, case);
            assert_mentions(&stderr(&out), &[why, "module "], case);
            assert_unchanged(&before, modcache, case);
        }
        assert!(
            !sc.join(&format!("missing-{n}")).exists(),
            "{case}: a refused pull created GOMODCACHE"
        );
    }
}

// ---------------------------------------------------------------- 7. many versions

/// Runs a pull under strace and returns (pull output, strace log).
fn strace_pull(sc: &Scratch, store: &Path, src: &str, modcache: &Path) -> (Output, String) {
    let log = sc.join("strace.log");
    let _ = fs::remove_file(&log);
    let strace = [
        "strace",
        "-f",
        "-qq",
        "-e",
        "trace=openat,open",
        "-e",
        "signal=none",
        "-o",
        log.to_str().unwrap(),
        "--",
    ];
    let out = ocigo_command(
        &strace,
        store,
        &["pull", "--json", src, "--gomodcache", &s(modcache)],
        &[],
    )
    .output()
    .expect("run strace ocigo pull");
    (out, fs::read_to_string(&log).unwrap())
}

/// A bundle with thousands of versions of one module: the pull reads the
/// module's `@v` directory and opens its `list` a bounded number of times
/// (not once per version, which made the pull quadratic), writes a `list`
/// the go command reads back, and leaves the go command's modes.
#[test]
fn many_versions_of_one_module_install_in_linear_time() {
    assert!(
        Path::new("/usr/bin/strace").exists(),
        "this test needs strace: apt-get install -y strace"
    );
    const N: usize = 2500;
    let sc = Scratch::new();
    let work = sc.join("bundle");
    let specs: Vec<Spec> = (0..N)
        .map(|i| {
            spec(
                "example.com/many",
                &format!("v1.{}.{}", i / 100, i % 100),
                &[("many.go", b"package many\n")],
            )
        })
        .collect();
    let src = bundle(&work, &work.join("disk"), &specs);
    let store = sc.join("store");
    let modcache = sc.join("modcache");

    let started = Instant::now();
    let (out, log) = strace_pull(&sc, &store, &src, &modcache);
    let report = json_ok(&out, "pull of many versions");
    eprintln!("pull of {N} versions under strace: {:?}", started.elapsed());
    assert_eq!(report["installed"], N as u64, "{report:#}");

    let at_v = modcache.join("cache/download/example.com/many/@v");
    let dir_reads = log
        .lines()
        .filter(|l| l.contains(&format!("\"{}\"", s(&at_v))) && l.contains("O_DIRECTORY"))
        .count();
    let list_opens = log
        .lines()
        .filter(|l| l.contains(&format!("\"{}/list\"", s(&at_v))))
        .count();
    assert!(
        dir_reads <= 3,
        "the @v directory was read {dir_reads} times for {N} versions"
    );
    // Pull installs a bundle in batches of about 2,000 module versions
    // (format v2, memory flat in bundle size): `list` is opened twice per
    // batch (update, then the final check), never once per version.
    let batches = N.div_ceil(2048);
    assert!(
        list_opens <= 2 * batches + 1,
        "list was opened {list_opens} times for {N} versions in {batches} install batches"
    );

    // `list`: every version, semver-sorted, as the go command reads it.
    let mut want: Vec<String> = specs.iter().map(|sp| sp.version.clone()).collect();
    want.sort_by(|a, b| semver_cmp(a, b));
    let list = fs::read_to_string(at_v.join("list")).unwrap();
    assert_eq!(list.lines().collect::<Vec<_>>(), want);
    let proxy = format!("file://{}", s(&modcache.join("cache/download")));
    let out = go_offline(
        &sc.dir("empty"),
        &["list", "-m", "-versions", "example.com/many"],
        &[
            ("GOPROXY", proxy.as_str()),
            ("GOFLAGS", "-mod=mod"),
            ("GONOSUMDB", "example.com"),
            ("GOMODCACHE", &s(&sc.join("other-modcache"))),
            ("GO111MODULE", "on"),
        ],
    );
    common::go::assert_success(&out, "go list -m -versions from the cache");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(listed.split_whitespace().count(), N + 1, "{listed}");

    // Modes: download files 0644, tree files 0444, tree directories 0555;
    // the store's files 0644.
    let mode = |p: &Path| fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&at_v.join("v1.0.0.zip")), 0o644);
    assert_eq!(mode(&at_v.join("v1.0.0.ziphash")), 0o644);
    assert_eq!(mode(&at_v.join("list")), 0o644);
    let tree = modcache.join(format!("{}@v1.0.0", escape_path("example.com/many")));
    assert_eq!(mode(&tree), 0o555);
    assert_eq!(mode(&tree.join("many.go")), 0o444);
    for name in ["oci-layout", "index.json"] {
        assert_eq!(mode(&store.join(name)), 0o644, "store {name}");
    }
    for f in snapshot(&store.join("blobs")).files() {
        assert_eq!(mode(&store.join("blobs").join(&f[1..])), 0o644, "blob {f}");
    }

    // A second pull finds everything and reads no directory per version.
    let (out, log) = strace_pull(&sc, &store, &src, &modcache);
    let report = json_ok(&out, "second pull of many versions");
    assert_eq!(report["already_present"], N as u64, "{report:#}");
    let dir_reads = log
        .lines()
        .filter(|l| l.contains(&format!("\"{}\"", s(&at_v))) && l.contains("O_DIRECTORY"))
        .count();
    assert!(dir_reads <= 1, "second pull: @v read {dir_reads} times");
}

/// A new layout's `oci-layout` and `index.json` are readable by other users
/// (0644), not tempfile's 0600.
#[test]
fn new_layout_files_are_0644() {
    let sc = Scratch::new();
    let disk = sc.join("new-layout");
    let _ = two_module_bundle(&sc.join("b"));
    let out = ocigo_bounded(
        &sc.join("store"),
        &[
            "push",
            &format!("oci:{}:v1", s(&sc.join("b/disk"))),
            &format!("oci:{}:v1", s(&disk)),
        ],
        &[],
        BOUND,
    );
    assert_exit(&out, 0, "copy to a new layout");
    for (path, kind) in snapshot(&disk).0 {
        if kind.starts_with("file ") {
            assert!(kind.starts_with("file 644 "), "{path}: {kind}");
        }
    }
    assert!(snapshot(&disk).0.contains_key("/index.json"));
}

// ---------------------------------------------------------------- 4a. staged trees

/// Pull extracts each zip into a private staging directory as it checks
/// it. A bundle whose last module fails its h1 check (after the bigger
/// zips before it were staged: `--jobs 1`, biggest first, seen under
/// strace) exits 3 naming the module, and leaves GOMODCACHE byte for byte
/// as it was: no staged tree, no staging directory, and a GOMODCACHE that
/// did not exist is not created (nor its missing parent).
#[test]
fn a_bundle_failing_late_leaves_nothing_of_the_trees_it_staged() {
    assert!(
        Path::new("/usr/bin/strace").exists(),
        "this test needs strace: apt-get install -y strace"
    );
    let sc = Scratch::new();
    let work = sc.join("bundle");
    let big: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| (format!("sub{}/f{i}.go", i % 3), vec![b'x'; 4000 + i]))
        .collect();
    let big: Vec<(&str, &[u8])> = big
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let specs = vec![
        spec("example.com/big1", "v1.0.0", &big),
        spec("example.com/big2", "v1.2.3", &big),
        spec(
            "example.com/small",
            "v0.1.0",
            &[("s.go", b"package small\n")],
        ),
    ];
    let src = bundle_with_bad_h1(&work, &work.join("disk"), &specs, Some(2));
    let store = sc.join("store");

    // GOMODCACHE (and its parent) absent.
    let modcache = sc.join("absent/modcache");
    let log = sc.join("strace.log");
    let strace = [
        "strace",
        "-f",
        "-qq",
        "-e",
        "trace=openat,mkdir",
        "-o",
        log.to_str().unwrap(),
        "--",
    ];
    let out = ocigo_command(
        &strace,
        &store,
        &["pull", "--jobs", "1", &src, "--gomodcache", &s(&modcache)],
        &[],
    )
    .output()
    .expect("run strace ocigo pull");
    assert_exit(&out, 3, "pull of a bundle whose last module fails h1");
    assert_mentions(
        &stderr(&out),
        &["example.com/small@v0.1.0", "hashes to"],
        "the h1 failure",
    );
    let log = fs::read_to_string(&log).unwrap();
    let staged = log
        .lines()
        // Staged trees are written relative to the staging directory's
        // handle: `openat(<fd>, "<n>/f19.go", O_CREAT...)`.
        .filter(|l| l.contains("/f19.go\"") && l.contains("O_CREAT"))
        .count();
    assert_eq!(staged, 2, "both big trees were staged first:\n{log}");
    assert!(
        !sc.join("absent").exists(),
        "a refused pull left {} behind",
        sc.join("absent").display()
    );

    // GOMODCACHE present, with `cache/` and an unrelated module.
    let modcache = sc.dir("modcache");
    fs::create_dir_all(modcache.join("cache/download/example.com/other/@v")).unwrap();
    fs::write(
        modcache.join("cache/download/example.com/other/@v/list"),
        b"v1.0.0\n",
    )
    .unwrap();
    fs::write(modcache.join("cache/download/keep"), b"keep\n").unwrap();
    let before = snapshot(&modcache);
    let out = ocigo_command(
        &[],
        &store,
        &["pull", "--jobs", "1", &src, "--gomodcache", &s(&modcache)],
        &[],
    )
    .output()
    .expect("run ocigo pull");
    assert_exit(&out, 3, "pull into an existing GOMODCACHE");
    assert_unchanged(&before, &modcache, "GOMODCACHE after a late h1 failure");
}

/// A staging directory a killed pull left (nobody holds its lock file) is
/// removed by the next pull that verifies its bundle, read-only
/// directories and all; one a running pull holds (its lock file locked)
/// is left alone, and so is one without a lock file (not known to be
/// ocigo's). A refused pull removes nothing.
#[test]
fn staging_left_by_a_killed_pull_is_removed_and_a_live_one_kept() {
    let sc = Scratch::new();
    let src = two_module_bundle(&sc.join("bundle"));
    let modcache = sc.dir("modcache");
    let dead = modcache.join("cache/.ocigo-stage-0123456789ab");
    fs::create_dir_all(dead.join("1/sub")).unwrap();
    fs::write(dead.join("lock"), b"").unwrap();
    fs::write(dead.join("1/sub/f.go"), b"x").unwrap();
    fs::set_permissions(dead.join("1/sub"), fs::Permissions::from_mode(0o555)).unwrap();
    let live = modcache.join("cache/.ocigo-stage-ba9876543210");
    fs::create_dir_all(live.join("1")).unwrap();
    fs::write(live.join("1/g.go"), b"y").unwrap();
    fs::write(live.join("lock"), b"").unwrap();
    let held = fs::File::open(live.join("lock")).unwrap();
    // SAFETY: flock on a descriptor `held` owns for the whole test.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&held), libc::LOCK_EX) },
        0
    );
    let bare = modcache.join("cache/.ocigo-stage-00000000bare");
    fs::create_dir_all(bare.join("1")).unwrap();
    let live_before = snapshot(&live);

    // Refused: nothing is reaped.
    let work = sc.join("bad");
    let bad = bundle_with_bad_h1(
        &work,
        &work.join("disk"),
        &[spec(
            "example.com/bad",
            "v1.0.0",
            &[("b.go", b"package b\n")],
        )],
        Some(0),
    );
    let before = snapshot(&modcache);
    let out = ocigo_command(
        &[],
        &sc.join("store"),
        &["pull", &bad, "--gomodcache", &s(&modcache)],
        &[],
    )
    .output()
    .expect("run ocigo pull");
    assert_exit(&out, 3, "pull of a bad bundle beside leftover staging");
    assert_unchanged(&before, &modcache, "GOMODCACHE after a refused pull");

    let out = ocigo_command(
        &[],
        &sc.join("store"),
        &["pull", "--json", &src, "--gomodcache", &s(&modcache)],
        &[],
    )
    .output()
    .expect("run ocigo pull");
    let report = json_ok(&out, "pull beside leftover staging directories");
    assert_eq!(report["installed"], 2, "{report:#}");
    assert!(!dead.exists(), "the dead staging directory was left");
    assert_unchanged(&live_before, &live, "the live staging directory");
    let mut stages: Vec<String> = fs::read_dir(modcache.join("cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".ocigo-stage-"))
        .collect();
    stages.sort();
    assert_eq!(
        stages,
        vec![
            ".ocigo-stage-00000000bare".to_string(),
            ".ocigo-stage-ba9876543210".to_string()
        ]
    );
    drop(held);
}

// ---------------------------------------------------------------- 4b. failures while writing

/// A pull whose k-th rename fails (ENOSPC, injected by strace) exits 1
/// naming the error and leaves only what the next pull removes or keeps:
/// no temporary file or tree, no `list` naming a version without a `.mod`,
/// no directory but those holding the go command's `.lock` files (never
/// removed, as the go command never removes them) or complete modules; the
/// next pull completes the cache.
#[test]
fn a_failure_while_writing_leaves_only_leftovers() {
    assert!(
        Path::new("/usr/bin/strace").exists(),
        "this test needs strace: apt-get install -y strace"
    );
    let sc = Scratch::new();
    let src = two_module_bundle(&sc.join("bundle"));
    let store = filled_store(&sc, &src, "main");
    let mut failed = 0;
    for k in 1..=12 {
        let modcache = sc.join(&format!("modcache-{k}"));
        let inject = format!("inject=rename,renameat,renameat2:error=ENOSPC:when={k}");
        let strace = [
            "strace",
            "-f",
            "-qq",
            "-o",
            "/dev/null",
            "-e",
            &inject,
            "--",
        ];
        let out = ocigo_command(
            &strace,
            &store,
            &["pull", "--jobs", "1", &src, "--gomodcache", &s(&modcache)],
            &[],
        )
        .output()
        .expect("run strace ocigo pull");
        if out.status.success() {
            break;
        }
        failed += 1;
        let case = format!("rename #{k} failing");
        assert_exit(&out, 1, &case);
        assert_mentions(&stderr(&out), &["No space left on device"], &case);
        let tree = snapshot(&modcache);
        for (path, kind) in &tree.0 {
            assert!(
                !path.contains(".tmp-") && !path.contains(".ocigo-tmp-"),
                "{case}: temporary {path} left"
            );
            if kind.starts_with("dir ") {
                let prefix = format!("{path}/");
                assert!(
                    tree.0.keys().any(|p| p.starts_with(&prefix)),
                    "{case}: empty directory {path} left"
                );
            }
            if let Some(at_v) = path.strip_suffix("/list") {
                let listed = fs::read_to_string(modcache.join(&path[1..])).unwrap();
                for v in listed.lines() {
                    assert!(
                        tree.0.contains_key(&format!("{at_v}/{v}.mod")),
                        "{case}: list names {v} with no .mod"
                    );
                }
            }
            if let Some(rest) = path.strip_prefix("/cache/download/")
                && let Some((module, file)) = rest.split_once("/@v/")
                && let Some(ev) = file.strip_suffix(".ziphash")
            {
                // A committed module must be complete: the tree is there.
                assert!(
                    tree.0.contains_key(&format!("/{module}@{ev}")),
                    "{case}: {path} committed without its tree"
                );
            }
        }
        let out = ocigo_bounded(
            &store,
            &["pull", "--json", &src, "--gomodcache", &s(&modcache)],
            &[],
            BOUND,
        );
        let report = json_ok(&out, &format!("pull after {case}"));
        assert_eq!(
            report["installed"].as_u64().unwrap() + report["already_present"].as_u64().unwrap(),
            2,
            "{report:#}"
        );
    }
    assert!(failed >= 8, "only {failed} renames in a pull");
}

/// Review #2: a zip check proves something about one module version and
/// h1, not about a layer. Module `aaa` (its own part, verified first)
/// carries an empty zip layer, valid for any module; module `zzz`, in a
/// later window, names the same layer with its genuine h1. The layer was
/// checked once, for `aaa`: it must be checked again for `zzz` (and fail
/// h1), not trusted and installed as an empty tree under `zzz`'s genuine
/// `.ziphash`.
#[test]
fn a_layer_checked_for_one_module_is_checked_again_for_another() {
    use ocigo::artifact::{self, MainModule, ModulesConfig, SplitLimits};
    let sc = Scratch::new();
    let work = sc.dir("work");
    let disk = work.join("disk");
    let layout = Layout::open_or_create(&disk).unwrap();
    let empty_zip = work.join("empty.zip");
    fs::write(
        &empty_zip,
        zip::ZipWriter::new(std::io::Cursor::new(Vec::new()))
            .finish()
            .unwrap()
            .into_inner(),
    )
    .unwrap();
    let a = module_entry(
        &layout,
        &empty_zip,
        "example.com/aaa",
        "v1.0.0",
        "module example.com/aaa\n".into(),
    );
    let z_spec = spec("example.com/zzz", "v1.0.0", &[("z.go", b"package z\n")]);
    let z_zip = work.join("z.zip");
    fs::write(&z_zip, zip_of(&z_spec)).unwrap();
    let mut z = module_entry(
        &layout,
        &z_zip,
        "example.com/zzz",
        "v1.0.0",
        String::from_utf8(z_spec.files[0].1.clone()).unwrap(),
    );
    let genuine = z.zip.as_ref().unwrap().hash.clone();
    let za = z.zip.as_mut().unwrap();
    za.layer = a.zip.as_ref().unwrap().layer.clone();
    za.size = a.zip.as_ref().unwrap().size;
    let config = ModulesConfig {
        format_version: artifact::FORMAT_VERSION,
        main_modules: vec![MainModule {
            path: "example.com/project".into(),
            go_version: Some("1.22".into()),
        }],
        platforms: vec!["linux/amd64".into()],
        created: None,
        modules: vec![a, z],
    };
    // One module per part, one part per window (`--concurrency 1`).
    let limits = SplitLimits {
        max_modules: 1,
        paths_per_part: 1,
        ..SplitLimits::default()
    };
    let built = artifact::build(config, limits).unwrap();
    assert!(built.parts.len() >= 2, "one part per module");
    artifact::push_built(&layout, &built, Some("v1")).unwrap();
    let src = format!("oci:{}:v1", disk.display());

    let modcache = sc.dir("modcache");
    fs::write(modcache.join("keep"), b"keep").unwrap();
    let before = snapshot(&modcache);
    let out = ocigo(
        &sc.join("store"),
        &[
            "pull",
            "--concurrency",
            "1",
            "--jobs",
            "1",
            &src,
            "--gomodcache",
            &s(&modcache),
        ],
        &[],
    );
    assert_exit(&out, 3, "pull of a module naming another module's layer");
    assert_mentions(
        &stderr(&out),
        &["example.com/zzz@v1.0.0", "hashes to", &genuine],
        "the h1 failure of the second module",
    );
    assert_unchanged(&before, &modcache, "a refused pull");
}
