"""Live-session fixtures: a consented portrait in the per-test store, a TCP receiver, a fast config."""

from __future__ import annotations

import socket
import threading

import pytest


@pytest.fixture
def consented(portrait_path):
    """(store, avatar_id) with live consent for the example portrait in this test's AVATAR_HOME."""
    from avatar.media.image import load_image, sha256_file
    from avatar.output.consent import ConsentStore

    store = ConsentStore()
    rec = store.clone(load_image(portrait_path), source_sha256=sha256_file(portrait_path), subject="Test Subject",
                      granted_by="subject", statement="I agree to be animated live for tests",
                      source_path=portrait_path)
    yield store, rec.avatar_id
    store.close()


@pytest.fixture
def research(monkeypatch):
    """Explicit research policy: no consent record needed (outputs still labelled)."""
    monkeypatch.setenv("AVATAR_CONSENT_POLICY", "research")


@pytest.fixture
def config():
    from avatar.config import AvatarConfig, FaceConfig

    return AvatarConfig(face=FaceConfig(size=256))


class Receiver:
    """Collects everything sent to a localhost TCP or UDP port on a thread."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.data = bytearray()
        if kind == "tcp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.bind(("127.0.0.1", 0))
            self.sock.listen(1)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(30)
        self.url = f"{kind}://127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            if self.kind == "tcp":
                conn, _ = self.sock.accept()
                with conn:
                    while chunk := conn.recv(1 << 16):
                        self.data.extend(chunk)
            else:
                self.sock.settimeout(0.5)
                while not self._stop.is_set():
                    try:
                        self.data.extend(self.sock.recv(1 << 16))
                    except TimeoutError:
                        continue
        except OSError:
            pass

    def finish(self) -> bytes:
        self._stop.set()
        self.thread.join(timeout=10)
        self.sock.close()
        return bytes(self.data)


@pytest.fixture
def receiver():
    made = []

    def make(kind: str = "tcp") -> Receiver:
        r = Receiver(kind)
        made.append(r)
        return r

    yield make
    for r in made:
        r._stop.set()
        r.sock.close()
