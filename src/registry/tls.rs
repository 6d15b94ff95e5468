//! TLS for one registry: which certificate authorities are trusted (the
//! system store, `--ca-file`, and the `certs.d` directory docker and podman
//! users already keep for a registry with a private CA), which client
//! certificate is offered (mutual TLS, from `certs.d`), and whether to
//! verify at all (`--insecure`). Also decides whether a loopback registry is
//! spoken to over TLS.
//!
//! `certs.d`: for `HOST[:PORT]`, each of `/etc/docker/certs.d/HOST[:PORT]/`
//! and `/etc/containers/certs.d/HOST[:PORT]/` (or the directories in
//! `$OCIGO_CERTS_D`, colon-separated) may hold CA certificates (`*.crt`)
//! and client certificate pairs (`NAME.cert` + `NAME.key`), as docker reads
//! them.
//!
//! Owns: building the `ureq` TLS configuration from those files. Must not:
//! make requests or write files; every file it reads is bounded and must be
//! a regular file.

use std::path::{Path, PathBuf};

use anyhow::Result;
use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

use crate::error::{Kind, fail, fail_hint};

/// The certs.d bases docker and podman read, in that order.
pub const DEFAULT_CERTS_DIRS: [&str; 2] = ["/etc/docker/certs.d", "/etc/containers/certs.d"];

/// Overrides [`DEFAULT_CERTS_DIRS`]: a colon-separated list of directories.
pub const ENV_CERTS_D: &str = "OCIGO_CERTS_D";

/// No certificate or key file is larger than this.
const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// Is there a `certs.d` directory for `host` in any of `bases`? Then the
/// host speaks TLS, even when it is a loopback address.
pub(super) fn has_certs_dir(host: &str, bases: &[PathBuf]) -> bool {
    bases.iter().any(|b| b.join(host).is_dir())
}

/// The certs.d bases to look in: `$OCIGO_CERTS_D` if set, else the defaults.
pub(super) fn certs_bases(explicit: Option<&[PathBuf]>) -> Vec<PathBuf> {
    if let Some(dirs) = explicit {
        return dirs.to_vec();
    }
    match std::env::var_os(ENV_CERTS_D) {
        Some(v) => std::env::split_paths(&v)
            .filter(|p| !p.as_os_str().is_empty())
            .collect(),
        None => DEFAULT_CERTS_DIRS.iter().map(PathBuf::from).collect(),
    }
}

/// Builds the TLS configuration for `host` (`HOST` or `HOST:PORT`, as in
/// the reference): system roots + `ca_files` + the host's `certs.d` CAs;
/// its `certs.d` client certificate, if any; no verification if `insecure`.
pub(super) fn for_host(
    host: &str,
    ca_files: &[PathBuf],
    bases: &[PathBuf],
    insecure: bool,
) -> Result<TlsConfig> {
    let mut roots: Vec<Certificate<'static>> = Vec::new();
    let system = rustls_native_certs::load_native_certs();
    for der in system.certs {
        roots.push(Certificate::from_der(der.as_ref()).to_owned());
    }
    for f in ca_files {
        let certs = read_certs(f)?;
        if certs.is_empty() {
            return Err(fail_hint(
                Kind::Usage,
                format!("CA file {} holds no PEM certificate", f.display()),
                "pass a PEM file with one or more `-----BEGIN CERTIFICATE-----` blocks to --ca-file",
            ));
        }
        roots.extend(certs);
    }
    let mut client: Option<ClientCert> = None;
    for base in bases {
        let dir = base.join(host);
        let Ok(meta) = std::fs::metadata(&dir) else {
            continue;
        };
        if !meta.is_dir() {
            continue;
        }
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map_err(|e| fail(Kind::Usage, format!("cannot read {}: {e}", dir.display())))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        for name in &names {
            let path = dir.join(name);
            if name.ends_with(".crt") {
                roots.extend(read_certs(&path)?);
            } else if let Some(stem) = name.strip_suffix(".cert")
                && client.is_none()
            {
                let key_path = dir.join(format!("{stem}.key"));
                if !key_path.exists() {
                    return Err(fail_hint(
                        Kind::Usage,
                        format!(
                            "client certificate {} has no key beside it ({})",
                            path.display(),
                            key_path.display()
                        ),
                        "put the certificate's private key (PEM) beside it as NAME.key",
                    ));
                }
                let chain = read_certs(&path)?;
                if chain.is_empty() {
                    return Err(fail(
                        Kind::Usage,
                        format!(
                            "client certificate {} holds no PEM certificate",
                            path.display()
                        ),
                    ));
                }
                let key = read_key(&key_path)?;
                client = Some(ClientCert::new_with_certs(&chain, key));
            } else if name.ends_with(".key") {
                let stem = &name[..name.len() - 4];
                if !names.iter().any(|n| *n == format!("{stem}.cert")) {
                    return Err(fail_hint(
                        Kind::Usage,
                        format!("key {} has no client certificate beside it", path.display()),
                        format!("put the matching certificate beside it as {stem}.cert"),
                    ));
                }
            }
        }
    }
    Ok(TlsConfig::builder()
        .root_certs(RootCerts::from(roots))
        .client_cert(client)
        .disable_verification(insecure)
        .build())
}

