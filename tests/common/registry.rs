//! Real registries for the integration tests: Debian's `docker-registry`
//! (CNCF distribution 2.8.2, the engine Harbor embeds; no referrers API),
//! CNCF distribution v3 (`registry`, built by `scripts/lib.sh`'s
//! `ensure_distribution_v3`; a second implementation, though v3.1.2 has no
//! referrers API either: it answers 404 there), or `tests/refregistry`
//! (go-containerregistry's registry, built by `ensure_refregistry`: the one
//! WITH the OCI 1.1 referrers API, `artifactType` filter and `OCI-Subject`),
//! started on a free port of 127.0.0.1, the distribution ones with a
//! config of our own, optionally behind htpasswd (Basic)
//! or behind a token service of our own (Bearer, the way Harbor does it).
//! Also writes docker `config.json` files holding credentials, and makes a
//! private certificate authority ([`TestPki`], with the openssl CLI) for
//! registries that speak TLS, optionally demanding client certificates.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use super::http;

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
/// The distribution v3 version `scripts/lib.sh` builds (keep in step).
pub const DISTRIBUTION_V3_VERSION: &str = "v3.1.2";

/// Which registry implementation to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Debian's `docker-registry`, CNCF distribution 2.8: no referrers API.
    Distribution2,
    /// CNCF distribution v3 (v3.1.2): a second implementation of the
    /// distribution API; no referrers API (404), no `OCI-Subject`.
    Distribution3,
    /// `tests/refregistry`: go-containerregistry v0.22.1's `pkg/registry`
    /// with its referrers support on, plus a thin layer of ours (the
    /// manifest's `artifactType` in the referrers list, the `artifactType`
    /// filter, `OCI-Subject`, an empty list rather than 404). Anonymous
    /// only (no htpasswd, token or TLS); manifests live in memory, blobs
    /// under [`TestRegistry::storage_dir`].
    Ggcr,
}

impl Kind {
    /// The distribution implementations, for tests that must pass against each.
    pub const ALL: [Kind; 2] = [Kind::Distribution2, Kind::Distribution3];
    /// Every implementation, the one with the referrers API included.
    pub const EVERY: [Kind; 3] = [Kind::Distribution2, Kind::Distribution3, Kind::Ggcr];

    /// Whether it serves the OCI 1.1 referrers API.
    pub fn has_referrers_api(self) -> bool {
        self == Kind::Ggcr
    }

    /// The binary: `docker-registry` for 2.8; for v3 `$OCIGO_REGISTRY_V3`,
    /// else the one `ensure_distribution_v3` caches.
    pub fn binary(self) -> PathBuf {
        match self {
            Kind::Distribution2 => PathBuf::from(REGISTRY_BIN),
            Kind::Distribution3 => std::env::var_os("OCIGO_REGISTRY_V3")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| ci_cache().join(format!("registry-{DISTRIBUTION_V3_VERSION}"))),
            Kind::Ggcr => std::env::var_os("OCIGO_REFREGISTRY")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| ci_cache().join(format!("refregistry-{}", refregistry_hash()))),
        }
    }

    fn install_hint(self) -> String {
        match self {
            Kind::Distribution2 => "run `apt-get install -y docker-registry` (and apache2-utils \
                                    for htpasswd)"
                .to_string(),
            Kind::Distribution3 => format!(
                "run scripts/test.sh (it builds distribution {DISTRIBUTION_V3_VERSION} once), or \
                 `source scripts/lib.sh && ensure_distribution_v3`, or set OCIGO_REGISTRY_V3"
            ),
            Kind::Ggcr => "run scripts/test.sh (it builds tests/refregistry when its sources \
                           change), or `source scripts/lib.sh && ensure_refregistry`, or set \
                           OCIGO_REFREGISTRY"
                .to_string(),
        }
    }
}

/// `~/.cache/ocigo-ci/bin` (or under `$XDG_CACHE_HOME`), where
/// `scripts/lib.sh` caches the Go tools it builds.
pub fn ci_cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache"))
        .join("ocigo-ci/bin")
}

/// The name `scripts/lib.sh`'s `refregistry_hash` gives the current
/// sources of tests/refregistry: the first 16 hex digits of sha256 over
/// main.go, go.mod and go.sum, concatenated.
fn refregistry_hash() -> String {
    use sha2::Digest as _;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/refregistry");
    let mut h = sha2::Sha256::new();
    for f in ["main.go", "go.mod", "go.sum"] {
        h.update(std::fs::read(dir.join(f)).expect("tests/refregistry sources"));
    }
    hex::encode(h.finalize())[..16].to_string()
}

