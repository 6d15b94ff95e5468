//! ECDSA P-256 keys in the file formats cosign reads and writes.
//!
//! Private key file: PEM label `ENCRYPTED SIGSTORE PRIVATE KEY` (the legacy
//! `ENCRYPTED COSIGN PRIVATE KEY` is read too). The PEM body is the JSON that
//! go-securesystemslib's `encrypted` package writes, with the fields in this
//! order (Go encodes struct fields in declaration order, `[]byte` as padded
//! standard base64):
//!
//! ```text
//! {"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":"<32 bytes>"},
//!  "cipher":{"name":"nacl/secretbox","nonce":"<24 bytes>"},"ciphertext":"<...>"}
//! ```
//!
//! The plaintext is the PKCS#8 DER of the key; the secretbox key is
//! `scrypt(password, salt, N, r, p, 32)`. Only the three scrypt parameter sets
//! securesystemslib accepts are read (N 2^15, 2^16, 2^17 with r=8, p=1), so a
//! tampered file cannot make us burn unbounded memory or time.
//!
//! Public key file: PKIX `PUBLIC KEY` PEM (uncompressed point), as Go's
//! `x509.MarshalPKIXPublicKey` writes it.
//!
//! Signatures are ASN.1 DER ECDSA over SHA-256 of the payload, as cosign's
//! `SignMessage` produces and `ecdsa.VerifyASN1` accepts (high-S included).

use std::ffi::OsStr;
use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, BufRead, Write};
use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use crypto_secretbox::XSalsa20Poly1305;
use crypto_secretbox::aead::{Aead, KeyInit};
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{self, Signature};
use p256::elliptic_curve::zeroize::Zeroizing;
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{Kind, fail};

/// PEM label cosign writes for new private keys.
pub const SIGSTORE_PRIVATE_KEY_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// PEM label older cosign versions wrote; still read.
pub const COSIGN_PRIVATE_KEY_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";
/// PEM label of a PKIX public key.
pub const PUBLIC_KEY_LABEL: &str = "PUBLIC KEY";
/// Environment variable cosign reads the key password from.
pub const PASSWORD_ENV: &str = "COSIGN_PASSWORD";

const KDF_NAME: &str = "scrypt";
const CIPHER_NAME: &str = "nacl/secretbox";
const SALT_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const BOX_KEY_LEN: usize = 32;
/// securesystemslib "Standard" parameters, what cosign writes today.
const WRITE_PARAMS: ScryptParams = ScryptParams {
    n: 65536,
    r: 8,
    p: 1,
};
/// (log2 N) for each N securesystemslib accepts (Legacy, Standard, OWASP).
const ACCEPTED_LOG_N: [(u64, u8); 3] = [(32768, 15), (65536, 16), (131072, 17)];

/// An ECDSA P-256 private key. `Debug` shows only the public fingerprint.
#[derive(Clone)]
pub struct SigningKey(ecdsa::SigningKey);

/// An ECDSA P-256 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey(ecdsa::VerifyingKey);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.verifying_key().fingerprint())
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({})", self.fingerprint())
    }
}

/// A new random P-256 key from the operating system's RNG.
pub fn generate() -> SigningKey {
    SigningKey(ecdsa::SigningKey::random(&mut OsRng))
}

impl SigningKey {
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(*self.0.verifying_key())
    }

    /// ASN.1 DER ECDSA P-256 signature over SHA-256(payload). Deterministic
    /// nonce (RFC 6979); any ECDSA verifier accepts it.
    pub fn sign(&self, payload: &[u8]) -> Vec<u8> {
        let sig: Signature = self.0.sign(payload);
        sig.to_der().as_bytes().to_vec()
    }

    /// PKCS#8 DER (the plaintext inside a cosign key file).
    fn to_pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        let doc = self
            .0
            .to_pkcs8_der()
            .expect("encoding a valid P-256 key as PKCS#8 cannot fail");
        Zeroizing::new(doc.as_bytes().to_vec())
    }

    /// Reads a PKCS#8 DER private key; `None` unless it is an EC P-256 key.
    fn from_pkcs8_der(der: &[u8]) -> Option<SigningKey> {
        ecdsa::SigningKey::from_pkcs8_der(der).ok().map(SigningKey)
    }
}

impl VerifyingKey {
    /// True if `der_sig` is a valid ASN.1 DER ECDSA signature by this key
    /// over SHA-256(payload). Malformed signatures are simply not valid.
    pub fn verify(&self, payload: &[u8], der_sig: &[u8]) -> bool {
        match Signature::from_der(der_sig) {
            Ok(sig) => self.0.verify(payload, &sig).is_ok(),
            Err(_) => false,
        }
    }

    /// `sha256:<hex>` of the PKIX DER encoding: tells keys apart in messages.
    pub fn fingerprint(&self) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(self.to_pkix_der())))
    }

    /// The public-key hint of a key-only sigstore bundle: base64 of the
    /// SHA-256 of the PKIX DER (what cosign v3 writes).
    pub fn sigstore_hint(&self) -> String {
        B64.encode(Sha256::digest(self.to_pkix_der()))
    }

    fn to_pkix_der(&self) -> Vec<u8> {
        self.0
            .to_public_key_der()
            .expect("encoding a valid P-256 public key as PKIX cannot fail")
            .into_vec()
    }
}

// ---------------------------------------------------------------------------
// Encrypted private key file

#[derive(Serialize, Deserialize)]
struct EncryptedKey {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    salt: String,
}

#[derive(Serialize, Deserialize, Clone, Copy)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u64,
    p: u64,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

