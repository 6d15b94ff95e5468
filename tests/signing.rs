//! cosign-compatible signing: interop with the real cosign CLI and with
//! containers/image's signature policy (what skopeo and podman enforce),
//! and every refusal ending in a clear error with nothing written.
//!
//! The cosign binaries come from tests/common/cosign.rs (scripts/test.sh
//! builds them with `go install` at pinned v2 and v3 releases; `OCIGO_COSIGN`
//! and `OCIGO_COSIGN_V3` override); these tests fail, not skip, when one is
//! missing.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::registry::{Kind as RegistryKind, TestRegistry};
use ocigo::oci::{Descriptor, Repository};
use ocigo::registry::{RegistryOptions, RegistryRepository};

const PASSWORD: &str = "correct horse";

fn ocigo(store: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ocigo"));
    cmd.args(args)
        .env("OCIGO_STORE", store)
        .env("COSIGN_PASSWORD", PASSWORD)
        .env_remove("OCIGO_CONFIG")
        .env_remove("OCIGO_REQUIRE_SIGNATURE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run ocigo");
    common::ocigo::assert_json_key_style(args, &out);
    out
}

fn ok(out: &Output, what: &str) -> String {
    common::go::assert_success(out, what);
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Asserts the exit code and that stderr says `needle`; returns stderr.
fn refused(out: &Output, code: i32, needle: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.code(),
        Some(code),
        "want exit {code}\nstdout:\n{}\nstderr:\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains(needle),
        "stderr lacks {needle:?}:\n{stderr}"
    );
    stderr
}

fn cosign_cmd(dir: &Path, args: &[&str]) -> Output {
    common::cosign::run(&common::cosign::v2(), dir, PASSWORD, args)
}

/// A module bundle of the fixture project, packed once into an OCI layout.
fn bundle_layout() -> &'static Path {
    common::ocigo::fixture_bundle_layout()
}

struct Setup {
    registry: TestRegistry,
    tmp: tempfile::TempDir,
}

impl Setup {
    /// A registry holding the fixture bundle at team/mods:v1.
    fn new() -> Setup {
        Setup::on(RegistryKind::Distribution2)
    }

    /// The same on a registry of the given implementation.
    fn on(kind: RegistryKind) -> Setup {
        let registry = TestRegistry::start_kind(kind);
        let tmp = tempfile::tempdir().unwrap();
        let s = Setup { registry, tmp };
        let src = format!("oci:{}:v1", bundle_layout().display());
        ok(
            &ocigo(
                &s.store(),
                &["push", &src, &s.reference("team/mods:v1")],
                &[],
            ),
            "push",
        );
        s
    }

    fn store(&self) -> PathBuf {
        self.tmp.path().join("store")
    }