/// A running `docker-registry serve`, killed on drop.
pub struct TestRegistry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Which implementation this is.
    pub kind: Kind,
    /// With `start_with_token`: the token service (counts its requests).
    pub token_service: Option<TokenService>,
    child: Child,
    tempdir: tempfile::TempDir,
}

impl TestRegistry {
    /// An open registry: anyone may pull and push.
    pub fn start() -> TestRegistry {
        Self::start_kind(Kind::Distribution2)
    }

    /// An open registry of the given implementation.
    pub fn start_kind(kind: Kind) -> TestRegistry {
        Self::start_full(kind, None, None, None)
    }

    /// An open registry speaking HTTPS with `pki`'s server certificate;
    /// with `require_client_cert`, only clients showing a certificate
    /// signed by `pki`'s CA get past the handshake (distribution's
    /// `http.tls.clientcas`).
    pub fn start_tls(pki: &TestPki, require_client_cert: bool) -> TestRegistry {
        Self::start_with_auth(None, None, Some((pki, require_client_cert)))
    }

    /// A registry that wants Basic auth (`auth.htpasswd`) for everything.
    pub fn start_with_htpasswd(user: &str, pass: &str) -> TestRegistry {
        Self::start_with_auth(Some((user, pass)), None, None)
    }

    /// A registry that wants Bearer tokens (`auth.token`) from a token
    /// service run by this harness. The service grants every requested
    /// action to `user:pass` (Basic), nothing to anonymous callers, and
    /// answers 401 to wrong credentials.
    pub fn start_with_token(user: &str, pass: &str) -> TestRegistry {
        Self::start_with_auth(None, Some(TokenConfig::plain(user, pass)), None)
    }

    /// A registry behind a token service shaped as Harbor's: realm
    /// `GET /service/token` (nothing else is answered), `service=harbor-registry`,
    /// tokens valid for `cfg.lifetime` seconds (Harbor: 1800; see
    /// [`TokenConfig::harbor`]). Also answers the OAuth2 refresh-token grant
    /// (`POST`, `grant_type=refresh_token`) for `cfg.refresh_token`, as
    /// docker's identity tokens use.
    pub fn start_harbor(cfg: TokenConfig) -> TestRegistry {
        Self::start_with_auth(None, Some(cfg), None)
    }

    /// The registry's root directory on disk.
    pub fn storage_dir(&self) -> PathBuf {
        self.tempdir.path().join("storage")
    }

