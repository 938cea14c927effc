"""A driving clip shared by many jobs is decoded and tracked once per worker."""

from __future__ import annotations

import numpy as np

from avatar.batch.shared_inputs import CachingAnimator, TrackCache
from avatar.config import AvatarConfig, FaceConfig, OutputConfig
from avatar.media import video
from avatar.pipeline import Animator


def test_shared_driving_clip_is_read_once(portrait_path, driving_clip, tmp_path, monkeypatch):
    monkeypatch.setenv("AVATAR_CONSENT_POLICY", "research")
    opened = []
    real = video.read_frames
    monkeypatch.setattr(video, "read_frames", lambda path, **kw: opened.append(path) or real(path, **kw))
    config = AvatarConfig(face=FaceConfig(size=128), output=OutputConfig(max_frames=5))
    cache = TrackCache()
    anim = CachingAnimator(config, cache=cache)
    first = anim.animate(portrait_path, driving_clip, tmp_path / "1.mp4", progress=False)
    assert len(opened) == 1  # tracked and rendered from one decode
    for i in range(2, 5):
        anim.animate(portrait_path, driving_clip, tmp_path / f"{i}.mp4", progress=False)
    assert len(opened) == 1 and (cache.misses, cache.hits) == (1, 3)
    assert first.frames == 5


def test_cached_track_renders_what_a_single_run_renders(portrait_path, driving_clip):
    config = AvatarConfig(face=FaceConfig(size=128), output=OutputConfig(max_frames=5))
    plain = Animator(config)
    cached = CachingAnimator(config, cache=TrackCache())
    source = cached.landmarks_of(driving_clip, 5)[3]  # fills the cache
    a = plain.best_reference_of(driving_clip, source, 5)
    b = cached.best_reference_of(driving_clip, source, 5)
    assert a[1] == b[1] and np.array_equal(a[2], b[2])
    assert all(np.array_equal(x, y) for x, y in zip(a[0], b[0]))
    frames = list(cached._frames(driving_clip, 5))
    assert len(frames) == 5 and not frames[0].flags.writeable  # shared frames cannot be drawn on
    assert all(np.array_equal(x, y) for x, y in zip(frames, video.read_frames(driving_clip, max_frames=5)))


def test_cache_drops_frames_over_budget(driving_clip):
    cached = CachingAnimator(AvatarConfig(face=FaceConfig(size=128)), cache=TrackCache(max_bytes=1000))
    lms = [lm for _, lm in cached._track(driving_clip, 4)]
    track = cached.cache.get(cached._cache_key(driving_clip, 4))
    assert track is not None and track.frames is None and len(track.landmarks) == len(lms) == 4
    assert len([f for f, _ in cached._track(driving_clip, 4)]) == 4  # decoded again, landmarks reused
