//! The registry client against real registries (distribution 2.8.2, the
//! engine Harbor embeds): blobs, manifests, tags, mounts, verification, and
//! the three ways a registry may ask for credentials (none, Basic, Bearer).

mod common;

use std::io::{self, Read};

use common::registry::{TestRegistry, docker_config_with};
use ocigo::error::{Kind, kind_of};
use ocigo::oci::{
    self, Descriptor, Digest, MEDIA_TYPE_EMPTY, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST, Repository,
};
use ocigo::registry::{RegistryOptions, RegistryRepository};
use sha2::{Digest as _, Sha256};

/// Deterministic pseudo-random bytes, generated as read (never in memory).
struct Noise {
    left: u64,
    state: u64,
}

impl Noise {
    fn new(len: u64, seed: u64) -> Noise {
        Noise {
            left: len,
            state: seed | 1,
        }
    }
}

impl Read for Noise {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.left as usize);
        for b in &mut buf[..n] {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            *b = self.state as u8;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Digest and size of a stream, read in full.
fn digest_of(mut r: impl Read) -> io::Result<(Digest, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0; 64 * 1024];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            return Ok((Digest::from_sha256(h), n));
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
}

/// Options that ignore the machine's own docker config.
fn opts_with_config(dir: &tempfile::TempDir) -> RegistryOptions {
    RegistryOptions {
        docker_config: Some(dir.path().to_path_buf()),
        ..RegistryOptions::default()
    }
}

fn no_credentials() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), "{}").unwrap();
    dir
}

fn open(reg: &TestRegistry, repo: &str) -> (RegistryRepository, tempfile::TempDir) {
    let cfg = no_credentials();
    let r = RegistryRepository::open(&reg.addr, repo, &opts_with_config(&cfg)).unwrap();
    (r, cfg)
}

fn push_bytes(repo: &RegistryRepository, media_type: &str, bytes: &[u8]) -> Descriptor {
    let desc = Descriptor::for_bytes(media_type, bytes);
    repo.push_blob(&desc, &mut &bytes[..]).unwrap();
    desc
}

/// A small artifact manifest (empty config, one layer) with deliberately
/// non-canonical JSON, so byte-exactness is visible.
fn artifact_manifest(layer: &Descriptor) -> Vec<u8> {
    let cfg = Descriptor::for_bytes(MEDIA_TYPE_EMPTY, b"{}");
    format!(
        "{{\n  \"schemaVersion\": 2,\n  \"mediaType\": \"{MEDIA_TYPE_MANIFEST}\",\n  \
         \"artifactType\": \"application/x.ocigo.test\",\n  \"config\": {},\n  \"layers\": [{}]\n}}\n",
        serde_json::to_string(&cfg).unwrap(),
        serde_json::to_string(layer).unwrap()
    )
    .into_bytes()
}

fn blob_data_path(reg: &TestRegistry, d: &Digest) -> std::path::PathBuf {
    reg.storage_dir()
        .join("docker/registry/v2/blobs/sha256")
        .join(&d.hex()[..2])
        .join(d.hex())
        .join("data")
}

#[test]
fn client_is_shareable_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<RegistryRepository>();
}

#[test]
fn blobs_stream_up_and_down_including_the_empty_blob() {
    let reg = TestRegistry::start();
    let (repo, _cfg) = open(&reg, "team/mods");
    assert_eq!(repo.location(), format!("{}/team/mods", reg.addr));

    let size = 5 * 1024 * 1024 + 123;
    let (digest, n) = digest_of(Noise::new(size, 7)).unwrap();
    assert_eq!(n, size);
    let desc = Descriptor::new("application/octet-stream", digest.clone(), size);
    assert!(!repo.blob_exists(&digest).unwrap());
    repo.push_blob(&desc, &mut Noise::new(size, 7)).unwrap();
    assert!(repo.blob_exists(&digest).unwrap());
    let (got, got_size) = digest_of(repo.fetch_blob(&desc).unwrap()).unwrap();
    assert_eq!((got, got_size), (digest.clone(), size));
    // Stored under exactly that digest, byte for byte.
    assert_eq!(
        std::fs::metadata(blob_data_path(&reg, &digest))
            .unwrap()
            .len(),
        size
    );

    let empty = Descriptor::for_bytes("application/octet-stream", b"");
    assert!(!repo.blob_exists(&empty.digest).unwrap());
    repo.push_blob(&empty, &mut io::empty()).unwrap();
    assert!(repo.blob_exists(&empty.digest).unwrap());
    let mut out = Vec::new();
    repo.fetch_blob(&empty)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    assert!(out.is_empty());

    // Pushing again is harmless.
    repo.push_blob(&empty, &mut io::empty()).unwrap();
}

