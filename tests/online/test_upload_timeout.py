"""An upload's read timeout grows with its size; a download's does not.

notary-server reads and checks a whole upload before it answers (a 1,000,000-target
targets.json is about 160 MB), so the fixed read timeout that cuts a stalled download
must not cut a healthy publish. A real HTTP server on loopback answers after a pause:
longer than the configured read timeout, shorter than the upload's allowance.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ceremony.core.errors import EnvironmentFailure
from online.client.config import ServerConfig
from online.client.http import UPLOAD_FLOOR_BYTES_PER_SECOND, TrustServer, upload_allowance

PAUSE = 1.5  # seconds the server thinks before it answers
READ_TIMEOUT = 0.5


class _SlowHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self._answer()

    def do_GET(self) -> None:
        self._answer()

    def _answer(self) -> None:
        time.sleep(PAUSE)
        try:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")
        except OSError:
            pass  # the client gave up first

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def slow_config() -> Iterator[ServerConfig]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _SlowHandler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield ServerConfig(
            url=f"http://127.0.0.1:{httpd.server_address[1]}",
            connect_timeout=2,
            read_timeout=READ_TIMEOUT,
            retries=0,
        )
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_large_upload_waits_for_the_server_past_the_read_timeout(
    slow_config: ServerConfig,
) -> None:
    body = b"x" * (2 * UPLOAD_FLOOR_BYTES_PER_SECOND)  # allowance: 0.5 + 2 s > the pause
    with TrustServer(slow_config) as server:
        server.publish("example.com/app", {"targets": body})


def test_a_small_upload_and_a_download_are_still_cut_at_the_read_timeout(
    slow_config: ServerConfig,
) -> None:
    with TrustServer(slow_config) as server:
        started = time.monotonic()
        with pytest.raises(EnvironmentFailure, match=r"\(no answer within 0\.5 s\)"):
            server.get_metadata("example.com/app", "timestamp.json")
        with pytest.raises(EnvironmentFailure, match=r"\(no answer within 0\.50000\d* s\)"):
            server.publish("example.com/app", {"targets": b"{}"})
        assert time.monotonic() - started < 2 * PAUSE


def test_the_allowance_covers_a_million_target_upload_and_leaves_downloads_alone() -> None:
    config = ServerConfig(url="https://notary.example.com")
    assert upload_allowance(config, None) == (config.read_timeout, config.deadline)
    size = 160 * 1000 * 1000
    read, deadline = upload_allowance(
        config, [("files", ("targets", b"", "x")), ("files", ("snapshot", b"x" * size, "x"))]
    )
    assert read == pytest.approx(config.read_timeout + size / UPLOAD_FLOOR_BYTES_PER_SECOND)
    assert read > 180 and deadline > config.deadline + 150
    shorter = replace(config, read_timeout=1.0, deadline=2.0)
    assert upload_allowance(shorter, [("files", ("targets", b"x" * 1024, "x"))]) == (
        pytest.approx(1.0 + 1024 / UPLOAD_FLOOR_BYTES_PER_SECOND),
        pytest.approx(2.0 + 1024 / UPLOAD_FLOOR_BYTES_PER_SECOND),
    )
