//! The registry client: speaks the OCI distribution API (manifests, blobs,
//! uploads, cross-repository mounts, tag lists) to one repository of a
//! registry, and does the registry's authentication (Basic, and Bearer
//! tokens from the registry's token service, as Harbor uses).
//!
//! Owns: HTTP to registries, the `WWW-Authenticate` challenge and token
//! flow, reading credentials from the docker config (`config.json` and its
//! credential helpers), and turning HTTP failures into classified errors.
//! Credentials never appear in an error message or a log line.
//!
//! Must not: know about Go modules or the ocigo artifact layout (that is
//! `artifact`), touch the local content store, or write anything to disk; the
//! only file it reads is the docker config. Blobs are streamed both ways and
//! never held whole in memory.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Result;
use base64::Engine as _;
use serde::Deserialize;

use crate::error::{Kind, fail};
use crate::oci::{
    Descriptor, Digest, FetchedManifest, MAX_MANIFEST_BYTES, MEDIA_TYPE_DOCKER_LIST,
    MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST, Repository, VerifyingReader,
    io_error_is_integrity,
};

/// Every manifest media type ocigo reads. Distribution answers 404 to a
/// manifest request whose `Accept` does not list the stored type.
const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a single socket read or write may stall (not a whole-body limit:
/// large blobs take as long as they take).
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Whole-request limit for small requests (probe, token, manifest, tags).
const SMALL_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Blobs up to this size are fetched under SMALL_REQUEST_TIMEOUT.
const SMALL_BLOB_BYTES: u64 = 1024 * 1024;
/// How much of an error response body is read to find the registry's message.
const MAX_ERROR_BODY: u64 = 64 * 1024;
/// Tag lists are JSON held in memory; refuse absurd pages.
const MAX_TAGS_PAGE_BYTES: u64 = 32 * 1024 * 1024;
/// Tokens are refreshed this long before the registry says they expire.
const TOKEN_MARGIN: Duration = Duration::from_secs(30);

/// How to reach a registry.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Speak plain HTTP to a registry that is not on localhost.
    /// (`localhost`, `127.0.0.1` and `[::1]` always get plain HTTP.)
    pub plain_http: bool,
    /// The docker config to read credentials from: a `config.json` file or a
    /// directory holding one. Default: `$DOCKER_CONFIG/config.json`, else
    /// `~/.docker/config.json`.
    pub docker_config: Option<PathBuf>,
}

/// One repository of an OCI registry (`host/repository`).
///
/// Safe to share between threads: the auth state (challenge, tokens) is
/// behind a mutex, requests themselves run in parallel.
pub struct RegistryRepository {
    host: String,
    repository: String,
    /// `http://host` or `https://host`.
    base: String,
    plain_http: bool,
    agent: ureq::Agent,
    config_path: Option<PathBuf>,
    auth: Mutex<AuthState>,
}

impl fmt::Debug for RegistryRepository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryRepository")
            .field("base", &self.base)
            .field("repository", &self.repository)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct AuthState {
    /// `/v2/` was asked once; its challenge (if any) is in `challenge`.
    probed: bool,
    challenge: Option<Challenge>,
    /// Loaded on the first challenge, then kept for the client's lifetime.
    credentials: Option<Credentials>,
    /// Bearer tokens by the scope list they were issued for.
    tokens: HashMap<String, Token>,
}

struct Token {
    value: String,
    expires: Instant,
}

enum Secret {
    Anonymous,
    Basic { user: String, pass: String },
    IdentityToken(String),
}

struct Credentials {
    secret: Secret,
    /// Where the credentials came from, for messages. Never the secret.
    source: String,
}

/// What a request needs to be allowed to do (token scopes).
#[derive(Clone, Copy)]
enum Access<'a> {
    Pull,
    Push,
    /// Push here and pull from another repository of the same registry.
    Mount(&'a str),
}

enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
}

/// One parsed `WWW-Authenticate` challenge: a lower-cased scheme and its
/// parameters (names lower-cased, values unquoted).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Challenge {
    scheme: String,
    params: Vec<(String, String)>,
}

impl Challenge {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl RegistryRepository {
    /// A client for `host/repository`. Does no I/O: the registry is first
    /// asked (`GET /v2/`) on the first request.
    pub fn open(host: &str, repository: &str, opts: &RegistryOptions) -> Result<Self> {
        if host.is_empty() || host.contains('/') || host.contains('@') {
            return Err(fail(
                Kind::Usage,
                format!("{host:?} is not a registry host (want HOST or HOST:PORT)"),
            ));
        }
        if !crate::oci::is_repository_name(repository) {
            return Err(fail(
                Kind::Usage,
                format!(
                    "{repository:?} is not a repository name: use lower-case letters, digits, \
                     '.', '_', '-' and '/'"
                ),
            ));
        }
        let config_path = match &opts.docker_config {
            Some(p) => {
                let p = if p.is_dir() {
                    p.join("config.json")
                } else {
                    p.clone()
                };
                if !p.is_file() {
                    return Err(fail(
                        Kind::Usage,
                        format!("docker config {} does not exist", p.display()),
                    ));
                }
                Some(p)
            }
            None => default_docker_config(),
        };
        let plain_http = opts.plain_http || is_loopback_host(host);
        let scheme = if plain_http { "http" } else { "https" };
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(CONNECT_TIMEOUT)
            .timeout_read(IDLE_TIMEOUT)
            .timeout_write(IDLE_TIMEOUT)
            .user_agent(concat!("ocigo/", env!("CARGO_PKG_VERSION")))
            // Redirects (blob GETs to object storage) never carry our
            // Authorization header.
            .redirect_auth_headers(ureq::RedirectAuthHeaders::Never)
            .redirects(5)
            .build();
        Ok(RegistryRepository {
            host: host.to_string(),
            repository: repository.to_string(),
            base: format!("{scheme}://{host}"),
            plain_http,
            agent,
            config_path,
            auth: Mutex::new(AuthState::default()),
        })
    }

    /// Tries to mount `digest` from another repository of the same registry
    /// (no upload). `Ok(true)`: mounted. `Ok(false)`: not mounted, and the
    /// caller should push: the registry declined (blob unknown there, or no
    /// pull permission on `from_repository`; an upload it opened instead is
    /// cancelled), or it refused the mount request itself (unsupported:
    /// 404/405; not readable: 401/403). Errors are transport failures and
    /// 5xx answers only.
    pub fn mount_blob(&self, digest: &Digest, from_repository: &str) -> Result<bool> {
        let url = format!(
            "{}/blobs/uploads/?mount={}&from={}",
            self.api(),
            digest,
            from_repository
        );
        let what = format!("mount blob {digest} from {from_repository}");
        let resp = self.request(
            "POST",
            &url,
            Access::Mount(from_repository),
            &[("Content-Length", "0")],
            Payload::Empty,
            Some(SMALL_REQUEST_TIMEOUT),
        )?;
        match resp.status() {
            201 => Ok(true),
            202 => {
                if let Some(loc) = resp.header("location") {
                    let upload = join_url(&url, loc);
                    // Best effort: an abandoned upload is garbage-collected anyway.
                    let _ = self.request(
                        "DELETE",
                        &upload,
                        Access::Push,
                        &[],
                        Payload::Empty,
                        Some(SMALL_REQUEST_TIMEOUT),
                    );
                }
                Ok(false)
            }
            500..=599 => Err(self.status_error(resp, &what)),
            // Any other answer (404/405: no mount support; 401/403: the
            // source is not readable; ...) means "not mounted": mounting is
            // optional for a registry, and the ordinary upload that follows
            // either works or fails with its own clear error.
            _ => Ok(false),
        }
    }

    /// Is `url` (a request's final URL, after redirects) on the registry's
    /// own scheme, host and port?
    fn is_registry_origin(&self, url: &str) -> bool {
        same_origin(url, &self.base)
    }

    /// `scheme://host/v2/<repository>`.
    fn api(&self) -> String {
        format!("{}/v2/{}", self.base, self.repository)
    }

