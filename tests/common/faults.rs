//! A fault-injecting reverse proxy on 127.0.0.1 in front of a real
//! registry: it forwards each request and, for a set share of them (chosen
//! by a seeded schedule, so a run can be repeated), answers 503 or 429
//! (`Retry-After: 1`) instead, drops the connection after the registry
//! answered, or cuts the response body short. Optionally it only injects
//! into requests matching a filter (e.g. blob requests), and it can add a
//! fixed delay to every request (a slow link for benchmarks).
//!
//! The faults are what a real registry cannot be made to do; the registry
//! behind it is real (`registry::TestRegistry`). Requests are read with
//! `http::read_request` (bodies in memory: test blobs are small).

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::http::{Request, read_body, read_head};

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// Answered 503 without reaching the registry.
    Unavailable,
    /// Answered 429 with `Retry-After: 1` without reaching the registry.
    TooMany,
    /// Forwarded; the connection is closed before the answer is sent.
    Drop,
    /// Forwarded; the answer's body is cut after half (or the connection
    /// dropped when there is no body).
    Truncate,
}

const KINDS: [Fault; 4] = [
    Fault::Unavailable,
    Fault::TooMany,
    Fault::Drop,
    Fault::Truncate,
];

/// Picks the requests that may fault.
pub type Filter = Arc<dyn Fn(&Request) -> bool + Send + Sync>;

/// Which requests fault.
#[derive(Clone)]
pub struct Plan {
    pub seed: u64,
    /// Share of eligible requests that fault, in percent (0 to 100).
    pub percent: u64,
    /// Only requests this accepts are eligible (all when `None`).
    pub only: Option<Filter>,
    /// Added before every request is forwarded.
    pub delay: Duration,
}

impl Plan {
    pub fn new(seed: u64, percent: u64) -> Plan {
        Plan {
            seed,
            percent,
            only: None,
            delay: Duration::ZERO,
        }
    }

    /// Faults only in blob requests (`/blobs/` in the path: GET, HEAD, and
    /// uploads).
    pub fn blobs_only(mut self) -> Plan {
        self.only = Some(Arc::new(|r: &Request| r.target.contains("/blobs/")));
        self
    }

    /// The fault for eligible request number `n`: a pure function of the
    /// seed and `n`.
    fn fault(&self, n: u64) -> Option<Fault> {
        let h = splitmix64(self.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        (h % 100 < self.percent).then(|| KINDS[((h >> 32) % KINDS.len() as u64) as usize])
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The running proxy; stops accepting when dropped.
pub struct FaultProxy {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    stop: Arc<AtomicBool>,
    counts: Arc<Mutex<BTreeMap<Fault, usize>>>,
    requests: Arc<AtomicU64>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl FaultProxy {
    /// Starts a proxy forwarding to `upstream` (`127.0.0.1:PORT`).
    pub fn start(upstream: &str, plan: Plan) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let counts: Arc<Mutex<BTreeMap<Fault, usize>>> = Arc::default();
        let requests = Arc::new(AtomicU64::new(0));
        let eligible = Arc::new(AtomicU64::new(0));
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let (stop2, counts2, requests2, seen2) =
            (stop.clone(), counts.clone(), requests.clone(), seen.clone());
        let upstream = upstream.to_string();
        let plan = Arc::new(plan);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (upstream, plan, counts, requests, eligible, seen) = (
                    upstream.clone(),
                    plan.clone(),
                    counts2.clone(),
                    requests2.clone(),
                    eligible.clone(),
                    seen2.clone(),
                );
                std::thread::spawn(move || {
                    let _ = serve(
                        stream, &upstream, &plan, &counts, &requests, &eligible, &seen,
                    );
                });
            }
        });
        FaultProxy {
            addr,
            stop,
            counts,
            requests,
            seen,
        }
    }

    /// Faults injected so far, by kind.
    pub fn faults(&self) -> BTreeMap<Fault, usize> {
        self.counts.lock().unwrap().clone()
    }

    /// `METHOD path` of every request received so far (query left out).
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(&self.addr);
    }
}

