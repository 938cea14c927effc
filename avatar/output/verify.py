"""Verify an output's provenance: container tags, C2PA manifest, invisible watermark — separately."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif")
# Formats c2pa-python cannot embed a manifest in (the output table in avatar/media/formats.py).
_NO_C2PA = {".webm": "WebM", ".mkv": "Matroska"}


@dataclass(frozen=True)
class VerifyReport:
    """What each provenance layer says about one file.

    metadata: container / image tags (ai_generated, comment, consent_id, …); empty if none.
    c2pa_state: "Valid", "Invalid" or "absent" (no trust list); c2pa_trusted_state: with the
        local CA (or $AVATAR_C2PA_TRUST) as trust anchor: "Trusted" when the chain ends there.
    c2pa_errors: validation failure codes (e.g. assertion.bmffHash.mismatch = tampered).
    c2pa_consent: the consent assertion (avatar id, consent id, scope, expiry) if present.
    watermark_payload: 32-bit payload or None; watermark_confidence 0..1;
    watermark_bit_accuracy: estimated per-bit reliability; watermark_frames: frames read.
    c2pa_note: why there is no manifest where the format cannot hold one (e.g. WebM).
    files: files checked (a PNG sequence folder: every frame).
    """

    path: Path
    metadata: dict[str, str] = field(default_factory=dict)
    c2pa_state: str = "absent"
    c2pa_trusted_state: str = "absent"
    c2pa_errors: tuple[str, ...] = ()
    c2pa_consent: dict | None = None
    watermark_payload: int | None = None
    watermark_confidence: float = 0.0
    watermark_bit_accuracy: float = 0.5
    watermark_frames: int = 0
    c2pa_note: str = ""
    files: int = 1

    @property
    def labelled_ai(self) -> bool:
        """Any layer says this is AI-generated."""
        return (self.metadata.get("ai_generated") == "true" or self.c2pa_state in ("Valid", "Trusted")
                or self.watermark_payload is not None)

    @property
    def watermark_matches_c2pa(self) -> bool | None:
        """The watermark payload equals the one the manifest names (None if either is missing)."""
        if self.watermark_payload is None or not self.c2pa_consent:
            return None
        return f"{self.watermark_payload:08x}" == self.c2pa_consent.get("watermark_payload")


def _image_tags(info: dict) -> dict[str, str]:
    """Tags of a Pillow image: text chunks (PNG), the JSON comment (GIF), the XMP packet (WebP)."""
    from ..media.tags import tags_from_json, tags_from_xmp  # noqa: PLC0415

    tags = {str(k): str(v) for k, v in info.items() if isinstance(v, (str, int, float))}
    if isinstance(info.get("comment"), bytes):
        tags.update(tags_from_json(info["comment"]))
    if info.get("xmp"):
        tags.update(tags_from_xmp(info["xmp"]))
    return tags


def _metadata(path: Path) -> dict[str, str]:
    if path.suffix.lower() in _IMAGE_SUFFIXES:
        from PIL import Image  # noqa: PLC0415

        with Image.open(path) as im:
            return _image_tags(im.info)
    import av  # noqa: PLC0415

    with av.open(str(path)) as container:
        # Matroska stores tag names upper-case (AI_GENERATED); MP4 keeps them as written.
        tags = {k.lower(): v for k, v in container.metadata.items()}
        for s in container.streams:
            tags.update({f"stream{s.index}:{k.lower()}": v for k, v in s.metadata.items()})
        return tags


def _sequence_frames(folder: Path) -> list[Path]:
    frames = sorted(folder.glob("frame_*.png"))
    if not frames:
        raise InputError(f"{folder} is a folder without frame_*.png files; expected a PNG sequence written by avatar")
    return frames


def _c2pa_of_sequence(frames: list[Path], trust_pem: bytes | None) -> dict:
    """One C2PA verdict for a PNG sequence: valid only if every frame carries a valid manifest."""
    from .provenance import read_c2pa  # noqa: PLC0415

    results = [read_c2pa(f, trust_pem=trust_pem) for f in frames]
    first = results[0]
    if all(r["state"] == "absent" and not r["errors"] for r in results):
        return first
    bad = [(f.name, r) for f, r in zip(frames, results) if r["state"] not in ("Valid", "Trusted") or r["errors"]]
    if bad:
        errors = [f"{name}: {r['state']}" + (f" ({'; '.join(r['errors'])})" if r["errors"] else "") for name, r in bad]
        return {**first, "state": "Invalid", "trusted_state": "Invalid", "errors": errors}
    trusted = sorted({r["trusted_state"] for r in results})
    return {**first, "trusted_state": trusted[0] if len(trusted) == 1 else "mixed: " + ", ".join(trusted)}


def verify(path: str | Path, max_frames: int = 150, trust_pem: bytes | None = None) -> VerifyReport:
    """Check the three provenance layers of a video (MP4/MOV/WebM), an image or animation
    (PNG/JPEG/GIF/WebP) or a PNG sequence folder (every frame's manifest)."""
    from .provenance import read_c2pa  # noqa: PLC0415
    from .watermark import detect_file, detect_frames  # noqa: PLC0415

    path = Path(path)
    if path.is_dir():
        frames = _sequence_frames(path)
        try:
            meta = _metadata(frames[0])
        except Exception as exc:  # noqa: BLE001 - any unreadable frame is an input problem
            raise InputError(f"cannot read {frames[0]} as a PNG image ({exc})") from exc
        c2 = _c2pa_of_sequence(frames, trust_pem)

        def images():
            import numpy as np  # noqa: PLC0415
            from PIL import Image  # noqa: PLC0415

            for f in frames:
                try:
                    with Image.open(f) as im:
                        yield np.asarray(im.convert("RGB"))
                except OSError:  # a damaged frame: its C2PA verdict says so; the others still vote
                    continue

        wm = detect_frames(images(), max_frames)
        return _report(path, meta, c2, wm, files=len(frames))
    if not path.is_file():
        raise InputError(f"expected a video, image or PNG sequence folder to verify, got {str(path)!r} which does not exist")
    try:
        meta = _metadata(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable container is an input problem
        raise InputError(f"cannot read {path} as video or image ({exc})") from exc
    no_c2pa = _NO_C2PA.get(path.suffix.lower())
    if no_c2pa:
        c2 = {"state": "absent", "trusted_state": "absent", "errors": [], "consent": None}
    else:
        c2 = read_c2pa(path, trust_pem=trust_pem)
    try:
        wm = detect_file(path, max_frames=max_frames)
    except InputError:  # damaged media data: the C2PA result already says so
        from .watermark import WatermarkResult  # noqa: PLC0415

        wm = WatermarkResult(None, 0.0, 0.5, 0.0, 0, False)
    note = f"c2pa-python cannot embed a manifest in {no_c2pa}" if no_c2pa else ""
    return _report(path, meta, c2, wm, note=note)


def _report(path: Path, meta: dict, c2: dict, wm, *, note: str = "", files: int = 1) -> VerifyReport:
    return VerifyReport(path=path, metadata=meta, c2pa_state=c2["state"], c2pa_trusted_state=c2["trusted_state"],
                        c2pa_errors=tuple(c2["errors"]), c2pa_consent=c2["consent"], watermark_payload=wm.payload,
                        watermark_confidence=wm.confidence, watermark_bit_accuracy=wm.bit_accuracy_estimate,
                        watermark_frames=wm.frames, c2pa_note=note, files=files)


def format_report(r: VerifyReport) -> str:
    """Human-readable report, one section per layer."""
    keys = ("ai_generated", "comment", "avatar_id", "consent_id", "consent_policy", "encoder_tool", "software",
            "creation_time")
    lines = [f"{r.path}" + (f" (PNG sequence, {r.files} frames)" if r.path.is_dir() else ""), "  metadata:"]
    shown = {k: r.metadata[k] for k in keys if r.metadata.get(k)}
    lines += [f"    {k}: {v}" for k, v in shown.items()] or ["    (no provenance tags)"]
    lines.append(f"  C2PA: {r.c2pa_state}" + (f" / with local trust anchor: {r.c2pa_trusted_state}"
                                              if r.c2pa_state != "absent"
                                              else f" (no manifest{': ' + r.c2pa_note if r.c2pa_note else ''})"))
    lines += [f"    error: {e}" for e in r.c2pa_errors]
    if r.c2pa_state == "Invalid":
        lines.append("    → the file was modified after signing (or the signature is broken)")
    if r.c2pa_consent:
        c = r.c2pa_consent
        lines.append(f"    consent: avatar {c.get('avatar_id')}, id {c.get('consent_id')}, policy {c.get('policy')}, "
                     f"scope {c.get('scope')}, expires {c.get('expires')}")
    if r.watermark_payload is not None:
        match = {True: " (matches the C2PA consent)", False: " (differs from the C2PA consent!)", None: ""}
        lines.append(f"  watermark: payload {r.watermark_payload:08x}, confidence {r.watermark_confidence:.4f}, "
                     f"bit reliability ~{r.watermark_bit_accuracy:.2f}, {r.watermark_frames} frame(s)"
                     f"{match[r.watermark_matches_c2pa]}")
    else:
        lines.append(f"  watermark: not found ({r.watermark_frames} frame(s) read)")
    lines.append("  verdict: " + ("labelled as AI-generated" if r.labelled_ai else "no AI-generation label found"))
    return "\n".join(lines)
