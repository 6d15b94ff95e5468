//! The cosign "simple signing" payload: the bytes a signature covers.
//!
//! cosign builds it with sigstore's `pkg/signature/payload` (`Cosign`
//! marshalled through `SimpleContainerImage`) and Go's `encoding/json`:
//!
//! ```text
//! {"critical":{"identity":{"docker-reference":"<registry/repository>"},
//!  "image":{"docker-manifest-digest":"sha256:<hex>"},
//!  "type":"cosign container image signature"},"optional":null}
//! ```
//!
//! (one line, no spaces). Fields come in struct declaration order;
//! `optional` is `null` when there are no annotations (cosign leaves the map
//! nil then) and otherwise an object with keys sorted bytewise, as Go sorts
//! map keys. Strings are escaped as Go escapes them: `<`, `>`, `&`, U+2028
//! and U+2029 become `\u003c`-style escapes. We write the same bytes so a
//! payload we sign is indistinguishable from one cosign signs.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Deserialize;

use crate::error::{Kind, fail};
use crate::oci::Digest;

/// Layer annotation holding base64(DER signature) of the layer's payload.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Media type of a signature layer (its blob is the payload).
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The value of `critical.type` cosign writes and requires.
pub const COSIGN_SIGNATURE_TYPE: &str = "cosign container image signature";

/// The tag cosign stores the signatures of `digest` under: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &Digest) -> String {
    format!("sha256-{}.sig", digest.hex())
}

