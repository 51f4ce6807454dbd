"""A TCP relay in front of the drill's server, which the drill can cut: "the server went down".

The memory-store server loses everything on a restart (notary-server.md, gotcha 6), so an
outage is made here instead: the relay stops listening (new connections are refused) and
drops the connections it holds. `cut_on_upload` makes the outage happen *during* a
publish: the relay reads the TLS record layer (plain framing, nothing is decrypted) of
what the client sends, and when the first large application-data record passes (the
upload; GETs are a few hundred bytes), it lets the upload through but no answer back, then
goes down. The client never learns whether the server took the upload.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field

HOST = "127.0.0.1"
_TLS_APPLICATION_DATA = 0x17
_TLS_HEADER = 5
UPLOAD_RECORD = 1024  # bytes: a TLS record at least this large from the client is an upload
GRACE = 1.5  # seconds the upload may take to reach the server before the relay goes down
_CHUNK = 65536


@dataclass
class _RecordWatch:
    """Follows TLS record boundaries in one direction and spots the first large data record."""

    header: bytearray = field(default_factory=bytearray)
    remaining: int = 0

    def feed(self, data: bytes) -> bool:
        """True if a large application-data record starts in `data`."""
        found = False
        i = 0
        while i < len(data):
            if self.remaining:
                step = min(self.remaining, len(data) - i)
                self.remaining -= step
                i += step
                continue
            need = _TLS_HEADER - len(self.header)
            self.header.extend(data[i : i + need])
            i += min(need, len(data) - i)
            if len(self.header) == _TLS_HEADER:
                kind, length = self.header[0], int.from_bytes(self.header[3:5], "big")
                found = found or (kind == _TLS_APPLICATION_DATA and length >= UPLOAD_RECORD)
                self.remaining = length
                self.header.clear()
        return found


class CuttableProxy:
    """127.0.0.1:port → 127.0.0.1:target, until `down()` (or a tripped `cut_on_upload`)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._armed = False
        self._tripped = threading.Event()
        self.went_down = threading.Event()
        probe = socket.socket()
        probe.bind((HOST, 0))
        self.port = int(probe.getsockname()[1])
        probe.close()
        self.up()

    # -- state -----------------------------------------------------------------

    def up(self) -> str:
        """Listen (again) on the same port and relay."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, self.port))
        listener.listen(32)
        with self._lock:
            self._listener = listener
            self._armed = False
            self._tripped.clear()
            self.went_down.clear()
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return f"the relay on 127.0.0.1:{self.port} passes connections to the server"

    def down(self) -> None:
        """Refuse new connections and drop every open one."""
        with self._lock:
            listener, self._listener = self._listener, None
            live = list(self._sockets)
            self._sockets.clear()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for sock in live:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.went_down.set()

    def cut_on_upload(self) -> str:
        """Go down during the next upload: let it reach the server, but no answer come back."""
        with self._lock:
            self._armed = True
        return "armed: the relay goes down during the next upload"

    def close(self) -> None:
        self.down()

    # -- relay -----------------------------------------------------------------

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection((HOST, self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # went down meanwhile
                    client.close()
                    upstream.close()
                    return
                self._sockets.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        watch = _RecordWatch()
        try:
            while data := source.recv(_CHUNK):
                large = watch.feed(data) if from_client else False
                if large and self._armed and not self._tripped.is_set():
                    self._tripped.set()
                    threading.Timer(GRACE, self.down).start()
                if not from_client and self._tripped.is_set():
                    continue  # the answer to the upload never arrives
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)
