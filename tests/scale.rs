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
use ocigo::artifact;

/// "upgraded", "added", "removed".
fn done(name: &str) -> String {
    match name {
        "add" => "added".to_string(),
        other => format!("{other}d"),
    }
}

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

/// Runs ocigo, and with `OCIGO_SCALE_MEASURE=1` records its wall time and
/// peak RSS (GNU time) and those of every go command it runs (through an
/// `OCIGO_GO` wrapper), for the benchmark's table.
struct Runner {
    dir: PathBuf,
    measure: bool,
    rows: std::cell::RefCell<Vec<String>>,
}

impl Runner {
    fn new(dir: PathBuf) -> Runner {
        let measure = std::env::var_os("OCIGO_SCALE_MEASURE").is_some();
        if measure {
            let wrapper = dir.join("go-wrapper");
            fs::write(
                &wrapper,
                format!(
                    "#!/bin/sh\nexec /usr/bin/time -a -o {} -f '%e %M' {} \"$@\"\n",
                    dir.join("go-times").display(),
                    std::env::var("OCIGO_GO").unwrap_or_else(|_| "go".into())
                ),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
        }
        Runner {
            dir,
            measure,
            rows: Default::default(),
        }
    }

    fn run(
        &self,
        what: &str,
        store: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> serde_json::Value {
        let go_times = self.dir.join("go-times");
        let _ = fs::remove_file(&go_times);
        let wrapper = s(&self.dir.join("go-wrapper"));
        let mut env = env.to_vec();
        // Passed through to compare glibc's default allocator settings.
        if std::env::var_os("OCIGO_MALLOC_DEFAULT").is_some() {
            env.push(("OCIGO_MALLOC_DEFAULT", "1"));
        }
        let t = Instant::now();
        let mut peak_kib = 0u64;
        let out = if self.measure {
            env.push(("OCIGO_GO", wrapper.as_str()));
            // The process's own high-water mark (VmHWM), sampled every 5 ms:
            // GNU time would report the largest go command pack runs.
            let mut child = common::ocigo::ocigo_command(&[], store, args, &env)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let status_path = format!("/proc/{}/status", child.id());
            let mut stdout = child.stdout.take().unwrap();
            let mut stderr = child.stderr.take().unwrap();
            let reader = std::thread::spawn(move || {
                let mut o = Vec::new();
                std::io::Read::read_to_end(&mut stdout, &mut o).unwrap();
                o
            });
            let err_reader = std::thread::spawn(move || {
                let mut e = Vec::new();
                std::io::Read::read_to_end(&mut stderr, &mut e).unwrap();
                e
            });
            let status = loop {
                if let Ok(text) = fs::read_to_string(&status_path)
                    && let Some(l) = text.lines().find(|l| l.starts_with("VmHWM:"))
                {
                    let kib: u64 = l
                        .split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    peak_kib = peak_kib.max(kib);
                }
                if let Some(st) = child.try_wait().unwrap() {
                    break st;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            };
            std::process::Output {
                status,
                stdout: reader.join().unwrap(),
                stderr: err_reader.join().unwrap(),
            }
        } else {
            ocigo(store, args, &env)
        };
        let elapsed = t.elapsed();
        let report = json_ok(&out, &format!("ocigo {}", args.join(" ")));
        eprintln!("{what}: {elapsed:.1?}");
        if self.measure {
            let secs = elapsed.as_secs_f64();
            let kib = peak_kib as f64;
            let (mut go_secs, mut go_kib) = (0.0f64, 0.0f64);
            for l in fs::read_to_string(&go_times).unwrap_or_default().lines() {
                let mut f = l.split_whitespace();
                if let (Some(Ok(a)), Some(Ok(b))) = (
                    f.next().map(str::parse::<f64>),
                    f.next().map(str::parse::<f64>),
                ) {
                    go_secs += a;
                    go_kib = go_kib.max(b);
                }
            }
            let go = if go_secs > 0.0 {
                format!("{go_secs:.1} s | {:.1} MiB", go_kib / 1024.0)
            } else {
                " | ".to_string()
            };
            self.rows.borrow_mut().push(format!(
                "| {what} | {secs:.1} s | {:.1} MiB | {go} |",
                kib / 1024.0
            ));
        }
        report
    }

    fn note(&self, row: String) {
        if self.measure {
            self.rows.borrow_mut().push(row);
        }
    }

    fn print(&self) {
        if self.measure {
            println!("| Step | Wall | Peak RSS (ocigo) | go commands' wall | largest go command |");
            println!("|---|---:|---:|---:|---:|");
            for r in self.rows.borrow().iter() {
                println!("{r}");
            }
        }
    }
}

fn pack(
    runner: &Runner,
    what: &str,
    store: &Path,
    proxy: &Path,
    project: &Path,
    dest: &str,
    cache: &Path,
) -> serde_json::Value {
    let mut env = fixture_env(proxy);
    env.push(("GOMODCACHE".into(), s(cache)));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    runner.run(
        what,
        store,
        &["pack", &s(project), "-o", dest, "--json"],
        &env,
    )
}

#[test]
fn organisation_scale_round_trip_and_one_module_deltas() {
    let spec = Spec {
        versions: env_usize("OCIGO_SCALE_VERSIONS", 20_000),
        packages: env_usize("OCIGO_SCALE_PACKAGES", 600),
        files_per_zip: env_usize("OCIGO_SCALE_FILES", 6),
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
    let runner = Runner::new(sc.dir("measure"));
    let store = sc.dir("store");
    let disk = sc.join("disk");
    let user_cache = sc.dir("user-modcache");
    let base: Vec<&Gen> = c.packages.iter().collect();
    let project = sc.join("base");
    closure::write_project(&project, &base, &c.hubs, &c.graph);

    // Pack to a layout (a removable disk), push that to the registry.
    let layout = format!("oci:{}:base", s(&disk));
    let packed = pack(
        &runner,
        "pack",
        &store,
        &c.proxy,
        &project,
        &layout,
        &user_cache,
    );
    let dest = format!("{}/org/bundle:base", reg.addr);
    runner.run(
        "push to an empty registry",
        &store,
        &["push", &layout, &dest, "--json"],
        &[],
    );
    assert_eq!(packed["modules"], spec.versions, "{}", packed["modules"]);
    assert_eq!(packed["zips"], spec.packages + c.hubs.len());
    let parts = packed["manifests"].as_u64().unwrap();
    // Parts average 128 paths and never pass 2,048 modules.
    assert!(
        parts as usize >= spec.versions / 2048 && parts as usize <= spec.versions / 40,
        "{parts} parts for {} modules",
        spec.versions
    );
    if std::env::var_os("OCIGO_SCALE_MEASURE_CUTS").is_some() {
        measure_cut_options(&disk, "base");
    }
    let base_blobs = registry_blobs(&reg.storage_dir());
    let bundle_bytes: u64 = base_blobs.values().sum();
    assert!(
        base_blobs.len() as u64 >= spec.packages as u64 + 2 * parts + 2,
        "{} blobs in the registry",
        base_blobs.len()
    );

    // Pull into an empty GOMODCACHE with an empty store; the go command
    // builds and verifies offline with nothing else.
    let modcache = sc.dir("modcache");
    let pulled = runner.run(
        "pull into an empty GOMODCACHE",
        &sc.dir("pull-store"),
        &["pull", &dest, "--gomodcache", &s(&modcache), "--json"],
        &[],
    );
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
        let layout = format!("oci:{}:{name}", s(&disk));
        pack(
            &runner,
            &format!("pack, one module {} (warm store)", done(name)),
            &store,
            &c.proxy,
            &dir,
            &layout,
            &user_cache,
        );
        let packed = runner.run(
            &format!("push, one module {}", done(name)),
            &store,
            &[
                "push",
                &layout,
                &format!("{}/org/bundle:{name}", reg.addr),
                "--json",
            ],
            &[],
        );
        let after = registry_blobs(&reg.storage_dir());
        let new: BTreeMap<&String, &u64> = after
            .iter()
            .filter(|(d, _)| !before.contains_key(*d))
            .collect();
        let new_bytes: u64 = new.values().copied().sum();
        let line = format!(
            "{name}: {} new blobs in the registry, {new_bytes} bytes ({:.3}% of {bundle_bytes})",
            new.len(),
            100.0 * new_bytes as f64 / bundle_bytes as f64,
        );
        eprintln!("{line}");
        runner.note(format!("| ({line}) | | | | |"));
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
    runner.print();
}

/// Bytes a registry holding `old` gains from `new` (blobs and manifests,
/// zips excluded: the same in every option).
fn delta_bytes(old: &artifact::BuiltArtifact, new: &artifact::BuiltArtifact) -> u64 {
    let have: std::collections::HashSet<_> = old
        .blobs
        .iter()
        .chain(&old.parts)
        .map(|(d, _)| d.digest.clone())
        .collect();
    let mut sum = new.top.len() as u64;
    for (d, b) in new.blobs.iter().chain(&new.parts) {
        if !have.contains(&d.digest) {
            sum += b.len() as u64;
        }
    }
    sum
}

/// Prints, for several ways of cutting parts, what a one-module upgrade,
/// addition and removal would add to a registry holding the bundle
/// `reference` of the layout `layout`: the numbers behind the choice of
/// 128 paths per part (README "Performance"). Rebuilds the bundle's own
/// module entries with the library, so it takes seconds.
fn measure_cut_options(layout: &Path, reference: &str) {
    use ocigo::oci::Repository;
    let store = ocigo::store::Layout::open(layout).unwrap();
    let top = store.resolve(reference).unwrap();
    let bundle = artifact::load(&store, &top).unwrap();
    let modules: Vec<artifact::ModuleEntry> = bundle.modules().cloned().collect();
    let zip_bytes: u64 = modules
        .iter()
        .filter_map(|m| m.zip.as_ref())
        .map(|z| z.size)
        .sum();
    let input = |modules: Vec<artifact::ModuleEntry>| artifact::ModulesConfig {
        format_version: artifact::FORMAT_VERSION,
        main_modules: bundle.outline.main_modules.clone(),
        platforms: bundle.outline.platforms.clone(),
        created: None,
        modules,
    };
    // Upgrade: a module with a zip in the middle gets a new zip and .mod.
    let mut upgraded = modules.clone();
    let k = (modules.len() / 2..modules.len())
        .find(|&i| modules[i].zip.is_some())
        .unwrap_or(modules.len() / 2);
    upgraded[k].go_mod.push_str("// upgraded\n");
    if let Some(z) = &mut upgraded[k].zip {
        z.layer = ocigo::oci::Digest::of_bytes(b"another zip");
    }
    let mut added = modules.clone();
    let mut extra = modules[modules.len() / 3].clone();
    extra.path.push_str("/extra");
    extra.zip = None;
    added.push(extra);
    let mut removed = modules.clone();
    removed.remove(2 * modules.len() / 3);
    println!(
        "{} module versions, {} zips ({} bytes)",
        modules.len(),
        modules.iter().filter(|m| m.zip.is_some()).count(),
        zip_bytes
    );
    println!("| Cut | Parts | Index | Mean part config | Bundle | Upgrade | Addition | Removal |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let options: Vec<(String, artifact::SplitLimits)> = [32u64, 64, 128, 256, 512]
        .iter()
        .map(|&n| {
            (
                format!("by path, {n} paths a part"),
                artifact::SplitLimits {
                    paths_per_part: n,
                    ..Default::default()
                },
            )
        })
        .chain(std::iter::once((
            "every 5,000 modules (v1's rule)".to_string(),
            artifact::SplitLimits {
                paths_per_part: u64::MAX,
                max_modules: 5000,
                ..Default::default()
            },
        )))
        .collect();
    for (name, limits) in options {
        let base = artifact::build(input(modules.clone()), limits).unwrap();
        let meta: u64 = base
            .blobs
            .iter()
            .chain(&base.parts)
            .map(|(_, b)| b.len() as u64)
            .sum::<u64>()
            + base.top.len() as u64;
        let total = meta + zip_bytes;
        let parts = base.parts.len() - 1;
        let configs: u64 = base.blobs[1..].iter().map(|(_, b)| b.len() as u64).sum();
        let pct = |b: u64| format!("{} KiB ({:.2}%)", b / 1024, 100.0 * b as f64 / total as f64);
        let d = |m: Vec<artifact::ModuleEntry>| {
            delta_bytes(&base, &artifact::build(input(m), limits).unwrap())
        };
        println!(
            "| {name} | {parts} | {} KiB | {} KiB | {} KiB | {} | {} | {} |",
            base.top.len() / 1024,
            configs / parts as u64 / 1024,
            total / 1024,
            pct(d(upgraded.clone())),
            pct(d(added.clone())),
            pct(d(removed.clone())),
        );
    }
}

/// `OCIGO_MEASURE_LAYOUT=DIR OCIGO_MEASURE_REF=TAG cargo test --release
/// --test scale -- --ignored --nocapture measure`: the cut options on any
/// packed bundle (scripts/bench-modules.sh runs it on the real-world one).
#[test]
#[ignore]
fn measure_cut_options_on_a_layout() {
    let layout = std::env::var("OCIGO_MEASURE_LAYOUT").expect("OCIGO_MEASURE_LAYOUT");
    let reference = std::env::var("OCIGO_MEASURE_REF").expect("OCIGO_MEASURE_REF");
    measure_cut_options(Path::new(&layout), &reference);
}