/// The payload bytes cosign would sign for `docker_reference` (registry and
/// repository, no tag or digest, e.g. `registry.example/team/mods`) at
/// `manifest_digest` with `annotations` (cosign's `-a key=value`).
pub fn simple_signing_payload(
    docker_reference: &str,
    manifest_digest: &Digest,
    annotations: &BTreeMap<String, String>,
) -> Vec<u8> {
    let mut out = String::with_capacity(256);
    out.push_str(r#"{"critical":{"identity":{"docker-reference":"#);
    go_json_string(&mut out, docker_reference);
    out.push_str(r#"},"image":{"docker-manifest-digest":"#);
    go_json_string(&mut out, manifest_digest.as_str());
    out.push_str(r#"},"type":"#);
    go_json_string(&mut out, COSIGN_SIGNATURE_TYPE);
    out.push_str(r#"},"optional":"#);
    if annotations.is_empty() {
        out.push_str("null");
    } else {
        out.push('{');
        for (i, (key, value)) in annotations.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            go_json_string(&mut out, key);
            out.push(':');
            go_json_string(&mut out, value);
        }
        out.push('}');
    }
    out.push('}');
    out.into_bytes()
}

/// Appends `s` as a JSON string literal the way Go's `encoding/json` writes
/// it (HTML-safe escaping on, Go >= 1.22 short escapes for \b and \f).
fn go_json_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 || c == '<' || c == '>' || c == '&' => {
                let b = c as u8;
                out.push_str("\\u00");
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 0xf) as usize] as char);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// What a signature payload claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedPayload {
    /// `critical.identity.docker-reference`.
    pub docker_reference: String,
    /// `critical.image.docker-manifest-digest`, as written (not validated:
    /// callers compare it with the digest they resolved).
    pub manifest_digest: String,
    /// The string-valued entries of `optional`. Entries with other JSON
    /// values (numbers, objects; cosign itself only writes strings) are left
    /// out, so they can never satisfy a `key=value` requirement.
    pub annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct WirePayload {
    critical: WireCritical,
    #[serde(default)]
    optional: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct WireCritical {
    identity: WireIdentity,
    image: WireImage,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct WireIdentity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Deserialize)]
struct WireImage {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// Parses a simple signing payload and checks that `critical.type` is the
/// cosign type. Failures are [`Kind::Integrity`]: the payload came with a
/// signature and is not one we can trust.
pub fn parse_payload(bytes: &[u8]) -> Result<ParsedPayload> {
    let wire: WirePayload = serde_json::from_slice(bytes).map_err(|e| {
        fail(
            Kind::Integrity,
            format!("signature payload is not a cosign simple signing payload: {e}"),
        )
    })?;
    if wire.critical.kind != COSIGN_SIGNATURE_TYPE {
        return Err(fail(
            Kind::Integrity,
            format!(
                "signature payload has type {:?}, want {COSIGN_SIGNATURE_TYPE:?}",
                wire.critical.kind
            ),
        ));
    }
    let annotations = wire
        .optional
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) => Some((k, s)),
            _ => None,
        })
        .collect();
    Ok(ParsedPayload {
        docker_reference: wire.critical.identity.docker_reference,
        manifest_digest: wire.critical.image.docker_manifest_digest,
        annotations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::kind_of;

    const DIGEST: &str = "sha256:d34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33f";

    /// sigstore `pkg/signature/payload` TestMarshalCosign "no claims" case:
    /// what cosign signs when no `-a` annotations are given.
    const GOLDEN_NO_ANNOTATIONS: &str = r#"{"critical":{"identity":{"docker-reference":"example.com/test/image"},"image":{"docker-manifest-digest":"sha256:d34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33f"},"type":"cosign container image signature"},"optional":null}"#;

    fn digest() -> Digest {
        Digest::parse(DIGEST).unwrap()
    }

    #[test]
    fn payload_without_annotations_matches_cosign_byte_for_byte() {
        let bytes = simple_signing_payload("example.com/test/image", &digest(), &BTreeMap::new());
        assert_eq!(String::from_utf8(bytes).unwrap(), GOLDEN_NO_ANNOTATIONS);
    }

    /// Golden output of Go 1.26 `encoding/json` marshalling sigstore's
    /// `SimpleContainerImage` with these string annotations: keys sorted
    /// bytewise, HTML-safe escapes, \b and \f short escapes, DEL and
    /// non-ASCII written raw, U+2028/2029 escaped.
    #[test]
    fn payload_with_annotations_matches_go_encoding_json() {
        let annotations: BTreeMap<String, String> = [
            ("z", "last"),
            ("GIT_HASH", "abc123"),
            (
                "a/b",
                "x<y>&z \"q\" \\ \u{8}\u{c}\n\r\t\u{1}\u{1f}\u{7f} \u{2028}\u{2029} é 😀",
            ),
            ("B", "upper"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let want = concat!(
            r#"{"critical":{"identity":{"docker-reference":"example.com/test/image"},"#,
            r#""image":{"docker-manifest-digest":"sha256:d34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33f"},"#,
            r#""type":"cosign container image signature"},"#,
            r#""optional":{"B":"upper","GIT_HASH":"abc123","#,
            r#""a/b":"x\u003cy\u003e\u0026z \"q\" \\ \b\f\n\r\t\u0001\u001f"#,
            "\u{7f}",
            r#" \u2028\u2029 é 😀","z":"last"}}"#,
        );
        let bytes = simple_signing_payload("example.com/test/image", &digest(), &annotations);
        assert_eq!(String::from_utf8(bytes.clone()).unwrap(), want);

        // And it parses back to the same claims.
        let parsed = parse_payload(&bytes).unwrap();
        assert_eq!(parsed.docker_reference, "example.com/test/image");
        assert_eq!(parsed.manifest_digest, DIGEST);
        assert_eq!(parsed.annotations, annotations);
    }

    #[test]
    fn parse_reads_cosign_payloads() {
        let parsed = parse_payload(GOLDEN_NO_ANNOTATIONS.as_bytes()).unwrap();
        assert_eq!(
            parsed,
            ParsedPayload {
                docker_reference: "example.com/test/image".into(),
                manifest_digest: DIGEST.into(),
                annotations: BTreeMap::new(),
            }
        );
        // sigstore's "arbitrary claims" case: non-string values are left out.
        let arbitrary = r#"{"critical":{"identity":{"docker-reference":"example.com/cosign/test/image"},"image":{"docker-manifest-digest":"sha256:d34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33f"},"type":"cosign container image signature"},"optional":{"CamelCase WithSpace":8.314,"creator":"anyone","some_struct":{"false":true,"foo":"bar","nothing":null}}}"#;
        let parsed = parse_payload(arbitrary.as_bytes()).unwrap();
        assert_eq!(parsed.docker_reference, "example.com/cosign/test/image");
        assert_eq!(
            parsed.annotations,
            BTreeMap::from([("creator".to_string(), "anyone".to_string())])
        );
        // `optional` may be missing or empty.
        let no_optional = GOLDEN_NO_ANNOTATIONS.replace(r#","optional":null"#, "");
        assert!(
            parse_payload(no_optional.as_bytes())
                .unwrap()
                .annotations
                .is_empty()
        );
        let empty = GOLDEN_NO_ANNOTATIONS.replace("null", "{}");
        assert!(
            parse_payload(empty.as_bytes())
                .unwrap()
                .annotations
                .is_empty()
        );
    }

    #[test]
    fn parse_refuses_other_types_and_garbage() {
        // sigstore's "unknown type" case.
        let atomic = r#"{"critical":{"identity":{"docker-reference":"example.com/atomic/test/image"},"image":{"docker-manifest-digest":"sha256:d34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33f"},"type":"atomic container signature"},"optional":{}}"#;
        let err = parse_payload(atomic.as_bytes()).unwrap_err();
        assert_eq!(kind_of(&err), Some(Kind::Integrity));
        assert!(
            err.to_string()
                .contains("type \"atomic container signature\""),
            "{err}"
        );
        for bad in [
            &b"not json"[..],
            b"{}",
            br#"{"critical":{"identity":{},"image":{"docker-manifest-digest":"x"},"type":"cosign container image signature"}}"#,
            br#"{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"sha256:a"},"type":"cosign container image signature","type":"x"}}"#,
        ] {
            let err = parse_payload(bad).unwrap_err();
            assert_eq!(kind_of(&err), Some(Kind::Integrity));
            assert!(err.to_string().starts_with("signature payload "), "{err}");
        }
    }

    #[test]
    fn tag_and_constants() {
        assert_eq!(
            signature_tag(&digest()),
            "sha256-d34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33f.sig"
        );
        assert_eq!(SIGNATURE_ANNOTATION, "dev.cosignproject.cosign/signature");
        assert_eq!(
            SIMPLE_SIGNING_MEDIA_TYPE,
            "application/vnd.dev.cosign.simplesigning.v1+json"
        );
    }

    #[test]
    fn signed_payload_verifies_and_tampering_is_caught() {
        use crate::sign::keys::generate;
        let key = generate();
        let payload = simple_signing_payload("example.com/test/image", &digest(), &BTreeMap::new());
        let sig = key.sign(&payload);
        assert!(key.verifying_key().verify(&payload, &sig));
        let other = simple_signing_payload(
            "example.com/test/image",
            &Digest::of_bytes(b"another manifest"),
            &BTreeMap::new(),
        );
        assert!(!key.verifying_key().verify(&other, &sig));
    }
}
