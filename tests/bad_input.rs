//! Bad input of every kind: tampered and truncated blobs in an OCI layout,
//! malicious module zips inside an otherwise valid and self-consistent
//! artifact, a go.sum missing a line, a tag that does not exist. Each must
//! fail with a clear message naming what and where, the documented exit
//! code, and the target GOMODCACHE (which already holds modules) byte for
//! byte unchanged.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::fixtures::{FIXTURE_TIME, copy_project, copy_tree, fixture_env, fixture_modules};
use common::ocigo::{
    Scratch, assert_exit, assert_mentions, assert_unchanged, json_ok, module_entry, ocigo,
    process_dir, push_bundle, remove_module, snapshot, split_error, stderr,
};
use common::registry::TestRegistry;
use ocigo::artifact::{self, MEDIA_TYPE_MODULE_ZIP, ModuleEntry, ZipRef};
use ocigo::gomod::{ModuleVersion, hash_gomod, hash_zip_entries};
use ocigo::oci::{Digest, Manifest, Repository};
use ocigo::store::Layout;
use sha2::{Digest as _, Sha256};

const PLATFORMS: [&str; 4] = ["--platform", "linux/amd64", "--platform", "windows/amd64"];
/// The module every malicious bundle carries; it sorts after the good
/// module beside it, so that one is verified (and could be written) first.
const EVIL: &str = "example.com/zz/evil";
const EVIL_VERSION: &str = "v1.0.0";
const EVIL_GO_MOD: &str = "module example.com/zz/evil\n\ngo 1.22\n";

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The fixture proxy, built once for this test binary.
fn proxy() -> &'static Path {
    common::ocigo::fixture_proxy()
}

/// The fixture project packed once into an OCI layout (`<dir>`, tag v1).
fn good_layout() -> &'static Path {
    static LAYOUT: OnceLock<PathBuf> = OnceLock::new();
    LAYOUT.get_or_init(|| {
        let root = process_dir("good");
        let project = copy_project(&root);
        let mut env = fixture_env(proxy());
        env.push(("GOMODCACHE".into(), s(&root.join("user-modcache"))));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let disk = root.join("disk");
        let dest = format!("oci:{}:v1", s(&disk));
        let mut args = vec!["pack", project.to_str().unwrap(), "-o", &dest];
        args.extend_from_slice(&PLATFORMS);
        let out = ocigo(&root.join("store"), &args, &env);
        assert_exit(&out, 0, "ocigo pack of the fixture project");
        disk
    })
}

/// A fresh store directory below the scratch directory.
fn fresh_store(sc: &Scratch) -> PathBuf {
    tempfile::Builder::new()
        .prefix("store-")
        .tempdir_in(sc.path())
        .unwrap()
        .keep()
}

/// A GOMODCACHE that already holds most of the fixture closure (pulled
/// from the good bundle) but lacks testonly and pseudo, so a pull of the
/// fixture bundle would have something to write.
fn populated_cache(sc: &Scratch) -> PathBuf {
    let modcache = sc.dir("modcache");
    let src = format!("oci:{}:v1", s(good_layout()));
    let out = ocigo(
        &fresh_store(sc),
        &["pull", &src, "--gomodcache", &s(&modcache), "--json"],
        &[],
    );
    json_ok(&out, "ocigo pull of the good bundle");
    remove_module(&modcache, "example.com/testonly", "v1.0.0");
    remove_module(
        &modcache,
        "example.com/pseudo",
        "v0.0.0-20230102030405-abcdef123456",
    );
    assert!(!snapshot(&modcache).0.is_empty());
    modcache
}

/// `ocigo pull <src>` into `modcache` with a fresh store must exit with
/// `code`, say every one of `needles` on stderr, and leave `modcache` byte
/// for byte as it was. Returns stderr.
fn pull_must_fail(sc: &Scratch, src: &str, modcache: &Path, code: i32, needles: &[&str]) -> String {
    let before = snapshot(modcache);
    let out = ocigo(
        &fresh_store(sc),
        &["pull", src, "--gomodcache", &s(modcache)],
        &[],
    );
    assert_exit(&out, code, &format!("ocigo pull {src}"));
    let err = stderr(&out);
    assert!(err.starts_with("error: "), "{err}");
    assert_mentions(&err, needles, &format!("ocigo pull {src}"));
    assert_unchanged(
        &before,
        modcache,
        &format!("GOMODCACHE after a failed pull of {src}"),
    );
    err
}

// ---------------------------------------------------------------- tampered blobs

/// A copy of the good layout, the digest and content of the part manifest
/// that holds example.com/testonly, and (path, layer digest) of every
/// module zip.
fn copied_layout(sc: &Scratch) -> (PathBuf, (Digest, Manifest), Vec<(String, Digest)>) {
    let disk = sc.join("disk");
    copy_tree(good_layout(), &disk);
    let layout = Layout::open(&disk).unwrap();
    let top = layout.resolve("v1").unwrap();
    let bundle = artifact::load(&layout, &top).unwrap();
    let part = bundle
        .parts
        .iter()
        .find(|p| p.modules.iter().any(|m| m.path == "example.com/testonly"))
        .expect("a part holds testonly");
    let manifest = (
        part.manifest.descriptor.digest.clone(),
        part.manifest.manifest().unwrap(),
    );
    let zips = bundle
        .modules()
        .filter_map(|m| m.zip.as_ref().map(|z| (m.path.clone(), z.layer.clone())))
        .collect();
    (disk, manifest, zips)
}

