//! Transfers through a fault-injecting proxy in front of a real registry
//! (`common::faults`): at a 10% fault rate (503, 429, dropped connections,
//! cut bodies) a push and a pull of a bundle of a few hundred blobs end
//! exactly as a fault-free run does; at 100% on blob requests ocigo ends
//! with a clear error naming the blob and the registry within a bounded
//! time, with nothing half-written.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::faults::{FaultProxy, Plan};
use common::ocigo::{
    Scratch, assert_exit, generate_modules, hash_tree, json_ok, ocigo, process_dir, stderr,
};
use common::registry::TestRegistry;

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// 300 generated modules packed into a layout (tag v1): a few hundred blobs.
fn layout() -> &'static Path {
    static LAYOUT: OnceLock<PathBuf> = OnceLock::new();
    LAYOUT.get_or_init(|| {
        let root = process_dir("xfer-faults");
        let g = generate_modules(&root, 300, 1024, &root.join("tidy-modcache"));
        let mut env = common::fixtures::fixture_env(&g.proxy);
        env.push(("GOMODCACHE".into(), s(&root.join("user-modcache"))));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let disk = root.join("disk");
        let out = ocigo(
            &root.join("store"),
            &[
                "pack",
                &s(&g.project),
                "-o",
                &format!("oci:{}:v1", s(&disk)),
            ],
            &env,
        );
        assert_exit(&out, 0, "ocigo pack of 300 generated modules");
        disk
    })
}

fn blob_count(layout: &Path) -> usize {
    std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .count()
}

/// Pushes the layout to `dest`, pulls it back into a fresh GOMODCACHE;
/// returns (digest, GOMODCACHE tree hash).
fn round_trip(sc: &Scratch, name: &str, dest: &str, env: &[(&str, &str)]) -> (String, String) {
    let src = format!("oci:{}:v1", s(layout()));
    let out = ocigo(
        &sc.join(&format!("{name}-store")),
        &["push", &src, dest, "--json"],
        env,
    );
    let pushed = json_ok(&out, &format!("push to {dest}"));
    let cache = sc.join(&format!("{name}-modcache"));
    let out = ocigo(
        &sc.join(&format!("{name}-pull-store")),
        &["pull", dest, "--gomodcache", &s(&cache), "--json"],
        env,
    );
    let pulled = json_ok(&out, &format!("pull from {dest}"));
    assert_eq!(pushed["digest"], pulled["digest"]);
    (
        pulled["digest"].as_str().unwrap().to_string(),
        hash_tree(&cache),
    )
}

#[test]
fn ten_percent_faults_change_nothing_in_the_result() {
    let sc = Scratch::new();
    let blobs = blob_count(layout());
    assert!(blobs >= 200, "the bundle has only {blobs} blobs");
    let reg = TestRegistry::start();
    let clean = round_trip(&sc, "clean", &format!("{}/team/clean:v1", reg.addr), &[]);

    let proxy = FaultProxy::start(&reg.addr, Plan::new(7, 10));
    let start = Instant::now();
    let faulty = round_trip(
        &sc,
        "faulty",
        &format!("{}/team/faulty:v1", proxy.addr),
        &[],
    );
    let took = start.elapsed();
    assert_eq!(
        faulty, clean,
        "digest and GOMODCACHE differ from a fault-free run"
    );
    let faults = proxy.faults();
    assert_eq!(
        faults.len(),
        4,
        "every kind of fault was injected: {faults:?}"
    );
    let injected: usize = faults.values().sum();
    assert!(
        injected * 100 >= proxy.requests() as usize * 5,
        "{injected} faults in {} requests",
        proxy.requests()
    );
    assert!(took < Duration::from_secs(240), "took {took:?}");
}

