//! Network deadlines: how long a connection may take to open, how long any
//! one read or write may stall, and the slowest transfer tolerated over a
//! window (curl's `--speed-limit`/`--speed-time`), with their environment
//! overrides; and the reader that enforces the speed floor on blob bodies and
//! reports a body cut short as a network failure naming the blob and the
//! bytes that arrived.
//!
//! Owns: [`NetworkLimits`] and [`Transfer`]. Must not: send requests (that is
//! `client`) or judge content (digests are `oci::VerifyingReader`'s).

use std::io::{self, Read};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::error::{Kind, fail_hint};
use crate::oci::{classified_io_error, io_error_kind};

/// The network deadlines of a registry client. Defaults, and the
/// environment variables that override them (read by
/// [`NetworkLimits::from_env`]):
///
/// | field | default | variable |
/// |---|---|---|
/// | `connect_timeout` | 30 s | `OCIGO_CONNECT_TIMEOUT` (seconds) |
/// | `idle_timeout` | 120 s | `OCIGO_IDLE_TIMEOUT` (seconds) |
/// | `speed_limit` | 1024 B/s | `OCIGO_SPEED_LIMIT` (bytes per second; 0: off) |
/// | `speed_time` | 60 s | `OCIGO_SPEED_TIME` (seconds) |
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NetworkLimits {
    /// Longest a TCP connection (plus proxy tunnel and TLS handshake) may
    /// take to open.
    pub connect_timeout: Duration,
    /// Longest any single read or write may wait, on every connection, new
    /// or reused, and the longest wait for a response's headers.
    pub idle_timeout: Duration,
    /// A blob moving slower than this many bytes per second, averaged over
    /// `speed_time`, is abandoned. 0 turns the check off.
    pub speed_limit: u64,
    /// The window `speed_limit` is measured over.
    pub speed_time: Duration,
}

impl Default for NetworkLimits {
    fn default() -> Self {
        NetworkLimits {
            connect_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            speed_limit: 1024,
            speed_time: Duration::from_secs(60),
        }
    }
}

pub const ENV_CONNECT_TIMEOUT: &str = "OCIGO_CONNECT_TIMEOUT";
pub const ENV_IDLE_TIMEOUT: &str = "OCIGO_IDLE_TIMEOUT";
pub const ENV_SPEED_LIMIT: &str = "OCIGO_SPEED_LIMIT";
pub const ENV_SPEED_TIME: &str = "OCIGO_SPEED_TIME";

impl NetworkLimits {
    /// The defaults, overridden by the `OCIGO_*` variables that are set and
    /// not empty. A value that is not a number is a usage error.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut limits = NetworkLimits::default();
        let seconds = |name: &str, into: &mut Duration| -> Result<()> {
            if let Some(v) = get(name).filter(|v| !v.trim().is_empty()) {
                let secs: f64 = v
                    .trim()
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0)
                    .ok_or_else(|| {
                        fail_hint(
                            Kind::Usage,
                            format!(
                                "{name}={} is not a number of seconds",
                                crate::text::field(&v)
                            ),
                            format!(
                                "set {name} to a positive number of seconds, such as 30 or 0.5"
                            ),
                        )
                    })?;
                *into = Duration::from_secs_f64(secs);
            }
            Ok(())
        };
        seconds(ENV_CONNECT_TIMEOUT, &mut limits.connect_timeout)?;
        seconds(ENV_IDLE_TIMEOUT, &mut limits.idle_timeout)?;
        seconds(ENV_SPEED_TIME, &mut limits.speed_time)?;
        if let Some(v) = get(ENV_SPEED_LIMIT).filter(|v| !v.trim().is_empty()) {
            limits.speed_limit = v.trim().parse().map_err(|_| {
                fail_hint(
                    Kind::Usage,
                    format!(
                        "{ENV_SPEED_LIMIT}={} is not a number of bytes per second",
                        crate::text::field(&v)
                    ),
                    format!("set {ENV_SPEED_LIMIT} to a whole number of bytes per second (0: no minimum)"),
                )
            })?;
        }
        Ok(limits)
    }
}

/// Which way a [`Transfer`] moves bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    /// A response body: a cut or an early end is this reader's to report.
    Receiving,
    /// A request body read from the caller's content: its own errors pass
    /// through untouched; only the speed floor is enforced.
    Sending,
}

