//! OCI 1.1 referrers against the real registry implementations: CNCF
//! distribution 2.8 and v3 (v3.1.2, checked: neither serves the referrers
//! API, both answer 404 there, so both use the `sha256-<hex>` fallback
//! tag), and tests/refregistry (go-containerregistry's registry, the one
//! WITH the referrers API: `artifactType` filter, `OCI-Subject`, so no
//! fallback tag); OCI layouts (untagged `index.json` entries); `ocigo push`
//! carrying every referrer across 2.8 -> layout -> v3 and across registries
//! with the API; and what no real server here produces (paging, a server
//! that does not apply the filter) against the fake server.

mod common;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use common::http;
use common::ocigo::{json_ok, ocigo};
use common::registry::{Kind as RegistryKind, TestRegistry};
use ocigo::error::{Kind, kind_of};
use ocigo::oci::{
    self, Descriptor, Digest, MEDIA_TYPE_EMPTY, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST, Referrers,
    Repository,
};
use ocigo::registry::{RegistryOptions, RegistryRepository};
use ocigo::store::Layout;

const SBOM: &str = "application/vnd.example.sbom.v1+json";
const SIG: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

fn repo(reg: &TestRegistry, name: &str) -> RegistryRepository {
    RegistryRepository::open(&reg.addr, name, &RegistryOptions::default()).unwrap()
}

/// Pushes the empty config blob and a one-layer manifest; with `subject`
/// it is a referrer of `artifact_type`, pushed through `push_referrer`.
fn push_artifact(
    r: &dyn Repository,
    payload: &[u8],
    artifact_type: Option<&str>,
    subject: Option<&Descriptor>,
    tag: Option<&str>,
) -> Descriptor {
    let empty = Descriptor::for_bytes(MEDIA_TYPE_EMPTY, b"{}");
    if !r.blob_exists(&empty.digest).unwrap() {
        r.push_blob(&empty, &mut &b"{}"[..]).unwrap();
    }
    let layer = Descriptor::for_bytes("application/octet-stream", payload);
    r.push_blob(&layer, &mut &payload[..]).unwrap();
    let mut manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "config": empty,
        "layers": [layer],
        "annotations": {"test.payload": String::from_utf8_lossy(payload)},
    });
    if let Some(t) = artifact_type {
        manifest["artifactType"] = t.into();
    }
    if let Some(s) = subject {
        manifest["subject"] = serde_json::to_value(s).unwrap();
    }
    let bytes = serde_json::to_vec(&manifest).unwrap();
    match subject {
        Some(s) => r.push_referrer(MEDIA_TYPE_MANIFEST, &bytes, s).unwrap(),
        None => r.push_manifest(MEDIA_TYPE_MANIFEST, &bytes, tag).unwrap(),
    }
}

fn digests(list: &[Descriptor]) -> BTreeSet<Digest> {
    list.iter().map(|d| d.digest.clone()).collect()
}

/// The checks every store must pass: referrers found, filtered by
/// artifactType, with their artifactType and annotations; one of another
/// subject never listed.
fn check_referrers(r: &dyn Repository) -> (Descriptor, Descriptor, Descriptor) {
    let x = push_artifact(r, b"subject x", None, None, Some("x"));
    let y = push_artifact(r, b"subject y", None, None, Some("y"));
    assert_eq!(r.referrers(&x.digest, None).unwrap(), vec![], "none yet");
    let sbom = push_artifact(r, b"sbom of x", Some(SBOM), Some(&x), None);
    let sig = push_artifact(r, b"signature of x", Some(SIG), Some(&x), None);
    let other = push_artifact(r, b"sbom of y", Some(SBOM), Some(&y), None);
    // Pushing again changes nothing.
    assert_eq!(
        push_artifact(r, b"sbom of x", Some(SBOM), Some(&x), None),
        sbom
    );

    let all = r.referrers(&x.digest, None).unwrap();
    assert_eq!(
        digests(&all),
        digests(&[sbom.clone(), sig.clone()]),
        "{all:#?}"
    );
    let listed = all.iter().find(|d| d.digest == sbom.digest).unwrap();
    assert_eq!(listed.artifact_type.as_deref(), Some(SBOM));
    assert_eq!(listed.media_type, MEDIA_TYPE_MANIFEST);
    assert_eq!(listed.size, sbom.size);
    assert_eq!(listed.annotations["test.payload"], "sbom of x");

    let only_sboms = r.referrers(&x.digest, Some(SBOM)).unwrap();
    assert_eq!(digests(&only_sboms), digests(std::slice::from_ref(&sbom)));
    assert_eq!(
        r.referrers(&x.digest, Some("application/none")).unwrap(),
        vec![]
    );
    assert_eq!(
        digests(&r.referrers(&y.digest, None).unwrap()),
        digests(&[other])
    );
    (x, sbom, sig)
}

