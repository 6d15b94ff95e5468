//! Sanity checks of the test harness itself: the fixture modules, the
//! `file://` proxy built from them, the committed fixture go.sum, and the
//! claim that `go_offline` has no network.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::fixtures::{
    build_file_proxy, copy_project, escape_path, fixture_env, fixture_modules, semver_cmp,
};
use common::go::{assert_failure, assert_success, env_refs, go, go_offline};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn read_tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let name = format!("{rel}/{}", e.file_name().to_string_lossy());
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), &name, out);
            } else {
                out.push((name, std::fs::read(e.path()).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, "", &mut out);
    out.sort();
    out
}

#[test]
fn escaping_and_semver_order() {
    assert_eq!(
        escape_path("example.com/Upper/Case"),
        "example.com/!upper/!case"
    );
    assert_eq!(escape_path("v1.0.0-RC1"), "v1.0.0-!r!c1");
    let mut v = vec![
        "v1.10.0",
        "v1.2.0",
        "v1.2.0-rc.1",
        "v1.2.0-beta",
        "v0.0.0-20230102030405-abcdef123456",
        "v2.0.0+incompatible",
    ];
    v.sort_by(|a, b| semver_cmp(a, b));
    assert_eq!(
        v,
        [
            "v0.0.0-20230102030405-abcdef123456",
            "v1.2.0-beta",
            "v1.2.0-rc.1",
            "v1.2.0",
            "v1.10.0",
            "v2.0.0+incompatible",
        ]
    );
}

#[test]
fn fixture_modules_cover_the_cases() {
    let mods = fixture_modules();
    let has = |p: &str, v: &str| mods.iter().any(|m| m.path == p && m.version == v);
    assert!(has("example.com/Upper/Case", "v1.0.0"));
    assert!(has("example.com/major/v2", "v2.1.0"));
    assert!(has("example.com/legacy", "v2.0.0+incompatible"));
    assert!(has(
        "example.com/pseudo",
        "v0.0.0-20230102030405-abcdef123456"
    ));
    assert!(has("example.com/unpruned", "v1.0.0"));
    assert!(has("example.com/modonly", "v1.0.0"));
    assert!(has("example.com/testonly", "v1.0.0"));
    assert!(has("example.com/winonly", "v1.0.0"));
    assert!(has("example.com/shared", "v1.0.0") && has("example.com/shared", "v1.1.0"));
    let legacy = mods
        .iter()
        .find(|m| m.path == "example.com/legacy")
        .unwrap();
    assert!(!legacy.has_go_mod());
    assert_eq!(legacy.go_mod(), b"module example.com/legacy\n");
}

#[test]
fn file_proxy_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    build_file_proxy(&tmp.path().join("a"));
    build_file_proxy(&tmp.path().join("b"));
    let a = read_tree(&tmp.path().join("a"));
    assert_eq!(a, read_tree(&tmp.path().join("b")));
    let names: Vec<&str> = a.iter().map(|(n, _)| n.as_str()).collect();
    for want in [
        "/example.com/!upper/!case/@v/list",
        "/example.com/!upper/!case/@v/v1.0.0.info",
        "/example.com/!upper/!case/@v/v1.0.0.mod",
        "/example.com/!upper/!case/@v/v1.0.0.zip",
        "/example.com/legacy/@v/v2.0.0+incompatible.mod",
        "/example.com/major/v2/@v/v2.1.0.zip",
    ] {
        assert!(names.contains(&want), "missing {want} in {names:?}");
    }
    let list = a
        .iter()
        .find(|(n, _)| n == "/example.com/shared/@v/list")
        .unwrap();
    assert_eq!(list.1, b"v1.0.0\nv1.1.0\n");
}