fn blob_path(disk: &Path, digest: &Digest) -> PathBuf {
    disk.join("blobs/sha256").join(digest.hex())
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = fs::read(path).unwrap();
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0x20;
    fs::write(path, bytes).unwrap();
}

/// The zip layer of example.com/testonly (not in the populated cache).
fn testonly_layer(zips: &[(String, Digest)]) -> Digest {
    zips.iter()
        .find(|(p, _)| p == "example.com/testonly")
        .map(|(_, d)| d.clone())
        .expect("testonly has a zip layer")
}

#[test]
fn tampered_layer_blob() {
    let sc = Scratch::new();
    let modcache = populated_cache(&sc);
    let (disk, _, zips) = copied_layout(&sc);
    let layer = testonly_layer(&zips);
    flip_byte(&blob_path(&disk, &layer), 40);
    let src = format!("oci:{}:v1", s(&disk));
    pull_must_fail(
        &sc,
        &src,
        &modcache,
        3,
        &[
            layer.as_str(),
            &format!("oci:{}", s(&disk)),
            "has digest sha256:",
        ],
    );
}

#[test]
fn tampered_layer_of_a_module_already_in_the_cache() {
    // The cache has Upper/Case; its layer must still be verified, and the
    // failure must not touch the cache.
    let sc = Scratch::new();
    let modcache = populated_cache(&sc);
    let (disk, _, zips) = copied_layout(&sc);
    let layer = zips
        .iter()
        .find(|(p, _)| p == "example.com/Upper/Case")
        .map(|(_, d)| d.clone())
        .unwrap();
    flip_byte(&blob_path(&disk, &layer), 100);
    let src = format!("oci:{}:v1", s(&disk));
    pull_must_fail(
        &sc,
        &src,
        &modcache,
        3,
        &[layer.as_str(), "has digest sha256:"],
    );
}

#[test]
fn tampered_config_blob() {
    let sc = Scratch::new();
    let modcache = populated_cache(&sc);
    let (disk, (_, manifest), _) = copied_layout(&sc);
    let config = &manifest.config.digest;
    // Inside a JSON string, so the bytes still parse: only the digest can
    // tell.
    let path = blob_path(&disk, config);
    let text = fs::read_to_string(&path).unwrap();
    let at = text.find("example.com/testonly").unwrap() + 12;
    flip_byte(&path, at);
    let src = format!("oci:{}:v1", s(&disk));
    pull_must_fail(
        &sc,
        &src,
        &modcache,
        3,
        &[
            config.as_str(),
            &format!("oci:{}", s(&disk)),
            "has digest sha256:",
        ],
    );
}

#[test]
fn tampered_manifest_blob() {
    let sc = Scratch::new();
    let modcache = populated_cache(&sc);
    let (disk, (part, _), _) = copied_layout(&sc);
    let path = blob_path(&disk, &part);
    let text = fs::read_to_string(&path).unwrap();
    flip_byte(&path, text.find("module.v1.zip").unwrap());
    let src = format!("oci:{}:v1", s(&disk));
    pull_must_fail(
        &sc,
        &src,
        &modcache,
        3,
        &[part.as_str(), "has digest sha256:"],
    );
}

#[test]
fn truncated_layer_blob() {
    let sc = Scratch::new();
    let modcache = populated_cache(&sc);
    let (disk, _, zips) = copied_layout(&sc);
    let layer = testonly_layer(&zips);
    let path = blob_path(&disk, &layer);
    let len = fs::metadata(&path).unwrap().len();
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let src = format!("oci:{}:v1", s(&disk));
    pull_must_fail(
        &sc,
        &src,
        &modcache,
        3,
        &[
            layer.as_str(),
            "truncated",
            &format!("got {} of {len} bytes", len / 2),
        ],
    );
}

#[test]
fn missing_layer_blob() {
    let sc = Scratch::new();
    let modcache = populated_cache(&sc);
    let (disk, _, zips) = copied_layout(&sc);
    let layer = testonly_layer(&zips);
    fs::remove_file(blob_path(&disk, &layer)).unwrap();
    let src = format!("oci:{}:v1", s(&disk));
    pull_must_fail(
        &sc,
        &src,
        &modcache,
        6,
        &[layer.as_str(), "missing from", &s(&disk)],
    );
}

// ---------------------------------------------------------------- malicious zips