#[test]
fn pushed_content_that_does_not_match_its_descriptor_is_refused() {
    let reg = TestRegistry::start();
    let (repo, _cfg) = open(&reg, "team/mods");
    let desc = Descriptor::for_bytes("application/octet-stream", b"the real content");

    for (why, content) in [
        ("different bytes", &b"the fake content"[..]),
        ("shorter", &b"the real"[..]),
        ("longer", &b"the real content and more"[..]),
    ] {
        let err = repo.push_blob(&desc, &mut &content[..]).unwrap_err();
        assert_eq!(kind_of(&err), Some(Kind::Integrity), "{why}: {err:#}");
        assert!(!repo.blob_exists(&desc.digest).unwrap(), "{why}");
    }
}

#[test]
fn manifests_keep_exact_bytes_and_resolve_by_tag_and_digest() {
    let reg = TestRegistry::start();
    let (repo, _cfg) = open(&reg, "team/mods");
    push_bytes(&repo, MEDIA_TYPE_EMPTY, b"{}");
    let layer = push_bytes(&repo, "application/vnd.ocigo.test.layer", b"layer content");
    let bytes = artifact_manifest(&layer);

    // A manifest whose blobs are missing is refused with the registry's reason.
    let orphan = artifact_manifest(&Descriptor::for_bytes("x/y", b"never pushed"));
    let err = repo
        .push_manifest(MEDIA_TYPE_MANIFEST, &orphan, Some("orphan"))
        .unwrap_err();
    assert_eq!(kind_of(&err), Some(Kind::Remote), "{err:#}");
    assert!(
        format!("{err:#}").contains("MANIFEST_BLOB_UNKNOWN"),
        "{err:#}"
    );

    let pushed = repo
        .push_manifest(MEDIA_TYPE_MANIFEST, &bytes, Some("v1"))
        .unwrap();
    assert_eq!(pushed, Descriptor::for_bytes(MEDIA_TYPE_MANIFEST, &bytes));

    let resolved = repo.resolve("v1").unwrap();
    assert_eq!(resolved.digest, Digest::of_bytes(&bytes));
    assert_eq!(resolved.size, bytes.len() as u64);
    assert_eq!(resolved.media_type, MEDIA_TYPE_MANIFEST);
    assert_eq!(repo.resolve(resolved.digest.as_str()).unwrap(), resolved);

    let fetched = repo.fetch_manifest(&resolved).unwrap();
    assert_eq!(fetched.bytes, bytes);
    assert_eq!(fetched.descriptor, resolved);
    assert_eq!(fetched.manifest().unwrap().layers, vec![layer]);

    // An index over it, pushed by digest only, then tagged.
    let mut entry = resolved.clone();
    entry.platform = Some(oci::Platform {
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: None,
    });
    let index = oci::to_canonical_json(&oci::Index {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_INDEX.into()),
        artifact_type: None,
        manifests: vec![entry],
        subject: None,
        annotations: Default::default(),
    });
    let idx = repo.push_manifest(MEDIA_TYPE_INDEX, &index, None).unwrap();
    let by_digest = repo.resolve(idx.digest.as_str()).unwrap();
    assert_eq!(by_digest.media_type, MEDIA_TYPE_INDEX);
    assert!(by_digest.is_index());
    repo.push_manifest(MEDIA_TYPE_INDEX, &index, Some("multi"))
        .unwrap();
    repo.push_manifest(MEDIA_TYPE_MANIFEST, &bytes, Some("v2"))
        .unwrap();
    assert_eq!(repo.resolve("multi").unwrap(), by_digest);
    assert_eq!(repo.fetch_manifest(&by_digest).unwrap().bytes, index);

    let mut tags = repo.list_tags().unwrap();
    tags.sort();
    assert_eq!(tags, vec!["multi", "v1", "v2"]);

    // Bad tags never reach the registry.
    let err = repo
        .push_manifest(MEDIA_TYPE_MANIFEST, &bytes, Some("../v3"))
        .unwrap_err();
    assert_eq!(kind_of(&err), Some(Kind::Usage));
}

