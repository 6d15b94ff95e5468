//! Registries that misbehave on the network: never answering a blob GET,
//! stalling mid-body, trickling a byte a second, cutting a body short, and
//! going silent on a reused keep-alive connection; and a registry whose
//! error body echoes credentials and terminal escape sequences. Each pull
//! must end within a bounded time with exit 4 and a message naming the blob
//! and how many bytes arrived, leaving GOMODCACHE and the content store
//! without a trace of the blob.
//!
//! Real parts: the real `ocigo` binary, a bundle packed by it from the
//! fixture project with the real go command. The registry is the fake of
//! tests/common/http.rs (`serve_faults`): no real registry can be made to
//! fail like this.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::fixtures::{build_file_proxy, copy_project, fixture_env};
use common::http::{self, Behaviour, Conn, reply};
use common::ocigo::{Scratch, assert_exit, ocigo, process_dir, stderr, stdout};

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The fixture project packed once into an OCI layout (tag v1).
fn packed_layout() -> &'static Path {
    static LAYOUT: OnceLock<PathBuf> = OnceLock::new();
    LAYOUT.get_or_init(|| {
        let root = process_dir("faults");
        let proxy = root.join("proxy");
        build_file_proxy(&proxy);
        let project = copy_project(&root);
        let mut env = fixture_env(&proxy);
        env.push(("GOMODCACHE".into(), s(&root.join("user-modcache"))));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let disk = root.join("disk");
        let dest = format!("oci:{}:v1", s(&disk));
        let out = ocigo(
            &root.join("store"),
            &["pack", project.to_str().unwrap(), "-o", &dest],
            &env,
        );
        assert_exit(&out, 0, "ocigo pack of the fixture project");
        disk
    })
}

/// The layout's v1 manifest: (media type, digest, bytes), and the digest
/// and bytes of its largest layer.
struct Bundle {
    manifest_type: String,
    manifest_digest: String,
    manifest: Vec<u8>,
    layer_digest: String,
    layer: Vec<u8>,
    dir: PathBuf,
}

fn bundle() -> Bundle {
    let dir = packed_layout().to_path_buf();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let desc = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "v1")
        .expect("tag v1 in the layout")
        .clone();
    let blob = |d: &str| std::fs::read(dir.join("blobs/sha256").join(&d[7..])).unwrap();
    let manifest_digest = desc["digest"].as_str().unwrap().to_string();
    let manifest = blob(&manifest_digest);
    // Format v2: the tag names an index of part manifests; the largest
    // layer of any part is the one the faults hit.
    let top: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let parts: Vec<serde_json::Value> = match top["manifests"].as_array() {
        Some(list) => list
            .iter()
            .map(|d| serde_json::from_slice(&blob(d["digest"].as_str().unwrap())).unwrap())
            .collect(),
        None => vec![top.clone()],
    };
    let layer = parts
        .iter()
        .flat_map(|p| p["layers"].as_array().cloned().unwrap_or_default())
        .max_by_key(|l| l["size"].as_u64().unwrap())
        .expect("a bundle with layers");
    let layer_digest = layer["digest"].as_str().unwrap().to_string();
    Bundle {
        manifest_type: desc["mediaType"].as_str().unwrap().to_string(),
        manifest_digest,
        manifest,
        layer: blob(&layer_digest),
        layer_digest,
        dir,
    }
}