    fn lock(&self) -> MutexGuard<'_, AuthState> {
        // A panic while holding the lock leaves the state usable.
        self.auth.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends a request with a small (or no) body, authenticating as needed:
    /// on a 401 it answers the challenge once and retries. Returns the
    /// response whatever its status; transport failures are errors.
    fn request(
        &self,
        method: &str,
        url: &str,
        access: Access<'_>,
        headers: &[(&str, &str)],
        payload: Payload<'_>,
        timeout: Option<Duration>,
    ) -> Result<ureq::Response> {
        self.ensure_probed()?;
        let mut auth = self.authorization(url, access, None, false)?;
        let mut retried = false;
        loop {
            let mut req = self.agent.request(method, url);
            for (k, v) in headers {
                req = req.set(k, v);
            }
            if let Some(a) = &auth {
                req = req.set("Authorization", a);
            }
            if let Some(t) = timeout {
                req = req.timeout(t);
            }
            let result = match payload {
                Payload::Empty => req.call(),
                Payload::Bytes(b) => req.send_bytes(b),
            };
            let resp = self.response_or_error(method, url, result)?;
            // A 401 from wherever the registry redirected to (object
            // storage, a CDN) is not the registry's challenge: it is never
            // answered with credentials, and the caller reports it.
            if resp.status() == 401 && !retried && self.is_registry_origin(resp.get_url()) {
                retried = true;
                if let Some(new_auth) = self.reauthorize(&resp, url, access, auth.as_deref())? {
                    auth = Some(new_auth);
                    continue;
                }
            }
            return Ok(resp);
        }
    }

    /// Sends a streamed body. Cannot retry (the stream is consumed), so the
    /// auth must already be settled by an earlier request.
    fn request_streaming(
        &self,
        method: &str,
        url: &str,
        access: Access<'_>,
        headers: &[(&str, &str)],
        body: impl Read,
    ) -> Result<ureq::Response> {
        self.ensure_probed()?;
        let auth = self.authorization(url, access, None, false)?;
        let mut req = self.agent.request(method, url);
        for (k, v) in headers {
            req = req.set(k, v);
        }
        if let Some(a) = &auth {
            req = req.set("Authorization", a);
        }
        let result = req.send(body);
        self.response_or_error(method, url, result)
    }

    fn response_or_error(
        &self,
        method: &str,
        url: &str,
        result: std::result::Result<ureq::Response, ureq::Error>,
    ) -> Result<ureq::Response> {
        match result {
            Ok(resp) => Ok(resp),
            Err(ureq::Error::Status(_, resp)) => Ok(resp),
            Err(ureq::Error::Transport(t)) => Err(self.transport_error(method, url, &t)),
        }
    }

    fn transport_error(&self, method: &str, url: &str, t: &ureq::Transport) -> anyhow::Error {
        // A failure of a stream we were sending (a VerifyingReader over the
        // caller's content) keeps its integrity class.
        if let Some(io_err) =
            std::error::Error::source(t).and_then(|s| s.downcast_ref::<io::Error>())
            && io_error_is_integrity(io_err)
        {
            return fail(
                Kind::Integrity,
                format!("{method} {url}: the content sent does not match its descriptor: {io_err}"),
            );
        }
        let mut why = t.kind().to_string();
        if let Some(m) = t.message() {
            // ureq quotes a bad redirect's Location, which may be a
            // pre-signed URL: never repeat it.
            let m = if m.starts_with("Bad redirection") {
                "the redirect's Location is not a valid URL"
            } else {
                m
            };
            why.push_str(": ");
            why.push_str(m);
        }
        if let Some(s) = std::error::Error::source(t) {
            why.push_str(": ");
            why.push_str(&s.to_string());
        }
        // Failed after a redirect elsewhere: name only that host (its URL
        // may carry a pre-signed query).
        if let Some(failed) = t.url().map(|u| u.as_str())
            && !same_origin(failed, url)
        {
            return fail(
                Kind::Remote,
                format!(
                    "{method} {url}: the request was redirected to {}, which failed: {why}",
                    url_authority(failed).unwrap_or("?")
                ),
            );
        }
        let hint = if self.plain_http {
            format!(
                "Is the registry running at {}, and does it speak plain HTTP?",
                self.host
            )
        } else {
            format!(
                "Is the registry running at {}? If it speaks plain HTTP and is not on localhost, \
                 use --plain-http",
                self.host
            )
        };
        fail(
            Kind::Remote,
            format!(
                "cannot talk to registry {}: {method} {url}: {why}. {hint}",
                self.host
            ),
        )
    }

    /// Asks `GET /v2/` once per client, to learn whether and how the
    /// registry wants authentication before any request with a body.
    fn ensure_probed(&self) -> Result<()> {
        let mut state = self.lock();
        if state.probed {
            return Ok(());
        }
        let url = format!("{}/v2/", self.base);
        let result = self.agent.get(&url).timeout(SMALL_REQUEST_TIMEOUT).call();
        let resp = self.response_or_error("GET", &url, result)?;
        if resp.status() == 401 && self.is_registry_origin(resp.get_url()) {
            state.challenge = pick_challenge(&resp);
        }
        state.probed = true;
        Ok(())
    }

    /// The Authorization header for a request to `url`, if the registry
    /// asked for authentication. Only ever sent to the registry's own origin.
    fn authorization(
        &self,
        url: &str,
        access: Access<'_>,
        extra_scope: Option<&str>,
        refresh: bool,
    ) -> Result<Option<String>> {
        if !same_origin(url, &self.base) {
            return Ok(None);
        }
        let mut state = self.lock();
        let Some(challenge) = state.challenge.clone() else {
            return Ok(None);
        };
        if state.credentials.is_none() {
            state.credentials = Some(self.load_credentials()?);
        }
        match challenge.scheme.as_str() {
            "basic" => match &state.credentials.as_ref().map(|c| &c.secret) {
                Some(Secret::Basic { user, pass }) => Ok(Some(basic_header(user, pass))),
                _ => Ok(None),
            },
            "bearer" => {
                let mut scopes = self.scopes(access);
                if let Some(s) = extra_scope
                    && !s.is_empty()
                    && !scopes.iter().any(|x| x == s)
                {
                    scopes.push(s.to_string());
                }
                let key = scopes.join(" ");
                if !refresh
                    && let Some(t) = state.tokens.get(&key)
                    && Instant::now() + TOKEN_MARGIN < t.expires
                {
                    return Ok(Some(format!("Bearer {}", t.value)));
                }
                let token = self.fetch_token(&challenge, &scopes, &state)?;
                let header = format!("Bearer {}", token.value);
                state.tokens.insert(key, token);
                Ok(Some(header))
            }
            other => Err(fail(
                Kind::Remote,
                format!(
                    "registry {} asks for {other:?} authentication; ocigo speaks Basic and Bearer",
                    self.host
                ),
            )),
        }
    }

    /// After a 401: learns the challenge from the response and returns a new
    /// Authorization header worth retrying with, or None when retrying with
    /// the same (or no) credentials cannot help.
    fn reauthorize(
        &self,
        resp: &ureq::Response,
        url: &str,
        access: Access<'_>,
        sent: Option<&str>,
    ) -> Result<Option<String>> {
        // Only the registry's own answers set how to authenticate to it.
        if !self.is_registry_origin(resp.get_url()) {
            return Ok(None);
        }
        let challenge = pick_challenge(resp);
        let extra_scope = challenge
            .as_ref()
            .and_then(|c| c.param("scope"))
            .map(str::to_string);
        {
            let mut state = self.lock();
            match challenge {
                Some(c) => state.challenge = Some(c),
                None if state.challenge.is_none() => return Ok(None),
                None => {}
            }
        }
        let header = self.authorization(url, access, extra_scope.as_deref(), true)?;
        match header {
            Some(h) if Some(h.as_str()) != sent => Ok(Some(h)),
            _ => Ok(None),
        }
    }

    fn scopes(&self, access: Access<'_>) -> Vec<String> {
        let repo = &self.repository;
        match access {
            Access::Pull => vec![format!("repository:{repo}:pull")],
            Access::Push => vec![format!("repository:{repo}:pull,push")],
            Access::Mount(from) => vec![
                format!("repository:{repo}:pull,push"),
                format!("repository:{from}:pull"),
            ],
        }
    }