/// Builds a zip in memory: `(name, content)` entries, deflated, names
/// written exactly as given.
fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644);
    for (name, data) in entries {
        w.start_file(*name, opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// `(name, sha256(content))` for the h1 of these entries.
fn sums(entries: &[(&str, &[u8])]) -> Vec<(String, [u8; 32])> {
    entries
        .iter()
        .map(|(n, d)| (n.to_string(), Sha256::digest(d).into()))
        .collect()
}

fn evil_name(rel: &str) -> String {
    format!("{EVIL}@{EVIL_VERSION}/{rel}")
}

/// The module entry for `zip_bytes` (already a file in the layout) and the
/// h1 of `hashed`: everything consistent, so only the zip rules (or the
/// go.mod check) can refuse it.
fn entry_for(
    layout: &Layout,
    path: &str,
    version: &str,
    zip_file: &Path,
    hashed: &mut [(String, [u8; 32])],
    go_mod: &str,
) -> ModuleEntry {
    let desc = layout.ingest_file(zip_file, MEDIA_TYPE_MODULE_ZIP).unwrap();
    ModuleEntry {
        path: path.to_string(),
        version: version.to_string(),
        info: Some(format!(
            r#"{{"Version":"{version}","Time":"{FIXTURE_TIME}"}}"#
        )),
        go_mod: go_mod.to_string(),
        mod_hash: hash_gomod(go_mod.as_bytes()),
        zip: Some(ZipRef {
            hash: hash_zip_entries(hashed).unwrap(),
            layer: desc.digest,
            size: desc.size,
        }),
    }
}

/// A valid, self-consistent bundle in an OCI layout holding the good
/// fixture module example.com/testonly (absent from the populated cache)
/// and the module `evil`. Returns the reference to pull.
fn evil_bundle(sc: &Scratch, evil: ModuleEntry) -> String {
    let disk = sc.join("evil-disk");
    let layout = Layout::open_or_create(&disk).unwrap();
    let testonly = fixture_modules()
        .into_iter()
        .find(|m| m.path == "example.com/testonly")
        .unwrap();
    let zip_file = sc.join("testonly.zip");
    fs::write(&zip_file, testonly.zip_bytes()).unwrap();
    let go_mod = String::from_utf8(testonly.go_mod()).unwrap();
    let good = module_entry(
        &layout,
        &zip_file,
        &testonly.path,
        &testonly.version,
        go_mod,
    );
    push_bundle(&layout, &disk, vec![good, evil])
}

/// Packs `entries` as the zip of the evil module, with an h1 over exactly
/// those entries, and checks the pull refuses it naming the module, the
/// layer, and `why`.
fn evil_zip_is_refused(entries: &[(&str, &[u8])], why: &str) {
    let sc = Scratch::new();
    let zip_file = sc.join("evil.zip");
    fs::write(&zip_file, zip_of(entries)).unwrap();
    evil_file_is_refused(&sc, &zip_file, &mut sums(entries), why);
}

fn evil_file_is_refused(
    sc: &Scratch,
    zip_file: &Path,
    hashed: &mut [(String, [u8; 32])],
    why: &str,
) {
    let modcache = populated_cache(sc);
    let disk = sc.join("evil-disk");
    let layout = Layout::open_or_create(&disk).unwrap();
    let evil = entry_for(&layout, EVIL, EVIL_VERSION, zip_file, hashed, EVIL_GO_MOD);
    let layer = evil.zip.as_ref().unwrap().layer.clone();
    let src = evil_bundle(sc, evil);
    pull_must_fail(
        sc,
        &src,
        &modcache,
        3,
        &[&format!("{EVIL}@{EVIL_VERSION}"), layer.as_str(), why],
    );
}

#[test]
fn zip_entry_with_dot_dot() {
    evil_zip_is_refused(
        &[
            (&evil_name("go.mod"), EVIL_GO_MOD.as_bytes()),
            (&evil_name("../x"), b"escaped\n"),
        ],
        "malformed file path \"../x\": invalid path element \"..\"",
    );
}

#[test]
fn zip_entry_with_absolute_path() {
    let sc = Scratch::new();
    let target = sc.join("pwned");
    let abs = s(&target);
    let entries: [(&str, &[u8]); 2] = [
        (&evil_name("go.mod"), EVIL_GO_MOD.as_bytes()),
        (&abs, b"written outside the module\n"),
    ];
    let zip_file = sc.join("evil.zip");
    fs::write(&zip_file, zip_of(&entries)).unwrap();
    evil_file_is_refused(
        &sc,
        &zip_file,
        &mut sums(&entries),
        "path does not have prefix",
    );
    assert!(!target.exists(), "{abs} was written");
}

#[test]
fn zip_entry_absolute_inside_the_module_prefix() {
    evil_zip_is_refused(
        &[
            (&evil_name("go.mod"), EVIL_GO_MOD.as_bytes()),
            (&evil_name("/etc/x"), b"x\n"),
        ],
        "malformed file path \"/etc/x\": empty path element",
    );
}

/// A zip entry with a symbolic link's mode: x/mod ignores modes (neither
/// `CheckZip` nor `Unzip` looks at them) and writes every entry as a
/// regular file, so ocigo installs it as the go command would: a regular
/// read-only file holding the link's target text, never a link.
#[test]
fn zip_symlink_entry_installs_as_a_regular_file() {
    let sc = Scratch::new();
    let modcache = populated_cache(&sc);
    let zip_file = sc.join("evil.zip");
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    w.start_file(evil_name("go.mod"), opts).unwrap();
    w.write_all(EVIL_GO_MOD.as_bytes()).unwrap();
    w.add_symlink(
        evil_name("passwd"),
        "/etc/passwd",
        opts.unix_permissions(0o777),
    )
    .unwrap();
    let bytes = w.finish().unwrap().into_inner();
    // The entry really is a symlink (unix mode 0o120777).
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&bytes)).unwrap();
    assert_eq!(archive.by_index(1).unwrap().unix_mode(), Some(0o120777));
    fs::write(&zip_file, &bytes).unwrap();
    let mut hashed = sums(&[
        (&evil_name("go.mod"), EVIL_GO_MOD.as_bytes()),
        (&evil_name("passwd"), b"/etc/passwd"),
    ]);
    let disk = sc.join("evil-disk");
    let layout = Layout::open_or_create(&disk).unwrap();
    let evil = entry_for(
        &layout,
        EVIL,
        EVIL_VERSION,
        &zip_file,
        &mut hashed,
        EVIL_GO_MOD,
    );
    let src = evil_bundle(&sc, evil);
    let out = ocigo(
        &fresh_store(&sc),
        &["pull", &src, "--gomodcache", &s(&modcache), "--json"],
        &[],
    );
    let report = json_ok(&out, "ocigo pull of a zip with a symlink-mode entry");
    assert_eq!(report["installed"], 2, "{report:#}");
    let installed = modcache.join("example.com/zz/evil@v1.0.0/passwd");
    let meta = fs::symlink_metadata(&installed).unwrap();
    assert!(
        meta.file_type().is_file(),
        "{}: {meta:?}",
        installed.display()
    );
    assert_eq!(fs::read(&installed).unwrap(), b"/etc/passwd");
}