fn serve(
    client: TcpStream,
    upstream: &str,
    plan: &Plan,
    counts: &Mutex<BTreeMap<Fault, usize>>,
    requests: &AtomicU64,
    eligible: &AtomicU64,
    seen: &Mutex<Vec<String>>,
) -> io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut out = &client;
    loop {
        let Some(mut req) = read_head(&mut reader)? else {
            return Ok(());
        };
        if req
            .header("expect")
            .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
        {
            out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            out.flush()?;
        }
        read_body(&mut reader, &mut req)?;
        requests.fetch_add(1, Ordering::SeqCst);
        seen.lock().unwrap().push(format!(
            "{} {}",
            req.method,
            req.target.split('?').next().unwrap_or("")
        ));
        if !plan.delay.is_zero() {
            std::thread::sleep(plan.delay);
        }
        let fault = if plan.only.as_ref().is_none_or(|f| f(&req)) {
            plan.fault(eligible.fetch_add(1, Ordering::SeqCst))
        } else {
            None
        };
        if let Some(f) = fault {
            *counts.lock().unwrap().entry(f).or_default() += 1;
        }
        match fault {
            Some(Fault::Unavailable) => {
                let head_only = req.method == "HEAD";
                write_small(
                    head_only,
                    &mut out,
                    503,
                    &[],
                    br#"{"errors":[{"code":"UNAVAILABLE","message":"injected"}]}"#,
                )?;
                continue;
            }
            Some(Fault::TooMany) => {
                let head_only = req.method == "HEAD";
                write_small(
                    head_only,
                    &mut out,
                    429,
                    &[("Retry-After", "1")],
                    br#"{"errors":[{"code":"TOOMANYREQUESTS","message":"injected"}]}"#,
                )?;
                continue;
            }
            _ => {}
        }
        let (head, body) = forward(upstream, &req)?;
        match fault {
            Some(Fault::Drop) => return client.shutdown(std::net::Shutdown::Both),
            Some(Fault::Truncate) => {
                if body.is_empty() {
                    return client.shutdown(std::net::Shutdown::Both);
                }
                out.write_all(&head)?;
                out.write_all(&body[..body.len() / 2])?;
                out.flush()?;
                return client.shutdown(std::net::Shutdown::Both);
            }
            _ => {
                out.write_all(&head)?;
                out.write_all(&body)?;
                out.flush()?;
            }
        }
    }
}

/// A whole answer; the body is left out for a HEAD request (`head_only`),
/// as the client will not read one.
fn write_small(
    head_only: bool,
    out: &mut impl Write,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<()> {
    write!(
        out,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    )?;
    for (k, v) in headers {
        write!(out, "{k}: {v}\r\n")?;
    }
    out.write_all(b"\r\n")?;
    if !head_only {
        out.write_all(body)?;
    }
    out.flush()
}

/// Sends `req` to the registry on a fresh connection and returns the
/// answer's head (with `Connection: close` dropped, so the client's
/// connection stays open) and its body bytes as framed on the wire.
fn forward(upstream: &str, req: &Request) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let mut up = TcpStream::connect(upstream)?;
    up.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.target);
    for (k, v) in &req.headers {
        if k != "connection" && k != "expect" {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    up.write_all(head.as_bytes())?;
    up.write_all(&req.body)?;
    up.flush()?;
    let mut r = BufReader::new(up);
    let mut status = String::new();
    r.read_line(&mut status)?;
    let mut out_head = status.clone().into_bytes();
    let mut length: Option<usize> = None;
    let mut framed = false;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 {
            break;
        }
        if h.trim_end().is_empty() {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if lower.starts_with("connection:") {
            continue;
        }
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().ok();
        }
        if lower.starts_with("transfer-encoding:") {
            framed = true;
        }
        out_head.extend_from_slice(h.as_bytes());
    }
    let code: u16 = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut body = Vec::new();
    let bodiless = req.method == "HEAD" || code == 204 || code == 304 || (100..200).contains(&code);
    if !bodiless {
        match length {
            Some(n) if !framed => {
                body.resize(n, 0);
                r.read_exact(&mut body)?;
            }
            _ => {
                r.read_to_end(&mut body)?;
                if !framed {
                    out_head.extend_from_slice(
                        format!("Content-Length: {}\r\n", body.len()).as_bytes(),
                    );
                }
            }
        }
    }
    out_head.extend_from_slice(b"\r\n");
    Ok((out_head, body))
}
