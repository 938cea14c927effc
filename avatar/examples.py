"""Inputs the project can make by itself: a public-domain portrait and a generated driving clip.

The driving clip is the mirrored portrait animated by the warp engine with scripted motion
(a head turn, nods, speech-like mouth movements, blinks), plus a tone track, so a fresh
install can run the whole pipeline without any downloaded or hand-fetched media.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .config import FaceConfig, RenderConfig
from .face import topology
from .face.crop import crop_box, crop_matrix, make_crop
from .face.landmarks import detect_face
from .motion.decompose import Pose, decompose


def example_portrait() -> np.ndarray:
    """scikit-image's ``astronaut`` (Eileen Collins, NASA; public domain), (512, 512, 3) uint8."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def _mouth_offsets(canon: np.ndarray, amount: float) -> np.ndarray:
    """Canonical offsets that open the jaw and lower lip by ``amount`` (canonical units)."""
    off = np.zeros_like(canon)
    lips = topology.mesh()["lips"]
    upper_y = canon[topology.UPPER_LIP_INNER, 1]
    chin_y = canon[topology.CHIN, 1]
    y = canon[:, 1]
    # points between the mouth slit and the chin drop, fading out towards the cheeks
    w = np.clip((y - upper_y) / max(chin_y - upper_y, 1e-6), 0, 1) * np.clip(1.6 - np.abs(canon[:, 0]) / 0.6, 0, 1)
    w[np.intersect1d(lips, np.where(y <= upper_y + 1e-6)[0])] = 0
    off[:, 1] = amount * w
    return off


def _blink_offsets(canon: np.ndarray, amount: float) -> np.ndarray:
    off = np.zeros_like(canon)
    eyes = topology.mesh()["eye_loops"]
    for loop in eyes:
        loop = np.asarray(loop, dtype=int)
        centre_y = canon[loop, 1].mean()
        upper = loop[canon[loop, 1] < centre_y]
        off[upper, 1] = amount * (centre_y - canon[upper, 1])
    return off


def synthetic_driving(frames: int = 50, fps: float = 25.0, size: int = 384) -> list[np.ndarray]:
    """A generated driving clip: (T, size, size, 3) uint8 frames of a face that turns, nods, talks and blinks."""
    from scipy.spatial.transform import Rotation

    from .render.warp import WarpEngine

    img = example_portrait()[:, ::-1].copy()  # mirrored: a "different" driver than the portrait
    face = detect_face(img, "the example driver")
    m = crop_matrix(crop_box(face.landmarks, FaceConfig(crop_scale=2.2)), size)
    crop = make_crop(img, face.landmarks, m, size)
    engine = WarpEngine(RenderConfig())
    state = engine.prepare(crop)
    pose, canon = decompose(crop.landmarks)
    out = []
    for i in range(frames):
        t = i / fps
        yaw = np.radians(12) * np.sin(2 * np.pi * t / 2.0)
        pitch = np.radians(5) * np.sin(2 * np.pi * t / 1.3)
        rot = Rotation.from_euler("yx", [yaw, pitch]).as_matrix()
        mouth = 0.22 * max(0.0, np.sin(2 * np.pi * t * 2.2)) ** 2
        blink = 1.0 if (i % int(fps * 1.6)) in (20, 21, 22) else 0.0
        c = canon + _mouth_offsets(canon, mouth) + _blink_offsets(canon, blink)
        target = Pose(rot @ pose.rotation, pose.scale, pose.translation).apply(c).astype(np.float32)
        out.append(engine.render_one(state, target))
    return out


def write_example_driving(path: str | Path, frames: int = 50, fps: float = 25.0, size: int = 384) -> Path:
    """Write :func:`synthetic_driving` as an MP4 with a soft two-tone audio track."""
    from .media.video import AudioSpec, VideoWriter

    sr = 16000
    t = np.arange(int(sr * frames / fps)) / sr
    tone = (0.1 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 2.2 * t))).astype(np.float32)
    with VideoWriter(path, fps, audio=AudioSpec.from_array(tone, sr)) as w:
        for f in synthetic_driving(frames, fps, size):
            w.write(f)
    return Path(path)
