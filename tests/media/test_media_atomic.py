from __future__ import annotations

import os

import pytest

from avatar.errors import InputError
from avatar.media.atomic import atomic_path, atomic_write_bytes


def test_success_replaces_and_keeps_suffix(tmp_path):
    final = tmp_path / "out.mp4"
    final.write_bytes(b"old")
    with atomic_path(final) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".mp4" and tmp != final
        tmp.write_bytes(b"new")
        assert final.read_bytes() == b"old"  # not visible until the block ends
    assert final.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_exception_leaves_final_untouched_and_no_temp(tmp_path):
    final = tmp_path / "out.png"
    final.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(final) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert final.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_no_overwrite(tmp_path):
    final = tmp_path / "a.bin"
    final.write_bytes(b"keep")
    with pytest.raises(InputError, match="a.bin"):
        atomic_write_bytes(final, b"x", overwrite=False)
    assert final.read_bytes() == b"keep"
    # appears meanwhile: refused at rename time too
    other = tmp_path / "b.bin"
    with pytest.raises(InputError, match="b.bin"):
        with atomic_path(other, overwrite=False) as tmp:
            tmp.write_bytes(b"mine")
            other.write_bytes(b"theirs")
    assert other.read_bytes() == b"theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.bin"]


def test_write_bytes_creates_parents_and_respects_umask(tmp_path):
    target = tmp_path / "sub" / "dir" / "f.txt"
    atomic_write_bytes(target, b"hello")
    assert target.read_bytes() == b"hello"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_private_mode_from_creation(tmp_path):
    key = atomic_write_bytes(tmp_path / "signer.key", b"secret", mode=0o600)
    assert key.stat().st_mode & 0o777 == 0o600
