//! Unit tests of the registry client's parts that need no server: the
//! challenge grammar, URLs, tags, error bodies, the credential helper order,
//! token realms that would expose credentials. Behaviour against a server
//! is tested in tests/registry_client.rs (real registries, and the one fake
//! of tests/common/http.rs), tests/network_faults.rs and
//! tests/registry_tls.rs.

use super::auth::*;
use super::challenge::*;
use super::credentials::*;
use super::errors::*;
use super::url::*;
use super::*;
use crate::error::kind_of;
use std::net::TcpListener;

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
    // What a server echoes is scrubbed and escaped.
    let hostile = serde_json::json!({"errors": [{
        "code": "DENIED\u{1b}[2J",
        "message": "got Authorization: Bearer abc.def.ghi",
        "detail": "token=s3cret\nnext"
    }]})
    .to_string();
    assert_eq!(
        format_error_body(hostile.as_bytes()),
        ": DENIED\\e[2J: got Authorization: Bearer [redacted] (token=[redacted]\\nnext)"
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
