//! Organisation scale: a generated closure of 20,000 module versions
//! (tests/common/closure.rs) packed, pushed to a real registry, pulled into
//! an empty GOMODCACHE and built offline by the go command; then one module
//! upgraded, added and removed, counting in the registry's own storage what
//! each new bundle added.
//!
//! CI runs the lean form: every module version of the graph, but only
//! `OCIGO_SCALE_PACKAGES` (default 600) of them with packages that the
//! main module imports, so the go command compiles a few hundred packages,
//! not thousands. `OCIGO_SCALE_VERSIONS` changes the size. Times and peak
//! memory are the benchmark's (scripts/bench-modules.sh --scale), not
//! asserted here.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::closure::{self, Gen, Spec};
use common::fixtures::fixture_env;
use common::go::{assert_success, go_offline};
use common::ocigo::{Scratch, json_ok, ocigo};
use common::registry::TestRegistry;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Every blob (manifests included: distribution stores them as blobs) in
/// the registry's storage, digest -> size.
fn registry_blobs(storage: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let root = storage.join("docker/registry/v2/blobs/sha256");
    let Ok(prefixes) = fs::read_dir(&root) else {
        return out;
    };
    for p in prefixes {
        for d in fs::read_dir(p.unwrap().path()).unwrap() {
            let d = d.unwrap();
            let data = d.path().join("data");
            if let Ok(m) = fs::metadata(&data) {
                out.insert(d.file_name().to_string_lossy().into_owned(), m.len());
            }
        }
    }
    out
}

fn pack(store: &Path, proxy: &Path, project: &Path, dest: &str, cache: &Path) -> serde_json::Value {
    let mut env = fixture_env(proxy);
    env.push(("GOMODCACHE".into(), s(cache)));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = ocigo(store, &["pack", &s(project), "-o", dest, "--json"], &env);
    json_ok(&out, &format!("ocigo pack -o {dest}"))
}

