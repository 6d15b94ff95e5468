//! cosign v3's world: sigstore bundles (DSSE, in-toto) as OCI 1.1
//! referrers, attestations, and the CycloneDX SBOM attestation, judged by
//! the real cosign v3 (and v2 for legacy signatures), on a registry with
//! the referrers API (tests/refregistry) and on one without (distribution
//! 2.8, fallback tags); a CycloneDX validator from PyPI judges the SBOM.
//! Every refusal exits 3 and writes nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use common::fixtures;
use common::ocigo::{assert_exit, json_ok, ocigo, stderr, stdout};
use common::registry::{Kind as RegistryKind, TestRegistry};
use ocigo::oci::{Descriptor, Referrers as _, Repository};
use ocigo::registry::{RegistryOptions, RegistryRepository};
use ocigo::sign::{bundle, dsse};

const PASSWORD: &str = "correct horse";
const CYCLONEDX: &str = "https://cyclonedx.org/bom";
const COSIGN_HTTP: [&str; 2] = [
    "--allow-http-registry=true",
    "--allow-insecure-registry=true",
];

/// A module bundle of the fixture project, packed once into an OCI layout.
fn bundle_layout() -> &'static Path {
    common::ocigo::fixture_bundle_layout()
}

struct Setup {
    registry: TestRegistry,
    tmp: tempfile::TempDir,
    key: PathBuf,
    public: PathBuf,
}

impl Setup {
    /// A registry of `kind` holding the fixture bundle at team/mods:v1, and
    /// an ocigo key pair.
    fn on(kind: RegistryKind) -> Setup {
        let registry = TestRegistry::start_kind(kind);
        let tmp = tempfile::tempdir().unwrap();
        let prefix = tmp.path().join("release");
        let s = Setup {
            registry,
            key: prefix.with_extension("key"),
            public: prefix.with_extension("pub"),
            tmp,
        };
        assert_exit(
            &s.run(&["key", "generate", "--output-prefix", p(&prefix)]),
            0,
            "key generate",
        );
        let src = format!("oci:{}:v1", bundle_layout().display());
        assert_exit(
            &s.run(&["push", &src, &s.reference("team/mods:v1")]),
            0,
            "push",
        );
        s
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    fn reference(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.registry.addr)
    }

    fn run(&self, args: &[&str]) -> Output {
        ocigo(
            &self.tmp.path().join("store"),
            args,
            &[("COSIGN_PASSWORD", PASSWORD)],
        )
    }

    fn repo(&self, name: &str) -> RegistryRepository {
        RegistryRepository::open(&self.registry.addr, name, &RegistryOptions::default()).unwrap()
    }

    fn target(&self) -> Descriptor {
        self.repo("team/mods").resolve("v1").unwrap()
    }

    fn cosign(&self, bin: &Path, args: &[&str]) -> Output {
        common::cosign::run(bin, self.dir(), PASSWORD, args)
    }
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn ok(out: &Output, what: &str) -> String {
    assert_exit(out, 0, what);
    stdout(out)
}

/// Asserts exit `code` and that stderr says `needle`.
fn refused(out: &Output, code: i32, needle: &str) {
    assert_exit(out, code, needle);
    let err = stderr(out);
    assert!(err.contains(needle), "stderr lacks {needle:?}:\n{err}");
}

fn with_http<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut v = args.to_vec();
    v.extend(COSIGN_HTTP);
    v
}

