"""Image-driven engines get the best reference frame's crop as their reference, not frame 0's."""

from __future__ import annotations

import numpy as np

from avatar import pipeline
from avatar.config import AvatarConfig, FaceConfig, OutputConfig
from avatar.face.crop import DrivingCrop
from avatar.media.video import read_frames
from avatar.render.base import Engine


class _Recorder(Engine):
    """Passes the source through and keeps every DriveTarget it is given."""

    name = "recorder"
    needs_driving_image = True

    def __init__(self) -> None:
        self.targets = []

    def prepare(self, source):
        return source.image

    def render(self, state, targets):
        self.targets += list(targets)
        return np.stack([state] * len(targets))


def test_animate_hands_image_engines_the_best_frames_crop(tmp_path, portrait_path, driving_clip, monkeypatch):
    monkeypatch.setenv("AVATAR_CONSENT_POLICY", "research")
    config = AvatarConfig(face=FaceConfig(size=128), output=OutputConfig(max_frames=6, audio=False))
    frames = list(read_frames(driving_clip, max_frames=6))
    lms = pipeline.Animator(config, engine=_Recorder()).landmarks_of(driving_clip, 6)
    # make frame 3 the closest to the portrait
    from avatar.motion import transfer

    monkeypatch.setattr(transfer, "reference_cost", lambda source, *_: (lambda lm: float(np.abs(lm - lms[3]).sum())))
    engine = _Recorder()
    pipeline.Animator(config, engine=engine).animate(portrait_path, driving_clip, tmp_path / "out.mp4", progress=False)
    expected = DrivingCrop(config.face, frames[3], lms[3])
    first = expected(frames[0], lms[0])
    refs = {id(t.reference) for t in engine.targets}
    assert len(engine.targets) == 6 and len(refs) == 1  # one reference for the whole clip
    ref = engine.targets[0].reference
    assert np.array_equal(ref.crop_from_frame, first.crop_from_frame)  # cut by the clip's one fixed box
    assert np.array_equal(ref.image, expected.reference.image)  # ... from frame 3, the chosen reference
    assert not np.array_equal(ref.image, first.image)
    assert np.array_equal(engine.targets[0].driving.image, first.image)


class _Wants(_Recorder):
    """Uses the driving image when there is one (as the warp's shading), renders without it."""

    needs_driving_image = False
    wants_driving_image = True


def test_engines_that_want_the_driving_image_get_it_from_videos_not_from_speech(portrait_path, driving_clip, monkeypatch):
    monkeypatch.setenv("AVATAR_CONSENT_POLICY", "research")
    engine = _Wants()
    animator = pipeline.Animator(AvatarConfig(face=FaceConfig(size=128)), engine=engine)
    src = animator.prepare(portrait_path)
    frames = list(read_frames(driving_clip, max_frames=4))
    list(animator.stream(src, iter(frames), 25.0))
    assert len(engine.targets) == 4 and all(t.driving is not None and t.reference is not None for t in engine.targets)
    engine.targets.clear()
    list(animator.stream_targets(src, [src.crop.landmarks] * 3))
    assert len(engine.targets) == 3 and all(t.driving is None for t in engine.targets)  # no warp rendered to drive a warp


def test_best_reference_of_agrees_with_best_reference(portrait, driving_clip):
    from avatar.face.landmarks import detect_face
    from avatar.motion.transfer import best_reference

    animator = pipeline.Animator(AvatarConfig(face=FaceConfig(size=128)), engine=_Recorder())
    source = detect_face(portrait).landmarks
    lms, idx, frame = animator.best_reference_of(driving_clip, source, 12)
    assert idx == best_reference(source, lms)
    assert np.array_equal(frame, list(read_frames(driving_clip, max_frames=12))[idx])


def test_speech_drives_image_engines_through_one_landmark_drawing_per_portrait(portrait_path, monkeypatch):
    """Targets from speech reach an image-driven engine as drawings of the portrait moved to each
    target: the portrait is prepared for that drawing once, not once per frame (about 2 s a frame
    at 512), and a second portrait gets its own drawing, never the first's by a reused id."""
    from avatar.examples import example_portrait
    from avatar.render.warp import WarpEngine

    monkeypatch.setenv("AVATAR_CONSENT_POLICY", "research")
    prepared_crops = []
    real = WarpEngine.prepare

    def counting(self, source):
        prepared_crops.append(source)
        return real(self, source)

    monkeypatch.setattr(WarpEngine, "prepare", counting)
    config = AvatarConfig(face=FaceConfig(size=128), output=OutputConfig(audio=False))
    engine = _Recorder()
    animator = pipeline.Animator(config, engine=engine)
    first = animator.prepare(portrait_path)
    n_own = len(prepared_crops)  # what preparing the portrait itself does with the warp, if anything
    lm = first.crop.landmarks
    frames = list(animator.stream_targets(first, [lm, lm + 0.5, lm - 0.5, lm]))
    assert len(frames) == 4 and len(engine.targets) == 4
    assert len(prepared_crops) - n_own == 1
    assert np.array_equal(engine.targets[0].driving.image, engine.targets[3].driving.image)
    second = animator.prepare(np.ascontiguousarray(example_portrait()[:, ::-1] // 2 + 40))  # another picture
    n_own = len(prepared_crops)
    list(animator.stream_targets(second, [second.crop.landmarks]))
    assert len(prepared_crops) - n_own == 1
    assert prepared_crops[-1] is second.crop
    assert not np.array_equal(engine.targets[-1].driving.image, engine.targets[0].driving.image)