fn scrypt_key(password: &[u8], salt: &[u8], log_n: u8, p: ScryptParams) -> Zeroizing<[u8; 32]> {
    let params = scrypt::Params::new(log_n, p.r as u32, p.p as u32, BOX_KEY_LEN)
        .expect("the accepted scrypt parameter sets are valid");
    let mut key = Zeroizing::new([0u8; BOX_KEY_LEN]);
    scrypt::scrypt(password, salt, &params, &mut key[..])
        .expect("32 bytes is a valid scrypt output length");
    key
}

/// Encrypts `key` into a cosign private key file (PEM text, label
/// `ENCRYPTED SIGSTORE PRIVATE KEY`), scrypt N=65536 r=8 p=1.
pub fn encrypt_private_key(key: &SigningKey, password: &[u8]) -> Result<String> {
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    OsRng
        .try_fill_bytes(&mut salt)
        .and_then(|()| OsRng.try_fill_bytes(&mut nonce))
        .context("reading random bytes from the operating system")?;
    Ok(encrypt_with(key, password, &salt, &nonce))
}

fn encrypt_with(
    key: &SigningKey,
    password: &[u8],
    salt: &[u8; SALT_LEN],
    nonce: &[u8; NONCE_LEN],
) -> String {
    let box_key = scrypt_key(password, salt, 16, WRITE_PARAMS);
    let cipher = XSalsa20Poly1305::new((&*box_key).into());
    let ciphertext = cipher
        .encrypt(nonce.into(), key.to_pkcs8_der().as_slice())
        .expect("secretbox encryption of a short message cannot fail");
    let body = EncryptedKey {
        kdf: Kdf {
            name: KDF_NAME.to_string(),
            params: WRITE_PARAMS,
            salt: B64.encode(salt),
        },
        cipher: Cipher {
            name: CIPHER_NAME.to_string(),
            nonce: B64.encode(nonce),
        },
        ciphertext: B64.encode(&ciphertext),
    };
    let json = serde_json::to_vec(&body).expect("serialising plain structs cannot fail");
    pem_encode(SIGSTORE_PRIVATE_KEY_LABEL, &json)
}

/// Decrypts a cosign private key file (either label). A wrong password and a
/// damaged ciphertext look the same to the cipher, so both are reported as
/// "wrong password ... (or the key is corrupted)". All failures are
/// [`Kind::Usage`].
pub fn decrypt_private_key(pem: &str, password: &[u8]) -> Result<SigningKey> {
    decrypt_named(pem, password, "the private key")
}

/// Reads and decrypts the cosign private key file at `path`; messages name
/// the file.
pub fn read_private_key_file(path: &Path, password: &[u8]) -> Result<SigningKey> {
    let text = read_key_file(path, "private key")?;
    decrypt_named(&text, password, &format!("private key {}", path.display()))
}

fn decrypt_named(pem: &str, password: &[u8], what: &str) -> Result<SigningKey> {
    let usage = |msg: String| fail(Kind::Usage, msg);
    let (label, body) =
        pem_decode(pem).map_err(|e| usage(format!("{what} is not readable: {e}")))?;
    if label != SIGSTORE_PRIVATE_KEY_LABEL && label != COSIGN_PRIVATE_KEY_LABEL {
        return Err(usage(format!(
            "{what} has PEM label {label:?}, want {SIGSTORE_PRIVATE_KEY_LABEL:?} \
             (or the legacy {COSIGN_PRIVATE_KEY_LABEL:?}); unencrypted keys can be \
             converted with `cosign import-key-pair`"
        )));
    }
    let der = open_encrypted(&body, password, what)?;
    SigningKey::from_pkcs8_der(&der).ok_or_else(|| {
        usage(format!(
            "{what} decrypted, but it is not an ECDSA P-256 key in PKCS#8 form; \
             ocigo signs with ECDSA P-256 keys only (`cosign generate-key-pair`)"
        ))
    })
}

/// Opens the securesystemslib `encrypted` JSON: checks the algorithm names
/// and scrypt parameters, derives the key and opens the secretbox.
fn open_encrypted(json: &[u8], password: &[u8], what: &str) -> Result<Zeroizing<Vec<u8>>> {
    let usage = |msg: String| fail(Kind::Usage, msg);
    let enc: EncryptedKey = serde_json::from_slice(json).map_err(|e| {
        usage(format!(
            "{what} is corrupted: the PEM body is not the encrypted-key JSON cosign writes ({e})"
        ))
    })?;
    if enc.kdf.name != KDF_NAME {
        return Err(usage(format!(
            "{what} uses key derivation {:?}; only {KDF_NAME:?} is supported",
            enc.kdf.name
        )));
    }
    if enc.cipher.name != CIPHER_NAME {
        return Err(usage(format!(
            "{what} uses cipher {:?}; only {CIPHER_NAME:?} is supported",
            enc.cipher.name
        )));
    }
    let params = enc.kdf.params;
    let log_n = ACCEPTED_LOG_N
        .iter()
        .find(|(n, _)| *n == params.n)
        .map(|(_, log_n)| *log_n)
        .filter(|_| params.r == 8 && params.p == 1)
        .ok_or_else(|| {
            usage(format!(
                "{what} has unsupported scrypt parameters N={} r={} p={}: cosign key \
                 files use N=32768, 65536 or 131072 with r=8 p=1",
                params.n, params.r, params.p
            ))
        })?;
    let field = |name: &str, value: &str| {
        B64.decode(value).map_err(|e| {
            usage(format!(
                "{what} is corrupted: {name} is not valid base64 ({e})"
            ))
        })
    };
    let salt = field("kdf.salt", &enc.kdf.salt)?;
    let nonce = field("cipher.nonce", &enc.cipher.nonce)?;
    let ciphertext = field("ciphertext", &enc.ciphertext)?;
    if nonce.len() != NONCE_LEN {
        return Err(usage(format!(
            "{what} is corrupted: the nonce is {} bytes, want {NONCE_LEN}",
            nonce.len()
        )));
    }
    let box_key = scrypt_key(password, &salt, log_n, params);
    let cipher = XSalsa20Poly1305::new((&*box_key).into());
    Ok(Zeroizing::new(
        cipher
            .decrypt(nonce.as_slice().into(), ciphertext.as_slice())
            .map_err(|_| {
                usage(format!(
                    "wrong password for {what} (or the key is corrupted)"
                ))
            })?,
    ))
}