#[test]
fn organisation_scale_round_trip_and_one_module_deltas() {
    let spec = Spec {
        versions: env_usize("OCIGO_SCALE_VERSIONS", 20_000),
        packages: env_usize("OCIGO_SCALE_PACKAGES", 600),
        files_per_zip: 6,
    };
    let t = Instant::now();
    let c = closure::generate(spec);
    eprintln!(
        "closure: {} module versions ({} with packages), ready in {:.1?}",
        c.versions(),
        c.packages.len(),
        t.elapsed()
    );
    assert_eq!(c.versions(), spec.versions);

    let sc = Scratch::new();
    let reg = TestRegistry::start();
    let store = sc.dir("store");
    let user_cache = sc.dir("user-modcache");
    let base: Vec<&Gen> = c.packages.iter().collect();
    let project = sc.join("base");
    closure::write_project(&project, &base, &c.hubs, &c.graph);

    // Pack straight to the registry.
    let t = Instant::now();
    let dest = format!("{}/org/bundle:base", reg.addr);
    let packed = pack(&store, &c.proxy, &project, &dest, &user_cache);
    eprintln!("pack: {:.1?}", t.elapsed());
    assert_eq!(packed["modules"], spec.versions, "{}", packed["modules"]);
    assert_eq!(packed["zips"], spec.packages + c.hubs.len());
    let parts = packed["manifests"].as_u64().unwrap();
    // Parts average 128 paths and never pass 2,048 modules.
    assert!(
        parts as usize >= spec.versions / 2048 && parts as usize <= spec.versions / 40,
        "{parts} parts for {} modules",
        spec.versions
    );
    let base_blobs = registry_blobs(&reg.storage_dir());
    let bundle_bytes: u64 = base_blobs.values().sum();
    assert!(
        base_blobs.len() as u64 >= spec.packages as u64 + 2 * parts + 2,
        "{} blobs in the registry",
        base_blobs.len()
    );

    // Pull into an empty GOMODCACHE with an empty store; the go command
    // builds and verifies offline with nothing else.
    let t = Instant::now();
    let modcache = sc.dir("modcache");
    let out = ocigo(
        &sc.dir("pull-store"),
        &["pull", &dest, "--gomodcache", &s(&modcache), "--json"],
        &[],
    );
    let pulled = json_ok(&out, "ocigo pull of the organisation bundle");
    eprintln!("pull: {:.1?}", t.elapsed());
    assert_eq!(pulled["installed"], spec.versions, "{pulled:#}");
    assert_eq!(pulled["digest"], packed["digest"]);
    let t = Instant::now();
    let mc = s(&modcache);
    let env = [
        ("GOMODCACHE", mc.as_str()),
        ("GOPROXY", "off"),
        ("GOFLAGS", ""),
    ];
    for args in [&["build", "./..."][..], &["mod", "verify"], &["run", "."]] {
        let out = go_offline(&project, args, &env);
        assert_success(&out, &format!("offline go {}", args.join(" ")));
        if args[0] == "run" {
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                spec.packages.to_string()
            );
        }
    }
    eprintln!("offline go build, mod verify, run: {:.1?}", t.elapsed());

    // One module upgraded, added, removed: each new bundle adds to the
    // registry at most its new zip, a new header (config and manifest), two
    // parts (config and manifest each: the one the module is in, and one
    // more when its path is a cut point) and the index; under 1% of the
    // bundle's bytes.
    let upgraded: Vec<&Gen> = base
        .iter()
        .map(|g| {
            if g.path == c.upgrade.path {
                &c.upgrade
            } else {
                g
            }
        })
        .collect();
    let mut added = base.clone();
    added.push(&c.extra);
    let removed: Vec<&Gen> = base
        .iter()
        .copied()
        .filter(|g| g.path != c.packages[5].path)
        .collect();
    let variants: [(&str, Vec<&Gen>, usize); 3] = [
        ("upgrade", upgraded, 1),
        ("add", added, 1),
        ("remove", removed, 0),
    ];
    for (name, packages, new_zips) in variants {
        let dir: PathBuf = sc.join(name);
        closure::write_project(&dir, &packages, &c.hubs, &c.graph);
        let before = registry_blobs(&reg.storage_dir());
        let t = Instant::now();
        let packed = pack(
            &store,
            &c.proxy,
            &dir,
            &format!("{}/org/bundle:{name}", reg.addr),
            &user_cache,
        );
        let after = registry_blobs(&reg.storage_dir());
        let new: BTreeMap<&String, &u64> = after
            .iter()
            .filter(|(d, _)| !before.contains_key(*d))
            .collect();
        let new_bytes: u64 = new.values().copied().sum();
        eprintln!(
            "{name}: {} new blobs, {new_bytes} bytes ({:.3}% of {bundle_bytes}), pack {:.1?}",
            new.len(),
            100.0 * new_bytes as f64 / bundle_bytes as f64,
            t.elapsed()
        );
        // At least: the zip, one part (config, manifest) and the index; the
        // header only changes when the counts or zip bytes do.
        let promised = new_zips + 2 + 2 * 2 + 1;
        assert!(
            new.len() <= promised && new.len() >= new_zips + 3,
            "{name}: {} new blobs in the registry, the format promises {}..={promised}: {new:?}",
            new.len(),
            new_zips + 3
        );
        // What pack says it sent is what the registry gained (blobs other
        // than manifests: the zip, one or two part configs, the header's).
        let sent = packed["copy"]["blobs_sent"].as_u64().unwrap() as usize;
        assert!(
            (new_zips + 1..=new_zips + 3).contains(&sent),
            "{name}: sent {sent}"
        );
        // The 1% aim holds for a realistic mix (a third with packages, as
        // the benchmark generates); the lean CI closure has small zips, so
        // parts weigh more against its total.
        if spec.packages * 3 >= spec.versions {
            assert!(
                new_bytes * 100 <= bundle_bytes,
                "{name}: {new_bytes} new bytes, over 1% of the bundle's {bundle_bytes}"
            );
        }
    }
}