/// Wraps a blob body (either way) and enforces the speed floor. Receiving,
/// it also turns a transport error or an end before `expected` bytes into a
/// remote failure that names the blob and how many bytes arrived.
pub(super) struct Transfer<R> {
    inner: R,
    what: String,
    expected: u64,
    got: u64,
    limits: NetworkLimits,
    direction: Direction,
    window_start: Instant,
    window_bytes: u64,
    /// Set when receiving failed in a way a new request may get past (the
    /// connection broke or closed early), not for a deadline that ran out.
    pub(super) interrupted: bool,
}

impl<R: Read> Transfer<R> {
    /// `what` names the blob and where it comes from or goes to, for messages.
    pub(super) fn new(
        inner: R,
        what: String,
        expected: u64,
        limits: NetworkLimits,
        direction: Direction,
    ) -> Self {
        Transfer {
            inner,
            what,
            expected,
            got: 0,
            limits,
            direction,
            window_start: Instant::now(),
            window_bytes: 0,
            interrupted: false,
        }
    }

    /// A body that continues a transfer after `offset` bytes already
    /// arrived (a ranged request): messages count the whole blob.
    pub(super) fn resumed_at(mut self, offset: u64) -> Self {
        self.got = offset;
        self
    }

    fn progress(&self) -> String {
        let verb = match self.direction {
            Direction::Receiving => "received",
            Direction::Sending => "sent",
        };
        format!("{} of {} bytes {verb}", self.got, self.expected)
    }

    fn network_error(&self, message: String) -> io::Error {
        let secs = |d: Duration| format_secs(d);
        classified_io_error(fail_hint(
            Kind::Remote,
            message,
            format!(
                "if the network is just slow, raise {ENV_IDLE_TIMEOUT} (now {}) or lower \
                 {ENV_SPEED_LIMIT} (now {} B/s over {ENV_SPEED_TIME}={})",
                secs(self.limits.idle_timeout),
                self.limits.speed_limit,
                secs(self.limits.speed_time),
            ),
        ))
    }
}

/// `1.5 s`, `120 s`.
pub(super) fn format_secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{} s", s as u64)
    } else {
        format!("{s:.1} s")
    }
}

/// Whether an I/O failure of a connection is one of its deadlines running
/// out (ureq's timeouts, the socket's).
pub(super) fn io_timed_out(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    ) || err
        .get_ref()
        .and_then(|e| e.downcast_ref::<ureq::Error>())
        .is_some_and(|e| matches!(e, ureq::Error::Timeout(_)))
}

/// Says what an I/O failure of a connection was, in words: ureq's timeouts
/// become "no data for N s".
pub(super) fn describe_io(err: &io::Error, limits: &NetworkLimits) -> String {
    if io_timed_out(err) {
        format!(
            "no data for {} ({ENV_IDLE_TIMEOUT})",
            format_secs(limits.idle_timeout)
        )
    } else {
        super::errors::server_text(&err.to_string(), 300)
    }
}