#[test]
fn missing_things_are_not_found() {
    let reg = TestRegistry::start();
    let (repo, _cfg) = open(&reg, "team/mods");
    // Unknown repository: no tags, tag not found.
    assert_eq!(repo.list_tags().unwrap(), Vec::<String>::new());
    let err = repo.resolve("v9").unwrap_err();
    assert_eq!(kind_of(&err), Some(Kind::NotFound), "{err:#}");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("v9") && msg.contains(&format!("{}/team/mods", reg.addr)),
        "{msg}"
    );

    // Known repository, unknown tag, digest, blob.
    let layer = push_bytes(&repo, "x/y", b"a layer");
    push_bytes(&repo, MEDIA_TYPE_EMPTY, b"{}");
    repo.push_manifest(MEDIA_TYPE_MANIFEST, &artifact_manifest(&layer), Some("v1"))
        .unwrap();
    let err = repo.resolve("v2").unwrap_err();
    assert_eq!(kind_of(&err), Some(Kind::NotFound), "{err:#}");
    let absent = Descriptor::for_bytes(MEDIA_TYPE_MANIFEST, b"{\"absent\":1}");
    let err = repo.resolve(absent.digest.as_str()).unwrap_err();
    assert_eq!(kind_of(&err), Some(Kind::NotFound), "{err:#}");
    let err = repo.fetch_manifest(&absent).unwrap_err();
    assert_eq!(kind_of(&err), Some(Kind::NotFound), "{err:#}");
    let err = repo.fetch_blob(&absent).err().expect("missing blob");
    assert_eq!(kind_of(&err), Some(Kind::NotFound), "{err:#}");
}

#[test]
fn blobs_mount_between_repositories() {
    let reg = TestRegistry::start();
    let (one, _c1) = open(&reg, "team/one");
    let (two, _c2) = open(&reg, "team/two");
    let desc = push_bytes(&one, "x/y", b"shared layer");
    assert!(!two.blob_exists(&desc.digest).unwrap());
    assert!(two.mount_blob(&desc.digest, "team/one").unwrap());
    assert!(two.blob_exists(&desc.digest).unwrap());
    let mut out = Vec::new();
    two.fetch_blob(&desc)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, b"shared layer");

    // Not in the source repository: declined, nothing appears.
    let other = Descriptor::for_bytes("x/y", b"nowhere");
    assert!(!two.mount_blob(&other.digest, "team/one").unwrap());
    assert!(!two.blob_exists(&other.digest).unwrap());
    // Then the ordinary push still works.
    two.push_blob(&other, &mut &b"nowhere"[..]).unwrap();
    assert!(two.blob_exists(&other.digest).unwrap());
}