// ---------------------------------------------------------------------------
// Public key file

/// PKIX `PUBLIC KEY` PEM, byte for byte what cosign writes to `cosign.pub`.
pub fn public_key_pem(key: &VerifyingKey) -> String {
    pem_encode(PUBLIC_KEY_LABEL, &key.to_pkix_der())
}

/// Reads a PKIX `PUBLIC KEY` PEM holding an ECDSA P-256 key ([`Kind::Usage`]
/// on failure).
pub fn read_public_key(pem: &str) -> Result<VerifyingKey> {
    read_public_named(pem, "the public key")
}

/// Reads the PKIX public key file at `path`; messages name the file.
pub fn read_public_key_file(path: &Path) -> Result<VerifyingKey> {
    let text = read_key_file(path, "public key")?;
    read_public_named(&text, &format!("public key {}", path.display()))
}

fn read_public_named(pem: &str, what: &str) -> Result<VerifyingKey> {
    let usage = |msg: String| fail(Kind::Usage, msg);
    let (label, der) =
        pem_decode(pem).map_err(|e| usage(format!("{what} is not readable: {e}")))?;
    if label != PUBLIC_KEY_LABEL {
        return Err(usage(format!(
            "{what} has PEM label {label:?}, want {PUBLIC_KEY_LABEL:?}"
        )));
    }
    ecdsa::VerifyingKey::from_public_key_der(&der)
        .map(VerifyingKey)
        .map_err(|_| {
            usage(format!(
                "{what} is not an ECDSA P-256 public key (PKIX); ocigo verifies \
                 ECDSA P-256 signatures only"
            ))
        })
}

fn read_key_file(path: &Path, what: &str) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| {
        fail(
            Kind::Usage,
            format!("cannot read {what} {}: {e}", path.display()),
        )
    })?;
    String::from_utf8(bytes).map_err(|_| {
        fail(
            Kind::Usage,
            format!("{what} {} is not a PEM text file", path.display()),
        )
    })
}

/// Writes a new private key file with mode 0600. Refuses to replace an
/// existing file ([`Kind::Conflict`]).
pub fn write_private_key_file(path: &Path, pem: &str) -> Result<()> {
    write_new_file(path, pem, 0o600, "private key")
}

/// Writes a new public key file with mode 0644. Refuses to replace an
/// existing file ([`Kind::Conflict`]).
pub fn write_public_key_file(path: &Path, pem: &str) -> Result<()> {
    write_new_file(path, pem, 0o644, "public key")
}

/// Through [`crate::fs::write_new_file`]: `O_CREAT|O_EXCL|O_NOFOLLOW` (a
/// link at `path`, even a dangling one, is refused), `mode` set on the
/// handle whatever the umask, synced.
fn write_new_file(path: &Path, contents: &str, mode: u32, what: &str) -> Result<()> {
    crate::fs::write_new_file(path, contents.as_bytes(), mode, what)
}

// ---------------------------------------------------------------------------
// PEM, as Go's encoding/pem writes it: 64-column base64, trailing newline.

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The first PEM block in `text`: (label, decoded body). Lenient about
/// surrounding text, line length and CRLF, like Go's `pem.Decode`; PEM
/// headers (`Name: value` lines) are not supported (cosign writes none).
fn pem_decode(text: &str) -> std::result::Result<(String, Vec<u8>), String> {
    let mut lines = text.lines().map(str::trim);
    let label = loop {
        match lines.next() {
            None => return Err("no \"-----BEGIN ...-----\" line (is this a PEM file?)".into()),
            Some(line) => {
                if let Some(label) = line
                    .strip_prefix("-----BEGIN ")
                    .and_then(|rest| rest.strip_suffix("-----"))
                {
                    break label.to_string();
                }
            }
        }
    };
    let end = format!("-----END {label}-----");
    let mut b64 = String::new();
    loop {
        match lines.next() {
            None => return Err(format!("the PEM block {label:?} has no \"{end}\" line")),
            Some(line) if line == end => break,
            Some(line) if line.starts_with("-----") => {
                return Err(format!(
                    "the PEM block {label:?} ends with {line:?}, want \"{end}\""
                ));
            }
            Some(line) => b64.push_str(line),
        }
    }
    let body = B64
        .decode(b64.as_bytes())
        .map_err(|e| format!("the PEM block {label:?} is not valid base64 ({e})"))?;
    Ok((label, body))
}

// ---------------------------------------------------------------------------
// Password

