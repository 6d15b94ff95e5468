//! Credentials against real registries: `ocigo login`/`logout` writing the
//! docker config as docker does (file and credential helper), pushes that
//! use nothing but what login filed, Harbor's token service shape (robot
//! accounts with `$`, `/service/token`, `service=harbor-registry`, tokens
//! expiring in the middle of a long push), identity tokens, podman's
//! `auth.json`. Every byte ocigo printed in these tests is searched for the
//! secrets (plain and base64) at the end of each test.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Output, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::http::ConnectProxy;
use common::ocigo::{
    Scratch, assert_exit, assert_unchanged, ocigo_command, snapshot, stderr, stdout,
};
use common::registry::{TEST_HOST_NAME, TestRegistry, TokenConfig};
use ocigo::oci::{Descriptor, Repository};
use ocigo::registry::{RegistryOptions, RegistryRepository};
use ocigo::store::Layout;

const ROBOT: &str = "robot$team+ci";
const PASSWORD: &str = "Harbor-robot-S3cret-7f2a";

/// Everything ocigo printed in a test, checked for secrets at the end.
#[derive(Default)]
struct Captured(Vec<u8>);

impl Captured {
    fn keep(&mut self, out: &Output) {
        self.0.extend_from_slice(&out.stdout);
        self.0.extend_from_slice(&out.stderr);
    }

    /// No secret, nor the base64 forms docker configs and Basic headers use,
    /// appears anywhere in what was captured.
    fn assert_no_secrets(&self, user: &str, secrets: &[String]) {
        assert!(!self.0.is_empty(), "nothing was captured");
        let text = String::from_utf8_lossy(&self.0);
        for secret in secrets {
            let forms = [
                secret.clone(),
                STANDARD.encode(secret),
                STANDARD.encode(format!("{user}:{secret}")),
            ];
            for f in forms {
                assert!(
                    !text.contains(&f),
                    "a secret leaked into the output: {text}"
                );
            }
        }
    }
}

/// Neither the given secrets nor any token `reg`'s token service issued
/// (nor the robot's basic credentials) appear in what `seen` captured.
fn assert_no_secrets(seen: &Captured, reg: &TestRegistry, given: &[&str]) {
    let mut secrets: Vec<String> = given.iter().map(|s| s.to_string()).collect();
    secrets.extend(
        reg.token_service
            .as_ref()
            .unwrap()
            .issued
            .lock()
            .unwrap()
            .clone(),
    );
    seen.assert_no_secrets(ROBOT, &secrets);
}