#[test]
fn zip_names_equal_under_case_folding() {
    evil_zip_is_refused(
        &[
            (&evil_name("go.mod"), EVIL_GO_MOD.as_bytes()),
            (&evil_name("README"), b"one\n"),
            (&evil_name("readme"), b"two\n"),
        ],
        "case-insensitive file name collision",
    );
}

#[test]
fn zip_go_mod_in_a_subdirectory() {
    evil_zip_is_refused(
        &[
            (&evil_name("go.mod"), EVIL_GO_MOD.as_bytes()),
            (&evil_name("sub/go.mod"), b"module other\n"),
        ],
        "go.mod file not in module root directory",
    );
}

/// Replaces every occurrence of `from` in `bytes` by `to` (same length):
/// renames a zip entry in its local header and central directory alike,
/// which is how a zip gets two entries of one name (zip writers refuse).
fn rename_entries(bytes: &mut [u8], from: &str, to: &str) {
    assert_eq!(from.len(), to.len());
    let mut i = 0;
    let mut renamed = 0;
    while let Some(at) = bytes[i..]
        .windows(from.len())
        .position(|w| w == from.as_bytes())
    {
        bytes[i + at..i + at + to.len()].copy_from_slice(to.as_bytes());
        i += at + to.len();
        renamed += 1;
    }
    assert_eq!(
        renamed, 2,
        "{from} is in one local header and one central record"
    );
}

/// The zip of `entries` with a hidden first entry of the same name as the
/// entry `name`, holding `hidden`: a zip reader that keeps the last entry
/// of a name (the zip crate) sees exactly `entries`; one that keeps the
/// first sees `hidden`.
fn zip_with_hidden_duplicate(entries: &[(&str, &[u8])], name: &str, hidden: &[u8]) -> Vec<u8> {
    let (dir, base) = name.rsplit_once('/').unwrap();
    let placeholder = format!("{dir}/{}", "Q".repeat(base.len()));
    let mut all: Vec<(&str, &[u8])> = vec![(&placeholder, hidden)];
    all.extend_from_slice(entries);
    let mut bytes = zip_of(&all);
    rename_entries(&mut bytes, &placeholder, name);
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&bytes)).unwrap();
    assert!(archive.has_duplicate_names());
    assert_eq!(archive.len(), entries.len(), "the zip crate folds the two");
    let mut content = Vec::new();
    std::io::Read::read_to_end(&mut archive.by_name(name).unwrap(), &mut content).unwrap();
    let genuine = entries.iter().find(|(n, _)| *n == name).unwrap().1;
    assert_eq!(content, genuine, "the zip crate shows the genuine entry");
    bytes
}

