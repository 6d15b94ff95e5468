//! `ocigo policy check`: each rule with a bundle that passes and one that
//! fails, the exit codes (0 pass, 1 violation, 2 could not run), a
//! malformed policy named by file:line:column, JSON output against
//! schemas/policy-decision.v1.schema.json and SARIF output against the
//! official SARIF 2.1.0 schema (both with check-jsonschema from PyPI, an
//! independent validator), and the vulnerability database: `pack vulndb`,
//! `pull --vulndb`, and govulncheck (v1.9.0, offline, over the database
//! ocigo wrote) reaching the same verdicts as ocigo for the same module
//! versions, pseudo-versions and `+incompatible` included.
//!
//! Synthetic bundles are built in-process with `artifact::build` (fast,
//! exactly the versions a case needs); coverage and the govulncheck
//! comparison use the fixture project packed by the real go command.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::fixtures::{copy_project, fixture_env};
use common::ocigo::{
    Scratch, assert_exit, assert_mentions, json_ok, ocigo, process_dir, split_error, stderr, stdout,
};
use ocigo::artifact::{
    self, FORMAT_VERSION, MainModule, ModuleEntry, ModulesConfig, SplitLimits, ZipRef,
};
use ocigo::gomod::hash_gomod;
use ocigo::oci::{Descriptor, Repository};
use ocigo::store::Layout;

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An RFC 3339 time `days` before now.
fn days_ago(days: i64) -> String {
    ocigo::policy::vulndb::format_time((now() - days * 86_400, 0))
}

/// A module version for a synthetic bundle: its go.mod (with `extra`
/// lines), and a zip layer (arbitrary bytes: the policy check reads
/// configs, not zips) unless `go_mod_only`.
struct M<'a> {
    path: &'a str,
    version: &'a str,
    extra: &'a str,
    go_mod_only: bool,
}

fn m<'a>(path: &'a str, version: &'a str) -> M<'a> {
    M {
        path,
        version,
        extra: "",
        go_mod_only: false,
    }
}

/// Builds a bundle of `mods` into a layout at `dir`, tag v1; returns the
/// reference.
fn bundle(dir: &Path, mods: &[M], created: Option<String>) -> String {
    let layout = Layout::open_or_create(dir).unwrap();
    let mut modules: Vec<ModuleEntry> = mods
        .iter()
        .map(|x| {
            let go_mod = format!("module {}\n\ngo 1.22\n{}", x.path, x.extra);
            let zip = (!x.go_mod_only).then(|| {
                let bytes = format!("zip of {}@{}", x.path, x.version).into_bytes();
                let desc = Descriptor::for_bytes(artifact::MEDIA_TYPE_MODULE_ZIP, &bytes);
                layout.push_blob(&desc, &mut &bytes[..]).unwrap();
                ZipRef {
                    hash: hash_gomod(&bytes),
                    layer: desc.digest,
                    size: desc.size,
                }
            });
            ModuleEntry {
                path: x.path.into(),
                version: x.version.into(),
                info: None,
                mod_hash: hash_gomod(go_mod.as_bytes()),
                go_mod,
                zip,
            }
        })
        .collect();
    modules.sort_by(|a, b| {
        a.path
            .cmp(&b.path)
            .then_with(|| ocigo::gomod::semver::compare(&a.version, &b.version))
    });
    let config = ModulesConfig {
        format_version: FORMAT_VERSION,
        main_modules: vec![MainModule {
            path: "example.com/main".into(),
            go_version: Some("1.22".into()),
        }],
        platforms: vec!["linux/amd64".into()],
        created,
        modules,
    };
    let built = artifact::build(config, SplitLimits::default()).unwrap();
    artifact::push_built(&layout, &built, Some("v1")).unwrap();
    format!("oci:{}:v1", s(dir))
}

/// A toolchain-only artifact with one (fake-layer) manifest per
/// (version, os/arch).
fn toolchain_artifact(dir: &Path, toolchains: &[(&str, &str)]) -> String {
    use ocigo::toolchain::format::{self, LayerInfo, ModuleForm, ToolchainConfig};
    let layout = Layout::open_or_create(dir).unwrap();
    let mut entries = Vec::new();
    for (version, platform) in toolchains {
        let (os, arch) = platform.split_once('/').unwrap();
        let layer = format!("layer of {version} {platform}").into_bytes();
        let layer_desc = Descriptor::for_bytes(format::MEDIA_TYPE_LAYER, &layer);
        layout.push_blob(&layer_desc, &mut &layer[..]).unwrap();
        let config = ToolchainConfig {
            format_version: format::FORMAT_VERSION,
            version: version.to_string(),
            os: os.into(),
            arch: arch.into(),
            time: None,
            source: ocigo::toolchain::tree::SourceInfo {
                kind: "goroot".into(),
                name: "/usr/local/go".into(),
                sha256: None,
            },
            module: ModuleForm {
                version: ocigo::toolchain::tree::module_version(version, os, arch),
                hash: hash_gomod(b"x"),
                checked_with: None,
            },
            files: 1,
            bytes: 10,
            layers: vec![LayerInfo {
                digest: layer_desc.digest.clone(),
                name: "bin".into(),
                files: 1,
                bytes: 10,
                tar_bytes: 2048,
                delta_from: vec![],
            }],
            base_version: None,
            bases: vec![],
        };
        let built = format::build_manifest(&config, &[layer_desc.size]);
        layout
            .push_blob(&built.config_descriptor, &mut &built.config_bytes[..])
            .unwrap();
        layout
            .push_manifest(ocigo::oci::MEDIA_TYPE_MANIFEST, &built.manifest, None)
            .unwrap();
        entries.push(built.entry);
    }
    let index = format::build_index(entries, format::ARTIFACT_TYPE_TOOLCHAIN);
    layout
        .push_manifest(ocigo::oci::MEDIA_TYPE_INDEX, &index, Some("v1"))
        .unwrap();
    format!("oci:{}:v1", s(dir))
}

fn write(path: &Path, text: &str) -> PathBuf {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap();
    }
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

/// `ocigo policy check --policy P [extra...] SRC`.
fn check(sc: &Scratch, policy: &Path, src: &str, extra: &[&str]) -> std::process::Output {
    let p = s(policy);
    let mut args = vec!["policy", "check", "--policy", &p];
    args.extend_from_slice(extra);
    args.push(src);
    ocigo(&sc.join("store"), &args, &[])
}

