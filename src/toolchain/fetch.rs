//! Getting a toolchain's module zip (`golang.org/toolchain@v0.0.1-go1.X.Y.
//! <os>-<arch>`) through the user's GOPROXY, checked the go command's way:
//! these versions are never in a go.sum, so the checksum database (GOSUMDB,
//! default `sum.golang.org`, reached through the proxy's `/sumdb/` as the
//! go command does) must record the zip's h1.
//!
//! Owns: GOPROXY / GOSUMDB parsing for this purpose and the download.
//! Must not: write anywhere but the temporary file it returns.

use std::io::{self, Read, Write};
use std::path::Path;

use anyhow::{Context, Result};
use sha2::{Digest as _, Sha256};

use super::tree::{MODULE_PATH, module_version};
use crate::error::{Kind, fail, fail_hint};
use crate::gomod::sumdb::{self, Client, UrlFetch, Verifier};
use crate::gomod::{ModuleVersion, zipcheck};

/// A downloaded, checked module zip.
pub struct FetchedModule {
    pub file: tempfile::NamedTempFile,
    pub sha256: String,
    pub h1: String,
    /// The checksum database that recorded `h1`.
    pub checked_with: String,
}

/// GOPROXY's entries that can serve modules, in order (`direct` and `off`
/// cannot serve golang.org/toolchain zips here).
pub fn proxies() -> Result<Vec<String>> {
    let v = std::env::var("GOPROXY").unwrap_or_default();
    let v = if v.trim().is_empty() {
        "https://proxy.golang.org,direct".to_string()
    } else {
        v
    };
    let list: Vec<String> = v
        .split([',', '|'])
        .map(str::trim)
        .filter(|e| {
            e.starts_with("https://") || e.starts_with("http://") || e.starts_with("file://")
        })
        .map(|e| e.trim_end_matches('/').to_string())
        .collect();
    if list.is_empty() {
        return Err(fail(
            Kind::Usage,
            format!("GOPROXY={v:?} names no module proxy to fetch golang.org/toolchain from"),
        ));
    }
    Ok(list)
}

/// GOSUMDB: the verifier and, if given, the database's own URL.
pub fn sumdb_config() -> Result<(Verifier, Option<String>)> {
    let v = std::env::var("GOSUMDB").unwrap_or_default();
    let v = v.trim();
    if v == "off" {
        return Err(fail_hint(
            Kind::Usage,
            "GOSUMDB=off: a toolchain cannot be checked without the checksum database",
            "unset GOSUMDB (the go command itself insists on the database for golang.org/toolchain)",
        ));
    }
    let mut f = v.split_whitespace();
    let key = f.next().unwrap_or("sum.golang.org");
    let url = f.next().map(str::to_string);
    let key = match key {
        "sum.golang.org" | "sum.golang.google.cn" => sumdb::SUM_GOLANG_ORG_KEY,
        k => k,
    };
    let verifier = Verifier::parse(key)?;
    let url = match (url, v.split_whitespace().next()) {
        (Some(u), _) => Some(u),
        (None, Some("sum.golang.google.cn")) => Some("https://sum.golang.google.cn".into()),
        _ => None,
    };
    Ok((verifier, url))
}

/// Looks the toolchain module up in the checksum database: through each
/// proxy's `/sumdb/<name>/` first, then the database itself.
fn lookup(mv: &str) -> Result<(String, String)> {
    let (verifier, url) = sumdb_config()?;
    let name = verifier.name.clone();
    let mut bases: Vec<String> = proxies()?
        .into_iter()
        .map(|p| format!("{p}/sumdb/{name}"))
        .collect();
    bases.push(url.unwrap_or_else(|| format!("https://{name}")));
    let mut last = None;
    for base in bases {
        let fetch = UrlFetch::new(&base);
        let client = Client::new(verifier.clone(), &fetch);
        match client.lookup(MODULE_PATH, mv) {
            Ok(l) => {
                let h1 = l.zip_hash(MODULE_PATH, mv).map(str::to_string).ok_or_else(|| {
                    fail(
                        Kind::Integrity,
                        format!("the checksum database's record for {MODULE_PATH}@{mv} has no zip hash"),
                    )
                })?;
                return Ok((h1, name));
            }
            // Not served there: try the next. Anything proven wrong stops here.
            Err(e)
                if matches!(
                    crate::error::kind_of(&e),
                    Some(Kind::NotFound | Kind::Remote)
                ) =>
            {
                last = Some(e)
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.expect("at least one base").context(format!(
        "looking {MODULE_PATH}@{mv} up in the checksum database {name}"
    )))
}

/// Downloads and checks the module zip of `version` for `os/arch`.
pub fn fetch_module(version: &str, os: &str, arch: &str, tmp_dir: &Path) -> Result<FetchedModule> {
    let mv = module_version(version, os, arch);
    let (want_h1, db) = lookup(&mv)?;
    let ever = crate::gomod::escape_version(&mv)?;
    let mut last = None;
    for proxy in proxies()? {
        let path = format!("{MODULE_PATH}/@v/{ever}.zip");
        let mut file = tempfile::Builder::new()
            .prefix(".ocigo-toolchain-dl-")
            .tempfile_in(tmp_dir)
            .with_context(|| format!("creating a temporary file in {}", tmp_dir.display()))?;
        let where_ = crate::text::scrub_credentials(&proxy);
        let Some(reader) = UrlFetch::new(&proxy).open(&path)? else {
            last = Some(fail(
                Kind::NotFound,
                format!("{where_} has no {MODULE_PATH}@{mv}"),
            ));
            continue;
        };
        let mut h = Sha256::new();
        let mut limited = reader.take(zipcheck::MAX_ZIP_BYTES + 1);
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0u64;
        loop {
            let k = match limited.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(fail(
                        Kind::Remote,
                        format!("downloading {MODULE_PATH}@{mv} from {where_}: {e}"),
                    ));
                }
            };
            h.update(&buf[..k]);
            file.write_all(&buf[..k]).context("writing the download")?;
            n += k as u64;
        }
        if n > zipcheck::MAX_ZIP_BYTES {
            return Err(fail(
                Kind::Integrity,
                format!("{MODULE_PATH}@{mv} from {where_} is larger than a module zip may be"),
            ));
        }
        file.flush().context("writing the download")?;
        let module = ModuleVersion {
            path: MODULE_PATH.into(),
            version: mv.clone(),
        };
        let summary = zipcheck::check_zip(file.path(), &module, &where_)?;
        if summary.h1 != want_h1 {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "{MODULE_PATH}@{mv} from {where_} hashes to {}, but the checksum database {db} records {want_h1}: refusing it",
                    summary.h1
                ),
            ));
        }
        return Ok(FetchedModule {
            file,
            sha256: hex::encode(h.finalize()),
            h1: want_h1,
            checked_with: db,
        });
    }
    Err(last.expect("at least one proxy"))
}
