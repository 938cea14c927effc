"""Build an avatar pack from a video: track, check the footage can serve, pick keyframes, write.

Two streaming passes over the clip (track, then cut the chosen keyframes), so memory stays
bounded for any length; the keyframe count is capped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..config import CloneConfig, FaceConfig
from ..errors import AvatarError, InputError, NoFaceError
from ..face.crop import crop_box, crop_matrix, make_crop
from ..media.video import read_frames
from .calibrate import (MAX_SECONDS, MODEL_FILE, PERSONAL_SECONDS, RENDER_SECONDS, ClipSound, first_sound,
                        calibrate_mouth, personal_mouth, render_gain)
from .select import select_keyframes
from .store import Pack, PackWriter
from .track import Track, track_video

log = logging.getLogger(__name__)


@dataclass
class BuiltPack:
    """A pack written to its temp folder, not yet committed (see :meth:`PackWriter.commit`)."""

    writer: PackWriter
    manifest: dict
    track: Track
    anchor_frame: np.ndarray       # (H, W, 3) uint8
    anchor_landmarks: np.ndarray   # (478, 3) float32 frame pixels


def check_footage(track: Track, cfg: CloneConfig, name: str) -> np.ndarray:
    """Refuse footage that cannot serve; returns the (N,) mask of frames usable as keyframes."""
    info = track.info
    if info.duration < cfg.min_seconds:
        raise InputError(f"{name} is {info.duration:.1f} s long; a video clone needs at least {cfg.min_seconds:g} s "
                         "of the person talking to camera")
    n = len(track.times)
    if n == 0:
        raise InputError(f"{name} has no frames to track")
    found = track.found
    if found.mean() < cfg.min_found:
        where = "no frame" if not found.any() else f"only {found.mean():.0%} of the frames"
        raise NoFaceError(f"the face is lost in most of {name}: {where} show(s) a face; film the person facing the "
                          f"camera throughout (at least {cfg.min_found:.0%} of the frames)")
    multi = (track.faces > 1).mean()
    if multi > cfg.max_multi:
        raise NoFaceError(f"{name} shows several people ({multi:.0%} of the frames have more than one face); "
                          "a video clone needs footage of the one consenting person alone")
    heights = track.face_heights()
    median = float(np.nanmedian(heights[found]))
    if median < cfg.min_face:
        raise InputError(f"the face in {name} is too small ({median:.0f} px high, median); a video clone needs at "
                         f"least {cfg.min_face} px: film closer or at a higher resolution")
    return found & (track.faces == 1) & (heights >= 0.8 * cfg.min_face)


def _crop_size(cfg: CloneConfig, face_height: float, face: FaceConfig) -> int:
    """The keyframe crop side: ``cfg.crop_size``, or less when the clip has fewer pixels there."""
    native = face.crop_scale * face_height * 1.1
    return int(min(cfg.crop_size, max(64, 8 * round(native / 8))))


def _clip_sound(video: Path, track: Track, start: float, cfg: CloneConfig) -> "Path | ClipSound":
    """The clip's sound, decoded once for every calibration step (the clip itself where it has none)."""
    t0 = first_sound(track, start)
    if isinstance(t0, str):
        return video
    return ClipSound.decode(video, t0, max(MAX_SECONDS, RENDER_SECONDS, PERSONAL_SECONDS if cfg.personal_mouth else 0.0))


def _with_personal_mouth(writer: PackWriter, video: "Path | ClipSound", track: Track, start: float, talk: dict) -> dict:
    """``talk`` recalibrated on this person's own mouth model where one is fitted and beats the
    generic openness (written to the pack); the generic calibration is kept beside it."""
    model, info = personal_mouth(video, track, start)
    if model is None or not info.get("used"):
        log.info("this person's own mouth model is not used: %s", info.get("reason", "-"))
        return dict(talk, personal=info)
    own = calibrate_mouth(video, track, start, personal=model)
    if "skipped" in own:
        return dict(talk, personal=dict(info, used=False, reason=own["skipped"]))
    writer.write_arrays(MODEL_FILE, **model.to_arrays())
    log.info("this person's own mouth model: held-out r %.2f (generic %.2f)", info["r_cv"], info["r_generic"])
    generic = {k: talk[k] for k in ("mouth_gain", "lag_s", "width_gain")}
    return dict(own, personal=info, generic=generic)