    /// What the registry logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.tempdir.path().join("registry.log")).unwrap_or_default()
    }

    fn start_with_auth(
        htpasswd: Option<(&str, &str)>,
        token: Option<TokenConfig>,
        tls: Option<(&TestPki, bool)>,
    ) -> TestRegistry {
        Self::start_full(Kind::Distribution2, htpasswd, token, tls)
    }

    fn start_full(
        kind: Kind,
        htpasswd: Option<(&str, &str)>,
        token: Option<TokenConfig>,
        tls: Option<(&TestPki, bool)>,
    ) -> TestRegistry {
        let bin = kind.binary();
        if !bin.is_file() {
            panic!(
                "{} is not there; the registry tests need it: {}",
                bin.display(),
                kind.install_hint()
            );
        }
        let tempdir = tempfile::tempdir().expect("tempdir");
        let dir = tempdir.path();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        if kind == Kind::Ggcr {
            assert!(
                htpasswd.is_none() && token.is_none() && tls.is_none(),
                "tests/refregistry serves anonymous plain HTTP only"
            );
            return Self::start_refregistry(&bin, tempdir, addr);
        }
        let mut auth = String::new();
        if let Some((user, pass)) = htpasswd {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, pass])
                .output()
                .expect("htpasswd (apt-get install -y apache2-utils)");
            assert!(
                out.status.success(),
                "htpasswd failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let path = dir.join("htpasswd");
            std::fs::write(&path, &out.stdout).unwrap();
            auth = format!(
                "auth:\n  htpasswd:\n    realm: ocigo-test\n    path: {}\n",
                path.display()
            );
        }
        let mut token_service = None;
        if let Some(cfg) = token {
            let (path, service_name) = (cfg.path, cfg.service);
            let realm_host = cfg.realm_host.clone();
            let service = TokenService::start(dir, cfg);
            let port = service.addr.rsplit_once(':').unwrap().1;
            let realm_addr = match realm_host {
                Some(h) => format!("{h}:{port}"),
                None => service.addr.clone(),
            };
            auth = format!(
                "auth:\n  token:\n    realm: http://{realm_addr}{path}\n    service: {}\n    \
                 issuer: {}\n    rootcertbundle: {}\n",
                service_name,
                TokenService::ISSUER,
                dir.join("token-cert.pem").display()
            );
            token_service = Some(service);
        }
        let mut tls_config = String::new();
        if let Some((pki, require_client_cert)) = tls {
            tls_config = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                pki.server_cert.display(),
                pki.server_key.display()
            );
            if require_client_cert {
                tls_config.push_str(&format!("    clientcas:\n      - {}\n", pki.ca.display()));
            }
        }
        let config = format!(
            "version: 0.1\n\
             log:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {addr}\n{tls_config}\
             {auth}",
            dir.join("storage").display()
        );
        let config_path = dir.join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new(&bin)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            // v3 exports traces over OTLP unless told not to.
            .env("OTEL_TRACES_EXPORTER", "none")
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut reg = TestRegistry {
            addr,
            kind,
            token_service,
            child,
            tempdir,
        };
        if tls.is_some() {
            reg.wait_listening();
        } else {
            reg.wait_ready();
        }
        reg
    }

    fn start_refregistry(bin: &Path, tempdir: tempfile::TempDir, addr: String) -> TestRegistry {
        let dir = tempdir.path();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new(bin)
            .arg("-addr")
            .arg(&addr)
            .arg("-blobs")
            .arg(dir.join("storage"))
            .arg("-accesslog")
            .arg(dir.join("access.log"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut reg = TestRegistry {
            addr,
            kind: Kind::Ggcr,
            token_service: None,
            child,
            tempdir,
        };
        reg.wait_ready();
        reg
    }

    /// For tests/refregistry: one line per request so far, distribution's
    /// access-log shape (`... "GET /v2/... HTTP/1.1" 200`).
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.tempdir.path().join("access.log")).unwrap_or_default()
    }

    /// For a TLS registry (whose handshake may want a client certificate):
    /// waits until its port accepts connections.
    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&self.addr).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the registry ({:?}) exited ({status}) before listening; its log:\n{}",
                    self.kind,
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the registry ({:?}) did not listen on {} within 10 s; its log:\n{}",
                self.kind,
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let url = format!("http://{}/v2/", self.addr);
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(2)))
            .proxy(None)
            .build()
            .new_agent();
        loop {
            if let Ok(r) = agent.get(&url).call()
                && matches!(r.status().as_u16(), 200 | 401)
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the registry ({:?}) exited ({status}) before answering; its log:\n{}",
                    self.kind,
                    self.log()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "the registry ({:?}) did not answer GET {url} within 10 s; its log:\n{}",
                    self.kind,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A directory holding a docker `config.json` with Basic credentials for
/// `host` (`auths.<host>.auth` = base64 of `user:pass`). Pass the directory
/// (or its `config.json`) as `RegistryOptions::docker_config`.
pub fn docker_config_with(host: &str, user: &str, pass: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let auth = STANDARD.encode(format!("{user}:{pass}"));
    let config = serde_json::json!({ "auths": { host: { "auth": auth } } });
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    dir
}

/// Harbor's token service name (`service=` in its challenge).
pub const HARBOR_SERVICE: &str = "harbor-registry";

/// distribution accepts a token until 60 s after its `exp` claim (clock
/// skew leeway), so a token meant to last N seconds says `exp` = now + N - 60.
const REGISTRY_EXP_LEEWAY: u64 = 60;

/// How a [`TokenService`] behaves.
pub struct TokenConfig {
    /// The realm's path: `/token`, or Harbor's `/service/token`.
    pub path: &'static str,
    /// The `service` the registry names and the token's audience.
    pub service: &'static str,
    pub user: String,
    pub pass: String,
    /// Seconds a token is good for.
    pub lifetime: u64,
    /// What `expires_in` says (default: `lifetime`); a lie makes the
    /// registry refuse a token the client still trusts.
    pub expires_in: Option<u64>,
    /// The host name the realm URL uses (default 127.0.0.1).
    pub realm_host: Option<String>,
    /// Accepted by the refresh-token grant (identity tokens).
    pub refresh_token: Option<String>,
}

impl TokenConfig {
    fn plain(user: &str, pass: &str) -> TokenConfig {
        TokenConfig {
            path: "/token",
            service: TokenService::SERVICE,
            user: user.to_string(),
            pass: pass.to_string(),
            lifetime: 300,
            expires_in: None,
            realm_host: None,
            refresh_token: None,
        }
    }

    /// Harbor's shape: `/service/token`, `service=harbor-registry`, 30-minute tokens.
    pub fn harbor(user: &str, pass: &str) -> TokenConfig {
        TokenConfig {
            path: "/service/token",
            service: HARBOR_SERVICE,
            lifetime: 1800,
            ..TokenConfig::plain(user, pass)
        }
    }
}

/// A token service in the style of Harbor's: `GET /token?service=&scope=`
/// with optional Basic auth, answering `{"token", "expires_in"}` with a JWT
/// (ES256, `x5c` header) that distribution verifies against the
/// certificate in its `rootcertbundle`.
pub struct TokenService {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Token requests answered so far (any outcome).
    pub requests: Arc<AtomicUsize>,
    /// Every token handed out, for tests that check none leaks.
    pub issued: Arc<std::sync::Mutex<Vec<String>>>,
    /// The scopes of every token handed out (space-separated, as asked).
    pub scopes: Arc<std::sync::Mutex<Vec<String>>>,
    /// Stops serving when dropped.
    _server: http::Server,
}

impl TokenService {
    pub const SERVICE: &'static str = "ocigo-test-registry";
    pub const ISSUER: &'static str = "ocigo-test-issuer";

    /// Writes `token-key.pem` and `token-cert.pem` into `dir` and serves.
    fn start(dir: &Path, cfg: TokenConfig) -> TokenService {
        let key_path = dir.join("token-key.pem");
        let cert_path = dir.join("token-cert.pem");
        run(Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
            ])
            .arg(&key_path));
        run(Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-new",
                "-sha256",
                "-days",
                "2",
                "-subj",
                "/CN=ocigo-test-token",
            ])
            .arg("-key")
            .arg(&key_path)
            .arg("-out")
            .arg(&cert_path));
        let key_der = pem_body(&std::fs::read_to_string(&key_path).unwrap());
        let cert_der = pem_body(&std::fs::read_to_string(&cert_path).unwrap());
        use p256::pkcs8::DecodePrivateKey;
        let key = p256::ecdsa::SigningKey::from_pkcs8_der(&key_der).expect("P-256 PKCS#8 key");
        let requests = Arc::new(AtomicUsize::new(0));
        let requests2 = requests.clone();
        let issued = Arc::new(std::sync::Mutex::new(Vec::new()));
        let issued2 = issued.clone();
        let scopes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let scopes2 = scopes.clone();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = http::serve(listener, move |req| {
            requests2.fetch_add(1, Ordering::SeqCst);
            token_reply(req, &key, &cert_der, &cfg, &issued2, &scopes2)
        });
        TokenService {
            addr: server.addr.clone(),
            requests,
            issued,
            scopes,
            _server: server,
        }
    }

    pub fn request_count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The DER inside a single-block PEM file.
