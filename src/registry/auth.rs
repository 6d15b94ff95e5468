//! Authenticating to a registry: which scopes a request needs, the Basic
//! header, and Bearer tokens from the registry's token service (Harbor's
//! flow), cached per scope list until shortly before they expire.
//!
//! Owns: the auth state of one client and the token request. Must not:
//! parse challenges (that is `challenge`) or read credential stores (that is
//! `credentials`); credentials and tokens never go into a message.

use std::collections::HashMap;
use std::io::Read;
use std::time::{Duration, Instant};

use anyhow::Result;
use base64::Engine as _;
use serde::Deserialize;

use super::RegistryRepository;
use super::challenge::{Challenge, pick_challenge};
use super::client::SMALL_REQUEST_TIMEOUT;
use super::client::{Body, Reply};
use super::credentials::{Credentials, Secret};
use super::errors::error_detail;
use super::url::{is_loopback_host, origin, same_origin, shown_url, url_authority};
use crate::error::{Kind, fail};

/// Tokens are refreshed this long before the registry says they expire
/// (Harbor's last 30 s of 30 minutes; half the lifetime of shorter ones).
const TOKEN_MARGIN: Duration = Duration::from_secs(30);

#[derive(Default)]
pub(super) struct AuthState {
    /// `/v2/` was asked once; its challenge (if any) is in `challenge`.
    pub(super) probed: bool,
    pub(super) challenge: Option<Challenge>,
    /// Loaded on the first challenge, then kept for the client's lifetime.
    pub(super) credentials: Option<Credentials>,
    /// Bearer tokens by the scope list they were issued for.
    pub(super) tokens: HashMap<String, Token>,
}

pub(super) struct Token {
    pub(super) value: String,
    /// When the token service said it expires, counted from when it was
    /// asked (so never later than the service meant).
    pub(super) expires: Instant,
    /// Refreshed this long before `expires`: [`TOKEN_MARGIN`], or half the
    /// lifetime of a short-lived token.
    pub(super) margin: Duration,
}

/// What a request needs to be allowed to do (token scopes).
#[derive(Clone, Copy)]
pub(super) enum Access<'a> {
    Pull,
    Push,
    /// Push here and pull from another repository of the same registry.
    Mount(&'a str),
    /// No repository at all (`GET /v2/` for `ocigo login`): a token with
    /// no scope.
    Registry,
}

impl RegistryRepository {
    /// The Authorization header for a request to `url`, if the registry
    /// asked for authentication. Only ever sent to the registry's own origin.
    pub(super) fn authorization(
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
                    && Instant::now() + t.margin < t.expires
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
    pub(super) fn reauthorize(
        &self,
        resp: &Reply,
        url: &str,
        access: Access<'_>,
        sent: Option<&str>,
    ) -> Result<Option<String>> {
        // Only the registry's own answers set how to authenticate to it.
        if !self.is_registry_origin(resp.url()) {
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

    pub(super) fn scopes(&self, access: Access<'_>) -> Vec<String> {
        let repo = &self.repository;
        match access {
            Access::Pull => vec![format!("repository:{repo}:pull")],
            Access::Push => vec![format!("repository:{repo}:pull,push")],
            Access::Mount(from) => vec![
                format!("repository:{repo}:pull,push"),
                format!("repository:{from}:pull"),
            ],
            Access::Registry => Vec::new(),
        }
    }

    /// Gets a Bearer token from the challenge's realm for `scopes`.
    pub(super) fn fetch_token(
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
        let shown = shown_url(realm);
        let Some(realm_origin) = origin(realm) else {
            return Err(fail(
                Kind::Remote,
                format!(
                    "registry {} names a token realm that is not an http(s) URL: {shown}",
                    self.host
                ),
            ));
        };
        if realm_origin.scheme == "http" {
            let realm_host = url_authority(realm).unwrap_or_else(|| "?".into());
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
        let asked = Instant::now();
        let resp = match &creds.secret {
            Secret::IdentityToken(refresh) => {
                let scope = scopes.join(" ");
                let mut form = ::url::form_urlencoded::Serializer::new(String::new());
                form.append_pair("grant_type", "refresh_token")
                    .append_pair("client_id", "ocigo")
                    .append_pair("refresh_token", refresh)
                    .append_pair("scope", &scope);
                if let Some(s) = service {
                    form.append_pair("service", s);
                }
                let form = form.finish();
                self.exchange(
                    "POST",
                    realm,
                    &[("Content-Type", "application/x-www-form-urlencoded")],
                    None,
                    Body::Bytes(form.as_bytes()),
                    Some(SMALL_REQUEST_TIMEOUT),
                )?
            }
            secret => {
                let mut url = ::url::Url::parse(realm).expect("the realm parsed above");
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    for s in scopes {
                        q.append_pair("scope", s);
                    }
                }
                let basic = match secret {
                    Secret::Basic { user, pass } => Some(basic_header(user, pass)),
                    _ => None,
                };
                self.exchange(
                    "GET",
                    url.as_str(),
                    &[],
                    basic.as_deref(),
                    Body::Empty,
                    Some(SMALL_REQUEST_TIMEOUT),
                )?
            }
        };
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
                    "the token service of registry {} ({shown}) {what}: HTTP {status}{detail}; \
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
                        "reading a token from {shown} for registry {}: {e}",
                        self.host
                    ),
                )
            })?;
        // The body holds the token: never echo it into a message.
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|_| {
            fail(
                Kind::Remote,
                format!(
                    "the token service of registry {} ({shown}) did not answer with a token",
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
                    "the token service of registry {} ({shown}) answered without a token",
                    self.host
                ),
            ));
        }
        // The token spec: a missing expires_in means 60 seconds. A shorter
        // lifetime is taken at its word (the spec asks servers not to send
        // one, but a registry enforces what its token says): refreshing
        // early is harmless, sending an expired token costs a 401.
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(60));
        Ok(Token {
            value,
            expires: asked + lifetime,
            margin: TOKEN_MARGIN.min(lifetime / 2),
        })
    }
}

pub(super) fn basic_header(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}