/// A zip with a hidden second entry for evil.go, and the h1 of what the
/// zip crate shows (the genuine entries): it passed before ocigo read the
/// central directory itself. The go command refuses it ("multiple entries
/// for file"), and so must ocigo.
#[test]
fn zip_with_a_hidden_duplicate_entry() {
    let sc = Scratch::new();
    let go_name = evil_name("evil.go");
    let entries: [(&str, &[u8]); 2] = [
        (&evil_name("go.mod"), EVIL_GO_MOD.as_bytes()),
        (&go_name, b"package evil\n"),
    ];
    let zip_file = sc.join("evil.zip");
    fs::write(
        &zip_file,
        zip_with_hidden_duplicate(&entries, &go_name, b"package evil // the hidden one\n"),
    )
    .unwrap();
    evil_file_is_refused(
        &sc,
        &zip_file,
        &mut sums(&entries),
        "multiple entries for file \"evil.go\"",
    );
}

/// Names equal only under Go's case folding (`strings.EqualFold`): s and
/// ſ (U+017F), k and the Kelvin sign (U+212A). Rust's to_lowercase keeps
/// them apart; the go command does not.
#[test]
fn zip_names_equal_under_unicode_case_folding() {
    for (a, b) in [("s.go", "\u{17f}.go"), ("k.go", "\u{212a}.go")] {
        evil_zip_is_refused(
            &[
                (&evil_name("go.mod"), EVIL_GO_MOD.as_bytes()),
                (&evil_name(a), b"package evil\n"),
                (&evil_name(b), b"package evil\n"),
            ],
            "case-insensitive file name collision",
        );
    }
}

/// U+2160 ROMAN NUMERAL ONE is alphabetic to Rust but not a letter to Go's
/// `unicode.IsLetter`, so `module.CheckFilePath` refuses it.
#[test]
fn zip_name_that_is_not_a_go_letter() {
    evil_zip_is_refused(
        &[
            (&evil_name("go.mod"), EVIL_GO_MOD.as_bytes()),
            (&evil_name("\u{2160}.go"), b"package evil\n"),
        ],
        "invalid char '\u{2160}'",
    );
}

/// A pack from a module cache whose zip of example.com/testonly carries a
/// hidden duplicate entry (the zip crate's view has the genuine go.sum
/// hash): refused with exit 3 (the go command, which reads every entry,
/// already finds the hash wrong), and the cache, the project and the
/// destination are left alone.
#[test]
fn pack_from_a_cache_holding_a_zip_with_a_hidden_duplicate() {
    let sc = Scratch::new();
    let project = copy_project(sc.path());
    let cache = sc.dir("from-cache");
    let mut env = fixture_env(proxy());
    env.push(("GOMODCACHE".into(), s(&cache)));
    env.push(("GOFLAGS".into(), "-modcacherw".into()));
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    common::go::assert_success(
        &common::go::go(&project, &["mod", "download"], &envs),
        "go mod download into the cache to pack from",
    );
    let testonly = fixture_modules()
        .into_iter()
        .find(|m| m.path == "example.com/testonly")
        .unwrap();
    let zip_in_cache = cache.join(format!(
        "cache/download/example.com/testonly/@v/{}.zip",
        testonly.version
    ));
    let genuine = fs::read(&zip_in_cache).unwrap();
    // Every entry of the genuine zip, plus a hidden first copy of its first
    // .go file.
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&genuine)).unwrap();
    let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..archive.len() {
        let mut e = archive.by_index(i).unwrap();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        entries.push((e.name().unwrap().to_string(), data));
    }
    let refs: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let target = refs.iter().find(|(n, _)| n.ends_with(".go")).unwrap().0;
    let evil = zip_with_hidden_duplicate(&refs, target, b"package hidden\n");
    let mv = ModuleVersion {
        path: testonly.path.clone(),
        version: testonly.version.clone(),
    };
    let genuine_h1 = ocigo::gomod::check_zip(&zip_in_cache, &mv, "test")
        .unwrap()
        .h1;
    assert_eq!(hash_zip_entries(&mut sums(&refs)).unwrap(), genuine_h1);
    fs::write(&zip_in_cache, evil).unwrap();
    let err = ocigo::gomod::check_zip(&zip_in_cache, &mv, "test").unwrap_err();
    assert!(
        format!("{err:#}").contains("multiple entries for file"),
        "{err:#}"
    );

    let before = snapshot(&project);
    let cache_before = snapshot(&cache);
    let disk = sc.join("disk");
    let dest = format!("oci:{}:v1", s(&disk));
    let mut args = vec!["pack", "-o", &dest, "--from-cache"];
    let cache_arg = s(&cache);
    let proj = s(&project);
    args.push(&cache_arg);
    args.push(&proj);
    args.extend_from_slice(&PLATFORMS);
    let out = ocigo(&fresh_store(&sc), &args, &[]);
    assert_exit(
        &out,
        3,
        "ocigo pack --from-cache with a hidden duplicate entry",
    );
    assert_mentions(
        &stderr(&out),
        &["example.com/testonly", "checksum mismatch"],
        "pack error (hidden duplicate entry)",
    );
    assert_unchanged(&before, &project, "the project after a failed pack");
    assert_unchanged(&cache_before, &cache, "the cache after a failed pack");
    assert!(!disk.exists(), "a failed pack created {}", disk.display());
}