fn referrers_on(kind: RegistryKind) {
    let reg = TestRegistry::start_kind(kind);
    let r = repo(&reg, "team/refs");
    let (x, sbom, sig) = check_referrers(&r);
    // No API (neither 2.8 nor v3.1.2 has it, nor answers OCI-Subject): the
    // fallback tag holds an index of exactly x's referrers.
    let fallback = r.resolve(&oci::referrers_tag(&x.digest)).unwrap();
    let index = r.fetch_manifest(&fallback).unwrap();
    assert!(index.is_index());
    let index = index.index().unwrap();
    assert_eq!(index.media_type.as_deref(), Some(MEDIA_TYPE_INDEX));
    assert_eq!(digests(&index.manifests), digests(&[sbom, sig]));
    // Other clients of the tag schema read it as a plain tag.
    assert!(
        r.list_tags()
            .unwrap()
            .contains(&oci::referrers_tag(&x.digest)),
        "{kind:?}"
    );
}

#[test]
fn referrers_fallback_tag_on_distribution_v3() {
    referrers_on(RegistryKind::Distribution3);
}

#[test]
fn referrers_fallback_tag_on_distribution_2_8() {
    referrers_on(RegistryKind::Distribution2);
}

/// A registry with the API: the referrers list comes from the registry,
/// filtered there (`OCI-Filters-Applied`), and no fallback tag is written
/// since the registry confirms each subject (`OCI-Subject`).
#[test]
fn referrers_api_on_a_registry_that_serves_it() {
    let reg = TestRegistry::start_kind(RegistryKind::Ggcr);
    let r = repo(&reg, "team/refs");
    let (x, _sbom, _sig) = check_referrers(&r);
    let e = r.resolve(&oci::referrers_tag(&x.digest)).unwrap_err();
    assert_eq!(kind_of(&e), Some(Kind::NotFound), "{e:#}");
    assert!(
        !r.list_tags()
            .unwrap()
            .iter()
            .any(|t| t.starts_with("sha256-")),
        "{:?}",
        r.list_tags()
    );
    // The registry answered the filtered query itself, and no request
    // wrote a fallback tag.
    let log = reg.access_log();
    assert!(
        log.contains(&format!(
            "GET /v2/team/refs/referrers/{}?artifactType=application%2Fvnd.example.sbom.v1%2Bjson",
            x.digest
        )),
        "{log}"
    );
    assert!(
        !log.contains("PUT /v2/team/refs/manifests/sha256-"),
        "{log}"
    );
}

#[test]
fn referrers_in_an_oci_layout_are_untagged_index_entries() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::open_or_create(dir.path().join("disk")).unwrap();
    let (x, sbom, sig) = check_referrers(&layout);
    // Untagged entries of index.json, not tags; no fallback tag.
    assert_eq!(layout.list_tags().unwrap(), vec!["x", "y"]);
    let index = layout.read_index().unwrap();
    for r in [&sbom, &sig] {
        let entry = index
            .manifests
            .iter()
            .find(|d| d.digest == r.digest)
            .expect("referrer in index.json");
        assert!(!entry.annotations.contains_key(oci::ANNOTATION_REF_NAME));
    }
    let e = layout.resolve(&oci::referrers_tag(&x.digest)).unwrap_err();
    assert_eq!(kind_of(&e), Some(Kind::NotFound));
}

/// Pushes the fixture-like artifact with a referrer chain to `r`: `top`
/// (tagged v1), an SBOM of it, and a signature of the SBOM.
fn artifact_with_referrer_chain(r: &dyn Repository) -> (Descriptor, Descriptor, Descriptor) {
    let top = push_artifact(r, b"the artifact", None, None, Some("v1"));
    let sbom = push_artifact(r, b"its sbom", Some(SBOM), Some(&top), None);
    let sig = push_artifact(r, b"signature of the sbom", Some(SIG), Some(&sbom), None);
    (top, sbom, sig)
}