#[test]
fn tampered_or_misdescribed_content_fails_integrity() {
    let reg = TestRegistry::start();
    let (repo, _cfg) = open(&reg, "team/mods");
    let content = b"0123456789abcdef".repeat(1000);
    let desc = push_bytes(&repo, "x/y", &content);

    // A descriptor with the right digest but a wrong size.
    let mut wrong_size = desc.clone();
    wrong_size.size += 1;
    let err = repo.fetch_blob(&wrong_size).err().expect("wrong size");
    assert_eq!(kind_of(&err), Some(Kind::Integrity), "{err:#}");

    // The registry's stored bytes changed behind its back (same length):
    // the stream fails when read to the end.
    let mut tampered = content.clone();
    tampered[5000] ^= 1;
    std::fs::write(blob_data_path(&reg, &desc.digest), &tampered).unwrap();
    let mut reader = repo.fetch_blob(&desc).unwrap();
    let io_err = reader.read_to_end(&mut Vec::new()).unwrap_err();
    let err = oci::classify_io(io_err, || "reading blob".into());
    assert_eq!(kind_of(&err), Some(Kind::Integrity), "{err:#}");

    // A manifest whose stored bytes changed.
    push_bytes(&repo, MEDIA_TYPE_EMPTY, b"{}");
    let layer = push_bytes(&repo, "x/y", b"layer");
    let bytes = artifact_manifest(&layer);
    let m = repo
        .push_manifest(MEDIA_TYPE_MANIFEST, &bytes, Some("v1"))
        .unwrap();
    let mut changed = bytes.clone();
    let last = changed.len() - 1;
    changed[last] = b' ';
    std::fs::write(blob_data_path(&reg, &m.digest), &changed).unwrap();
    let err = repo.fetch_manifest(&m).unwrap_err();
    assert_eq!(kind_of(&err), Some(Kind::Integrity), "{err:#}");
}

#[test]
fn basic_auth_needs_the_docker_config_credentials() {
    let password = "pa55-Secret-word";
    let reg = TestRegistry::start_with_htpasswd("ci-user", password);
    let desc = Descriptor::for_bytes("x/y", b"guarded");

    // Anonymous: refused, and the message says what was used.
    let (anon, _cfg) = open(&reg, "team/mods");
    let err = anon.push_blob(&desc, &mut &b"guarded"[..]).unwrap_err();
    let msg = format!("{err:#}");
    assert_eq!(kind_of(&err), Some(Kind::Remote), "{msg}");
    assert!(msg.contains("not permitted"), "{msg}");
    assert!(msg.contains("no credentials"), "{msg}");
    assert!(!msg.contains(password), "{msg}");
    let err = anon.resolve("v1").unwrap_err();
    assert_eq!(kind_of(&err), Some(Kind::Remote), "{err:#}");

    // Wrong password: refused without echoing either password.
    let wrong = docker_config_with(&reg.addr, "ci-user", "not-the-password");
    let repo = RegistryRepository::open(&reg.addr, "team/mods", &opts_with_config(&wrong)).unwrap();
    let err = repo.push_blob(&desc, &mut &b"guarded"[..]).unwrap_err();
    let msg = format!("{err:#}");
    assert_eq!(kind_of(&err), Some(Kind::Remote), "{msg}");
    assert!(msg.contains("config.json"), "{msg}");
    assert!(
        !msg.contains(password) && !msg.contains("not-the-password"),
        "{msg}"
    );

    // The right credentials, from the config file itself (not the dir).
    let right = docker_config_with(&reg.addr, "ci-user", password);
    let opts = RegistryOptions {
        docker_config: Some(right.path().join("config.json")),
        ..RegistryOptions::default()
    };
    let repo = RegistryRepository::open(&reg.addr, "team/mods", &opts).unwrap();
    repo.push_blob(&desc, &mut &b"guarded"[..]).unwrap();
    assert!(repo.blob_exists(&desc.digest).unwrap());
    push_bytes(&repo, MEDIA_TYPE_EMPTY, b"{}");
    let m = repo
        .push_manifest(MEDIA_TYPE_MANIFEST, &artifact_manifest(&desc), Some("v1"))
        .unwrap();
    assert_eq!(repo.resolve("v1").unwrap(), m);
    assert_eq!(repo.list_tags().unwrap(), vec!["v1"]);
}

