//! A CycloneDX 1.6 SBOM (JSON) of a module bundle: one `library`
//! component per module version (name = module path, version, purl
//! `pkg:golang/<path>@<version>`, the zip's SHA-256 as its hash, the go.sum
//! `h1:` hashes as properties), the main modules (the first as
//! `metadata.component`, the others as `application` components), the
//! platforms the closure was resolved for, and the bundle's Go toolchains
//! (`platform` components, as the `golang.org/toolchain` module) when it
//! holds any.
//!
//! Deterministic for a given bundle: components sorted, no timestamp but
//! the bundle's own `created`, a serial number derived from the bundle
//! digest, object keys sorted.
//!
//! purl: the purl spec's golang type definition says namespace and name
//! "must be lowercased"; they are, and every namespace segment, the name
//! and the version are percent-encoded (all but `A-Z a-z 0-9 . - _ ~`, so
//! `+incompatible` is `%2Bincompatible`). The exact, case-sensitive module
//! path stays in the component's `name`.
//!
//! bom-ref: CycloneDX requires every `bom-ref` to be unique, and two module
//! paths that differ only in case (`github.com/Sirupsen/logrus` and
//! `github.com/sirupsen/logrus`) share a purl; so a module's `bom-ref` is
//! `module:<exact path>@<version>`, a main module's `main:<exact path>`, a
//! toolchain's its purl (one module path, lowercase).
//!
//! Owns: the SBOM document. Must not: sign or store it (that is
//! [`crate::sign::attest`]'s and the commands'), write files.

use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::artifact;
use crate::oci::{Descriptor, Repository};
use crate::toolchain::format as toolchain_format;

/// The predicate type of a CycloneDX attestation (cosign's `cyclonedx`).
pub const CYCLONEDX_PREDICATE_TYPE: &str = "https://cyclonedx.org/bom";
const SPEC_VERSION: &str = "1.6";
const SCHEMA: &str = "http://cyclonedx.org/schema/bom-1.6.schema.json";

/// Percent-encodes a purl component: everything but ASCII letters, digits
/// and `.-_~`.
fn purl_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `pkg:golang/<namespace>/<name>[@<version>]` for a module path: segments
/// lowercased (the purl spec's golang rule) and percent-encoded.
pub fn golang_purl(path: &str, version: Option<&str>) -> String {
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| purl_encode(&s.to_lowercase()))
        .collect();
    let mut purl = format!("pkg:golang/{}", segments.join("/"));
    if let Some(v) = version {
        purl.push('@');
        purl.push_str(&purl_encode(v));
    }
    purl
}

fn property(name: &str, value: &str) -> Value {
    json!({"name": name, "value": value})
}

/// A UUID (RFC 9562 version 8, "custom") from the bundle digest, so the
/// same bundle always gets the same serial number.
fn serial_number(top: &Descriptor) -> String {
    let h = Sha256::digest(format!("ocigo sbom {}", top.digest).as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..]
    )
}