/// The key password: `COSIGN_PASSWORD` if set (even to the empty string,
/// which is then accepted only if `allow_empty`), else a prompt on the
/// controlling terminal with echo off (asked twice if `confirm`), else an
/// error telling the user to set `COSIGN_PASSWORD`. All failures are
/// [`Kind::Usage`].
pub fn password_from_env_or_prompt(confirm: bool, allow_empty: bool) -> Result<Vec<u8>> {
    if let Some(pw) =
        password_from_env_value(std::env::var_os(PASSWORD_ENV).as_deref(), allow_empty)
    {
        return pw;
    }
    let tty = match OpenOptions::new().read(true).write(true).open("/dev/tty") {
        Ok(tty) => tty,
        Err(e) => {
            return Err(fail(
                Kind::Usage,
                format!(
                    "a key password is needed but there is no terminal to ask on \
                     (/dev/tty: {e}); set {PASSWORD_ENV}{}",
                    if allow_empty {
                        " (an empty value means no password)"
                    } else {
                        ""
                    }
                ),
            ));
        }
    };
    let pw = prompt_password(&tty, "Enter password for private key: ")?;
    if pw.is_empty() && !allow_empty {
        return Err(fail(Kind::Usage, "the key password must not be empty"));
    }
    if confirm {
        let again = prompt_password(&tty, "Enter password for private key again: ")?;
        if *again != *pw {
            return Err(fail(Kind::Usage, "passwords do not match"));
        }
    }
    Ok(pw.to_vec())
}

/// The password from the value of `COSIGN_PASSWORD`; `None` if unset.
fn password_from_env_value(value: Option<&OsStr>, allow_empty: bool) -> Option<Result<Vec<u8>>> {
    use std::os::unix::ffi::OsStrExt;
    let value = value?;
    if value.is_empty() && !allow_empty {
        return Some(Err(fail(
            Kind::Usage,
            format!("{PASSWORD_ENV} is set but empty, and this key needs a non-empty password"),
        )));
    }
    Some(Ok(value.as_bytes().to_vec()))
}

/// Writes `prompt` to the terminal and reads one line with echo off.
fn prompt_password(tty: &std::fs::File, prompt: &str) -> Result<Zeroizing<Vec<u8>>> {
    let io_err = |e: io::Error| {
        fail(
            Kind::Usage,
            format!("reading the password from the terminal: {e}"),
        )
    };
    let mut out = tty;
    out.write_all(prompt.as_bytes())
        .and_then(|()| out.flush())
        .map_err(io_err)?;
    let mut line = Zeroizing::new(Vec::new());
    {
        let _echo_off = EchoOff::new(tty).map_err(io_err)?;
        io::BufReader::new(tty)
            .read_until(b'\n', &mut line)
            .map_err(io_err)?;
    }
    // Echo was off, so the user's Enter did not move to a new line.
    let _ = out.write_all(b"\n");
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    Ok(line)
}

/// Turns terminal echo off for its lifetime (restored on drop, also when
/// unwinding).
struct EchoOff {
    fd: libc::c_int,
    saved: libc::termios,
}