    /// Gets a Bearer token from the challenge's realm for `scopes`.
    fn fetch_token(
        &self,
        challenge: &Challenge,
        scopes: &[String],
        state: &AuthState,
    ) -> Result<Token> {
        let creds = state
            .credentials
            .as_ref()
            .expect("credentials are loaded before a token is fetched");
        let realm = challenge
            .param("realm")
            .filter(|r| !r.is_empty())
            .ok_or_else(|| {
                fail(
                    Kind::Remote,
                    format!(
                        "registry {} asks for a Bearer token but names no realm to get it from",
                        self.host
                    ),
                )
            })?;
        let Some(realm_origin) = origin(realm) else {
            return Err(fail(
                Kind::Remote,
                format!(
                    "registry {} names a token realm that is not a URL: {realm}",
                    self.host
                ),
            ));
        };
        if realm_origin.scheme == "http" {
            let realm_host = url_authority(realm).unwrap_or("?");
            if !self.plain_http {
                return Err(fail(
                    Kind::Remote,
                    format!(
                        "registry {} speaks HTTPS but names a token service on plain HTTP at \
                         {realm_host}; ocigo does not fetch tokens over plain HTTP for an HTTPS \
                         registry",
                        self.host
                    ),
                ));
            }
            let registry_host = origin(&self.base).map(|o| o.host).unwrap_or_default();
            let same_machine = realm_origin.host == registry_host
                || (is_loopback_host(&realm_origin.host) && is_loopback_host(&registry_host));
            if !same_machine && !matches!(creds.secret, Secret::Anonymous) {
                return Err(fail(
                    Kind::Remote,
                    format!(
                        "registry {} names a token service on another host over plain HTTP \
                         ({realm_host}); ocigo does not send {} there unencrypted",
                        self.host, creds.source
                    ),
                ));
            }
        }
        let service = challenge.param("service");
        let result = match &creds.secret {
            Secret::IdentityToken(refresh) => {
                let scope = scopes.join(" ");
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("client_id", "ocigo"),
                    ("refresh_token", refresh.as_str()),
                    ("scope", scope.as_str()),
                ];
                if let Some(s) = service {
                    form.push(("service", s));
                }
                self.agent
                    .post(realm)
                    .timeout(SMALL_REQUEST_TIMEOUT)
                    .send_form(&form)
            }
            secret => {
                let mut req = self.agent.get(realm).timeout(SMALL_REQUEST_TIMEOUT);
                if let Some(s) = service {
                    req = req.query("service", s);
                }
                for s in scopes {
                    req = req.query("scope", s);
                }
                if let Secret::Basic { user, pass } = secret {
                    req = req.set("Authorization", &basic_header(user, pass));
                }
                req.call()
            }
        };
        let method = if matches!(creds.secret, Secret::IdentityToken(_)) {
            "POST"
        } else {
            "GET"
        };
        let resp = self.response_or_error(method, realm, result)?;
        let status = resp.status();
        if status != 200 {
            let detail = error_detail(resp);
            let what = if status == 401 || status == 403 {
                "refused the credentials"
            } else {
                "failed"
            };
            return Err(fail(
                Kind::Remote,
                format!(
                    "the token service of registry {} ({realm}) {what}: HTTP {status}{detail}; \
                     using {}",
                    self.host, creds.source
                ),
            ));
        }
        #[derive(Deserialize)]
        struct TokenResponse {
            #[serde(default)]
            token: String,
            #[serde(default)]
            access_token: String,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let mut body = Vec::new();
        resp.into_reader()
            .take(1024 * 1024)
            .read_to_end(&mut body)
            .map_err(|e| {
                fail(
                    Kind::Remote,
                    format!(
                        "reading a token from {realm} for registry {}: {e}",
                        self.host
                    ),
                )
            })?;
        // The body holds the token: never echo it into a message.
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|_| {
            fail(
                Kind::Remote,
                format!(
                    "the token service of registry {} ({realm}) did not answer with a token",
                    self.host
                ),
            )
        })?;
        let value = if parsed.token.is_empty() {
            parsed.access_token
        } else {
            parsed.token
        };
        if value.is_empty() {
            return Err(fail(
                Kind::Remote,
                format!(
                    "the token service of registry {} ({realm}) answered without a token",
                    self.host
                ),
            ));
        }
        // The distribution spec: a missing expires_in means 60 seconds, and
        // no token lasts less than that.
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(60).max(60));
        Ok(Token {
            value,
            expires: Instant::now() + lifetime,
        })
    }

    /// Reads the credentials for this host from the docker config.
    fn load_credentials(&self) -> Result<Credentials> {
        let anonymous = |why: String| Credentials {
            secret: Secret::Anonymous,
            source: format!("no credentials ({why})"),
        };
        let Some(path) = &self.config_path else {
            return Ok(anonymous(
                "no docker config: neither DOCKER_CONFIG nor a home directory is set".into(),
            ));
        };
        let shown = path.display();
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(anonymous(format!("there is no docker config at {shown}")));
            }
            Err(e) => {
                return Err(fail(
                    Kind::Usage,
                    format!("cannot read docker config {shown}: {e}"),
                ));
            }
        };
        let config: serde_json::Value = serde_json::from_slice(&text).map_err(|_| {
            fail(
                Kind::Usage,
                format!("docker config {shown} is not valid JSON"),
            )
        })?;
        let helper = credential_helper(&config, &self.host);
        let helper_source = |h: &str| {
            format!(
                "credentials for {} from credential helper docker-credential-{h} (configured in \
                 {shown})",
                self.host
            )
        };
        use docker_credential::{CredentialRetrievalError as E, DockerCredential as C};
        match docker_credential::get_credential_from_reader(&text[..], &self.host) {
            Ok(C::UsernamePassword(user, pass)) => {
                let source = match &helper {
                    Some(h) => helper_source(h),
                    None => format!("user {user:?} for {} from {shown}", self.host),
                };
                Ok(Credentials {
                    secret: Secret::Basic { user, pass },
                    source,
                })
            }
            Ok(C::IdentityToken(token)) => Ok(Credentials {
                secret: Secret::IdentityToken(token),
                source: format!("the identity token for {} from {shown}", self.host),
            }),
            Err(E::NoCredentialConfigured) => {
                Ok(anonymous(format!("none for {} in {shown}", self.host)))
            }
            // Helpers answer "credentials not found" for unknown hosts.
            Err(E::HelperFailure { stdout, .. })
                if stdout
                    .to_ascii_lowercase()
                    .contains("credentials not found") =>
            {
                Ok(anonymous(format!(
                    "none for {} in credential helper docker-credential-{}",
                    self.host,
                    helper.as_deref().unwrap_or("?")
                )))
            }
            // The helper's output is not shown: it may hold a secret.
            Err(
                E::HelperFailure { .. } | E::HelperCommunicationError | E::MalformedHelperResponse,
            ) => {
                let h = helper.as_deref().unwrap_or("?");
                Err(fail(
                    Kind::Usage,
                    format!(
                        "credential helper docker-credential-{h} (configured in {shown}) failed \
                         to give credentials for {}; is it installed? Try `echo {} | \
                         docker-credential-{h} get`",
                        self.host, self.host
                    ),
                ))
            }
            Err(E::CredentialDecodingError | E::CredentialMismatchError) => Err(fail(
                Kind::Usage,
                format!(
                    "the auths entry for {} in docker config {shown} cannot be decoded (want \
                     base64 of user:password)",
                    self.host
                ),
            )),
            Err(E::ConfigNotFound | E::ConfigReadError) => Err(fail(
                Kind::Usage,
                format!("docker config {shown} is not a valid docker config"),
            )),
        }
    }

    fn credentials_source(&self) -> String {
        match &self.lock().credentials {
            Some(c) => c.source.clone(),
            None => "no credentials (the registry did not ask for any)".to_string(),
        }
    }

    /// A classified error for a response with an unexpected status.
    fn status_error(&self, resp: ureq::Response, what: &str) -> anyhow::Error {
        let status = resp.status();
        if !self.is_registry_origin(resp.get_url()) {
            return self.redirect_target_error(resp, what);
        }
        let detail = error_detail(resp);
        let location = self.location();
        match status {
            401 | 403 => fail(
                Kind::Remote,
                format!(
                    "registry {} refused to {what} in {location}: not permitted (HTTP \
                     {status}{detail}) using {}",
                    self.host,
                    self.credentials_source()
                ),
            ),
            404 => fail(
                Kind::NotFound,
                format!("cannot {what}: not found in {location} (HTTP 404{detail})"),
            ),
            _ => fail(
                Kind::Remote,
                format!(
                    "registry {} failed to {what} in {location}: HTTP {status}{detail}",
                    self.host
                ),
            ),
        }
    }

    /// The error for a response that came not from the registry but from
    /// where it redirected the request (object storage, a CDN). Names only
    /// that host: the URL itself may carry a pre-signed query.
    fn redirect_target_error(&self, resp: ureq::Response, what: &str) -> anyhow::Error {
        let status = resp.status();
        let store = url_authority(resp.get_url()).unwrap_or("?").to_string();
        let detail = error_detail(resp);
        let location = self.location();
        let noun = if what.contains("blob") {
            "blob store"
        } else {
            "server"
        };
        match status {
            401 | 403 => fail(
                Kind::Remote,
                format!(
                    "cannot {what} from {location}: the {noun} {store} the registry redirected \
                     to refused the request (HTTP {status}{detail}); ocigo sends no credentials \
                     there"
                ),
            ),
            404 => fail(
                Kind::NotFound,
                format!(
                    "cannot {what}: not found at the {noun} {store} the registry {} redirected \
                     to (HTTP 404{detail})",
                    self.host
                ),
            ),
            _ => fail(
                Kind::Remote,
                format!(
                    "cannot {what} from {location}: the {noun} {store} the registry redirected \
                     to failed: HTTP {status}{detail}"
                ),
            ),
        }
    }

    /// GETs a manifest's exact bytes; refuses more than MAX_MANIFEST_BYTES.
    /// Returns (media type from Content-Type, bytes, Docker-Content-Digest).
    fn get_manifest(&self, reference: &str) -> Result<(String, Vec<u8>, Option<String>)> {
        let url = format!("{}/manifests/{reference}", self.api());
        let what = format!("get manifest {reference}");
        let resp = self.request(
            "GET",
            &url,
            Access::Pull,
            &[("Accept", ACCEPT_MANIFESTS)],
            Payload::Empty,
            Some(SMALL_REQUEST_TIMEOUT),
        )?;
        if resp.status() == 404 {
            return Err(self.not_found(reference, resp));
        }
        if resp.status() != 200 {
            return Err(self.status_error(resp, &what));
        }
        let too_big = || {
            fail(
                Kind::Integrity,
                format!(
                    "manifest {reference} in {} is larger than {MAX_MANIFEST_BYTES} bytes; \
                     refusing it",
                    self.location()
                ),
            )
        };
        if let Some(len) = resp
            .header("content-length")
            .and_then(|l| l.trim().parse::<u64>().ok())
            && len > MAX_MANIFEST_BYTES as u64
        {
            return Err(too_big());
        }
        let media_type = content_type(&resp);
        let digest = resp
            .header("docker-content-digest")
            .map(|d| d.trim().to_string());
        let mut bytes = Vec::new();
        resp.into_reader()
            .take(MAX_MANIFEST_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| {
                fail(
                    Kind::Remote,
                    format!("reading manifest {reference} from {}: {e}", self.location()),
                )
            })?;
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(too_big());
        }
        let media_type = manifest_media_type(media_type, &bytes);
        Ok((media_type, bytes, digest))
    }

    fn not_found(&self, reference: &str, resp: ureq::Response) -> anyhow::Error {
        let detail = error_detail(resp);
        fail(
            Kind::NotFound,
            format!(
                "manifest {reference} not found in {} (HTTP 404{detail})",
                self.location()
            ),
        )
    }
}