#[test]
fn push_carries_every_referrer_from_2_8_through_a_layout_to_v3() {
    let old = TestRegistry::start_kind(RegistryKind::Distribution2);
    let new = TestRegistry::start_kind(RegistryKind::Distribution3);
    let (top, sbom, sig) = artifact_with_referrer_chain(&repo(&old, "team/mods"));
    let sc = tempfile::tempdir().unwrap();
    let store = sc.path().join("store");
    let disk = sc.path().join("disk");
    let push = |src: &str, dest: &str| {
        let out = ocigo(&store, &["push", src, dest, "--json"], &[]);
        json_ok(&out, &format!("ocigo push {src} {dest}"))
    };

    let layout_ref = format!("oci:{}:v1", disk.display());
    let down = push(&format!("{}/team/mods:v1", old.addr), &layout_ref);
    assert_eq!(down["digest"], top.digest.as_str());
    assert_eq!(down["copy"]["referrers"], 2, "{down:#}");
    assert_eq!(down["copy"]["manifests"], 3, "{down:#}");
    assert_eq!(
        down["copy"]["blobs"], 4,
        "empty config + 3 layers: {down:#}"
    );
    let layout = Layout::open(&disk).unwrap();
    assert_eq!(
        digests(&layout.referrers(&top.digest, None).unwrap()),
        digests(std::slice::from_ref(&sbom))
    );
    assert_eq!(
        digests(&layout.referrers(&sbom.digest, Some(SIG)).unwrap()),
        digests(std::slice::from_ref(&sig))
    );
    assert_eq!(layout.list_tags().unwrap(), vec!["v1"]);

    let up = push(&layout_ref, &format!("{}/team/mods:v1", new.addr));
    assert_eq!(up["copy"]["referrers"], 2, "{up:#}");
    let dst = repo(&new, "team/mods");
    assert_eq!(
        digests(&dst.referrers(&top.digest, Some(SBOM)).unwrap()),
        digests(std::slice::from_ref(&sbom))
    );
    assert_eq!(
        digests(&dst.referrers(&sbom.digest, None).unwrap()),
        digests(std::slice::from_ref(&sig))
    );
    // Found through the fallback tag ocigo wrote there.
    assert!(dst.resolve(&oci::referrers_tag(&top.digest)).is_ok());

    // And back to 2.8 in another repository: the fallback tags are written.
    let back = push(
        &format!("{}/team/mods:v1", new.addr),
        &format!("{}/team/copy:v1", old.addr),
    );
    assert_eq!(back["copy"]["referrers"], 2, "{back:#}");
    let copy = repo(&old, "team/copy");
    assert_eq!(
        digests(&copy.referrers(&sbom.digest, None).unwrap()),
        digests(&[sig])
    );
    assert!(copy.resolve(&oci::referrers_tag(&top.digest)).is_ok());
    // A second push sends nothing and finds them all again.
    let again = push(&layout_ref, &format!("{}/team/mods:v1", new.addr));
    assert_eq!(again["copy"]["blobs_sent"], 0, "{again:#}");
    assert_eq!(again["copy"]["referrers"], 2, "{again:#}");
}