/// Runs python3 to write a zip (python's zlib is fast where a debug build
/// of a Rust deflater is not). `mode`: `huge` writes two honest entries of
/// 260 MiB of zeros; `bomb` writes one entry of 16 MiB of zeros and then
/// patches its local and central headers to declare 1000 bytes.
fn python_zip(out: &Path, mode: &str, names: &[&str]) {
    const SCRIPT: &str = r#"
import sys, zipfile, struct
out, mode, names = sys.argv[1], sys.argv[2], sys.argv[3:]
chunk = bytes(1 << 20)
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    for name in names:
        info = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o100644 << 16
        with z.open(info, "w", force_zip64=False) as f:
            for _ in range(260 if mode == "huge" else 16):
                f.write(chunk)
if mode == "bomb":
    data = bytearray(open(out, "rb").read())
    local = data.find(b"PK\x03\x04")
    central = data.find(b"PK\x01\x02")
    assert local == 0 and central > 0
    struct.pack_into("<I", data, local + 22, 1000)
    struct.pack_into("<I", data, central + 24, 1000)
    open(out, "wb").write(bytes(data))
"#;
    let status = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(out)
        .arg(mode)
        .args(names)
        .status()
        .expect("python3 (needed to write large zips quickly)");
    assert!(status.success(), "python3 zip writer failed");
}

fn zeros_sha256(mib: usize) -> [u8; 32] {
    let chunk = vec![0u8; 1 << 20];
    let mut h = Sha256::new();
    for _ in 0..mib {
        h.update(&chunk);
    }
    h.finalize().into()
}

#[test]
fn zip_declaring_over_500_mib() {
    let sc = Scratch::new();
    let zip_file = sc.join("huge.zip");
    let names = [evil_name("a.bin"), evil_name("b.bin")];
    python_zip(&zip_file, "huge", &[&names[0], &names[1]]);
    assert!(
        fs::metadata(&zip_file).unwrap().len() < 4 << 20,
        "the zip itself is small"
    );
    let sum = zeros_sha256(260);
    let mut hashed = vec![(names[0].clone(), sum), (names[1].clone(), sum)];
    evil_file_is_refused(
        &sc,
        &zip_file,
        &mut hashed,
        "total uncompressed size of module contents too large (max size is 524288000 bytes)",
    );
}

#[test]
fn zip_bomb_with_lying_sizes() {
    let sc = Scratch::new();
    let zip_file = sc.join("bomb.zip");
    let name = evil_name("bomb.bin");
    python_zip(&zip_file, "bomb", &[&name]);
    // The headers now say 1000 bytes.
    let mut archive = zip::ZipArchive::new(fs::File::open(&zip_file).unwrap()).unwrap();
    assert_eq!(archive.by_index(0).unwrap().size(), 1000);
    let mut hashed = vec![(name, zeros_sha256(16))];
    // The zip reader or the size check stops at byte 1001, whichever is first.
    evil_file_is_refused(&sc, &zip_file, &mut hashed, "declare");
}

#[test]
fn go_mod_not_matching_its_hash() {
    let sc = Scratch::new();
    let modcache = populated_cache(&sc);
    let entries: [(&str, &[u8]); 2] = [
        (&evil_name("go.mod"), EVIL_GO_MOD.as_bytes()),
        (&evil_name("evil.go"), b"package evil\n"),
    ];
    let zip_file = sc.join("evil.zip");
    fs::write(&zip_file, zip_of(&entries)).unwrap();
    let disk = sc.join("evil-disk");
    let layout = Layout::open_or_create(&disk).unwrap();
    let mut evil = entry_for(
        &layout,
        EVIL,
        EVIL_VERSION,
        &zip_file,
        &mut sums(&entries),
        EVIL_GO_MOD,
    );
    // The .mod content says one thing, its go.sum-style hash another.
    let claimed = hash_gomod(format!("module {EVIL}\n\ngo 1.21\n").as_bytes());
    evil.mod_hash = claimed.clone();
    let actual = hash_gomod(evil.go_mod.as_bytes());
    let src = evil_bundle(&sc, evil);
    pull_must_fail(
        &sc,
        &src,
        &modcache,
        3,
        &[
            &format!("go.mod of {EVIL}@{EVIL_VERSION}"),
            &actual,
            &claimed,
        ],
    );
}

