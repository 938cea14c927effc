"""Avatar packs on disk: ``<store folder>/packs/<avatar_id>/``, private, written atomically.

Layout (every file listed with its sha256 in ``manifest.json``)::

    manifest.json     version, source clip (sha256, size, fps, duration, rotation, audio), crop
                      size, the keyframes (file, frame index, time), file hashes
    anchor.png        the anchor frame at the clip's resolution (lossless): the rest pose
    kf/NNNN.jpg       keyframe crops around their own face (JPEG q95)
    keyframes.npz     landmarks (K, 478, 3) in crop pixels, crop_from_frame (K, 2, 3), features
    track.npz         every tracked frame: index, time, landmarks (float16, frame pixels),
                      faces seen, features, audio bands and loudness where there is sound
    footage.<ext>     the consented clip itself (the base footage talking avatars play)

A pack is built in ``packs/.building-<pid>-<token>/`` and renamed into place in one step, so a
killed clone leaves no half pack; :func:`sweep` removes what a killed build left (temp folders of
dead processes, packs whose avatar row never got written). Folders are 0700, files 0600.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import InputError
from ..media.image import sha256_file

PACK_VERSION = 1
_BUILDING = re.compile(r"^\.building-(\d+)-[0-9a-f]+$")
_AVATAR_ID = re.compile(r"^av_[0-9a-f]{12}$")


def packs_dir(store_path: Path) -> Path:
    """Where the packs of the consent store at ``store_path`` live."""
    return Path(store_path).parent / "packs"


def pack_path(store_path: Path, avatar_id: str) -> Path:
    return packs_dir(store_path) / avatar_id


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _encode(image: np.ndarray, ext: str) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, buf = cv2.imencode(ext, cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR), params)
    if not ok:  # pragma: no cover - numpy uint8 RGB always encodes
        raise InputError(f"could not encode a pack image as {ext}")
    return buf.tobytes()


class PackWriter:
    """Builds one pack in a private temp folder; :meth:`commit` renames it into place.

    Use as a context manager: leaving the block with an exception deletes the temp folder.
    """

    def __init__(self, store_path: Path) -> None:
        root = packs_dir(store_path)
        _private_dir(root)
        self.tmp = root / f".building-{os.getpid()}-{secrets.token_hex(4)}"
        _private_dir(self.tmp)
        self.files: dict[str, str] = {}

    def __enter__(self) -> "PackWriter":
        return self

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        if exc_type is not None:
            self.abort()

    def write_bytes(self, name: str, data: bytes) -> None:
        path = self.tmp / name
        _private_dir(path.parent)
        _write_private(path, data)
        self.files[name] = hashlib.sha256(data).hexdigest()

    def write_image(self, name: str, image: np.ndarray) -> None:
        self.write_bytes(name, _encode(image, Path(name).suffix.lower()))

    def write_arrays(self, name: str, **arrays: np.ndarray) -> None:
        import io

        buf = io.BytesIO()
        np.savez_compressed(buf, **{k: v for k, v in arrays.items() if v is not None})
        self.write_bytes(name, buf.getvalue())

    def copy_file(self, name: str, source: Path) -> None:
        dest = self.tmp / name
        fd = os.open(dest, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        h = hashlib.sha256()
        with open(source, "rb") as src, os.fdopen(fd, "wb") as out:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                h.update(chunk)
                out.write(chunk)
        self.files[name] = h.hexdigest()

    def commit(self, avatar_id: str, manifest: dict) -> Path:
        """Write the manifest (with every file's sha256), sync, and rename to ``packs/<avatar_id>``."""
        manifest = dict(manifest, version=PACK_VERSION, avatar_id=avatar_id, files=dict(sorted(self.files.items())))
        _write_private(self.tmp / "manifest.json", json.dumps(manifest, indent=1, sort_keys=True).encode())
        for p in self.tmp.rglob("*"):
            if p.is_file():
                with open(p, "rb") as fh:
                    os.fsync(fh.fileno())
        final = self.tmp.parent / avatar_id
        if final.exists():
            raise InputError(f"a pack for {avatar_id} already exists at {final}")
        os.rename(self.tmp, final)
        dfd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        return final

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


@dataclass(eq=False)
class Pack:
    """A loaded pack. Keyframe images are read on first use (:meth:`keyframe_image`)."""

    path: Path
    manifest: dict
    landmarks: np.ndarray          # (K, 478, 3) float32, keyframe crop pixels
    crop_from_frame: np.ndarray    # (K, 2, 3) float64
    features: np.ndarray           # (K, D) float32
    _images: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def avatar_id(self) -> str:
        return self.manifest["avatar_id"]

    def __len__(self) -> int:
        return len(self.landmarks)

    def keyframe_image(self, k: int) -> np.ndarray:
        """(S, S, 3) uint8 RGB crop of keyframe ``k``."""
        if k not in self._images:
            self._images[k] = _read_image(self.path / self.manifest["keyframes"][k]["file"])
        return self._images[k]

    def anchor_frame(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB: the anchor frame at the clip's resolution."""
        return _read_image(self.path / "anchor.png")

    def track(self) -> dict[str, np.ndarray]:
        """The per-tracked-frame arrays of ``track.npz``."""
        with np.load(self.path / "track.npz") as z:
            return {k: z[k] for k in z.files}

    def footage(self) -> Path | None:
        name = self.manifest.get("footage")
        return self.path / name if name else None


def _read_image(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"pack image {path} is missing or unreadable; clone the video again")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def load_pack(path: Path, verify: bool = True) -> Pack:
    """Read a pack; with ``verify``, every file except the footage is checked against its sha256."""
    path = Path(path)
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"no readable avatar pack at {path} ({exc}); clone the video again") from None
    if manifest.get("version") != PACK_VERSION:
        raise InputError(f"avatar pack {path} has version {manifest.get('version')}, this build reads {PACK_VERSION}")
    if verify:
        for name, sha in manifest["files"].items():
            if name == manifest.get("footage"):
                continue
            p = path / name
            if not p.is_file() or sha256_file(p) != sha:
                raise InputError(f"avatar pack file {p} is missing or altered (sha256 mismatch); clone the video again")
    with np.load(path / "keyframes.npz") as z:
        return Pack(path, manifest, z["landmarks"].astype(np.float32), z["crop_from_frame"].astype(np.float64),
                    z["features"].astype(np.float32))


def delete_pack(store_path: Path, avatar_id: str) -> bool:
    """Delete the pack of ``avatar_id`` (True if there was one)."""
    if not _AVATAR_ID.match(avatar_id):
        return False
    path = pack_path(store_path, avatar_id)
    if not path.exists():
        return False
    # rename first: a reader never sees a half-deleted pack, and a crash mid-delete leaves only a
    # temp folder that sweep() removes
    doomed = path.with_name(f".building-0-{secrets.token_hex(4)}")
    os.rename(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)
    return True


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep(store_path: Path, known_ids: set[str], grace_s: float = 60.0) -> list[Path]:
    """Remove temp folders of builds whose process is gone, and packs that have had no avatar
    record for ``grace_s`` (a clone renames its pack into place just before writing the record)."""
    import time

    root = packs_dir(store_path)
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    now = time.time()
    for p in root.iterdir():
        m = _BUILDING.match(p.name)
        stale = (m is not None and not _pid_alive(int(m.group(1)))) or (
            _AVATAR_ID.match(p.name) is not None and p.name not in known_ids and now - p.stat().st_mtime > grace_s)
        if stale:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed
