"""What the demo does, without any UI: previews, consent records, renders, verification.

Every method takes only Gradio-managed upload paths or avatar ids, raises
:class:`~avatar.errors.AvatarError` subclasses for refusals (the UI turns them into
``gr.Error``), and writes its outputs into one per-app temporary folder that is swept as it
ages and removed on :meth:`DemoService.close`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..config import AvatarConfig
from ..errors import ConfigError, ConsentError, InputError, NoFaceError
from .settings import DemoSettings, engine_render_config

log = logging.getLogger(__name__)

PREVIEW_SIZE = 256  # crop preview side in pixels
_BOX_COLOURS = ((255, 64, 64), (64, 160, 255), (255, 200, 0), (160, 96, 255), (0, 200, 120))


@dataclass(frozen=True)
class CropPrefs:
    """What the Clone tab chose for an avatar: the face and the crop scale, reused by later renders."""

    face_index: int | None
    crop_scale: float


@dataclass(frozen=True)
class Viewer:
    """Who is asking: ``owner`` is recorded on the avatars they create; an admin sees every avatar."""

    owner: str
    admin: bool = False

    def sees(self, record: Any) -> bool:
        return self.admin or record.owner == self.owner


def _missing_consent(subject: str | None, granted_by: str | None, statement: str | None,
                     scopes: Sequence[str] | None, confirmed: bool) -> list[str]:
    """What the consent form still lacks (the same for a portrait and a video clone)."""
    from ..output.consent import GRANTORS

    missing = []
    if not (subject or "").strip():
        missing.append("the subject's name")
    if (granted_by or "") not in GRANTORS:
        missing.append(f"who grants consent ({', '.join(GRANTORS)})")
    if not (statement or "").strip():
        missing.append("the consent statement")
    if not scopes:
        missing.append("at least one scope (video, audio, live)")
    if not confirmed:
        missing.append("the confirmation that the grantor agreed to the statement")
    return missing


def local_viewer() -> Viewer:
    """The local operator (a demo without sign-in): owner ``local:<login>``, sees every avatar, as the CLI does."""
    from ..output.consent import local_owner

    return Viewer(local_owner(), admin=True)


@dataclass(frozen=True)
class RenderOutput:
    """A finished render: the video and a provenance summary for the UI."""

    path: Path
    summary: dict[str, Any]


def _now() -> datetime:
    return datetime.now(timezone.utc)


class DemoService:
    """The demo's state and actions. Thread-safe: Gradio calls it from worker threads.

    Args:
        settings: limits, the base AvatarConfig and the consent store path.
    """

    def __init__(self, settings: DemoSettings | None = None) -> None:
        from ..output.consent import ConsentStore

        self.settings = settings or DemoSettings()
        self.store = ConsentStore(self.settings.store_path)
        self.workdir = Path(tempfile.mkdtemp(prefix="avatar-demo-"))
        self._prefs: dict[str, CropPrefs] = {}
        self._faces: OrderedDict[str, tuple[np.ndarray, list]] = OrderedDict()
        self._engines: dict[Any, list[Any]] = {}
        self._lock = threading.Lock()

    @property
    def config(self) -> AvatarConfig:
        return self.settings.config

    def viewer(self, username: str | None) -> Viewer:
        """The Viewer of a request signed in as ``username`` (Gradio's ``request.username``).

        Without sign-in the visitor is the local operator; with sign-in a request without a user
        is refused (it cannot happen through Gradio's login, only by a misconfiguration).
        """
        if not self.settings.sign_in:
            return local_viewer()
        if not username:
            raise ConsentError("sign in first: this demo shows each user only their own avatars")
        if ":" in username:  # ``local:…`` owners belong to the command line
            raise ConsentError(f"user name {username!r} may not contain ':'")
        return Viewer(username, admin=username in self.settings.admins)

    def close(self) -> None:
        """Remove the temp folder and close the store (idempotent)."""
        shutil.rmtree(self.workdir, ignore_errors=True)
        with contextlib.suppress(Exception):  # closing twice is fine
            self.store.close()

    # -- uploads ----------------------------------------------------------------------------
    def check_upload(self, path: str | Path | None, what: str) -> Path:
        """The upload exists, is non-empty and under the size limit."""
        if not path:
            raise InputError(f"no {what} uploaded; upload one first")
        p = Path(path)
        if not p.is_file():
            raise InputError(f"the {what} upload is gone (expired from the cache?); upload it again")
        size = p.stat().st_size
        if size == 0:
            raise InputError(f"the {what} file is empty (0 bytes); upload a real file")
        if size > self.settings.max_upload_bytes:
            raise InputError(f"the {what} is {size / 2**20:.1f} MB; this demo accepts up to "
                             f"{self.settings.max_upload_mb:g} MB")
        return p

    def check_video(self, path: str | Path | None) -> Any:
        """Probe a driving video before any work: decodable, with frames, not longer than the limit."""
        from ..media.video import probe_video

        p = self.check_upload(path, "driving video")
        info = probe_video(p)
        if info.duration > self.settings.max_seconds:
            raise InputError(f"the driving video is {info.duration:.1f} s long; this demo accepts up to "
                             f"{self.settings.max_seconds:g} s, so trim it first")
        return info

    def check_audio(self, path: str | Path | None) -> float:
        """Probe an audio upload: it has an audio stream no longer than the limit. Returns seconds."""
        from ..media.video import audio_duration, read_audio

        p = self.check_upload(path, "audio")
        seconds = audio_duration(p)
        if seconds is None:  # the container does not say: decode at a low rate and count
            seconds = len(read_audio(p, sample_rate=8000)) / 8000.0
        if seconds > self.settings.max_seconds:
            raise InputError(f"the audio is {seconds:.1f} s long; this demo accepts up to "
                             f"{self.settings.max_seconds:g} s, so trim it first")
        return seconds

    # -- clone --------------------------------------------------------------------------------
    def faces(self, path: str | Path) -> tuple[np.ndarray, list]:
        """The portrait (H, W, 3) uint8 RGB (capped at the output size) and its faces, largest first.

        Cached per upload so moving the crop slider does not re-run detection.
        """
        from ..face.landmarks import LandmarkDetector
        from ..media.image import load_image, resize_max

        p = self.check_upload(path, "portrait")
        key = str(p)
        with self._lock:
            hit = self._faces.get(key)
            if hit is not None:
                self._faces.move_to_end(key)
                return hit
        image = resize_max(load_image(p), self.config.output.max_size)
        with LandmarkDetector(video=False, min_confidence=self.config.face.min_confidence,
                              backend=self.config.face.backend) as det:
            found = det.detect(image)
        if not found:
            raise NoFaceError("no face found in the portrait; upload a photo with one clearly visible, "
                              "roughly frontal face")
        with self._lock:
            self._faces[key] = (image, found)
            while len(self._faces) > 8:
                self._faces.popitem(last=False)
        return image, found

    def preview(self, path: str | Path, crop_scale: float, face_index: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
        """Annotated portrait (every face boxed and numbered, the crop square drawn) and the crop itself.

        Returns: (annotated (H', W', 3) uint8, crop (PREVIEW_SIZE, PREVIEW_SIZE, 3) uint8, number of faces).
        """
        import cv2

        from ..face.crop import crop_box, crop_matrix, make_crop

        image, found = self.faces(path)
        face_index = int(face_index or 0)
        if not 0 <= face_index < len(found):
            raise NoFaceError(f"face {face_index} asked for, but the portrait has {len(found)} face(s)")
        face_cfg = dataclasses.replace(self.config.face, crop_scale=float(crop_scale))
        face = found[face_index]
        box = crop_box(face.landmarks, face_cfg)
        crop = make_crop(image, face.landmarks, crop_matrix(box, PREVIEW_SIZE), PREVIEW_SIZE).image
        shown = image.copy()
        thick = max(2, round(max(image.shape[:2]) / 300))
        for i, f in enumerate(found):
            x0, y0, x1, y1 = (round(v) for v in f.box)
            colour = _BOX_COLOURS[i % len(_BOX_COLOURS)]
            cv2.rectangle(shown, (x0, y0), (x1, y1), colour, thick)
            cv2.putText(shown, str(i), (x0 + thick, max(y0 - 2 * thick, 12 * thick)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.35 * thick, colour, thick, cv2.LINE_AA)
        cx, cy, side = box
        half = side / 2
        cv2.rectangle(shown, (int(cx - half), int(cy - half)), (int(cx + half), int(cy + half)), (255, 255, 255),
                      thick, cv2.LINE_AA)
        return shown, crop, len(found)

    def create_avatar(self, path: str | Path | None, *, subject: str, granted_by: str, statement: str,
                      scopes: Sequence[str], commercial: bool, expires: str | None, confirmed: bool,
                      face_index: int | None = 0, crop_scale: float | None = None, viewer: Viewer | None = None):
        """Record consent for the chosen face of the uploaded portrait; returns the AvatarRecord
        (owned by ``viewer``; its ``revocation_token`` is shown to the user once).

        Raises ConsentError naming every missing field when the form is incomplete.
        """
        from ..face.descriptor import face_descriptor
        from ..media.image import sha256_file
        from ..output.consent import Scope, parse_expiry

        missing = []
        if not path:
            missing.append("a portrait")
        missing += _missing_consent(subject, granted_by, statement, scopes, confirmed)
        if missing:
            raise ConsentError("the consent form is incomplete: add " + "; ".join(missing))
        scope = Scope.parse(",".join(scopes), commercial=bool(commercial))
        expiry = parse_expiry(expires)
        if expiry is not None and expiry <= _now():
            raise ConsentError(f"the expiry {expiry.date()} is in the past; give a future date or leave it empty")
        image, found = self.faces(path)
        idx = int(face_index or 0)
        if not 0 <= idx < len(found):
            raise NoFaceError(f"face {idx} asked for, but the portrait has {len(found)} face(s)")
        p = Path(path)
        rec = self.store.clone(image, source_sha256=sha256_file(p), subject=subject, granted_by=granted_by,
                               statement=statement, scope=scope, expires=expiry, source_path=p,
                               descriptor=face_descriptor(image, found[idx]),
                               owner=(viewer or local_viewer()).owner)
        scale = self.config.face.crop_scale if crop_scale is None else float(crop_scale)
        with self._lock:
            self._prefs[rec.avatar_id] = CropPrefs(idx if len(found) > 1 else None, scale)
        return rec

    def new_consent_code(self, statement: str | None) -> tuple[str, str]:
        """A one-time consent code and the script the subject reads on camera with it."""
        from ..output.spoken_consent import consent_script, issue_code

        if not (statement or "").strip():
            raise ConsentError("write the consent statement first: the subject reads it on camera with the code")
        code = issue_code(self.store)
        return code, consent_script(statement, code)

    def create_video_avatar(self, video: str | Path | None, *, subject: str, granted_by: str, statement: str,
                            scopes: Sequence[str], commercial: bool, expires: str | None, confirmed: bool,
                            code: str | None = None, attested_by: str | None = None, viewer: Viewer | None = None):
        """Clone a video avatar from an uploaded or webcam-recorded video (docs/clone.md): the subject
        reads the statement and ``code`` at its start, or an operator attests (``attested_by``)."""
        from ..output.consent import Scope, parse_expiry
        from ..pack.clone import clone_video

        code = (code or "").strip() or None
        attested_by = (attested_by or "").strip() or None
        missing = []
        if not video:
            missing.append("a video")
        missing += _missing_consent(subject, granted_by, statement, scopes, confirmed)
        if code is None and attested_by is None:
            missing.append("the one-time code the subject read (or an operator's attestation)")
        if missing:
            raise ConsentError("the consent form is incomplete: add " + "; ".join(missing))
        p = self.check_upload(video, "video")
        expiry = parse_expiry(expires)
        if expiry is not None and expiry <= _now():
            raise ConsentError(f"the expiry {expiry.date()} is in the past; give a future date or leave it empty")
        return clone_video(p, subject=subject, statement=statement, store=self.store, granted_by=granted_by,
                           scope=Scope.parse(",".join(scopes), commercial=bool(commercial)), expires=expiry,
                           code=code, attested_by=attested_by, owner=(viewer or local_viewer()).owner)

    def prefs(self, avatar_id: str | None) -> CropPrefs:
        """Face and crop scale chosen at clone time (defaults for avatars cloned elsewhere)."""
        with self._lock:
            return self._prefs.get(avatar_id or "", CropPrefs(None, self.config.face.crop_scale))

    def visible(self, viewer: Viewer | None = None) -> list:
        """The avatars ``viewer`` may see (their own; all for an admin or the local operator), newest first."""
        viewer = viewer or local_viewer()
        return [r for r in reversed(self.store.list()) if viewer.sees(r)]

    def avatar_rows(self, viewer: Viewer | None = None) -> list[list[str]]:
        """[id, subject, granted by, scope, status, expires, owner] per visible avatar, newest first."""
        rows = []
        for r in self.visible(viewer):
            rows.append([r.avatar_id, r.subject, r.granted_by, r.scope.describe(), r.status(),
                         r.expires.date().isoformat() if r.expires else "-", r.owner or "-"])
        return rows

    def avatar_choices(self, use: str | None = None, viewer: Viewer | None = None) -> list[tuple[str, str]]:
        """(label, avatar id) of visible active avatars whose scope covers ``use`` (all active ones when None)."""
        out = []
        for r in self.visible(viewer):
            if r.status() == "active" and (use is None or r.scope.allows(use)):
                out.append((f"{r.subject} ({r.avatar_id})", r.avatar_id))
        return out

    def describe(self, avatar_id: str | None, viewer: Viewer | None = None) -> str:
        """One avatar's consent record as Markdown."""
        r = self.record(avatar_id, viewer)
        fmt = lambda dt: dt.isoformat(timespec="seconds") if dt else "-"
        status = r.status() + (f" ({r.revoke_reason}, {fmt(r.revoked)})" if r.revoked else "")
        lines = [f"**{r.subject}** — `{r.avatar_id}`", "",
                 f"- consent id: `{r.consent_id}`", f"- granted by: {r.granted_by}",
                 f"- created by: {r.owner or '-'}",
                 f"- statement: “{r.statement}”", f"- scope: {r.scope.describe()}",
                 f"- created: {fmt(r.created)}", f"- expires: {fmt(r.expires)}", f"- status: **{status}**",
                 f"- source sha256: `{r.source_sha256[:16]}…`"]
        lines += [f"- evidence: {name} (sha256 `{sha[:16]}…`)" for name, sha in r.evidence]
        ev = self.store.evidence_of(r.avatar_id)
        if ev is not None:  # a video avatar: how consent was given
            lines.append(f"- video avatar, consent basis: **{ev['basis']}**"
                         + (f" (attested by {ev['attested_by']})" if ev["attested_by"] else ""))
        return "\n".join(lines)

    def revoke(self, avatar_id: str | None, reason: str, viewer: Viewer | None = None, token: str | None = None):
        """Revoke an avatar's consent; later renders (and live sessions at their next check) refuse it.

        Its owner (or an admin) may revoke it; anyone else only with its revocation token, the
        subject's own way to withdraw. Without either, the avatar does not exist for them.
        """
        token = (token or "").strip() or None
        if token is None:
            self.record(avatar_id, viewer)
            return self.store.revoke(str(avatar_id), reason)
        if not avatar_id:
            raise ConsentError("choose (or type) the avatar id that the revocation token belongs to")
        try:  # an unknown id and a wrong token read alike: no oracle for which ids exist
            if not self.store.token_matches(str(avatar_id), token):
                raise ConsentError("token mismatch")
        except ConsentError:
            raise ConsentError(f"that revocation token does not belong to avatar {avatar_id!r}; use the token "
                               "shown when the avatar was created") from None
        return self.store.revoke(str(avatar_id), reason, token=token)

    # -- renders ------------------------------------------------------------------------------
    def record(self, avatar_id: str | None, viewer: Viewer | None = None):
        """The AvatarRecord of ``avatar_id`` if ``viewer`` may see it; ConsentError (in the demo's
        words, the same whether it does not exist or belongs to someone else) otherwise."""
        if not avatar_id:
            raise ConsentError("choose an avatar first (create one with consent in the Clone tab)")
        try:
            rec = self.store.get(str(avatar_id))
        except ConsentError:
            rec = None
        if rec is None or not (viewer or local_viewer()).sees(rec):
            raise ConsentError(f"no avatar {avatar_id!r} has a consent record here; create it with consent "
                               "in the Clone tab")
        return rec

    def portrait_of(self, avatar_id: str | None, viewer: Viewer | None = None) -> Path | np.ndarray:
        """The consented portrait of ``avatar_id``, from the store only (never from the client).

        The stored file itself when its bytes are the consented ones (the gate then matches it by
        sha256, whichever face was chosen); else ``ConsentStore.source_image``.
        """
        from ..media.image import sha256_file

        rec = self.record(avatar_id, viewer)
        stored = self.store.sources_dir / rec.image_file
        if stored.is_file() and sha256_file(stored) == rec.source_sha256:
            return stored
        return self.store.source_image(avatar_id)

    def render_config(self, avatar_id: str | None, *, engine: str = "warp", mode: str | None = None,
                      best_frame: bool | None = None, crop_scale: float | None = None,
                      smoothing: float | None = None) -> AvatarConfig:
        """This request's config: the base config with the UI's options (and the clone-time face)."""
        from ..cli.animate import smoothing_configs

        cfg = self.config
        prefs = self.prefs(avatar_id)
        face = dataclasses.replace(cfg.face, face_index=prefs.face_index,
                                   crop_scale=float(crop_scale if crop_scale is not None else prefs.crop_scale))
        motion = cfg.motion
        if mode is not None:
            motion = dataclasses.replace(motion, mode=mode)
        if best_frame is not None:
            motion = dataclasses.replace(motion, best_frame=bool(best_frame))
        if smoothing is not None:
            motion = dataclasses.replace(motion, **smoothing_configs(float(smoothing)))
        return dataclasses.replace(cfg, face=face, motion=motion, render=engine_render_config(cfg, engine))

    @contextlib.contextmanager
    def animator(self, config: AvatarConfig) -> Iterator[Any]:
        """An Animator for ``config`` whose engine no other request uses meanwhile.

        Engines are pooled per render config, so weights load once and concurrent renders
        (``concurrency`` > 1) never share one engine.
        """
        from ..pipeline import Animator
        from ..render.registry import create_engine

        key = config.render
        with self._lock:
            free = self._engines.setdefault(key, [])
            engine = free.pop() if free else None
        if engine is None:
            engine = create_engine(key)
        try:
            yield Animator(config, engine=engine, consent_store=self.store)
        finally:
            with self._lock:
                self._engines[key].append(engine)

    def own_animator(self, config: AvatarConfig) -> Any:
        """An Animator with an engine of its own, for a long-lived live session."""
        from ..pipeline import Animator
        from ..render.registry import create_engine

        return Animator(config, engine=create_engine(config.render), consent_store=self.store)

    def base_preview(self, avatar_id: str | None, viewer: Viewer | None = None, seconds: float = 6.0,
                     max_side: int = 360) -> Path | None:
        """A short, small copy of a video avatar's base footage (what its talking plays under the
        new speech) for the Talk tab, or None for a photo avatar. Only for a ``viewer`` who may
        see the avatar; the person's own consented clip, so no AI label (nothing is generated)."""
        import cv2

        from ..media.video import VideoWriter, probe_video, read_frames
        from ..pack.store import load_pack

        self.record(avatar_id, viewer)
        pack = self.store.pack_dir(str(avatar_id))
        footage = load_pack(pack, verify=False).footage() if pack is not None else None
        if footage is None or not footage.is_file():
            return None
        fps = probe_video(footage).fps
        out = self.workdir / f"base-{avatar_id}-{uuid.uuid4().hex[:8]}.mp4"
        with VideoWriter(out, fps) as writer, read_frames(footage, max_frames=max(1, int(seconds * fps))) as frames:
            for frame in frames:
                h, w = frame.shape[:2]
                k = min(1.0, max_side / max(h, w))
                if k < 1.0:
                    frame = cv2.resize(frame, (max(2, round(w * k)), max(2, round(h * k))), interpolation=cv2.INTER_AREA)
                writer.write(frame)
        return out

    def _output_path(self, kind: str) -> Path:
        self.sweep()
        return self.workdir / f"{kind}-{uuid.uuid4().hex[:10]}.mp4"

    def sweep(self) -> int:
        """Delete outputs older than ``cache_minutes`` (Gradio keeps its own copy); returns how many."""
        cutoff = time.time() - 60 * self.settings.cache_minutes
        n = 0
        for p in self.workdir.glob("*"):
            try:
                if p.stat().st_mtime < cutoff:
                    p.unlink()
                    n += 1
            except OSError:
                pass
        return n

    def animate(self, avatar_id: str | None, driving: str | Path | None, *, mode: str = "relative",
                best_frame: bool = False, crop_scale: float | None = None, smoothing: float = 1.0,
                engine: str = "warp", progress: bool = True, viewer: Viewer | None = None) -> RenderOutput:
        """Animate the avatar with an uploaded driving video (consent checked by Animator.prepare)."""
        self.record(avatar_id, viewer)
        info = self.check_video(driving)
        cfg = self.render_config(avatar_id, engine=engine, mode=mode, best_frame=best_frame, crop_scale=crop_scale,
                                 smoothing=smoothing)
        portrait = self.portrait_of(avatar_id, viewer)
        out = self._output_path("animate")
        with self.animator(cfg) as animator:
            result = animator.animate(portrait, Path(driving), out, avatar_id=avatar_id, progress=progress)
        return RenderOutput(out, self._summary(result, engine, extra={"driving_seconds": round(info.duration, 2)}))

    def talk(self, avatar_id: str | None, audio: str | Path | None = None, text: str | None = None,
             transcript: str | None = None, *, crop_scale: float | None = None, progress: bool = True,
             viewer: Viewer | None = None) -> RenderOutput:
        """Make the avatar speak an uploaded audio file or typed text (offline TTS); ``portrait_of``
        refuses an avatar ``viewer`` may not see before any render."""

        text = (text or "").strip() or None
        if audio and text:
            raise InputError("give either an audio file or text to speak, not both")
        if not audio and not text:
            raise InputError("upload audio or type the text to speak")
        if audio:
            self.check_audio(audio)
        else:
            if not tts_available():
                raise ConfigError("typed text needs espeak-ng (offline speech), which is not installed here; "
                                  "upload audio instead (`apt-get install espeak-ng`)")
            if len(text) > 20 * self.settings.max_seconds:  # ~15 characters per second of speech
                raise InputError(f"the text is {len(text)} characters; this demo speaks up to about "
                                 f"{self.settings.max_seconds:g} s ({int(20 * self.settings.max_seconds)} characters)")
        cfg = self.render_config(avatar_id, crop_scale=crop_scale)
        portrait = self.portrait_of(avatar_id, viewer)
        out = self._output_path("talk")
        with self.animator(cfg) as animator:
            result = animator.talk(portrait, out, audio=Path(audio) if audio else None, text=text,
                                   transcript=((transcript or "").strip() or None) if audio else None,
                                   avatar_id=avatar_id, progress=progress)
        return RenderOutput(out, self._summary(result, cfg.render.engine))

    def _summary(self, result: Any, engine: str, extra: dict | None = None) -> dict[str, Any]:
        p = result.provenance or {}
        summary = {
            "avatar_id": p.get("avatar_id"),
            "consent_id": p.get("consent_id"),
            "consent_policy": p.get("consent_policy"),
            "ai_generated": p.get("ai_generated"),
            "label": p.get("comment"),
            "engine": engine,
            "frames": result.frames,
            "fps": round(float(result.fps), 3),
            "render_seconds": round(float(result.seconds), 2),
            "achieved_fps": round(float(result.achieved_fps), 2),
        }
        if getattr(result, "faces_missing", 0):
            summary["frames_without_face"] = result.faces_missing
        summary.update(extra or {})
        return summary

    # -- verify -------------------------------------------------------------------------------
    def verify(self, path: str | Path | None) -> tuple[str, dict[str, Any]]:
        """What ``avatar verify`` reports for an uploaded file: (text report, key facts)."""
        from ..output.verify import format_report, verify

        p = self.check_upload(path, "file to verify")
        report = verify(p)
        text = format_report(report).replace(str(p), p.name, 1)
        facts = {
            "file": p.name,
            "labelled_ai": report.labelled_ai,
            "ai_generated_tag": report.metadata.get("ai_generated"),
            "avatar_id": report.metadata.get("avatar_id") or (report.c2pa_consent or {}).get("avatar_id"),
            "consent_id": report.metadata.get("consent_id") or (report.c2pa_consent or {}).get("consent_id"),
            "c2pa_state": report.c2pa_state,
            "c2pa_trusted_state": report.c2pa_trusted_state,
            "c2pa_errors": list(report.c2pa_errors),
            "watermark_payload": None if report.watermark_payload is None else f"{report.watermark_payload:08x}",
            "watermark_matches_c2pa": report.watermark_matches_c2pa,
        }
        return text, facts


def tts_available() -> bool:
    """espeak-ng (offline text-to-speech) can be used."""
    try:
        from ..motion.audio import espeak
    except ImportError:
        return False
    try:
        return bool(espeak.available())
    except Exception:  # noqa: BLE001 - a broken install means "not available"
        return False
