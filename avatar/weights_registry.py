"""Known checkpoints (``weights/manifest.toml``): listing, resumable download, verification.

Downloads use only the standard library (urllib): HTTP Range resume from a ``.part`` file,
a tqdm progress bar, sha256 (and md5 where a mirror publishes one) checks, then an atomic
``os.replace`` into :func:`avatar.paths.cache_dir`. A file that fails a check is deleted.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from . import paths
from .errors import WeightsError

try:  # Python ≥ 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

log = logging.getLogger(__name__)


class CorruptDownload(WeightsError):
    """A downloaded file failed its size/digest check (and was deleted)."""

CHUNK = 1 << 20
USER_AGENT = "avatar-weights/1 (+urllib)"


@dataclass(frozen=True, slots=True)
class WeightsEntry:
    """One manifest entry. ``size``/``sha256``/``md5`` are None where unknown."""

    name: str
    file: str
    urls: tuple[str, ...]
    pages: tuple[str, ...]
    size: int | None
    sha256: str | None
    md5: str | None
    license: str
    config: str
    engine: str = "fomm"
    description: str = ""
    source: str = ""

    @property
    def cached_path(self) -> Path:
        """Where ``fetch`` puts the file."""
        return paths.cache_dir() / self.file

    def where_to_get(self) -> str:
        """One-line hint for manual download."""
        where = " or ".join(self.pages or self.urls) or self.source or "its publisher"
        return f"download {self.file} from {where} and put it at {self.cached_path}"


def _unknown(value: object) -> object | None:
    return None if value in (None, "", "unknown") else value


def _digest(raw: dict, key: str) -> str | None:
    value = _unknown(raw.get(key))
    return None if value is None else str(value).lower()


def manifest_path() -> Path:
    """``weights/manifest.toml`` of this checkout/installation."""
    return paths.shipped_weights_dir() / "manifest.toml"


def load_manifest(path: str | os.PathLike[str] | None = None) -> dict[str, WeightsEntry]:
    """Manifest entries by name."""
    path = Path(path) if path else manifest_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WeightsError(f"weights manifest not found at {path}; reinstall avatar") from None
    except tomllib.TOMLDecodeError as exc:
        raise WeightsError(f"weights manifest {path} is not valid TOML: {exc}") from None
    out: dict[str, WeightsEntry] = {}
    for raw in data.get("weights", []):
        try:
            size = _unknown(raw.get("size"))
            entry = WeightsEntry(
                name=str(raw["name"]),
                file=str(raw["file"]),
                urls=tuple(raw.get("urls", ())),
                pages=tuple(raw.get("pages", ())),
                size=int(size) if size is not None else None,
                sha256=_digest(raw, "sha256"),
                md5=_digest(raw, "md5"),
                license=str(raw.get("license", "unknown")),
                config=str(raw.get("config", "")),
                engine=str(raw.get("engine", "fomm")),
                description=str(raw.get("description", "")),
                source=str(raw.get("source", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise WeightsError(f"bad entry in weights manifest {path}: {exc!r} in {raw!r}") from None
        out[entry.name] = entry
    return out


def get_entry(name: str, manifest: dict[str, WeightsEntry] | None = None) -> WeightsEntry:
    """The entry called ``name`` (or whose file name is ``name``)."""
    manifest = manifest if manifest is not None else load_manifest()
    if name in manifest:
        return manifest[name]
    for entry in manifest.values():
        if entry.file == name:
            return entry
    raise WeightsError(f"unknown weights {name!r}; known: {', '.join(sorted(manifest)) or 'none'} (see `avatar weights list`)")


def resolve_checkpoint(spec: str | os.PathLike[str] | None, default: str = "vox") -> Path:
    """Find a checkpoint given a path, a manifest name or a bare file name in the cache.

    Raises WeightsError saying how to get the file when it is nowhere.
    """
    manifest = load_manifest()
    if spec is not None and Path(spec).expanduser().is_file():
        return Path(spec).expanduser()
    name = str(spec) if spec is not None else default
    entry = next((e for e in manifest.values() if name in (e.name, e.file)), None)
    candidates = [paths.cache_dir() / Path(name).name]
    if entry is not None:
        candidates.insert(0, entry.cached_path)
    for c in candidates:
        if c.is_file():
            return c
    if entry is not None:
        how = (
            f"run `avatar weights fetch {entry.name}`"
            if entry.urls
            else f"{entry.where_to_get()}, or run `avatar weights fetch {entry.name} --url URL` with a direct link"
        )
        raise WeightsError(f"checkpoint {name!r} not found; {how} (or pass --checkpoint PATH)")
    fallback = manifest.get(default)
    hint = f"`avatar weights fetch {default}` or {fallback.where_to_get()}" if fallback else "see `avatar weights list`"
    raise WeightsError(f"checkpoint not found: {spec}; pass an existing file or get the official one: {hint}")


def file_digests(path: str | os.PathLike[str]) -> tuple[str, str, int]:
    """(sha256, md5, size) of a file, read in 1 MiB chunks."""
    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            sha.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), md5.hexdigest(), size


@dataclass(frozen=True, slots=True)
class Verification:
    """Result of :func:`verify`. ``ok`` is None when the manifest knows no digest to compare with."""

    path: Path
    size: int
    sha256: str
    md5: str
    entry: WeightsEntry | None
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool | None:
        if self.problems:
            return False
        if self.entry is None or (self.entry.sha256 is None and self.entry.md5 is None and self.entry.size is None):
            return None
        return True


def _mismatches(entry: WeightsEntry | None, sha256: str, md5: str, size: int) -> list[str]:
    if entry is None:
        return []
    out = []
    if entry.size is not None and size != entry.size:
        out.append(f"size {size} bytes, expected {entry.size}")
    if entry.sha256 is not None and sha256 != entry.sha256:
        out.append(f"sha256 {sha256}, expected {entry.sha256}")
    if entry.md5 is not None and md5 != entry.md5:
        out.append(f"md5 {md5}, expected {entry.md5}")
    return out


def verify(path: str | os.PathLike[str], name: str | None = None) -> Verification:
    """Digest ``path`` and compare with the manifest entry ``name`` (default: by file name)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"cannot verify {path}: no such file")
    manifest = load_manifest()
    entry = get_entry(name, manifest) if name else next((e for e in manifest.values() if e.file == path.name), None)
    sha, md5, size = file_digests(path)
    return Verification(path, size, sha, md5, entry, tuple(_mismatches(entry, sha, md5, size)))