impl Repository for RegistryRepository {
    fn registry_name(&self) -> Option<(String, String)> {
        Some((self.host.clone(), self.repository.clone()))
    }

    fn mount_blob_from(&self, digest: &Digest, from_repository: &str) -> Result<bool> {
        self.mount_blob(digest, from_repository)
    }

    fn location(&self) -> String {
        format!("{}/{}", self.host, self.repository)
    }

    fn resolve(&self, reference: &str) -> Result<Descriptor> {
        let asked_digest = if reference.starts_with("sha256:") {
            Some(Digest::parse(reference)?)
        } else {
            check_tag(reference)?;
            None
        };
        let url = format!("{}/manifests/{reference}", self.api());
        let resp = self.request(
            "HEAD",
            &url,
            Access::Pull,
            &[("Accept", ACCEPT_MANIFESTS)],
            Payload::Empty,
            Some(SMALL_REQUEST_TIMEOUT),
        )?;
        match resp.status() {
            404 => return Err(self.not_found(reference, resp)),
            401 | 403 => return Err(self.status_error(resp, &format!("read manifest {reference}"))),
            200 => {
                let media_type = content_type(&resp);
                let size = resp
                    .header("content-length")
                    .and_then(|l| l.trim().parse::<u64>().ok());
                let header_digest = resp
                    .header("docker-content-digest")
                    .and_then(|d| Digest::parse(d.trim()).ok());
                let digest = asked_digest.clone().or(header_digest);
                if let (Some(digest), Some(size), false) = (digest, size, media_type.is_empty()) {
                    return Ok(Descriptor::new(media_type, digest, size));
                }
            }
            // Some registries do not answer HEAD well; GET tells more.
            _ => {}
        }
        let (media_type, bytes, _) = self.get_manifest(reference)?;
        let digest = Digest::of_bytes(&bytes);
        if let Some(asked) = asked_digest
            && asked != digest
        {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "registry {} answered manifest {asked} with content of digest {digest}",
                    self.host
                ),
            ));
        }
        Ok(Descriptor::new(media_type, digest, bytes.len() as u64))
    }

    fn fetch_manifest(&self, desc: &Descriptor) -> Result<FetchedManifest> {
        if desc.size > MAX_MANIFEST_BYTES as u64 {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "manifest {} is declared as {} bytes, over the {MAX_MANIFEST_BYTES}-byte limit",
                    desc.digest, desc.size
                ),
            ));
        }
        let (media_type, bytes, _) = self.get_manifest(desc.digest.as_str())?;
        let got = Digest::of_bytes(&bytes);
        if got != desc.digest {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "manifest {} from {} has digest {got}: the registry returned other content",
                    desc.digest,
                    self.location()
                ),
            ));
        }
        if bytes.len() as u64 != desc.size {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "manifest {} from {} is {} bytes, its descriptor says {}",
                    desc.digest,
                    self.location(),
                    bytes.len(),
                    desc.size
                ),
            ));
        }
        let mut descriptor = desc.clone();
        if !media_type.is_empty() {
            descriptor.media_type = media_type;
        }
        Ok(FetchedManifest { descriptor, bytes })
    }

    fn push_manifest(
        &self,
        media_type: &str,
        bytes: &[u8],
        tag: Option<&str>,
    ) -> Result<Descriptor> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(fail(
                Kind::Usage,
                format!(
                    "manifest is {} bytes; registries refuse manifests over {MAX_MANIFEST_BYTES} \
                     bytes",
                    bytes.len()
                ),
            ));
        }
        let desc = Descriptor::for_bytes(media_type, bytes);
        let reference = match tag {
            Some(t) => {
                check_tag(t)?;
                t.to_string()
            }
            None => desc.digest.to_string(),
        };
        let url = format!("{}/manifests/{reference}", self.api());
        let resp = self.request(
            "PUT",
            &url,
            Access::Push,
            &[("Content-Type", media_type)],
            Payload::Bytes(bytes),
            Some(SMALL_REQUEST_TIMEOUT),
        )?;
        if !(200..300).contains(&resp.status()) {
            let what = format!("push manifest {} as {reference}", desc.digest);
            return Err(self.status_error(resp, &what));
        }
        if let Some(d) = resp.header("docker-content-digest")
            && let Ok(d) = Digest::parse(d.trim())
            && d != desc.digest
        {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "registry {} stored manifest {} as {d}: it changed the bytes",
                    self.host, desc.digest
                ),
            ));
        }
        Ok(desc)
    }

    fn blob_exists(&self, digest: &Digest) -> Result<bool> {
        let url = format!("{}/blobs/{digest}", self.api());
        let resp = self.request(
            "HEAD",
            &url,
            Access::Pull,
            &[],
            Payload::Empty,
            Some(SMALL_REQUEST_TIMEOUT),
        )?;
        match resp.status() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.status_error(resp, &format!("check blob {digest}"))),
        }
    }

    fn fetch_blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + '_>> {
        let url = format!("{}/blobs/{}", self.api(), desc.digest);
        // Small blobs (configs, signature payloads) get the whole-request
        // limit, body included; large ones only the per-read idle limit.
        let timeout = (desc.size <= SMALL_BLOB_BYTES).then_some(SMALL_REQUEST_TIMEOUT);
        // identity: Content-Length must be the blob's own size.
        let resp = self.request(
            "GET",
            &url,
            Access::Pull,
            &[("Accept-Encoding", "identity")],
            Payload::Empty,
            timeout,
        )?;
        if resp.status() != 200 {
            return Err(self.status_error(resp, &format!("fetch blob {}", desc.digest)));
        }
        if resp.header("content-encoding").is_none()
            && let Some(len) = resp
                .header("content-length")
                .and_then(|l| l.trim().parse::<u64>().ok())
            && len != desc.size
        {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "blob {} from {} is {len} bytes, its descriptor says {}",
                    desc.digest,
                    self.location(),
                    desc.size
                ),
            ));
        }
        let what = format!("blob {} from {}", desc.digest, self.location());
        Ok(Box::new(VerifyingReader::new(
            resp.into_reader(),
            desc,
            what,
        )))
    }

    fn push_blob(&self, desc: &Descriptor, content: &mut dyn Read) -> Result<()> {
        let what = format!("push blob {}", desc.digest);
        let start = format!("{}/blobs/uploads/", self.api());
        let resp = self.request(
            "POST",
            &start,
            Access::Push,
            &[("Content-Length", "0")],
            Payload::Empty,
            Some(SMALL_REQUEST_TIMEOUT),
        )?;
        if resp.status() != 202 {
            return Err(self.status_error(resp, &what));
        }
        let location = resp.header("location").ok_or_else(|| {
            fail(
                Kind::Remote,
                format!(
                    "registry {} opened an upload for blob {} without a Location",
                    self.host, desc.digest
                ),
            )
        })?;
        let upload = join_url(&start, location);
        let sep = if upload.contains('?') { '&' } else { '?' };
        let put_url = format!("{upload}{sep}digest={}", desc.digest);
        // Verified while sent: a source that is short, long or different
        // aborts the upload instead of storing something else.
        let body = VerifyingReader::new(content, desc, format!("content of blob {}", desc.digest));
        let size = desc.size.to_string();
        let result = self.request_streaming(
            "PUT",
            &put_url,
            Access::Push,
            &[
                ("Content-Type", "application/octet-stream"),
                ("Content-Length", &size),
            ],
            body,
        );
        let resp = match result {
            Ok(r) => r,
            Err(e) => {
                let _ = self.request(
                    "DELETE",
                    &upload,
                    Access::Push,
                    &[],
                    Payload::Empty,
                    Some(SMALL_REQUEST_TIMEOUT),
                );
                return Err(e);
            }
        };
        if resp.status() != 201 {
            return Err(self.status_error(resp, &what));
        }
        Ok(())
    }

    fn list_tags(&self) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let mut tags = Vec::new();
        let mut url = format!("{}/tags/list", self.api());
        let mut seen = std::collections::HashSet::new();
        loop {
            if !seen.insert(url.clone()) {
                return Err(fail(
                    Kind::Remote,
                    format!("registry {} paginates tags in a loop at {url}", self.host),
                ));
            }
            let resp = self.request(
                "GET",
                &url,
                Access::Pull,
                &[("Accept", "application/json")],
                Payload::Empty,
                Some(SMALL_REQUEST_TIMEOUT),
            )?;
            match resp.status() {
                200 => {}
                // Repository unknown: no tags yet.
                404 => return Ok(tags),
                _ => return Err(self.status_error(resp, "list tags")),
            }
            let next = resp
                .all("link")
                .into_iter()
                .find_map(next_link)
                .map(|l| join_url(&url, &l));
            let mut body = Vec::new();
            resp.into_reader()
                .take(MAX_TAGS_PAGE_BYTES)
                .read_to_end(&mut body)
                .map_err(|e| {
                    fail(
                        Kind::Remote,
                        format!("reading the tag list of {}: {e}", self.location()),
                    )
                })?;
            let page: TagList = serde_json::from_slice(&body).map_err(|e| {
                fail(
                    Kind::Remote,
                    format!(
                        "registry {} sent a tag list that is not valid JSON: {e}",
                        self.host
                    ),
                )
            })?;
            tags.extend(page.tags.unwrap_or_default());
            match next {
                Some(n) => url = n,
                None => return Ok(tags),
            }
        }
    }
}