/// The SBOM of the module bundle `top` in `repo`, as JSON bytes (compact,
/// keys sorted). Reads the bundle's header and parts (and toolchain
/// configs), not the zips.
pub fn module_bundle_sbom(repo: &dyn Repository, top: &Descriptor) -> Result<Vec<u8>> {
    let outline = artifact::open(repo, top)?;
    let mut checker = artifact::PartChecker::new(&outline);
    // (path, version) -> component; a BTreeMap sorts and de-duplicates.
    let mut modules: BTreeMap<(String, String), Value> = BTreeMap::new();
    for i in 0..outline.parts.len() {
        let part = artifact::load_part(repo, &outline, i)?;
        checker.check(&part)?;
        for m in &part.modules {
            let purl = golang_purl(&m.path, Some(&m.version));
            let bom_ref = format!("module:{}@{}", m.path, m.version);
            let mut properties = Vec::new();
            let mut hashes = Vec::new();
            match &m.zip {
                Some(z) => {
                    properties.push(property("ocigo:h1", &z.hash));
                    hashes.push(json!({"alg": "SHA-256", "content": z.layer.hex()}));
                }
                None => properties.push(property("ocigo:zip", "absent (only go.mod is needed)")),
            }
            properties.push(property("ocigo:go.mod:h1", &m.mod_hash));
            let mut c = json!({
                "type": "library",
                "bom-ref": bom_ref,
                "name": m.path,
                "version": m.version,
                "purl": purl,
                "properties": properties,
            });
            if !hashes.is_empty() {
                c["hashes"] = Value::Array(hashes);
            }
            modules.insert((m.path.clone(), m.version.clone()), c);
        }
    }
    checker.finish(&outline)?;

    let mut components: Vec<Value> = Vec::new();
    let mut mains = outline.main_modules.iter();
    let main_component = |m: &artifact::MainModule| {
        let mut c = json!({
            "type": "application",
            "bom-ref": format!("main:{}", m.path),
            "name": m.path,
            "purl": golang_purl(&m.path, None),
        });
        if let Some(go) = &m.go_version {
            c["properties"] = json!([property("ocigo:go", go)]);
        }
        c
    };
    let metadata_component = mains.next().map(main_component);
    components.extend(mains.map(main_component));
    components.extend(modules.into_values());

    let mut toolchains: Vec<(String, Value)> = Vec::new();
    for entry in toolchain_format::toolchain_entries(repo, top)? {
        let part = toolchain_format::load_part(repo, &entry)?;
        let c = &part.config;
        let purl = golang_purl("golang.org/toolchain", Some(&c.module.version));
        toolchains.push((
            purl.clone(),
            json!({
                "type": "platform",
                "bom-ref": purl,
                "name": "golang.org/toolchain",
                "version": c.module.version,
                "purl": purl,
                "description": format!("Go toolchain {} for {}", c.version, c.platform()),
                "properties": [
                    property("ocigo:go", &c.version),
                    property("ocigo:platform", &c.platform()),
                    property("ocigo:h1", &c.module.hash),
                ],
            }),
        ));
    }
    toolchains.sort_by(|a, b| a.0.cmp(&b.0));
    toolchains.dedup_by(|a, b| a.0 == b.0);
    components.extend(toolchains.into_iter().map(|(_, c)| c));

    let mut metadata = json!({
        "tools": {"components": [{
            "type": "application",
            "name": "ocigo",
            "version": env!("CARGO_PKG_VERSION"),
        }]},
        "properties": std::iter::once(property("ocigo:bundle", top.digest.as_str()))
            .chain(outline.platforms.iter().map(|p| property("ocigo:platform", p)))
            .collect::<Vec<_>>(),
    });
    if let Some(c) = metadata_component {
        metadata["component"] = c;
    }
    if let Some(created) = &outline.created {
        metadata["timestamp"] = Value::String(created.clone());
    }
    let bom = json!({
        "$schema": SCHEMA,
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": serial_number(top),
        "version": 1,
        "metadata": metadata,
        "components": components,
    });
    Ok(serde_json::to_vec(&bom).expect("a JSON value serialises"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purls_follow_the_golang_type() {
        assert_eq!(
            golang_purl("golang.org/x/sync", Some("v0.1.0")),
            "pkg:golang/golang.org/x/sync@v0.1.0"
        );
        assert_eq!(
            golang_purl("github.com/BurntSushi/toml", Some("v1.3.2")),
            "pkg:golang/github.com/burntsushi/toml@v1.3.2"
        );
        assert_eq!(
            golang_purl("github.com/x/y", Some("v2.0.0+incompatible")),
            "pkg:golang/github.com/x/y@v2.0.0%2Bincompatible"
        );
        assert_eq!(
            golang_purl("example.com/m", None),
            "pkg:golang/example.com/m"
        );
        assert_eq!(purl_encode("a b@c"), "a%20b%40c");
    }

    #[test]
    fn bom_refs_are_unique_when_paths_differ_only_in_case() {
        use crate::artifact::{
            FORMAT_VERSION, MainModule, ModuleEntry, ModulesConfig, SplitLimits,
        };
        let t = tempfile::tempdir().unwrap();
        let layout = crate::store::Layout::open_or_create(t.path()).unwrap();
        let module = |path: &str| {
            let go_mod = format!("module {path}\n");
            ModuleEntry {
                path: path.into(),
                version: "v1.0.0".into(),
                info: None,
                mod_hash: crate::gomod::hash_gomod(go_mod.as_bytes()),
                go_mod,
                zip: None,
            }
        };
        let config = ModulesConfig {
            format_version: FORMAT_VERSION,
            main_modules: vec![MainModule {
                path: "example.com/main".into(),
                go_version: None,
            }],
            platforms: vec!["linux/amd64".into()],
            created: None,
            modules: vec![
                module("github.com/Sirupsen/logrus"),
                module("github.com/sirupsen/logrus"),
            ],
        };
        let built = crate::artifact::build(config, SplitLimits::default()).unwrap();
        let top = crate::artifact::push_built(&layout, &built, Some("v1")).unwrap();
        let bom = module_bundle_sbom(&layout, &top).unwrap();
        assert_eq!(bom, module_bundle_sbom(&layout, &top).unwrap());
        let doc: Value = serde_json::from_slice(&bom).unwrap();
        let libraries: Vec<&Value> = doc["components"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["type"] == "library")
            .collect();
        let refs: Vec<&str> = libraries
            .iter()
            .map(|c| c["bom-ref"].as_str().unwrap())
            .collect();
        assert_eq!(
            refs,
            [
                "module:github.com/Sirupsen/logrus@v1.0.0",
                "module:github.com/sirupsen/logrus@v1.0.0"
            ]
        );
        for c in libraries {
            assert_eq!(c["purl"], "pkg:golang/github.com/sirupsen/logrus@v1.0.0");
        }
    }

    #[test]
    fn serial_numbers_are_uuids_fixed_by_the_digest() {
        let d = Descriptor::for_bytes("x", b"bundle");
        let s = serial_number(&d);
        assert_eq!(s, serial_number(&d));
        assert_ne!(s, serial_number(&Descriptor::for_bytes("x", b"other")));
        let uuid = s.strip_prefix("urn:uuid:").unwrap();
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "8", "version 8");
        assert!("89ab".contains(&uuid[19..20]), "RFC variant");
    }
}
