#!/usr/bin/env python3
"""Records what real OTLP/HTTP exporters send (stdlib only), to make test data.

    python capture_server.py <port> <dir>     # port 0 = let the OS pick one

First stdout line: `listening <port>` (flushed). POST /v1/traces answers 200 with an empty
ExportTraceServiceResponse in the request's encoding (empty bytes for protobuf, `{}` for JSON)
and saves, numbered in arrival order:
  <dir>/<n>.pb | <n>.json     the body, gunzipped if Content-Encoding: gzip
  <dir>/<n>.pb.gz | .json.gz  the original body too, when it arrived gzipped
  <dir>/<n>.headers.json      method, path and request headers
Any other path gets 404.
"""
import gzip
import itertools
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OUT = "."
_seq = itertools.count(1)
_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _reply(self, code, ctype, body):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self):
        # The Node OTLP exporters send `Transfer-Encoding: chunked` with no Content-Length.
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()  # CRLF after each chunk
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_POST(self):  # noqa: N802
        raw = self._body()
        if self.path.split("?")[0] != "/v1/traces":
            return self._reply(404, "text/plain", b"not found")
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        ext = "json" if ctype == "application/json" else "pb"
        gz = (self.headers.get("Content-Encoding") or "").lower() == "gzip"
        body = gzip.decompress(raw) if gz else raw
        with _lock:
            i = next(_seq)
        base = os.path.join(OUT, str(i))
        with open(f"{base}.{ext}", "wb") as f:
            f.write(body)
        if gz:
            with open(f"{base}.{ext}.gz", "wb") as f:
                f.write(raw)
        with open(f"{base}.headers.json", "w") as f:
            json.dump({"method": "POST", "path": self.path, "headers": dict(self.headers.items())}, f, indent=1)
        sys.stderr.write(f"capture: {i} {ctype} gzip={gz} {len(raw)}B -> {base}.{ext}\n")
        if ext == "json":
            self._reply(200, "application/json", b"{}")
        else:
            self._reply(200, "application/x-protobuf", b"")

    def log_message(self, fmt, *args):
        pass


def main():
    global OUT
    port, OUT = int(sys.argv[1]), sys.argv[2]
    os.makedirs(OUT, exist_ok=True)
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.daemon_threads = True
    print(f"listening {srv.server_address[1]}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
