//! Resuming a blob download the network cut short: the body reader asks
//! again for the rest with a ranged `GET` (`Range: bytes=N-`), and carries
//! on where it stopped. The caller's `VerifyingReader` sits outside, so the
//! blob is still verified as a whole (size and digest over every byte).
//!
//! Owns: [`Resuming`]. Must not: judge content (a registry that ignores the
//! range and sends the whole blob again has the bytes already received
//! skipped, unverified here, and the digest at the end decides), or retry a
//! deadline that ran out (a stall or a transfer below the speed floor ends
//! the download: see `deadlines`).

use std::io::{self, Read};

use anyhow::Result;

use super::RegistryRepository;
use super::auth::Access;
use super::client::SMALL_REQUEST_TIMEOUT;
use super::deadlines::{Direction, Transfer};
use super::{Payload, Reply};
use crate::error::{Kind, fail};
use crate::oci::{Descriptor, classified_io_error, classify_io};

type Body = Transfer<Box<dyn Read + Send>>;

/// A blob body that re-requests what is missing when its connection breaks,
/// up to the client's retries.
pub(super) struct Resuming<'a> {
    repo: &'a RegistryRepository,
    url: String,
    desc: Descriptor,
    what: String,
    body: Option<Body>,
    got: u64,
    retries: u32,
}

impl<'a> Resuming<'a> {
    /// `first` is the answer to the first, whole `GET`.
    pub(super) fn new(
        repo: &'a RegistryRepository,
        url: String,
        desc: &Descriptor,
        what: String,
        first: Reply,
    ) -> Self {
        let body = repo.body(first, &what, desc.size, 0);
        Resuming {
            repo,
            url,
            desc: desc.clone(),
            what,
            body: Some(body),
            got: 0,
            retries: 0,
        }
    }

    /// Asks for the bytes from `self.got` on.
    fn reopen(&self) -> Result<Body> {
        let range = format!("bytes={}-", self.got);
        let resp = self.repo.request(
            "GET",
            &self.url,
            Access::Pull,
            &[("Accept-Encoding", "identity"), ("Range", &range)],
            Payload::Empty,
            // The rest of a large blob gets only the per-read limits.
            (self.desc.size - self.got <= super::client::SMALL_BLOB_BYTES)
                .then_some(SMALL_REQUEST_TIMEOUT),
        )?;
        match resp.status() {
            206 => {
                let start = resp
                    .header("content-range")
                    .and_then(|r| r.trim().strip_prefix("bytes "))
                    .and_then(|r| r.split('-').next())
                    .and_then(|s| s.trim().parse::<u64>().ok());
                if start != Some(self.got) {
                    return Err(fail(
                        Kind::Remote,
                        format!(
                            "registry {} answered a request for {} from byte {} with another \
                             range ({})",
                            self.repo.host,
                            self.what,
                            self.got,
                            crate::text::field(resp.header("content-range").unwrap_or("none"))
                        ),
                    ));
                }
                Ok(self.repo.body(resp, &self.what, self.desc.size, self.got))
            }
            // The range was ignored: skip what already arrived.
            200 => {
                let mut body = self.repo.body(resp, &self.what, self.desc.size, 0);
                let skipped = io::copy(&mut (&mut body).take(self.got), &mut io::sink())
                    .map_err(|e| classify_io(e, || format!("resuming {}", self.what)))?;
                if skipped != self.got {
                    return Err(fail(
                        Kind::Remote,
                        format!("{}: the connection closed early again", self.what),
                    ));
                }
                Ok(body)
            }
            _ => Err(self
                .repo
                .status_error(resp, &format!("fetch blob {}", self.desc.digest))),
        }
    }
}

impl Read for Resuming<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let body = match self.body.as_mut() {
                Some(b) => b,
                None => unreachable!("a body is set again before reading"),
            };
            let err = match body.read(buf) {
                Ok(n) => {
                    self.got += n as u64;
                    return Ok(n);
                }
                Err(e) => e,
            };
            if !body.interrupted || self.retries >= self.repo.retry.retries {
                if self.retries == 0 {
                    return Err(err);
                }
                let tries = self.retries + 1;
                return Err(classified_io_error(classify_io(err, || {
                    format!("gave up after {tries} attempts")
                })));
            }
            self.retries += 1;
            if let Some(wait) = self.repo.retry.delay(self.retries, None) {
                std::thread::sleep(wait);
            }
            match self.reopen() {
                Ok(b) => self.body = Some(b),
                Err(e) => {
                    let tries = self.retries + 1;
                    return Err(classified_io_error(e.context(format!(
                        "resuming {} after {} of {} bytes (attempt {tries})",
                        self.what, self.got, self.desc.size
                    ))));
                }
            }
        }
    }
}

impl RegistryRepository {
    /// A blob body under the deadlines, counting from `offset`.
    fn body(&self, resp: Reply, what: &str, size: u64, offset: u64) -> Body {
        let reader: Box<dyn Read + Send> = Box::new(resp.into_reader());
        Transfer::new(
            reader,
            what.to_string(),
            size,
            self.limits,
            Direction::Receiving,
        )
        .resumed_at(offset)
    }
}
