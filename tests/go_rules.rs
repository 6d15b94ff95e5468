//! ocigo's module path, file path, path/version and zip rules against the
//! real thing: tests/gojudge, a small Go program that asks
//! golang.org/x/mod (the code inside the go command) for its verdict on
//! each case of a generated corpus. ocigo must accept exactly what x/mod
//! accepts, and give the same h1 hash for every zip both accept.
//!
//! Also checks that src/gomod/unicode_tables.rs is what tools/unicodegen
//! makes of the installed Go toolchain's unicode package.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use ocigo::gomod::{ModuleVersion, check_zip, paths};
use serde_json::{Value, json};
use zip::write::SimpleFileOptions;

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// tests/gojudge built once per test binary into target/tmp (module
/// downloads through the Go module proxy into a cache of its own there,
/// the first time); a failed build fails the test with its output.
fn gojudge() -> &'static Path {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    common::go::test_program(&BIN, "gojudge", &[])
}

/// Sends every request to one gojudge process and returns its answers,
/// in order.
fn ask(requests: &[Value]) -> Vec<Value> {
    let mut child = Command::new(gojudge())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run gojudge");
    let mut stdin = child.stdin.take().unwrap();
    let input: String = requests.iter().map(|r| format!("{r}\n")).collect();
    let writer = std::thread::spawn(move || {
        stdin.write_all(input.as_bytes()).expect("write to gojudge");
    });
    let answers: Vec<Value> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(|l| serde_json::from_str(&l.expect("read gojudge")).expect("gojudge JSON"))
        .collect();
    writer.join().unwrap();
    assert!(child.wait().unwrap().success(), "gojudge failed");
    assert_eq!(answers.len(), requests.len(), "one answer per request");
    answers
}

