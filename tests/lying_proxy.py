"""A lying HTTP(S) server on 127.0.0.1: a proxy in front of the real notary-server.

Everything passes through to the real server unless a rule matches the request; a
rule then lies or fails at the transport level in a way no real server can be made
to on demand: drip a byte a second, cut or reset the connection mid-body, answer
5xx/409/3xx, serve other bytes (an old file, another GUN's file, endless data), or
forget a repository. It serves TLS with the certificate it is given (the notary
server's own, so the same `--tls-ca` works; or one for another name or CA).
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

NOT_FOUND = b'{"errors":[{"code":"METADATA_NOT_FOUND","message":"not found"}]}'


@dataclass
class Rule:
    """What to do with requests whose method and path match."""

    pattern: str  # a regex searched in the request path
    action: str  # drip, cut, reset, status, redirect, replace, missing, endless, hook
    value: Any = None  # status code, Location, bytes (or callable upstream -> bytes), hook
    method: str = "GET"
    times: int | None = None  # how many matches to act on (None: every one)


@dataclass
class LyingProxy:
    upstream_port: int
    upstream_ca: Path
    cert: Path | None  # None: plain http
    key: Path | None
    rules: list[Rule] = field(default_factory=list)
    seen: list[tuple[str, str]] = field(default_factory=list)
    httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.httpd is not None
        scheme = "https" if self.cert else "http"
        return f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"

    def lie(self, pattern: str, action: str, value: Any = None, **kw: Any) -> Rule:
        rule = Rule(pattern, action, value, **kw)
        self.rules.append(rule)
        return rule

    def match(self, method: str, path: str) -> Rule | None:
        for rule in self.rules:
            if rule.method == method and re.search(rule.pattern, path):
                if rule.times is not None:
                    if rule.times <= 0:
                        continue
                    rule.times -= 1
                return rule
        return None

    def upstream(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Any:
        ctx = ssl.create_default_context(cafile=str(self.upstream_ca))
        conn = http.client.HTTPSConnection("127.0.0.1", self.upstream_port, context=ctx, timeout=30)
        conn.request(method, path, body=body or None, headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, response.getheader("Content-Type", "application/json"), data

    def start(self) -> LyingProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def _send(self, status: int, data: bytes, length: int | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data) if length is None else length))
                self.end_headers()

            def _handle(self, method: str) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(size) if size else b""
                proxy.seen.append((method, self.path))
                rule = proxy.match(method, self.path)
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() in ("content-type", "authorization")
                }
                if rule is not None and rule.action == "hook":
                    rule.value()  # e.g. kill a process behind the server, then pass through
                    rule = None
                if rule is None:
                    try:
                        status, _, data = proxy.upstream(method, self.path, body, headers)
                    except OSError:  # the server behind died: break the connection like it
                        self.close_connection = True
                        self.connection.close()
                        return
                    self._send(status, data)
                    self.wfile.write(data)
                    return
                act = rule.action
                if act == "status":
                    data = b'{"errors":[{"code":"UNKNOWN","message":"injected failure"}]}'
                    self._send(int(rule.value), data)
                    self.wfile.write(data)
                elif act == "redirect":
                    self.send_response(302)
                    self.send_header("Location", str(rule.value) + self.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif act == "missing":
                    self._send(404, NOT_FOUND)
                    self.wfile.write(NOT_FOUND)
                elif act == "replace":
                    value = rule.value
                    if callable(value):
                        value = value(proxy.upstream(method, self.path, body, headers)[2])
                    self._send(200, value)
                    self.wfile.write(value)
                elif act == "endless":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()  # no length: read until the client gives up
                    self.close_connection = True
                    chunk = b" " * 65536
                    try:
                        for _ in range(1 << 16):
                            self.wfile.write(chunk)
                    except OSError:
                        pass
                elif act in ("drip", "cut", "reset"):
                    data = proxy.upstream(method, self.path, body, headers)[2]
                    self._send(200, data)
                    self.close_connection = True
                    if act == "drip":
                        try:
                            for byte in data[:120]:
                                self.wfile.write(bytes([byte]))
                                self.wfile.flush()
                                time.sleep(1)
                        except OSError:
                            pass
                        return
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    if act == "reset":
                        self.connection.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                    self.connection.close()
                else:  # pragma: no cover - a typo in a test
                    raise AssertionError(f"unknown action {act}")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if self.cert is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(self.cert), str(self.key))
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()


def start_proxy(
    upstream_port: int,
    upstream_ca: Path,
    cert: Path | None,
    key: Path | None,
    rules: list[Rule] | None = None,
) -> LyingProxy:
    return LyingProxy(upstream_port, upstream_ca, cert, key, list(rules or [])).start()


Transform = Callable[[bytes], bytes]
