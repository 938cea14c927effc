"""The job file: one ``animate`` or ``talk`` job per JSONL line or CSV row, checked before anything runs.

JSONL::

    {"kind": "animate", "source": "me.jpg", "driving": "drive.mp4", "output": "a/one.mp4", "options": {"size": 256}}
    {"kind": "talk", "source": "av_0123456789ab", "text": "Hello.", "output": "two.mp4"}

CSV: a header row with ``kind,source,driving,audio,text,output`` (empty cells = absent), an
optional ``options`` column holding JSON, and any other column taken as an option
(``size``, ``max_frames``...). Relative paths are relative to the job file's folder.

``source`` is a portrait file or the id of a cloned avatar (``av_`` + 12 hex digits). Each job
gets a ``key``: the sha256 of its spec and of its inputs' identity (path, size, mtime), so a
rerun recognises finished jobs and re-renders one whose spec or inputs changed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import AvatarError, InputError
from . import options as opts

FIELDS = ("kind", "source", "driving", "audio", "text", "output", "options")
AVATAR_ID = re.compile(r"^av_[0-9a-f]{12}$")
# Options that name files: resolved like the job's own paths and part of its inputs' identity.
_PATH_OPTIONS = ("head_from", "checkpoint", "model_dir", "weights")
_MAX_ERRORS = 20


@dataclass(frozen=True)
class Job:
    """One validated job. Paths are absolute; ``options`` are (flag dest, value) pairs."""

    line: int
    where: str
    kind: str
    source: str
    output: str
    driving: str | None = None
    audio: str | None = None
    text: str | None = None
    options: tuple[tuple[str, Any], ...] = ()
    key: str = ""

    @property
    def avatar_id(self) -> str | None:
        """The avatar id when the source is a cloned avatar (or the ``avatar`` option names one)."""
        if AVATAR_ID.match(self.source):
            return self.source
        return dict(self.options).get("avatar_id")

    @property
    def input_paths(self) -> tuple[str, ...]:
        """The files this job reads (for sharing them with remote workers)."""
        named = [self.source if not AVATAR_ID.match(self.source) else None, self.driving, self.audio]
        named += [v for k, v in self.options if k in _PATH_OPTIONS]
        return tuple(p for p in named if p and os.path.isfile(p))

    def to_record(self) -> dict[str, Any]:
        return {"line": self.line, "kind": self.kind, "output": self.output, "key": self.key}


class JobSource:
    """A job file (JSONL or CSV) or an iterable of dicts, read lazily and as often as needed."""

    def __init__(self, jobs: str | os.PathLike[str] | Iterable[dict[str, Any]], base_dir: str | Path | None = None) -> None:
        if isinstance(jobs, (str, os.PathLike)):
            self.path: Path | None = Path(jobs)
            self.name = str(jobs)
            self.base_dir = Path(base_dir) if base_dir else self.path.resolve().parent
            if not self.path.is_file():
                raise InputError(f"job file {self.path} not found" if not self.path.exists()
                                 else f"job file {self.path} is not a file")
            self._records: Iterable[dict[str, Any]] | None = None
        else:
            self.path, self.name = None, "jobs"
            self.base_dir = Path(base_dir) if base_dir else Path.cwd()
            self._records = jobs

    def raw(self) -> Iterator[tuple[int, dict[str, Any] | str]]:
        """(line number, record) pairs; a record that cannot be parsed is the error text instead."""
        if self.path is None:
            for i, rec in enumerate(self._records or (), 1):
                yield i, rec if isinstance(rec, dict) else f"expected a dict per job, got {type(rec).__name__}"
            return
        with open(self.path, encoding="utf-8", newline="") as fh:
            try:
                head = fh.read(4096)
            except UnicodeDecodeError:
                raise InputError(f"job file {self.path} is not UTF-8 text") from None
            fh.seek(0)
            csv_like = self.path.suffix.lower() == ".csv" or (
                self.path.suffix.lower() not in (".jsonl", ".ndjson", ".json") and not head.lstrip().startswith("{"))
            try:
                yield from (_csv_records(fh) if csv_like else _jsonl_records(fh))
            except UnicodeDecodeError as exc:
                raise InputError(f"job file {self.path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None

    def jobs(self) -> Iterator[Job]:
        """Validated jobs, in order; raises InputError (file and line) at the first bad one."""
        stat_cache: dict[str, tuple[int, int] | None] = {}
        for line, rec in self.raw():
            yield self._parse(line, rec, stat_cache)

    def _parse(self, line: int, rec: dict[str, Any] | str, stat_cache: dict) -> Job:
        where = f"{self.name} line {line}"
        if isinstance(rec, str):
            raise InputError(f"{where}: {rec}")
        try:
            return parse_job(rec, line=line, where=where, base_dir=self.base_dir, stat_cache=stat_cache)
        except AvatarError as exc:
            raise InputError(f"{where}: {exc}") from None

    def validate(self) -> int:
        """Check every job (schema, options, inputs, duplicate outputs) before anything runs; the job count.

        Reports up to 20 bad lines at once, each with its line number.
        """
        errors: list[str] = []
        seen: dict[str, int] = {}
        stat_cache: dict[str, tuple[int, int] | None] = {}
        n = 0
        for line, rec in self.raw():
            n += 1
            try:
                job = self._parse(line, rec, stat_cache)
            except InputError as exc:
                errors.append(str(exc))
            else:
                first = seen.setdefault(job.output, line)
                if first != line:
                    errors.append(f"{self.name} line {line}: output {job.output!r} is already written by line {first}; "
                                  "each job needs its own output name")
            if len(errors) >= _MAX_ERRORS:
                errors.append("(stopped after 20 errors)")
                break
        if n == 0 and not errors:
            raise InputError(f"job file {self.name} has no jobs" if self.path else "no jobs given")
        if errors:
            raise InputError("invalid job file; nothing was run:\n  " + "\n  ".join(errors))
        return n


def _jsonl_records(fh: io.TextIOBase) -> Iterator[tuple[int, dict[str, Any] | str]]:
    for line, text in enumerate(fh, 1):
        text = text.strip()
        if not text or text.startswith("#"):
            continue
        try:
            rec = json.loads(text)
        except json.JSONDecodeError as exc:
            yield line, f"not valid JSON ({exc.msg} at column {exc.colno})"
            continue
        yield line, rec if isinstance(rec, dict) else f"expected a JSON object per line, got {type(rec).__name__}"


def _csv_records(fh: io.TextIOBase) -> Iterator[tuple[int, dict[str, Any] | str]]:
    reader = csv.reader(fh)
    header = None
    for row in reader:
        if not row or not any(c.strip() for c in row):
            continue
        if header is None:
            header = [c.strip() for c in row]
            missing = [f for f in ("kind", "source", "output") if f not in header]
            if missing:
                yield reader.line_num, (f"the CSV header must name the columns kind, source, output (and driving, audio, "
                                        f"text, options as needed); missing: {', '.join(missing)}")
                return
            continue
        line = reader.line_num
        if len(row) != len(header):
            yield line, f"expected {len(header)} cells like the header, got {len(row)}"
            continue
        rec: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for name, cell in zip(header, row):
            if not cell.strip():
                continue
            if name == "options":
                try:
                    rec["options"] = json.loads(cell)
                except json.JSONDecodeError as exc:
                    yield line, f"the options cell is not valid JSON ({exc.msg})"
                    break
            elif name in FIELDS:
                rec[name] = cell
            else:
                extra[name] = cell
        else:
            if extra:
                rec["options"] = {**extra, **(rec.get("options") or {})}
            yield line, rec


def _resolve(value: Any, field: str, base_dir: Path) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{field!r} must be a non-empty path, got {value!r}")
    return str((base_dir / Path(value).expanduser()).resolve())


def _identity(path: str, field: str, cache: dict[str, tuple[int, int] | None]) -> str:
    if path not in cache:
        try:
            st = os.stat(path)
            cache[path] = (st.st_size, st.st_mtime_ns) if os.path.isfile(path) or os.path.isdir(path) else None
        except OSError:
            cache[path] = None
    ident = cache[path]
    if ident is None:
        raise InputError(f"{field} {path} not found")
    return f"{path}:{ident[0]}:{ident[1]}"


def _output_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"'output' must be a file name relative to the output folder, got {value!r}")
    name = PurePosixPath(value.strip().replace("\\", "/"))
    if name.is_absolute() or ".." in name.parts or re.match(r"^[A-Za-z]:", str(name)):
        raise InputError(f"'output' must stay inside the output folder (relative, no '..'), got {value!r}")
    if name.suffix.lower() not in (".mp4", ".m4v", ".mov"):
        raise InputError(f"'output' must end in .mp4 (or .m4v, .mov), got {value!r}")
    if name.name.startswith("."):
        raise InputError(f"'output' must not be a hidden file name, got {value!r}")
    return str(name)


def parse_job(rec: dict[str, Any], *, line: int = 0, where: str = "job", base_dir: Path | None = None,
              stat_cache: dict | None = None) -> Job:
    """One record → a :class:`Job`, or InputError / ConfigError saying which field is wrong."""
    base_dir = base_dir or Path.cwd()
    cache = stat_cache if stat_cache is not None else {}
    unknown = sorted(set(rec) - set(FIELDS))
    if unknown:
        raise InputError(f"unknown field(s) {', '.join(map(repr, unknown))}; fields are {', '.join(FIELDS)} "
                         "(put CLI flags under 'options')")
    kind = rec.get("kind")
    if kind not in opts.KINDS:
        raise InputError(f"'kind' must be 'animate' or 'talk', got {kind!r}")
    if "source" not in rec:
        raise InputError("'source' (a portrait file or an avatar id) is missing")
    raw_options = rec.get("options") or {}
    if not isinstance(raw_options, dict):
        raise InputError(f"'options' must be an object of CLI flags, e.g. {{\"size\": 256}}, got {raw_options!r}")
    options = list(opts.normalize(kind, raw_options))
    idents: list[str] = [kind]
    src = rec["source"]
    if isinstance(src, str) and AVATAR_ID.match(src.strip()) and not (base_dir / src.strip()).exists():
        source = src.strip()
        idents.append(f"avatar:{source}")
    else:
        source = _resolve(src, "source", base_dir)
        idents.append(_identity(source, "source portrait", cache))
    driving = audio = text = None
    if kind == "animate":
        if "driving" not in rec or any(rec.get(k) is not None for k in ("audio", "text")):
            raise InputError("an animate job needs 'driving' (a video), and no 'audio' or 'text'")
        driving = _resolve(rec["driving"], "driving", base_dir)
        idents.append(_identity(driving, "driving video", cache))
    else:
        if rec.get("driving") is not None:
            raise InputError("a talk job takes 'audio' or 'text', not 'driving' (use the head_from option for head motion)")
        if (rec.get("audio") is None) == (rec.get("text") is None):
            raise InputError("a talk job needs 'audio' (a file) or 'text' (to speak), exactly one of them")
        if rec.get("audio") is not None:
            audio = _resolve(rec["audio"], "audio", base_dir)
            idents.append(_identity(audio, "audio file", cache))
        else:
            text = rec["text"]
            if not isinstance(text, str) or not text.strip():
                raise InputError(f"'text' must be non-empty text, got {text!r}")
            if dict(options).get("transcript") is not None:
                raise InputError("a transcript describes an 'audio' file; a job with 'text' needs none")
            idents.append(f"text:{text}")
    for i, (dest, value) in enumerate(options):
        if value is not None and (dest in _PATH_OPTIONS or (dest == "transcript" and str(value).endswith(".txt"))):
            path = _resolve(value, dest, base_dir)
            options[i] = (dest, path)
            idents.append(_identity(path, f"{dest.replace('_', ' ')} file", cache))
    options_t = tuple(options)
    opts.config_of(kind, options_t)  # every option value checked now, not mid-batch
    spec = json.dumps({"v": 1, "inputs": idents, "options": options_t}, sort_keys=True, default=str)
    key = hashlib.sha256(spec.encode()).hexdigest()
    return Job(line, where, kind, source, _output_name(rec.get("output")), driving, audio, text, options_t, key)
