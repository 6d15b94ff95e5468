//! The checksum database travels with the bundle (issue 11), judged by the
//! real go command under `unshare -n` with GOSUMDB at its default: a small
//! real project (rsc.io/quote and its dependencies) packed through the
//! module proxy with sum.golang.org's records and tiles (through the
//! proxy's `/sumdb/`), pulled offline, then built with an emptied go.sum
//! (the go command asks the checksum database for every hash it adds, and
//! finds the answers in the cache ocigo wrote), `go get` of a version
//! go.sum lacks, a tampered zip refused by the database check, and a
//! bundle pulled with another key for the database refused by ocigo with
//! nothing written.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use common::go::{assert_failure, assert_success, go, go_offline};
use common::ocigo::{
    Scratch, assert_exit, assert_mentions, assert_unchanged, json_ok, ocigo, ocigo_offline,
    snapshot, stderr,
};

fn proxy() -> String {
    std::env::var("GOPROXY")
        .ok()
        .and_then(|p| {
            p.split([',', '|'])
                .find(|e| e.starts_with("http"))
                .map(str::to_string)
        })
        .unwrap_or_else(|| "https://proxy.golang.org".into())
}

const GO_MOD: &str = "module example.com/app\n\ngo 1.21\n\nrequire rsc.io/quote v1.5.2\n";
const MAIN_GO: &str =
    "package main\n\nimport \"rsc.io/quote\"\n\nfunc main() { println(quote.Hello()) }\n";

/// A project whose go.sum the go command wrote (online, through the proxy).
fn project(s: &Scratch) -> std::path::PathBuf {
    project_with(s, &[])
}

fn project_with(s: &Scratch, extra: &[(&str, &str)]) -> std::path::PathBuf {
    let dir = s.dir("project");
    fs::write(dir.join("go.mod"), GO_MOD).unwrap();
    fs::write(dir.join("main.go"), MAIN_GO).unwrap();
    for (name, text) in extra {
        fs::write(dir.join(name), text).unwrap();
    }
    let mc = s.join("online-modcache");
    let out = go(
        &dir,
        &["mod", "tidy"],
        &[
            ("GOPROXY", &proxy()),
            ("GOMODCACHE", mc.to_str().unwrap()),
            ("GOFLAGS", "-modcacherw"),
        ],
    );
    assert_success(&out, "go mod tidy online");
    dir
}

fn pack(s: &Scratch, dir: &Path) -> (String, serde_json::Value) {
    let dest = format!("oci:{}:v1", s.join("layout").display());
    let out = ocigo(
        &s.join("store-pack"),
        &["--json", "pack", dir.to_str().unwrap(), "-o", &dest],
        &[("GOPROXY", &proxy()), ("GOFLAGS", "-modcacherw")],
    );
    assert_exit(&out, 0, "pack with the checksum database");
    (dest, json_ok(&out, "pack"))
}

/// Rewrites the cached zip of `path@version` with one file changed and its
/// `.ziphash` recomputed, as a tampered, unsigned bundle could.
fn tamper_zip(gm: &Path, path: &str, version: &str) {
    let dir = gm.join("cache/download").join(path).join("@v");
    let zip_path = dir.join(format!("{version}.zip"));
    let mut zin = zip::ZipArchive::new(fs::File::open(&zip_path).unwrap()).unwrap();
    let mut out = Vec::new();
    let mut entries = Vec::new();
    {
        let mut zout = zip::ZipWriter::new(std::io::Cursor::new(&mut out));
        let mut changed = false;
        for i in 0..zin.len() {
            let mut f = zin.by_index(i).unwrap();
            let name = f.name().unwrap().to_string();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            if !changed && name.ends_with(".go") {
                data.extend_from_slice(b"\n// changed\n");
                changed = true;
            }
            zout.start_file(&name, zip::write::SimpleFileOptions::default())
                .unwrap();
            zout.write_all(&data).unwrap();
            use sha2::Digest as _;
            entries.push((name, sha2::Sha256::digest(&data).into()));
        }
        assert!(changed);
        zout.finish().unwrap();
    }
    let h1 = ocigo::gomod::hash::hash_zip_entries(&mut entries).unwrap();
    fs::set_permissions(&zip_path, fs::Permissions::from_mode(0o644)).ok();
    fs::write(&zip_path, &out).unwrap();
    fs::write(dir.join(format!("{version}.ziphash")), &h1).unwrap();
}

use std::os::unix::fs::PermissionsExt as _;