fn read_pem(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let unreadable =
        |e: std::io::Error| fail(Kind::Usage, format!("cannot read {}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    if !meta.is_file() {
        return Err(fail(
            Kind::Usage,
            format!("{} is not a regular file", path.display()),
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(fail(
            Kind::Usage,
            format!("{} is larger than {MAX_PEM_BYTES} bytes", path.display()),
        ));
    }
    Ok(bytes)
}

/// Every certificate in a PEM file.
fn read_certs(path: &Path) -> Result<Vec<Certificate<'static>>> {
    let pem = read_pem(path)?;
    let mut out = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => out.push(c.to_owned()),
            Ok(_) => {}
            Err(_) => {
                return Err(fail(
                    Kind::Usage,
                    format!("{} is not a valid PEM file", path.display()),
                ));
            }
        }
    }
    Ok(out)
}

/// The private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
fn read_key(path: &Path) -> Result<PrivateKey<'static>> {
    let pem = read_pem(path)?;
    for item in ureq::tls::parse_pem(&pem) {
        if let Ok(PemItem::PrivateKey(k)) = item {
            return Ok(k.to_owned());
        }
    }
    Err(fail(
        Kind::Usage,
        format!("{} holds no PEM private key", path.display()),
    ))
}

/// Is this ureq failure a certificate the client did not trust (or a
/// handshake the server refused)? Then the hint is about trust, not about
/// whether the registry runs.
pub(super) fn tls_failure(e: &ureq::Error) -> Option<String> {
    let rustls_error = match e {
        ureq::Error::Rustls(r) => Some(r.clone()),
        ureq::Error::Io(io) => io
            .get_ref()
            .and_then(|i| i.downcast_ref::<rustls::Error>())
            .cloned(),
        _ => None,
    };
    let r = rustls_error?;
    Some(crate::text::field(&r.to_string()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::kind_of;

    #[test]
    fn certs_d_needs_pairs_and_pem() {
        let base = tempfile::tempdir().unwrap();
        let bases = vec![base.path().to_path_buf()];
        // No directory: not configured, verification on.
        assert!(!has_certs_dir("reg.example:5000", &bases));
        let t = for_host("reg.example:5000", &[], &bases, false).unwrap();
        assert!(!t.disable_verification());
        // An empty directory says "TLS" without adding anything.
        let dir = base.path().join("reg.example:5000");
        std::fs::create_dir(&dir).unwrap();
        let t = for_host("reg.example:5000", &[], &bases, true).unwrap();
        assert!(has_certs_dir("reg.example:5000", &bases) && t.disable_verification());
        // A key without its certificate, garbage in a .crt: usage errors.
        std::fs::write(dir.join("client.key"), "x").unwrap();
        let err = for_host("reg.example:5000", &[], &bases, false)
            .err()
            .unwrap();
        assert_eq!(kind_of(&err), Some(Kind::Usage), "{err:#}");
        assert!(format!("{err:#}").contains("client.key"), "{err:#}");
        std::fs::remove_file(dir.join("client.key")).unwrap();
        std::fs::write(dir.join("ca.crt"), "-----BEGIN CERTIFICATE-----\n!!\n").unwrap();
        let err = for_host("reg.example:5000", &[], &bases, false)
            .err()
            .unwrap();
        assert_eq!(kind_of(&err), Some(Kind::Usage), "{err:#}");
        // A --ca-file with no certificate in it is refused.
        let empty = base.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let err = for_host("other", &[empty], &bases, false).err().unwrap();
        assert!(format!("{err:#}").contains("no PEM certificate"), "{err:#}");
    }
}
