"""A self-made talking clip: espeak-ng speech and the astronaut's face, its mouth opened by the
warp engine in time with the speech's loudness (plus a little head motion and a blink)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

FPS = 8.0
SIZE = 256


def _espeak_fresh(text: str, voice: str) -> tuple[np.ndarray, int]:
    """espeak-ng's speech for ``text`` from a process of its own: the library keeps state between
    utterances (the same text spoken again comes out up to ~1 % longer or shorter), so a fixture
    synthesised in this process would depend on which tests spoke before it."""
    import subprocess
    import sys
    import tempfile

    code = ("import sys, numpy as np; from avatar.motion.audio import espeak; "
            "u = espeak.synthesize(sys.argv[1], voice=sys.argv[2], rate=165); np.save(sys.argv[3], u.audio); "
            "print(u.sample_rate)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.npy"
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
        done = subprocess.run([sys.executable, "-c", code, text, voice, str(out)], env=env, check=True,
                              capture_output=True, text=True)
        return np.load(out).astype(np.float32), int(done.stdout.split()[-1])


def speech(text: str, seconds: float, voice: str = "en-us") -> np.ndarray:
    """16 kHz float32: ``text`` spoken by espeak-ng after 0.4 s of silence, padded with silence."""
    import librosa

    audio, rate = _espeak_fresh(text, voice)
    a = librosa.resample(audio, orig_sr=rate, target_sr=16000)
    out = np.zeros(int(seconds * 16000), np.float32)
    a = a[: len(out) - 6400]
    out[6400:6400 + len(a)] = 0.8 * a / (np.abs(a).max() + 1e-6)
    return out


def face_frames(image: np.ndarray, audio: np.ndarray, seconds: float, fps: float = FPS, size: int = SIZE,
                jaw: float = 0.25, delay: float = 0.0, width: float = 0.0) -> list[np.ndarray]:
    """Frames of ``image``'s face talking: jaw opening follows the loudness of ``audio``, ``delay``
    seconds late; ``width``: the lips widen by this fraction of their width at full loudness."""
    from scipy.spatial.transform import Rotation

    from avatar.config import FaceConfig, RenderConfig
    from avatar.examples import _blink_offsets, _mouth_offsets
    from avatar.face import topology
    from avatar.face.crop import crop_box, crop_matrix, make_crop
    from avatar.face.landmarks import detect_face
    from avatar.motion.decompose import Pose, decompose
    from avatar.render.warp import WarpEngine

    face = detect_face(image)
    m = crop_matrix(crop_box(face.landmarks, FaceConfig(crop_scale=1.8)), size)
    crop = make_crop(image, face.landmarks, m, size)
    engine = WarpEngine(RenderConfig(shading=False, detail=False), follow_silhouette=False)
    # the footage as the keyframes tests' thresholds were measured on: the photo engine's corner
    # crease fill (session 44) changed which frames became keyframes, and the sweep's keyframe
    # switch rose from 2.3 to 3.2 × its typical step (a whole-head change, not the corners)
    state = dataclasses.replace(engine.prepare(crop), crease=None)
    pose, canon = decompose(crop.landmarks)
    n = int(round(seconds * fps))
    hop = 16000 / fps
    lag = delay * 16000
    rms = np.array([np.sqrt(np.mean(audio[max(int(i * hop - lag), 0):max(int((i + 1) * hop - lag), 1)] ** 2) + 1e-12)
                    for i in range(n)])
    level = np.clip(rms / (np.percentile(rms, 95) + 1e-9), 0, 1)
    lips = topology.mesh()["lips"]
    widen = np.zeros_like(canon)
    widen[lips, 0] = width * (canon[lips, 0] - canon[lips, 0].mean())
    frames = []
    for i in range(n):
        t = i / fps
        rot = Rotation.from_euler("yx", [np.radians(8) * np.sin(2 * np.pi * t / 5.0), np.radians(4) * np.sin(2 * np.pi * t / 3.0)]).as_matrix()
        blink = 1.0 if i % 23 == 11 else 0.0
        c = canon + _mouth_offsets(canon, jaw * level[i]) + _blink_offsets(canon, blink) + level[i] * widen
        target = Pose(rot @ pose.rotation, pose.scale, pose.translation).apply(c).astype(np.float32)
        frames.append(engine.render_one(state, target))
    return frames


def write_clip(path: Path, frames: list[np.ndarray], audio: np.ndarray | None, fps: float = FPS) -> Path:
    from avatar.media.video import AudioSpec, VideoWriter

    with VideoWriter(path, fps, crf=18, audio=None if audio is None else AudioSpec.from_array(audio, 16000)) as w:
        for f in frames:
            w.write(f)
    return path


def talking_clip(path: Path, image: np.ndarray, text: str, seconds: float = 11.0, with_audio: bool = True) -> Path:
    audio = speech(text, seconds)
    return write_clip(path, face_frames(image, audio, seconds), audio if with_audio else None)


@pytest.fixture(scope="session")
def astronaut_face() -> np.ndarray:
    from avatar.examples import example_portrait

    return example_portrait()


@pytest.fixture(scope="session")
def research_clip(tmp_path_factory, astronaut_face) -> Path:
    """An 11 s talking clip without any consent statement in it."""
    return talking_clip(tmp_path_factory.mktemp("clip") / "talk.mp4", astronaut_face,
                        "Hello there. This is a short test of the video avatar, with a few words to move the mouth. "
                        "We open and close the lips, and then we rest.")


@pytest.fixture()
def research(monkeypatch):
    monkeypatch.setenv("AVATAR_CONSENT_POLICY", "research")
