#!/usr/bin/env python3
"""A loopback-only HTTP/1.1 reverse proxy that adds a fixed delay to every
request before forwarding it (a slow link for scripts/bench-transport.sh).

usage: delay-proxy.py LISTEN_PORT UPSTREAM_HOST:PORT DELAY_MS

Keeps client connections alive; streams bodies in 64 KiB pieces both ways
(request bodies by Content-Length or chunked, answers as the registry
frames them). Prints nothing but errors. Binds 127.0.0.1 only.
"""
import http.client
import socketserver
import sys
import time
from http.server import BaseHTTPRequestHandler

PORT, UPSTREAM, DELAY = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]) / 1000.0
HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle_any(self):
        time.sleep(DELAY)
        length = self.headers.get("Content-Length")
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        up = http.client.HTTPConnection(UPSTREAM, timeout=300)
        up.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for k, v in self.headers.items():
            if k.lower() not in HOP:
                up.putheader(k, v)
        if chunked:
            up.putheader("Transfer-Encoding", "chunked")
        up.endheaders()
        if length:
            left = int(length)
            while left > 0:
                b = self.rfile.read(min(left, 65536))
                if not b:
                    break
                up.send(b)
                left -= len(b)
        elif chunked:
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                data = self.rfile.read(size) if size else b""
                self.rfile.readline()
                up.send(b"%x\r\n%s\r\n" % (size, data))
                if size == 0:
                    break
        resp = up.getresponse()
        self.send_response_only(resp.status, resp.reason)
        body_len = resp.getheader("Content-Length")
        for k, v in resp.getheaders():
            if k.lower() not in HOP:
                self.send_header(k, v)
        bodiless = self.command == "HEAD" or resp.status in (204, 304)
        if not bodiless and body_len is None:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if not bodiless:
            while True:
                b = resp.read(65536)
                if not b:
                    break
                if body_len is None:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(b), b))
                else:
                    self.wfile.write(b)
            if body_len is None:
                self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        up.close()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


Server(("127.0.0.1", PORT), Handler).serve_forever()