/// Hosts that get plain HTTP without asking: the loopback names.
fn is_loopback_host(host: &str) -> bool {
    let name = if host.starts_with('[') {
        host.split_once(']')
            .map(|(h, _)| &host[..h.len() + 1])
            .unwrap_or(host)
    } else {
        host.split(':').next().unwrap_or(host)
    };
    matches!(name, "localhost" | "127.0.0.1" | "[::1]")
}

fn default_docker_config() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(d) if !d.is_empty() => Some(Path::new(&d).join("config.json")),
        _ => dirs::home_dir().map(|h| h.join(".docker").join("config.json")),
    }
}

/// The credential helper that the docker config uses for `host`, following
/// docker's order: `credHelpers[host]`, then a plain `auths` entry (no
/// helper), then `credsStore`.
fn credential_helper(config: &serde_json::Value, host: &str) -> Option<String> {
    if let Some(h) = config["credHelpers"][host]
        .as_str()
        .filter(|h| !h.is_empty())
    {
        return Some(h.to_string());
    }
    let has_auth_entry = config["auths"].as_object().is_some_and(|auths| {
        auths.iter().any(|(key, entry)| {
            auths_key_host(key) == host
                && ["auth", "identitytoken", "username"]
                    .iter()
                    .any(|f| entry[*f].as_str().is_some_and(|v| !v.is_empty()))
        })
    });
    if has_auth_entry {
        return None;
    }
    config["credsStore"]
        .as_str()
        .filter(|h| !h.is_empty())
        .map(str::to_string)
}

/// `https://host/v1/` (as `docker login` may write keys) -> `host`.
fn auths_key_host(key: &str) -> &str {
    match key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
    {
        Some(rest) => rest.split('/').next().unwrap_or(rest),
        None => key,
    }
}

fn basic_header(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

/// Does `url` go to the same scheme://host[:port] as `base`? Compares
/// parsed origins (scheme and host case-insensitively, default ports
/// filled in), as ureq reports final URLs normalized.
fn same_origin(url: &str, base: &str) -> bool {
    match (origin(url), origin(base)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// The scheme, host and port of an absolute http(s) URL.
#[derive(Debug, PartialEq, Eq)]
struct Origin {
    /// `http` or `https`.
    scheme: String,
    /// Lower-cased; IPv6 addresses keep their brackets.
    host: String,
    port: u16,
}

fn origin(url: &str) -> Option<Origin> {
    let (scheme, _) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = url_authority(url)?;
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, rest) = authority.split_at(end + 1);
        match rest {
            "" => (host, None),
            _ => (host, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None | Some("") => default_port,
        Some(p) => p.parse().ok()?,
    };
    if host.is_empty() {
        return None;
    }
    Some(Origin {
        scheme,
        host: host.to_ascii_lowercase(),
        port,
    })
}

/// `host[:port]` of an absolute URL, without any `user:password@`: what
/// messages may name of a URL that is not the registry's.
fn url_authority(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    Some(match authority.rfind('@') {
        Some(i) => &authority[i + 1..],
        None => authority,
    })
}

/// Resolves a `Location` or `Link` target against the URL it came from.
fn join_url(from: &str, location: &str) -> String {
    let location = location.trim();
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_string();
    }
    let scheme_end = from.find("://").map(|i| i + 3).unwrap_or(0);
    if let Some(rest) = location.strip_prefix("//") {
        return format!("{}{rest}", &from[..scheme_end]);
    }
    let origin_end = from[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(from.len());
    if location.starts_with('/') {
        return format!("{}{location}", &from[..origin_end]);
    }
    // Relative to the directory of `from` (query dropped).
    let path = from.split(['?', '#']).next().unwrap_or(from);
    let dir_end = path.rfind('/').filter(|&i| i >= origin_end).map(|i| i + 1);
    match dir_end {
        Some(i) => format!("{}{location}", &path[..i]),
        None => format!("{path}/{location}"),
    }
}

/// The target of a `Link: <url>; rel="next"` header value, if it is one.
fn next_link(value: &str) -> Option<String> {
    value.split(',').find_map(|part| {
        let part = part.trim();
        let rest = part.strip_prefix('<')?;
        let (target, params) = rest.split_once('>')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim();
            p.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("rel")
                    && v.trim()
                        .trim_matches('"')
                        .split_whitespace()
                        .any(|r| r == "next")
            })
        });
        is_next.then(|| target.to_string())
    })
}