/// Path elements: ASCII punctuation one by one, Windows names, dots and
/// tildes, and Unicode that Go and Rust judge differently (letters by
/// `unicode.IsLetter`, folding by `unicode.SimpleFold`).
fn atoms() -> Vec<String> {
    let mut v: Vec<String> = [
        "a", "A", "abc", "x.go", "go.mod", "GO.MOD", "Go.mod", "LICENSE", "license", ".hidden",
        "-dash", "_u", "~t", "x~", "x~1", "x~1.go", "x~a", "PROGRA~1", "con", "CON", "Con.txt",
        "con-x", "CONSOLE", "com1", "COM9.go", "COM10", "com", "lpt1", "LPT9.a.b", "aux", "AUX.",
        "nul", "NUL.go", "prn", "a.", "a..b", ".", "..", "...", ".a.", "v0", "v1", "v2", "v02",
        "v2.0", "v10", "v", "vendor", "a b", " a", "a ", "a\tb", "a\u{0}b", "a\u{7f}b", "a\u{1b}b",
        "\u{c}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for c in "!\"#$%&'()*+,-.:;<=>?@[\\]^_`{|}~".chars() {
        v.push(format!("a{c}b"));
        v.push(c.to_string());
    }
    for u in [
        "ß",
        "ẞ",
        "ſ",
        "s",
        "S",
        "\u{212a}",
        "k",
        "K",
        "Σ",
        "σ",
        "ς",
        "İ",
        "ı",
        "i",
        "I",
        "Ａ",
        "ａ",
        "ｶ",
        "é",
        "e\u{301}",
        "\u{301}",
        "\u{2160}",
        "\u{2170}",
        "\u{3007}",
        "\u{16ee}",
        "٣",
        "²",
        "½",
        "ǅ",
        "ǆ",
        "Ǆ",
        "ʰ",
        "々",
        "中文",
        "ᴄon",
        "\u{200b}",
        "\u{a0}",
        "\u{feff}",
        "\u{10400}",
        "\u{10428}",
        "\u{ab70}",
        "\u{13a0}",
        "\u{1e900}",
        "\u{212b}",
        "å",
        "Å",
        "µ",
        "μ",
        "Μ",
        "ﬀ",
        "ϐ",
        "β",
        "\u{345}",
        "ι",
        "😀",
        "\u{e000}",
        "\u{fffd}",
        "𝒜",
        "ℵ",
        "\u{1f1e6}",
        "ǰ",
        "ΐ",
        "\u{1fd3}",
        "ȷ",
        "ⓐ",
        "Ⓐ",
        "\u{10d0}",
        "\u{1c90}",
        "\u{a7c0}",
        "\u{1e921}",
    ] {
        v.push(u.to_string());
        v.push(format!("{u}.go"));
    }
    // Long, but within the 255-byte name limit of Linux file systems (x/mod
    // sets no limit; its Unzip and ocigo's extraction both meet the OS's).
    v.push("x".repeat(255));
    v.push(format!("{}.go", "é".repeat(126)));
    v
}

/// Whole paths built from the atoms, plus structural cases.
fn path_corpus() -> Vec<String> {
    let atoms = atoms();
    let mut out: BTreeSet<String> = BTreeSet::new();
    for a in &atoms {
        for p in [
            a.clone(),
            format!("example.com/{a}"),
            format!("example.com/{a}/x"),
            format!("d/{a}"),
            format!("{a}/x"),
            format!("{a}.com/x"),
            format!("{a}.example.com"),
            format!("gopkg.in/{a}"),
            format!("gopkg.in/{a}.v1"),
            format!("example.com/m/{a}"),
        ] {
            out.insert(p);
        }
    }
    for p in [
        "",
        "/",
        "//",
        "a//b",
        "a/",
        "/a",
        "-a",
        "a/-b",
        "a/./b",
        "a/../b",
        "a/b/",
        ".a/b",
        "a/.b",
        "example.com",
        "example.com/",
        "example.com/v2",
        "example.com/m/v1",
        "example.com/m/v2",
        "example.com/m/v02",
        "example.com/m/v2.0",
        "example.com/m/v2.",
        "example.com/m/v100",
        "example.com/m/v1x",
        "example.com/m/2",
        "Example.com/m",
        "EXAMPLE.COM",
        "example_x.com/m",
        "example~x.com/m",
        "-example.com",
        "example-.com/m",
        "x.-y",
        "a-.b",
        "localhost/m",
        "127.0.0.1/m",
        "example.com:8080/m",
        "gopkg.in/yaml.v2",
        "gopkg.in/yaml.v0",
        "gopkg.in/yaml.v01",
        "gopkg.in/yaml.v",
        "gopkg.in/yaml",
        "gopkg.in/yaml/v2",
        "gopkg.in/yaml.v2-unstable",
        "gopkg.in/yaml.v2-unstable-x",
        "gopkg.in/src-d/go-git.v4",
        "gopkg.in/.v1",
        "gopkg.in.v1",
        "cache/download/golang.org/x/sync/@v",
        "cache/download/sumdb/sum.golang.org/lookup/golang.org/x/sync",
        "golang.org/x/mod",
        "github.com/Azure/azure-sdk-for-go/sdk/azcore",
        "github.com/c++/x",
    ] {
        out.insert(p.to_string());
    }
    out.into_iter().collect()
}

fn hexs(s: &str) -> String {
    hex::encode(s.as_bytes())
}

#[test]
fn path_rules_match_x_mod() {
    let corpus = path_corpus();
    assert!(corpus.len() > 1500, "{} paths", corpus.len());
    type Rule = fn(&str) -> Result<(), String>;
    let ops: [(&str, Rule); 3] = [
        ("path", paths::check_path),
        ("import", paths::check_import_path),
        ("file", paths::check_file_path),
    ];
    let mut requests = Vec::new();
    for (op, _) in &ops {
        for p in &corpus {
            requests.push(json!({"op": op, "path": hexs(p)}));
        }
    }
    let answers = ask(&requests);
    let mut mismatches = Vec::new();
    let mut answers = answers.iter();
    for (op, rule) in &ops {
        let (mut accepted, mut refused) = (0, 0);
        for p in &corpus {
            let go = answers.next().unwrap();
            let go_ok = go["ok"].as_bool().unwrap();
            let ours = rule(p);
            if go_ok {
                accepted += 1;
            } else {
                refused += 1;
            }
            if ours.is_ok() != go_ok {
                mismatches.push(format!(
                    "{op} {p:?}: x/mod says {}, ocigo says {ours:?}",
                    if go_ok {
                        "ok"
                    } else {
                        go["err"].as_str().unwrap()
                    }
                ));
            }
        }
        // Both verdicts in quantity: the corpus really exercises the rule.
        assert!(
            accepted > 100 && refused > 100,
            "{op}: {accepted} accepted, {refused} refused"
        );
    }
    assert!(
        mismatches.is_empty(),
        "{} disagreements with x/mod:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn path_and_version_rules_match_x_mod() {
    let module_paths = [
        "example.com/m",
        "example.com/m/v2",
        "example.com/m/v3",
        "example.com/m/v1",
        "example.com/m/v0",
        "example.com/m/v02",
        "example.com/v2",
        "example.com",
        "gopkg.in/yaml.v2",
        "gopkg.in/yaml.v1",
        "gopkg.in/check.v1",
        "gopkg.in/yaml.v0",
        "gopkg.in/yaml.v3-unstable",
        "gopkg.in/yaml.v1-unstable",
        "gopkg.in/yaml",
        "gopkg.in/a/b.v3",
        "Example.com/m",
        "example.com/m/.x",
    ];
    let versions = [
        "v0.1.0",
        "v1.0.0",
        "v1.2.3",
        "v2.0.0",
        "v3.1.4",
        "v0.0.0-20200101000000-abcdefabcdef",
        "v1.0.0-20200101000000-abcdefabcdef",
        "v2.0.0-20200101000000-abcdefabcdef",
        "v3.0.0-20200101000000-abcdefabcdef",
        "v0.0.0-rc1",
        "v2.0.0+incompatible",
        "v1.0.0+incompatible",
        "v3.0.0+incompatible",
        "v2.0.0-pre+incompatible",
        "v2.0.0+meta",
        "v1.0.0+meta",
        "v1",
        "v2",
        "v1.2",
        "v2.1",
        "v1.0.0-rc.1",
        "v1.0.0-RC1",
        "v1.0.0-01",
        "1.0.0",
        "",
        "v01.0.0",
        "v1.0.0.tmp-1",
        "none",
        "latest",
    ];
    let mut requests = Vec::new();
    let mut cases = Vec::new();
    for p in module_paths {
        for v in versions {
            requests.push(json!({"op": "check", "path": hexs(p), "version": v}));
            cases.push((p, v));
        }
    }
    let answers = ask(&requests);
    let mut mismatches = Vec::new();
    let (mut accepted, mut refused) = (0, 0);
    for ((p, v), go) in cases.iter().zip(&answers) {
        let go_check = go["ok"].as_bool().unwrap();
        let go_zip = go_check && go["canonical"].as_bool().unwrap_or(false);
        if go_zip {
            accepted += 1;
        } else {
            refused += 1;
        }
        let check = paths::check(p, v);
        if check.is_ok() != go_check {
            mismatches.push(format!(
                "module.Check({p:?}, {v:?}): x/mod {go}, ocigo {check:?}"
            ));
        }
        let zip_rule = paths::check_module_version(p, v);
        if zip_rule.is_ok() != go_zip {
            mismatches.push(format!(
                "canonical + Check({p:?}, {v:?}): x/mod {go}, ocigo {zip_rule:?}"
            ));
        }
    }
    assert!(
        accepted > 30 && refused > 30,
        "{accepted} accepted, {refused} refused"
    );
    assert!(
        mismatches.is_empty(),
        "{} disagreements with x/mod:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

// ---------------------------------------------------------------- zips

const M: &str = "example.com/m";
const V: &str = "v1.0.0";

fn name(rel: &str) -> String {
    format!("{M}@{V}/{rel}")
}

/// One zip of the corpus: what to write and for which module.
struct ZipCase {
    what: String,
    module: ModuleVersion,
    bytes: Vec<u8>,
}

enum Entry<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
}

fn write_zip(entries: &[Entry]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644);
    for e in entries {
        match e {
            Entry::File(n, data) => {
                w.start_file(*n, opts).unwrap();
                w.write_all(data).unwrap();
            }
            Entry::Dir(n) => w.add_directory(*n, opts).unwrap(),
            Entry::Symlink(n, to) => w.add_symlink(*n, *to, opts).unwrap(),
        }
    }
    w.finish().unwrap().into_inner()
}

/// Replaces each occurrence of `from` by `to` (same length) in the zip's
/// bytes: in local headers and central directory alike. Zip writers refuse
/// duplicate and non-UTF-8 names; this makes them.
fn rename(mut bytes: Vec<u8>, from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut i = 0;
    let mut n = 0;
    while let Some(at) = bytes[i..].windows(from.len()).position(|w| w == from) {
        bytes[i + at..i + at + to.len()].copy_from_slice(to);
        i += at + to.len();
        n += 1;
    }
    assert!(n >= 1, "{from:?} not found");
    bytes
}

/// Sets the declared uncompressed size of the first entry (local header
/// and central directory).
fn declare_size(mut bytes: Vec<u8>, size: u32) -> Vec<u8> {
    assert_eq!(&bytes[0..4], b"PK\x03\x04");
    bytes[22..26].copy_from_slice(&size.to_le_bytes());
    let central = bytes
        .windows(4)
        .position(|w| w == b"PK\x01\x02")
        .expect("central directory");
    bytes[central + 24..central + 28].copy_from_slice(&size.to_le_bytes());
    bytes
}

fn case(what: impl Into<String>, bytes: Vec<u8>) -> ZipCase {
    ZipCase {
        what: what.into(),
        module: ModuleVersion {
            path: M.into(),
            version: V.into(),
        },
        bytes,
    }
}

fn zip_corpus() -> Vec<ZipCase> {
    let go_mod = name("go.mod");
    let gm: &[u8] = b"module example.com/m\n";
    let mut cases = Vec::new();
    // Each atom as a file name at the root and below a directory.
    for a in atoms() {
        for rel in [a.clone(), format!("sub/{a}")] {
            let n = name(&rel);
            let bytes = if n == go_mod {
                write_zip(&[Entry::File(&n, gm)])
            } else {
                write_zip(&[Entry::File(&go_mod, gm), Entry::File(&n, b"x\n")])
            };
            cases.push(case(format!("file {rel:?}"), bytes));
        }
    }
    // Pairs of single-rune names: collide exactly when EqualFold says so.
    let letters = [
        "a", "A", "s", "S", "ſ", "k", "K", "\u{212a}", "ß", "ẞ", "σ", "ς", "Σ", "i", "I", "İ", "ı",
        "µ", "μ", "Μ", "å", "Å", "\u{212b}", "ǅ", "ǆ", "Ǆ", "β", "ϐ", "ι", "\u{1fbe}", "\u{10d0}",
        "\u{1c90}",
    ];
    for (i, x) in letters.iter().enumerate() {
        for y in &letters[i + 1..] {
            let (nx, ny) = (name(&format!("{x}.go")), name(&format!("d/{y}/z")));
            let (nx2, ny2) = (name(&format!("d/{x}/a")), name(&format!("d/{y}/b")));
            cases.push(case(
                format!("files {x:?} and dir {y:?}"),
                write_zip(&[Entry::File(&nx, b"1"), Entry::File(&ny, b"2")]),
            ));
            cases.push(case(
                format!("dirs {x:?} and {y:?}"),
                write_zip(&[Entry::File(&nx2, b"1"), Entry::File(&ny2, b"2")]),
            ));
            let (fx, fy) = (name(&format!("{x}.go")), name(&format!("{y}.go")));
            cases.push(case(
                format!("files {x:?} and {y:?}"),
                write_zip(&[Entry::File(&fx, b"1"), Entry::File(&fy, b"2")]),
            ));
        }
    }

    let big = vec![0u8; 16 << 20];
    let big1 = vec![0u8; (16 << 20) + 1];
    let (a_go, b_go) = (name("a.go"), name("b.go"));
    let (d1, d2) = (name("dd1/"), name("dd2/"));
    let root = format!("{M}@{V}/");
    cases.extend([
        case("empty zip", write_zip(&[])),
        case("root entry only", write_zip(&[Entry::Dir(&root)])),
        case(
            "directory entries",
            write_zip(&[
                Entry::Dir(&root),
                Entry::Dir(&d1),
                Entry::File(&name("dd1/x.go"), b"package x\n"),
                Entry::Dir(&name("empty/")),
            ]),
        ),
        case(
            "duplicate directory entries",
            rename(
                write_zip(&[Entry::Dir(&d1), Entry::Dir(&d2), Entry::File(&go_mod, gm)]),
                d2.as_bytes(),
                d1.as_bytes(),
            ),
        ),
        case(
            "duplicate root entries",
            rename(
                write_zip(&[
                    Entry::Dir(&root),
                    Entry::Dir(&format!("{M}@v1.0.9/")),
                    Entry::File(&go_mod, gm),
                ]),
                format!("{M}@v1.0.9/").as_bytes(),
                root.as_bytes(),
            ),
        ),
        case(
            "hidden duplicate file",
            rename(
                write_zip(&[
                    Entry::File(&go_mod, gm),
                    Entry::File(&b_go, b"package evil\n"),
                    Entry::File(&a_go, b"package good\n"),
                ]),
                b_go.as_bytes(),
                a_go.as_bytes(),
            ),
        ),
        case(
            "duplicate go.mod",
            rename(
                write_zip(&[
                    Entry::File(&go_mod, gm),
                    Entry::File(&name("go.mox"), b"module evil\n"),
                ]),
                name("go.mox").as_bytes(),
                go_mod.as_bytes(),
            ),
        ),
        case(
            "file and directory of one name",
            write_zip(&[
                Entry::File(&name("a"), b"x"),
                Entry::File(&name("a/b"), b"y"),
            ]),
        ),
        case(
            "file and directory entry of one name",
            write_zip(&[Entry::File(&name("a"), b"x"), Entry::Dir(&name("a/"))]),
        ),
        case(
            "directories differing in case",
            write_zip(&[
                Entry::File(&name("D/x"), b"x"),
                Entry::File(&name("d/y"), b"y"),
            ]),
        ),
        case(
            "go.mod in a subdirectory",
            write_zip(&[
                Entry::File(&go_mod, gm),
                Entry::File(&name("sub/go.mod"), gm),
            ]),
        ),
        case(
            "GO.MOD in a subdirectory",
            write_zip(&[Entry::File(&name("sub/GO.MOD"), gm)]),
        ),
        case(
            "directory named go.mod",
            write_zip(&[Entry::File(&name("go.mod/x.go"), b"x")]),
        ),
        case(
            "directory entry named go.mod",
            write_zip(&[Entry::Dir(&name("go.mod/"))]),
        ),
        case("go.mod of 16 MiB", write_zip(&[Entry::File(&go_mod, &big)])),
        case(
            "go.mod over 16 MiB",
            write_zip(&[Entry::File(&go_mod, &big1)]),
        ),
        case(
            "LICENSE over 16 MiB",
            write_zip(&[Entry::File(&name("LICENSE"), &big1)]),
        ),
        case(
            "sub/LICENSE over 16 MiB",
            write_zip(&[Entry::File(&name("sub/LICENSE"), &big1)]),
        ),
        case(
            "license over 16 MiB",
            write_zip(&[Entry::File(&name("license"), &big1)]),
        ),
        case(
            "entry outside the prefix",
            write_zip(&[
                Entry::File(&go_mod, gm),
                Entry::File("other@v1.0.0/x.go", b"x"),
            ]),
        ),
        case(
            "prefix without its slash",
            write_zip(&[Entry::File(&format!("{M}@{V}"), b"x")]),
        ),
        case(
            "entry of another version",
            write_zip(&[Entry::File(&format!("{M}@v1.0.1/x.go"), b"x")]),
        ),
        case(
            "symlink-mode entry",
            write_zip(&[
                Entry::File(&go_mod, gm),
                Entry::Symlink(&name("link"), "/etc/passwd"),
            ]),
        ),
        case(
            "declares more than it holds",
            declare_size(write_zip(&[Entry::File(&a_go, b"package a\n")]), 100),
        ),
        case(
            "declares less than it holds",
            declare_size(write_zip(&[Entry::File(&a_go, b"package a\n")]), 3),
        ),
        case(
            "non-UTF-8 name",
            rename(
                write_zip(&[Entry::File(&name("QQ.go"), b"x")]),
                b"QQ.go",
                b"\xff\xfe.go",
            ),
        ),
        case(
            "name with a newline",
            rename(
                write_zip(&[Entry::File(&name("a_b.go"), b"x")]),
                b"a_b.go",
                b"a\nb.go",
            ),
        ),
        case(
            "vendored files",
            write_zip(&[
                Entry::File(&go_mod, b"module example.com/m\n\ngo 1.24\n"),
                Entry::File(&name("vendor/modules.txt"), b"# x\n"),
                Entry::File(&name("vendor/example.org/x/x.go"), b"package x\n"),
                Entry::File(&name("a/vendor/b/c.go"), b"package c\n"),
            ]),
        ),
        case(
            "hg archival file and VCS directories",
            write_zip(&[
                Entry::File(&name(".hg_archival.txt"), b"x"),
                Entry::File(&name(".git/config"), b"x"),
            ]),
        ),
    ]);
    // Stored, then a content byte flipped: the CRC-32 no longer matches.
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    w.start_file(a_go.as_str(), stored).unwrap();
    w.write_all(b"package a // CRCME\n").unwrap();
    let bytes = rename(w.finish().unwrap().into_inner(), b"CRCME", b"CRCMF");
    cases.push(case("CRC-32 mismatch", bytes));

    // Written as a stream: sizes and CRC-32 follow the data in a data
    // descriptor (flag bit 3); then the descriptor's CRC-32 made wrong.
    let mut w = zip::ZipWriter::new_stream(Vec::new());
    w.start_file(a_go.as_str(), SimpleFileOptions::default())
        .unwrap();
    w.write_all(b"package a\n").unwrap();
    let streamed = w.finish().unwrap().into_inner();
    let at = streamed
        .windows(4)
        .position(|w| w == b"PK\x07\x08")
        .expect("a data descriptor");
    let mut bad_descriptor = streamed.clone();
    bad_descriptor[at + 4] ^= 0xff;
    // Archive comments, and an end record that undercounts the directory.
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.set_comment("a comment PK").unwrap();
    w.start_file(a_go.as_str(), SimpleFileOptions::default())
        .unwrap();
    w.write_all(b"package a\n").unwrap();
    cases.push(case("archive comment", w.finish().unwrap().into_inner()));
    let mut undercount = write_zip(&[Entry::File(&go_mod, gm), Entry::File(&a_go, b"x")]);
    let end = undercount
        .windows(4)
        .rposition(|w| w == b"PK\x05\x06")
        .unwrap();
    undercount[end + 8..end + 12].copy_from_slice(&[1, 0, 1, 0]);
    cases.push(case("end record counting one entry of two", undercount));
    cases.push(case("data descriptor", streamed));
    cases.push(case("data descriptor with a wrong CRC-32", bad_descriptor));

    // Module paths and versions.
    for (path, version, ok_hint) in [
        ("example.com/m/v2", "v1.0.0", "mismatched major"),
        ("example.com/m/v2", "v2.0.0", "matching major"),
        ("example.com/m", "v2.0.0", "v2 without suffix"),
        ("example.com/m", "v2.0.0+incompatible", "+incompatible"),
        ("example.com/m", "v1.0", "non-canonical"),
        ("example.com/m", "v1.0.0+meta", "build metadata"),
        ("gopkg.in/yaml.v2", "v2.4.0", "gopkg.in"),
        ("gopkg.in/yaml.v2", "v1.0.0", "gopkg.in mismatched"),
        ("Example.com/m", "v1.0.0", "upper-case domain"),
    ] {
        let prefix = format!("{path}@{version}/");
        let bytes = write_zip(&[Entry::File(
            &format!("{prefix}go.mod"),
            format!("module {path}\n").as_bytes(),
        )]);
        cases.push(ZipCase {
            what: format!("module {path}@{version} ({ok_hint})"),
            module: ModuleVersion {
                path: path.into(),
                version: version.into(),
            },
            bytes,
        });
    }
    cases
}

#[test]
fn zip_rules_and_hashes_match_x_mod() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = zip_corpus();
    let mut requests = Vec::new();
    let mut files = Vec::new();
    for (i, c) in corpus.iter().enumerate() {
        let f = dir.path().join(format!("{i}.zip"));
        std::fs::write(&f, &c.bytes).unwrap();
        requests.push(json!({
            "op": "zip",
            "path": hexs(&c.module.path),
            "version": c.module.version,
            "zip": s(&f),
        }));
        files.push(f);
    }
    let answers = ask(&requests);
    let mut mismatches = Vec::new();
    let (mut accepted, mut refused) = (0, 0);
    for ((c, f), go) in corpus.iter().zip(&files).zip(&answers) {
        let go_ok = go["ok"].as_bool().unwrap();
        let ours = check_zip(f, &c.module, "corpus");
        if go_ok {
            accepted += 1;
        } else {
            refused += 1;
        }
        match (&ours, go_ok) {
            (Ok(summary), true) => {
                let go_h1 = go["h1"].as_str().unwrap();
                if summary.h1 != go_h1 {
                    mismatches.push(format!("{}: h1 {} but x/mod {go_h1}", c.what, summary.h1));
                }
            }
            (Err(_), false) => {}
            (Ok(_), false) => mismatches.push(format!(
                "{}: ocigo accepts, x/mod refuses: {}",
                c.what, go["err"]
            )),
            (Err(e), true) => {
                mismatches.push(format!("{}: x/mod accepts, ocigo refuses: {e:#}", c.what))
            }
        }
    }
    assert!(
        accepted > 150 && refused > 150,
        "{accepted} accepted, {refused} refused"
    );
    assert!(
        mismatches.is_empty(),
        "{} disagreements with x/mod:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

/// src/gomod/unicode_tables.rs is exactly what tools/unicodegen prints with
/// the installed Go toolchain.
#[test]
fn unicode_tables_are_generated_from_go() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = common::go::go(
        &root.join("tools/unicodegen"),
        &["run", "."],
        &[("GOFLAGS", "-mod=mod"), ("GOPROXY", "off")],
    );
    common::go::assert_success(&out, "go run tools/unicodegen");
    let committed = std::fs::read(root.join("src/gomod/unicode_tables.rs")).unwrap();
    assert!(
        out.stdout == committed,
        "src/gomod/unicode_tables.rs is stale for this Go toolchain (its unicode package is \
         not Unicode {}); regenerate: (cd tools/unicodegen && go run .) > src/gomod/unicode_tables.rs",
        ocigo::gomod::unicode::UNICODE_VERSION
    );
}

/// Where ocigo is deliberately stricter than x/mod (README, "What pull
/// writes"): zips the go command never makes, which zip readers can read
/// differently. x/mod accepts each (checked, so the list stays honest);
/// ocigo refuses each as an integrity failure.
#[test]
fn stricter_than_x_mod_only_where_documented() {
    let a_go = name("a.go");
    let good = write_zip(&[Entry::File(&a_go, b"package a\n")]);
    let mut prepended = b"#!/bin/sh\nexit 0\n".to_vec();
    prepended.extend_from_slice(&good);
    // A second end record inside the archive comment: archive/zip takes the
    // last one (and sees an empty zip), the zip crate the real one.
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let fake_end =
        String::from_utf8(b"PK\x05\x06".iter().chain(&[0u8; 18]).copied().collect()).unwrap();
    w.set_comment(fake_end).unwrap();
    w.start_file(a_go.as_str(), SimpleFileOptions::default())
        .unwrap();
    w.write_all(b"package a\n").unwrap();
    let two_ends = w.finish().unwrap().into_inner();
    // archive/zip skips the CRC-32 check when the recorded CRC-32 is zero.
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    w.start_file(a_go.as_str(), stored).unwrap();
    w.write_all(b"package a\n").unwrap();
    let mut zero_crc = w.finish().unwrap().into_inner();
    zero_crc[14..18].copy_from_slice(&[0; 4]);
    let central = zero_crc
        .windows(4)
        .position(|w| w == b"PK\x01\x02")
        .unwrap();
    zero_crc[central + 16..central + 20].copy_from_slice(&[0; 4]);

    let cases = [
        case("control", good),
        case("data before the zip", prepended),
        case("a second end record in the comment", two_ends),
        case("zero CRC-32 on a non-empty file", zero_crc),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut requests = Vec::new();
    let mut files = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let f = dir.path().join(format!("{i}.zip"));
        std::fs::write(&f, &c.bytes).unwrap();
        requests.push(json!({"op": "zip", "path": hexs(M), "version": V, "zip": s(&f)}));
        files.push(f);
    }
    let answers = ask(&requests);
    for ((c, f), go) in cases.iter().zip(&files).zip(&answers) {
        assert!(
            go["ok"].as_bool().unwrap(),
            "{}: x/mod refuses: {go}",
            c.what
        );
        let ours = check_zip(f, &c.module, "stricter");
        if c.what == "control" {
            assert_eq!(ours.unwrap().h1, go["h1"].as_str().unwrap());
            continue;
        }
        let e = match ours {
            Ok(_) => panic!("{}: ocigo accepts", c.what),
            Err(e) => e,
        };
        assert_eq!(
            ocigo::error::kind_of(&e),
            Some(ocigo::error::Kind::Integrity),
            "{}: {e:#}",
            c.what
        );
    }
}