#[test]
fn bearer_tokens_from_a_token_service_like_harbor() {
    let password = "t0ken-Service-pass";
    let reg = TestRegistry::start_with_token("robot$team+ci", password);
    let tokens = reg.token_service.as_ref().unwrap();
    let desc = Descriptor::for_bytes("x/y", b"bearer content");

    // Anonymous: the token service grants nothing, the registry refuses.
    let (anon, _cfg) = open(&reg, "team/mods");
    let err = anon
        .push_blob(&desc, &mut &b"bearer content"[..])
        .unwrap_err();
    let msg = format!("{err:#}");
    assert_eq!(kind_of(&err), Some(Kind::Remote), "{msg}");
    assert!(msg.contains("not permitted"), "{msg}");

    // Wrong password: the token service refuses it.
    let wrong = docker_config_with(&reg.addr, "robot$team+ci", "wrong-pass-123");
    let repo = RegistryRepository::open(&reg.addr, "team/mods", &opts_with_config(&wrong)).unwrap();
    let err = repo.list_tags().unwrap_err();
    let msg = format!("{err:#}");
    assert_eq!(kind_of(&err), Some(Kind::Remote), "{msg}");
    assert!(
        !msg.contains("wrong-pass-123") && !msg.contains(password),
        "{msg}"
    );

    // Right credentials: everything works, with few token requests.
    let right = docker_config_with(&reg.addr, "robot$team+ci", password);
    let repo = RegistryRepository::open(&reg.addr, "team/mods", &opts_with_config(&right)).unwrap();
    let before = tokens.request_count();
    assert!(!repo.blob_exists(&desc.digest).unwrap());
    repo.push_blob(&desc, &mut &b"bearer content"[..]).unwrap();
    push_bytes(&repo, MEDIA_TYPE_EMPTY, b"{}");
    for i in 0..5 {
        let extra = format!("extra {i}");
        push_bytes(&repo, "x/y", extra.as_bytes());
    }
    let m = repo
        .push_manifest(MEDIA_TYPE_MANIFEST, &artifact_manifest(&desc), Some("v1"))
        .unwrap();
    repo.push_manifest(MEDIA_TYPE_MANIFEST, &artifact_manifest(&desc), Some("v2"))
        .unwrap();
    assert_eq!(repo.resolve("v1").unwrap(), m);
    let mut tags = repo.list_tags().unwrap();
    tags.sort();
    assert_eq!(tags, vec!["v1", "v2"]);
    let other =
        RegistryRepository::open(&reg.addr, "team/other", &opts_with_config(&right)).unwrap();
    assert!(other.mount_blob(&desc.digest, "team/mods").unwrap());
    assert!(other.blob_exists(&desc.digest).unwrap());
    // One token per scope set (pull; pull,push; mount; other's pull), not
    // one per request.
    let used = tokens.request_count() - before;
    assert!((1..=4).contains(&used), "{used} token requests");
}

#[test]
fn unreachable_registry_says_so() {
    let port = common::registry::free_port();
    let host = format!("127.0.0.1:{port}");
    let cfg = no_credentials();
    let repo = RegistryRepository::open(&host, "team/mods", &opts_with_config(&cfg)).unwrap();
    let err = repo.blob_exists(&Digest::of_bytes(b"x")).unwrap_err();
    let msg = format!("{err:#}");
    assert_eq!(kind_of(&err), Some(Kind::Remote), "{msg}");
    assert!(msg.contains(&host) && msg.contains("refused"), "{msg}");
    let hints = ocigo::error::hints(&err);
    assert!(
        hints
            .iter()
            .any(|h| h.contains("running") && h.contains(&host)),
        "{hints:?}"
    );
}

// ---- Scripted HTTP servers, for what a real registry cannot be made to do:
// redirect a blob GET to a blob store that answers with its own challenge;
// Link pagination, identity tokens, refused and unsupported mounts.