/// The decision as JSON (`--format json`), with the expected exit code.
fn decision(
    sc: &Scratch,
    policy: &Path,
    src: &str,
    extra: &[&str],
    code: i32,
) -> serde_json::Value {
    let mut e = extra.to_vec();
    e.extend_from_slice(&["--format", "json"]);
    let out = check(sc, policy, src, &e);
    assert_exit(&out, code, &format!("policy check {}", s(policy)));
    serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

/// The error findings of one rule: (subject, message, location line).
fn errors(d: &serde_json::Value, rule: &str) -> Vec<(String, String, Option<u64>)> {
    let r = d["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == rule)
        .unwrap_or_else(|| panic!("no rule {rule} in {d:#}"));
    r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["level"] == "error")
        .map(|f| {
            (
                f["subject"].as_str().unwrap().to_string(),
                f["message"].as_str().unwrap().to_string(),
                f["location"]["line"].as_u64(),
            )
        })
        .collect()
}

#[test]
fn modules_rule_deny_allow_list_and_retractions() {
    let sc = Scratch::new();
    let src = bundle(
        &sc.join("b"),
        &[
            m("github.com/acme/lib", "v1.4.1"),
            m("github.com/acme/lib/v2", "v2.3.0"),
            m("example.com/pseudo", "v0.0.0-20230102030405-abcdef123456"),
            m("example.com/legacy", "v2.0.0+incompatible"),
            // Retracted by the newest go.mod of that path in the bundle.
            m("example.com/retracting", "v1.0.0"),
            M {
                path: "example.com/retracting",
                version: "v1.1.0",
                extra: "\nretract v1.0.0 // data loss\n",
                go_mod_only: true,
            },
        ],
        None,
    );
    let pass = write(
        &sc.join("pass.yaml"),
        "version: 1\nmodules:\n  deny:\n    - path: github.com/acme/*\n      versions: \"<1.4.1\"\n    - path: example.com/legacy\n      versions: \">=2.0.1\"\n  retracted: warn\n",
    );
    let d = decision(&sc, &pass, &src, &[], 0);
    assert_eq!(d["passed"], true, "{d:#}");
    let warnings = d["rules"][0]["findings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|f| f["level"] == "warning"
            && f["subject"] == "example.com/retracting@v1.0.0"
            && f["message"].as_str().unwrap().contains("data loss")),
        "{d:#}"
    );

    let fail = write(
        &sc.join("fail.yaml"),
        "version: 1\nmodules:\n  mode: allow_list\n  allow:\n    - path: github.com/acme\n    - path: example.com/*\n      versions: \"<1.0.0\"\n  deny:\n    - path: github.com/acme/*\n      versions: \">=1.4.0 <1.4.2 || >=2.0.0 <2.3.1\"\n      reason: CVE-0000-1\n",
    );
    let d = decision(&sc, &fail, &src, &[], 1);
    let mut errs = errors(&d, "modules");
    errs.sort();
    let subjects: Vec<&str> = errs.iter().map(|e| e.0.as_str()).collect();
    // Denied by range (both majors, prefix glob); not allowed (legacy is
    // v2.0.0 >= v1.0.0 with +incompatible ignored); retracted (deny default).
    assert_eq!(
        subjects,
        vec![
            "example.com/legacy@v2.0.0+incompatible",
            "example.com/retracting@v1.0.0",
            "example.com/retracting@v1.0.0",
            "example.com/retracting@v1.1.0",
            "github.com/acme/lib/v2@v2.3.0",
            "github.com/acme/lib@v1.4.1",
        ],
        "{errs:#?}"
    );
    let deny = errs
        .iter()
        .find(|e| e.0 == "github.com/acme/lib@v1.4.1")
        .unwrap();
    assert!(
        deny.1.contains("CVE-0000-1") && deny.2 == Some(9),
        "{deny:?}"
    );
    // The text form names the policy file, line and column.
    let out = check(&sc, &fail, &src, &[]);
    assert_exit(&out, 1, "text form");
    assert_mentions(
        &stdout(&out),
        &[
            "FAIL modules",
            "github.com/acme/lib@v1.4.1: denied by modules.deny[0]",
            &format!("[{}:9:7]", s(&fail)),
        ],
        "text",
    );
}

#[test]
fn toolchain_rule() {
    let sc = Scratch::new();
    let src = toolchain_artifact(
        &sc.join("t"),
        &[("go1.26.3", "linux/amd64"), ("go1.26.3", "linux/arm64")],
    );
    let project = write(
        &sc.join("p/go.mod"),
        "module example.com/p\n\ngo 1.26\n\ntoolchain go1.26.3\n",
    );
    let project = project.parent().unwrap();
    let pass = write(
        &sc.join("pass.yaml"),
        "version: 1\ntoolchain:\n  min: go1.26.0\n  max: go1.26.3\n  platforms: [linux/amd64, linux/arm64]\n  match_project: true\n",
    );
    let d = decision(&sc, &pass, &src, &["--project", &s(project)], 0);
    assert_eq!(d["rules"][0]["status"], "pass", "{d:#}");
    // Without --project, a rule that needs it cannot run.
    let out = check(&sc, &pass, &src, &[]);
    assert_exit(&out, 2, "match_project without --project");
    assert_mentions(
        &split_error(&stderr(&out)).0,
        &["reads the project"],
        "no --project",
    );

    write(&sc.join("p2/go.mod"), "module example.com/p\n\ngo 1.27\n");
    let fail = write(
        &sc.join("fail.yaml"),
        "version: 1\ntoolchain:\n  min: go1.26.4\n  max: go1.26rc1\n  platforms: [windows/amd64]\n  match_project: true\n",
    );
    let d = decision(&sc, &fail, &src, &["--project", &s(&sc.join("p2"))], 1);
    let errs = errors(&d, "toolchain");
    let text = format!("{errs:?}");
    assert_mentions(
        &text,
        &[
            "older than toolchain.min go1.26.4",
            "newer than toolchain.max go1.26rc1",
            "no toolchain for windows/amd64",
            "go.mod asks for go1.27.0",
        ],
        "toolchain findings",
    );
    assert_eq!(errs.len(), 6, "{errs:#?}");
}

#[test]
fn age_rule_and_exit_codes() {
    let sc = Scratch::new();
    let young = bundle(
        &sc.join("young"),
        &[m("example.com/a", "v1.0.0")],
        Some(days_ago(3)),
    );
    let old = bundle(
        &sc.join("old"),
        &[m("example.com/a", "v1.0.0")],
        Some(days_ago(40)),
    );
    let unknown = bundle(&sc.join("unknown"), &[m("example.com/a", "v1.0.0")], None);
    let policy = write(&sc.join("p.yaml"), "version: 1\nage:\n  max: 30d\n");
    let d = decision(&sc, &policy, &young, &[], 0);
    assert_eq!(d["passed"], true);
    let d = decision(&sc, &policy, &old, &[], 1);
    assert_mentions(
        &format!("{:?}", errors(&d, "age")),
        &["older than age.max 30d"],
        "old",
    );
    let d = decision(&sc, &policy, &unknown, &[], 1);
    assert_mentions(
        &format!("{:?}", errors(&d, "age")),
        &["--created"],
        "unknown",
    );

    // Could not run: exit 2, with the reason.
    let missing = check(&sc, &sc.join("nope.yaml"), &young, &[]);
    assert_exit(&missing, 2, "missing policy");
    assert_mentions(
        &stderr(&missing),
        &["does not exist", "ocigo policy init"],
        "missing",
    );
    let absent = format!("oci:{}:v1", s(&sc.join("no-such-layout")));
    assert_exit(&check(&sc, &policy, &absent, &[]), 2, "missing layout");
    let unreachable = check(&sc, &policy, "127.0.0.1:9/none/x:v1", &[]);
    assert_exit(&unreachable, 2, "unreachable registry");
    assert!(stdout(&unreachable).is_empty());
}