#[test]
fn a_consistent_evil_bundle_is_otherwise_installable() {
    // Control for the tests above: the same construction with a clean zip
    // installs both modules, so each refusal above comes from its one flaw.
    let sc = Scratch::new();
    let modcache = populated_cache(&sc);
    let entries: [(&str, &[u8]); 2] = [
        (&evil_name("go.mod"), EVIL_GO_MOD.as_bytes()),
        (&evil_name("evil.go"), b"package evil\n"),
    ];
    let zip_file = sc.join("evil.zip");
    fs::write(&zip_file, zip_of(&entries)).unwrap();
    let disk = sc.join("evil-disk");
    let layout = Layout::open_or_create(&disk).unwrap();
    let evil = entry_for(
        &layout,
        EVIL,
        EVIL_VERSION,
        &zip_file,
        &mut sums(&entries),
        EVIL_GO_MOD,
    );
    let src = evil_bundle(&sc, evil);
    let out = ocigo(
        &fresh_store(&sc),
        &["pull", &src, "--gomodcache", &s(&modcache), "--json"],
        &[],
    );
    let report = json_ok(&out, "ocigo pull of a clean hand-built bundle");
    assert_eq!(report["installed"], 2, "{report:#}");
    assert!(
        modcache
            .join("example.com/zz/evil@v1.0.0/evil.go")
            .is_file()
    );
}

// ---------------------------------------------------------------- pack, tags

/// pack with a go.sum lacking a line for example.com/pseudo: a usage
/// error naming the module, with a hint to run `go mod tidy`; go.mod, go.sum, the GOMODCACHE in the
/// environment and the destination are left alone.
#[test]
fn pack_with_go_sum_missing_a_line() {
    for (case, line_ends) in [("zip", " h1:"), ("go.mod", "/go.mod h1:")] {
        let sc = Scratch::new();
        let project = copy_project(sc.path());
        let go_sum = fs::read_to_string(project.join("go.sum")).unwrap();
        let prefix = "example.com/pseudo v0.0.0-20230102030405-abcdef123456";
        let kept: String = go_sum
            .lines()
            .filter(|l| !l.starts_with(&format!("{prefix}{line_ends}")))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(kept.lines().count() + 1, go_sum.lines().count(), "{case}");
        fs::write(project.join("go.sum"), &kept).unwrap();
        let before = snapshot(&project);

        let user_cache = sc.dir("user-modcache");
        fs::write(user_cache.join("marker"), "leave me\n").unwrap();
        let cache_before = snapshot(&user_cache);
        let mut env = fixture_env(proxy());
        env.push(("GOMODCACHE".into(), s(&user_cache)));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let disk = sc.join("disk");
        let dest = format!("oci:{}:v1", s(&disk));
        let proj = s(&project);
        let mut args = vec!["pack", proj.as_str(), "-o", &dest];
        args.extend_from_slice(&PLATFORMS);
        let out = ocigo(&fresh_store(&sc), &args, &env);
        // A go.sum that lacks lines is the project's to fix: usage (2),
        // with the fix as its own hint line.
        assert_exit(
            &out,
            2,
            &format!("ocigo pack with go.sum lacking the {case} line"),
        );
        let err = stderr(&out);
        let (message, hints) = split_error(&err);
        assert_mentions(
            &message,
            &["example.com/pseudo", "go.sum"],
            &format!("pack error ({case} line missing)"),
        );
        assert!(
            hints.iter().any(|h| h.contains("go mod tidy")),
            "{case}: no `go mod tidy` hint in:\n{err}"
        );
        assert_unchanged(&before, &project, "the project after a failed pack");
        assert_unchanged(&cache_before, &user_cache, "GOMODCACHE after a failed pack");
        assert!(!disk.exists(), "a failed pack created {}", disk.display());
    }
}

#[test]
fn pull_of_a_missing_tag() {
    let sc = Scratch::new();
    let modcache = populated_cache(&sc);
    let disk = sc.join("disk");
    copy_tree(good_layout(), &disk);
    let src = format!("oci:{}:v2", s(&disk));
    pull_must_fail(&sc, &src, &modcache, 6, &["\"v2\"", "not found", &s(&disk)]);

    let reg = TestRegistry::start();
    let good = format!("oci:{}:v1", s(&disk));
    let remote = format!("{}/team/mods", reg.addr);
    let out = ocigo(
        &fresh_store(&sc),
        &["push", &good, &format!("{remote}:v1")],
        &[],
    );
    assert_exit(&out, 0, "ocigo push");
    let src = format!("{remote}:v2");
    pull_must_fail(&sc, &src, &modcache, 6, &["v2", "not found", &remote]);
    // A repository that does not exist at all.
    let src = format!("{}/team/nothing:v1", reg.addr);
    pull_must_fail(&sc, &src, &modcache, 6, &["not found", "team/nothing"]);
}

#[test]
fn pull_from_a_directory_that_is_not_a_layout() {
    let sc = Scratch::new();
    let modcache = populated_cache(&sc);
    let empty = sc.dir("not-a-layout");
    let src = format!("oci:{}:v1", s(&empty));
    pull_must_fail(
        &sc,
        &src,
        &modcache,
        6,
        &["is not an OCI image layout", &s(&empty)],
    );
    assert!(
        snapshot(&empty).0.is_empty(),
        "pull created files in its source"
    );
}

#[test]
fn bad_references_are_usage_errors() {
    let sc = Scratch::new();
    let modcache = populated_cache(&sc);
    for bad in ["justaname", "host.io/UPPER:v1", "oci::v1"] {
        pull_must_fail(&sc, bad, &modcache, 2, &["cannot read reference", bad]);
    }
}