#[test]
fn offline_go_commands_verify_against_the_carried_checksum_database() {
    let s = Scratch::new();
    let dir = project(&s);
    let original_sum = fs::read_to_string(dir.join("go.sum")).unwrap();
    let (src, packed) = pack(&s, &dir);
    let sumdb = &packed["sumdb"];
    assert_eq!(sumdb["database"], "sum.golang.org", "{packed}");
    assert_eq!(
        sumdb["records"], packed["modules"],
        "one record per module version"
    );
    assert!(sumdb["tiles"].as_u64().unwrap() > 0);

    // Pulled offline into an empty cache and GOPATH.
    let (gm, gp) = (s.join("gm"), s.join("gp"));
    let out = ocigo_offline(
        &s.join("store-pull"),
        &[
            "--json",
            "pull",
            &src,
            "--gomodcache",
            gm.to_str().unwrap(),
            "--gopath",
            gp.to_str().unwrap(),
        ],
        &[],
    );
    assert_exit(&out, 0, "pull");
    let pulled = json_ok(&out, "pull");
    assert_eq!(pulled["env"]["GOPATH"], gp.to_str().unwrap());
    assert!(
        pulled["env"].get("GOSUMDB").is_none(),
        "GOSUMDB stays at its default"
    );
    assert_eq!(pulled["sumdb"][0]["records_written"], packed["modules"]);
    assert!(gp.join("pkg/sumdb/sum.golang.org/latest").is_file());

    let proxy_url = format!("file://{}/cache/download", gm.display());
    let env = |flags: &'static str| -> Vec<(&'static str, String)> {
        vec![
            ("GOMODCACHE", gm.display().to_string()),
            ("GOPATH", gp.display().to_string()),
            ("GOPROXY", proxy_url.clone()),
            ("GOFLAGS", flags.to_string()),
        ]
    };
    let refs = |e: &Vec<(&'static str, String)>| -> Vec<(&str, String)> { e.clone() };
    let run = |args: &[&str], e: &Vec<(&'static str, String)>| {
        let e = refs(e);
        let e: Vec<(&str, &str)> = e.iter().map(|(k, v)| (*k, v.as_str())).collect();
        go_offline(&dir, args, &e)
    };

    // go get of a version go.sum lacks: the database's hashes come from
    // the cache ocigo wrote, and land in go.sum.
    fs::write(dir.join("go.sum"), "").unwrap();
    let out = run(&["get", "rsc.io/quote@v1.5.2"], &env(""));
    assert_success(&out, "offline go get with an empty go.sum");
    let sum = fs::read_to_string(dir.join("go.sum")).unwrap();
    let quote_line = original_sum
        .lines()
        .find(|l| l.starts_with("rsc.io/quote v1.5.2 "))
        .unwrap();
    assert!(sum.contains(quote_line), "go.sum after go get:\n{sum}");

    // A build with an emptied go.sum: every hash verified offline.
    fs::write(dir.join("go.sum"), "").unwrap();
    let out = run(&["build", "./..."], &env("-mod=mod"));
    assert_success(&out, "offline go build -mod=mod with an empty go.sum");
    let sum = fs::read_to_string(dir.join("go.sum")).unwrap();
    for l in sum.lines() {
        assert!(
            original_sum.contains(l),
            "go.sum line {l:?} is not the database's"
        );
    }

    // A zip swapped, its .ziphash recomputed: the record ocigo carried says
    // otherwise, and the go command refuses it.
    tamper_zip(&gm, "rsc.io/sampler", "v1.3.0");
    fs::remove_dir_all(gm.join("rsc.io/sampler@v1.3.0")).ok();
    fs::write(dir.join("go.sum"), "").unwrap();
    let out = run(&["build", "./..."], &env("-mod=mod"));
    assert_failure(&out, "a tampered zip");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("SECURITY ERROR") || err.contains("checksum mismatch"),
        "{err}"
    );
    assert!(err.contains("rsc.io/sampler@v1.3.0"), "{err}");

    // Another key for sum.golang.org: ocigo refuses, nothing written.
    let (gm2, gp2) = (s.dir("gm2"), s.dir("gp2"));
    let (before_gm, before_gp) = (snapshot(&gm2), snapshot(&gp2));
    let out = ocigo_offline(
        &s.join("store-pull2"),
        &[
            "pull",
            &src,
            "--gomodcache",
            gm2.to_str().unwrap(),
            "--gopath",
            gp2.to_str().unwrap(),
        ],
        &[("GOSUMDB", &other_key("sum.golang.org"))],
    );
    assert_exit(&out, 3, "pull with another key for the database");
    assert_mentions(
        &stderr(&out),
        &["sum.golang.org", "not signed by"],
        "foreign key",
    );
    assert_unchanged(&before_gm, &gm2, "GOMODCACHE after a refused pull");
    assert_unchanged(&before_gp, &gp2, "GOPATH after a refused pull");
}

/// A verifier key for `name` that is not the database's.
fn other_key(name: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let sk = ed25519_dalek::SigningKey::from_bytes(&[42u8; 32]);
    let mut key = vec![1u8];
    key.extend_from_slice(sk.verifying_key().as_bytes());
    let mut h = sha2::Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update(&key);
    let sum = h.finalize();
    format!(
        "{name}+{:02x}{:02x}{:02x}{:02x}+{}",
        sum[0],
        sum[1],
        sum[2],
        sum[3],
        base64::engine::general_purpose::STANDARD.encode(&key)
    )
}

// ------------------------------------------------- a local checksum database

/// tests/sumdbfixture built once per test binary into target/tmp.
fn fixture_bin() -> &'static Path {
    static BIN: std::sync::OnceLock<Result<std::path::PathBuf, String>> =
        std::sync::OnceLock::new();
    common::go::test_program(&BIN, "sumdbfixture", &[])
}

/// A running fixture database; killed on drop.
struct FixtureDb {
    child: std::process::Child,
    vkey: String,
    url: String,
}

impl FixtureDb {
    fn start(proxy: &Path, fill: u32) -> FixtureDb {
        Self::start_with(proxy, fill, &[])
    }

    /// `extra`: more flags (`-cache-lookups`).
    fn start_with(proxy: &Path, fill: u32, extra: &[&str]) -> FixtureDb {
        use std::io::BufRead as _;
        let mut child = std::process::Command::new(fixture_bin())
            .args([
                "-proxy",
                proxy.to_str().unwrap(),
                "-fill",
                &fill.to_string(),
            ])
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let vkey = lines.next().unwrap().unwrap();
        let url = lines.next().unwrap().unwrap();
        FixtureDb {
            child,
            vkey: vkey.strip_prefix("VKEY ").unwrap().to_string(),
            url: url.strip_prefix("URL ").unwrap().to_string(),
        }
    }

    /// Appends `n` filler records: the tree grows.
    fn fill(&self, n: u32) {
        let host = self.url.strip_prefix("http://").unwrap();
        let (status, body) = common::http::get(host, &format!("/fill?n={n}"));
        assert!(status.contains(" 200 "), "{status}\n{body}");
    }
}

impl Drop for FixtureDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn small_project(
    s: &Scratch,
    name: &str,
    m: &common::fixtures::FixtureModule,
) -> std::path::PathBuf {
    let dir = s.dir(name);
    fs::write(
        dir.join("go.mod"),
        format!(
            "module example.com/{name}\n\ngo 1.21\n\nrequire {} {}\n",
            m.path, m.version
        ),
    )
    .unwrap();
    fs::write(
        dir.join("main.go"),
        format!(
            "package main\n\nimport m \"{}\"\n\nfunc main() {{ println(m.Hello()) }}\n",
            m.path
        ),
    )
    .unwrap();
    fs::write(dir.join("go.sum"), common::ocigo::go_sum_lines(m)).unwrap();
    dir
}

