//! DSSE (Dead Simple Signing Envelope, secure-systems-lab/dsse v1): the
//! envelope cosign v3 signs in-toto Statements in, and its pre-authentication
//! encoding (PAE), the bytes a signature actually covers:
//!
//! ```text
//! "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body
//! ```
//!
//! (LEN: the byte length in ASCII decimal, no leading zeros). The envelope
//! JSON is `{"payload": base64(body), "payloadType": type, "signatures":
//! [{"keyid"?: .., "sig": base64(DER ECDSA)}]}` (standard base64 with
//! padding, as protojson and cosign write it; unpadded and URL-safe are read
//! too, as the DSSE spec allows).
//!
//! Owns: PAE, signing and verifying an envelope with ECDSA P-256 keys.
//! Must not: interpret the payload (that is [`super::bundle`]'s), reach a
//! repository.

use anyhow::Result;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::keys::{SigningKey, VerifyingKey};
use crate::error::{Kind, fail};

/// The payload type of an in-toto Statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// More signatures in one envelope than anyone makes.
const MAX_ENVELOPE_SIGNATURES: usize = 64;

/// A DSSE envelope as it appears in a sigstore bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// base64 of the payload bytes.
    pub payload: String,
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    /// Optional and unauthenticated (a hint only); cosign writes none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub keyid: String,
    /// base64 of the ASN.1 DER ECDSA signature over the PAE.
    pub sig: String,
}

/// The pre-authentication encoding of `payload` of `payload_type`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// An envelope of `payload` signed by `key` (one signature, no key id, as
/// cosign writes it).
pub fn sign(key: &SigningKey, payload_type: &str, payload: &[u8]) -> Envelope {
    let b64 = base64::engine::general_purpose::STANDARD;
    Envelope {
        payload: b64.encode(payload),
        payload_type: payload_type.to_string(),
        signatures: vec![EnvelopeSignature {
            keyid: String::new(),
            sig: b64.encode(key.sign(&pae(payload_type, payload))),
        }],
    }
}

/// Decodes base64 the ways DSSE allows (standard or URL-safe, padded or not).
fn decode_b64(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let s = s.trim();
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(s).ok())
}

impl Envelope {
    /// The payload bytes (not yet authenticated).
    pub fn payload_bytes(&self) -> Result<Vec<u8>> {
        decode_b64(&self.payload)
            .ok_or_else(|| fail(Kind::Integrity, "the DSSE envelope's payload is not base64"))
    }

    /// Indices into `keys` of the keys that made a valid signature over this
    /// envelope's PAE (each key once, in the order of `keys`), and the
    /// authenticated payload. Malformed signatures are simply not valid.
    pub fn verify<L>(&self, keys: &[(L, VerifyingKey)]) -> Result<(Vec<usize>, Vec<u8>)> {
        let payload = self.payload_bytes()?;
        if self.signatures.len() > MAX_ENVELOPE_SIGNATURES {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "the DSSE envelope has {} signatures, more than the {MAX_ENVELOPE_SIGNATURES} \
                     ocigo reads",
                    self.signatures.len()
                ),
            ));
        }
        let signed = pae(&self.payload_type, &payload);
        let sigs: Vec<Vec<u8>> = self
            .signatures
            .iter()
            .filter_map(|s| decode_b64(&s.sig))
            .collect();
        let by: Vec<usize> = keys
            .iter()
            .enumerate()
            .filter(|(_, (_, k))| sigs.iter().any(|s| k.verify(&signed, s)))
            .map(|(i, _)| i)
            .collect();
        Ok((by, payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::keys::generate;

    #[test]
    fn pae_is_the_spec_encoding() {
        // The DSSE spec's worked example (protocol.md).
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    #[test]
    fn a_signed_envelope_verifies_only_as_signed() {
        let key = generate();
        let other = generate();
        let env = sign(&key, IN_TOTO_PAYLOAD_TYPE, b"{\"a\":1}");
        let keys = [
            ("other", other.verifying_key()),
            ("key", key.verifying_key()),
        ];
        let (by, payload) = env.verify(&keys).unwrap();
        assert_eq!(by, vec![1]);
        assert_eq!(payload, b"{\"a\":1}");

        // The payload type is signed too.
        let mut retyped = env.clone();
        retyped.payload_type = "application/json".into();
        assert!(retyped.verify(&keys).unwrap().0.is_empty());
        // So is every payload byte.
        let mut tampered = env.clone();
        tampered.payload = base64::engine::general_purpose::STANDARD.encode(b"{\"a\":2}");
        assert!(tampered.verify(&keys).unwrap().0.is_empty());
        // Garbage signatures are not valid, not an error.
        let mut garbage = env;
        garbage.signatures[0].sig = "!!".into();
        assert!(garbage.verify(&keys).unwrap().0.is_empty());
    }
}