/// OCI tag syntax: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
fn check_tag(tag: &str) -> Result<()> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_alphanumeric() || b == b'_' || (i > 0 && b"._-".contains(&b)));
    if ok {
        Ok(())
    } else {
        Err(fail(
            Kind::Usage,
            format!(
                "{tag:?} is not a valid tag: letters, digits, '_', '.', '-', at most 128, not \
                 starting with '.' or '-'"
            ),
        ))
    }
}

/// The media type without parameters (`; charset=...`), or "" when absent.
fn content_type(resp: &ureq::Response) -> String {
    resp.header("content-type")
        .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
        .unwrap_or_default()
}

/// Picks the manifest's media type: the Content-Type when it names a
/// manifest type, else the `mediaType` inside the JSON, else the Content-Type.
fn manifest_media_type(content_type: String, bytes: &[u8]) -> String {
    let known = [
        MEDIA_TYPE_MANIFEST,
        MEDIA_TYPE_INDEX,
        MEDIA_TYPE_DOCKER_MANIFEST,
        MEDIA_TYPE_DOCKER_LIST,
    ];
    if known.contains(&content_type.as_str()) {
        return content_type;
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct WithMediaType {
        media_type: Option<String>,
    }
    serde_json::from_slice::<WithMediaType>(bytes)
        .ok()
        .and_then(|m| m.media_type)
        .filter(|m| !m.is_empty())
        .unwrap_or(content_type)
}

/// The registry's explanation of a failed request, as `: CODE: message
/// (detail)`, from the distribution error JSON; "" when there is none.
fn error_detail(resp: ureq::Response) -> String {
    let mut body = Vec::new();
    if resp
        .into_reader()
        .take(MAX_ERROR_BODY)
        .read_to_end(&mut body)
        .is_err()
    {
        return String::new();
    }
    format_error_body(&body)
}

fn format_error_body(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        #[serde(default)]
        errors: Vec<ErrorEntry>,
        #[serde(default)]
        details: Option<String>,
    }
    #[derive(Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
        #[serde(default)]
        detail: Option<serde_json::Value>,
    }
    let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) else {
        return String::new();
    };
    let mut parts: Vec<String> = parsed
        .errors
        .iter()
        .map(|e| {
            let mut s = [e.code.as_str(), e.message.as_str()]
                .iter()
                .filter(|x| !x.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(": ");
            // Only string details: distribution's structured ones (the
            // access list of a 401) are noise in a message.
            let detail = match &e.detail {
                Some(serde_json::Value::String(d)) => d.clone(),
                _ => String::new(),
            };
            if !detail.is_empty() {
                s.push_str(&format!(" ({})", truncate(&detail, 300)));
            }
            s
        })
        .filter(|s| !s.is_empty())
        .collect();
    if let Some(d) = parsed.details.filter(|d| !d.is_empty()) {
        parts.push(truncate(&d, 300));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join("; "))
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The challenge to answer from a 401: Bearer if offered, else Basic, else
/// whatever came first (reported as unsupported when used).
fn pick_challenge(resp: &ureq::Response) -> Option<Challenge> {
    let all: Vec<Challenge> = resp
        .all("www-authenticate")
        .into_iter()
        .flat_map(parse_challenges)
        .collect();
    ["bearer", "basic"]
        .iter()
        .find_map(|s| all.iter().find(|c| c.scheme == *s).cloned())
        .or_else(|| all.into_iter().next())
}

/// Parses a `WWW-Authenticate` value (RFC 7235): one or more challenges
/// `scheme param=value, param="quoted, \"value\"", Other p=v`. Lenient:
/// unquoted values run to the next comma or space, junk is skipped.
fn parse_challenges(header: &str) -> Vec<Challenge> {
    let b = header.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    let is_tchar = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c);
    let read_token = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && is_tchar(b[*i]) {
            *i += 1;
        }
        header[start..*i].to_string()
    };
    let skip = |i: &mut usize, commas: bool| {
        while *i < b.len() && (b[*i] == b' ' || b[*i] == b'\t' || (commas && b[*i] == b',')) {
            *i += 1;
        }
    };
    while i < b.len() {
        skip(&mut i, true);
        if i >= b.len() {
            break;
        }
        let scheme = read_token(&mut i);
        if scheme.is_empty() {
            i += 1;
            continue;
        }
        let mut params = Vec::new();
        loop {
            skip(&mut i, true);
            if i >= b.len() {
                break;
            }
            let start = i;
            let name = read_token(&mut i);
            if name.is_empty() {
                // Junk: skip one byte and go on looking for params.
                i += 1;
                continue;
            }
            skip(&mut i, false);
            if i < b.len() && b[i] == b'=' {
                i += 1;
                skip(&mut i, false);
                let value = if i < b.len() && b[i] == b'"' {
                    i += 1;
                    let mut v = Vec::new();
                    while i < b.len() && b[i] != b'"' {
                        if b[i] == b'\\' && i + 1 < b.len() {
                            i += 1;
                        }
                        v.push(b[i]);
                        i += 1;
                    }
                    i += 1; // closing quote (or end)
                    String::from_utf8_lossy(&v).into_owned()
                } else {
                    let start = i;
                    while i < b.len() && b[i] != b',' && b[i] != b' ' && b[i] != b'\t' {
                        i += 1;
                    }
                    header[start..i].to_string()
                };
                params.push((name.to_ascii_lowercase(), value));
            } else {
                // A token not followed by '=' starts the next challenge.
                i = start;
                break;
            }
        }
        out.push(Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::kind_of;
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;

    fn ch(scheme: &str, params: &[(&str, &str)]) -> Challenge {
        Challenge {
            scheme: scheme.into(),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn parses_bearer_challenge_with_quoted_commas() {
        let got = parse_challenges(
            r#"Bearer realm="https://h/service/token",service="harbor-registry",scope="repository:team/mods:pull,push""#,
        );
        assert_eq!(
            got,
            vec![ch(
                "bearer",
                &[
                    ("realm", "https://h/service/token"),
                    ("service", "harbor-registry"),
                    ("scope", "repository:team/mods:pull,push"),
                ]
            )]
        );
    }

    #[test]
    fn parses_several_challenges_spaces_escapes_and_unquoted_values() {
        let got = parse_challenges(
            r#"BASIC  Realm = "a \"quoted\" realm" , Bearer realm=https://t/token, service=reg ,error="insufficient_scope""#,
        );
        assert_eq!(
            got,
            vec![
                ch("basic", &[("realm", r#"a "quoted" realm"#)]),
                ch(
                    "bearer",
                    &[
                        ("realm", "https://t/token"),
                        ("service", "reg"),
                        ("error", "insufficient_scope")
                    ]
                ),
            ]
        );
        assert_eq!(parse_challenges("Basic"), vec![ch("basic", &[])]);
        assert_eq!(parse_challenges(""), vec![]);
        // Unterminated quote and junk do not panic.
        assert_eq!(
            parse_challenges(r#"Bearer realm="x"#),
            vec![ch("bearer", &[("realm", "x")])]
        );
        let _ = parse_challenges(r#"=,="" ;; Bearer ,,, realm=="#);
    }

    #[test]
    fn loopback_hosts_get_plain_http() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1",
            "127.0.0.1:5000",
            "[::1]",
            "[::1]:5000",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "registry.example",
            "10.0.0.1:5000",
            "localhost.example:5000",
            "127.0.0.2",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
        let r = RegistryRepository::open("reg.example:5000", "a/b", &RegistryOptions::default())
            .unwrap();
        assert_eq!(r.base, "https://reg.example:5000");
        let opts = RegistryOptions {
            plain_http: true,
            ..Default::default()
        };
        let r = RegistryRepository::open("reg.example", "a/b", &opts).unwrap();
        assert_eq!(r.base, "http://reg.example");
        assert_eq!(r.location(), "reg.example/a/b");
        assert!(RegistryRepository::open("reg.example", "A/b", &opts).is_err());
    }

    #[test]
    fn joins_locations_and_reads_links() {
        let from = "http://h:5000/v2/a/b/blobs/uploads/";
        assert_eq!(join_url(from, "https://x/y?z=1"), "https://x/y?z=1");
        assert_eq!(
            join_url(from, "/v2/a/b/blobs/uploads/u?s=1"),
            "http://h:5000/v2/a/b/blobs/uploads/u?s=1"
        );
        assert_eq!(
            join_url(from, "u1"),
            "http://h:5000/v2/a/b/blobs/uploads/u1"
        );
        assert_eq!(
            join_url("https://h/v2/x/tags/list?n=2", "list?last=b"),
            "https://h/v2/x/tags/list?last=b"
        );
        assert_eq!(join_url(from, "//other/p"), "http://other/p");
        assert_eq!(
            next_link(r#"</v2/a/tags/list?n=2&last=b>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?n=2&last=b")
        );
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
        assert!(same_origin("http://h:5000/v2/", "http://h:5000"));
        assert!(!same_origin("http://h:50001/v2/", "http://h:5000"));
        assert!(!same_origin("https://h:5000/v2/", "http://h:5000"));
    }

    #[test]
    fn tags_are_checked() {
        for t in ["v1", "latest", "sha256-abc.sig", "_x", "A.b-c"] {
            check_tag(t).unwrap();
        }
        for t in ["", ".x", "-x", "a/b", "a:b", "../x", &"x".repeat(129)] {
            assert_eq!(
                kind_of(&check_tag(t).unwrap_err()),
                Some(Kind::Usage),
                "{t}"
            );
        }
    }

    #[test]
    fn formats_registry_errors() {
        let body = br#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:11"},{"code":"DENIED","message":"no"}]}"#;
        assert_eq!(
            format_error_body(body),
            ": MANIFEST_BLOB_UNKNOWN: blob unknown to registry (sha256:11); DENIED: no"
        );
        assert_eq!(format_error_body(b"<html>"), "");
        assert_eq!(
            format_error_body(br#"{"details":"incorrect username or password"}"#),
            ": incorrect username or password"
        );
    }

    #[test]
    fn helper_is_found_in_docker_order() {
        let c: serde_json::Value = serde_json::json!({
            "auths": {"https://a.example/v1/": {"auth": "eDp5"}, "b.example": {}},
            "credHelpers": {"c.example": "pass"},
            "credsStore": "desktop"
        });
        assert_eq!(credential_helper(&c, "a.example"), None);
        assert_eq!(
            credential_helper(&c, "b.example").as_deref(),
            Some("desktop")
        );
        assert_eq!(credential_helper(&c, "c.example").as_deref(), Some("pass"));
    }

    // ---- A scripted registry for what distribution 2.8 cannot show: the
    // Bearer token flow and Link pagination.

    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        path: String,
        authorization: Option<String>,
        body: String,
    }

    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    fn reply(status: u16, headers: &[(&str, &str)], body: &str) -> Reply {
        Reply {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    struct FakeServer {
        addr: String,
        seen: Arc<Mutex<Vec<Seen>>>,
    }

    impl FakeServer {
        fn start(handler: impl Fn(&Seen, &str) -> Reply + Send + Sync + 'static) -> FakeServer {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            let seen = Arc::new(Mutex::new(Vec::new()));
            let seen2 = seen.clone();
            let addr2 = addr.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { continue };
                    let _ = serve_one(stream, &handler, &seen2, &addr2);
                }
            });
            FakeServer { addr, seen }
        }

        fn seen(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }
    }

    fn serve_one(
        stream: TcpStream,
        handler: &impl Fn(&Seen, &str) -> Reply,
        seen: &Mutex<Vec<Seen>>,
        addr: &str,
    ) -> io::Result<()> {
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut authorization = None;
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                match k.to_ascii_lowercase().as_str() {
                    "authorization" => authorization = Some(v.trim().to_string()),
                    "content-length" => length = v.trim().parse().unwrap_or(0),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let req = Seen {
            method,
            path,
            authorization,
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        seen.lock().unwrap().push(req.clone());
        let r = handler(&req, addr);
        let mut out = stream;
        write!(
            out,
            "HTTP/1.1 {} X\r\nConnection: close\r\nContent-Length: {}\r\n",
            r.status,
            r.body.len()
        )?;
        for (k, v) in &r.headers {
            write!(out, "{k}: {v}\r\n")?;
        }
        write!(out, "\r\n")?;
        out.write_all(&r.body)?;
        out.flush()
    }

    fn config_with(host: &str, user: &str, pass: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        std::fs::write(
            dir.path().join("config.json"),
            serde_json::json!({"auths": {host: {"auth": auth}}}).to_string(),
        )
        .unwrap();
        dir
    }

    #[test]
    fn bearer_flow_caches_the_token_and_follows_tag_pages() {
        let server = FakeServer::start(|req, addr| {
            let challenge = format!(
                r#"Bearer realm="http://{addr}/token?x=1",service="fake registry",scope="""#
            );
            let basic = basic_header("alice", "s3cret, with comma");
            if req.path == "/v2/" {
                return reply(401, &[("WWW-Authenticate", &challenge)], "");
            }
            if req.path.starts_with("/token") {
                if req.authorization.as_deref() != Some(basic.as_str()) {
                    return reply(401, &[], r#"{"details":"bad credentials"}"#);
                }
                return reply(200, &[], r#"{"access_token":"tok-1","expires_in":300}"#);
            }
            if req.authorization.as_deref() != Some("Bearer tok-1") {
                return reply(401, &[("WWW-Authenticate", &challenge)], "");
            }
            match req.path.as_str() {
                "/v2/team/mods/tags/list" => reply(
                    200,
                    &[(
                        "Link",
                        r#"</v2/team/mods/tags/list?n=2&last=b>; rel="next""#,
                    )],
                    r#"{"name":"team/mods","tags":["a","b"]}"#,
                ),
                "/v2/team/mods/tags/list?n=2&last=b" => {
                    reply(200, &[], r#"{"name":"team/mods","tags":["c"]}"#)
                }
                _ => reply(
                    404,
                    &[],
                    r#"{"errors":[{"code":"NAME_UNKNOWN","message":"x"}]}"#,
                ),
            }
        });
        let config = config_with(&server.addr, "alice", "s3cret, with comma");
        let opts = RegistryOptions {
            docker_config: Some(config.path().to_path_buf()),
            ..Default::default()
        };
        let repo = RegistryRepository::open(&server.addr, "team/mods", &opts).unwrap();
        assert_eq!(repo.list_tags().unwrap(), vec!["a", "b", "c"]);
        assert_eq!(repo.list_tags().unwrap(), vec!["a", "b", "c"]);
        let seen = server.seen();
        let probes = seen.iter().filter(|s| s.path == "/v2/").count();
        let tokens: Vec<&Seen> = seen
            .iter()
            .filter(|s| s.path.starts_with("/token"))
            .collect();
        assert_eq!(probes, 1, "{seen:?}");
        assert_eq!(tokens.len(), 1, "{seen:?}");
        assert_eq!(tokens[0].method, "GET");
        assert!(
            tokens[0].path.starts_with("/token?x=1&service=fake")
                && tokens[0]
                    .path
                    .contains("scope=repository%3Ateam%2Fmods%3Apull"),
            "{}",
            tokens[0].path
        );
        // Nothing but the token service ever saw the password.
        for s in &seen {
            if !s.path.starts_with("/token") {
                assert!(
                    s.authorization
                        .as_deref()
                        .is_none_or(|a| a == "Bearer tok-1"),
                    "{s:?}"
                );
            }
        }
    }

    #[test]
    fn refused_credentials_name_their_source_but_not_the_secret() {
        let server = FakeServer::start(|req, addr| {
            let challenge = format!(r#"Bearer realm="http://{addr}/token",service="s""#);
            if req.path.starts_with("/token") {
                return reply(200, &[], r#"{"token":"weak"}"#);
            }
            reply(
                401,
                &[("WWW-Authenticate", &challenge)],
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            )
        });
        let config = config_with(&server.addr, "bob", "hunter2-password");
        let opts = RegistryOptions {
            docker_config: Some(config.path().join("config.json")),
            ..Default::default()
        };
        let repo = RegistryRepository::open(&server.addr, "team/mods", &opts).unwrap();
        let err = repo.list_tags().unwrap_err();
        let msg = format!("{err:#}");
        assert_eq!(kind_of(&err), Some(Kind::Remote), "{msg}");
        assert!(msg.contains("not permitted"), "{msg}");
        assert!(msg.contains("UNAUTHORIZED"), "{msg}");
        assert!(msg.contains("config.json"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(!msg.contains("weak"), "{msg}");
        // A fresh token is asked for once; the same token again is not
        // worth a retry, and there is no loop.
        let seen = server.seen();
        let lists = seen.iter().filter(|s| s.path.contains("/tags/")).count();
        let tokens = seen.iter().filter(|s| s.path.starts_with("/token")).count();
        assert_eq!((lists, tokens), (1, 2), "{seen:?}");
    }

    #[test]
    fn identity_tokens_are_exchanged_by_post() {
        let server = FakeServer::start(|req, addr| {
            let challenge = format!(r#"Bearer realm="http://{addr}/oauth",service="svc""#);
            match (req.method.as_str(), req.path.as_str()) {
                ("POST", "/oauth") => {
                    if req.body.contains("grant_type=refresh_token")
                        && req.body.contains("refresh_token=idtok-123")
                        && req.body.contains("service=svc")
                        && req.authorization.is_none()
                    {
                        reply(200, &[], r#"{"access_token":"acc-9"}"#)
                    } else {
                        reply(400, &[], "")
                    }
                }
                _ if req.authorization.as_deref() == Some("Bearer acc-9") => {
                    reply(200, &[], r#"{"name":"a","tags":["t"]}"#)
                }
                _ => reply(401, &[("WWW-Authenticate", &challenge)], ""),
            }
        });
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            serde_json::json!({"auths": {&server.addr: {"identitytoken": "idtok-123"}}})
                .to_string(),
        )
        .unwrap();
        let opts = RegistryOptions {
            docker_config: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let repo = RegistryRepository::open(&server.addr, "a", &opts).unwrap();
        assert_eq!(repo.list_tags().unwrap(), vec!["t"]);
    }

    #[test]
    fn a_named_docker_config_must_exist() {
        let opts = RegistryOptions {
            docker_config: Some("/nonexistent/ocigo/config.json".into()),
            ..Default::default()
        };
        let err = RegistryRepository::open("127.0.0.1:1", "a", &opts).unwrap_err();
        assert_eq!(kind_of(&err), Some(Kind::Usage));
    }

    #[test]
    fn unreachable_registry_is_remote_with_a_hint() {
        // A port nobody listens on: bind, learn the port, close.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let repo = RegistryRepository::open(
            &format!("127.0.0.1:{port}"),
            "a",
            &RegistryOptions::default(),
        )
        .unwrap();
        let err = repo.resolve("v1").unwrap_err();
        let msg = format!("{err:#}");
        assert_eq!(kind_of(&err), Some(Kind::Remote), "{msg}");
        assert!(
            msg.contains(&format!("http://127.0.0.1:{port}/v2/")),
            "{msg}"
        );
        assert!(msg.contains("Is the registry running"), "{msg}");
    }

    #[test]
    fn origins_are_compared_parsed_not_as_prefixes() {
        assert!(same_origin(
            "https://reg.example/v2/",
            "https://REG.example:443"
        ));
        assert!(same_origin("http://reg.example:80?x", "http://reg.example"));
        assert!(same_origin("http://[::1]:5000/v2/", "http://[::1]:5000"));
        assert!(same_origin(
            "http://u@127.0.0.1:5000/",
            "http://127.0.0.1:5000"
        ));
        for other in [
            "http://reg.example.evil/v2/",
            "http://reg.example@evil.example/v2/",
            "http://reg.example:5000.evil/v2/",
            "https://reg.example/v2/",
            "http://reg.example:8080/v2/",
            "ftp://reg.example/",
            "/v2/relative",
            "",
        ] {
            assert!(!same_origin(other, "http://reg.example"), "{other}");
        }
        assert_eq!(
            url_authority("https://u:p@s3.example:9000/b/k?X-Amz-Signature=zz"),
            Some("s3.example:9000")
        );
        assert_eq!(url_authority("http://h?x=1"), Some("h"));
        assert_eq!(
            origin("HTTPS://[::1]/x"),
            Some(Origin {
                scheme: "https".into(),
                host: "[::1]".into(),
                port: 443
            })
        );
    }

    fn basic_state(user: &str, pass: &str) -> AuthState {
        AuthState {
            credentials: Some(Credentials {
                secret: Secret::Basic {
                    user: user.into(),
                    pass: pass.into(),
                },
                source: format!("user {user:?} from a test config"),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn token_realms_that_would_expose_credentials_are_refused() {
        let state = basic_state("alice", "s3cret-pass");
        let scopes = vec!["repository:a:pull".to_string()];

        // An HTTPS registry naming a plain-HTTP token service: refused before
        // any request (the hosts do not exist; nothing is contacted).
        let https =
            RegistryRepository::open("reg.invalid", "a", &RegistryOptions::default()).unwrap();
        let c = ch("bearer", &[("realm", "http://auth.invalid:8080/token")]);
        let err = https.fetch_token(&c, &scopes, &state).err().unwrap();
        let msg = format!("{err:#}");
        assert_eq!(kind_of(&err), Some(Kind::Remote), "{msg}");
        assert!(
            msg.contains("auth.invalid:8080") && msg.contains("plain HTTP"),
            "{msg}"
        );
        assert!(!msg.contains("s3cret"), "{msg}");

        // A plain-HTTP registry naming a token service on another host over
        // plain HTTP: the password is not sent there.
        let plain = RegistryRepository::open(
            "reg.invalid",
            "a",
            &RegistryOptions {
                plain_http: true,
                ..Default::default()
            },
        )
        .unwrap();
        let c = ch("bearer", &[("realm", "http://u:p@tokens.invalid/t?x=1")]);
        let err = plain.fetch_token(&c, &scopes, &state).err().unwrap();
        let msg = format!("{err:#}");
        assert_eq!(kind_of(&err), Some(Kind::Remote), "{msg}");
        assert!(
            msg.contains("tokens.invalid") && msg.contains("unencrypted"),
            "{msg}"
        );
        assert!(!msg.contains("s3cret") && !msg.contains("u:p"), "{msg}");
    }

    #[test]
    fn a_token_service_on_the_same_loopback_host_gets_the_credentials() {
        // The check above does not block the usual local setup: registry
        // and token service on one machine, different ports.
        let tokens = FakeServer::start(|_, _| reply(200, &[], r#"{"token":"t-1"}"#));
        let registry = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = registry.local_addr().unwrap().to_string();
        let repo = RegistryRepository::open(&addr, "a", &RegistryOptions::default()).unwrap();
        let realm = format!(
            "http://localhost:{}/token",
            tokens.addr.split(':').nth(1).unwrap()
        );
        let c = ch("bearer", &[("realm", &realm)]);
        let scopes = vec!["repository:a:pull".to_string()];
        let token = repo
            .fetch_token(&c, &scopes, &basic_state("alice", "pw"))
            .unwrap();
        assert_eq!(token.value, "t-1");
        let seen = tokens.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(
            seen[0].authorization.as_deref(),
            Some(basic_header("alice", "pw").as_str())
        );
    }

    #[test]
    fn a_refused_or_unsupported_mount_falls_back_to_upload() {
        let digest = Digest::of_bytes(b"layer");
        for status in [404, 405, 401, 403, 400] {
            let server = FakeServer::start(move |req, _| match req.path.as_str() {
                "/v2/" => reply(200, &[], ""),
                _ => reply(
                    status,
                    &[],
                    r#"{"errors":[{"code":"UNSUPPORTED","message":"no mounts here"}]}"#,
                ),
            });
            let config = config_with(&server.addr, "alice", "pw");
            let opts = RegistryOptions {
                docker_config: Some(config.path().to_path_buf()),
                ..Default::default()
            };
            let repo = RegistryRepository::open(&server.addr, "team/two", &opts).unwrap();
            let mounted = repo.mount_blob(&digest, "team/one");
            assert!(
                matches!(mounted, Ok(false)),
                "HTTP {status}: {:?}",
                mounted.map_err(|e| format!("{e:#}"))
            );
            let seen = server.seen();
            assert!(
                seen.iter().any(|s| s.method == "POST"
                    && s.path.contains(&format!("mount={digest}"))
                    && s.path.contains("from=team/one")),
                "{seen:?}"
            );
        }
        // A server failure is still an error.
        let server = FakeServer::start(|req, _| match req.path.as_str() {
            "/v2/" => reply(200, &[], ""),
            _ => reply(503, &[], ""),
        });
        let config = config_with(&server.addr, "alice", "pw");
        let opts = RegistryOptions {
            docker_config: Some(config.path().to_path_buf()),
            ..Default::default()
        };
        let repo = RegistryRepository::open(&server.addr, "team/two", &opts).unwrap();
        let err = repo.mount_blob(&digest, "team/one").unwrap_err();
        assert_eq!(kind_of(&err), Some(Kind::Remote), "{err:#}");
        assert!(format!("{err:#}").contains("503"), "{err:#}");
    }
}