impl EchoOff {
    fn new(tty: &std::fs::File) -> io::Result<EchoOff> {
        use std::os::unix::io::AsRawFd;
        let fd = tty.as_raw_fd();
        // SAFETY: termios is plain old data; tcgetattr fills it in or fails.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut quiet = saved;
        quiet.c_lflag &= !(libc::ECHO | libc::ECHOE | libc::ECHOK | libc::ECHONL);
        // SAFETY: fd is an open terminal and `quiet` a valid termios.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(EchoOff { fd, saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: restores the attributes read in `new` on the same fd.
        unsafe {
            libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::kind_of;

    const PAYLOAD: &[u8] = br#"{"critical":{"identity":{"docker-reference":"example.com/test/image"},"image":{"docker-manifest-digest":"sha256:d34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33f"},"type":"cosign container image signature"},"optional":null}"#;

    fn err_text(r: Result<impl fmt::Debug>) -> (Option<Kind>, String) {
        let e = r.expect_err("expected an error");
        (kind_of(&e), format!("{e:#}"))
    }

    /// Rewrites the PEM body of a private key file through `edit`.
    fn edit_body(pem: &str, edit: impl FnOnce(String) -> String) -> String {
        let (label, body) = pem_decode(pem).unwrap();
        pem_encode(&label, edit(String::from_utf8(body).unwrap()).as_bytes())
    }

    #[test]
    fn round_trip_generate_encrypt_decrypt_sign_verify() {
        let key = generate();
        let pem = encrypt_private_key(&key, b"correct horse").unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
        assert!(pem.ends_with("-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64 || l.starts_with("-----")));

        // The JSON body has securesystemslib's field names, order and sizes.
        let (_, body) = pem_decode(&pem).unwrap();
        let body = String::from_utf8(body).unwrap();
        let rest = body
            .strip_prefix(r#"{"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":""#)
            .unwrap_or_else(|| panic!("unexpected body {body}"));
        let (salt, rest) = rest.split_once('"').unwrap();
        let rest = rest
            .strip_prefix(r#"},"cipher":{"name":"nacl/secretbox","nonce":""#)
            .unwrap();
        let (nonce, rest) = rest.split_once('"').unwrap();
        let rest = rest.strip_prefix(r#"},"ciphertext":""#).unwrap();
        let (ciphertext, rest) = rest.split_once('"').unwrap();
        assert_eq!(rest, "}");
        assert_eq!(B64.decode(salt).unwrap().len(), 32);
        assert_eq!(B64.decode(nonce).unwrap().len(), 24);
        // 16-byte Poly1305 tag + PKCS#8 DER of a P-256 key (138 bytes).
        assert_eq!(B64.decode(ciphertext).unwrap().len(), 16 + 138);

        let back = decrypt_private_key(&pem, b"correct horse").unwrap();
        assert_eq!(back.verifying_key(), key.verifying_key());
        let sig = back.sign(PAYLOAD);
        assert!(key.verifying_key().verify(PAYLOAD, &sig));
        let sig = key.sign(PAYLOAD);
        assert!(back.verifying_key().verify(PAYLOAD, &sig));

        // Public key PEM round trip.
        let pub_pem = public_key_pem(&key.verifying_key());
        assert!(pub_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert_eq!(read_public_key(&pub_pem).unwrap(), key.verifying_key());
    }

    #[test]
    fn empty_password_round_trips() {
        // cosign allows an empty password (COSIGN_PASSWORD="").
        let key = generate();
        let pem = encrypt_private_key(&key, b"").unwrap();
        let back = decrypt_private_key(&pem, b"").unwrap();
        assert_eq!(back.verifying_key(), key.verifying_key());
    }

    #[test]
    fn wrong_password_is_a_usage_error_with_a_clear_message() {
        let key = generate();
        let pem = encrypt_private_key(&key, b"right").unwrap();
        let (kind, msg) = err_text(decrypt_private_key(&pem, b"wrong"));
        assert_eq!(kind, Some(Kind::Usage));
        assert_eq!(
            msg,
            "wrong password for the private key (or the key is corrupted)"
        );
    }

    #[test]
    fn corrupted_files_fail_with_messages_saying_what_is_wrong() {
        let key = generate();
        let pem = encrypt_private_key(&key, b"pw").unwrap();
        let cases: Vec<(String, &str)> = vec![
            ("just some text\n".into(), "no \"-----BEGIN"),
            (
                pem.replace("-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n", ""),
                "has no \"-----END",
            ),
            (pem.replacen("\n", "\n!!!!\n", 1), "is not valid base64"),
            (
                pem.replace("SIGSTORE PRIVATE", "ANOTHER PRIVATE"),
                "has PEM label \"ENCRYPTED ANOTHER PRIVATE KEY\"",
            ),
            (
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into(),
                "cosign import-key-pair",
            ),
            (
                edit_body(&pem, |b| b[..b.len() / 2].to_string()),
                "is not the encrypted-key JSON cosign writes",
            ),
            (
                edit_body(&pem, |b| b.replace("nacl/secretbox", "aes-gcm")),
                "cipher \"aes-gcm\"",
            ),
            (
                edit_body(&pem, |b| b.replace("\"scrypt\"", "\"argon2\"")),
                "key derivation \"argon2\"",
            ),
            (
                edit_body(&pem, |b| {
                    b.replace("\"ciphertext\":\"", "\"ciphertext\":\"*")
                }),
                "ciphertext is not valid base64",
            ),
            (
                edit_body(&pem, |b| b.replace("\"nonce\":\"", "\"nonce\":\"AAAA")),
                "the nonce is 27 bytes, want 24",
            ),
        ];
        for (text, want) in cases {
            let (kind, msg) = err_text(decrypt_private_key(&text, b"pw"));
            assert_eq!(kind, Some(Kind::Usage), "{msg}");
            assert!(msg.contains(want), "{msg:?} should contain {want:?}");
            assert!(msg.starts_with("the private key "), "{msg}");
        }

        // A flipped ciphertext byte is caught by the MAC.
        let tampered = edit_body(&pem, |b| {
            let (head, tail) = b.split_once("\"ciphertext\":\"").unwrap();
            let mut ct = B64.decode(tail.trim_end_matches("\"}")).unwrap();
            ct[40] ^= 1;
            format!("{head}\"ciphertext\":\"{}\"}}", B64.encode(ct))
        });
        let (kind, msg) = err_text(decrypt_private_key(&tampered, b"pw"));
        assert_eq!(kind, Some(Kind::Usage));
        assert!(msg.contains("or the key is corrupted"), "{msg}");
    }

    #[test]
    fn legacy_cosign_label_is_accepted() {
        let key = generate();
        let pem = encrypt_private_key(&key, b"pw")
            .unwrap()
            .replace(SIGSTORE_PRIVATE_KEY_LABEL, COSIGN_PRIVATE_KEY_LABEL);
        assert!(pem.starts_with("-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----"));
        let back = decrypt_private_key(&pem, b"pw").unwrap();
        assert_eq!(back.verifying_key(), key.verifying_key());
    }

    #[test]
    fn scrypt_parameters_outside_the_accepted_set_are_refused() {
        let key = generate();
        let pem = encrypt_private_key(&key, b"pw").unwrap();
        for (from, to, shown) in [
            (r#""N":65536"#, r#""N":16384"#, "N=16384 r=8 p=1"),
            (r#""N":65536"#, r#""N":1048576"#, "N=1048576 r=8 p=1"),
            (r#""r":8"#, r#""r":16"#, "N=65536 r=16 p=1"),
            (r#""p":1"#, r#""p":2"#, "N=65536 r=8 p=2"),
        ] {
            let bad = edit_body(&pem, |b| b.replace(from, to));
            let (kind, msg) = err_text(decrypt_private_key(&bad, b"pw"));
            assert_eq!(kind, Some(Kind::Usage));
            assert!(
                msg.contains(&format!("unsupported scrypt parameters {shown}")),
                "{msg}"
            );
        }
    }

    /// Vectors written by go-securesystemslib's `encrypted` package (its
    /// `encrypted_test.go`, passphrase "supersecret"), one per accepted scrypt
    /// parameter set. They pin the KDF, the secretbox layout (tag first) and
    /// the JSON field names. The three `kdfVectors` were made with its
    /// `Marshal`, so their plaintext is the JSON string of base64 of
    /// "reallyimportant"; the `TestDecrypt` vector holds the raw bytes.
    #[test]
    fn opens_go_securesystemslib_vectors() {
        let vectors = [
            r#"{"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":"WO3mVvyTwJ9vwT5/Tk5OW5WPIBUofMjcpEfrLnfY4uA="},"cipher":{"name":"nacl/secretbox","nonce":"tCy7HcTFr4uxv4Nrg/DWmncuZ148U1MX"},"ciphertext":"08n43p5G5yviPEZpO7tPPF4aZQkWiWjkv4taFdhDBA0tamKH4nw="}"#,
            r#"{"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":"FhzPOt9/bJG4PTq6lQ6ecG6GzaOuOy/ynG5+yRiFlNs="},"cipher":{"name":"nacl/secretbox","nonce":"aw1ng1jHaDz/tQ7V2gR9O2+IGQ8xJEuE"},"ciphertext":"HycvuLZL4sYH0BrYTh4E/H20VtAW6u5zL5Pr+IBjYLYnCPzDkq8="}"#,
            r#"{"kdf":{"name":"scrypt","params":{"N":131072,"r":8,"p":1},"salt":"m38E3kouJTtiheLQN22NQ8DTito5hrjpUIskqcd375k="},"cipher":{"name":"nacl/secretbox","nonce":"Y6PM13yA+o44pE/W1ZBwczeGnTV/m9Zc"},"ciphertext":"6H8sqj1K6B6yDjtH5AQ6lbFigg/C2yDDJc4rYJ79w9aVPImFIPI="}"#,
        ];
        for v in vectors {
            let plain = open_encrypted(v.as_bytes(), b"supersecret", "vector").unwrap();
            assert_eq!(plain.as_slice(), br#""cmVhbGx5aW1wb3J0YW50""#);
        }
        let raw = r#"{"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":"N9a7x5JFGbrtB2uBR81jPwp0eiLR4A7FV3mjVAQrg1g="},"cipher":{"name":"nacl/secretbox","nonce":"2h8HxMmgRfuYdpswZBQaU3xJ1nkA/5Ik"},"ciphertext":"SEW6sUh0jf2wfdjJGPNS9+bkk2uB+Cxamf32zR8XkQ=="}"#;
        let plain = open_encrypted(raw.as_bytes(), b"supersecret", "vector").unwrap();
        assert_eq!(plain.as_slice(), b"reallyimportant");
        let (kind, msg) = err_text(open_encrypted(vectors[0].as_bytes(), b"supersecreT", "v"));
        assert_eq!(kind, Some(Kind::Usage));
        assert_eq!(msg, "wrong password for v (or the key is corrupted)");
    }

    /// Key files from cosign's own `pkg/cosign/keys_test.go` (password
    /// "hello"): `pemsigstorekey` (SIGSTORE label), `pemcosignkey` (legacy
    /// COSIGN label; its comment there says RSA but it holds a PKCS#8 P-256
    /// key) and `pemcosigneckey` (legacy label, SEC1 instead of PKCS#8 inside,
    /// which cosign refuses too).
    #[test]
    fn reads_key_files_written_by_cosign() {
        const SIGSTORE_KEY: &str = "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----
eyJrZGYiOnsibmFtZSI6InNjcnlwdCIsInBhcmFtcyI6eyJOIjozMjc2OCwiciI6
OCwicCI6MX0sInNhbHQiOiI3T3VGd2VsbWZZNXVId2NoaURSc210anNwZ2ZlZjFG
Mk5lOGFDTjVLYVpZPSJ9LCJjaXBoZXIiOnsibmFtZSI6Im5hY2wvc2VjcmV0Ym94
Iiwibm9uY2UiOiJQNHk4OGhCb3ZTa09MbXN0bFVBaGJwdDJ0K2xTNUxQSCJ9LCJj
aXBoZXJ0ZXh0IjoiMnB1QzdyZldJOWh3bnJlQ2s4aUZDRlVwQlRrSzRJNlIvbFBF
cnBDekpXUGpJWXl4eGVIL1A2VW52cFJHdVhla1NNb3JMdGhLamdoQ1JlNy82NDVH
QWtoVm1LRC92eEF0S2EvbE1abENSQ3FlekJGUFd1dzNpeFRtZ2xhb2J1ZFVSbUVs
bmNGOGlZbzBTMVl6Y1ZOMVFwY2J2c0dNcUlYRzVlbmdteGp5dCtBcXlyZTF0Q0Y0
V01tU1BlaEljNlBqd2h1Q2xHaVpJUWRvTGc9PSJ9
-----END ENCRYPTED SIGSTORE PRIVATE KEY-----
";
        const COSIGN_KEY: &str = "-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----
eyJrZGYiOnsibmFtZSI6InNjcnlwdCIsInBhcmFtcyI6eyJOIjozMjc2OCwiciI6
OCwicCI6MX0sInNhbHQiOiJ4WWdoc09JTUxUWGNOT0RsclNIOUNKc1FlOVFnZmN1
cmUrMXlLdHh1TlkwPSJ9LCJjaXBoZXIiOnsibmFtZSI6Im5hY2wvc2VjcmV0Ym94
Iiwibm9uY2UiOiI0cS9PSlVmaXJkSUkrUjZ0ajZBMmcyQ0JqL25xdFNicCJ9LCJj
aXBoZXJ0ZXh0IjoiKzB4Q3NzcFN0WStBczdKanJpOWtsbHBWd2JhcUI4ZWJNdWto
eS9aVE1MSXRsL3B1YS9jWVJvbytLRGxMWWdmOW1kSjk4K1FnQW9oTktoYnJPMTcw
MHdBY1JTMjFDOE4zQUNJRUVZaWpOMllBNnMraGJSbkhjUnd4eGhDMDFtb2FvL0dO
Y1pmbEJheXZMV3pXblo4d2NDZ2ZpT1o1VXlRTEFJMHh0dnR6dEh3cTdDV1Vhd3V4
RlhlNDZzck9TUE9SNHN6bytabWErUGovSFE9PSJ9
-----END ENCRYPTED COSIGN PRIVATE KEY-----
";
        const COSIGN_SEC1_KEY: &str = "-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----
eyJrZGYiOnsibmFtZSI6InNjcnlwdCIsInBhcmFtcyI6eyJOIjo2NTUzNiwiciI6
OCwicCI6MX0sInNhbHQiOiJHK3F5WTYrNzhNS0JzMXNGTGs1ajYwcS9kS3Z1czBW
VkhlSHZybC9POTF3PSJ9LCJjaXBoZXIiOnsibmFtZSI6Im5hY2wvc2VjcmV0Ym94
Iiwibm9uY2UiOiJRc2JGdG13WDRDK2ttV3ZCcVRaMEFGOUFYdk1jRmg1SCJ9LCJj
aXBoZXJ0ZXh0IjoiREM5T28zeldiYVQzSXYwdFVnWEdycjUxYW1samwwNlQ5MTNP
VkxPbWpuMWhnK2o2WXRUbWg3SGhZSlY1N2J5eGE0Q281bE9YYmRqbTJ3aklubEd1
Um5aZCt5OExnekpSNzFSeEhKVzgrWmRlcFJmYWJMTjdHbDgrSFZEcERVQ3NxQnRh
VngyblpGbFEwWUl1anZwbFphblNGaUVvdERLVGkxZ3VhUXIwUHNzYU01NXZxbTRY
WS9rPSJ9
-----END ENCRYPTED COSIGN PRIVATE KEY-----
";
        for pem in [SIGSTORE_KEY, COSIGN_KEY] {
            let key = decrypt_private_key(pem, b"hello").unwrap();
            let sig = key.sign(PAYLOAD);
            assert!(key.verifying_key().verify(PAYLOAD, &sig));
            let (_, msg) = err_text(decrypt_private_key(pem, b"hellO"));
            assert!(msg.starts_with("wrong password"), "{msg}");
        }
        let (kind, msg) = err_text(decrypt_private_key(COSIGN_SEC1_KEY, b"hello"));
        assert_eq!(kind, Some(Kind::Usage));
        assert!(
            msg.contains("decrypted, but it is not an ECDSA P-256 key in PKCS#8 form"),
            "{msg}"
        );
    }

    // A key and signatures made with Python `cryptography` 48 (OpenSSL),
    // over PAYLOAD. OpenSSL, like Go, does not normalise S, so one
    // signature has a high S: cosign accepts those and so must we.
    const PY_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE4rZPvt8q3dLjZboBxu6zkZmDnKYM
QYnhH+IEV155kTuDahkpOFRCTAq5Nk1f/BqczxkIoccsEtD6UOOCy4FzFw==
-----END PUBLIC KEY-----
";
    const PY_PKCS8_B64: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg2lOqQdnHOS+2RpgzRDY1OI97mnYq1qvEBepR5rdtU9qhRANCAATitk++3yrd0uNlugHG7rORmYOcpgxBieEf4gRXXnmRO4NqGSk4VEJMCrk2TV/8GpzPGQihxywS0PpQ44LLgXMX";
    const PY_SIG_HIGH_S: &str = "MEYCIQDiB+VEycGKxNwitvgi28OvQBkggiUO2bXDf4wLFIaldwIhAJ3SlbJZG5FzspBRtk8XW1dl1Ko+WvSuCMRIu9LZ60Kj";
    const PY_SIG_LOW_S: &str = "MEQCIF/JGcg1Gbik76Y4KiNlRdeBRJRJsk9ab7irdR7bEA3kAiAes8+VfhOo6rN09Hm7m/yeMKhZwos/PDw9Noq9L2qU1Q==";

    #[test]
    fn verifies_signatures_from_an_independent_implementation() {
        let public = read_public_key(PY_PUBLIC_PEM).unwrap();
        // Our PEM writer produces exactly what OpenSSL (and Go) write.
        assert_eq!(public_key_pem(&public), PY_PUBLIC_PEM);
        for sig in [PY_SIG_HIGH_S, PY_SIG_LOW_S] {
            let sig = B64.decode(sig).unwrap();
            assert!(public.verify(PAYLOAD, &sig));
            let mut tampered = PAYLOAD.to_vec();
            tampered[30] ^= 1;
            assert!(!public.verify(&tampered, &sig));
        }
        // Their PKCS#8 is our PKCS#8, byte for byte (Go's
        // x509.MarshalPKCS8PrivateKey writes the same structure).
        let der = B64.decode(PY_PKCS8_B64).unwrap();
        let key = SigningKey::from_pkcs8_der(&der).unwrap();
        assert_eq!(key.verifying_key(), public);
        assert_eq!(key.to_pkcs8_der().as_slice(), der.as_slice());
    }

    /// Live check against Python `cryptography` when it is installed: it
    /// verifies our signature and public key file, and we verify its.
    #[test]
    fn cross_checks_with_python_cryptography_if_available() {
        use std::process::Command;
        let have = Command::new("python3")
            .args(["-c", "import cryptography"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !have {
            eprintln!("skipping: python3 with the `cryptography` package is not available");
            return;
        }
        const SCRIPT: &str = r#"
import base64, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
pub_pem, payload, sig = sys.argv[1].encode(), base64.b64decode(sys.argv[2]), base64.b64decode(sys.argv[3])
serialization.load_pem_public_key(pub_pem).verify(sig, payload, ec.ECDSA(hashes.SHA256()))
k = ec.generate_private_key(ec.SECP256R1())
print(k.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(), end="")
print(base64.b64encode(k.sign(payload, ec.ECDSA(hashes.SHA256()))).decode())
"#;
        let ours = generate();
        let out = Command::new("python3")
            .args([
                "-c",
                SCRIPT,
                &public_key_pem(&ours.verifying_key()),
                &B64.encode(PAYLOAD),
                &B64.encode(ours.sign(PAYLOAD)),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "python rejected our signature: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let (pem, sig) = stdout.rsplit_once("-----\n").unwrap();
        let theirs = read_public_key(&format!("{pem}-----\n")).unwrap();
        assert!(theirs.verify(PAYLOAD, &B64.decode(sig.trim()).unwrap()));
        assert!(
            !ours
                .verifying_key()
                .verify(PAYLOAD, &B64.decode(sig.trim()).unwrap())
        );
    }

    #[test]
    fn cosign_cli_interop_is_not_tested_here() {
        let on_path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join("cosign").is_file()))
            .unwrap_or(false);
        eprintln!(
            "skipping: cosign CLI interop (cosign {}on PATH) is covered by the \
             integration tests, not these unit tests",
            if on_path { "" } else { "not " }
        );
    }

    #[test]
    fn signatures_fail_on_tampering_other_keys_and_garbage() {
        let key = generate();
        let other = generate();
        let sig = key.sign(PAYLOAD);
        let public = key.verifying_key();
        assert!(public.verify(PAYLOAD, &sig));

        let mut tampered = PAYLOAD.to_vec();
        *tampered.last_mut().unwrap() = b' ';
        assert!(!public.verify(&tampered, &sig));
        assert!(!public.verify(&PAYLOAD[..PAYLOAD.len() - 1], &sig));

        assert!(!other.verifying_key().verify(PAYLOAD, &sig));
        assert!(!public.verify(PAYLOAD, &other.sign(PAYLOAD)));

        let mut bad_sig = sig.clone();
        let n = bad_sig.len();
        bad_sig[n - 1] ^= 1;
        assert!(!public.verify(PAYLOAD, &bad_sig));
        assert!(!public.verify(PAYLOAD, b""));
        assert!(!public.verify(PAYLOAD, b"not a signature"));
        // A raw r||s signature is not DER; cosign refuses it too.
        let raw = Signature::from_der(&sig).unwrap().to_bytes();
        assert!(!public.verify(PAYLOAD, &raw));
    }

    #[test]
    fn fingerprint_is_sha256_of_pkix_der() {
        let public = read_public_key(PY_PUBLIC_PEM).unwrap();
        let (_, der) = pem_decode(PY_PUBLIC_PEM).unwrap();
        assert_eq!(
            public.fingerprint(),
            format!("sha256:{}", hex::encode(Sha256::digest(&der)))
        );
        assert_ne!(
            generate().verifying_key().fingerprint(),
            public.fingerprint()
        );
        assert!(format!("{:?}", generate()).starts_with("SigningKey(sha256:"));
    }

    #[test]
    fn public_key_reading_errors() {
        let (kind, msg) = err_text(read_public_key("nothing here"));
        assert_eq!(kind, Some(Kind::Usage));
        assert!(msg.contains("is not readable"), "{msg}");
        let pem = encrypt_private_key(&generate(), b"").unwrap();
        let (_, msg) = err_text(read_public_key(&pem));
        assert!(msg.contains("want \"PUBLIC KEY\""), "{msg}");
        // A P-384 PKIX key (made with Python `cryptography`) is refused clearly.
        let p384 = "-----BEGIN PUBLIC KEY-----
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAE4rdRIVwldZdNLSKYD/LoUvTBhg8JHJN7
guW43mnphXojHBaJ9Q8t9AD37U0gUiiFWVPGsEj+3AFR9YV1bwN653lEEdj3geEJ
h3Ofb/uspe9ibuVdi3dl2s/ytKwbGVgp
-----END PUBLIC KEY-----
";
        let (_, msg) = err_text(read_public_key(p384));
        assert!(msg.contains("is not an ECDSA P-256 public key"), "{msg}");
        // CRLF line ends and surrounding text are tolerated, as Go does.
        let crlf = format!("key:\r\n{}", PY_PUBLIC_PEM.replace('\n', "\r\n"));
        assert!(read_public_key(&crlf).is_ok());
    }

    #[test]
    fn key_files_are_written_once_with_private_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = generate();
        let priv_path = dir.path().join("cosign.key");
        let pub_path = dir.path().join("cosign.pub");
        write_private_key_file(&priv_path, &encrypt_private_key(&key, b"pw").unwrap()).unwrap();
        write_public_key_file(&pub_path, &public_key_pem(&key.verifying_key())).unwrap();
        let mode = std::fs::metadata(&priv_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let (kind, msg) = err_text(write_private_key_file(&priv_path, "x"));
        assert_eq!(kind, Some(Kind::Conflict));
        assert!(msg.contains("already exists"), "{msg}");

        let back = read_private_key_file(&priv_path, b"pw").unwrap();
        assert_eq!(
            back.verifying_key(),
            read_public_key_file(&pub_path).unwrap()
        );
        let (kind, msg) = err_text(read_private_key_file(&priv_path, b"nope"));
        assert_eq!(kind, Some(Kind::Usage));
        assert_eq!(
            msg,
            format!(
                "wrong password for private key {} (or the key is corrupted)",
                priv_path.display()
            )
        );
        let (kind, msg) = err_text(read_public_key_file(&dir.path().join("missing.pub")));
        assert_eq!(kind, Some(Kind::Usage));
        assert!(msg.starts_with("cannot read public key "), "{msg}");
    }

    #[test]
    fn password_from_environment_value() {
        assert!(password_from_env_value(None, true).is_none());
        let pw = password_from_env_value(Some(OsStr::new("s3cret")), false).unwrap();
        assert_eq!(pw.unwrap(), b"s3cret");
        let pw = password_from_env_value(Some(OsStr::new("")), true).unwrap();
        assert_eq!(pw.unwrap(), b"");
        let (kind, msg) = err_text(password_from_env_value(Some(OsStr::new("")), false).unwrap());
        assert_eq!(kind, Some(Kind::Usage));
        assert!(msg.contains("COSIGN_PASSWORD is set but empty"), "{msg}");
    }
}