/// The formats of the valid signatures `ocigo verify --json` reports.
fn formats(report: &serde_json::Value) -> Vec<String> {
    let mut f: Vec<String> = report["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["format"].as_str().unwrap().to_string())
        .collect();
    f.sort();
    f
}

fn bundle_interop(kind: RegistryKind) {
    let s = Setup::on(kind);
    let v3 = common::cosign::v3();
    let reference = s.reference("team/mods:v1");
    let out = s.run(&[
        "sign",
        "--json",
        "--format",
        "bundle",
        "--key",
        p(&s.key),
        "-a",
        "release=2026.11",
        &reference,
    ]);
    let signed = json_ok(&out, "ocigo sign --format bundle");
    assert_eq!(signed["format"], "bundle");
    assert!(signed.get("signature_tag").is_none(), "{signed}");
    // Stored as a referrer: no legacy tag, and no fallback tag where the
    // registry has the API.
    let target = s.target();
    let tags = s.repo("team/mods").list_tags().unwrap();
    assert!(
        !tags.contains(&ocigo::sign::signature_tag(&target.digest)),
        "{tags:?}"
    );
    assert_eq!(
        tags.contains(&ocigo::oci::referrers_tag(&target.digest)),
        !kind.has_referrers_api(),
        "{kind:?}: {tags:?}"
    );
    let listed = s.repo("team/mods").referrers(&target.digest, None).unwrap();
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(
        listed[0].artifact_type.as_deref(),
        Some(bundle::BUNDLE_MEDIA_TYPE)
    );
    assert_eq!(
        listed[0].annotations[bundle::PREDICATE_TYPE_ANNOTATION],
        bundle::SIGN_PREDICATE_TYPE
    );
    // Signing again adds nothing (deterministic bundle, same referrer).
    let again = json_ok(
        &s.run(&[
            "sign",
            "--json",
            "--format",
            "bundle",
            "--key",
            p(&s.key),
            "-a",
            "release=2026.11",
            &reference,
        ]),
        "sign again",
    );
    assert_eq!(again["signature_manifest"], signed["signature_manifest"]);
    assert_eq!(
        s.repo("team/mods")
            .referrers(&target.digest, None)
            .unwrap()
            .len(),
        1
    );

    // cosign v3 accepts it, annotation included.
    let out = s.cosign(
        &v3,
        &with_http(&[
            "verify",
            "--key",
            p(&s.public),
            "--insecure-ignore-tlog=true",
            "-a",
            "release=2026.11",
            &reference,
        ]),
    );
    let verified = ok(&out, "cosign v3 verify of an ocigo bundle");
    assert!(verified.contains(target.digest.as_str()), "{verified}");
    // And refuses it for another key: the check is real.
    let other = s.dir().join("other");
    ok(
        &s.run(&["key", "generate", "--output-prefix", p(&other)]),
        "key generate",
    );
    let out = s.cosign(
        &v3,
        &with_http(&[
            "verify",
            "--key",
            p(&other.with_extension("pub")),
            "--insecure-ignore-tlog=true",
            &reference,
        ]),
    );
    assert!(!out.status.success(), "cosign v3 accepted a wrong key");

    // cosign v3 signs with its own key and no transparency log; ocigo
    // verifies it and says it was a bundle.
    ok(
        &s.cosign(&v3, &["signing-config", "create", "--out", "no-log.json"]),
        "cosign signing-config create",
    );
    ok(
        &s.cosign(
            &v3,
            &["generate-key-pair", "--output-key-prefix", "cosign-made"],
        ),
        "cosign generate-key-pair",
    );
    let by_digest = format!("{}/team/mods@{}", s.registry.addr, target.digest);
    ok(
        &s.cosign(
            &v3,
            &with_http(&[
                "sign",
                "--key",
                "cosign-made.key",
                "--signing-config",
                "no-log.json",
                "--yes",
                "-a",
                "by=cosign",
                &by_digest,
            ]),
        ),
        "cosign v3 sign",
    );
    let cosign_pub = s.dir().join("cosign-made.pub");
    let out = s.run(&[
        "verify",
        "--json",
        "--key",
        p(&cosign_pub),
        "--key",
        p(&s.public),
        "--threshold",
        "2",
        &reference,
    ]);
    let report = json_ok(&out, "ocigo verify of cosign v3 and ocigo bundles");
    assert_eq!(formats(&report), vec!["bundle", "bundle"], "{report:#}");
    assert_eq!(report["signatures_found"], 2, "{report:#}");
    assert_eq!(report["transparency_log_not_checked"], false);
    let by_cosign = report["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["key"] == p(&cosign_pub))
        .unwrap();
    assert_eq!(
        by_cosign["annotations"],
        serde_json::json!([{"key": "by", "value": "cosign"}]),
        "{report:#}"
    );
    assert_eq!(by_cosign["identity"], "", "cosign v3 names no repository");

    // ocigo's legacy signatures: cosign v2 and v3 both accept them (v3
    // reads the .sig tag only where it finds no bundle referrer, so on a
    // copy signed legacy only).
    let legacy_key = s.dir().join("legacy");
    ok(
        &s.run(&["key", "generate", "--output-prefix", p(&legacy_key)]),
        "key generate",
    );
    let legacy_priv = legacy_key.with_extension("key");
    let legacy_pub = legacy_key.with_extension("pub");
    let plain = format!("oci:{}:v1", bundle_layout().display());
    ok(
        &s.run(&["push", &plain, &s.reference("team/plain:v1")]),
        "copy (unsigned)",
    );
    let plain = s.reference("team/plain:v1");
    ok(
        &s.run(&["sign", "--key", p(&legacy_priv), &plain]),
        "legacy sign",
    );
    for bin in [common::cosign::v2(), v3.clone()] {
        ok(
            &s.cosign(
                &bin,
                &with_http(&[
                    "verify",
                    "--key",
                    p(&legacy_pub),
                    "--insecure-ignore-tlog=true",
                    &plain,
                ]),
            ),
            &format!("{} verify of an ocigo legacy signature", bin.display()),
        );
    }
    // A legacy signature next to the bundles: ocigo reports both formats.
    ok(
        &s.run(&["sign", "--key", p(&legacy_priv), &reference]),
        "legacy sign",
    );
    let out = s.run(&[
        "verify",
        "--key",
        p(&legacy_pub),
        "--key",
        p(&s.public),
        "--threshold",
        "2",
        &reference,
    ]);
    let human = ok(&out, "verify both formats");
    assert!(
        human.contains(&format!("{} (legacy)", p(&legacy_pub)))
            && human.contains(&format!("{} (bundle)", p(&s.public))),
        "{human}"
    );

    // pull --verify-key reports the format too, and installs.
    let gomodcache = s.dir().join("gomodcache");
    let out = s.run(&[
        "pull",
        "--json",
        "--gomodcache",
        p(&gomodcache),
        "--verify-key",
        p(&s.public),
        &reference,
    ]);
    let pulled = json_ok(&out, "pull --verify-key of a bundle signature");
    assert_eq!(
        pulled["signature"]["signatures"][0]["format"], "bundle",
        "{pulled:#}"
    );
    assert!(gomodcache.join("cache/download").is_dir());
}

#[test]
fn bundle_signatures_interoperate_with_cosign_v3_on_a_registry_with_the_referrers_api() {
    bundle_interop(RegistryKind::Ggcr);
}

#[test]
fn bundle_signatures_interoperate_with_cosign_v3_on_distribution_2_8() {
    bundle_interop(RegistryKind::Distribution2);
}

/// Runs the CycloneDX project's validator (cyclonedx-python-lib, strict
/// JSON schema validation of 1.6) on `bom`; returns its complaint.
fn cyclonedx_errors(bom: &[u8]) -> Option<String> {
    let python = std::env::var_os("OCIGO_CYCLONEDX_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            common::registry::ci_cache()
                .parent()
                .unwrap()
                .join("cyclonedx-python-lib-11.12.0/bin/python")
        });
    assert!(
        python.is_file(),
        "{} is missing: run scripts/test.sh (it installs cyclonedx-python-lib once), or \
         `source scripts/lib.sh && ensure_cyclonedx_validator`, or set OCIGO_CYCLONEDX_PYTHON",
        python.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bom.json");
    std::fs::write(&file, bom).unwrap();
    let out = Command::new(python)
        .arg("-c")
        .arg(
            "import sys\n\
             from cyclonedx.schema import SchemaVersion\n\
             from cyclonedx.validation.json import JsonStrictValidator\n\
             err = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1]).read())\n\
             if err is not None:\n    print(str(err)[:2000])\n    sys.exit(1)\n",
        )
        .arg(&file)
        .output()
        .expect("run the CycloneDX validator");
    if out.status.success() {
        None
    } else {
        Some(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[test]
fn sbom_attestation_is_valid_cyclonedx_and_cosign_v3_accepts_it() {
    let s = Setup::on(RegistryKind::Ggcr);
    let reference = s.reference("team/mods:v1");
    // The SBOM, printed: valid CycloneDX 1.6, deterministic, complete.
    let bom = ok(&s.run(&["sbom", &reference]), "ocigo sbom");
    assert_eq!(
        bom,
        ok(&s.run(&["sbom", &reference]), "ocigo sbom again"),
        "not deterministic"
    );
    if let Some(e) = cyclonedx_errors(bom.as_bytes()) {
        panic!("the CycloneDX validator refused ocigo's SBOM:\n{e}\n{bom}");
    }
    let doc: serde_json::Value = serde_json::from_str(&bom).unwrap();
    assert_eq!(doc["specVersion"], "1.6");
    let components = doc["components"].as_array().unwrap();
    // Every bom-ref is unique (CycloneDX requires it; purls are lowercased
    // and may repeat).
    let mut refs: Vec<&str> = components
        .iter()
        .chain(std::iter::once(&doc["metadata"]["component"]))
        .map(|c| c["bom-ref"].as_str().unwrap())
        .collect();
    let n = refs.len();
    refs.sort();
    refs.dedup();
    assert_eq!(refs.len(), n, "bom-refs repeat: {refs:?}");
    let libraries: Vec<&serde_json::Value> = components
        .iter()
        .filter(|c| c["type"] == "library")
        .collect();
    let inspect = json_ok(
        &s.run(&["inspect", "--json", "--modules", &reference]),
        "inspect",
    );
    let modules = inspect["modules"].as_array().unwrap();
    assert_eq!(
        libraries.len(),
        modules.len(),
        "one component per module version"
    );
    for m in modules {
        let (path, version) = (m["path"].as_str().unwrap(), m["version"].as_str().unwrap());
        let c = libraries
            .iter()
            .find(|c| c["name"] == path && c["version"] == version)
            .unwrap_or_else(|| panic!("{path}@{version} missing from the SBOM"));
        assert_eq!(
            c["purl"],
            ocigo::sbom::golang_purl(path, Some(version)),
            "{c}"
        );
        assert!(c["purl"].as_str().unwrap().starts_with("pkg:golang/"));
        let props = c["properties"].as_array().unwrap();
        let prop = |n: &str| {
            props
                .iter()
                .find(|p| p["name"] == n)
                .map(|p| p["value"].as_str().unwrap().to_string())
        };
        assert_eq!(prop("ocigo:go.mod:h1").as_deref(), m["mod_hash"].as_str());
        assert_eq!(prop("ocigo:h1").as_deref(), m["zip_hash"].as_str());
    }
    assert_eq!(
        doc["metadata"]["component"]["name"], inspect["main_modules"][0]["path"],
        "{doc:#}"
    );
    let platforms: Vec<&str> = doc["metadata"]["properties"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "ocigo:platform")
        .map(|p| p["value"].as_str().unwrap())
        .collect();
    let want: Vec<&str> = inspect["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(platforms, want);

    // Attached as a signed attestation; cosign v3 accepts it as cyclonedx.
    let out = s.run(&["sbom", "--json", "--key", p(&s.key), &reference]);
    let attested = json_ok(&out, "ocigo sbom --key");
    assert_eq!(attested["predicate_type"], CYCLONEDX);
    let out = s.cosign(
        &common::cosign::v3(),
        &with_http(&[
            "verify-attestation",
            "--key",
            p(&s.public),
            "--insecure-ignore-tlog=true",
            "--type",
            "cyclonedx",
            &reference,
        ]),
    );
    let cosign_said = ok(&out, "cosign v3 verify-attestation --type cyclonedx");
    let envelope: serde_json::Value =
        serde_json::from_str(cosign_said.lines().next().unwrap()).unwrap();
    let statement: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(envelope["payload"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(statement["predicate"], doc, "cosign saw another predicate");

    // ocigo verify --attestation-type prints the predicate (stdout only).
    let out = s.run(&[
        "verify",
        "--key",
        p(&s.public),
        "--attestation-type",
        "cyclonedx",
        &reference,
    ]);
    let printed: serde_json::Value = serde_json::from_str(&ok(&out, "verify attestation")).unwrap();
    assert_eq!(printed, doc);
    // --json: reports holding the documents (their keys are theirs).
    let report = json_ok(
        &s.run(&[
            "verify",
            "--json",
            "--key",
            p(&s.public),
            "--attestation-type",
            CYCLONEDX,
            &reference,
        ]),
        "verify attestation --json",
    );
    assert_eq!(report["verified"][0]["predicate"], doc, "{report:#}");
    assert_eq!(report["verified"][0]["signed_by"][0], p(&s.public));
    let report = json_ok(&s.run(&["sbom", "--json", &reference]), "sbom --json");
    assert_eq!(report["sbom"], doc);
    assert!(
        stderr(&out).contains("verified 1 attestation(s)"),
        "{}",
        stderr(&out)
    );
    // A signature check of the same reference finds no signature: an
    // attestation is not one.
    refused(
        &s.run(&["verify", "--key", p(&s.public), &reference]),
        3,
        "is not signed",
    );
}

#[test]
fn pack_sbom_and_attest_then_copy_keeps_every_referrer_verifiable() {
    let s = Setup::on(RegistryKind::Ggcr);
    let tmp = s.dir();
    // pack --sign --format bundle --sbom into the registry with the API.
    let proxy = tmp.join("proxy");
    fixtures::build_file_proxy(&proxy);
    let project = fixtures::copy_project(tmp);
    let reference = s.reference("team/packed:v1");
    let fixture_env = fixtures::fixture_env(&proxy);
    let mut env: Vec<(&str, &str)> = fixture_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let unused = tmp.join("unused-modcache");
    env.push(("GOMODCACHE", p(&unused)));
    env.push(("COSIGN_PASSWORD", PASSWORD));
    let out = ocigo(
        &tmp.join("store"),
        &[
            "pack",
            "--json",
            p(&project),
            "-o",
            &reference,
            "--sign",
            p(&s.key),
            "--format",
            "bundle",
            "--sbom",
        ],
        &env,
    );
    let packed = json_ok(&out, "pack --sign --format bundle --sbom");
    assert_eq!(packed["signature"]["format"], "bundle", "{packed:#}");
    assert_eq!(packed["sbom"]["predicate_type"], CYCLONEDX, "{packed:#}");
    // And an approval attestation of our own type.
    let approval = tmp.join("approval.json");
    std::fs::write(
        &approval,
        r#"{"approved_by":"release board","ticket":"REL-7"}"#,
    )
    .unwrap();
    ok(
        &s.run(&[
            "attest",
            "--key",
            p(&s.key),
            "--predicate",
            p(&approval),
            "--type",
            "https://example.com/approval/v1",
            &reference,
        ]),
        "attest",
    );
    // --sbom without a key is refused before anything is done.
    refused(
        &ocigo(
            &tmp.join("store"),
            &["pack", p(&project), "-o", &reference, "--sbom"],
            &env,
        ),
        2,
        "--sign",
    );

    let check = |r: &str, what: &str| {
        let report = json_ok(
            &s.run(&["verify", "--json", "--key", p(&s.public), r]),
            &format!("verify the signature {what}"),
        );
        assert_eq!(formats(&report), vec!["bundle"], "{what}: {report:#}");
        let out = s.run(&[
            "verify",
            "--key",
            p(&s.public),
            "--attestation-type",
            "https://example.com/approval/v1",
            r,
        ]);
        let predicate: serde_json::Value =
            serde_json::from_str(&ok(&out, &format!("verify the approval {what}"))).unwrap();
        assert_eq!(predicate["ticket"], "REL-7", "{what}");
        let out = s.run(&[
            "verify",
            "--key",
            p(&s.public),
            "--attestation-type",
            CYCLONEDX,
            r,
        ]);
        let bom: serde_json::Value =
            serde_json::from_str(&ok(&out, &format!("verify the SBOM {what}"))).unwrap();
        assert_eq!(bom["bomFormat"], "CycloneDX", "{what}");
    };
    check(&reference, "where packed");

    // To a layout (a removable disk), then on to a registry without the API.
    let disk = format!("oci:{}:v1", tmp.join("disk").display());
    let down = json_ok(
        &s.run(&["push", "--json", &reference, &disk]),
        "push to a layout",
    );
    assert_eq!(down["copy"]["referrers"], 3, "{down:#}");
    check(&disk, "on the layout");
    let old = TestRegistry::start_kind(RegistryKind::Distribution2);
    // The same repository path (identity is compared without the host, as
    // for legacy signatures).
    let airgap = format!("{}/team/packed:v1", old.addr);
    let up = json_ok(&s.run(&["push", "--json", &disk, &airgap]), "push on");
    assert_eq!(up["copy"]["referrers"], 3, "{up:#}");
    check(&airgap, "in the second registry");
    // Under another repository path the bundles name the first one: refused
    // unless that is expected, as for legacy signatures.
    let renamed = format!("{}/air/mods:v1", old.addr);
    ok(
        &s.run(&["push", &disk, &renamed]),
        "push under another name",
    );
    refused(
        &s.run(&["verify", "--key", p(&s.public), &renamed]),
        3,
        "made for repository",
    );
    ok(
        &s.run(&[
            "verify",
            "--key",
            p(&s.public),
            "--expect-identity",
            "team/packed",
            &renamed,
        ]),
        "verify with --expect-identity",
    );
    // cosign v3 accepts the signature and the SBOM in the air-gapped
    // registry.
    for args in [
        vec![
            "verify",
            "--key",
            p(&s.public),
            "--insecure-ignore-tlog=true",
            &airgap,
        ],
        vec![
            "verify-attestation",
            "--key",
            p(&s.public),
            "--insecure-ignore-tlog=true",
            "--type",
            "cyclonedx",
            &airgap,
        ],
    ] {
        ok(
            &s.cosign(&common::cosign::v3(), &with_http(&args)),
            &format!("cosign v3 {} after the copies", args[0]),
        );
    }
}

// ---------------------------------------------------------------- refusals

/// A bundle of `statement` signed with `key` (payload type `payload_type`),
/// its envelope changed by `tamper` after signing.
fn crafted_bundle(
    key: &ocigo::sign::SigningKey,
    payload_type: &str,
    statement: &serde_json::Value,
    tamper: impl FnOnce(&mut dsse::Envelope),
) -> Vec<u8> {
    let payload = serde_json::to_vec(statement).unwrap();
    let mut env = dsse::sign(key, payload_type, &payload);
    tamper(&mut env);
    serde_json::to_vec(&serde_json::json!({
        "mediaType": bundle::BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": key.verifying_key().sigstore_hint()}},
        "dsseEnvelope": env,
    }))
    .unwrap()
}

fn statement(digests: &[&str], predicate_type: &str) -> serde_json::Value {
    serde_json::json!({
        "_type": bundle::STATEMENT_TYPE,
        "subject": digests.iter().map(|d| serde_json::json!({"digest": {"sha256": d}})).collect::<Vec<_>>(),
        "predicateType": predicate_type,
        "predicate": {},
    })
}

#[test]
fn hostile_bundles_are_refused_and_nothing_is_written() {
    let s = Setup::on(RegistryKind::Ggcr);
    let reference = s.reference("team/mods:v1");
    let repo = s.repo("team/mods");
    let target = s.target();
    let password = PASSWORD.as_bytes();
    let key = ocigo::sign::read_private_key_file(&s.key, password).unwrap();
    let stranger = ocigo::sign::generate();
    let hex = target.digest.hex().to_string();
    let other_hex = "ab".repeat(32);
    let sign_type = bundle::SIGN_PREDICATE_TYPE;

    let gomodcache = s.dir().join("gomodcache");
    let pull_store = s.dir().join("pull-store");
    let snapshot = |what: &str| {
        assert!(
            !gomodcache.exists(),
            "{what}: a refused pull created GOMODCACHE"
        );
        let blobs = pull_store.join("blobs/sha256");
        let n = std::fs::read_dir(&blobs).map(|d| d.count()).unwrap_or(0);
        assert!(n < 8, "{what}: the refused pull stored {n} blobs");
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "a subject naming another digest",
            crafted_bundle(
                &key,
                dsse::IN_TOTO_PAYLOAD_TYPE,
                &statement(&[&other_hex], sign_type),
                |_| {},
            ),
            "signs another manifest",
        ),
        (
            "a payload type that is not in-toto",
            crafted_bundle(
                &key,
                "application/json",
                &statement(&[&hex], sign_type),
                |_| {},
            ),
            "is not in-toto",
        ),
        (
            "a tampered envelope",
            crafted_bundle(
                &key,
                dsse::IN_TOTO_PAYLOAD_TYPE,
                &statement(&[&other_hex], sign_type),
                |e| {
                    // Re-point the signed statement at this manifest.
                    e.payload = base64::engine::general_purpose::STANDARD
                        .encode(serde_json::to_vec(&statement(&[&hex], sign_type)).unwrap());
                },
            ),
            "or the envelope was altered",
        ),
        (
            "several subjects, none of them this manifest",
            crafted_bundle(
                &key,
                dsse::IN_TOTO_PAYLOAD_TYPE,
                &statement(&[&other_hex, &"cd".repeat(32)], sign_type),
                |_| {},
            ),
            "and sha256:",
        ),
        (
            "a bundle signed by another key",
            crafted_bundle(
                &stranger,
                dsse::IN_TOTO_PAYLOAD_TYPE,
                &statement(&[&hex], sign_type),
                |_| {},
            ),
            "not signed by any of the keys tried",
        ),
    ];
    for (what, bytes, why) in cases {
        let referrer = bundle::attach(&repo, &target, &bytes, sign_type).unwrap();
        let out = s.run(&["verify", "--key", p(&s.public), &reference]);
        refused(&out, 3, "no valid signature");
        refused(&out, 3, why);
        assert!(stderr(&out).contains(referrer.digest.as_str()), "{what}");
        let out = s.run(&[
            "pull",
            "--gomodcache",
            p(&gomodcache),
            "--verify-key",
            p(&s.public),
            &reference,
        ]);
        refused(&out, 3, why);
        snapshot(what);
        // Remove it again, so each case stands alone (the registry keeps
        // manifests in memory and honours DELETE).
        delete_manifest(&s.registry, "team/mods", &referrer);
    }

    // An attestation of the wrong type where one was required.
    let wrong = crafted_bundle(
        &key,
        dsse::IN_TOTO_PAYLOAD_TYPE,
        &statement(&[&hex], "https://example.com/other/v1"),
        |_| {},
    );
    bundle::attach(&repo, &target, &wrong, "https://example.com/other/v1").unwrap();
    let out = s.run(&[
        "verify",
        "--key",
        p(&s.public),
        "--attestation-type",
        "https://example.com/approval/v1",
        &reference,
    ]);
    refused(
        &out,
        3,
        "no valid attestation of type https://example.com/approval/v1",
    );
    refused(&out, 3, "https://example.com/other/v1");
    assert!(
        stdout(&out).is_empty(),
        "a refused attestation printed a predicate"
    );
    // An attestation whose listing annotation lies about its type (says
    // approval, signs other) is not taken for an approval either.
    bundle::attach(&repo, &target, &wrong, "https://example.com/approval/v1").unwrap();
    refused(
        &s.run(&[
            "verify",
            "--key",
            p(&s.public),
            "--attestation-type",
            "https://example.com/approval/v1",
            &reference,
        ]),
        3,
        "no valid attestation",
    );
    // Not a URI nor a cosign name: usage.
    refused(
        &s.run(&[
            "verify",
            "--key",
            p(&s.public),
            "--attestation-type",
            "approval",
            &reference,
        ]),
        2,
        "neither a URI",
    );
}

fn delete_manifest(reg: &TestRegistry, repo: &str, d: &Descriptor) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .new_agent();
    let r = agent
        .delete(&format!(
            "http://{}/v2/{repo}/manifests/{}",
            reg.addr, d.digest
        ))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
}

/// A bundle with transparency-log entries still verifies with a key alone;
/// the output says the log was not checked.
#[test]
fn a_bundle_with_log_entries_verifies_and_says_the_log_was_not_checked() {
    let s = Setup::on(RegistryKind::Ggcr);
    let reference = s.reference("team/mods:v1");
    let target = s.target();
    let key = ocigo::sign::read_private_key_file(&s.key, PASSWORD.as_bytes()).unwrap();
    let st = statement(&[target.digest.hex()], bundle::SIGN_PREDICATE_TYPE);
    let env = dsse::sign(
        &key,
        dsse::IN_TOTO_PAYLOAD_TYPE,
        &serde_json::to_vec(&st).unwrap(),
    );
    let b = serde_json::to_vec(&serde_json::json!({
        "mediaType": bundle::BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {
            "publicKey": {"hint": key.verifying_key().sigstore_hint()},
            "tlogEntries": [{"logIndex": "1", "logId": {"keyId": "AAAA"}, "kindVersion": {"kind": "dsse", "version": "0.0.1"}, "integratedTime": "1", "canonicalizedBody": "e30="}],
        },
        "dsseEnvelope": env,
    }))
    .unwrap();
    bundle::attach(
        &s.repo("team/mods"),
        &target,
        &b,
        bundle::SIGN_PREDICATE_TYPE,
    )
    .unwrap();
    let out = s.run(&["verify", "--key", p(&s.public), &reference]);
    let human = ok(&out, "verify a bundle with log entries");
    assert!(human.contains("were not checked"), "{human}");
    let report = json_ok(
        &s.run(&["verify", "--json", "--key", p(&s.public), &reference]),
        "verify --json",
    );
    assert_eq!(report["transparency_log_not_checked"], true, "{report:#}");
}