def _content_range_start(value: str | None) -> int | None:
    m = re.match(r"bytes (\d+)-\d+/(\d+|\*)", value or "")
    return int(m.group(1)) if m else None


def download(
    url: str,
    dest: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    md5: str | None = None,
    size: int | None = None,
    progress: bool = True,
    timeout: float = 30.0,
) -> Path:
    """Download ``url`` to ``dest`` via ``dest.part`` (resumed with an HTTP Range request if present).

    The finished file is checked against the given digests/size and moved into place with
    ``os.replace``; on a mismatch the partial file is deleted and WeightsError raised. Network
    errors keep the ``.part`` file so that the next call resumes.
    """
    from tqdm import tqdm

    dest = Path(dest)
    paths.private_dir(dest.parent)  # missing folders (often $AVATAR_HOME itself) are created 0700
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # nothing left to fetch: the .part may already be complete
            resp = None
        else:
            raise WeightsError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise WeightsError(f"cannot reach {url} ({reason})") from None
    if resp is not None:
        with resp:
            ctype = resp.headers.get("Content-Type", "")
            if ctype.startswith("text/html"):
                raise WeightsError(f"{url} returned a web page, not the file (a share page needs a manual download)")
            resumed = offset > 0 and resp.status == 206 and _content_range_start(resp.headers.get("Content-Range")) == offset
            if resp.status == 206 and not resumed:  # a range we did not ask for: start over without Range
                if not offset:
                    raise WeightsError(f"{url} answered a plain request with partial content (HTTP 206); try another URL")
                resp.close()
                part.unlink(missing_ok=True)
                return download(url, dest, sha256=sha256, md5=md5, size=size, progress=progress, timeout=timeout)
            if offset and not resumed:
                log.info("server ignored the Range request; downloading %s from the start", url)
                offset = 0
            length = resp.headers.get("Content-Length")
            total = offset + int(length) if length and length.isdigit() else size
            try:
                with open(part, "ab" if resumed else "wb") as f, tqdm(
                    total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name, disable=not progress, leave=False
                ) as bar:
                    while chunk := resp.read(CHUNK):
                        f.write(chunk)
                        bar.update(len(chunk))
                    f.flush()
                    os.fsync(f.fileno())
            except (TimeoutError, ConnectionError, OSError) as exc:
                raise WeightsError(f"download of {url} interrupted ({exc}); run the same command again to resume") from None
    got_sha, got_md5, got_size = file_digests(part)
    expected = WeightsEntry("", dest.name, (), (), size, sha256 and sha256.lower(), md5 and md5.lower(), "", "")
    problems = _mismatches(expected, got_sha, got_md5, got_size)
    if problems:
        part.unlink(missing_ok=True)
        raise CorruptDownload(f"downloaded {dest.name} is corrupt ({'; '.join(problems)}); it was deleted, try again or another URL")
    os.replace(part, dest)
    if sha256 is None:
        log.warning("%s: no sha256 is pinned in the manifest; the downloaded file has sha256 %s", dest.name, got_sha)
    return dest


def fetch(name: str, url: str | None = None, *, progress: bool = True, force: bool = False, timeout: float = 30.0) -> Path:
    """Download the manifest entry ``name`` into the cache (unless already there and intact)."""
    entry = get_entry(name)
    dest = entry.cached_path
    if dest.is_file() and not force:
        sha, md5, size = file_digests(dest)
        problems = _mismatches(entry, sha, md5, size)
        if not problems:
            return dest
        log.warning("cached %s does not match the manifest (%s); downloading again", dest, "; ".join(problems))
    urls: Iterable[str] = [url] if url else entry.urls
    if not urls:
        raise WeightsError(f"no direct download URL is known for {entry.name}; {entry.where_to_get()} (or use --url URL)")
    errors = []
    for u in urls:
        try:
            return download(u, dest, sha256=entry.sha256, md5=entry.md5 if not url else None, size=entry.size, progress=progress, timeout=timeout)
        except CorruptDownload:
            raise
        except WeightsError as exc:
            errors.append(str(exc))
    raise WeightsError(f"could not download {entry.name} ({' | '.join(errors)}); offline? {entry.where_to_get()}")