#[test]
fn bundles_packed_at_two_tree_sizes_verify_in_one_cache_in_either_order() {
    let s = Scratch::new();
    let (src, proxy) = (s.dir("src"), s.dir("proxy"));
    let mut mods = Vec::new();
    for p in ["sa", "sb"] {
        let path = format!("example.com/{p}");
        let m = common::ocigo::write_module_source(
            &src,
            &path,
            "v1.0.0",
            &[
                ("go.mod", format!("module {path}\n\ngo 1.21\n").as_bytes()),
                (
                    "m.go",
                    format!("package {p}\n\nfunc Hello() string {{ return \"{p}\" }}\n").as_bytes(),
                ),
            ],
        );
        common::ocigo::add_to_proxy(&proxy, &m);
        mods.push(m);
    }
    // 300 records before the first pack: the first bundle's tree has a
    // full tile and a partial one. Lookups are answered from a cache, as
    // proxy.golang.org answers them: signed in the tree of the first one.
    let db = FixtureDb::start_with(&proxy, 300, &["-cache-lookups"]);
    let gosumdb = format!("{} {}", db.vkey, db.url);
    let proxy_url = format!("file://{}", proxy.display());
    let pack_env: Vec<(&str, &str)> = vec![
        ("GOPROXY", &proxy_url),
        ("GOSUMDB", &gosumdb),
        ("GOFLAGS", "-modcacherw"),
    ];
    let p1 = small_project(&s, "p1", &mods[0]);
    let p2 = small_project(&s, "p2", &mods[1]);
    let pack = |dir: &Path, layout: &str, extra: &[&str]| -> serde_json::Value {
        let dest = format!("oci:{}:v1", s.join(layout).display());
        let mut args = vec!["--json", "pack", dir.to_str().unwrap(), "-o", &dest];
        args.extend_from_slice(extra);
        let out = ocigo(&s.join("store-pack"), &args, &pack_env);
        assert_exit(&out, 0, "pack against the fixture database");
        json_ok(&out, "pack")
    };
    let first = pack(&p1, "l1", &[]);
    assert_eq!(first["sumdb"]["database"], "sumdb.test", "{first}");
    assert_eq!(first["sumdb"]["tree_size"], 301);
    // A record proven in that tree of 301 records only (a filler's, in
    // the first tile, which no bundle here carries), as a writer that
    // leaves the trusted head alone adds it.
    let (status, filler_record) = common::http::get(
        db.url.strip_prefix("http://").unwrap(),
        "/lookup/example.net/filler@v0.0.5",
    );
    assert!(status.contains(" 200 "), "{status}\n{filler_record}");
    // Weeks later: the log has grown by 700 records.
    db.fill(700);
    let since = format!("oci:{}:v1", s.join("l1").display());
    let second = pack(&p2, "l2", &["--sumdb-since", &since]);
    assert_eq!(second["sumdb"]["tree_size"], 1002);
    let unjoined = pack(&p2, "l3", &[]);
    assert_eq!(unjoined["sumdb"]["tree_size"], 1002);
    // p1 again: its lookup comes from the cache, signed in the tree of
    // 301 records; pack carries the database's head instead (1002) and
    // the tiles that prove the lookup's tree a prefix of it.
    let repacked = pack(&p1, "l5", &[]);
    assert_eq!(repacked["sumdb"]["lookups_tree_size"], 301, "{repacked}");
    assert_eq!(repacked["sumdb"]["tree_size"], 1002, "{repacked}");
    assert!(
        second["sumdb"]["tiles"].as_u64() > unjoined["sumdb"]["tiles"].as_u64(),
        "--sumdb-since carries more tiles: {second} {unjoined}"
    );
    // An earlier bundle whose record id lies beyond its own tree (though
    // inside the new one) is refused by pack.
    let bad_since = s.join("l1-bad");
    common::fixtures::copy_tree(&s.join("l1"), &bad_since);
    rewrite_sumdb(&bad_since, |_, c, _| {
        c["databases"][0]["records"][0]["id"] = 500.into();
    });
    let dest = format!("oci:{}:v1", s.join("l4").display());
    let since_bad = format!("oci:{}:v1", bad_since.display());
    let out = ocigo(
        &s.join("store-pack"),
        &[
            "pack",
            p2.to_str().unwrap(),
            "-o",
            &dest,
            "--sumdb-since",
            &since_bad,
        ],
        &pack_env,
    );
    assert_exit(&out, 3, "--sumdb-since with a record beyond its tree");
    assert_mentions(
        &stderr(&out),
        &["earlier bundle's record lies outside its own tree"],
        "--sumdb-since with a record beyond its tree",
    );
    // What a forked log would serve: a signed tree of 301 records with
    // another hash.
    let (status, forged) = common::http::get(
        db.url.strip_prefix("http://").unwrap(),
        "/forged-tree?n=301",
    );
    assert!(status.contains(" 200 "), "{status}\n{forged}");
    drop(db); // everything from here on is offline

    let key_only = db_key_only(&gosumdb);
    let pull_env: Vec<(&str, &str)> = vec![("GOSUMDB", &key_only)];
    let pull = |layout: &str, gm: &Path, gp: &Path| {
        ocigo_offline(
            &s.join(&format!(
                "store-{}",
                gm.file_name().unwrap().to_str().unwrap()
            )),
            &[
                "pull",
                &format!("oci:{}:v1", s.join(layout).display()),
                "--gomodcache",
                gm.to_str().unwrap(),
                "--gopath",
                gp.to_str().unwrap(),
            ],
            &pull_env,
        )
    };
    for (i, order) in [["l1", "l2"], ["l2", "l1"]].iter().enumerate() {
        let (gm, gp) = (s.join(&format!("gm{i}")), s.join(&format!("gp{i}")));
        for l in order {
            let out = pull(l, &gm, &gp);
            assert_exit(&out, 0, &format!("pull {l} (order {order:?})"));
        }
        for (p, m) in [(&p1, &mods[0]), (&p2, &mods[1])] {
            fs::write(p.join("go.sum"), "").unwrap();
            let gms = gm.display().to_string();
            let gps = gp.display().to_string();
            let px = format!("file://{gms}/cache/download");
            let key = db_key_only(&gosumdb);
            let out = go_offline(
                p,
                &["build", "./..."],
                &[
                    ("GOMODCACHE", &gms),
                    ("GOPATH", &gps),
                    ("GOPROXY", &px),
                    ("GOSUMDB", &key),
                    ("GOFLAGS", "-mod=mod"),
                ],
            );
            assert_success(
                &out,
                &format!("offline build of {} (order {order:?})", m.path),
            );
            assert_eq!(
                fs::read_to_string(p.join("go.sum")).unwrap(),
                common::ocigo::go_sum_lines(m),
                "go.sum written from the carried records"
            );
        }
    }

    // Without --sumdb-since the newer bundle cannot join the older one's
    // cache: its modules are installed, its checksum database data is
    // left out with a warning, and the cache's database data and trusted
    // head stay as they were.
    let (gm, gp) = (s.join("gm-unjoined"), s.join("gp-unjoined"));
    assert_exit(&pull("l1", &gm, &gp), 0, "pull l1");
    let sumdb_dir = gm.join("cache/download/sumdb");
    let (before_db, before_gp) = (snapshot(&sumdb_dir), snapshot(&gp));
    let out = pull("l3", &gm, &gp);
    assert_exit(
        &out,
        0,
        "pull of a bundle that cannot join the cache's tree",
    );
    assert_mentions(
        &common::ocigo::stdout(&out),
        &[
            "warning: checksum database sumdb.test: not installed",
            "301",
            "1002",
            "which neither holds",
        ],
        "unjoinable trees (human output)",
    );
    assert_mentions(
        &stderr(&out),
        &["hint:", "--sumdb-since", "earlier bundle"],
        "unjoinable trees (hint)",
    );
    assert_unchanged(
        &before_db,
        &sumdb_dir,
        "the checksum database cache after an unjoined pull",
    );
    assert_unchanged(&before_gp, &gp, "GOPATH after an unjoined pull");
    let sb_zip = gm.join(format!(
        "cache/download/{}/@v/{}.zip",
        mods[1].path, mods[1].version
    ));
    assert!(sb_zip.is_file(), "{} was not installed", sb_zip.display());
    // The same in --json: the reason in sumdb[].skipped.
    let (gmj, gpj) = (s.join("gm-unjoined-json"), s.join("gp-unjoined-json"));
    assert_exit(&pull("l1", &gmj, &gpj), 0, "pull l1");
    let out = ocigo_offline(
        &s.join("store-gm-unjoined-json"),
        &[
            "--json",
            "pull",
            &format!("oci:{}:v1", s.join("l3").display()),
            "--gomodcache",
            gmj.to_str().unwrap(),
            "--gopath",
            gpj.to_str().unwrap(),
        ],
        &pull_env,
    );
    assert_exit(&out, 0, "pull --json of an unjoinable bundle");
    let j = json_ok(&out, "pull --json");
    let skipped = j["sumdb"][0]["skipped"].as_str().unwrap_or_default();
    assert!(
        skipped.contains("301") && skipped.contains("1002"),
        "sumdb[].skipped: {j}"
    );
    assert_eq!(j["sumdb"][0]["records_written"], 0, "{j}");
    assert!(j["env"].get("GOPATH").is_none(), "{j}");

    // The other way round, a bundle older than the cache's tree: the same,
    // and the hint says a bundle packed later would join.
    let (gmo, gpo) = (s.join("gm-older"), s.join("gp-older"));
    assert_exit(&pull("l3", &gmo, &gpo), 0, "pull l3");
    let before = snapshot(&gpo);
    let out = pull("l1", &gmo, &gpo);
    assert_exit(&out, 0, "pull of a bundle older than the cache's tree");
    assert_mentions(
        &common::ocigo::stdout(&out),
        &[
            "warning: checksum database sumdb.test: not installed",
            "1002",
            "301",
        ],
        "an older bundle (human output)",
    );
    assert_mentions(
        &stderr(&out),
        &["hint:", "packed later"],
        "an older bundle (hint)",
    );
    assert_unchanged(&before, &gpo, "GOPATH after an older bundle's pull");

    // A proven inconsistency stays a refusal (exit 3, nothing written), as
    // the go command refuses it: a cache trusting the forged tree of 301
    // records, against l1's tree of the same size (another hash), and
    // against l2's, whose tiles prove the real tree of 301 records a prefix
    // of it, not the forged one.
    for (layout, needle) in [
        ("l1", "same size and different hashes"),
        ("l2", "is not a prefix of the tree of 1002 records"),
    ] {
        let (gmf, gpf) = (
            s.dir(&format!("gm-fork-{layout}")),
            s.dir(&format!("gp-fork-{layout}")),
        );
        let latest = gpf.join("pkg/sumdb/sumdb.test/latest");
        fs::create_dir_all(latest.parent().unwrap()).unwrap();
        fs::write(&latest, &forged).unwrap();
        let (before_gm, before_gp) = (snapshot(&gmf), snapshot(&gpf));
        let out = pull(layout, &gmf, &gpf);
        let what = format!("pull of {layout} into a cache trusting a forked tree");
        assert_exit(&out, 3, &what);
        assert_mentions(&stderr(&out), &["sumdb.test", needle, "forked log"], &what);
        assert_unchanged(&before_gm, &gmf, &what);
        assert_unchanged(&before_gp, &gpf, &what);
    }

    // A bundle that carries the database's head (pack read it through the
    // proxy) joins that cache: the head moves to 1002, and the bundle
    // packed without --sumdb-since joins it too; both modules build
    // offline with an emptied go.sum.
    let out = pull("l5", &gm, &gp);
    assert_exit(&out, 0, "pull of the bundle carrying the head");
    assert_mentions(
        &common::ocigo::stdout(&out),
        &[
            "checksum database sumdb.test:",
            "trusted tree of 1002 records",
        ],
        "the head carried",
    );
    let out = pull("l3", &gm, &gp);
    assert_exit(&out, 0, "pull l3 again");
    assert!(
        !common::ocigo::stdout(&out).contains("not installed"),
        "{}",
        common::ocigo::stdout(&out)
    );
    for (p, m) in [(&p1, &mods[0]), (&p2, &mods[1])] {
        fs::write(p.join("go.sum"), "").unwrap();
        let (gms, gps) = (gm.display().to_string(), gp.display().to_string());
        let px = format!("file://{gms}/cache/download");
        let out = go_offline(
            p,
            &["build", "./..."],
            &[
                ("GOMODCACHE", &gms),
                ("GOPATH", &gps),
                ("GOPROXY", &px),
                ("GOSUMDB", &key_only),
                ("GOFLAGS", "-mod=mod"),
            ],
        );
        assert_success(&out, &format!("offline build of {} after joining", m.path));
    }

    // Two pulls at once into one fresh cache, of bundles at two heads
    // (301 and 1002, the newer joinable with --sumdb-since). A go command
    // holds `latest` (empty: it has none yet) locked while both start, so
    // both read it at once when it lets go; under its lock the later
    // writer decides again from what the earlier wrote, and the head ends
    // at 1002 whichever goes first (deciding on what it read first, the
    // later one moved it back to 301 about every other round).
    let newer_head = serde_json::from_slice::<serde_json::Value>(&blob(
        &s.join("l2"),
        sumdb_config_digest(&s.join("l2")).as_str(),
    ))
    .unwrap()["databases"][0]["tree"]
        .as_str()
        .unwrap()
        .to_string();
    for round in 0..6 {
        let (gm, gp) = (
            s.join(&format!("gm-race{round}")),
            s.join(&format!("gp-race{round}")),
        );
        let latest = gp.join("pkg/sumdb/sumdb.test/latest");
        fs::create_dir_all(latest.parent().unwrap()).unwrap();
        fs::write(&latest, "").unwrap();
        let holder = common::ocigo::hold_flock(&latest);
        let outs = std::thread::scope(|sc| {
            let a = sc.spawn(|| pull("l1", &gm, &gp));
            let b = sc.spawn(|| pull("l2", &gm, &gp));
            std::thread::sleep(std::time::Duration::from_millis(700));
            drop(holder);
            [a.join().unwrap(), b.join().unwrap()]
        });
        for (out, l) in outs.iter().zip(["l1", "l2"]) {
            assert_exit(out, 0, &format!("concurrent pull of {l} (round {round})"));
            assert!(
                !common::ocigo::stdout(out).contains("not installed"),
                "round {round}, {l}: {}",
                common::ocigo::stdout(out)
            );
        }
        assert_eq!(
            fs::read_to_string(&latest).unwrap(),
            newer_head,
            "round {round}: the trusted head after two concurrent pulls"
        );
    }

    // A pull moving the head (l2: 301 to 1002) lists the cached records,
    // installs its modules, then waits for `latest`; meanwhile a writer
    // that leaves the head alone adds a record proven in the old head
    // only. The mover decides again under its lock: that record cannot
    // be proven in 1002, so the head stays at 301 and l2's data is
    // skipped (moving it would leave a record the head cannot prove).
    let (gml, gpl) = (s.join("gm-late-record"), s.join("gp-late-record"));
    assert_exit(&pull("l1", &gml, &gpl), 0, "pull l1");
    let latest = gpl.join("pkg/sumdb/sumdb.test/latest");
    let head_before = fs::read(&latest).unwrap();
    let sb_zip = gml.join(format!(
        "cache/download/{}/@v/{}.zip",
        mods[1].path, mods[1].version
    ));
    let late = gml.join("cache/download/sumdb/sumdb.test/lookup/example.net/filler@v0.0.5");
    let holder = common::ocigo::hold_flock_shared(&latest);
    let out = std::thread::scope(|sc| {
        let h = sc.spawn(|| pull("l2", &gml, &gpl));
        // Its modules are installed after its checksum data was decided.
        let t0 = std::time::Instant::now();
        while !sb_zip.is_file() && t0.elapsed() < std::time::Duration::from_secs(120) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(sb_zip.is_file(), "l2's modules were never installed");
        fs::create_dir_all(late.parent().unwrap()).unwrap();
        fs::write(&late, &filler_record).unwrap();
        drop(holder);
        h.join().unwrap()
    });
    assert_exit(&out, 0, "a head-moving pull racing a record writer");
    assert_mentions(
        &common::ocigo::stdout(&out),
        &[
            "warning: checksum database sumdb.test: not installed",
            "filler@v0.0.5",
        ],
        "a record added during the pull",
    );
    assert_eq!(
        fs::read(&latest).unwrap(),
        head_before,
        "the trusted head after a record it alone proves was added"
    );

    // A pull that leaves the head alone opens nothing below GOPATH for
    // writing, as the go command: with GOPATH read-only, re-pulling l2
    // (nothing to write) and pulling the older l1 into its cache (its
    // record, proven in the head l2 set, added to GOMODCACHE) succeed.
    let (gmr, gpr) = (s.join("gm-ro"), s.join("gp-ro"));
    assert_exit(&pull("l2", &gmr, &gpr), 0, "pull l2");
    let latest = gpr.join("pkg/sumdb/sumdb.test/latest");
    let head_before = fs::read(&latest).unwrap();
    let before_gp = snapshot(&gpr);
    let ro = [
        "unshare",
        "-m",
        "-n",
        "--",
        "sh",
        "-c",
        "mount --bind \"$0\" \"$0\" && mount -o remount,bind,ro \"$0\" \"$0\" && exec \"$@\"",
        gpr.to_str().unwrap(),
    ];
    for (layout, records) in [("l2", "0 records"), ("l1", "1 records")] {
        let what = format!("pull {layout} with GOPATH read-only");
        let out = common::ocigo::ocigo_command(
            &ro,
            &s.join("store-gm-ro"),
            &[
                "pull",
                &format!("oci:{}:v1", s.join(layout).display()),
                "--gomodcache",
                gmr.to_str().unwrap(),
                "--gopath",
                gpr.to_str().unwrap(),
            ],
            &pull_env,
        )
        .output()
        .unwrap();
        assert_exit(&out, 0, &what);
        assert_mentions(
            &common::ocigo::stdout(&out),
            &[
                "checksum database sumdb.test:",
                records,
                "trusted tree of 1002",
            ],
            &what,
        );
    }
    assert_eq!(fs::read(&latest).unwrap(), head_before);
    assert_unchanged(&before_gp, &gpr, "a read-only GOPATH");

    // A `latest` too large to be a tree note is local state gone wrong,
    // as an unsigned one: exit 5 with the way out, nothing written.
    let (gmb, gpb) = (s.dir("gm-big-latest"), s.dir("gp-big-latest"));
    let latest = gpb.join("pkg/sumdb/sumdb.test/latest");
    fs::create_dir_all(latest.parent().unwrap()).unwrap();
    fs::write(&latest, vec![b'x'; 17 << 10]).unwrap();
    let (before_gm, before_gp) = (snapshot(&gmb), snapshot(&gpb));
    let out = pull("l1", &gmb, &gpb);
    assert_exit(&out, 5, "pull into a GOPATH with an oversized latest");
    assert_mentions(
        &stderr(&out),
        &["does not hold a tree head", "over the", "remove it"],
        "an oversized latest",
    );
    assert_unchanged(&before_gm, &gmb, "GOMODCACHE after an oversized latest");
    assert_unchanged(&before_gp, &gpb, "GOPATH after an oversized latest");
    assert!(
        gmr.join("cache/download/sumdb/sumdb.test/lookup/example.com/sa@v1.0.0")
            .is_file(),
        "l1's record was not added"
    );
}

#[test]
fn pack_refuses_a_lookup_signed_in_a_forked_tree_of_the_heads_size() {
    let s = Scratch::new();
    let (src, proxy) = (s.dir("src"), s.dir("proxy"));
    let path = "example.com/sa";
    let m = common::ocigo::write_module_source(
        &src,
        path,
        "v1.0.0",
        &[
            ("go.mod", format!("module {path}\n\ngo 1.21\n").as_bytes()),
            (
                "m.go",
                b"package sa\n\nfunc Hello() string { return \"sa\" }\n",
            ),
        ],
    );
    common::ocigo::add_to_proxy(&proxy, &m);
    let db = FixtureDb::start_with(&proxy, 3, &["-cache-lookups"]);
    let host = db.url.strip_prefix("http://").unwrap();
    // The lookup (cached by the fixture, signed in the tree of 4 records),
    // then re-signed in a forged tree of 4 records: the head the database
    // serves has that size and the real hash.
    let (status, body) = common::http::get(host, "/lookup/example.com/sa@v1.0.0");
    assert!(status.contains(" 200 "), "{status}\n{body}");
    assert!(body.contains("\n4\n"), "{body}");
    let (status, body) = common::http::get(host, "/fork-lookup?path=/lookup/example.com/sa@v1.0.0");
    assert!(status.contains(" 200 "), "{status}\n{body}");
    let gosumdb = format!("{} {}", db.vkey, db.url);
    let proxy_url = format!("file://{}", proxy.display());
    let p = small_project(&s, "p", &m);
    let layout = s.join("l");
    let out = ocigo(
        &s.join("store"),
        &[
            "pack",
            p.to_str().unwrap(),
            "-o",
            &format!("oci:{}:v1", layout.display()),
        ],
        &[
            ("GOPROXY", &proxy_url),
            ("GOSUMDB", &gosumdb),
            ("GOFLAGS", "-modcacherw"),
        ],
    );
    assert_exit(&out, 3, "pack with a lookup signed in a forked tree");
    assert_mentions(
        &stderr(&out),
        &["two signed trees of 4 records", "forked log"],
        "pack with a lookup signed in a forked tree",
    );
    assert!(!layout.join("index.json").exists(), "nothing was written");
}