#[test]
fn bearer_flow_caches_the_token_and_follows_tag_pages() {
    use fake::{Server, reply};
    let server = Server::start(|req, addr| {
        let challenge =
            format!(r#"Bearer realm="http://{addr}/token?x=1",service="fake registry",scope="""#);
        let basic = basic("alice", "s3cret, with comma");
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
    let config = docker_config_with(&server.addr, "alice", "s3cret, with comma");
    let opts = RegistryOptions {
        docker_config: Some(config.path().to_path_buf()),
        ..Default::default()
    };
    let repo = RegistryRepository::open(&server.addr, "team/mods", &opts).unwrap();
    assert_eq!(repo.list_tags().unwrap(), vec!["a", "b", "c"]);
    assert_eq!(repo.list_tags().unwrap(), vec!["a", "b", "c"]);
    let seen = server.seen();
    let probes = seen.iter().filter(|s| s.path == "/v2/").count();
    let tokens: Vec<&fake::Seen> = seen
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
    use fake::{Server, reply};
    let server = Server::start(|req, addr| {
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
    let config = docker_config_with(&server.addr, "bob", "hunter2-password");
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
    use fake::{Server, reply};
    let server = Server::start(|req, addr| {
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
fn a_refused_or_unsupported_mount_falls_back_to_upload() {
    use fake::{Server, reply};
    let digest = Digest::of_bytes(b"layer");
    for status in [404, 405, 401, 403, 400] {
        let server = Server::start(move |req, _| match req.path.as_str() {
            "/v2/" => reply(200, &[], ""),
            _ => reply(
                status,
                &[],
                r#"{"errors":[{"code":"UNSUPPORTED","message":"no mounts here"}]}"#,
            ),
        });
        let config = docker_config_with(&server.addr, "alice", "pw");
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
    let server = Server::start(|req, _| match req.path.as_str() {
        "/v2/" => reply(200, &[], ""),
        _ => reply(503, &[], ""),
    });
    let config = docker_config_with(&server.addr, "alice", "pw");
    let opts = RegistryOptions {
        docker_config: Some(config.path().to_path_buf()),
        ..Default::default()
    };
    let repo = RegistryRepository::open(&server.addr, "team/two", &opts).unwrap();
    let err = repo.mount_blob(&digest, "team/one").unwrap_err();
    assert_eq!(kind_of(&err), Some(Kind::Remote), "{err:#}");
    assert!(format!("{err:#}").contains("503"), "{err:#}");
}

#[test]
fn a_token_service_on_the_same_loopback_host_gets_the_credentials() {
    use fake::{Server, reply};
    // A registry on 127.0.0.1 whose token service is on `localhost`, another
    // port: the usual local setup; the password goes to the token service
    // although it is plain HTTP, because both are this machine.
    let tokens = Server::start(|_, _| reply(200, &[], r#"{"token":"t-1"}"#));
    let token_port = tokens.addr.split(':').nth(1).unwrap().to_string();
    let registry = Server::start(move |req, _| {
        if req.authorization.as_deref() == Some("Bearer t-1") {
            return reply(200, &[], r#"{"name":"a","tags":["v1"]}"#);
        }
        let challenge =
            format!(r#"Bearer realm="http://localhost:{token_port}/token",service="s""#);
        reply(401, &[("WWW-Authenticate", &challenge)], "")
    });
    let config = docker_config_with(&registry.addr, "alice", "pw");
    let repo = RegistryRepository::open(&registry.addr, "a", &opts_with_config(&config)).unwrap();
    assert_eq!(repo.list_tags().unwrap(), vec!["v1"]);
    let seen = tokens.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(basic("alice", "pw").as_str())
    );
}

/// The `Authorization` value for Basic credentials.
fn basic(user: &str, pass: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

// ---- The scripted server.

mod fake {
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    use crate::common::http;
    pub use crate::common::http::{Reply, reply};

    #[derive(Debug, Clone)]
    pub struct Seen {
        pub method: String,
        pub path: String,
        pub authorization: Option<String>,
        /// The request body, as text.
        pub body: String,
    }

    /// An HTTP/1.1 server on 127.0.0.1 that records every request and
    /// answers each (one per connection) with `handler(request, own addr)`.
    pub struct Server {
        pub addr: String,
        seen: Arc<Mutex<Vec<Seen>>>,
        _server: http::Server,
    }

    impl Server {
        pub fn start(handler: impl Fn(&Seen, &str) -> Reply + Send + 'static) -> Server {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            let seen = Arc::new(Mutex::new(Vec::new()));
            let (seen2, addr2) = (seen.clone(), addr.clone());
            let server = http::serve(listener, move |req| {
                let req = Seen {
                    method: req.method.clone(),
                    path: req.target.clone(),
                    authorization: req.header("authorization").map(str::to_string),
                    body: String::from_utf8_lossy(&req.body).into_owned(),
                };
                seen2.lock().unwrap().push(req.clone());
                handler(&req, &addr2)
            });
            Server {
                addr,
                seen,
                _server: server,
            }
        }

        pub fn seen(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }
    }
}

#[test]
fn a_challenge_from_a_redirect_target_never_gets_the_credentials() {
    use fake::{Server, reply};
    let password = "s3cret-Registry-pass";
    let blob = b"signature payload".to_vec();
    let desc = Descriptor::for_bytes("application/vnd.dev.cosign.simplesigning.v1+json", &blob);

    // Where the blob store sends clients for a token: must never be asked.
    let thief = Server::start(|_, _| reply(200, &[], r#"{"token":"stolen","expires_in":300}"#));
    let thief_realm = format!(
        r#"Bearer realm="http://{}/token",service="store""#,
        thief.addr
    );
    // The blob store (object storage / CDN): refuses with its own challenge.
    let store = Server::start(move |_, _| {
        reply(
            401,
            &[("WWW-Authenticate", &thief_realm)],
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"signature expired"}]}"#,
        )
    });
    let store_addr = store.addr.clone();
    // The registry: Bearer tokens from its own token endpoint (Basic
    // credentials), and blob GETs redirected to the store with a
    // pre-signed URL.
    let expected_basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("alice:{password}")
        )
    );
    let registry = Server::start(move |req, addr| {
        let challenge = format!(
            r#"Bearer realm="http://{addr}/token",service="registry",scope="repository:team/mods:pull""#
        );
        if req.path.starts_with("/token") {
            return if req.authorization.as_deref() == Some(expected_basic.as_str()) {
                reply(200, &[], r#"{"token":"registry-token","expires_in":300}"#)
            } else {
                reply(401, &[], "")
            };
        }
        if req.authorization.as_deref() != Some("Bearer registry-token") {
            return reply(401, &[("WWW-Authenticate", &challenge)], "");
        }
        if req.path == "/v2/" {
            return reply(200, &[], "");
        }
        let location = format!(
            "http://{store_addr}/blobs/abc?X-Amz-Credential=AKIAX&X-Amz-Signature=presigned-sig"
        );
        reply(307, &[("Location", &location)], "")
    });

    let cfg = docker_config_with(&registry.addr, "alice", password);
    let repo =
        RegistryRepository::open(&registry.addr, "team/mods", &opts_with_config(&cfg)).unwrap();
    let errors: Vec<_> = (0..2)
        .map(|_| repo.fetch_blob(&desc).err().expect("the store refuses"))
        .collect();

    // The token server the store named was never contacted, the store never
    // saw an Authorization header, and the registry's challenge stayed the
    // registry's: its own token, fetched once, on every request.
    assert!(thief.seen().is_empty(), "{:?}", thief.seen());
    for (attempt, err) in errors.iter().enumerate() {
        let msg = format!("{err:#}");
        assert_eq!(kind_of(err), Some(Kind::Remote), "{msg}");
        assert!(
            msg.contains(&format!("the blob store {}", store.addr))
                && msg.contains("redirected")
                && msg.contains("HTTP 401"),
            "attempt {attempt}: {msg}"
        );
        for secret in [
            password,
            "presigned-sig",
            "AKIAX",
            "registry-token",
            "Basic ",
        ] {
            assert!(!msg.contains(secret), "attempt {attempt}: {msg}");
        }
    }
    let at_store = store.seen();
    assert_eq!(at_store.len(), 2, "{at_store:?}");
    assert!(
        at_store.iter().all(|s| s.authorization.is_none()),
        "{at_store:?}"
    );
    let at_registry = registry.seen();
    let tokens = at_registry
        .iter()
        .filter(|s| s.path.starts_with("/token"))
        .count();
    assert_eq!(tokens, 1, "{at_registry:?}");
    let blob_gets: Vec<_> = at_registry
        .iter()
        .filter(|s| s.path.contains("/blobs/"))
        .collect();
    assert_eq!(blob_gets.len(), 2, "{at_registry:?}");
    assert!(
        blob_gets
            .iter()
            .all(|s| s.authorization.as_deref() == Some("Bearer registry-token")),
        "{at_registry:?}"
    );
}

#[test]
fn a_mount_the_registry_does_not_support_falls_back_to_not_mounted() {
    use fake::{Server, reply};
    for status in [404, 405] {
        let registry = Server::start(move |req, _| match (req.method.as_str(), &req.path[..]) {
            ("GET", "/v2/") => reply(200, &[], ""),
            ("POST", p) if p.contains("mount=") => reply(
                status,
                &[],
                r#"{"errors":[{"code":"UNSUPPORTED","message":"The operation is unsupported."}]}"#,
            ),
            _ => reply(500, &[], ""),
        });
        let cfg = no_credentials();
        let repo =
            RegistryRepository::open(&registry.addr, "team/two", &opts_with_config(&cfg)).unwrap();
        let digest = Digest::of_bytes(b"shared layer");
        match repo.mount_blob(&digest, "team/one") {
            Ok(false) => {}
            other => panic!("HTTP {status}: {:?}", other.map_err(|e| format!("{e:#}"))),
        }
        // Through the trait, as the copy code calls it.
        assert!(!repo.mount_blob_from(&digest, "team/one").unwrap());
    }
}

// ---- Retries (src/registry/retry.rs): transient answers are retried with
// backoff, Retry-After is honoured, other 4xx answers are final.

fn quick_retries(cfg: &tempfile::TempDir, retries: u32) -> RegistryOptions {
    RegistryOptions {
        retry: Some(ocigo::registry::RetryPolicy {
            retries,
            base: std::time::Duration::from_millis(10),
        }),
        ..opts_with_config(cfg)
    }
}

#[test]
fn transient_answers_are_retried_and_other_4xx_are_not() {
    use fake::{Server, reply};
    use std::sync::atomic::{AtomicUsize, Ordering};
    // 503, 429 (Retry-After: 1), 502, then the answer.
    let n = std::sync::Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let server = Server::start(move |req, _| {
        if req.path == "/v2/" {
            return reply(200, &[], "");
        }
        match n2.fetch_add(1, Ordering::SeqCst) {
            0 => reply(503, &[], ""),
            1 => reply(429, &[("Retry-After", "1")], ""),
            2 => reply(502, &[], ""),
            _ => reply(200, &[], ""),
        }
    });
    let cfg = no_credentials();
    let repo =
        RegistryRepository::open(&server.addr, "team/mods", &quick_retries(&cfg, 5)).unwrap();
    let start = std::time::Instant::now();
    assert!(repo.blob_exists(&Digest::of_bytes(b"x")).unwrap());
    assert!(
        start.elapsed() >= std::time::Duration::from_secs(1),
        "Retry-After ignored"
    );
    assert_eq!(n.load(Ordering::SeqCst), 4);

    // Too few retries: the last status is reported, with the attempts.
    n.store(0, Ordering::SeqCst);
    let repo =
        RegistryRepository::open(&server.addr, "team/mods", &quick_retries(&cfg, 0)).unwrap();
    let err = repo.blob_exists(&Digest::of_bytes(b"x")).unwrap_err();
    assert!(format!("{err:#}").contains("HTTP 503"), "{err:#}");
    let repo =
        RegistryRepository::open(&server.addr, "team/mods", &quick_retries(&cfg, 1)).unwrap();
    n.store(0, Ordering::SeqCst);
    let err = repo.blob_exists(&Digest::of_bytes(b"x")).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("HTTP 429") && msg.contains("the last of 2 attempts"),
        "{msg}"
    );

    // A 400 or 403 is final: one request.
    for status in [400u16, 403] {
        let seen = std::sync::Arc::new(AtomicUsize::new(0));
        let seen2 = seen.clone();
        let server = Server::start(move |req, _| {
            if req.path == "/v2/" {
                return reply(200, &[], "");
            }
            seen2.fetch_add(1, Ordering::SeqCst);
            reply(status, &[], "")
        });
        let repo =
            RegistryRepository::open(&server.addr, "team/mods", &quick_retries(&cfg, 5)).unwrap();
        repo.blob_exists(&Digest::of_bytes(b"x")).unwrap_err();
        assert_eq!(seen.load(Ordering::SeqCst), 1, "HTTP {status} was retried");
    }
}