// ---------------------------------------------------------------- bad module names

/// A self-consistent bundle whose second module is `path@version` (a clean
/// zip with a go.mod and one file, h1 and go.mod hash right), beside the
/// good example.com/testonly: the pull must refuse it with exit 3, saying
/// every one of `needles`, and leave the populated GOMODCACHE unchanged
/// (so neither the good module nor anything under the bad name is written).
fn bad_name_is_refused(path: &str, version: &str, needles: &[&str]) {
    let sc = Scratch::new();
    let modcache = populated_cache(&sc);
    let go_mod = format!("module {path}\n\ngo 1.22\n");
    let mod_name = format!("{path}@{version}/go.mod");
    let go_name = format!("{path}@{version}/x.go");
    let entries: [(&str, &[u8]); 2] = [(&mod_name, go_mod.as_bytes()), (&go_name, b"package x\n")];
    let zip_file = sc.join("evil.zip");
    fs::write(&zip_file, zip_of(&entries)).unwrap();
    let disk = sc.join("evil-disk");
    let layout = Layout::open_or_create(&disk).unwrap();
    let evil = entry_for(
        &layout,
        path,
        version,
        &zip_file,
        &mut sums(&entries),
        &go_mod,
    );
    let src = evil_bundle(&sc, evil);
    pull_must_fail(&sc, &src, &modcache, 3, needles);
}

/// The path that, before module paths were checked like `module.CheckPath`
/// does, made a directory inside the go command's checksum database cache.
#[test]
fn module_path_inside_the_checksum_database_cache() {
    let path = "cache/download/sumdb/sum.golang.org/lookup/golang.org/x/sync";
    bad_name_is_refused(
        path,
        "v1.0.0",
        &[
            &format!("invalid module path {path:?}"),
            "missing dot in first path element",
        ],
    );
}

/// A path the go command refuses (a hidden element, a trailing dot) that
/// sorts after the good module, so the good one is looked at first.
#[test]
fn module_path_with_a_hidden_element() {
    let path = "example.com/zz/.hidden/x.";
    bad_name_is_refused(
        path,
        "v1.0.0",
        &[&format!("invalid module path {path:?}"), "leading dot"],
    );
}

/// A module path whose major version suffix does not match its version:
/// `module.Check` refuses `/v2` with a v1 version.
#[test]
fn module_path_major_version_not_matching_its_version() {
    let path = "example.com/zz/evil/v2";
    bad_name_is_refused(
        path,
        "v1.0.0",
        &[&format!("module {path}@v1.0.0"), "should be v2, not v1"],
    );
}

/// `m@v1.0.0.tmp-x` is the go command's own temporary directory pattern
/// for m@v1.0.0 (it would delete the tree): not a semantic version.
#[test]
fn version_like_a_go_command_temporary_directory() {
    bad_name_is_refused(
        EVIL,
        "v1.0.0.tmp-x",
        &[
            "invalid module version \"v1.0.0.tmp-x\"",
            "not a semantic version",
        ],
    );
}

/// A valid but non-canonical version never appears in a cache the go
/// command wrote, and would put a line the go command never writes in
/// `list`.
#[test]
fn non_canonical_version() {
    bad_name_is_refused(
        EVIL,
        "v1",
        &[
            "invalid module version \"v1\"",
            "the go command writes it as \"v1.0.0\"",
        ],
    );
}

/// A zip in the local content store rots after it was verified: the pull
/// says the store's copy is corrupt (not the bundle), removes it, changes
/// nothing in GOMODCACHE, and the next pull fetches it again and succeeds.
#[test]
fn corrupt_copy_in_the_local_store_is_named_and_refetched() {
    let sc = Scratch::new();
    let modcache = populated_cache(&sc);
    let (disk, _, zips) = copied_layout(&sc);
    let src = format!("oci:{}:v1", s(&disk));
    let store = fresh_store(&sc);
    // Fill the store from a pull into another cache.
    let other = sc.dir("other-modcache");
    json_ok(
        &ocigo(
            &store,
            &["pull", "--json", &src, "--gomodcache", &s(&other)],
            &[],
        ),
        "first pull",
    );
    let layer = testonly_layer(&zips);
    let stored = store.join("blobs/sha256").join(layer.hex());
    flip_byte(&stored, 200);

    let before = snapshot(&modcache);
    let out = ocigo(&store, &["pull", &src, "--gomodcache", &s(&modcache)], &[]);
    assert_exit(&out, 3, "pull with a corrupt store copy");
    assert_mentions(
        &stderr(&out),
        &["local content store", layer.as_str(), "Run the pull again"],
        "pull with a corrupt store copy",
    );
    assert_unchanged(&before, &modcache, "GOMODCACHE after the refused pull");
    assert!(!stored.exists(), "the corrupt copy is still in the store");

    json_ok(
        &ocigo(
            &store,
            &["pull", "--json", &src, "--gomodcache", &s(&modcache)],
            &[],
        ),
        "pull after the corrupt copy was removed",
    );
}
