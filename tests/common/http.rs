//! A minimal HTTP/1.1 server for the scripted endpoints of the tests (the
//! token service, fake registries and blob stores): [`serve`] answers one
//! request per connection with `Connection: close`; [`serve_faults`] keeps
//! connections alive and can misbehave as no real registry can be made to
//! (never answer, stall mid-body, trickle, cut a body short), for the
//! network-deadline tests. [`get`] is the plainest client, for asking a
//! test server something outside the protocol under test.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// One request as read off the wire.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// In the order sent, names lower-cased, values trimmed.
    pub headers: Vec<(String, String)>,
    /// `Content-Length` bytes of body.
    pub body: Vec<u8>,
}

impl Request {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one request: request line, headers, then a `Content-Length` body.
/// `None` when the peer closed before sending a request line.
pub fn read_request(stream: &mut impl BufRead) -> io::Result<Option<Request>> {
    let Some(mut request) = read_head(stream)? else {
        return Ok(None);
    };
    read_body(stream, &mut request)?;
    Ok(Some(request))
}

/// Reads the `Content-Length` body of a request read by [`read_head`].
pub fn read_body(stream: &mut impl BufRead, request: &mut Request) -> io::Result<()> {
    let length = request
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    request.body = vec![0; length];
    stream.read_exact(&mut request.body)
}

/// Reads a request's line and headers, not its body (a server answering
/// `Expect: 100-continue` must say so before the body comes).
pub fn read_head(stream: &mut impl BufRead) -> io::Result<Option<Request>> {
    let mut line = String::new();
    if stream.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if stream.read_line(&mut h)? == 0 {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    Ok(Some(Request {
        method,
        target,
        headers,
        body: Vec::new(),
    }))
}

/// Writes a whole response: status line, `Connection: close`,
/// `Content-Length`, `headers`, then `body`.
pub fn write_response(
    stream: &mut impl Write,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {status} X\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    )?;
    for (k, v) in headers {
        write!(stream, "{k}: {v}\r\n")?;
    }
    stream.write_all(b"\r\n")?;
    stream.write_all(body)?;
    stream.flush()
}

/// What a handler answers.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

pub fn reply(status: u16, headers: &[(&str, &str)], body: impl AsRef<[u8]>) -> Reply {
    Reply {
        status,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: body.as_ref().to_vec(),
    }
}

/// A thread answering every connection to `listener` with
/// `handler(request)`, one at a time; it stops when this is dropped.
pub struct Server {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    stop: Arc<AtomicBool>,
}

/// Serves `listener` (bound to 127.0.0.1) until the `Server` is dropped.
pub fn serve(
    listener: TcpListener,
    handler: impl Fn(&Request) -> Reply + Send + 'static,
) -> Server {
    let addr = listener.local_addr().unwrap().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if stop2.load(Ordering::SeqCst) {
                break;
            }
            let Ok(stream) = stream else { continue };
            let _ = answer(stream, &handler);
        }
    });
    Server { addr, stop }
}

fn answer(stream: TcpStream, handler: &impl Fn(&Request) -> Reply) -> io::Result<()> {
    let Some(request) = read_request(&mut BufReader::new(stream.try_clone()?))? else {
        return Ok(());
    };
    let r = handler(&request);
    let headers: Vec<(&str, &str)> = r
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    write_response(&mut &stream, r.status, &headers, &r.body)
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so the thread ends.
        let _ = TcpStream::connect(&self.addr);
    }
}

/// How a misbehaving server answers one request (see [`serve_faults`]).
pub enum Behaviour {
    /// A normal answer, keeping the connection open for the next request.
    Answer(Reply),
    /// Reads the request, then sends nothing at all.
    Silent,
    /// Sends the headers of the reply (its full `Content-Length`) and the
    /// first `n` bytes of its body, then nothing more.
    StallAfter(Reply, usize),
    /// Sends the headers, then the body one byte per `interval`.
    Trickle(Reply, std::time::Duration),
    /// Sends the headers and the first `n` bytes of the body, then closes.
    CutAfter(Reply, usize),
}

/// What [`serve_faults`] knows about the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct Conn {
    /// Counts connections from 0, in the order accepted.
    pub id: usize,
    /// Requests answered on this connection before this one (0: a fresh
    /// connection; more: a reused keep-alive connection).
    pub earlier_requests: usize,
}

/// A keep-alive server for the network-failure tests: each connection gets
/// its own thread, answers requests one after another with whatever
/// `handler` says, and may stall, trickle or cut a body short. Stalls last
/// until the server is dropped (or 120 s, whichever comes first).
pub fn serve_faults(
    listener: TcpListener,
    handler: impl Fn(&Request, Conn) -> Behaviour + Send + Sync + 'static,
) -> Server {
    let addr = listener.local_addr().unwrap().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let handler = Arc::new(handler);
    std::thread::spawn(move || {
        for (id, stream) in listener.incoming().enumerate() {
            if stop2.load(Ordering::SeqCst) {
                break;
            }
            let Ok(stream) = stream else { continue };
            let (handler, stop) = (handler.clone(), stop2.clone());
            std::thread::spawn(move || {
                let _ = keep_answering(stream, id, &*handler, &stop);
            });
        }
    });
    Server { addr, stop }
}