#[test]
fn every_blob_request_failing_ends_in_a_clear_error_with_nothing_written() {
    let sc = Scratch::new();
    let reg = TestRegistry::start();
    let src = format!("oci:{}:v1", s(layout()));
    let direct = format!("{}/team/mods:v1", reg.addr);
    json_ok(
        &ocigo(
            &sc.join("seed-store"),
            &["push", &src, &direct, "--json"],
            &[],
        ),
        "seed push",
    );

    let proxy = FaultProxy::start(&reg.addr, Plan::new(11, 100).blobs_only());
    let bound = Duration::from_secs(90);

    // Pull: manifests arrive, every blob request fails.
    let store = sc.join("pull-store");
    let cache = sc.join("modcache");
    let start = Instant::now();
    let out = ocigo(
        &store,
        &[
            "pull",
            &format!("{}/team/mods:v1", proxy.addr),
            "--gomodcache",
            &s(&cache),
        ],
        &[("OCIGO_RETRIES", "3")],
    );
    let took = start.elapsed();
    let err = stderr(&out);
    assert_exit(&out, 4, "pull with every blob request failing");
    assert!(took < bound, "the pull took {took:?}: {err}");
    assert!(
        err.contains("sha256:") && err.contains(&proxy.addr),
        "names blob and registry: {err}"
    );
    assert!(
        !cache.exists() || walk_files(&cache).is_empty(),
        "GOMODCACHE written: {:?}",
        walk_files(&cache)
    );
    let stray: Vec<_> = walk_files(&store)
        .into_iter()
        .map(|p| p[store.display().to_string().len()..].to_string())
        .filter(|p| p.contains("/blobs/sha256/") || p.contains("tmp"))
        .collect();
    assert!(
        stray.is_empty(),
        "the store holds {stray:?} after a failed pull"
    );

    // Push: every upload and check fails.
    let start = Instant::now();
    let out = ocigo(
        &sc.join("push-store"),
        &["push", &src, &format!("{}/team/other:v1", proxy.addr)],
        &[("OCIGO_RETRIES", "3")],
    );
    let took = start.elapsed();
    let err = stderr(&out);
    assert_exit(&out, 4, "push with every blob request failing");
    assert!(took < bound, "the push took {took:?}: {err}");
    assert!(
        err.contains("sha256:") && err.contains(&proxy.addr),
        "names blob and registry: {err}"
    );
    // Nothing was tagged in the destination.
    let tags = reqwest_tags(&reg.addr, "team/other");
    assert!(!tags.contains("v1"), "the destination got a tag: {tags}");
}

fn walk_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk_files(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

/// The registry's tag list of `repo`, as text ("" when unknown).
fn reqwest_tags(addr: &str, repo: &str) -> String {
    common::http::get(addr, &format!("/v2/{repo}/tags/list")).1
}

/// `--chunk-size` sends blobs larger than the size as PATCH chunks (the
/// registry's access log shows them) and ends with the same digest;
/// `--mount-from` mounts every blob from another repository of the
/// registry instead of sending it.
#[test]
fn chunked_uploads_and_mounts_give_the_same_artifact() {
    let sc = Scratch::new();
    let reg = TestRegistry::start();
    let src = format!("oci:{}:v1", s(layout()));
    let plain = json_ok(
        &ocigo(
            &sc.join("s1"),
            &[
                "push",
                &src,
                &format!("{}/team/plain:v1", reg.addr),
                "--json",
            ],
            &[],
        ),
        "plain push",
    );
    // Through a proxy that injects nothing, to see the requests.
    let proxy = FaultProxy::start(&reg.addr, Plan::new(1, 0));
    let chunked = json_ok(
        &ocigo(
            &sc.join("s2"),
            &[
                "push",
                &src,
                &format!("{}/team/chunked:v1", proxy.addr),
                "--chunk-size",
                "1K",
                "--json",
            ],
            &[],
        ),
        "chunked push",
    );
    assert_eq!(plain["digest"], chunked["digest"]);
    assert_eq!(chunked["copy"]["blobs_sent"], plain["copy"]["blobs_sent"]);
    let patches = proxy
        .seen()
        .iter()
        .filter(|r| r.starts_with("PATCH /v2/team/chunked/blobs/uploads/"))
        .count();
    assert!(patches > 0, "no chunk was sent");
    let cache = sc.join("modcache");
    let pulled = json_ok(
        &ocigo(
            &sc.join("s3"),
            &[
                "pull",
                &format!("{}/team/chunked:v1", reg.addr),
                "--gomodcache",
                &s(&cache),
                "--json",
            ],
            &[],
        ),
        "pull of the chunked push",
    );
    assert_eq!(pulled["digest"], plain["digest"]);

    let mounted = json_ok(
        &ocigo(
            &sc.join("s4"),
            &[
                "push",
                &src,
                &format!("{}/team/mounted:v1", reg.addr),
                "--mount-from",
                "team/plain",
                "--json",
            ],
            &[],
        ),
        "push with --mount-from",
    );
    assert_eq!(mounted["digest"], plain["digest"]);
    assert_eq!(mounted["copy"]["blobs_sent"], 0, "{mounted:#}");
    assert_eq!(mounted["copy"]["blobs_mounted"], plain["copy"]["blobs"]);

    let out = ocigo(
        &sc.join("s5"),
        &[
            "push",
            &src,
            &format!("{}/team/x:v1", reg.addr),
            "--mount-from",
            "Not A Repo",
        ],
        &[],
    );
    assert_exit(&out, 2, "--mount-from with a bad repository name");
    assert!(stderr(&out).contains("--mount-from"), "{}", stderr(&out));
}