/// The digest of the checksum-database config of the bundle in `layout`.
fn sumdb_config_digest(layout: &Path) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let top = index["manifests"][0]["digest"].as_str().unwrap();
    let top: serde_json::Value = serde_json::from_slice(&blob(layout, top)).unwrap();
    let m = top["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["artifactType"] == "application/vnd.ocigo.sumdb.v1")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let m: serde_json::Value = serde_json::from_slice(&blob(layout, &m)).unwrap();
    m["config"]["digest"].as_str().unwrap().to_string()
}

/// GOSUMDB without the URL: the go command must find everything in its
/// cache (the database is not running any more, and there is no network).
fn db_key_only(gosumdb: &str) -> String {
    gosumdb.split_whitespace().next().unwrap().to_string()
}

#[test]
fn the_tidy_closure_lets_go_mod_tidy_verify_and_list_work_offline() {
    let s = Scratch::new();
    // gopkg.in/yaml.v3's own tests import gopkg.in/check.v1: go mod tidy
    // needs it (tests of the packages the main module imports), a build
    // and `go mod download` do not.
    let dir = project_with(
        &s,
        &[(
            "y.go",
            "package main\n\nimport yaml \"gopkg.in/yaml.v3\"\n\nvar _ = yaml.Marshal\n",
        )],
    );
    let original_sum = fs::read_to_string(dir.join("go.sum")).unwrap();
    assert!(
        original_sum.contains("gopkg.in/check.v1 "),
        "{original_sum}"
    );

    // The default closure does not carry it: offline tidy fails.
    let default_dest = format!("oci:{}:v1", s.join("layout-build").display());
    let out = ocigo(
        &s.join("store-pack"),
        &["pack", dir.to_str().unwrap(), "-o", &default_dest],
        &[("GOPROXY", &proxy()), ("GOFLAGS", "-modcacherw")],
    );
    assert_exit(&out, 0, "pack (default closure)");
    let (gm0, gp0) = (s.join("gm0"), s.join("gp0"));
    let out = ocigo_offline(
        &s.join("store-pull0"),
        &[
            "pull",
            &default_dest,
            "--gomodcache",
            gm0.to_str().unwrap(),
            "--gopath",
            gp0.to_str().unwrap(),
        ],
        &[],
    );
    assert_exit(&out, 0, "pull (default closure)");
    let (gms0, gps0) = (gm0.display().to_string(), gp0.display().to_string());
    fs::write(dir.join("go.sum"), "").unwrap();
    let out = go_offline(
        &dir,
        &["mod", "tidy"],
        &[("GOMODCACHE", &gms0), ("GOPATH", &gps0), ("GOPROXY", "off")],
    );
    assert_failure(&out, "offline go mod tidy with the default closure");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("gopkg.in/check.v1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::write(dir.join("go.sum"), &original_sum).unwrap();

    let dest = format!("oci:{}:v1", s.join("layout").display());
    let out = ocigo(
        &s.join("store-pack"),
        &[
            "--json",
            "pack",
            dir.to_str().unwrap(),
            "-o",
            &dest,
            "--closure",
            "tidy",
        ],
        &[("GOPROXY", &proxy()), ("GOFLAGS", "-modcacherw")],
    );
    assert_exit(&out, 0, "pack --closure tidy");
    let packed = json_ok(&out, "pack");
    assert_eq!(packed["sumdb"]["records"], packed["modules"]);
    let (gm, gp) = (s.join("gm"), s.join("gp"));
    let out = ocigo_offline(
        &s.join("store-pull"),
        &[
            "pull",
            &dest,
            "--gomodcache",
            gm.to_str().unwrap(),
            "--gopath",
            gp.to_str().unwrap(),
        ],
        &[],
    );
    assert_exit(&out, 0, "pull");
    let gms = gm.display().to_string();
    let gps = gp.display().to_string();
    for goproxy in ["off".to_string(), format!("file://{gms}/cache/download")] {
        let env = [
            ("GOMODCACHE", gms.as_str()),
            ("GOPATH", gps.as_str()),
            ("GOPROXY", goproxy.as_str()),
        ];
        fs::write(dir.join("go.sum"), "").unwrap();
        let out = go_offline(&dir, &["mod", "tidy"], &env);
        assert_success(
            &out,
            &format!("offline go mod tidy, empty go.sum, GOPROXY={goproxy}"),
        );
        assert_eq!(
            fs::read_to_string(dir.join("go.sum")).unwrap(),
            original_sum,
            "go mod tidy rewrote go.sum from the carried records"
        );
        assert_success(
            &go_offline(&dir, &["mod", "download"], &env),
            "go mod download",
        );
        assert_success(
            &go_offline(&dir, &["list", "-m", "all"], &env),
            "go list -m all",
        );
        let out = go_offline(&dir, &["mod", "verify"], &env);
        assert_success(&out, "go mod verify");
        assert!(String::from_utf8_lossy(&out.stdout).contains("all modules verified"));
    }
}

// ------------------------------------------------------- tampered bundles

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest as _;
    format!("{:x}", sha2::Sha256::digest(b))
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    fs::read(
        layout
            .join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap()),
    )
    .unwrap()
}