/// Every referrer travels between registries with the API, through a
/// layout, and on to one without (where ocigo writes the fallback tags).
#[test]
fn push_carries_every_referrer_across_registries_with_the_referrers_api() {
    let src = TestRegistry::start_kind(RegistryKind::Ggcr);
    let dst = TestRegistry::start_kind(RegistryKind::Ggcr);
    let old = TestRegistry::start_kind(RegistryKind::Distribution2);
    let (top, sbom, sig) = artifact_with_referrer_chain(&repo(&src, "team/mods"));
    let sc = tempfile::tempdir().unwrap();
    let store = sc.path().join("store");
    let push = |from: &str, to: &str| {
        let out = ocigo(&store, &["push", from, to, "--json"], &[]);
        json_ok(&out, &format!("ocigo push {from} {to}"))
    };
    let layout_ref = format!("oci:{}:v1", sc.path().join("disk").display());
    let down = push(&format!("{}/team/mods:v1", src.addr), &layout_ref);
    assert_eq!(down["copy"]["referrers"], 2, "{down:#}");
    let up = push(&layout_ref, &format!("{}/team/mods:v1", dst.addr));
    assert_eq!(up["copy"]["referrers"], 2, "{up:#}");
    let r = repo(&dst, "team/mods");
    assert_eq!(
        digests(&r.referrers(&top.digest, Some(SBOM)).unwrap()),
        digests(std::slice::from_ref(&sbom))
    );
    assert_eq!(
        digests(&r.referrers(&sbom.digest, None).unwrap()),
        digests(std::slice::from_ref(&sig))
    );
    assert_eq!(r.list_tags().unwrap(), vec!["v1"], "no fallback tags");

    let across = push(
        &format!("{}/team/mods:v1", dst.addr),
        &format!("{}/team/mods:v1", old.addr),
    );
    assert_eq!(across["copy"]["referrers"], 2, "{across:#}");
    let r = repo(&old, "team/mods");
    assert_eq!(
        digests(&r.referrers(&sbom.digest, None).unwrap()),
        digests(&[sig])
    );
    assert!(r.resolve(&oci::referrers_tag(&top.digest)).is_ok());
}

#[test]
fn a_listed_referrer_of_another_subject_is_refused_and_nothing_is_written() {
    let reg = TestRegistry::start_kind(RegistryKind::Distribution2);
    let r = repo(&reg, "team/mods");
    let top = push_artifact(&r, b"the artifact", None, None, Some("v1"));
    let other = push_artifact(&r, b"another", None, None, Some("other"));
    let foreign = push_artifact(&r, b"sbom of another", Some(SBOM), Some(&other), None);
    // A fallback index for top that lists a referrer of `other`.
    let mut entry = foreign.clone();
    entry.artifact_type = Some(SBOM.to_string());
    let index = oci::referrers_index_with(None, &entry).unwrap();
    r.push_manifest(
        MEDIA_TYPE_INDEX,
        &oci::to_canonical_json(&index),
        Some(&oci::referrers_tag(&top.digest)),
    )
    .unwrap();

    let sc = tempfile::tempdir().unwrap();
    let disk = sc.path().join("disk");
    let out = ocigo(
        &sc.path().join("store"),
        &[
            "push",
            &format!("{}/team/mods:v1", reg.addr),
            &format!("oci:{}:v1", disk.display()),
        ],
        &[],
    );
    common::ocigo::assert_exit(&out, 3, "push with a lying referrers index");
    let err = common::ocigo::stderr(&out);
    assert!(
        err.contains(&format!(
            "lists {} as a referrer of {}, but its subject is {}",
            foreign.digest, top.digest, other.digest
        )),
        "{err}"
    );
    // Nothing was tagged at the destination.
    let tags = Layout::open(&disk).map(|l| l.list_tags().unwrap());
    assert!(tags.is_err() || tags.unwrap().is_empty());
}

/// Paging and the 404 fallback, against the fake server: page 1 links to
/// page 2 (relative `Link`), and the artifactType filter is applied again
/// by the client when the server did not say it applied it.
#[test]
fn referrers_pages_are_followed_and_filtered() {
    let subject = Digest::of_bytes(b"subject");
    let d = |s: &[u8], t: &str| {
        let mut d = Descriptor::for_bytes(MEDIA_TYPE_MANIFEST, s);
        d.artifact_type = Some(t.to_string());
        d
    };
    let (a, b, c) = (d(b"a", SBOM), d(b"b", SIG), d(b"c", SBOM));
    let page = |list: &[&Descriptor]| {
        serde_json::json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, "manifests": list})
            .to_string()
    };
    let (page1, page2) = (page(&[&a, &b]), page(&[&c]));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let base = format!("/v2/team/mods/referrers/{subject}");
    let server = http::serve(TcpListener::bind("127.0.0.1:0").unwrap(), move |req| {
        seen2.lock().unwrap().push(req.target.clone());
        let path = req.target.split('?').next().unwrap_or("");
        if path == "/v2/" {
            return http::reply(200, &[], "{}");
        }
        if path == base && req.target.contains("page=2") {
            return http::reply(200, &[("Content-Type", MEDIA_TYPE_INDEX)], &page2);
        }
        if path == base {
            let link = format!("<{base}?page=2>; rel=\"next\"");
            return http::reply(
                200,
                &[("Content-Type", MEDIA_TYPE_INDEX), ("Link", &link)],
                &page1,
            );
        }
        http::reply(404, &[], "")
    });
    let r =
        RegistryRepository::open(&server.addr, "team/mods", &RegistryOptions::default()).unwrap();
    assert_eq!(
        digests(&r.referrers(&subject, None).unwrap()),
        digests(&[a.clone(), b.clone(), c.clone()])
    );
    assert_eq!(
        digests(&r.referrers(&subject, Some(SBOM)).unwrap()),
        digests(&[a, c])
    );
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|t| t.ends_with("?artifactType=application%2Fvnd.example.sbom.v1%2Bjson")),
        "{seen:?}"
    );
    // No API (404) and no fallback tag: no referrers, no error.
    let none = Digest::of_bytes(b"unknown");
    assert_eq!(r.referrers(&none, None).unwrap(), vec![]);
}

