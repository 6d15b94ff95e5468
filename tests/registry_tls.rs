//! Registries behind TLS with a private certificate authority, and behind
//! an HTTP CONNECT proxy: trusted through `--ca-file`, a `certs.d`
//! directory, or the system store (in a private mount namespace with a CA
//! bundle bind-mounted over the system one); refused when untrusted unless
//! `--insecure`; mutual TLS with a client certificate from `certs.d`;
//! `HTTPS_PROXY` honoured and `NO_PROXY` bypassing it.
//!
//! Real parts: the real `ocigo` binary, Debian's `docker-registry`
//! (distribution 2.8) serving TLS with certificates made by the openssl CLI
//! (`http.tls`, `http.tls.clientcas`), `unshare -m` and `mount --bind`. The
//! proxy is the small CONNECT proxy of tests/common/http.rs.

mod common;

use std::path::Path;
use std::process::Command;

use common::http::ConnectProxy;
use common::ocigo::{Scratch, assert_exit, ocigo, ocigo_command, stderr};
use common::registry::{TEST_HOST_NAME, TestPki, TestRegistry};
use ocigo::oci::{Descriptor, Repository};
use ocigo::registry::{RegistryOptions, RegistryRepository};

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A small artifact (empty config, one layer) in an OCI layout, tag v1.
/// Returns the `oci:DIR:v1` reference and the manifest descriptor.
fn small_layout(sc: &Scratch) -> (String, Descriptor) {
    common::ocigo::artifact_layout(&sc.join("layout"), &[b"ocigo over TLS"])
}

/// What the registry holds as `team/mods:v1`, read over TLS with `ca`.
fn resolved_digest(host: &str, ca: &Path) -> String {
    let opts = RegistryOptions {
        ca_files: vec![ca.to_path_buf()],
        certs_dirs: Some(vec![]),
        ..RegistryOptions::default()
    };
    let repo = RegistryRepository::open(host, "team/mods", &opts).unwrap();
    repo.resolve("v1").unwrap().digest.to_string()
}

/// `ocigo push SRC HOST/team/mods:v1 EXTRA...` with `env` (and no certs.d
/// unless `env` names one: the machine's own directories are left out).
fn push(
    sc: &Scratch,
    src: &str,
    host: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let dest = format!("{host}/team/mods:v1");
    let mut args = vec!["push", src, dest.as_str()];
    args.extend_from_slice(extra);
    let mut env = env.to_vec();
    if !env.iter().any(|(k, _)| *k == "OCIGO_CERTS_D") {
        env.push(("OCIGO_CERTS_D", ""));
    }
    ocigo(&sc.join("store"), &args, &env)
}

#[test]
fn a_private_ca_is_trusted_through_ca_file() {
    let pki = TestPki::new();
    let reg = TestRegistry::start_tls(&pki, false);
    let sc = Scratch::new();
    let (src, desc) = small_layout(&sc);
    let out = push(&sc, &src, &reg.addr, &["--ca-file", &s(&pki.ca)], &[]);
    assert_exit(&out, 0, "push over TLS trusted with --ca-file");
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    assert_eq!(resolved_digest(&reg.addr, &pki.ca), desc.digest.to_string());
}

#[test]
fn an_untrusted_certificate_is_refused_unless_insecure() {
    let pki = TestPki::new();
    let reg = TestRegistry::start_tls(&pki, false);
    let sc = Scratch::new();
    let (src, desc) = small_layout(&sc);
    // An empty certs.d directory for the host says "TLS" and trusts nothing
    // more than the system store, which does not know this CA.
    let certs_d = pki.certs_d(&reg.addr, false, false);
    let out = push(
        &sc,
        &src,
        &reg.addr,
        &[],
        &[("OCIGO_CERTS_D", &s(certs_d.path()))],
    );
    assert_exit(&out, 4, "push to a registry whose CA is not trusted");
    let err = stderr(&out);
    assert!(
        err.contains(&format!("TLS with {} failed", reg.addr)),
        "{err}"
    );
    assert!(
        err.contains("hint: ")
            && err.contains("--ca-file")
            && err.contains(&format!("/etc/docker/certs.d/{}/ca.crt", reg.addr)),
        "{err}"
    );
    assert!(
        RegistryRepository::open(
            &reg.addr,
            "team/mods",
            &RegistryOptions {
                ca_files: vec![pki.ca.clone()],
                ..RegistryOptions::default()
            }
        )
        .unwrap()
        .resolve("v1")
        .is_err(),
        "the refused push stored something"
    );

    let out = push(&sc, &src, &reg.addr, &["--insecure"], &[]);
    assert_exit(&out, 0, "push with --insecure");
    let err = stderr(&out);
    assert_eq!(
        err.matches("warning: --insecure").count(),
        1,
        "one warning naming the host: {err}"
    );
    assert!(err.contains(&reg.addr), "{err}");
    assert_eq!(resolved_digest(&reg.addr, &pki.ca), desc.digest.to_string());
}

