//! Retrying what a registry or the network failed transiently: which
//! failures count (a connection refused, reset or cut short; HTTP 408, 429
//! and 5xx other than 501/505), how long to wait between attempts
//! (exponential backoff with full jitter, or the registry's `Retry-After`),
//! and how many attempts there are ([`RetryPolicy`], `OCIGO_RETRIES`).
//!
//! Owns: the retry decision and the wait. Must not: send requests (that is
//! `client`, which runs the loop for requests it can repeat) or extend a
//! deadline: a request that ran out of time (`deadlines`) is not retried,
//! every attempt gets the full deadlines again, and the waits are bounded,
//! so a registry that keeps failing ends in an error within
//! `attempts x (deadline + MAX_DELAY)`.
//!
//! A 4xx answer other than 408 and 429 is final (a 401 is answered once by
//! the auth flow, not here). A request whose body is a stream cannot be
//! repeated here; a blob upload is restarted from a fresh `POST` by whoever
//! can reopen its source (see [`Interrupted`] and `transfer`).

use std::fmt;
use std::time::Duration;

use anyhow::Result;

use crate::error::{Kind, fail};

/// The environment variable giving the number of retries (0: none).
pub const ENV_RETRIES: &str = "OCIGO_RETRIES";

/// Longest wait before one retry (backoff or `Retry-After`).
pub const MAX_DELAY: Duration = Duration::from_secs(10);

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so `retries + 1` attempts).
    pub retries: u32,
    /// The first backoff; each further one doubles, up to [`MAX_DELAY`].
    pub base: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 5,
            base: Duration::from_millis(200),
        }
    }
}

impl RetryPolicy {
    /// The default, with `OCIGO_RETRIES` when it is set and not empty.
    pub fn from_env() -> Result<Self> {
        let mut p = RetryPolicy::default();
        if let Ok(v) = std::env::var(ENV_RETRIES)
            && !v.trim().is_empty()
        {
            p.retries = v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n <= 20)
                .ok_or_else(|| {
                    fail(
                        Kind::Usage,
                        format!(
                            "{ENV_RETRIES}={} is not a number of retries from 0 to 20",
                            crate::text::field(&v)
                        ),
                    )
                })?;
        }
        Ok(p)
    }

    /// The wait before retry number `retry` (1-based): the server's
    /// `Retry-After` when it gave one, else a random time up to
    /// `base * 2^(retry-1)` (full jitter, so parallel transfers that
    /// failed together do not come back together); never over [`MAX_DELAY`].
    /// `None`: the server asked for a longer wait than that, so waiting is
    /// not worth it.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if let Some(after) = retry_after {
            return (after <= MAX_DELAY).then_some(after);
        }
        let cap = self
            .base
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16))
            .min(MAX_DELAY);
        let nanos = cap.as_nanos() as u64;
        if nanos == 0 {
            return Some(Duration::ZERO);
        }
        // At least half the cap, so retries still back off.
        let half = nanos / 2;
        Some(Duration::from_nanos(
            half + random_u64() % (nanos - half + 1),
        ))
    }
}

/// Whether an HTTP status is worth retrying.
pub fn status_is_transient(status: u16) -> bool {
    matches!(status, 408 | 429) || ((500..600).contains(&status) && !matches!(status, 501 | 505))
}

/// `Retry-After: SECONDS`. (The HTTP-date form is not used by registries;
/// it falls back to the backoff.)
pub fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    value?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Whether a transport failure (no HTTP answer) is worth retrying: a
/// connection refused, reset or closed before the answer was complete.
/// Timeouts are not: the deadline has been spent. Neither are TLS failures,
/// unknown hosts or bad URLs, which the next attempt would meet again.
pub fn transport_is_transient(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Io(io) => {
            crate::oci::io_error_kind(io).is_none() && !super::deadlines::io_timed_out(io)
        }
        ureq::Error::ConnectionFailed | ureq::Error::Protocol(_) => true,
        _ => false,
    }
}

/// Marks an error of a blob upload that was interrupted by the network or a
/// transient registry failure: the upload can be restarted from a fresh
/// `POST` with the content read again from its source. Shown as its own
/// words in the error chain.
#[derive(Debug)]
pub struct Interrupted(pub String);

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `err` is an upload interruption worth restarting: marked
/// [`Interrupted`], and not a content failure (a source that does not match
/// its digest fails the same way every time).
pub fn is_interrupted(err: &anyhow::Error) -> bool {
    err.downcast_ref::<Interrupted>().is_some()
        && crate::error::kind_of(err) != Some(Kind::Integrity)
}

/// A random number for jitter; not for secrets.
fn random_u64() -> u64 {
    use rand_core::RngCore;
    rand_core::OsRng.next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_statuses_are_retried() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(status_is_transient(s), "{s}");
        }
        for s in [200, 400, 401, 403, 404, 405, 409, 416, 501, 505] {
            assert!(!status_is_transient(s), "{s}");
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let p = RetryPolicy {
            retries: 5,
            base: Duration::from_millis(100),
        };
        for _ in 0..50 {
            let d1 = p.delay(1, None).unwrap();
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d3 = p.delay(3, None).unwrap();
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
            assert!(p.delay(30, None).unwrap() <= MAX_DELAY);
        }
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(2))),
            Some(Duration::from_secs(2))
        );
        assert_eq!(p.delay(1, Some(Duration::from_secs(3600))), None);
        assert_eq!(parse_retry_after(Some(" 3 ")), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
    }

    #[test]
    fn interrupted_uploads_are_restartable_unless_the_content_is_wrong() {
        let e = fail(Kind::Remote, "connection reset")
            .context(Interrupted("upload cut".into()))
            .context("copying blob x");
        assert!(is_interrupted(&e));
        let e = fail(Kind::Integrity, "digest differs").context(Interrupted("upload cut".into()));
        assert!(!is_interrupted(&e));
        assert!(!is_interrupted(&fail(Kind::Remote, "HTTP 403")));
    }
}
