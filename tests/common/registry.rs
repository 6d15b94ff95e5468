//! Real registries for the integration tests: Debian's `docker-registry`
//! (CNCF distribution 2.8.2, the engine Harbor embeds) started with a config
//! of our own on a free port of 127.0.0.1, optionally behind htpasswd (Basic)
//! or behind a token service of our own (Bearer, the way Harbor does it).
//! Also writes docker `config.json` files holding credentials.

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

/// A running `docker-registry serve`, killed on drop.
pub struct TestRegistry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// With `start_with_token`: the token service (counts its requests).
    pub token_service: Option<TokenService>,
    child: Child,
    tempdir: tempfile::TempDir,
}

impl TestRegistry {
    /// An open registry: anyone may pull and push.
    pub fn start() -> TestRegistry {
        Self::start_with_auth(None, None)
    }

    /// A registry that wants Basic auth (`auth.htpasswd`) for everything.
    pub fn start_with_htpasswd(user: &str, pass: &str) -> TestRegistry {
        Self::start_with_auth(Some((user, pass)), None)
    }

    /// A registry that wants Bearer tokens (`auth.token`) from a token
    /// service run by this harness. The service grants every requested
    /// action to `user:pass` (Basic), nothing to anonymous callers, and
    /// answers 401 to wrong credentials.
    pub fn start_with_token(user: &str, pass: &str) -> TestRegistry {
        Self::start_with_auth(None, Some((user, pass)))
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
        token: Option<(&str, &str)>,
    ) -> TestRegistry {
        if !Path::new(REGISTRY_BIN).exists() {
            panic!(
                "{REGISTRY_BIN} is not installed; the registry tests need it: run \
                 `apt-get install -y docker-registry` (and apache2-utils for htpasswd)"
            );
        }
        let tempdir = tempfile::tempdir().expect("tempdir");
        let dir = tempdir.path();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
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
        if let Some((user, pass)) = token {
            let service = TokenService::start(dir, user, pass);
            auth = format!(
                "auth:\n  token:\n    realm: http://{}/token\n    service: {}\n    issuer: {}\n    \
                 rootcertbundle: {}\n",
                service.addr,
                TokenService::SERVICE,
                TokenService::ISSUER,
                dir.join("token-cert.pem").display()
            );
            token_service = Some(service);
        }
        let config = format!(
            "version: 0.1\n\
             log:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {addr}\n\
             {auth}",
            dir.join("storage").display()
        );
        let config_path = dir.join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {REGISTRY_BIN}: {e}"));
        let mut reg = TestRegistry {
            addr,
            token_service,
            child,
            tempdir,
        };
        reg.wait_ready();
        reg
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
                    "docker-registry exited ({status}) before answering; its log:\n{}",
                    self.log()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "docker-registry did not answer GET {url} within 10 s; its log:\n{}",
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

/// A token service in the style of Harbor's: `GET /token?service=&scope=`
/// with optional Basic auth, answering `{"token", "expires_in"}` with a JWT
/// (ES256, `x5c` header) that distribution verifies against the
/// certificate in its `rootcertbundle`.
pub struct TokenService {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Token requests answered so far (any outcome).
    pub requests: Arc<AtomicUsize>,
    /// Stops serving when dropped.
    _server: http::Server,
}

impl TokenService {
    pub const SERVICE: &'static str = "ocigo-test-registry";
    pub const ISSUER: &'static str = "ocigo-test-issuer";

    /// Writes `token-key.pem` and `token-cert.pem` into `dir` and serves.
    fn start(dir: &Path, user: &str, pass: &str) -> TokenService {
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
        let expected = format!("Basic {}", STANDARD.encode(format!("{user}:{pass}")));
        let user = user.to_string();
        let requests2 = requests.clone();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = http::serve(listener, move |req| {
            requests2.fetch_add(1, Ordering::SeqCst);
            token_reply(req, &key, &cert_der, &expected, &user)
        });
        TokenService {
            addr: server.addr.clone(),
            requests,
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
    expected_auth: &str,
    user: &str,
) -> http::Reply {
    let query = req.target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let mut scopes = Vec::new();
    let mut service = String::new();
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v);
        match k {
            "scope" => scopes.push(v),
            "service" => service = v,
            _ => {}
        }
    }
    let (status, body) = match req.header("authorization") {
        Some(a) if a != expected_auth => (
            401,
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#.to_string(),
        ),
        _ if service != TokenService::SERVICE => (
            400,
            r#"{"errors":[{"code":"DENIED","message":"unknown service"}]}"#.to_string(),
        ),
        auth => {
            let granted = auth.is_some();
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
            let subject = if granted { user } else { "" };
            let token = jwt(key, cert_der, subject, &access);
            (
                200,
                serde_json::json!({"token": token, "expires_in": 300}).to_string(),
            )
        }
    };
    http::reply(status, &[("Content-Type", "application/json")], body)
}

fn jwt(
    key: &p256::ecdsa::SigningKey,
    cert_der: &[u8],
    subject: &str,
    access: &[serde_json::Value],
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
        "aud": TokenService::SERVICE,
        "exp": now + 300,
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