/// A registry serving the bundle as `team/mods:v1`, answering the GET of
/// its largest layer with `fault(reply, connection)` (a normal answer when
/// that returns `None`).
fn faulty_registry(
    b: &Bundle,
    fault: impl Fn(http::Reply, Conn) -> Option<Behaviour> + Send + Sync + 'static,
) -> http::Server {
    let (mtype, mdigest, manifest) = (
        b.manifest_type.clone(),
        b.manifest_digest.clone(),
        b.manifest.clone(),
    );
    let (layer_digest, dir) = (b.layer_digest.clone(), b.dir.clone());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    http::serve_faults(listener, move |req, conn| {
        let path = req.target.split('?').next().unwrap_or("");
        if path == "/v2/" {
            return Behaviour::Answer(reply(200, &[], "{}"));
        }
        // Part manifests, by digest, straight from the layout.
        if let Some(d) = path.strip_prefix("/v2/team/mods/manifests/sha256:")
            && d != &mdigest[7..]
        {
            let Ok(bytes) = std::fs::read(dir.join("blobs/sha256").join(d)) else {
                return Behaviour::Answer(reply(404, &[], ""));
            };
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let media_type = v["mediaType"].as_str().unwrap_or_default().to_string();
            let digest = format!("sha256:{d}");
            return Behaviour::Answer(reply(
                200,
                &[
                    ("Content-Type", &media_type),
                    ("Docker-Content-Digest", &digest),
                ],
                &bytes,
            ));
        }
        if path == "/v2/team/mods/manifests/v1"
            || path == format!("/v2/team/mods/manifests/{mdigest}")
        {
            return Behaviour::Answer(reply(
                200,
                &[
                    ("Content-Type", &mtype),
                    ("Docker-Content-Digest", &mdigest),
                ],
                &manifest,
            ));
        }
        if let Some(d) = path.strip_prefix("/v2/team/mods/blobs/") {
            let Some(hex) = d.strip_prefix("sha256:") else {
                return Behaviour::Answer(reply(404, &[], ""));
            };
            let Ok(bytes) = std::fs::read(dir.join("blobs/sha256").join(hex)) else {
                return Behaviour::Answer(reply(404, &[], ""));
            };
            let r = reply(200, &[("Content-Type", "application/octet-stream")], bytes);
            if d == layer_digest && req.method == "GET" {
                let r2 = reply(
                    200,
                    &[("Content-Type", "application/octet-stream")],
                    &r.body,
                );
                if let Some(b) = fault(r2, conn) {
                    return b;
                }
            }
            return Behaviour::Answer(r);
        }
        Behaviour::Answer(reply(404, &[], r#"{"errors":[{"code":"NAME_UNKNOWN"}]}"#))
    })
}

/// Short deadlines, so that each fault ends within seconds.
const FAST: &[(&str, &str)] = &[
    ("OCIGO_CONNECT_TIMEOUT", "2"),
    ("OCIGO_IDLE_TIMEOUT", "1"),
    ("OCIGO_SPEED_LIMIT", "200"),
    ("OCIGO_SPEED_TIME", "2"),
];

/// Pulls from `reg` into a fresh store and GOMODCACHE; checks exit 4 within
/// `bound`, a message naming the layer and `received`, and no trace of the
/// layer left anywhere. Returns stderr.
fn pull_fails(b: &Bundle, reg: &http::Server, bound: Duration, received: &str) -> String {
    pull_fails_with(b, reg, bound, received, FAST)
}

fn pull_fails_with(
    b: &Bundle,
    reg: &http::Server,
    bound: Duration,
    received: &str,
    env: &[(&str, &str)],
) -> String {
    let sc = Scratch::new();
    let store = sc.join("store");
    let modcache = sc.join("modcache");
    let src = format!("{}/team/mods:v1", reg.addr);
    let start = Instant::now();
    let out = ocigo(&store, &["pull", &src, "--gomodcache", &s(&modcache)], env);
    let took = start.elapsed();
    let err = stderr(&out);
    assert_exit(&out, 4, "pull from a misbehaving registry");
    assert!(
        took < bound,
        "the pull took {took:?} (bound {bound:?}): {err}"
    );
    assert!(
        err.contains(&b.layer_digest) && err.contains(received),
        "want the layer {} and {received:?} in: {err}",
        b.layer_digest
    );
    // Nothing installed, nothing of the layer (or a temp file) in the store.
    let installed: Vec<_> = walk(&modcache);
    assert!(
        installed.iter().all(|p| !p.is_file()),
        "GOMODCACHE holds files after a failed pull: {installed:?}"
    );
    for p in walk(&store) {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        // The store's own scratch directory (made when the store is
        // opened) stays, empty.
        if p == store.join("tmp") {
            assert!(
                std::fs::read_dir(&p).unwrap().next().is_none(),
                "the store's tmp/ holds files after a failed pull"
            );
            continue;
        }
        assert!(
            !name.contains(&b.layer_digest[7..]) && !name.contains("tmp"),
            "the store holds {} after a failed pull",
            p.display()
        );
    }
    err
}

fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn a_blob_get_that_is_never_answered_times_out() {
    let b = bundle();
    let reg = faulty_registry(&b, |_, _| Some(Behaviour::Silent));
    let size = b.layer.len();
    let err = pull_fails(
        &b,
        &reg,
        Duration::from_secs(20),
        &format!("0 of {size} bytes received"),
    );
    assert!(err.contains("no data for 1 s"), "{err}");
    assert!(
        err.lines().any(|l| l.starts_with("hint: ")
            && l.contains("raise OCIGO_CONNECT_TIMEOUT or OCIGO_IDLE_TIMEOUT")),
        "{err}"
    );
}

#[test]
fn a_body_that_stalls_midway_times_out() {
    let b = bundle();
    let half = b.layer.len() / 2;
    let reg = faulty_registry(&b, move |r, _| Some(Behaviour::StallAfter(r, half)));
    let err = pull_fails(
        &b,
        &reg,
        Duration::from_secs(20),
        &format!("{half} of {} bytes received", b.layer.len()),
    );
    assert!(err.contains("no data for 1 s"), "{err}");
}

#[test]
fn a_body_trickling_a_byte_a_second_is_abandoned() {
    let b = bundle();
    assert!(b.layer.len() > 100, "the layer is too small to trickle");
    let reg = faulty_registry(&b, |r, _| {
        Some(Behaviour::Trickle(r, Duration::from_millis(900)))
    });
    let err = pull_fails(&b, &reg, Duration::from_secs(20), " bytes received");
    assert!(err.contains("slower than 200 B/s for 2 s"), "{err}");
}

#[test]
fn a_body_cut_short_is_a_network_failure() {
    let b = bundle();
    let part = b.layer.len() / 3;
    let reg = faulty_registry(&b, move |r, _| Some(Behaviour::CutAfter(r, part)));
    pull_fails(
        &b,
        &reg,
        Duration::from_secs(20),
        &format!("{part} of {} bytes received", b.layer.len()),
    );
}

#[test]
fn a_reused_keep_alive_connection_that_goes_silent_times_out() {
    let b = bundle();
    let reused = Arc::new(AtomicBool::new(false));
    let seen = reused.clone();
    // Only on a connection that already carried a request: the case ureq 2
    // left without any read timeout.
    let reg = faulty_registry(&b, move |r, conn| {
        if conn.earlier_requests > 0 {
            seen.store(true, Ordering::SeqCst);
            Some(Behaviour::Silent)
        } else {
            Some(Behaviour::Answer(r))
        }
    });
    // One blob at a time, so the layer's GET reuses the connection the
    // manifest came on (in parallel it may get a fresh one).
    let env: Vec<(&str, &str)> = FAST
        .iter()
        .copied()
        .chain([("OCIGO_CONCURRENCY", "1")])
        .collect();
    pull_fails_with(
        &b,
        &reg,
        Duration::from_secs(20),
        &format!("0 of {} bytes received", b.layer.len()),
        &env,
    );
    assert!(
        reused.load(Ordering::SeqCst),
        "the layer GET never came on a reused connection: the test proves nothing"
    );
}

#[test]
fn a_registry_error_echoing_credentials_and_escapes_is_printed_scrubbed() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let body = serde_json::json!({"errors": [{
        "code": "DENIED",
        "message": "denied: request had Authorization: Basic dXNlcjpzM2NyZXQtcGFzcw== \u{1b}[31mred\u{1b}]0;owned\u{7}",
        "detail": "Bearer eyJhbGciOiJFUzI1NiJ9.c2VjcmV0LXRva2Vu.c2ln and token=tok-s3cret-value\r\nforged: line"
    }]})
    .to_string();
    let reg = http::serve_faults(listener, move |req, _| {
        if req.target == "/v2/" {
            return Behaviour::Answer(reply(200, &[], "{}"));
        }
        // HEAD has no body to echo into: make the client ask with GET.
        if req.method == "HEAD" {
            return Behaviour::Answer(reply(405, &[], ""));
        }
        Behaviour::Answer(reply(403, &[("Content-Type", "application/json")], &body))
    });
    let sc = Scratch::new();
    let src = format!("{}/team/mods:v1", reg.addr);
    let out = ocigo(&sc.join("store"), &["inspect", &src], &[]);
    assert_exit(&out, 4, "inspect against a registry that echoes secrets");
    let all = format!("{}{}", stdout(&out), stderr(&out));
    for secret in [
        "dXNlcjpzM2NyZXQtcGFzcw",
        "c2VjcmV0LXRva2Vu",
        "tok-s3cret-value",
        "\u{1b}",
        "\u{7}",
        "\r",
    ] {
        assert!(
            !all.contains(secret),
            "{secret:?} reached the output: {all}"
        );
    }
    assert!(all.contains("[redacted]"), "{all}");
    assert!(all.contains("\\e[31mred"), "{all}");
    assert!(!all.contains("\nforged"), "{all}");
}