fn put_blob(layout: &Path, bytes: &[u8]) -> String {
    let hex = sha256_hex(bytes);
    fs::write(layout.join("blobs/sha256").join(&hex), bytes).unwrap();
    format!("sha256:{hex}")
}

/// Rewrites the checksum-database manifest of the layout's only bundle,
/// re-linking config, manifest, index and `index.json` with correct
/// digests, so only ocigo's proofs can tell.
/// Returns the new manifest's digest and its config's.
fn rewrite_sumdb(
    layout: &Path,
    f: impl FnOnce(&Path, &mut serde_json::Value, &mut serde_json::Value),
) -> (String, String) {
    let index_json_path = layout.join("index.json");
    let mut index_json: serde_json::Value =
        serde_json::from_slice(&fs::read(&index_json_path).unwrap()).unwrap();
    let top_digest = index_json["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut top: serde_json::Value = serde_json::from_slice(&blob(layout, &top_digest)).unwrap();
    let entry = top["manifests"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|m| m["artifactType"] == "application/vnd.ocigo.sumdb.v1")
        .expect("a checksum-database manifest");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&blob(layout, entry["digest"].as_str().unwrap())).unwrap();
    let mut config: serde_json::Value = serde_json::from_slice(&blob(
        layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    f(layout, &mut config, &mut manifest);
    let config = serde_json::to_vec(&config).unwrap();
    let config_digest = put_blob(layout, &config);
    manifest["config"]["digest"] = config_digest.clone().into();
    manifest["config"]["size"] = config.len().into();
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let manifest_digest = put_blob(layout, &manifest);
    entry["digest"] = manifest_digest.clone().into();
    entry["size"] = manifest.len().into();
    let top = serde_json::to_vec(&top).unwrap();
    index_json["manifests"][0]["digest"] = put_blob(layout, &top).into();
    index_json["manifests"][0]["size"] = top.len().into();
    fs::write(&index_json_path, serde_json::to_vec(&index_json).unwrap()).unwrap();
    (manifest_digest, config_digest)
}

#[test]
fn tampered_records_tiles_and_notes_are_refused_by_pull_with_nothing_written() {
    let s = Scratch::new();
    let (src, proxy) = (s.dir("src"), s.dir("proxy"));
    let m = common::ocigo::write_module_source(
        &src,
        "example.com/sa",
        "v1.0.0",
        &[
            ("go.mod", b"module example.com/sa\n\ngo 1.21\n"),
            (
                "m.go",
                b"package sa\n\nfunc Hello() string { return \"sa\" }\n",
            ),
        ],
    );
    common::ocigo::add_to_proxy(&proxy, &m);
    let db = FixtureDb::start(&proxy, 300);
    let gosumdb = format!("{} {}", db.vkey, db.url);
    let proxy_url = format!("file://{}", proxy.display());
    let p = small_project(&s, "p", &m);
    let good = s.join("good");
    let out = ocigo(
        &s.join("store-pack"),
        &[
            "pack",
            p.to_str().unwrap(),
            "-o",
            &format!("oci:{}:v1", good.display()),
        ],
        &[
            ("GOPROXY", &proxy_url),
            ("GOSUMDB", &gosumdb),
            ("GOFLAGS", "-modcacherw"),
        ],
    );
    assert_exit(&out, 0, "pack");
    drop(db);
    let key_only = db_key_only(&gosumdb);

    type Tamper = Box<dyn FnOnce(&Path, &mut serde_json::Value, &mut serde_json::Value)>;
    let cases: Vec<(&str, Tamper, &[&str])> = vec![
        (
            "a record's hash altered",
            Box::new(|_, c, _| {
                let t = c["databases"][0]["records"][0]["text"].as_str().unwrap();
                let i = t.find("h1:").unwrap() + 3;
                let mut t = t.to_string();
                let ch = if &t[i..i + 1] == "A" { "B" } else { "A" };
                t.replace_range(i..i + 1, ch);
                c["databases"][0]["records"][0]["text"] = t.into();
            }),
            &["example.com/sa@v1.0.0", "not in its signed tree"],
        ),
        (
            "a tile altered",
            Box::new(|layout, c, m| {
                let tiles = c["databases"][0]["tiles"].as_array_mut().unwrap();
                let t = &mut tiles[0];
                let old = t["digest"].as_str().unwrap().to_string();
                let mut data = blob(layout, &old);
                data[5] ^= 1;
                let new = put_blob(layout, &data);
                t["digest"] = new.clone().into();
                for l in m["layers"].as_array_mut().unwrap() {
                    if l["digest"] == old.as_str() {
                        l["digest"] = new.clone().into();
                    }
                }
            }),
            &["sumdb.test", "tiles do not match the signed tree"],
        ),
        (
            "the tree note's size altered under its signature",
            Box::new(|_, c, _| {
                let n = c["databases"][0]["tree"].as_str().unwrap();
                c["databases"][0]["tree"] = n.replace("\n301\n", "\n302\n").into();
            }),
            &["does not verify"],
        ),
        (
            "a genuine record filed under another module's name",
            Box::new(|_, c, _| {
                c["databases"][0]["records"][0]["path"] = "example.com/victim".into();
            }),
            &["example.com/victim@v1.0.0", "not one of its modules"],
        ),
        (
            "a genuine record filed under another version",
            Box::new(|_, c, _| {
                c["databases"][0]["records"][0]["version"] = "v1.0.1".into();
            }),
            &["example.com/sa@v1.0.1", "not one of its modules"],
        ),
        (
            "a tile beyond the signed tree that no proof reads",
            Box::new(|layout, c, m| add_tile(layout, c, m, "tile/8/0/002", &[7u8; 8192])),
            &["tile/8/0/002", "not a tile of its signed tree"],
        ),
        (
            "a tile of a width the signed tree does not have",
            Box::new(|layout, c, m| add_tile(layout, c, m, "tile/8/0/000.p/5", &[7u8; 160])),
            &["tile/8/0/000.p/5", "does not have at that width"],
        ),
        (
            "the database listed twice",
            Box::new(|_, c, _| {
                let db = c["databases"][0].clone();
                c["databases"].as_array_mut().unwrap().push(db);
            }),
            &["sumdb.test", "listed more than once"],
        ),
    ];
    for (what, tamper, needles) in cases {
        let layout = s.join(&format!("bad-{}", sha256_hex(what.as_bytes())));
        common::fixtures::copy_tree(&good, &layout);
        let (bad_manifest, bad_config) = rewrite_sumdb(&layout, tamper);
        let (gm, gp) = (
            s.dir(&format!("{}-gm", layout.display())),
            s.dir(&format!("{}-gp", layout.display())),
        );
        let (before_gm, before_gp) = (snapshot(&gm), snapshot(&gp));
        let store = s.join(&format!("{}-store", layout.display()));
        let out = ocigo_offline(
            &store,
            &[
                "pull",
                &format!("oci:{}:v1", layout.display()),
                "--gomodcache",
                gm.to_str().unwrap(),
                "--gopath",
                gp.to_str().unwrap(),
            ],
            &[("GOSUMDB", &key_only)],
        );
        assert_exit(&out, 3, what);
        assert_mentions(&stderr(&out), needles, what);
        // Nothing unproven is kept in the store either.
        for d in [&bad_manifest, &bad_config] {
            let p = store
                .join("blobs/sha256")
                .join(d.strip_prefix("sha256:").unwrap());
            assert!(!p.exists(), "{what}: {d} was stored before it was proven");
        }
        assert_unchanged(&before_gm, &gm, what);
        assert_unchanged(&before_gp, &gp, what);
    }

    // A link planted below GOPATH (or GOMODCACHE) is not followed: a
    // conflict, nothing written there or where it points.
    for (what, plant) in [
        ("gopath", "pkg/sumdb"),
        ("gomodcache", "cache/download/sumdb"),
    ] {
        let (gm, gp, elsewhere) = (
            s.dir(&format!("link-{what}-gm")),
            s.dir(&format!("link-{what}-gp")),
            s.dir(&format!("link-{what}-elsewhere")),
        );
        let root = if what == "gopath" { &gp } else { &gm };
        let link = root.join(plant);
        fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        let (before_gm, before_gp, before_else) =
            (snapshot(&gm), snapshot(&gp), snapshot(&elsewhere));
        let out = ocigo_offline(
            &s.join(&format!("link-{what}-store")),
            &[
                "pull",
                &format!("oci:{}:v1", good.display()),
                "--gomodcache",
                gm.to_str().unwrap(),
                "--gopath",
                gp.to_str().unwrap(),
            ],
            &[("GOSUMDB", &key_only)],
        );
        assert_exit(&out, 5, what);
        assert_mentions(&stderr(&out), &[plant, "does not follow links"], what);
        assert_unchanged(&before_gm, &gm, what);
        assert_unchanged(&before_gp, &gp, what);
        assert_unchanged(&before_else, &elsewhere, what);
    }
}

/// Adds a tile to the config and the manifest's layers.
fn add_tile(
    layout: &Path,
    c: &mut serde_json::Value,
    m: &mut serde_json::Value,
    path: &str,
    data: &[u8],
) {
    let digest = put_blob(layout, data);
    c["databases"][0]["tiles"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"path": path, "digest": digest, "size": data.len()}));
    m["layers"].as_array_mut().unwrap().push(serde_json::json!({
        "mediaType": "application/vnd.ocigo.sumdb.tile.v1",
        "digest": digest,
        "size": data.len(),
    }));
}