fn keep_answering(
    stream: TcpStream,
    id: usize,
    handler: &(dyn Fn(&Request, Conn) -> Behaviour + Send + Sync),
    stop: &AtomicBool,
) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = &stream;
    let hold = || {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while !stop.load(Ordering::SeqCst) && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    for earlier_requests in 0.. {
        let Some(request) = read_request(&mut reader)? else {
            return Ok(());
        };
        let head_only = request.method == "HEAD";
        let behaviour = handler(
            &request,
            Conn {
                id,
                earlier_requests,
            },
        );
        let head = |out: &mut &TcpStream, r: &Reply| -> io::Result<()> {
            write!(
                out,
                "HTTP/1.1 {} X\r\nContent-Length: {}\r\n",
                r.status,
                r.body.len()
            )?;
            for (k, v) in &r.headers {
                write!(out, "{k}: {v}\r\n")?;
            }
            out.write_all(b"\r\n")?;
            out.flush()
        };
        match behaviour {
            Behaviour::Answer(r) => {
                head(&mut out, &r)?;
                if !head_only {
                    out.write_all(&r.body)?;
                }
                out.flush()?;
            }
            Behaviour::Silent => {
                hold();
                return Ok(());
            }
            Behaviour::StallAfter(r, n) => {
                head(&mut out, &r)?;
                out.write_all(&r.body[..n.min(r.body.len())])?;
                out.flush()?;
                hold();
                return Ok(());
            }
            Behaviour::Trickle(r, interval) => {
                head(&mut out, &r)?;
                for b in &r.body {
                    if stop.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                    out.write_all(&[*b])?;
                    out.flush()?;
                    std::thread::sleep(interval);
                }
            }
            Behaviour::CutAfter(r, n) => {
                head(&mut out, &r)?;
                out.write_all(&r.body[..n.min(r.body.len())])?;
                out.flush()?;
                return stream.shutdown(std::net::Shutdown::Both);
            }
        }
    }
    Ok(())
}

/// An HTTP CONNECT proxy on 127.0.0.1 that records every tunnel it opens.
/// `route(target)` says where a `CONNECT target` really goes (so a test can
/// use a host name that resolves nowhere); `None` refuses it with 502.
pub struct ConnectProxy {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    targets: Arc<std::sync::Mutex<Vec<String>>>,
    _server: Server,
}

impl ConnectProxy {
    pub fn start(route: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> ConnectProxy {
        Self::start_throttled(route, None)
    }

    /// As [`ConnectProxy::start`], carrying at most `upload_rate` bytes per
    /// second from the client to the server (a slow uplink: a long push).
    pub fn start_throttled(
        route: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
        upload_rate: Option<u64>,
    ) -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let targets = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (stop2, targets2, route) = (stop.clone(), targets.clone(), Arc::new(route));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (targets, route) = (targets2.clone(), route.clone());
                std::thread::spawn(move || {
                    let _ = tunnel(stream, &targets, &*route, upload_rate);
                });
            }
        });
        ConnectProxy {
            addr: addr.clone(),
            targets,
            _server: Server { addr, stop },
        }
    }

    /// The `CONNECT` targets asked for so far, in order.
    pub fn targets(&self) -> Vec<String> {
        self.targets.lock().unwrap().clone()
    }
}

fn tunnel(
    client: TcpStream,
    targets: &std::sync::Mutex<Vec<String>>,
    route: &(dyn Fn(&str) -> Option<String> + Send + Sync),
    upload_rate: Option<u64>,
) -> io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let Some(request) = read_request(&mut reader)? else {
        return Ok(());
    };
    let mut out = &client;
    if request.method != "CONNECT" {
        return write_response(&mut out, 405, &[], b"CONNECT only");
    }
    targets.lock().unwrap().push(request.target.clone());
    let Some(upstream) = route(&request.target).and_then(|a| TcpStream::connect(a).ok()) else {
        return write_response(&mut out, 502, &[], b"no route");
    };
    out.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
    out.flush()?;
    // Bytes the client sent after the CONNECT head are in `reader`'s buffer.
    let buffered = reader.buffer().to_vec();
    let mut up = upstream.try_clone()?;
    up.write_all(&buffered)?;
    let mut down_from = upstream;
    let mut down_to = client.try_clone()?;
    let t = std::thread::spawn(move || {
        let _ = io::copy(&mut down_from, &mut down_to);
        let _ = down_to.shutdown(std::net::Shutdown::Write);
    });
    let mut rest = reader.into_inner();
    match upload_rate {
        None => {
            let _ = io::copy(&mut rest, &mut up);
        }
        Some(rate) => {
            // Chunks of a tenth of a second's worth, each after its time.
            let chunk = (rate / 10).max(1) as usize;
            let mut buf = vec![0; chunk];
            let start = std::time::Instant::now();
            let mut sent = 0u64;
            loop {
                let n = match io::Read::read(&mut rest, &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                sent += n as u64;
                let due = std::time::Duration::from_secs_f64(sent as f64 / rate as f64);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait);
                }
                if up.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = up.shutdown(std::net::Shutdown::Write);
    let _ = t.join();
    Ok(())
}

/// `GET path` from `addr` (`host:port`) with `Connection: close`: the
/// status line and the body (an HTTP/1.0 request, so the body comes
/// unchunked).
pub fn get(addr: &str, path: &str) -> (String, String) {
    use std::io::Read as _;
    let mut c = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    write!(
        c,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    c.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}