/// The whole fixture graph resolves from the file proxy into an empty
/// cache, builds, tests and verifies against the committed go.sum; then the
/// same cache serves an offline build.
#[test]
fn fixture_project_builds_from_file_proxy() {
    let tmp = tempfile::tempdir().unwrap();
    let proxy = tmp.path().join("proxy");
    build_file_proxy(&proxy);
    let project = copy_project(tmp.path());
    let modcache = tmp.path().join("modcache");
    let mut env = fixture_env(&proxy);
    env.push(("GOMODCACHE".into(), modcache.display().to_string()));
    let env = env_refs(&env);

    let go_sum = std::fs::read(project.join("go.sum")).unwrap();
    let go_mod = std::fs::read(project.join("go.mod")).unwrap();

    assert_success(&go(&project, &["mod", "download"], &env), "go mod download");
    assert_success(&go(&project, &["build", "./..."], &env), "go build ./...");
    assert_success(&go(&project, &["test", "./..."], &env), "go test ./...");
    assert_success(&go(&project, &["mod", "verify"], &env), "go mod verify");

    let mut win = env.clone();
    win.push(("GOOS", "windows"));
    let out = go(&project, &["list", "-deps", "./..."], &win);
    assert_success(&out, "GOOS=windows go list -deps ./...");
    assert!(
        stdout(&out).lines().any(|l| l == "example.com/winonly"),
        "{}",
        stdout(&out)
    );
    let out = go(&project, &["list", "-deps", "./..."], &env);
    assert_success(&out, "go list -deps ./...");
    assert!(
        !stdout(&out).contains("example.com/winonly"),
        "{}",
        stdout(&out)
    );

    assert_eq!(
        std::fs::read(project.join("go.sum")).unwrap(),
        go_sum,
        "go.sum changed"
    );
    assert_eq!(
        std::fs::read(project.join("go.mod")).unwrap(),
        go_mod,
        "go.mod changed"
    );

    let dl = modcache.join("cache/download");
    assert!(dl.join("example.com/!upper/!case/@v").is_dir());
    assert!(
        dl.join("example.com/!upper/!case/@v/v1.0.0.ziphash")
            .is_file()
    );
    assert!(
        modcache
            .join("example.com/!upper/!case@v1.0.0/Inner/Inner.go")
            .is_file()
    );
    // Only the go.mod of these is needed; `go mod download` must not fetch
    // their zips (if it ever does, the fixture no longer covers the case).
    for (m, v) in [
        ("example.com/modonly", "v1.0.0"),
        ("example.com/shared", "v1.0.0"),
    ] {
        let at_v = dl.join(escape_path(m)).join("@v");
        assert!(
            at_v.join(format!("{v}.mod")).is_file(),
            "{m}@{v}.mod not fetched"
        );
        assert!(
            !at_v.join(format!("{v}.zip")).exists(),
            "{m}@{v}.zip fetched"
        );
    }

    // The cache now suffices without any proxy or network.
    let mut off: Vec<(&str, &str)> = env.clone();
    off.push(("GOPROXY", "off"));
    let out = go_offline(&project, &["test", "./..."], &off);
    assert_success(&out, "offline go test ./...");
    assert_success(
        &go_offline(&project, &["mod", "verify"], &off),
        "offline go mod verify",
    );
    // The full module graph, including the go.mod-only modules. (Not
    // `go list -m all`: that also wants `.info` files, and `go mod download`
    // fetches none for go.mod-only modules, so it fails offline here.)
    let out = go_offline(&project, &["mod", "graph"], &off);
    assert_success(&out, "offline go mod graph");
    assert!(
        stdout(&out).contains("example.com/unpruned@v1.0.0 example.com/modonly@v1.0.0"),
        "{}",
        stdout(&out)
    );
    let out = go_offline(&project, &["run", "."], &off);
    assert_success(&out, "offline go run .");
    assert_eq!(
        stdout(&out).trim(),
        "Upper/Case+Inner+v1.1.0 legacy 2 abcdef123456 unpruned"
    );
}

/// `go_offline` really has no network: the same request that reaches a
/// listener on 127.0.0.1 from `go` never reaches it from `go_offline`.
#[test]
fn go_offline_has_no_network() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            h.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });

    let tmp = tempfile::tempdir().unwrap();
    let proxy = format!("http://127.0.0.1:{port}");
    let modcache = tmp.path().join("modcache").display().to_string();
    let env = [
        ("GOPROXY", proxy.as_str()),
        ("GOSUMDB", "off"),
        ("GOFLAGS", "-modcacherw"),
        ("GOMODCACHE", modcache.as_str()),
    ];
    let args = ["mod", "download", "example.com/none@v1.0.0"];

    let out = go(tmp.path(), &args, &env);
    assert_failure(&out, "online go mod download from a 404 proxy");
    let online_hits = hits.load(Ordering::SeqCst);
    assert!(online_hits >= 1, "the listener saw no request from go");

    let out = go_offline(tmp.path(), &args, &env);
    assert_failure(&out, "offline go mod download");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}")),
        "go did not run or did not try the proxy: {stderr}"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        online_hits,
        "offline go reached the listener"
    );
}

/// Not a test: writes the fixture proxy to `$OCIGO_FIXTURE_PROXY_OUT`, for
/// regenerating `testdata/project/go.sum` by hand (see testdata/README.md).
#[test]
#[ignore]
fn write_fixture_proxy() {
    let dest = std::env::var("OCIGO_FIXTURE_PROXY_OUT").expect("set OCIGO_FIXTURE_PROXY_OUT");
    build_file_proxy(Path::new(&dest));
}
