//! Unit tests of the registry client against a scripted server, for what a
//! real registry cannot show: the Bearer token flow, Link pagination,
//! refused and hostile token realms.

use super::auth::*;
use super::challenge::*;
use super::credentials::*;
use super::errors::*;
use super::url::*;
use super::*;
use crate::error::kind_of;
use base64::Engine as _;
use std::io::{self, Read};
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
    let r =
        RegistryRepository::open("reg.example:5000", "a/b", &RegistryOptions::default()).unwrap();
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
    assert_eq!(
        join_url(from, "https://x/y?z=1").as_deref(),
        Some("https://x/y?z=1")
    );
    assert_eq!(
        join_url(from, "/v2/a/b/blobs/uploads/u?s=1").as_deref(),
        Some("http://h:5000/v2/a/b/blobs/uploads/u?s=1")
    );
    assert_eq!(
        join_url(from, "u1").as_deref(),
        Some("http://h:5000/v2/a/b/blobs/uploads/u1")
    );
    assert_eq!(
        join_url("https://h/v2/x/tags/list?n=2", "list?last=b").as_deref(),
        Some("https://h/v2/x/tags/list?last=b")
    );
    assert_eq!(
        join_url(from, "//other/p").as_deref(),
        Some("http://other/p")
    );
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
        let challenge =
            format!(r#"Bearer realm="http://{addr}/token?x=1",service="fake registry",scope="""#);
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
        serde_json::json!({"auths": {&server.addr: {"identitytoken": "idtok-123"}}}).to_string(),
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
    let hints = crate::error::hints(&err);
    assert!(
        hints
            .iter()
            .any(|h| h.contains("registry is running at 127.0.0.1")),
        "{hints:?}"
    );
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
        url_authority("https://u:p@s3.example:9000/b/k?X-Amz-Signature=zz").as_deref(),
        Some("s3.example:9000")
    );
    assert_eq!(url_authority("http://h?x=1").as_deref(), Some("h"));
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
    let https = RegistryRepository::open("reg.invalid", "a", &RegistryOptions::default()).unwrap();
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
