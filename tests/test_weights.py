"""Weights registry: manifest, resumable download from a local HTTP server, verification, CLI."""

from __future__ import annotations

import hashlib
import http.server
import re
import threading
from pathlib import Path

import pytest

from avatar import weights_registry as wr
from avatar.errors import WeightsError

PAYLOAD = bytes(range(256)) * 4096 + b"tail"  # ~1 MiB, not a multiple of the chunk size
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Server:
    """http.server on 127.0.0.1 that serves one payload and honours single Range requests."""

    def __init__(self) -> None:
        self.payload = PAYLOAD
        self.honour_range = True
        self.requests: list[dict[str, str]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append({k.lower(): v for k, v in self.headers.items()})
                if self.path != "/file.bin":
                    self.send_error(404)
                    return
                data, status, extra = outer.payload, 200, {}
                m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
                if m and outer.honour_range:
                    start = int(m.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    status, extra = 206, {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
                    data = data[start:]
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/file.bin"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():
    s = _Server()
    yield s
    s.close()


@pytest.fixture()
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("AVATAR_HOME", str(tmp_path / "home"))
    return tmp_path / "home" / "cache"


def _entry(url: str | None, sha256: str | None = SHA, **kw) -> wr.WeightsEntry:
    fields = {
        "name": "test", "file": "test.bin", "urls": (url,) if url else (), "pages": ("https://example.org/page",),
        "size": None, "sha256": sha256, "md5": None, "license": "MIT", "config": "vox-256",
    }
    fields.update(kw)
    return wr.WeightsEntry(**fields)


@pytest.fixture()
def manifest(monkeypatch):
    entries: dict[str, wr.WeightsEntry] = {}
    monkeypatch.setattr(wr, "load_manifest", lambda path=None: dict(entries))
    return entries


def test_shipped_manifest_lists_official_checkpoints():
    m = wr.load_manifest()
    assert {"vox", "vox-adv"} <= set(m)
    assert m["vox"].file == "vox-cpk.pth.tar" and m["vox-adv"].file == "vox-adv-cpk.pth.tar"
    for e in m.values():
        assert e.config == "vox-256" and e.license and (e.urls or e.pages)
        assert e.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", e.sha256)
        assert e.cached_path.name == e.file


def test_full_download_into_cache(server, home, manifest):
    manifest["test"] = _entry(server.url, size=len(PAYLOAD))
    path = wr.fetch("test", progress=False)
    assert path == home / "test.bin" and path.read_bytes() == PAYLOAD
    assert not (home / "test.bin.part").exists()
    assert "range" not in server.requests[0]
    # a second fetch finds the good copy and does not download again
    assert wr.fetch("test", progress=False) == path and len(server.requests) == 1


def test_resumed_download_requests_only_the_rest(server, home, manifest):
    manifest["test"] = _entry(server.url)
    home.mkdir(parents=True)
    done = 300_001
    (home / "test.bin.part").write_bytes(PAYLOAD[:done])
    path = wr.fetch("test", progress=False)
    assert path.read_bytes() == PAYLOAD
    assert server.requests[-1].get("range") == f"bytes={done}-"


def test_server_ignoring_range_restarts_cleanly(server, home, manifest):
    server.honour_range = False
    manifest["test"] = _entry(server.url)
    home.mkdir(parents=True)
    (home / "test.bin.part").write_bytes(b"garbage" * 1000)
    assert wr.fetch("test", progress=False).read_bytes() == PAYLOAD


def test_complete_part_file_is_finished_after_416(server, home, manifest):
    manifest["test"] = _entry(server.url)
    home.mkdir(parents=True)
    (home / "test.bin.part").write_bytes(PAYLOAD)
    assert wr.fetch("test", progress=False).read_bytes() == PAYLOAD


def test_corrupted_download_fails_and_leaves_nothing(server, home, manifest):
    server.payload = PAYLOAD[:-1] + b"X"
    manifest["test"] = _entry(server.url)
    with pytest.raises(WeightsError, match="sha256"):
        wr.fetch("test", progress=False)
    assert not home.exists() or list(home.iterdir()) == []


def test_md5_of_mirror_is_checked(server, home, manifest):
    manifest["test"] = _entry(server.url, sha256=None, md5="0" * 32)
    with pytest.raises(WeightsError, match="md5"):
        wr.fetch("test", progress=False)
    assert not (home / "test.bin").exists()


def test_offline_error_says_where_to_put_the_file(home, manifest):
    manifest["test"] = _entry("http://127.0.0.1:9/nothing-listens-here")
    with pytest.raises(WeightsError) as err:
        wr.fetch("test", progress=False, timeout=2)
    assert str(home / "test.bin") in str(err.value) and "example.org/page" in str(err.value)


def test_no_url_known(home, manifest):
    manifest["test"] = _entry(None)
    with pytest.raises(WeightsError, match=r"no direct download URL.*--url"):
        wr.fetch("test", progress=False)


def test_url_override_and_unknown_name(server, home, manifest):
    manifest["test"] = _entry(None)
    assert wr.fetch("test", url=server.url, progress=False).read_bytes() == PAYLOAD
    with pytest.raises(WeightsError, match="unknown weights 'nope'"):
        wr.fetch("nope")


def test_resolve_checkpoint_finds_cached_file(home, tmp_path):
    home.mkdir(parents=True)
    (home / "vox-cpk.pth.tar").write_bytes(b"x")
    assert wr.resolve_checkpoint(None) == home / "vox-cpk.pth.tar"
    assert wr.resolve_checkpoint("vox") == home / "vox-cpk.pth.tar"
    own = tmp_path / "mine.pth"
    own.write_bytes(b"y")
    assert wr.resolve_checkpoint(str(own)) == own


def test_verify_and_cli(tmp_path, home, capsys):
    from avatar.cli import main

    f = tmp_path / "some.bin"
    f.write_bytes(PAYLOAD)
    res = wr.verify(f)
    assert res.sha256 == SHA and res.size == len(PAYLOAD) and res.entry is None and res.ok is None
    assert main(["weights", "verify", str(f), "--no-load"]) == 0
    assert SHA in capsys.readouterr().out
    assert main(["weights", "verify", str(f)]) == 1  # not a checkpoint
    assert "layout: FAILED" in capsys.readouterr().out
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert "vox-cpk.pth.tar" in out and str(home) in out


def test_cli_verify_checks_fomm_layout(tmp_path, home, capsys):
    import torch

    from avatar.cli import main
    from avatar.render.fomm.generator import OcclusionAwareGenerator
    from avatar.render.fomm.keypoint_detector import KPDetector

    with torch.device("meta"):
        sd = {"kp_detector": KPDetector().state_dict(), "generator": OcclusionAwareGenerator().state_dict()}
    # tiny stand-in tensors with the vox-256 shapes would be 230 MB; use a truncated key set instead
    small = {part: {k: torch.zeros(v.shape if v.numel() < 10_000 else (1,), dtype=v.dtype) for k, v in d.items()} for part, d in sd.items()}
    torch.save(small, tmp_path / "vox-cpk.pth.tar")
    assert main(["weights", "verify", str(tmp_path / "vox-cpk.pth.tar")]) == 1
    out = capsys.readouterr().out
    assert "manifest: vox pins no digest" in out and "wrong shape" in out