    fn reference(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.registry.addr)
    }

    fn run(&self, args: &[&str]) -> Output {
        ocigo(&self.store(), args, &[])
    }

    /// Generates an ocigo key pair named `name` in the temp dir.
    fn ocigo_key(&self, name: &str) -> (PathBuf, PathBuf) {
        let prefix = self.tmp.path().join(name);
        ok(
            &self.run(&[
                "key",
                "generate",
                "--output-prefix",
                prefix.to_str().unwrap(),
            ]),
            "key generate",
        );
        (prefix.with_extension("key"), prefix.with_extension("pub"))
    }

    fn repo(&self, name: &str) -> RegistryRepository {
        RegistryRepository::open(&self.registry.addr, name, &RegistryOptions::default()).unwrap()
    }

    fn digest(&self, repo: &str, tag: &str) -> Descriptor {
        self.repo(repo).resolve(tag).unwrap()
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn cosign_verifies_what_ocigo_signed_and_ocigo_verifies_what_cosign_signed() {
    cosign_interop(RegistryKind::Distribution2);
}

#[test]
fn cosign_interop_on_distribution_v3() {
    cosign_interop(RegistryKind::Distribution3);
}

#[test]
fn cosign_interop_on_a_registry_with_the_referrers_api() {
    cosign_interop(RegistryKind::Ggcr);
}

fn cosign_interop(kind: RegistryKind) {
    let setup = Setup::on(kind);
    let dir = setup.tmp.path();
    let (key, public) = setup.ocigo_key("ocigo");
    let reference = setup.reference("team/mods:v1");
    let out = setup.run(&[
        "sign",
        "--key",
        s(&key),
        "-a",
        "release=2026.11",
        &reference,
    ]);
    ok(&out, "ocigo sign");

    // The real cosign accepts ocigo's signature (and sees our annotation).
    let out = cosign_cmd(
        dir,
        &[
            "verify",
            "--key",
            s(&public),
            "--insecure-ignore-tlog=true",
            "--allow-http-registry=true",
            "--allow-insecure-registry=true",
            "-a",
            "release=2026.11",
            &reference,
        ],
    );
    let stdout = ok(&out, "cosign verify of an ocigo signature");
    assert!(stdout.contains("docker-manifest-digest"), "{stdout}");

    // cosign's own key pair; cosign signs (no transparency log); ocigo verifies.
    let out = cosign_cmd(
        dir,
        &["generate-key-pair", "--output-key-prefix", "cosign-made"],
    );
    ok(&out, "cosign generate-key-pair");
    let digest = setup.digest("team/mods", "v1").digest;
    let by_digest = format!("{}/team/mods@{digest}", setup.registry.addr);
    let out = cosign_cmd(
        dir,
        &[
            "sign",
            "--key",
            "cosign-made.key",
            "--tlog-upload=false",
            "--yes",
            "--allow-http-registry=true",
            "--allow-insecure-registry=true",
            &by_digest,
        ],
    );
    ok(&out, "cosign sign");
    let cosign_pub = dir.join("cosign-made.pub");
    let out = setup.run(&[
        "verify",
        "--json",
        "--key",
        s(&cosign_pub),
        "--key",
        s(&public),
        "--threshold",
        "2",
        &reference,
    ]);
    let report: serde_json::Value = serde_json::from_str(&ok(&out, "ocigo verify")).unwrap();
    assert_eq!(report["signed_by"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(
        report["signatures_found"], 2,
        "cosign appended to ours: {report}"
    );

    // Keys cross over: ocigo signs with cosign's key, cosign signs with ocigo's.
    ok(
        &setup.run(&["push", &reference, &setup.reference("team/cross:v1")]),
        "push to team/cross",
    );
    let cross = setup.reference("team/cross:v1");
    ok(
        &setup.run(&["sign", "--key", s(&dir.join("cosign-made.key")), &cross]),
        "ocigo sign with a cosign key",
    );
    let out = cosign_cmd(
        dir,
        &[
            "verify",
            "--key",
            "cosign-made.pub",
            "--insecure-ignore-tlog=true",
            "--allow-http-registry=true",
            "--allow-insecure-registry=true",
            &cross,
        ],
    );
    ok(
        &out,
        "cosign verify of an ocigo signature made with a cosign key",
    );
    let out = cosign_cmd(
        dir,
        &[
            "sign",
            "--key",
            s(&key),
            "--tlog-upload=false",
            "--yes",
            "--allow-http-registry=true",
            "--allow-insecure-registry=true",
            &format!("{}/team/cross@{digest}", setup.registry.addr),
        ],
    );
    ok(&out, "cosign sign with an ocigo key");
    ok(
        &setup.run(&["verify", "--key", s(&public), &cross]),
        "ocigo verify of a cosign signature made with an ocigo key",
    );
}

/// tests/containers-policy, a small Go program doing what `skopeo copy`
/// does before it copies: evaluate a containers-policy.json(5) against an
/// image through github.com/containers/image (the library skopeo, podman and
/// CRI-O use), reading cosign `.sig` tags as registries.d's
/// `use-sigstore-attachments: true` says. Debian's skopeo has sigstore
/// support patched out, hence this stand-in. Built once per test binary
/// (a minute the first time: module downloads and compilation into caches
/// under target/tmp); a failed build fails the test, with its output.
fn containers_policy() -> &'static Path {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    common::go::test_program(
        &BIN,
        "containers-policy",
        &["-tags", "containers_image_openpgp"],
    )
}

#[test]
fn containers_image_policy_accepts_ocigo_signature() {
    let setup = Setup::new();
    let dir = setup.tmp.path();
    let (key, public) = setup.ocigo_key("ocigo");
    let (_, other_public) = setup.ocigo_key("other");
    let reference = setup.reference("team/mods:v1");
    ok(
        &setup.run(&["sign", "--key", s(&key), &reference]),
        "ocigo sign",
    );

    let registries_d = dir.join("registries.d");
    std::fs::create_dir_all(&registries_d).unwrap();
    std::fs::write(
        registries_d.join("local.yaml"),
        format!(
            "docker:\n  {}:\n    use-sigstore-attachments: true\n",
            setup.registry.addr
        ),
    )
    .unwrap();
    // Only images of this registry signed by `key`, naming `identity`.
    let policy = |name: &str, key: &Path, identity: Option<serde_json::Value>| {
        let mut requirement = serde_json::json!({"type": "sigstoreSigned", "keyPath": key});
        if let Some(identity) = identity {
            requirement["signedIdentity"] = identity;
        }
        let path = dir.join(name);
        let policy = serde_json::json!({
            "default": [{"type": "reject"}],
            "transports": {"docker": {(setup.registry.addr.clone()): [requirement]}}
        });
        std::fs::write(&path, policy.to_string()).unwrap();
        path
    };
    let check = |policy: &Path, reference: &str| {
        Command::new(containers_policy())
            .args([
                "--policy",
                s(policy),
                "--registries-d",
                s(&registries_d),
                "--insecure",
            ])
            .arg(format!("docker://{reference}"))
            .output()
            .expect("run containers-policy")
    };
    let refuses = |out: &Output, needle: &str| {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(1),
            "want the policy to refuse\nstdout:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(needle), "want {needle:?} in:\n{stdout}");
    };
    let match_repository = || Some(serde_json::json!({"type": "matchRepository"}));
    let ours = policy("policy.json", &public, match_repository());

    // (1) ocigo's signature satisfies a sigstoreSigned requirement.
    let stdout = ok(
        &check(&ours, &reference),
        "containers-policy with a sigstoreSigned policy",
    );
    assert_eq!(stdout.trim(), "allowed");

    // Without "signedIdentity", sigstoreSigned means matchRepoDigestOrExact,
    // which refuses any signed docker-reference without a tag or digest,
    // even for a pull by digest. ocigo (like cosign) signs the bare
    // repository, `host:port/team/mods`: policies for ocigo's (and
    // cosign's) signatures need matchRepository (or exactRepository).
    let default_identity = policy("default-identity.json", &public, None);
    let not_accepted = format!(
        "Signature for identity \"{}/team/mods\" is not accepted",
        setup.registry.addr
    );
    refuses(&check(&default_identity, &reference), &not_accepted);
    let digest = setup.digest("team/mods", "v1").digest;
    let by_digest = format!("{}/team/mods@{digest}", setup.registry.addr);
    refuses(&check(&default_identity, &by_digest), &not_accepted);
    ok(&check(&ours, &by_digest), "matchRepository, by digest");

    // (2) Refused: a copy whose signature tag holds an unsigned manifest.
    ok(
        &setup.run(&["push", &reference, &setup.reference("team/unsigned:v1")]),
        "push",
    );
    let repo = setup.repo("team/unsigned");
    // push copied the signature along; remove it by pointing its tag elsewhere.
    let sig_tag = ocigo::sign::signature_tag(&digest);
    let empty = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
    repo.push_blob(
        &Descriptor::for_bytes("application/vnd.oci.empty.v1+json", b"{}"),
        &mut &b"{}"[..],
    )
    .unwrap();
    repo.push_manifest(ocigo::oci::MEDIA_TYPE_MANIFEST, empty, Some(&sig_tag))
        .unwrap();
    refuses(
        &check(&ours, &setup.reference("team/unsigned:v1")),
        "A signature was required, but no signature exists",
    );

    // Refused: a copy that kept its signature, which names team/mods.
    ok(
        &setup.run(&["push", &reference, &setup.reference("team/moved:v1")]),
        "push",
    );
    refuses(
        &check(&ours, &setup.reference("team/moved:v1")),
        "is not accepted",
    );

    // (3) Refused: the signature is not by the policy's key.
    let other = policy("other-key.json", &other_public, match_repository());
    refuses(
        &check(&other, &reference),
        "cryptographic signature verification failed",
    );
}

#[test]
fn signing_stores_the_same_bytes_apart_from_the_signature() {
    let a = Setup::new();
    let b = Setup::new();
    let (key, _) = a.ocigo_key("k");
    for s_ in [&a, &b] {
        ok(
            &s_.run(&[
                "sign",
                "--key",
                s(&key),
                "--identity",
                "example.com/team/mods",
                &s_.reference("team/mods:v1"),
            ]),
            "sign",
        );
    }
    let manifest = |s_: &Setup| {
        let repo = s_.repo("team/mods");
        let digest = repo.resolve("v1").unwrap().digest;
        let sig = repo.resolve(&ocigo::sign::signature_tag(&digest)).unwrap();
        let mut m = repo.fetch_manifest(&sig).unwrap().manifest().unwrap();
        for l in &mut m.layers {
            l.annotations.remove(ocigo::sign::SIGNATURE_ANNOTATION);
        }
        m
    };
    let (ma, mb) = (manifest(&a), manifest(&b));
    assert_eq!(ma.layers.len(), 1);
    assert_eq!(
        ma, mb,
        "payload, config and manifest must not vary between signings"
    );
}

#[test]
fn refusals_are_clear_and_write_nothing() {
    let setup = Setup::new();
    let dir = setup.tmp.path();
    let (key, public) = setup.ocigo_key("right");
    let (_, other_public) = setup.ocigo_key("other");
    let reference = setup.reference("team/mods:v1");
    ok(&setup.run(&["sign", "--key", s(&key), &reference]), "sign");
    let target = setup.digest("team/mods", "v1");
    let sig_tag = ocigo::sign::signature_tag(&target.digest);
    let repo = setup.repo("team/mods");

    // Wrong key.
    let out = setup.run(&["verify", "--key", s(&other_public), &reference]);
    let err = refused(&out, 3, "not made by any of the keys tried");
    assert!(err.contains("other.pub"), "names the key tried: {err}");

    // Threshold not met.
    let out = setup.run(&[
        "verify",
        "--key",
        s(&public),
        "--key",
        s(&other_public),
        "--threshold",
        "2",
        &reference,
    ]);
    refused(&out, 3, "1 of 2 required keys signed");

    // Corrupted PEM and wrong password.
    let broken = dir.join("broken.pub");
    std::fs::write(
        &broken,
        "-----BEGIN PUBLIC KEY-----\nnot base64!\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    refused(
        &setup.run(&["verify", "--key", s(&broken), &reference]),
        2,
        "broken.pub",
    );
    let out = ocigo(
        &setup.store(),
        &["sign", "--key", s(&key), &reference],
        &[("COSIGN_PASSWORD", "wrong")],
    );
    refused(&out, 2, "wrong password");

    // Tampered payload: the layer now points at an edited payload.
    let original = repo
        .fetch_manifest(&repo.resolve(&sig_tag).unwrap())
        .unwrap();
    let mut m = original.manifest().unwrap();
    let mut payload = Vec::new();
    std::io::Read::read_to_end(&mut repo.fetch_blob(&m.layers[0]).unwrap(), &mut payload).unwrap();
    let edited = String::from_utf8(payload)
        .unwrap()
        .replace("\"optional\":null", "\"optional\":{\"release\":\"evil\"}");
    let edited_desc =
        Descriptor::for_bytes(ocigo::sign::SIMPLE_SIGNING_MEDIA_TYPE, edited.as_bytes());
    repo.push_blob(&edited_desc, &mut edited.as_bytes())
        .unwrap();
    m.layers[0].digest = edited_desc.digest.clone();
    m.layers[0].size = edited_desc.size;
    repo.push_manifest(
        ocigo::oci::MEDIA_TYPE_MANIFEST,
        &ocigo::oci::to_canonical_json(&m),
        Some(&sig_tag),
    )
    .unwrap();
    refused(
        &setup.run(&["verify", "--key", s(&public), &reference]),
        3,
        "not made by any of the keys tried",
    );
    repo.push_manifest(
        ocigo::oci::MEDIA_TYPE_MANIFEST,
        &original.bytes,
        Some(&sig_tag),
    )
    .unwrap();
    ok(
        &setup.run(&["verify", "--key", s(&public), &reference]),
        "verify after restoring",
    );

    // A valid signature over another manifest, stored under this one's tag.
    ok(
        &setup.run(&["push", &reference, &setup.reference("team/two:v1")]),
        "push",
    );
    let two = setup.repo("team/two");
    let other_target =
        Descriptor::for_bytes(ocigo::oci::MEDIA_TYPE_MANIFEST, b"some other manifest");
    let signing_key = ocigo::sign::read_private_key_file(&key, PASSWORD.as_bytes()).unwrap();
    let other_sig = ocigo::sign::storage::sign(
        &two,
        &format!("{}/team/two", setup.registry.addr),
        &other_target,
        &signing_key,
        &BTreeMap::new(),
    )
    .unwrap();
    let other_sig_bytes = two.fetch_manifest(&other_sig).unwrap().bytes;
    two.push_manifest(
        ocigo::oci::MEDIA_TYPE_MANIFEST,
        &other_sig_bytes,
        Some(&sig_tag),
    )
    .unwrap();
    refused(
        &setup.run(&[
            "verify",
            "--key",
            s(&public),
            &setup.reference("team/two:v1"),
        ]),
        3,
        "signs another manifest",
    );

    // The signature moved (with its artifact) to another repository.
    ok(
        &setup.run(&["push", &reference, &setup.reference("team/moved:v1")]),
        "push",
    );
    let err = refused(
        &setup.run(&[
            "verify",
            "--key",
            s(&public),
            &setup.reference("team/moved:v1"),
        ]),
        3,
        "made for repository",
    );
    assert!(err.contains("team/mods"), "{err}");
    let (message, hints) = common::ocigo::split_error(&err);
    assert!(!message.contains("--expect-identity"), "{message}");
    assert!(
        hints
            .iter()
            .any(|h| h.contains("pass --expect-identity REPO")),
        "no --expect-identity hint in:\n{err}"
    );

    // The tag moved to a different manifest after signing: that one is unsigned.
    let other_layout = tempfile::tempdir().unwrap();
    let other = format!("oci:{}:v1", other_layout.path().display());
    ok(
        &setup.run(&["push", &reference, &other]),
        "copy to a layout",
    );
    ok(
        &setup.run(&["sign", "--key", s(&key), &other]),
        "sign the layout copy",
    );
    // A bundle (format v2) is an image index.
    let mut changed = repo.fetch_manifest(&target).unwrap().index().unwrap();
    changed
        .annotations
        .insert("changed".into(), "after signing".into());
    repo.push_manifest(
        ocigo::oci::MEDIA_TYPE_INDEX,
        &ocigo::oci::to_canonical_json(&changed),
        Some("v1"),
    )
    .unwrap();
    refused(
        &setup.run(&["verify", "--key", s(&public), &reference]),
        3,
        "is not signed",
    );

    // Pulls refuse before fetching any layer: GOMODCACHE and the store untouched.
    let gomodcache = dir.join("gomodcache");
    std::fs::create_dir_all(gomodcache.join("cache/download")).unwrap();
    std::fs::write(gomodcache.join("cache/download/marker"), "before").unwrap();
    let store = dir.join("pull-store");
    let pull = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["pull", "--gomodcache", s(&gomodcache)];
        all.extend_from_slice(args);
        ocigo(&store, &all, env)
    };
    refused(
        &pull(&["--verify-key", s(&public), &reference], &[]),
        3,
        "is not signed",
    );
    refused(
        &pull(
            &[
                "--verify-key",
                s(&other_public),
                &setup.reference("team/two:v1"),
            ],
            &[],
        ),
        3,
        "no valid signature",
    );
    refused(
        &pull(&[&reference], &[("OCIGO_REQUIRE_SIGNATURE", "1")]),
        3,
        "only installs signed bundles",
    );
    let config = dir.join("host-config.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"pull":{{"requireSignature":true,"verifyKeys":["{}"]}}}}"#,
            public.display()
        ),
    )
    .unwrap();
    refused(
        &pull(&[&reference], &[("OCIGO_CONFIG", s(&config))]),
        3,
        "is not signed",
    );
    let entries: Vec<_> = walk(&gomodcache);
    assert_eq!(
        entries,
        vec![gomodcache.join("cache/download/marker")],
        "GOMODCACHE changed"
    );
    let zips_in_store = walk(&store)
        .into_iter()
        .filter(|p| {
            std::fs::metadata(p)
                .map(|m| m.len() > 4096)
                .unwrap_or(false)
        })
        .count();
    assert_eq!(
        zips_in_store, 0,
        "a refused pull fetched layers into the store"
    );

    // The layout copy is signed (unbound identity) and pulls with the host config.
    let out = ocigo(
        &store,
        &["pull", "--json", "--gomodcache", s(&gomodcache), &other],
        &[("OCIGO_CONFIG", s(&config))],
    );
    let report: serde_json::Value = serde_json::from_str(&ok(&out, "verified pull")).unwrap();
    assert_eq!(
        report["signature"]["signed_by"][0],
        public.display().to_string()
    );
}

fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn host_policy_cannot_be_widened_from_the_command_line() {
    let setup = Setup::new();
    let dir = setup.tmp.path();
    let (release_key, release_pub) = setup.ocigo_key("release");
    let (attacker_key, attacker_pub) = setup.ocigo_key("attacker");
    let reference = setup.reference("team/mods:v1");
    ok(
        &setup.run(&["sign", "--key", s(&attacker_key), &reference]),
        "attacker signs",
    );
    let gomodcache = dir.join("gomodcache");
    let store = dir.join("pull-store");
    let pull = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec!["pull", "--gomodcache", s(&gomodcache)];
        args.extend_from_slice(extra);
        args.push(&reference);
        ocigo(&store, &args, env)
    };
    let policy = dir.join("policy.json");
    std::fs::write(
        &policy,
        format!(
            r#"{{"pull":{{"requireSignature":true,"verifyKeys":["{}"]}}}}"#,
            release_pub.display()
        ),
    )
    .unwrap();
    let env = [("OCIGO_CONFIG", s(&policy))];

    // The attacker's own key on the command line does not count.
    let err = refused(
        &pull(&["--verify-key", s(&attacker_pub)], &env),
        2,
        "trusts only the keys",
    );
    assert!(err.contains("attacker.pub"), "{err}");
    // With the host's key, the attacker's signature is not enough.
    refused(
        &pull(&["--verify-key", s(&release_pub)], &env),
        3,
        "no valid signature",
    );
    refused(&pull(&[], &env), 3, "no valid signature");
    refused(
        &pull(&["--expect-identity", "other/repo"], &env),
        2,
        "does not allow --expect-identity",
    );

    // Relative key paths, a missing named file, unknown switch values.
    let relative = dir.join("relative.json");
    std::fs::write(&relative, r#"{"pull":{"verifyKeys":["release.pub"]}}"#).unwrap();
    refused(
        &pull(&[], &[("OCIGO_CONFIG", s(&relative))]),
        2,
        "must be an absolute path",
    );
    refused(
        &pull(&[], &[("OCIGO_CONFIG", "/nonexistent/ocigo.json")]),
        2,
        "/nonexistent/ocigo.json",
    );
    refused(
        &pull(&[], &[("OCIGO_REQUIRE_SIGNATURE", "maybe")]),
        2,
        "OCIGO_REQUIRE_SIGNATURE",
    );
    refused(&pull(&["--threshold", "2"], &[]), 2, "need --verify-key");
    assert!(!gomodcache.exists(), "a refused pull created GOMODCACHE");

    // The release key signs; now the pull under the policy goes through.
    ok(
        &setup.run(&["sign", "--key", s(&release_key), &reference]),
        "release signs",
    );
    let out = pull(&["--json"], &env);
    let report: serde_json::Value =
        serde_json::from_str(&ok(&out, "pull under the host policy")).unwrap();
    assert_eq!(
        report["signature"]["signed_by"][0],
        release_pub.display().to_string()
    );
}

