//! The registry client: speaks the OCI distribution API (manifests, blobs,
//! uploads, cross-repository mounts, tag lists) to one repository of a
//! registry, and does the registry's authentication (Basic, and Bearer
//! tokens from the registry's token service, as Harbor uses).
//!
//! Laid out as oras-go's `registry/remote`: this file holds
//! [`RegistryRepository`] and its [`Repository`] implementation (what each
//! distribution endpoint means); `client` sends requests (agent, timeouts,
//! the 401-retry loop); `auth` and `challenge` answer the registry's
//! `WWW-Authenticate` challenges and fetch tokens; `credentials` reads the
//! docker config and its helpers; `url` compares and joins URLs; `errors`
//! turns HTTP failures into classified errors; `deadlines` bounds every
//! connection and transfer; `retry` decides which failures are retried and
//! how long to wait; `resume` continues a cut blob download with ranged
//! requests; `tls` decides whom to trust (system store,
//! `--ca-file`, `certs.d`) and which client certificate to show; `proxy`
//! picks a proxy per request as the go command does.
//!
//! Owns: HTTP to registries and everything above. Credentials never appear
//! in an error message or a log line.
//!
//! Must not: know about Go modules or the ocigo artifact layout (that is
//! `artifact`), touch the local content store, or write anything to disk; the
//! only files it reads are the docker config and TLS certificates and keys
//! (`tls`). The one thing it prints is a warning on stderr when TLS is
//! switched off or not verified for a host (`--plain-http`, `--insecure`).
//! Blobs are streamed both ways and
//! never held whole in memory.

mod auth;
mod challenge;
mod client;
mod credentials;
mod deadlines;
mod errors;
mod proxy;
mod referrers;
mod resolver;
mod resume;
mod retry;
mod tls;
mod url;
mod web;

use std::fmt;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use anyhow::Result;
use serde::Deserialize;

use crate::error::{Kind, fail};
use crate::oci::{
    Descriptor, Digest, FetchedManifest, MAX_MANIFEST_BYTES, MEDIA_TYPE_DOCKER_LIST,
    MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST, Repository, VerifyingReader,
};

use auth::{Access, AuthState};
use client::{Reply, SMALL_BLOB_BYTES, SMALL_REQUEST_TIMEOUT};
use deadlines::{Direction, Transfer};

use credentials::{Credentials, default_credential_files};
pub use credentials::{
    DOCKER_HUB_KEY, HelperError, LoginCredentials, default_docker_config, docker_login_key,
    helper_erase, helper_store,
};
pub use deadlines::NetworkLimits;
use errors::error_detail;
pub use retry::{ENV_RETRIES, Interrupted, RetryPolicy, is_interrupted};
pub use tls::{DEFAULT_CERTS_DIRS, ENV_CERTS_D};
use url::{is_loopback_host, join_url, next_link, same_origin};
pub use web::WebClient;

/// Marks an upload refused with a 401 after it began, for which a new
/// token has been fetched: sending it again from a fresh `POST` will do.
#[derive(Debug)]
struct TokenRenewed;

impl fmt::Display for TokenRenewed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the registry refused the token mid-upload; a new one was fetched")
    }
}

/// Every manifest media type ocigo reads. Distribution answers 404 to a
/// manifest request whose `Accept` does not list the stored type.
const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// Tag lists are JSON held in memory; refuse absurd pages.
const MAX_TAGS_PAGE_BYTES: u64 = 32 * 1024 * 1024;