#[test]
fn malformed_policies_are_named_by_file_line_and_column() {
    let sc = Scratch::new();
    let src = bundle(&sc.join("b"), &[m("example.com/a", "v1.0.0")], None);
    for (text, line_col, what) in [
        (
            "version: 1\nmodules:\n  deny:\n    - path: x\n      versoins: \"<1\"\n",
            "5:7",
            "unknown field `versoins`",
        ),
        (
            "version: 1\nmodules:\n  deny:\n    - path: x\n      versions: \"<x\"\n",
            "5:17",
            "not a semantic version",
        ),
        (
            "version: 1\nmodules:\n  deny:\n    - path: \"github.com/[\"\n",
            "4:13",
            "malformed character class",
        ),
        (
            "version: 1\nage:\n  max: 30 days\n",
            "3:8",
            "not a duration",
        ),
        ("version: 1\nage: [\n", "3:1", ""),
        ("version: 2\n", "1:10", "policy version 1"),
        (
            "version: 1\nsignatures:\n  keys: [a.pub]\n  threshold: two\n",
            "4:14",
            "invalid type",
        ),
        (
            "version: 1\nvulnerabilities:\n  ignore:\n    - id: GO-1\n      reason: x\n      expires: soon\n",
            "6:16",
            "not a date",
        ),
    ] {
        let p = write(&sc.join("bad.yaml"), text);
        let out = check(&sc, &p, &src, &[]);
        assert_exit(&out, 2, what);
        let (msg, hints) = split_error(&stderr(&out));
        assert!(
            msg.starts_with(&format!("error: {}:{line_col}: ", s(&p))) && msg.contains(what),
            "{text:?}: {msg}"
        );
        assert!(
            hints.iter().any(|h| h.contains("policy.v1.schema.json")),
            "{hints:?}"
        );
        assert!(stdout(&out).is_empty());
    }
}

/// The example `policy init` writes is a valid policy; -o refuses to
/// overwrite.
#[test]
fn policy_init_writes_a_valid_example() {
    let sc = Scratch::new();
    let out = ocigo(&sc.join("store"), &["policy", "init"], &[]);
    assert_exit(&out, 0, "policy init");
    let text = stdout(&out);
    assert!(
        text.contains("version: 1") && text.contains("max_db_age"),
        "{text}"
    );
    let file = sc.join("policy.yaml");
    assert_exit(
        &ocigo(&sc.join("store"), &["policy", "init", "-o", &s(&file)], &[]),
        0,
        "init -o",
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    let again = ocigo(&sc.join("store"), &["policy", "init", "-o", &s(&file)], &[]);
    assert_exit(&again, 5, "init -o over an existing file");
    let parsed = ocigo::policy::spec::load(&file).unwrap();
    assert!(parsed.policy.vulnerabilities.is_some());
}

// ---- vulnerability database -------------------------------------------

/// An OSV record.
fn osv(id: &str, module: &str, events: &str, extra: &str) -> (String, String) {
    (
        id.to_string(),
        format!(
            r#"{{"schema_version":"1.3.1","id":"{id}","modified":"2026-11-01T00:00:00Z","published":"2026-10-01T00:00:00Z","aliases":["CVE-{id}"],"summary":"test record {id}","details":"x","affected":[{{"package":{{"name":"{module}","ecosystem":"Go"}},"ranges":[{{"type":"SEMVER","events":[{events}]}}],"ecosystem_specific":{{"imports":[{{"path":"{module}"}}]}}}}]{extra}}}"#
        ),
    )
}

/// The test database: which fixture module versions are in range is the
/// point of each record (see `expected_hits`).
fn osv_records() -> Vec<(String, String)> {
    vec![
        // Pseudo-version below the fix: affected.
        osv(
            "GO-2099-0001",
            "example.com/pseudo",
            r#"{"introduced":"0"},{"fixed":"0.0.0-20230102030405-abcdef123457"}"#,
            "",
        ),
        // +incompatible is ignored: v2.0.0+incompatible is in [2.0.0, 2.0.1).
        osv(
            "GO-2099-0002",
            "example.com/legacy",
            r#"{"introduced":"2.0.0"},{"fixed":"2.0.1"}"#,
            "",
        ),
        // Fixed in exactly the version the bundle has: not affected.
        osv(
            "GO-2099-0003",
            "example.com/major/v2",
            r#"{"introduced":"0"},{"fixed":"2.1.0"}"#,
            "",
        ),
        // No fix: affected from 1.1.0 on (shared v1.1.0 is selected).
        osv(
            "GO-2099-0004",
            "example.com/shared",
            r#"{"introduced":"1.1.0"}"#,
            "",
        ),
        // Introduced at a pseudo-version after v1.0.0: not affected.
        osv(
            "GO-2099-0005",
            "example.com/testonly",
            r#"{"introduced":"1.0.1-0.20230101000000-abcdefabcdef"}"#,
            "",
        ),
        // Withdrawn: never counts.
        osv(
            "GO-2099-0006",
            "example.com/unpruned",
            r#"{"introduced":"0"}"#,
            r#","withdrawn":"2026-10-15T00:00:00Z""#,
        ),
        // A prerelease fix below v1.0.0: not affected.
        osv(
            "GO-2099-0007",
            "example.com/Upper/Case",
            r#"{"introduced":"0"},{"fixed":"1.0.0-rc.1"}"#,
            "",
        ),
        // Affected, and ignored by the policy (until a date in the future).
        osv(
            "GO-2099-0008",
            "example.com/winonly",
            r#"{"introduced":"0"},{"fixed":"1.0.1"}"#,
            "",
        ),
        // A module not in the bundle.
        osv(
            "GO-2099-0009",
            "example.com/elsewhere",
            r#"{"introduced":"0"}"#,
            "",
        ),
    ]
}

fn expected_hits() -> Vec<(String, String)> {
    vec![
        (
            "example.com/legacy@v2.0.0+incompatible".into(),
            "GO-2099-0002".into(),
        ),
        (
            "example.com/pseudo@v0.0.0-20230102030405-abcdef123456".into(),
            "GO-2099-0001".into(),
        ),
        ("example.com/shared@v1.1.0".into(), "GO-2099-0004".into()),
        ("example.com/winonly@v1.0.0".into(), "GO-2099-0008".into()),
    ]
}

/// The fixture proxy, built once for this test binary.
fn fixture_proxy() -> &'static Path {
    common::ocigo::fixture_proxy()
}

/// The fixture project, packed once: (project dir, layout reference).
fn packed_project() -> &'static (PathBuf, String) {
    static PACKED: OnceLock<(PathBuf, String)> = OnceLock::new();
    PACKED.get_or_init(|| {
        let root = process_dir("packed");
        let project = copy_project(&root.join("project"));
        let env = fixture_env(fixture_proxy());
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let dest = format!("oci:{}:v1", s(&root.join("disk")));
        let created = days_ago(1);
        json_ok(
            &ocigo(
                &root.join("store"),
                &[
                    "pack",
                    &s(&project),
                    "-o",
                    &dest,
                    "--json",
                    "--created",
                    &created,
                    "--platform",
                    "linux/amd64",
                    "--platform",
                    "windows/amd64",
                ],
                &env,
            ),
            "pack the fixture project",
        );
        (project, dest)
    })
}