/// `ocigo ARGS` with `stdin` fed in, HOME a scratch directory (no
/// credentials of the machine's), DOCKER_CONFIG `docker_dir`.
fn run(
    sc: &Scratch,
    docker_dir: &Path,
    args: &[&str],
    stdin: &str,
    env: &[(&str, &str)],
) -> Output {
    let home = sc.dir("home");
    let mut all = vec![
        ("HOME", home.to_str().unwrap()),
        ("DOCKER_CONFIG", docker_dir.to_str().unwrap()),
        ("OCIGO_CERTS_D", ""),
    ];
    all.extend_from_slice(env);
    let mut cmd = ocigo_command(&[], &sc.join("store"), args, &all);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run ocigo");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// An OCI layout holding `team/mods:v1` with one layer of `layer_bytes`
/// bytes (random, so it compresses to nothing on no wire).
fn layout(sc: &Scratch, layer_bytes: usize) -> (String, Descriptor) {
    layout_of(sc, &[layer_bytes])
}

/// [`layout`] with one layer per size given (each different).
fn layout_of(sc: &Scratch, layer_sizes: &[usize]) -> (String, Descriptor) {
    let layers: Vec<Vec<u8>> = layer_sizes
        .iter()
        .enumerate()
        .map(|(i, size)| common::ocigo::noise_text(*size, 7 + i as u64))
        .collect();
    let layers: Vec<&[u8]> = layers.iter().map(|l| &l[..]).collect();
    common::ocigo::artifact_layout(&sc.join("layout"), &layers)
}

/// What `host/team/mods:v1` resolves to, read with `user:pass` given directly.
fn pushed_digest(reg: &TestRegistry, user: &str, pass: &str) -> String {
    let opts = RegistryOptions {
        credentials: Some(ocigo::registry::LoginCredentials {
            user: user.into(),
            pass: pass.into(),
        }),
        ..RegistryOptions::default()
    };
    let repo = RegistryRepository::open(&reg.addr, "team/mods", &opts).unwrap();
    repo.resolve("v1").unwrap().digest.to_string()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn login_then_push_with_no_other_credential_source_then_logout() {
    let reg = TestRegistry::start_harbor(TokenConfig::harbor(ROBOT, PASSWORD));
    let sc = Scratch::new();
    let mut seen = Captured::default();
    let (src, desc) = layout(&sc, 4096);
    let dest = format!("{}/team/mods:v1", reg.addr);
    // A docker config the user already has: other keys must survive.
    let docker = sc.dir("docker");
    let other_auth = STANDARD.encode("someone:other-registry-pw");
    let original = serde_json::json!({
        "auths": {"other.example:5000": {"auth": other_auth}},
        "psFormat": "table {{.ID}}",
        "proxies": {"default": {"httpProxy": "http://proxy.example:3128"}},
    });
    std::fs::write(docker.join("config.json"), original.to_string()).unwrap();

    // No credentials yet: the push is refused by the registry.
    let out = run(&sc, &docker, &["push", &src, &dest], "", &[]);
    seen.keep(&out);
    assert_exit(&out, 4, "push before login");

    // A wrong password: exit 4, the config is not touched.
    let before = snapshot(&docker);
    let out = run(
        &sc,
        &docker,
        &["login", &reg.addr, "-u", ROBOT, "--password-stdin"],
        "not-the-password\n",
        &[],
    );
    seen.keep(&out);
    assert_exit(&out, 4, "login with a wrong password");
    let err = stderr(&out);
    assert!(err.contains("refused"), "{err}");
    assert!(err.contains(ROBOT), "the user is named: {err}");
    assert_unchanged(&before, &docker, "docker config after a failed login");
    assert!(!stderr(&out).contains("not-the-password"));

    // The right one: filed as docker does, other keys kept, mode 0600.
    let out = run(
        &sc,
        &docker,
        &[
            "--json",
            "login",
            &reg.addr,
            "-u",
            ROBOT,
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
        &[],
    );
    seen.keep(&out);
    assert_exit(&out, 0, "login");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["registry"], reg.addr.as_str());
    assert_eq!(report["username"], ROBOT);
    assert_eq!(report["credential_helper"], serde_json::Value::Null);
    let path = docker.join("config.json");
    assert_eq!(mode(&path), 0o600);
    let config = read_json(&path);
    assert_eq!(
        config["auths"][reg.addr.as_str()]["auth"],
        STANDARD.encode(format!("{ROBOT}:{PASSWORD}")).as_str()
    );
    assert_eq!(
        config["auths"]["other.example:5000"],
        original["auths"]["other.example:5000"]
    );
    assert_eq!(config["psFormat"], original["psFormat"]);
    assert_eq!(config["proxies"], original["proxies"]);

    // The push now works with nothing but what login wrote.
    let out = run(&sc, &docker, &["push", &src, &dest], "", &[]);
    seen.keep(&out);
    assert_exit(&out, 0, "push after login");
    assert_eq!(
        pushed_digest(&reg, ROBOT, PASSWORD),
        desc.digest.to_string()
    );

    // Logout removes the entry and nothing else; pushing is refused again.
    let out = run(&sc, &docker, &["logout", &reg.addr], "", &[]);
    seen.keep(&out);
    assert_exit(&out, 0, "logout");
    assert!(stdout(&out).contains("Removed"), "{}", stdout(&out));
    let config = read_json(&path);
    assert!(config["auths"].get(reg.addr.as_str()).is_none(), "{config}");
    assert_eq!(
        config["auths"]["other.example:5000"],
        original["auths"]["other.example:5000"]
    );
    assert_eq!(config["proxies"], original["proxies"]);
    let out = run(&sc, &docker, &["logout", &reg.addr], "", &[]);
    seen.keep(&out);
    assert_exit(&out, 0, "second logout");
    assert!(stdout(&out).contains("Not logged in"), "{}", stdout(&out));
    let out = run(&sc, &docker, &["push", &src, &dest], "", &[]);
    seen.keep(&out);
    assert_exit(&out, 4, "push after logout");

    assert_no_secrets(&seen, &reg, &[PASSWORD, "not-the-password"]);
}

#[test]
fn login_creates_the_config_directory_private() {
    let reg = TestRegistry::start_with_htpasswd("ci-user", PASSWORD);
    let sc = Scratch::new();
    let docker = sc.join("fresh").join(".docker");
    let out = run(
        &sc,
        &docker,
        &["login", &reg.addr, "-u", "ci-user", "--password-stdin"],
        &format!("{PASSWORD}\r\n"),
        &[],
    );
    assert_exit(&out, 0, "login with Basic auth");
    assert_eq!(mode(&docker), 0o700);
    assert_eq!(mode(&docker.join("config.json")), 0o600);
    let config = read_json(&docker.join("config.json"));
    assert_eq!(
        config["auths"][reg.addr.as_str()]["auth"],
        STANDARD.encode(format!("ci-user:{PASSWORD}")).as_str(),
        "the trailing CR LF is not part of the password"
    );
    let mut seen = Captured::default();
    seen.keep(&out);
    seen.assert_no_secrets("ci-user", &[PASSWORD.to_string()]);
}

#[test]
fn login_refuses_a_password_on_the_command_line() {
    let sc = Scratch::new();
    let docker = sc.dir("docker");
    let mut seen = Captured::default();
    let out = run(
        &sc,
        &docker,
        &["login", "127.0.0.1:1", "-u", "u", "-p", PASSWORD],
        "",
        &[],
    );
    seen.keep(&out);
    assert_exit(&out, 2, "--password");
    assert!(
        stderr(&out).contains("--password-stdin"),
        "{}",
        stderr(&out)
    );
    let out = run(&sc, &docker, &["login", "127.0.0.1:1", "-u", "u"], "", &[]);
    seen.keep(&out);
    assert_exit(&out, 2, "no --password-stdin");
    let out = run(
        &sc,
        &docker,
        &["login", "127.0.0.1:1", "-u", "u", "--password-stdin"],
        "\n",
        &[],
    );
    seen.keep(&out);
    assert_exit(&out, 2, "empty password");
    assert!(!docker.join("config.json").exists());
    seen.assert_no_secrets("u", &[PASSWORD.to_string()]);
}

/// A credential helper as docker runs one (`docker-credential-NAME
/// store|get|erase`), keeping its one entry in `$HELPER_STATE`.
const FAKE_HELPER: &str = r#"#!/usr/bin/env python3
import json, os, sys
state = os.environ["HELPER_STATE"]
verb = sys.argv[1]
data = sys.stdin.read()
with open(state + ".log", "a") as log:
    log.write(verb + "\n")
if verb == "store":
    with open(state, "w") as f:
        f.write(data)
elif verb == "get":
    try:
        entry = json.load(open(state))
    except FileNotFoundError:
        entry = None
    if entry is None or entry["ServerURL"] != data.strip():
        print("credentials not found in native keychain")
        sys.exit(1)
    print(json.dumps(entry))
elif verb == "erase":
    if not os.path.exists(state):
        print("credentials not found in native keychain")
        sys.exit(1)
    os.remove(state)
"#;

#[test]
fn login_stores_through_the_credential_helper_and_logout_erases() {
    let reg = TestRegistry::start_harbor(TokenConfig::harbor(ROBOT, PASSWORD));
    let sc = Scratch::new();
    let mut seen = Captured::default();
    let bin = sc.dir("bin");
    let helper = bin.join("docker-credential-fake");
    std::fs::write(&helper, FAKE_HELPER).unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let state = sc.join("helper-state");
    let env = [
        ("PATH", path.as_str()),
        ("HELPER_STATE", state.to_str().unwrap()),
    ];
    let docker = sc.dir("docker");
    std::fs::write(docker.join("config.json"), r#"{"credsStore":"fake"}"#).unwrap();
    let (src, desc) = layout(&sc, 2048);
    let dest = format!("{}/team/mods:v1", reg.addr);

    let out = run(
        &sc,
        &docker,
        &["login", &reg.addr, "-u", ROBOT, "--password-stdin"],
        PASSWORD,
        &env,
    );
    seen.keep(&out);
    assert_exit(&out, 0, "login through the helper");
    assert!(
        stdout(&out).contains("docker-credential-fake"),
        "{}",
        stdout(&out)
    );
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(
        stored,
        serde_json::json!({"ServerURL": reg.addr, "Username": ROBOT, "Secret": PASSWORD})
    );
    // The file names the registry but holds no secret, as docker leaves it.
    let config_text = std::fs::read_to_string(docker.join("config.json")).unwrap();
    let config: serde_json::Value = serde_json::from_str(&config_text).unwrap();
    assert_eq!(config["auths"][reg.addr.as_str()], serde_json::json!({}));
    assert_eq!(config["credsStore"], "fake");
    assert!(!config_text.contains(PASSWORD));

    let out = run(&sc, &docker, &["push", &src, &dest], "", &env);
    seen.keep(&out);
    assert_exit(&out, 0, "push with the helper's credentials");
    assert_eq!(
        pushed_digest(&reg, ROBOT, PASSWORD),
        desc.digest.to_string()
    );

    let out = run(&sc, &docker, &["logout", &reg.addr], "", &env);
    seen.keep(&out);
    assert_exit(&out, 0, "logout through the helper");
    assert!(!state.exists(), "the helper was asked to erase");
    let log = std::fs::read_to_string(sc.join("helper-state.log")).unwrap();
    assert!(log.lines().any(|l| l == "erase"), "{log}");
    let config = read_json(&docker.join("config.json"));
    assert!(config["auths"].get(reg.addr.as_str()).is_none(), "{config}");

    // A helper that cannot run: a usage error, nothing written.
    std::fs::write(docker.join("config.json"), r#"{"credsStore":"missing"}"#).unwrap();
    let before = snapshot(&docker);
    let out = run(
        &sc,
        &docker,
        &["login", &reg.addr, "-u", ROBOT, "--password-stdin"],
        PASSWORD,
        &env,
    );
    seen.keep(&out);
    assert_exit(&out, 2, "login with a missing helper");
    assert!(
        stderr(&out).contains("docker-credential-missing"),
        "{}",
        stderr(&out)
    );
    assert_unchanged(&before, &docker, "docker config after a helper failure");

    assert_no_secrets(&seen, &reg, &[PASSWORD]);
}

/// A Harbor-shaped registry whose tokens the registry accepts for 2 s
/// (the token service claims `expires_in` if given, else the truth),
/// reached by name (TEST_HOST_NAME) only through a CONNECT proxy whose
/// uplink carries `upload_rate` bytes a second. Returns the registry, the
/// proxy (keep it alive) and the registry's `host:port` by that name.
fn harbor_behind_slow_uplink(
    expires_in: Option<u64>,
    upload_rate: u64,
) -> (TestRegistry, ConnectProxy, String) {
    let mut cfg = TokenConfig::harbor(ROBOT, PASSWORD);
    cfg.lifetime = 2;
    cfg.expires_in = expires_in;
    cfg.realm_host = Some(TEST_HOST_NAME.to_string());
    let reg = TestRegistry::start_harbor(cfg);
    let token_addr = reg.token_service.as_ref().unwrap().addr.clone();
    let port = |a: &str| a.rsplit_once(':').unwrap().1.to_string();
    let reg_host = format!("{TEST_HOST_NAME}:{}", port(&reg.addr));
    let token_host = format!("{TEST_HOST_NAME}:{}", port(&token_addr));
    let routes = [
        (reg_host.clone(), reg.addr.clone()),
        (token_host, token_addr),
    ];
    let proxy = ConnectProxy::start_throttled(
        move |t| routes.iter().find(|(h, _)| h == t).map(|(_, a)| a.clone()),
        Some(upload_rate),
    );
    (reg, proxy, reg_host)
}

/// `ocigo login` to `reg_host` as the robot (password on stdin).
fn login_through(
    sc: &Scratch,
    docker: &Path,
    reg_host: &str,
    env: &[(&str, &str)],
    seen: &mut Captured,
) {
    let out = run(
        sc,
        docker,
        &[
            "login",
            reg_host,
            "--plain-http",
            "-u",
            ROBOT,
            "--password-stdin",
        ],
        PASSWORD,
        env,
    );
    seen.keep(&out);
    assert_exit(&out, 0, "login through the proxy");
}

/// A push through a slow uplink (256 KiB/s: a 1 MiB layer takes 4 s) to a
/// Harbor-shaped registry whose tokens last 2 s. `honest`: the token
/// service says so (`expires_in`), and the client refreshes before using an
/// expired token; otherwise it claims 30 minutes, the registry answers the
/// stale token with 401 in the middle of the push, and the client fetches a
/// new one and carries on.
fn push_outlives_its_token(honest: bool) {
    let (reg, proxy, reg_host) = harbor_behind_slow_uplink((!honest).then_some(1800), 256 * 1024);
    let sc = Scratch::new();
    let mut seen = Captured::default();
    let docker = sc.dir("docker");
    let env = [("HTTP_PROXY", proxy.addr.as_str())];
    login_through(&sc, &docker, &reg_host, &env, &mut seen);
    let (src, desc) = layout(&sc, 1024 * 1024);
    let dest = format!("{reg_host}/team/mods:v1");
    let tokens_before = reg
        .token_service
        .as_ref()
        .unwrap()
        .scopes
        .lock()
        .unwrap()
        .len();
    let started = std::time::Instant::now();
    let out = run(
        &sc,
        &docker,
        &["push", &src, &dest, "--plain-http"],
        "",
        &env,
    );
    seen.keep(&out);
    assert_exit(&out, 0, "a push that outlives its token");
    assert!(
        started.elapsed() > std::time::Duration::from_secs(3),
        "the push was meant to take longer than a token lasts"
    );
    // What the registry stored under the tag (it is reached by name only
    // through the proxy, so read its storage).
    let link = reg
        .storage_dir()
        .join("docker/registry/v2/repositories/team/mods/_manifests/tags/v1/current/link");
    assert_eq!(
        std::fs::read_to_string(&link).unwrap().trim(),
        desc.digest.to_string()
    );
    // A push token was fetched more than once: the first one expired (or
    // was refused with a 401) during the push and a new one was asked for.
    // After a 401 the client adds the challenge's own scope to the request,
    // so the scope strings of the two requests may differ.
    let asked =
        reg.token_service.as_ref().unwrap().scopes.lock().unwrap()[tokens_before..].to_vec();
    let push_tokens = asked
        .iter()
        .filter(|s| s.contains("repository:team/mods:") && s.contains("push"))
        .count();
    assert!(push_tokens >= 2, "the token was refreshed: {asked:?}");
    assert_no_secrets(&seen, &reg, &[PASSWORD]);
}

#[test]
fn harbor_tokens_expiring_mid_push_are_refreshed_before_use() {
    push_outlives_its_token(true);
}

#[test]
fn harbor_tokens_refused_mid_push_are_fetched_again_after_the_401() {
    push_outlives_its_token(false);
}

/// Tokens refused in the middle of a blob upload (Harbor's expire after 30
/// minutes, or are revoked): the token service claims 30 minutes, the
/// registry accepts a token for 2 s, and the push (about 4 s through a
/// 1 MiB/s uplink, in 256 KiB `PATCH` chunks, one blob at a time) crosses an
/// expiry inside an upload. The registry answers that chunk 401; ocigo
/// fetches a new token and restarts that upload from a fresh `POST`: small
/// blobs (up to 1 MiB) inside the registry client, bigger ones from the
/// copy, which reads the source again. Every blob the registry keeps is the
/// source's.
#[test]
fn harbor_token_refused_mid_upload_restarts_the_upload_with_a_new_token() {
    let (reg, proxy, reg_host) = harbor_behind_slow_uplink(Some(1800), 1024 * 1024);
    let sc = Scratch::new();
    let mut seen = Captured::default();
    let docker = sc.dir("docker");
    let env = [("HTTP_PROXY", proxy.addr.as_str())];
    login_through(&sc, &docker, &reg_host, &env, &mut seen);
    let sizes = [512 * 1024, 1536 * 1024, 640 * 1024, 1280 * 1024, 768 * 1024];
    let (src, desc) = layout_of(&sc, &sizes);
    let dest = format!("{reg_host}/team/mods:v1");
    let out = run(
        &sc,
        &docker,
        &[
            "push",
            &src,
            &dest,
            "--plain-http",
            "--concurrency",
            "1",
            "--chunk-size",
            "256K",
        ],
        "",
        &env,
    );
    seen.keep(&out);
    assert_exit(&out, 0, "a push whose token is refused mid-upload");
    // Tokens were refused and fetched again during the push (without the
    // restart, the first chunk refused ends the push with exit 4).
    let asked = reg
        .token_service
        .as_ref()
        .unwrap()
        .scopes
        .lock()
        .unwrap()
        .clone();
    let push_tokens = asked
        .iter()
        .filter(|s| s.contains("repository:team/mods:") && s.contains("push"))
        .count();
    assert!(push_tokens >= 2, "the token was refreshed: {asked:?}");
    let storage = reg.storage_dir().join("docker/registry/v2");
    let link = storage.join("repositories/team/mods/_manifests/tags/v1/current/link");
    assert_eq!(
        std::fs::read_to_string(&link).unwrap().trim(),
        desc.digest.to_string()
    );
    // Every layer is there, whole and the source's.
    let layout = Layout::open_or_create(sc.join("layout")).unwrap();
    let manifest = layout.fetch_manifest(&desc).unwrap();
    let layers: Vec<Descriptor> = serde_json::from_value(
        serde_json::from_slice::<serde_json::Value>(&manifest.bytes).unwrap()["layers"].clone(),
    )
    .unwrap();
    assert_eq!(layers.len(), sizes.len());
    for l in &layers {
        let hex = l.digest.as_str().strip_prefix("sha256:").unwrap();
        let data =
            std::fs::read(storage.join(format!("blobs/sha256/{}/{hex}/data", &hex[..2]))).unwrap();
        assert_eq!(Descriptor::for_bytes(&l.media_type, &data).digest, l.digest);
    }
    assert_no_secrets(&seen, &reg, &[PASSWORD]);
}

#[test]
fn identity_token_is_exchanged_with_the_refresh_token_grant() {
    let refresh = "identity-token-refresh-9c1d";
    let mut cfg = TokenConfig::harbor(ROBOT, PASSWORD);
    cfg.refresh_token = Some(refresh.to_string());
    let reg = TestRegistry::start_harbor(cfg);
    let sc = Scratch::new();
    let mut seen = Captured::default();
    let docker = sc.dir("docker");
    let (src, desc) = layout(&sc, 1024);
    let dest = format!("{}/team/mods:v1", reg.addr);
    let config = serde_json::json!({"auths": {reg.addr.as_str(): {"identitytoken": refresh}}});
    std::fs::write(docker.join("config.json"), config.to_string()).unwrap();
    let out = run(&sc, &docker, &["--json", "push", &src, &dest], "", &[]);
    seen.keep(&out);
    assert_exit(&out, 0, "push with an identity token");
    assert_eq!(
        pushed_digest(&reg, ROBOT, PASSWORD),
        desc.digest.to_string()
    );
    // A wrong one is refused by the token service: exit 4, not shown.
    let config = serde_json::json!({"auths": {reg.addr.as_str(): {"identitytoken": "wrong-refresh-token-77"}}});
    std::fs::write(docker.join("config.json"), config.to_string()).unwrap();
    let out = run(&sc, &docker, &["push", &src, &dest], "", &[]);
    seen.keep(&out);
    assert_exit(&out, 4, "push with a wrong identity token");
    assert!(stderr(&out).contains("identity token"), "{}", stderr(&out));
    assert_no_secrets(&seen, &reg, &[refresh, "wrong-refresh-token-77"]);
}

#[test]
fn podman_auth_json_is_read_when_the_docker_config_has_nothing() {
    let reg = TestRegistry::start_harbor(TokenConfig::harbor(ROBOT, PASSWORD));
    let sc = Scratch::new();
    let mut seen = Captured::default();
    let docker = sc.dir("docker");
    let (src, desc) = layout(&sc, 1024);
    let dest = format!("{}/team/mods:v1", reg.addr);
    let auth = STANDARD.encode(format!("{ROBOT}:{PASSWORD}"));
    let podman = serde_json::json!({"auths": {reg.addr.as_str(): {"auth": auth}}});
    // $XDG_RUNTIME_DIR/containers/auth.json ...
    let runtime = sc.dir("run");
    std::fs::create_dir_all(runtime.join("containers")).unwrap();
    std::fs::write(runtime.join("containers/auth.json"), podman.to_string()).unwrap();
    let out = run(
        &sc,
        &docker,
        &["push", &src, &dest],
        "",
        &[("XDG_RUNTIME_DIR", runtime.to_str().unwrap())],
    );
    seen.keep(&out);
    assert_exit(&out, 0, "push with podman's auth.json");
    assert_eq!(
        pushed_digest(&reg, ROBOT, PASSWORD),
        desc.digest.to_string()
    );
    // ... and $REGISTRY_AUTH_FILE, which replaces it.
    let file = sc.join("elsewhere.json");
    let out = run(
        &sc,
        &docker,
        &["push", &src, &dest],
        "",
        &[
            ("XDG_RUNTIME_DIR", runtime.to_str().unwrap()),
            ("REGISTRY_AUTH_FILE", file.to_str().unwrap()),
        ],
    );
    seen.keep(&out);
    assert_exit(
        &out,
        4,
        "REGISTRY_AUTH_FILE names a file that does not exist",
    );
    std::fs::write(&file, podman.to_string()).unwrap();
    let out = run(
        &sc,
        &docker,
        &["push", &src, &dest],
        "",
        &[("REGISTRY_AUTH_FILE", file.to_str().unwrap())],
    );
    seen.keep(&out);
    assert_exit(&out, 0, "push with REGISTRY_AUTH_FILE");
    assert_no_secrets(&seen, &reg, &[PASSWORD]);
}