/// How to reach a registry.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Speak plain HTTP to a registry that is not on localhost (with a
    /// warning). `localhost`, `127.0.0.1` and `[::1]` get plain HTTP
    /// without asking, unless TLS is configured for them: a `certs.d`
    /// directory for the host, `ca_files` or `insecure`.
    pub plain_http: bool,
    /// More certificate authorities to trust, besides the system store and
    /// the host's `certs.d` directory (`--ca-file`).
    pub ca_files: Vec<PathBuf>,
    /// Do not verify the registry's TLS certificate (`--insecure`; with a
    /// warning).
    pub insecure: bool,
    /// The `certs.d` bases to look in. `None`: `$OCIGO_CERTS_D`
    /// (colon-separated), else [`DEFAULT_CERTS_DIRS`].
    pub certs_dirs: Option<Vec<PathBuf>>,
    /// The docker config to read credentials from: a `config.json` file or a
    /// directory holding one. Default: `$DOCKER_CONFIG/config.json`, else
    /// `~/.docker/config.json`; then podman's `auth.json`
    /// (`$REGISTRY_AUTH_FILE`, else `$XDG_RUNTIME_DIR/containers/auth.json`,
    /// then `~/.config/containers/auth.json`).
    pub docker_config: Option<PathBuf>,
    /// Use these credentials and read no credential file (`ocigo login`
    /// checking what it was given).
    pub credentials: Option<LoginCredentials>,
    /// Network deadlines. `None`: the defaults, overridden by the
    /// `OCIGO_*` environment variables ([`NetworkLimits::from_env`]).
    pub limits: Option<NetworkLimits>,
    /// Retries of transient failures. `None`: the default, overridden by
    /// `OCIGO_RETRIES` ([`RetryPolicy::from_env`]).
    pub retry: Option<RetryPolicy>,
    /// Upload blobs larger than this in chunks of this size (`PATCH` each,
    /// then `PUT`), for registries or proxies that limit request size
    /// (`--chunk-size`). `None`: one monolithic `PUT` per blob.
    pub chunk_size: Option<u64>,
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
    /// `--plain-http` was given (not just a loopback host).
    plain_http_asked: bool,
    agent: ureq::Agent,
    limits: NetworkLimits,
    retry: RetryPolicy,
    chunk_size: Option<u64>,
    proxies: proxy::ProxyEnv,
    /// Where credentials are looked for, in order (see `credentials`).
    config_paths: Vec<PathBuf>,
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

enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
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
        let config_paths = match &opts.docker_config {
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
                vec![p]
            }
            None => default_credential_files(),
        };
        let bases = tls::certs_bases(opts.certs_dirs.as_deref());
        let tls_configured =
            tls::has_certs_dir(host, &bases) || !opts.ca_files.is_empty() || opts.insecure;
        let plain_http = opts.plain_http || (is_loopback_host(host) && !tls_configured);
        let scheme = if plain_http { "http" } else { "https" };
        let tls = if plain_http {
            ureq::tls::TlsConfig::default()
        } else {
            tls::for_host(host, &opts.ca_files, &bases, opts.insecure)?
        };
        if opts.plain_http && !is_loopback_host(host) {
            warn_once(
                host,
                format!(
                    "--plain-http: talking to {} without TLS; credentials and content travel \
                     unencrypted",
                    crate::text::field(host)
                ),
            );
        } else if opts.insecure && !plain_http {
            warn_once(
                host,
                format!(
                    "--insecure: not verifying the TLS certificate of {}; anyone on the path \
                     can read and change what is sent",
                    crate::text::field(host)
                ),
            );
        }
        let proxies = proxy::ProxyEnv::from_env()?;
        let limits = match opts.limits {
            Some(l) => l,
            None => NetworkLimits::from_env()?,
        };
        let retry = match opts.retry {
            Some(r) => r,
            None => RetryPolicy::from_env()?,
        };
        let agent = client::build_agent(&limits, tls);
        Ok(RegistryRepository {
            host: host.to_string(),
            repository: repository.to_string(),
            base: format!("{scheme}://{host}"),
            plain_http,
            plain_http_asked: opts.plain_http,
            agent,
            limits,
            retry,
            chunk_size: opts.chunk_size.filter(|c| *c > 0),
            proxies,
            config_paths,
            auth: Mutex::new(AuthState {
                credentials: opts.credentials.clone().map(Credentials::given),
                ..AuthState::default()
            }),
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
            &[],
            Payload::Empty,
            Some(SMALL_REQUEST_TIMEOUT),
        )?;
        match resp.status() {
            201 => Ok(true),
            202 => {
                if let Some(upload) = resp.header("location").and_then(|l| join_url(&url, l)) {
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

    /// The absolute upload URL a `POST` or `PATCH` answer names.
    fn upload_location(&self, resp: &Reply, asked: &str, desc: &Descriptor) -> Result<String> {
        resp.header("location")
            .and_then(|l| join_url(asked, l))
            .ok_or_else(|| {
                fail(
                    Kind::Remote,
                    format!(
                        "registry {} answered the upload of blob {} without a usable Location",
                        self.host, desc.digest
                    ),
                )
            })
    }

    /// Marks an upload failure that sending the blob again from a fresh
    /// `POST` may get past: the connection failed (not the content: a source
    /// that does not match its digest fails the same way every time), or
    /// the registry answered a transient status (see `retry`).
    fn interrupted(&self, desc: &Descriptor, e: anyhow::Error) -> anyhow::Error {
        if crate::error::kind_of(&e) == Some(Kind::Integrity) {
            return e;
        }
        e.context(Interrupted(format!(
            "uploading blob {} to {} failed",
            desc.digest,
            self.location()
        )))
    }

    /// The error for an upload request to `url` answered with `resp`'s
    /// unexpected status, marked as interrupted when the status is transient,
    /// or when it is the registry's 401 to a token that expired or was
    /// revoked after the upload began (Harbor's tokens last 30 minutes): a
    /// new token is fetched here, and the upload restarts from a fresh
    /// `POST` with it. A 401 that new credentials cannot answer (the same
    /// token again, Basic credentials) stays a plain refusal.
    fn upload_status_error(&self, desc: &Descriptor, url: &str, resp: Reply) -> anyhow::Error {
        let transient = retry::status_is_transient(resp.status());
        if resp.status() == 401 {
            let sent = match self.authorization(url, Access::Push, None, false) {
                Ok(sent) => sent,
                Err(e) => return e,
            };
            match self.reauthorize(&resp, url, Access::Push, sent.as_deref()) {
                Ok(Some(_)) => {
                    let e = self.status_error(resp, &format!("push blob {}", desc.digest));
                    return self.interrupted(desc, e).context(TokenRenewed);
                }
                Ok(None) => {}
                Err(e) => return e,
            }
        }
        let e = self.status_error(resp, &format!("push blob {}", desc.digest));
        if transient {
            self.interrupted(desc, e)
        } else {
            e
        }
    }

    /// `upload` with `digest=` added to its query.
    fn with_digest(upload: &str, desc: &Descriptor) -> String {
        let mut u = ::url::Url::parse(upload).expect("join_url returns absolute URLs");
        u.query_pairs_mut()
            .append_pair("digest", desc.digest.as_str());
        u.to_string()
    }

    /// The whole blob in one `PUT`: the fastest way where request size is
    /// not limited.
    fn upload_whole(&self, upload: &str, desc: &Descriptor, body: &mut dyn Read) -> Result<()> {
        let size = desc.size.to_string();
        let resp = self
            .request_streaming(
                "PUT",
                &Self::with_digest(upload, desc),
                Access::Push,
                &[
                    ("Content-Type", "application/octet-stream"),
                    ("Content-Length", &size),
                ],
                body,
            )
            .map_err(|e| self.interrupted(desc, e))?;
        if resp.status() != 201 {
            return Err(self.upload_status_error(desc, upload, resp));
        }
        Ok(())
    }

    /// The blob in `PATCH` requests of at most `chunk` bytes each, then an
    /// empty `PUT` that names the digest (`--chunk-size`).
    fn upload_chunks(
        &self,
        upload: &str,
        desc: &Descriptor,
        body: &mut dyn Read,
        chunk: u64,
    ) -> Result<()> {
        let what = format!("push blob {}", desc.digest);
        let mut url = upload.to_string();
        let mut offset = 0u64;
        while offset < desc.size {
            let n = chunk.min(desc.size - offset);
            let len = n.to_string();
            let range = format!("{}-{}", offset, offset + n - 1);
            let resp = self
                .request_streaming(
                    "PATCH",
                    &url,
                    Access::Push,
                    &[
                        ("Content-Type", "application/octet-stream"),
                        ("Content-Length", &len),
                        ("Content-Range", &range),
                    ],
                    &mut body.take(n),
                )
                .map_err(|e| self.interrupted(desc, e))?;
            if resp.status() != 202 {
                return Err(self.upload_status_error(desc, &url, resp));
            }
            url = self.upload_location(&resp, &url, desc)?;
            offset += n;
        }
        // The end of the source: its digest check runs here.
        let mut rest = [0u8; 1];
        if body
            .read(&mut rest)
            .map_err(|e| crate::oci::classify_io(e, || what.clone()))?
            != 0
        {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "content of blob {} is longer than {} bytes",
                    desc.digest, desc.size
                ),
            ));
        }
        let resp = self
            .request(
                "PUT",
                &Self::with_digest(&url, desc),
                Access::Push,
                &[("Content-Type", "application/octet-stream")],
                Payload::Empty,
                Some(SMALL_REQUEST_TIMEOUT),
            )
            .map_err(|e| self.interrupted(desc, e))?;
        if resp.status() != 201 {
            return Err(self.upload_status_error(desc, &url, resp));
        }
        Ok(())
    }

    /// One upload from `POST` to the final `PUT`; a failed one is deleted
    /// (best effort).
    fn push_blob_once(&self, desc: &Descriptor, content: &mut dyn Read) -> Result<()> {
        let what = format!("push blob {}", desc.digest);
        let start = format!("{}/blobs/uploads/", self.api());
        let resp = self.request(
            "POST",
            &start,
            Access::Push,
            &[],
            Payload::Empty,
            Some(SMALL_REQUEST_TIMEOUT),
        )?;
        if resp.status() != 202 {
            return Err(self.status_error(resp, &what));
        }
        let upload = self.upload_location(&resp, &start, desc)?;
        // Verified while sent: a source that is short, long or different
        // aborts the upload instead of storing something else.
        let body = VerifyingReader::new(content, desc, format!("content of blob {}", desc.digest));
        let mut body = Transfer::new(
            body,
            format!("blob {} to {}", desc.digest, self.location()),
            desc.size,
            self.limits,
            Direction::Sending,
        );
        let result = match self.chunk_size {
            Some(chunk) if desc.size > chunk => self.upload_chunks(&upload, desc, &mut body, chunk),
            _ => self.upload_whole(&upload, desc, &mut body),
        };
        if result.is_err() {
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
        result
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

    fn not_found(&self, reference: &str, resp: Reply) -> anyhow::Error {
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
        check_manifest_size(bytes)?;
        let desc = Descriptor::for_bytes(media_type, bytes);
        let reference = match tag {
            Some(t) => {
                check_tag(t)?;
                t.to_string()
            }
            None => desc.digest.to_string(),
        };
        self.put_manifest(media_type, bytes, &desc, &reference)?;
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
        let resp = self
            .request(
                "GET",
                &url,
                Access::Pull,
                &[("Accept-Encoding", "identity")],
                Payload::Empty,
                timeout,
            )
            .map_err(|e| {
                e.context(format!(
                    "fetching blob {} from {}: 0 of {} bytes received",
                    desc.digest,
                    self.location(),
                    desc.size
                ))
            })?;
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
        // A body the network cuts is resumed with ranged requests; the
        // digest is checked over the whole.
        let body = resume::Resuming::new(self, url, desc, what.clone(), resp);
        Ok(Box::new(VerifyingReader::new(body, desc, what)))
    }

    fn push_blob(&self, desc: &Descriptor, content: &mut dyn Read) -> Result<()> {
        if desc.size > SMALL_BLOB_BYTES {
            // Too big to hold: an interrupted upload is restarted by the
            // caller, which can read its source again (`transfer`).
            return self.push_blob_once(desc, content);
        }
        // Small blobs (configs, signatures, most module zips) are read
        // whole first, verified while read, so that an upload whose token
        // was refused mid-upload is restarted here, from a fresh `POST`,
        // whoever called.
        let what = format!("content of blob {}", desc.digest);
        let mut bytes = Vec::with_capacity(desc.size as usize);
        VerifyingReader::new(content, desc, what.clone())
            .read_to_end(&mut bytes)
            .map_err(|e| crate::oci::classify_io(e, || what.clone()))?;
        match self.push_blob_once(desc, &mut &bytes[..]) {
            // Once, at once: the new token is already fetched. Network
            // interruptions are restarted by the caller as for big blobs.
            Err(e) if e.downcast_ref::<TokenRenewed>().is_some() => {
                self.push_blob_once(desc, &mut &bytes[..])
            }
            result => result,
        }
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
                .and_then(|l| join_url(&url, &l));
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
fn content_type(resp: &Reply) -> String {
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

/// Prints a warning on stderr once per host and process (a push opens
/// several repositories of one registry).
fn warn_once(host: &str, message: String) {
    static WARNED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    if !warned.iter().any(|h| h == host) {
        warned.push(host.to_string());
        eprintln!("warning: {message}");
    }
}

#[cfg(test)]
mod tests;

impl RegistryRepository {
    /// `PUT /manifests/<reference>` of `bytes` (whose descriptor is `desc`),
    /// refusing a registry that stored other bytes than those sent. Returns
    /// the reply, for headers such as `OCI-Subject`.
    fn put_manifest(
        &self,
        media_type: &str,
        bytes: &[u8],
        desc: &Descriptor,
        reference: &str,
    ) -> Result<Reply> {
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
            let what = if reference == desc.digest.as_str() {
                format!("push manifest {}", desc.digest)
            } else {
                format!("push manifest {} as {reference}", desc.digest)
            };
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
        Ok(resp)
    }
}

/// Registries refuse manifests over 4 MiB (distribution answers 400, and
/// Harbor embeds the same limit): refused before anything is sent.
pub(super) fn check_manifest_size(bytes: &[u8]) -> Result<()> {
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(fail(
            Kind::Usage,
            format!(
                "manifest is {} bytes; registries refuse manifests over {MAX_MANIFEST_BYTES} bytes",
                bytes.len()
            ),
        ));
    }
    Ok(())
}