/// Packs the test records as a vulnerability database and pulls it into
/// `dir`, as a user would carry it into the air gap.
fn vulndb_dir(sc: &Scratch) -> PathBuf {
    let records = sc.join("osv");
    for (id, text) in osv_records() {
        write(&records.join(format!("{id}.json")), &text);
    }
    write(&records.join("README.md"), "not a record: skipped");
    let store = sc.join("store");
    let dest = format!("oci:{}:db", s(&sc.join("dbdisk")));
    let out = ocigo(
        &store,
        &["pack", "vulndb", &s(&records), "-o", &dest, "--json"],
        &[],
    );
    let packed = json_ok(&out, "pack vulndb");
    assert_eq!(packed["records"], 9);
    assert_eq!(packed["modified"], "2026-11-01T00:00:00Z");
    let dir = sc.join("vulndb");
    let out = ocigo(
        &store,
        &["pull", &dest, "--vulndb", &s(&dir), "--json"],
        &[],
    );
    let pulled = json_ok(&out, "pull --vulndb");
    assert_eq!(pulled["records"], 9);
    for f in [
        "index/db.json",
        "index/modules.json",
        "index/vulns.json",
        "ID/GO-2099-0001.json",
    ] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("index/db.json")).unwrap(),
        r#"{"modified":"2026-11-01T00:00:00Z"}"#
    );
    dir
}

fn vuln_policy(sc: &Scratch, db: &Path, max_age: &str, ignore_expires: &str) -> PathBuf {
    write(
        &sc.join(&format!("vuln-{max_age}-{ignore_expires}.yaml")),
        &format!(
            "version: 1\nvulnerabilities:\n  database: {}\n  max_db_age: {max_age}\n  ignore:\n    - id: CVE-GO-2099-0008\n      reason: windows only, not deployed\n      expires: {ignore_expires}\n",
            s(db)
        ),
    )
}