def build_pack(video: str | Path, store_path: Path, cfg: CloneConfig = CloneConfig(), *, start: float = 0.0,
               end: float | None = None, on_progress: Callable[[str, int], None] | None = None) -> BuiltPack:
    """Track ``video`` (between ``start`` and ``end`` s), check it, pick keyframes and write them
    to a temp pack folder. The caller commits the writer (or it is removed on error)."""
    video = Path(video)
    face_cfg = FaceConfig()
    track = track_video(video, track_fps=cfg.track_fps, start=start, end=end,
                        on_frame=(lambda i: on_progress("track", i)) if on_progress else None)
    usable = check_footage(track, cfg, str(video))
    chosen = select_keyframes(track.features, usable, cfg.max_keyframes)
    if not len(chosen):
        raise NoFaceError(f"no frame of {video} shows one large enough face to make a keyframe from")
    size = _crop_size(cfg, float(np.nanmedian(track.face_heights()[usable])), face_cfg)
    writer = PackWriter(store_path)
    try:
        by_frame = {int(track.frame_index[k]): j for j, k in enumerate(chosen)}
        lms = np.zeros((len(chosen), 478, 3), np.float32)
        mats = np.zeros((len(chosen), 2, 3), np.float64)
        entries: list[dict] = [{} for _ in chosen]
        anchor_frame = None
        with read_frames(video) as reader:
            for i, frame in enumerate(reader):
                j = by_frame.get(i)
                if j is None:
                    if i > max(by_frame):
                        break
                    continue
                k = chosen[j]
                lm = track.landmarks[k].astype(np.float32)
                m = crop_matrix(crop_box(lm, face_cfg), size)
                crop = make_crop(frame, lm, m, size)
                name = f"kf/{j:04d}.jpg"
                writer.write_image(name, crop.image)
                lms[j], mats[j] = crop.landmarks, m
                entries[j] = {"file": name, "frame_index": i, "time": round(float(track.times[k]), 4)}
                if j == 0:
                    anchor_frame = frame
                    writer.write_image("anchor.png", frame)
        if anchor_frame is None or any(not e for e in entries):
            raise InputError(f"{video}: the second decoding pass did not reach every keyframe; the file may be damaged")
        writer.write_arrays("keyframes.npz", landmarks=lms, crop_from_frame=mats, features=track.features[chosen],
                            frame_index=track.frame_index[chosen], times=track.times[chosen])
        writer.write_arrays("track.npz", frame_index=track.frame_index, times=track.times, landmarks=track.landmarks,
                            faces=track.faces, features=track.features, audio=track.audio, loudness=track.loudness)
        info = track.info
        manifest = {
            "source": {"name": video.name, "width": info.width, "height": info.height, "fps": info.fps,
                       "duration": info.duration, "rotation": info.rotation, "has_audio": info.has_audio,
                       "frames": info.frame_count, "start": start, "end": end},
            "crop_size": size,
            "keyframes": entries,
            "tracked_frames": int(len(track.times)),
            "faces_found": float(track.found.mean()),
        }
        if cfg.keep_footage:
            name = "footage" + (video.suffix.lower() or ".mp4")
            writer.copy_file(name, video)
            manifest["footage"] = name
        # this person's audio-to-mouth amplitude, for talking (older packs lack it: gain 1)
        anchor_lm = track.landmarks[chosen[0]].astype(np.float32)
        talk = calibrate_mouth(sound := _clip_sound(video, track, start, cfg), track, start)
        if "skipped" not in talk and cfg.personal_mouth:
            talk = _with_personal_mouth(writer, sound, track, start, talk)
        if "skipped" in talk:
            log.info("mouth calibration skipped: %s", talk["skipped"])
        elif cfg.keep_footage:
            # checked on the avatar's own output: the pack as written so far talks from its footage
            pack = Pack(writer.tmp, dict(manifest, talk=talk), lms, mats, track.features[chosen].astype(np.float32))
            try:
                talk = render_gain(pack, anchor_frame, anchor_lm, sound, track, talk, face_cfg.size)
            except AvatarError as exc:  # the open-loop gain still serves; the clone need not fail
                log.warning("the mouth gain could not be checked on the avatar's output (%s): the open-loop gain is kept",
                            exc)
                talk = dict(talk, render_check=f"failed: {exc}")
        manifest["talk"] = talk
        return BuiltPack(writer, manifest, track, anchor_frame, anchor_lm)
    except BaseException:
        writer.abort()
        raise