/// A registry with the API that confirms the subject (`OCI-Subject`): no
/// fallback tag is read or written, and its (non-empty) answer is used as
/// is. One without the header gets the fallback index.
#[test]
fn oci_subject_spares_the_fallback_tag() {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let start = |confirm: bool| {
        let requests = requests.clone();
        http::serve(TcpListener::bind("127.0.0.1:0").unwrap(), move |req| {
            requests
                .lock()
                .unwrap()
                .push(format!("{} {}", req.method, req.target));
            let path = req.target.split('?').next().unwrap_or("");
            match (req.method.as_str(), path) {
                (_, "/v2/") => http::reply(200, &[], "{}"),
                ("PUT", p) if p.starts_with("/v2/team/mods/manifests/") => {
                    let digest = Digest::of_bytes(&req.body).to_string();
                    let subject = Digest::of_bytes(b"subject").to_string();
                    let mut h = vec![("Docker-Content-Digest", digest.as_str())];
                    if confirm {
                        h.push(("OCI-Subject", subject.as_str()));
                    }
                    http::reply(201, &h, "")
                }
                _ => http::reply(404, &[], ""),
            }
        })
    };
    let subject = Descriptor::for_bytes(MEDIA_TYPE_MANIFEST, b"subject");
    let empty = Descriptor::for_bytes(MEDIA_TYPE_EMPTY, b"{}");
    let referrer = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "artifactType": SBOM,
        "config": empty,
        "layers": [],
        "subject": subject,
    }))
    .unwrap();
    let tag_url = format!(
        "/v2/team/mods/manifests/{}",
        oci::referrers_tag(&subject.digest)
    );

    let with_api = start(true);
    let r =
        RegistryRepository::open(&with_api.addr, "team/mods", &RegistryOptions::default()).unwrap();
    let pushed = r
        .push_referrer(MEDIA_TYPE_MANIFEST, &referrer, &subject)
        .unwrap();
    let seen = std::mem::take(&mut *requests.lock().unwrap());
    assert!(
        seen.contains(&format!("PUT /v2/team/mods/manifests/{}", pushed.digest)),
        "{seen:?}"
    );
    assert!(!seen.iter().any(|r| r.contains(&tag_url)), "{seen:?}");

    let without = start(false);
    let r =
        RegistryRepository::open(&without.addr, "team/mods", &RegistryOptions::default()).unwrap();
    r.push_referrer(MEDIA_TYPE_MANIFEST, &referrer, &subject)
        .unwrap();
    let seen = std::mem::take(&mut *requests.lock().unwrap());
    assert!(seen.contains(&format!("PUT {tag_url}")), "{seen:?}");

    // A manifest naming another subject is not pushed as this one's referrer.
    let other = Descriptor::for_bytes(MEDIA_TYPE_MANIFEST, b"other");
    let e = r
        .push_referrer(MEDIA_TYPE_MANIFEST, &referrer, &other)
        .unwrap_err();
    assert_eq!(kind_of(&e), Some(Kind::Usage), "{e:#}");
    assert!(
        requests
            .lock()
            .unwrap()
            .iter()
            .all(|r| !r.starts_with("PUT"))
    );
}