fn pem_body(pem: &str) -> Vec<u8> {
    let b64: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    STANDARD.decode(b64.trim()).expect("PEM base64")
}

fn token_reply(
    req: &http::Request,
    key: &p256::ecdsa::SigningKey,
    cert_der: &[u8],
    cfg: &TokenConfig,
    issued: &std::sync::Mutex<Vec<String>>,
    scopes_log: &std::sync::Mutex<Vec<String>>,
) -> http::Reply {
    let json = |status: u16, body: String| {
        http::reply(status, &[("Content-Type", "application/json")], body)
    };
    let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
    if path != cfg.path {
        return json(404, r#"{"errors":[{"code":"NOT_FOUND"}]}"#.into());
    }
    // GET: the query. POST (OAuth2 refresh-token grant): the form body.
    let form = if req.method == "POST" {
        String::from_utf8_lossy(&req.body).into_owned()
    } else {
        query.to_string()
    };
    let mut scopes = Vec::new();
    let (mut service, mut grant, mut refresh) = (String::new(), String::new(), String::new());
    for pair in form.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v);
        match k {
            "scope" => scopes.extend(v.split(' ').filter(|s| !s.is_empty()).map(str::to_string)),
            "service" => service = v,
            "grant_type" => grant = v,
            "refresh_token" => refresh = v,
            _ => {}
        }
    }
    let expected = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", cfg.user, cfg.pass))
    );
    let refused = || {
        json(
            401,
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#.into(),
        )
    };
    if service != cfg.service {
        return json(
            400,
            r#"{"errors":[{"code":"DENIED","message":"unknown service"}]}"#.into(),
        );
    }
    let granted = if req.method == "POST" {
        if grant != "refresh_token" || cfg.refresh_token.as_deref() != Some(refresh.as_str()) {
            return refused();
        }
        true
    } else {
        match req.header("authorization") {
            Some(a) if a != expected => return refused(),
            a => a.is_some(),
        }
    };
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter(|_| granted)
        .filter_map(|s| {
            let mut parts = s.splitn(3, ':');
            let (t, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            Some(serde_json::json!({
                "type": t, "name": name,
                "actions": actions.split(',').collect::<Vec<_>>(),
            }))
        })
        .collect();
    let subject = if granted { cfg.user.as_str() } else { "" };
    let token = jwt(key, cert_der, subject, &access, cfg);
    issued.lock().unwrap().push(token.clone());
    scopes_log.lock().unwrap().push(scopes.join(" "));
    let expires_in = cfg.expires_in.unwrap_or(cfg.lifetime);
    let body = if req.method == "POST" {
        serde_json::json!({"access_token": token, "expires_in": expires_in})
    } else {
        serde_json::json!({"token": token, "access_token": token, "expires_in": expires_in})
    };
    json(200, body.to_string())
}