#[test]
fn vulnerabilities_rule_and_govulncheck_agree() {
    let sc = Scratch::new();
    let db = vulndb_dir(&sc);
    let (project, src) = packed_project();
    let future = &days_ago(-30)[..10];
    let past = &days_ago(2)[..10];

    // Every version in range is found (the ignored one as a note only).
    let policy = vuln_policy(&sc, &db, "3650d", future);
    let d = decision(&sc, &policy, src, &[], 1);
    let rule = &d["rules"][0];
    let mut found: Vec<(String, String)> = rule["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["subject"].as_str().unwrap().into(),
                f["id"].as_str().unwrap().into(),
            )
        })
        .collect();
    found.sort();
    assert_eq!(found, expected_hits(), "{d:#}");
    let levels: Vec<&str> = rule["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["level"].as_str().unwrap())
        .collect();
    assert_eq!(
        levels.iter().filter(|l| **l == "note").count(),
        1,
        "{levels:?}"
    );
    assert_eq!(
        d["vulnerability_database"]["modified"],
        "2026-11-01T00:00:00Z"
    );

    // A stale database, and an expired ignore entry, fail with their lines.
    let stale = vuln_policy(&sc, &db, "1d", past);
    let d = decision(&sc, &stale, src, &[], 1);
    let errs = errors(&d, "vulnerabilities");
    assert!(
        errs.iter()
            .any(|e| e.1.contains("older than max_db_age 1d") && e.2 == Some(4)),
        "{errs:#?}"
    );
    assert!(
        errs.iter().any(|e| e.0 == "example.com/winonly@v1.0.0"
            && e.1.contains("expired")
            && e.2 == Some(8)),
        "{errs:#?}"
    );

    // A database with nothing in range passes.
    let clean = sc.join("clean");
    write(&clean.join("GO-2099-0009.json"), &osv_records()[8].1);
    let store = sc.join("store");
    let dest = format!("oci:{}:clean", s(&sc.join("dbdisk")));
    json_ok(
        &ocigo(
            &store,
            &["pack", "vulndb", &s(&clean), "-o", &dest, "--json"],
            &[],
        ),
        "pack clean",
    );
    json_ok(
        &ocigo(
            &store,
            &["pull", &dest, "--vulndb", &s(&sc.join("cleandb")), "--json"],
            &[],
        ),
        "pull clean",
    );
    let d = decision(&sc, &policy, src, &["--vulndb", &s(&sc.join("cleandb"))], 0);
    assert_eq!(d["rules"][0]["status"], "pass", "{d:#}");

    // Missing vulnerability data: could not run.
    let out = check(&sc, &policy, src, &["--vulndb", &s(&sc.join("nowhere"))]);
    assert_exit(&out, 2, "missing database");
    assert_mentions(&stderr(&out), &["index/db.json is missing"], "missing db");

    // govulncheck, offline, over the database ocigo wrote and the modules
    // ocigo pulled: the same (module version, ID) pairs, the ignored one
    // included (govulncheck has no ignore list).
    let govulncheck = tool("OCIGO_GOVULNCHECK", "govulncheck-v1.9.0");
    let gomodcache = sc.join("gomodcache");
    json_ok(
        &ocigo(
            &store,
            &["pull", src, "--gomodcache", &s(&gomodcache), "--json"],
            &[],
        ),
        "pull the bundle",
    );
    // govulncheck scans the modules of the packages it loads, for one
    // GOOS at a time: run it for both of the bundle's platforms.
    let mut scanned: Vec<String> = Vec::new();
    let mut theirs: Vec<(String, String)> = Vec::new();
    for goos in ["linux", "windows"] {
        let out = Command::new("unshare")
            .args(["-n", "--"])
            .arg(&govulncheck)
            .args([
                "-db",
                &format!("file://{}", s(&db)),
                "-scan",
                "module",
                "-format",
                "json",
            ])
            .current_dir(project)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("HOME", std::env::var("HOME").unwrap())
            .env("GOMODCACHE", &gomodcache)
            .env("GOCACHE", common::go::gocache())
            .env("GOPROXY", "off")
            .env("GOFLAGS", "-mod=mod")
            .env("GOTOOLCHAIN", "local")
            .env("GOENV", "off")
            .env("GOOS", goos)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success() || out.status.code() == Some(3),
            "govulncheck: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        for v in json_stream(&text) {
            if let Some(mods) = v["SBOM"]["modules"].as_array() {
                for m in mods {
                    if let (Some(p), Some(v)) = (m["path"].as_str(), m["version"].as_str()) {
                        scanned.push(format!("{p}@{v}"));
                    }
                }
            }
            if let Some(f) = v.get("finding") {
                let t = &f["trace"][0];
                theirs.push((
                    format!(
                        "{}@{}",
                        t["module"].as_str().unwrap(),
                        t["version"].as_str().unwrap()
                    ),
                    f["osv"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    theirs.sort();
    theirs.dedup();
    scanned.sort();
    scanned.dedup();
    // Every module version govulncheck scanned has the same verdict from
    // ocigo (which also reports the ignored one, as a note), and the scan
    // covered every version in range.
    let ours: Vec<(String, String)> = found
        .iter()
        .filter(|(m, _)| scanned.contains(m))
        .cloned()
        .collect();
    assert_eq!(theirs, ours, "scanned: {scanned:?}");
    assert_eq!(theirs, expected_hits(), "scanned: {scanned:?}");
    assert!(scanned.len() >= 6, "{scanned:?}");
}

/// A concatenation of JSON values (govulncheck's -format json).
fn json_stream(text: &str) -> Vec<serde_json::Value> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<serde_json::Value>()
        .map(|v| v.unwrap())
        .collect()
}

/// A test tool built by scripts/lib.sh: `$VAR`, else the cached binary.
fn tool(var: &str, cached: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return PathBuf::from(p);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache"))
        .join("ocigo-ci");
    let p = if cached.starts_with("venv") {
        base.join(cached).join("bin/check-jsonschema")
    } else {
        base.join("bin").join(cached)
    };
    assert!(
        p.is_file(),
        "{} is missing: run scripts/test.sh (lib.sh builds it), or set {var}",
        p.display()
    );
    p
}

#[test]
fn pull_vulndb_refuses_what_is_not_a_database_and_keeps_other_dirs() {
    let sc = Scratch::new();
    let store = sc.join("store");
    let records = sc.join("osv");
    let (id, text) = &osv_records()[0];
    write(&records.join(format!("{id}.json")), text);
    // A record in the wrong file name is refused when packing.
    write(&sc.join("misnamed/GO-1.json"), text);
    let out = ocigo(
        &store,
        &[
            "pack",
            "vulndb",
            &s(&sc.join("misnamed")),
            "-o",
            &format!("oci:{}:x", s(&sc.join("d"))),
        ],
        &[],
    );
    assert_exit(&out, 3, "misnamed record");
    assert_mentions(&stderr(&out), &["<ID>.json"], "misnamed");
    let dest = format!("oci:{}:db", s(&sc.join("disk")));
    json_ok(
        &ocigo(
            &store,
            &["pack", "vulndb", &s(&records), "-o", &dest, "--json"],
            &[],
        ),
        "pack",
    );
    // The artifact is as documented: artifactType, media types, the config
    // valid against schemas/vulndb-config.v1.schema.json.
    let layout = Layout::open(sc.join("disk")).unwrap();
    let top = layout.resolve("db").unwrap();
    let manifest = layout.fetch_manifest(&top).unwrap().manifest().unwrap();
    assert_eq!(
        manifest.artifact_type.as_deref(),
        Some("application/vnd.ocigo.vulndb.v1")
    );
    assert_eq!(
        manifest.config.media_type,
        "application/vnd.ocigo.vulndb.config.v1+json"
    );
    assert_eq!(
        manifest.layers[0].media_type,
        "application/vnd.ocigo.vulndb.layer.v1.tar+zstd"
    );
    let config = std::fs::read_to_string(layout.blob_path(&manifest.config.digest)).unwrap();
    let (ok, why) = validate(
        &sc,
        &schemas().join("vulndb-config.v1.schema.json"),
        &config,
        "config.json",
    );
    assert!(ok, "{why}\n{config}");
    // An index that hides a record is refused, and nothing is written.
    let layer = std::fs::read(layout.blob_path(&manifest.layers[0].digest)).unwrap();
    let tar_bytes = zstd::decode_all(&layer[..]).unwrap();
    let mut builder = tar::Builder::new(Vec::new());
    for entry in tar::Archive::new(&tar_bytes[..]).entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        if name == "index/modules.json" {
            bytes = b"[]".to_vec();
        }
        let mut h = entry.header().clone();
        h.set_size(bytes.len() as u64);
        h.set_cksum();
        builder.append(&h, &bytes[..]).unwrap();
    }
    let forged_tar = builder.into_inner().unwrap();
    let forged_layer = zstd::encode_all(&forged_tar[..], 3).unwrap();
    let mut cfg: serde_json::Value = serde_json::from_str(&config).unwrap();
    cfg["tarBytes"] = forged_tar.len().into();
    let cfg = serde_json::to_vec(&cfg).unwrap();
    let cfg_desc = Descriptor::for_bytes(&manifest.config.media_type, &cfg);
    let layer_desc = Descriptor::for_bytes(&manifest.layers[0].media_type, &forged_layer);
    layout.push_blob(&cfg_desc, &mut &cfg[..]).unwrap();
    layout
        .push_blob(&layer_desc, &mut &forged_layer[..])
        .unwrap();
    let mut forged = manifest.clone();
    forged.config = cfg_desc;
    forged.layers = vec![layer_desc];
    layout
        .push_manifest(
            ocigo::oci::MEDIA_TYPE_MANIFEST,
            &ocigo::oci::to_canonical_json(&forged),
            Some("forged"),
        )
        .unwrap();
    let out = ocigo(
        &store,
        &[
            "pull",
            &format!("oci:{}:forged", s(&sc.join("disk"))),
            "--vulndb",
            &s(&sc.join("forged")),
        ],
        &[],
    );
    assert_exit(&out, 3, "pull of a database whose index hides a record");
    assert_mentions(
        &stderr(&out),
        &["indexes or config do not match its records"],
        "forged index",
    );
    assert!(!sc.join("forged").exists());
    assert!(
        std::fs::read_dir(sc.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("ocigo-tmp")),
        "a temporary directory was left behind"
    );
    // A directory holding something else is left alone (exit 5).
    let other = sc.join("other");
    write(&other.join("keep.txt"), "mine");
    let out = ocigo(&store, &["pull", &dest, "--vulndb", &s(&other)], &[]);
    assert_exit(&out, 5, "pull --vulndb into a used directory");
    assert_eq!(
        std::fs::read_to_string(other.join("keep.txt")).unwrap(),
        "mine"
    );
    assert_eq!(std::fs::read_dir(&other).unwrap().count(), 1);
    // A module bundle is not a database.
    let b = bundle(&sc.join("b"), &[m("example.com/a", "v1.0.0")], None);
    let out = ocigo(&store, &["pull", &b, "--vulndb", &s(&sc.join("new"))], &[]);
    assert_exit(&out, 2, "pull --vulndb of a bundle");
    assert!(!sc.join("new").exists());
}

/// Pushes to `layout`, tagged `tag`, a database artifact like `manifest`
/// but with a layer of `files` (tar with GNU long names, zstd) and a config
/// claiming `tar_bytes` (the real length if `None`).
fn forge_vulndb(
    layout: &Layout,
    manifest: &ocigo::oci::Manifest,
    files: &[(String, Vec<u8>)],
    tar_bytes: Option<u64>,
    tag: &str,
) {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut h, name, &bytes[..]).unwrap();
    }
    let tar = builder.into_inner().unwrap();
    let layer = zstd::encode_all(&tar[..], 3).unwrap();
    let records = files.iter().filter(|(n, _)| n.starts_with("ID/")).count();
    let cfg = serde_json::to_vec(&serde_json::json!({
        "formatVersion": 1,
        "modified": "2026-11-01T00:00:00Z",
        "records": records,
        "files": files.len(),
        "tarBytes": tar_bytes.unwrap_or(tar.len() as u64),
    }))
    .unwrap();
    let cfg_desc = Descriptor::for_bytes(&manifest.config.media_type, &cfg);
    let layer_desc = Descriptor::for_bytes(&manifest.layers[0].media_type, &layer);
    layout.push_blob(&cfg_desc, &mut &cfg[..]).unwrap();
    layout.push_blob(&layer_desc, &mut &layer[..]).unwrap();
    let mut forged = manifest.clone();
    forged.config = cfg_desc;
    forged.layers = vec![layer_desc];
    layout
        .push_manifest(
            ocigo::oci::MEDIA_TYPE_MANIFEST,
            &ocigo::oci::to_canonical_json(&forged),
            Some(tag),
        )
        .unwrap();
}

/// The published layout of one record with ID `id`.
fn layout_of(id: &str) -> Vec<(String, Vec<u8>)> {
    let (_, text) = osv(id, "example.com/pseudo", r#"{"introduced":"0"}"#, "");
    let record = ocigo::policy::vulndb::Record {
        entry: serde_json::from_str(&text).unwrap(),
        bytes: text.into_bytes(),
    };
    ocigo::policy::vulndb::build_layout(&[record], None)
        .unwrap()
        .1
}

#[test]
fn pull_vulndb_replaces_only_its_own_layout_and_bounds_ids_and_sizes() {
    let sc = Scratch::new();
    let store = sc.join("store");
    let records = sc.join("osv");
    let (id, text) = &osv_records()[0];
    write(&records.join(format!("{id}.json")), text);
    let dest = format!("oci:{}:db", s(&sc.join("disk")));
    json_ok(
        &ocigo(
            &store,
            &["pack", "vulndb", &s(&records), "-o", &dest, "--json"],
            &[],
        ),
        "pack",
    );
    let db = sc.join("db");
    json_ok(
        &ocigo(&store, &["pull", &dest, "--vulndb", &s(&db), "--json"], &[]),
        "pull",
    );
    // Pulling again replaces a database ocigo wrote.
    std::fs::remove_file(db.join(format!("ID/{id}.json"))).unwrap();
    json_ok(
        &ocigo(&store, &["pull", &dest, "--vulndb", &s(&db), "--json"], &[]),
        "pull over an earlier database",
    );
    assert!(db.join(format!("ID/{id}.json")).is_file());
    // A directory that merely holds index/db.json besides the user's own
    // files is not ours: refused (exit 5), nothing changed.
    let mine = sc.join("mine");
    write(&mine.join("index/db.json"), "{\"modified\":\"x\"}");
    write(&mine.join("notes.txt"), "mine");
    let out = ocigo(&store, &["pull", &dest, "--vulndb", &s(&mine)], &[]);
    assert_exit(
        &out,
        5,
        "pull --vulndb over a directory with index/db.json and more",
    );
    assert_mentions(&stderr(&out), &["not a vulnerability database"], "mine");
    assert_eq!(
        std::fs::read_to_string(mine.join("notes.txt")).unwrap(),
        "mine"
    );
    assert_eq!(
        std::fs::read_to_string(mine.join("index/db.json")).unwrap(),
        "{\"modified\":\"x\"}"
    );
    assert_eq!(std::fs::read_dir(&mine).unwrap().count(), 2);
    // So is a pulled database the user added a file to, in ID/ or beside.
    for extra in ["ID/README.md", "keep.txt"] {
        write(&db.join(extra), "mine");
        let out = ocigo(&store, &["pull", &dest, "--vulndb", &s(&db)], &[]);
        assert_exit(&out, 5, extra);
        assert_eq!(std::fs::read_to_string(db.join(extra)).unwrap(), "mine");
        assert!(db.join(format!("ID/{id}.json")).is_file());
        std::fs::remove_file(db.join(extra)).unwrap();
    }
    let leftovers: Vec<String> = std::fs::read_dir(sc.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("ocigo-"))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");

    let layout = Layout::open(sc.join("disk")).unwrap();
    let top = layout.resolve("db").unwrap();
    let manifest = layout.fetch_manifest(&top).unwrap().manifest().unwrap();
    let disk = |tag: &str| format!("oci:{}:{tag}", s(&sc.join("disk")));
    // A config claiming a tar far over any real database is refused before
    // anything is decompressed.
    forge_vulndb(&layout, &manifest, &layout_of(id), Some(600 << 20), "huge");
    let out = ocigo(
        &store,
        &["pull", &disk("huge"), "--vulndb", &s(&sc.join("huge"))],
        &[],
    );
    assert_exit(&out, 3, "a config claiming a 600 MiB tar");
    assert_mentions(&stderr(&out), &["629145600", "reads at most"], "huge");
    assert!(!sc.join("huge").exists());
    // The layout holds only IDs `policy check` reads: 128 characters at
    // most (a longer one would be refused later, or not fit a file name).
    for n in [129, 300] {
        let long = format!("GO-2099-{}", "7".repeat(n - 8));
        let tag = format!("long{n}");
        forge_vulndb(&layout, &manifest, &layout_of(&long), None, &tag);
        let into = sc.join(&tag);
        let out = ocigo(&store, &["pull", &disk(&tag), "--vulndb", &s(&into)], &[]);
        assert_exit(&out, 3, &format!("a record ID of {n} characters"));
        assert_mentions(&stderr(&out), &["is not an OSV ID", &long[..90]], &tag);
        assert!(!into.exists());
    }
    // An ID of 128 characters is one.
    let longest = format!("GO-2099-{}", "7".repeat(120));
    forge_vulndb(&layout, &manifest, &layout_of(&longest), None, "long128");
    json_ok(
        &ocigo(
            &store,
            &[
                "pull",
                &disk("long128"),
                "--vulndb",
                &s(&sc.join("long128")),
                "--json",
            ],
            &[],
        ),
        "a record ID of 128 characters",
    );
    assert!(sc.join(&format!("long128/ID/{longest}.json")).is_file());
}

// ---- coverage ------------------------------------------------------------

#[test]
fn coverage_rule() {
    let sc = Scratch::new();
    let (project, src) = packed_project();
    let policy = write(
        &sc.join("cov.yaml"),
        "version: 1\ncoverage:\n  platforms: [linux/amd64, windows/amd64]\n  exact: true\n",
    );
    let d = decision(&sc, &policy, src, &["--project", &s(project)], 0);
    assert_eq!(d["rules"][0]["status"], "pass", "{d:#}");

    // A project that needs more, and a go.sum the bundle contradicts.
    let other = sc.join("other");
    common::fixtures::copy_tree(project, &other);
    let go_mod = std::fs::read_to_string(other.join("go.mod")).unwrap();
    std::fs::write(
        other.join("go.mod"),
        go_mod.replace("example.com/testonly v1.0.0", "example.com/testonly v1.0.1"),
    )
    .unwrap();
    let go_sum = std::fs::read_to_string(other.join("go.sum")).unwrap();
    let (line_no, line) = go_sum
        .lines()
        .enumerate()
        .find(|(_, l)| l.starts_with("example.com/shared v1.1.0 h1:"))
        .unwrap();
    let forged = line.replace("h1:", "h1:AAAA");
    std::fs::write(other.join("go.sum"), go_sum.replace(line, &forged)).unwrap();
    let strict = write(
        &sc.join("strict.yaml"),
        "version: 1\ncoverage:\n  platforms: [linux/arm64]\n  exact: true\n",
    );
    let d = decision(&sc, &strict, src, &["--project", &s(&other)], 1);
    let errs = errors(&d, "coverage");
    let testonly_line = go_mod
        .lines()
        .position(|l| l.contains("example.com/testonly"))
        .unwrap()
        + 1;
    assert!(
        errs.iter().any(|e| e.0 == "example.com/testonly@v1.0.1"
            && e.1.contains("not in the bundle")
            && e.2 == Some(testonly_line as u64)),
        "{errs:#?}"
    );
    assert!(
        errs.iter().any(|e| e.0 == "example.com/shared@v1.1.0"
            && e.1.contains("contradicts go.sum")
            && e.2 == Some(line_no as u64 + 1)),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.1.contains("not resolved for linux/arm64") && e.2 == Some(3)),
        "{errs:#?}"
    );
    // exact: testonly v1.0.0 is in the bundle but no longer named... by
    // go.mod; go.sum still names it, so it is not flagged.
    assert!(
        !errs.iter().any(|e| e.0 == "example.com/testonly@v1.0.0"),
        "{errs:#?}"
    );
    // The SARIF locations point at go.mod and go.sum.
    let out = check(
        &sc,
        &strict,
        src,
        &["--project", &s(&other), "--format", "sarif"],
    );
    assert_exit(&out, 1, "sarif");
    let sarif: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let uris: Vec<String> = sarif["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| {
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                .as_str()
                .map(String::from)
        })
        .collect();
    assert!(
        uris.iter().any(|u| u.ends_with("/go.mod")) && uris.iter().any(|u| u.ends_with("/go.sum")),
        "{uris:?}"
    );
}