#[test]
fn layout_signatures_travel_and_merge() {
    signatures_travel_and_merge(RegistryKind::Distribution2);
}

#[test]
fn layout_signatures_travel_and_merge_on_distribution_v3() {
    signatures_travel_and_merge(RegistryKind::Distribution3);
}

#[test]
fn layout_signatures_travel_and_merge_with_the_referrers_api() {
    signatures_travel_and_merge(RegistryKind::Ggcr);
}

fn signatures_travel_and_merge(kind: RegistryKind) {
    let setup = Setup::on(kind);
    let dir = setup.tmp.path();
    let (key, public) = setup.ocigo_key("builder");
    let (offline_key, offline_pub) = setup.ocigo_key("offline");
    // Signed on a removable disk (no repository name), then pushed offline.
    let disk = format!("oci:{}:v1", dir.join("disk").display());
    ok(
        &setup.run(&["push", &setup.reference("team/mods:v1"), &disk]),
        "copy to disk",
    );
    ok(
        &setup.run(&["sign", "--key", s(&key), &disk]),
        "sign on the disk",
    );
    let airgap = setup.reference("air/mods:v1");
    let out = setup.run(&["push", "--json", &disk, &airgap]);
    let report: serde_json::Value =
        serde_json::from_str(&ok(&out, "push to the air-gapped registry")).unwrap();
    assert_eq!(report["signatures_copied"], 1, "{report}");
    ok(
        &setup.run(&["verify", "--key", s(&public), &airgap]),
        "layout signature verifies after the push",
    );

    // A countersignature made on the offline side survives a re-sync.
    ok(
        &setup.run(&["sign", "--key", s(&offline_key), &airgap]),
        "countersign",
    );
    ok(&setup.run(&["push", &disk, &airgap]), "re-sync");
    let out = setup.run(&[
        "verify",
        "--json",
        "--key",
        s(&public),
        "--key",
        s(&offline_pub),
        "--threshold",
        "2",
        &airgap,
    ]);
    let report: serde_json::Value = serde_json::from_str(&ok(&out, "both signatures")).unwrap();
    assert_eq!(report["signatures_found"], 2, "{report}");
}