fn jwt(
    key: &p256::ecdsa::SigningKey,
    cert_der: &[u8],
    subject: &str,
    access: &[serde_json::Value],
    cfg: &TokenConfig,
) -> String {
    use p256::ecdsa::signature::Signer as _;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header =
        serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [STANDARD.encode(cert_der)]});
    let claims = serde_json::json!({
        "iss": TokenService::ISSUER,
        "sub": subject,
        "aud": cfg.service,
        "exp": now + cfg.lifetime - REGISTRY_EXP_LEEWAY,
        "nbf": now - 10,
        "iat": now - 10,
        "jti": format!("{now}-{}", rand_suffix()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig: p256::ecdsa::Signature = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

fn rand_suffix() -> u64 {
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::SeqCst) as u64
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The DNS name the test certificates carry besides `localhost` and
/// 127.0.0.1; it resolves nowhere, so only a proxy can reach it.
pub const TEST_HOST_NAME: &str = "registry.ocigo.test";

/// A private certificate authority and what it signed, as PEM files in a
/// temporary directory: a server certificate for `localhost`, 127.0.0.1 and
/// [`TEST_HOST_NAME`], and a client certificate (for mutual TLS). EC P-256
/// keys in PKCS#8, made with the openssl CLI.
pub struct TestPki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestPki {
    pub fn new() -> TestPki {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = |n: &str| dir.path().join(n);
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        run(Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-sha256",
                "-days",
                "2",
                "-subj",
                "/CN=ocigo test CA",
            ])
            .args(ec)
            .args([
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ])
            .arg("-keyout")
            .arg(p("ca.key"))
            .arg("-out")
            .arg(p("ca.crt")));
        let sign = |name: &str, cn: &str, ext: &str| {
            std::fs::write(p(&format!("{name}.ext")), ext).unwrap();
            run(Command::new("openssl")
                .args(["req", "-new", "-subj", &format!("/CN={cn}")])
                .args(ec)
                .arg("-keyout")
                .arg(p(&format!("{name}.key")))
                .arg("-out")
                .arg(p(&format!("{name}.csr"))));
            run(Command::new("openssl")
                .args(["x509", "-req", "-sha256", "-days", "2", "-set_serial"])
                .arg(format!("{}", 1000 + name.len()))
                .arg("-in")
                .arg(p(&format!("{name}.csr")))
                .arg("-CA")
                .arg(p("ca.crt"))
                .arg("-CAkey")
                .arg(p("ca.key"))
                .arg("-extfile")
                .arg(p(&format!("{name}.ext")))
                .arg("-out")
                .arg(p(&format!("{name}.crt"))));
        };
        sign(
            "server",
            "ocigo test registry",
            &format!(
                "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n\
                 subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:{TEST_HOST_NAME}\n"
            ),
        );
        sign(
            "client",
            "ocigo test client",
            "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
        );
        TestPki {
            ca: p("ca.crt"),
            server_cert: p("server.crt"),
            server_key: p("server.key"),
            client_cert: p("client.crt"),
            client_key: p("client.key"),
            _dir: dir,
        }
    }

    /// A certs.d base holding `HOST/ca.crt` and, with `client`, the client
    /// pair as `HOST/client.cert` + `HOST/client.key` (docker's names).
    pub fn certs_d(&self, host: &str, ca: bool, client: bool) -> tempfile::TempDir {
        let base = tempfile::tempdir().expect("tempdir");
        let dir = base.path().join(host);
        std::fs::create_dir_all(&dir).unwrap();
        if ca {
            std::fs::copy(&self.ca, dir.join("ca.crt")).unwrap();
        }
        if client {
            std::fs::copy(&self.client_cert, dir.join("client.cert")).unwrap();
            std::fs::copy(&self.client_key, dir.join("client.key")).unwrap();
        }
        base
    }
}