// ---- output formats ------------------------------------------------------

fn schemas() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

/// Validates `doc` against `schema` with check-jsonschema; returns its
/// verdict and output.
fn validate(sc: &Scratch, schema: &Path, doc: &str, name: &str) -> (bool, String) {
    let file = write(&sc.join(name), doc);
    let out = Command::new(tool(
        "OCIGO_CHECK_JSONSCHEMA",
        "venv-check-jsonschema-0.39.0",
    ))
    .arg("--schemafile")
    .arg(schema)
    .arg(&file)
    .output()
    .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn json_and_sarif_validate_against_their_schemas() {
    let sc = Scratch::new();
    let db = vulndb_dir(&sc);
    let src = bundle(
        &sc.join("b"),
        &[
            m("example.com/pseudo", "v0.0.0-20230102030405-abcdef123456"),
            m("github.com/acme/lib", "v1.0.0"),
        ],
        Some(days_ago(40)),
    );
    let policy = write(
        &sc.join("all.yaml"),
        &format!(
            "version: 1\nmodules:\n  deny:\n    - path: github.com/acme\nvulnerabilities:\n  database: {}\n  max_db_age: 1d\nage:\n  max: 30d\n",
            s(&db)
        ),
    );
    let decision_schema = schemas().join("policy-decision.v1.schema.json");
    let sarif_schema = schemas().join("sarif-schema-2.1.0.json");
    let json = stdout(&check(&sc, &policy, &src, &["--format", "json"]));
    let (ok, why) = validate(&sc, &decision_schema, &json, "decision.json");
    assert!(ok, "{why}\n{json}");
    let out = check(&sc, &policy, &src, &["--format", "sarif"]);
    assert_exit(&out, 1, "sarif run");
    let sarif = stdout(&out);
    let (ok, why) = validate(&sc, &sarif_schema, &sarif, "out.sarif.json");
    assert!(ok, "{why}\n{sarif}");
    let v: serde_json::Value = serde_json::from_str(&sarif).unwrap();
    assert_eq!(v["version"], "2.1.0");
    assert!(
        v["runs"][0]["results"].as_array().unwrap().len() >= 4,
        "{sarif}"
    );
    // A passing run validates too (no results).
    let pass = write(
        &sc.join("pass.yaml"),
        "version: 1\nmodules:\n  deny:\n    - path: nothing.example\n",
    );
    let out = check(&sc, &pass, &src, &["--format", "sarif"]);
    assert_exit(&out, 0, "passing sarif");
    assert!(validate(&sc, &sarif_schema, &stdout(&out), "pass.sarif.json").0);
    // The validators are not vacuous: broken documents fail them.
    let mut broken: serde_json::Value = serde_json::from_str(&json).unwrap();
    broken["rules"][0]["status"] = "maybe".into();
    assert!(!validate(&sc, &decision_schema, &broken.to_string(), "broken.json").0);
    let mut broken: serde_json::Value = serde_json::from_str(&sarif).unwrap();
    broken["runs"][0]["results"][0]["level"] = "fatal".into();
    assert!(!validate(&sc, &sarif_schema, &broken.to_string(), "broken.sarif.json").0);
    // The policy schema accepts the example and rejects an unknown key.
    let policy_schema = schemas().join("policy.v1.schema.json");
    let example = ocigo::policy::yaml::parse(ocigo::policy::spec::EXAMPLE)
        .unwrap()
        .value;
    assert!(validate(&sc, &policy_schema, &example.to_string(), "example.json").0);
    let mut bad = example.clone();
    bad["modules"]["denny"] = serde_json::json!([]);
    assert!(!validate(&sc, &policy_schema, &bad.to_string(), "bad-policy.json").0);
}

// ---- signatures ----------------------------------------------------------

/// `ocigo key generate` into `dir/NAME.{key,pub}`.
fn key_pair(sc: &Scratch, name: &str) -> PathBuf {
    let prefix = sc.join(name);
    let out = ocigo(
        &sc.join("store"),
        &["key", "generate", "--output-prefix", &s(&prefix)],
        &[("COSIGN_PASSWORD", "gate")],
    );
    assert_exit(&out, 0, "key generate");
    prefix
}

#[test]
fn signatures_rule() {
    let sc = Scratch::new();
    let src = bundle(&sc.join("b"), &[m("example.com/a", "v1.0.0")], None);
    let (a, b, c) = (key_pair(&sc, "a"), key_pair(&sc, "b"), key_pair(&sc, "c"));
    let sign = |key: &Path, ann: &[&str]| {
        let k = format!("{}.key", s(key));
        let mut args = vec!["sign", "--key", &k];
        for x in ann {
            args.extend_from_slice(&["-a", x]);
        }
        args.push(&src);
        assert_exit(
            &ocigo(&sc.join("store"), &args, &[("COSIGN_PASSWORD", "gate")]),
            0,
            "sign",
        );
    };
    let policy =
        |name: &str, body: &str| write(&sc.join(name), &format!("version: 1\nsignatures:\n{body}"));
    let one_of = policy(
        "one.yaml",
        "  keys: [a.pub, b.pub]\n  annotations:\n    gate: release\n",
    );
    // Not signed at all.
    let d = decision(&sc, &one_of, &src, &[], 1);
    assert_mentions(
        &format!("{:?}", errors(&d, "signatures")),
        &["0 of the required 1", "not signed"],
        "unsigned",
    );
    // Signed by a, without the annotation: still a violation, saying why.
    sign(&a, &[]);
    let d = decision(&sc, &one_of, &src, &[], 1);
    assert_mentions(
        &format!("{:?}", errors(&d, "signatures")),
        &["lacks the annotation(s) gate=release"],
        "annotation",
    );
    // Signed by b with it: passes.
    sign(&b, &["gate=release"]);
    let d = decision(&sc, &one_of, &src, &[], 0);
    assert_mentions(
        d["rules"][0]["summary"].as_str().unwrap(),
        &["b.pub"],
        "signed by b",
    );
    // Two of three needed, and only b counts (a lacks the annotation).
    let two = policy(
        "two.yaml",
        "  keys: [a.pub, b.pub, c.pub]\n  threshold: 2\n  annotations: {gate: release}\n",
    );
    let d = decision(&sc, &two, &src, &[], 1);
    let errs = errors(&d, "signatures");
    assert_mentions(&format!("{errs:?}"), &["1 of the required 2"], "threshold");
    assert_eq!(errs[0].2, Some(4), "points at the threshold line: {errs:?}");
    // A key that never signed: no signature counts.
    let other = policy("other.yaml", "  keys: [c.pub]\n");
    decision(&sc, &other, &src, &[], 1);
    // c signs in the bundle format (cosign v3, a referrer): it counts only
    // where the policy accepts that format.
    let c_key = format!("{}.key", s(&c));
    assert_exit(
        &ocigo(
            &sc.join("store"),
            &[
                "sign",
                "--key",
                &c_key,
                "--format",
                "bundle",
                "-a",
                "gate=release",
                &src,
            ],
            &[("COSIGN_PASSWORD", "gate")],
        ),
        0,
        "sign --format bundle",
    );
    let d = decision(&sc, &other, &src, &[], 1);
    assert_mentions(
        &format!("{:?}", errors(&d, "signatures")),
        &[
            "a bundle signature by",
            "does not count: the policy accepts legacy",
        ],
        "bundle refused",
    );
    let bundles = policy("bundle.yaml", "  keys: [c.pub]\n  formats: [bundle]\n");
    decision(&sc, &bundles, &src, &[], 0);
    let both = policy(
        "both.yaml",
        "  keys: [b.pub, c.pub]\n  threshold: 2\n  formats: [legacy, bundle]\n  annotations: {gate: release}\n",
    );
    decision(&sc, &both, &src, &[], 0);
    // A key file that cannot be read: the check cannot run.
    let missing = policy("missing.yaml", "  keys: [nope.pub]\n");
    assert_exit(&check(&sc, &missing, &src, &[]), 2, "missing key file");
}

// ---- --attest ------------------------------------------------------------

const DECISION_TYPE: &str = "https://ocigo.dev/attestations/policy-decision/v1";

#[test]
fn attested_decisions_verify_with_ocigo_and_cosign_and_bind_digest_and_policy() {
    use common::registry::{Kind as RegistryKind, TestRegistry};
    let sc = Scratch::new();
    let store = sc.join("store");
    let reg = TestRegistry::start_kind(RegistryKind::Ggcr);
    let gate = key_pair(&sc, "gate");
    let gate_key = format!("{}.key", s(&gate));
    let gate_pub = format!("{}.pub", s(&gate));
    let pw = [("COSIGN_PASSWORD", "gate")];
    let push = |layout: &str, name: &str| {
        let remote = format!("{}/team/{name}:v1", reg.addr);
        assert_exit(&ocigo(&store, &["push", layout, &remote], &[]), 0, "push");
        remote
    };
    let one = push(
        &bundle(
            &sc.join("one"),
            &[m("example.com/a", "v1.0.0")],
            Some(days_ago(1)),
        ),
        "one",
    );
    let two = push(
        &bundle(
            &sc.join("two"),
            &[m("example.com/b", "v1.0.0")],
            Some(days_ago(90)),
        ),
        "two",
    );
    let policy = write(&sc.join("gate.yaml"), "version: 1\nage:\n  max: 30d\n");
    let other_policy = write(&sc.join("other.yaml"), "version: 1\nage:\n  max: 31d\n");

    // The gate passes and attests.
    let out = ocigo(
        &store,
        &[
            "policy",
            "check",
            "--policy",
            &s(&policy),
            "--attest",
            &gate_key,
            "--format",
            "json",
            &one,
        ],
        &pw,
    );
    assert_exit(&out, 0, "policy check --attest");
    let d: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let attestation = d["attestation"].as_str().unwrap().to_string();
    assert!(attestation.starts_with("sha256:"), "{d:#}");

    // ocigo verifies it: this digest, this policy, passed.
    let verify = |src: &str, policy: Option<&Path>| {
        let mut args = vec![
            "verify",
            "--attestation-type",
            DECISION_TYPE,
            "--key",
            &gate_pub,
        ];
        let p = policy.map(s);
        if let Some(p) = &p {
            args.extend_from_slice(&["--policy", p]);
        }
        args.push(src);
        ocigo(&store, &args, &[])
    };
    let out = verify(&one, Some(&policy));
    assert_exit(&out, 0, "verify the decision");
    let printed: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(printed["bundle"]["digest"], d["bundle"]["digest"]);
    assert_eq!(printed["passed"], true);
    // The decision validates against its schema, as a predicate too.
    let (ok, why) = validate(
        &sc,
        &schemas().join("policy-decision.v1.schema.json"),
        &printed.to_string(),
        "predicate.json",
    );
    assert!(ok, "{why}");

    // Another policy: refused.
    let out = verify(&one, Some(&other_policy));
    assert_exit(&out, 3, "decision for another policy");
    assert_mentions(
        &stderr(&out),
        &[
            "was made with policy",
            "no policy decision says the gate passed",
        ],
        "other policy",
    );

    // cosign v3 verifies the same attestation.
    let cosign = common::cosign::v3();
    let out = common::cosign::run(
        &cosign,
        sc.path(),
        "",
        &[
            "verify-attestation",
            "--key",
            &gate_pub,
            "--insecure-ignore-tlog=true",
            "--type",
            DECISION_TYPE,
            &one,
        ],
    );
    assert!(
        out.status.success(),
        "cosign verify-attestation: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    // ... and refuses it under a key that did not make it.
    let stranger = key_pair(&sc, "stranger");
    let out = common::cosign::run(
        &cosign,
        sc.path(),
        "",
        &[
            "verify-attestation",
            "--key",
            &format!("{}.pub", s(&stranger)),
            "--insecure-ignore-tlog=true",
            "--type",
            DECISION_TYPE,
            &one,
        ],
    );
    assert!(!out.status.success(), "cosign accepted a stranger's key");

    // Another digest: bundle two has no decision of its own.
    let out = verify(&two, None);
    assert_exit(&out, 3, "no decision for another digest");
    // A decision made for bundle one, signed with the gate key and attached
    // to bundle two, is refused: it decides about another digest.
    let layout = sc.join("two");
    let layout_repo = Layout::open(&layout).unwrap();
    let two_top = layout_repo.resolve("v1").unwrap();
    let key = ocigo::sign::read_private_key_file(Path::new(&gate_key), b"gate").unwrap();
    ocigo::sign::attach_attestation(
        &layout_repo,
        "",
        &two_top,
        &key,
        DECISION_TYPE,
        &serde_json::to_vec(&printed).unwrap(),
    )
    .unwrap();
    let two_layout = format!("oci:{}:v1", s(&layout));
    let out = verify(&two_layout, None);
    assert_exit(&out, 3, "a decision about another digest");
    assert_mentions(
        &stderr(&out),
        &[&format!(
            "decides about {}",
            d["bundle"]["digest"].as_str().unwrap()
        )],
        "another digest",
    );
    // A failed gate, attested, does not pass verification either.
    let out = ocigo(
        &store,
        &[
            "policy",
            "check",
            "--policy",
            &s(&policy),
            "--attest",
            &gate_key,
            &two_layout,
        ],
        &pw,
    );
    assert_exit(&out, 1, "a failing check still attests its decision");
    let out = verify(&two_layout, Some(&policy));
    assert_exit(&out, 3, "a failed decision");
    assert_mentions(&stderr(&out), &["says the gate failed"], "failed gate");
}