impl<R: Read> Read for Transfer<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) if self.direction == Direction::Sending || io_error_kind(&e).is_some() => {
                return Err(e);
            }
            Err(e) => {
                let why = describe_io(&e, &self.limits);
                self.interrupted = !io_timed_out(&e);
                return Err(self.network_error(format!(
                    "{}: the connection failed after {}: {}",
                    self.what,
                    self.progress(),
                    why
                )));
            }
        };
        if n == 0 && !buf.is_empty() {
            if self.direction == Direction::Receiving && self.got < self.expected {
                self.interrupted = true;
                return Err(self.network_error(format!(
                    "{}: the connection closed early, after {}",
                    self.what,
                    self.progress()
                )));
            }
            return Ok(0);
        }
        self.got += n as u64;
        self.window_bytes += n as u64;
        if self.direction == Direction::Sending && self.got >= self.expected {
            // The HTTP client stops reading once Content-Length bytes are
            // sent; read on to the end so the source's own end-of-stream
            // checks (a digest that does not match) fail the request
            // instead of letting the registry store something else.
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? != 0 {
                return Err(io::Error::other(format!(
                    "{}: the content is longer than {} bytes",
                    self.what, self.expected
                )));
            }
        }
        let elapsed = self.window_start.elapsed();
        if self.limits.speed_limit > 0 && elapsed >= self.limits.speed_time {
            let floor = self.limits.speed_limit as f64 * elapsed.as_secs_f64();
            if (self.window_bytes as f64) < floor && self.got < self.expected {
                return Err(self.network_error(format!(
                    "{}: slower than {} B/s for {} ({} bytes in the last {}), abandoned after {}",
                    self.what,
                    self.limits.speed_limit,
                    format_secs(self.limits.speed_time),
                    self.window_bytes,
                    format_secs(elapsed),
                    self.progress()
                )));
            }
            self.window_start = Instant::now();
            self.window_bytes = 0;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::kind_of;
    use crate::oci::classify_io;

    #[test]
    fn limits_come_from_the_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            NetworkLimits::from_lookup(env(&[])).unwrap(),
            NetworkLimits::default()
        );
        let l = NetworkLimits::from_lookup(env(&[
            ("OCIGO_CONNECT_TIMEOUT", "2"),
            ("OCIGO_IDLE_TIMEOUT", "0.5"),
            ("OCIGO_SPEED_LIMIT", "0"),
            ("OCIGO_SPEED_TIME", " "),
        ]))
        .unwrap();
        assert_eq!(l.connect_timeout, Duration::from_secs(2));
        assert_eq!(l.idle_timeout, Duration::from_millis(500));
        assert_eq!(l.speed_limit, 0);
        assert_eq!(l.speed_time, Duration::from_secs(60));
        for bad in [
            &[("OCIGO_IDLE_TIMEOUT", "soon")][..],
            &[("OCIGO_CONNECT_TIMEOUT", "-1")],
            &[("OCIGO_SPEED_LIMIT", "1.5")],
        ] {
            let err = NetworkLimits::from_lookup(env(bad)).unwrap_err();
            assert_eq!(kind_of(&err), Some(Kind::Usage), "{err:#}");
            assert!(format!("{err:#}").contains(bad[0].0), "{err:#}");
        }
    }

    /// Yields `chunks` one read at a time, then what `end` says.
    struct Script {
        chunks: Vec<&'static [u8]>,
        pause: Duration,
        end: Option<io::ErrorKind>,
    }

    impl Read for Script {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            std::thread::sleep(self.pause);
            if self.chunks.is_empty() {
                return match self.end {
                    Some(k) => Err(io::Error::new(k, "connection reset by peer")),
                    None => Ok(0),
                };
            }
            let c = self.chunks.remove(0);
            buf[..c.len()].copy_from_slice(c);
            Ok(c.len())
        }
    }

    fn receive(script: Script, expected: u64, limits: NetworkLimits) -> anyhow::Error {
        let mut t = Transfer::new(
            script,
            "blob sha256:ab from reg/x".into(),
            expected,
            limits,
            Direction::Receiving,
        );
        let err = io::copy(&mut t, &mut io::sink()).unwrap_err();
        classify_io(err, || "fetching".into())
    }

    #[test]
    fn a_short_or_broken_body_is_a_network_failure_naming_the_bytes() {
        let limits = NetworkLimits::default();
        let short = Script {
            chunks: vec![b"abc", b"de"],
            pause: Duration::ZERO,
            end: None,
        };
        let err = receive(short, 10, limits);
        let msg = format!("{err:#}");
        assert_eq!(kind_of(&err), Some(Kind::Remote), "{msg}");
        assert!(
            msg.contains("sha256:ab") && msg.contains("5 of 10 bytes received"),
            "{msg}"
        );
        let reset = Script {
            chunks: vec![b"abc"],
            pause: Duration::ZERO,
            end: Some(io::ErrorKind::ConnectionReset),
        };
        let err = receive(reset, 10, limits);
        let msg = format!("{err:#}");
        assert_eq!(kind_of(&err), Some(Kind::Remote), "{msg}");
        assert!(msg.contains("3 of 10 bytes received"), "{msg}");
        let stalled = Script {
            chunks: vec![],
            pause: Duration::ZERO,
            end: Some(io::ErrorKind::WouldBlock),
        };
        let msg = format!("{:#}", receive(stalled, 10, limits));
        assert!(msg.contains("no data for 120 s"), "{msg}");
        assert_eq!(
            crate::error::hints(&receive(
                Script {
                    chunks: vec![],
                    pause: Duration::ZERO,
                    end: None
                },
                1,
                limits
            ))
            .len(),
            1
        );
    }

    #[test]
    fn a_trickle_below_the_speed_floor_is_abandoned() {
        let limits = NetworkLimits {
            speed_limit: 1000,
            speed_time: Duration::from_millis(100),
            ..NetworkLimits::default()
        };
        let trickle = Script {
            chunks: vec![b"a"; 50],
            pause: Duration::from_millis(20),
            end: None,
        };
        let msg = format!("{:#}", receive(trickle, 50, limits));
        assert!(msg.contains("slower than 1000 B/s"), "{msg}");
        // A fast body passes, and so does one that ends exactly.
        let mut t = Transfer::new(
            &b"0123456789"[..],
            "blob".into(),
            10,
            limits,
            Direction::Receiving,
        );
        assert_eq!(io::copy(&mut t, &mut io::sink()).unwrap(), 10);
    }
}