#[test]
fn a_private_ca_is_trusted_through_certs_d() {
    let pki = TestPki::new();
    let reg = TestRegistry::start_tls(&pki, false);
    let sc = Scratch::new();
    let (src, desc) = small_layout(&sc);
    let certs_d = pki.certs_d(&reg.addr, true, false);
    let out = push(
        &sc,
        &src,
        &reg.addr,
        &[],
        &[(
            "OCIGO_CERTS_D",
            &format!("/nonexistent:{}", s(certs_d.path())),
        )],
    );
    assert_exit(&out, 0, "push over TLS trusted through certs.d");
    assert_eq!(resolved_digest(&reg.addr, &pki.ca), desc.digest.to_string());
}

#[test]
fn a_ca_in_the_system_store_is_trusted() {
    let pki = TestPki::new();
    let reg = TestRegistry::start_tls(&pki, false);
    let sc = Scratch::new();
    let (src, desc) = small_layout(&sc);
    // The system bundle, as update-ca-certificates writes it, with the
    // test CA added; seen only inside a private mount namespace.
    let system = Path::new("/etc/ssl/certs/ca-certificates.crt");
    assert!(
        system.is_file(),
        "{} is missing (apt-get install ca-certificates)",
        system.display()
    );
    let bundle = sc.join("ca-certificates.crt");
    let mut pem = std::fs::read(system).unwrap();
    pem.extend(std::fs::read(&pki.ca).unwrap());
    std::fs::write(&bundle, pem).unwrap();
    let certs_d = pki.certs_d(&reg.addr, false, false);
    let dest = format!("{}/team/mods:v1", reg.addr);
    let script = format!(
        "mount --bind \"$1\" {} && shift && exec \"$@\"",
        system.display()
    );
    let mut cmd = ocigo_command(
        &[],
        &sc.join("store"),
        &["push", &src, &dest],
        &[("OCIGO_CERTS_D", &s(certs_d.path()))],
    );
    // Run the very same command line inside `unshare -m sh -c ...`.
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let envs: Vec<_> = cmd
        .get_envs()
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned())))
        .collect();
    let mut wrapped = Command::new("unshare");
    wrapped
        .args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"])
        .arg(&bundle)
        .arg(program)
        .args(args)
        .env_clear()
        .envs(envs);
    cmd = wrapped;
    let out = cmd.output().unwrap();
    assert_exit(&out, 0, "push trusted through the system store");
    assert_eq!(resolved_digest(&reg.addr, &pki.ca), desc.digest.to_string());
    // Outside the namespace, the system store does not know the CA.
    let out = push(
        &sc,
        &src,
        &reg.addr,
        &[],
        &[("OCIGO_CERTS_D", &s(certs_d.path()))],
    );
    assert_exit(&out, 4, "the same push outside the mount namespace");
}

#[test]
fn mutual_tls_uses_the_client_certificate_from_certs_d() {
    let pki = TestPki::new();
    let reg = TestRegistry::start_tls(&pki, true);
    let sc = Scratch::new();
    let (src, desc) = small_layout(&sc);
    // The CA alone is not enough: the registry wants a client certificate.
    let ca_only = pki.certs_d(&reg.addr, true, false);
    let out = push(
        &sc,
        &src,
        &reg.addr,
        &[],
        &[("OCIGO_CERTS_D", &s(ca_only.path()))],
    );
    assert_exit(&out, 4, "push without a client certificate");
    let err = stderr(&out);
    assert!(err.contains("client.cert"), "{err}");

    let with_client = pki.certs_d(&reg.addr, true, true);
    let out = push(
        &sc,
        &src,
        &reg.addr,
        &[],
        &[("OCIGO_CERTS_D", &s(with_client.path()))],
    );
    assert_exit(&out, 0, "push with a client certificate from certs.d");
    let opts = RegistryOptions {
        certs_dirs: Some(vec![with_client.path().to_path_buf()]),
        ..RegistryOptions::default()
    };
    let repo = RegistryRepository::open(&reg.addr, "team/mods", &opts).unwrap();
    assert_eq!(repo.resolve("v1").unwrap().digest, desc.digest);
}

