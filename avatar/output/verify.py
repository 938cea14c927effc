"""Verify an output's provenance: container tags, C2PA manifest, invisible watermark — separately."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


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


def _metadata(path: Path) -> dict[str, str]:
    if path.suffix.lower() in _IMAGE_SUFFIXES:
        from PIL import Image  # noqa: PLC0415

        with Image.open(path) as im:
            return {str(k): str(v) for k, v in im.info.items() if isinstance(v, (str, int, float))}
    import av  # noqa: PLC0415

    with av.open(str(path)) as container:
        tags = dict(container.metadata)
        for s in container.streams:
            tags.update({f"stream{s.index}:{k}": v for k, v in s.metadata.items()})
        return tags


def verify(path: str | Path, max_frames: int = 150, trust_pem: bytes | None = None) -> VerifyReport:
    """Check the three provenance layers of an MP4/MOV or PNG/JPEG file."""
    from .provenance import read_c2pa  # noqa: PLC0415
    from .watermark import detect_file  # noqa: PLC0415

    path = Path(path)
    if not path.is_file():
        raise InputError(f"expected a video or image to verify, got {str(path)!r} which does not exist")
    try:
        meta = _metadata(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable container is an input problem
        raise InputError(f"cannot read {path} as video or image ({exc})") from exc
    c2 = read_c2pa(path, trust_pem=trust_pem)
    try:
        wm = detect_file(path, max_frames=max_frames)
    except InputError:  # damaged media data: the C2PA result already says so
        from .watermark import WatermarkResult  # noqa: PLC0415

        wm = WatermarkResult(None, 0.0, 0.5, 0.0, 0, False)
    return VerifyReport(path=path, metadata=meta, c2pa_state=c2["state"], c2pa_trusted_state=c2["trusted_state"],
                        c2pa_errors=tuple(c2["errors"]), c2pa_consent=c2["consent"], watermark_payload=wm.payload,
                        watermark_confidence=wm.confidence, watermark_bit_accuracy=wm.bit_accuracy_estimate,
                        watermark_frames=wm.frames)


def format_report(r: VerifyReport) -> str:
    """Human-readable report, one section per layer."""
    keys = ("ai_generated", "comment", "avatar_id", "consent_id", "consent_policy", "encoder_tool", "software",
            "creation_time")
    lines = [f"{r.path}", "  metadata:"]
    shown = {k: r.metadata[k] for k in keys if r.metadata.get(k)}
    lines += [f"    {k}: {v}" for k, v in shown.items()] or ["    (no provenance tags)"]
    lines.append(f"  C2PA: {r.c2pa_state}" + (f" / with local trust anchor: {r.c2pa_trusted_state}"
                                              if r.c2pa_state != "absent" else " (no manifest)"))
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