#[test]
fn https_proxy_carries_the_connection_and_no_proxy_bypasses_it() {
    let pki = TestPki::new();
    let reg = TestRegistry::start_tls(&pki, false);
    let port = reg.addr.rsplit_once(':').unwrap().1.to_string();
    let host = format!("{TEST_HOST_NAME}:{port}");
    // The name resolves nowhere: only the proxy knows where it is.
    let (host2, real) = (host.clone(), reg.addr.clone());
    let proxy = ConnectProxy::start(move |target| (target == host2).then(|| real.clone()));
    let sc = Scratch::new();
    let (src, desc) = small_layout(&sc);
    let proxy_url = format!("http://{}", proxy.addr);
    let out = push(
        &sc,
        &src,
        &host,
        &["--ca-file", &s(&pki.ca)],
        &[
            ("HTTPS_PROXY", &proxy_url),
            ("NO_PROXY", "localhost,10.0.0.0/8"),
        ],
    );
    assert_exit(&out, 0, "push through HTTPS_PROXY");
    let targets = proxy.targets();
    assert!(!targets.is_empty(), "the proxy saw no CONNECT");
    assert!(targets.iter().all(|t| *t == host), "{targets:?}");
    assert_eq!(resolved_digest(&reg.addr, &pki.ca), desc.digest.to_string());

    // NO_PROXY naming the domain: ocigo goes direct, cannot resolve the
    // name, and the proxy sees nothing more.
    let before = proxy.targets().len();
    let out = push(
        &sc,
        &src,
        &host,
        &["--ca-file", &s(&pki.ca)],
        &[("https_proxy", &proxy_url), ("no_proxy", "ocigo.test")],
    );
    assert_exit(&out, 4, "push with NO_PROXY matching the registry");
    assert_eq!(proxy.targets().len(), before, "{:?}", proxy.targets());
    assert!(stderr(&out).contains(TEST_HOST_NAME), "{}", stderr(&out));
}

#[test]
fn plain_http_is_only_by_request_with_a_warning_and_uses_http_proxy() {
    let reg = TestRegistry::start();
    let port = reg.addr.rsplit_once(':').unwrap().1.to_string();
    let host = format!("{TEST_HOST_NAME}:{port}");
    let (host2, real) = (host.clone(), reg.addr.clone());
    let proxy = ConnectProxy::start(move |target| (target == host2).then(|| real.clone()));
    let sc = Scratch::new();
    let (src, desc) = small_layout(&sc);
    let proxy_env = format!("127.0.0.1:{}", proxy.addr.rsplit_once(':').unwrap().1);
    // Without --plain-http a name that is not loopback gets HTTPS, which
    // this registry does not speak.
    let out = push(&sc, &src, &host, &[], &[("HTTPS_PROXY", &proxy_env)]);
    assert_exit(&out, 4, "HTTPS to a plain-HTTP registry");
    // With it: plain HTTP, through HTTP_PROXY (a value without a scheme
    // means http://), and one warning naming the host.
    let before = proxy.targets().len();
    let out = push(
        &sc,
        &src,
        &host,
        &["--plain-http"],
        &[("http_proxy", &proxy_env)],
    );
    assert_exit(&out, 0, "push with --plain-http through HTTP_PROXY");
    let err = stderr(&out);
    assert_eq!(err.matches("warning: --plain-http").count(), 1, "{err}");
    assert!(err.contains(&host), "{err}");
    assert!(proxy.targets().len() > before, "{:?}", proxy.targets());
    let repo =
        RegistryRepository::open(&reg.addr, "team/mods", &RegistryOptions::default()).unwrap();
    assert_eq!(repo.resolve("v1").unwrap().digest, desc.digest);
}
