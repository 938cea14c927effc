"""Speed without changing a pixel: frames rendered side by side come out in order and equal to a
serial run; the driver tracked while the portrait is prepared gives the same video, whether its
frames were kept or decoded again; a refused portrait stops the tracking; BLAS runs on one thread."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from avatar import pipeline
from avatar.config import AvatarConfig, FaceConfig, OutputConfig, RenderConfig
from avatar.errors import ConsentError
from avatar.media.video import read_frames


def _config(threads: int) -> AvatarConfig:
    return AvatarConfig(face=FaceConfig(size=128), render=RenderConfig(threads=threads),
                        output=OutputConfig(max_frames=12, audio=False))


def test_frames_rendered_side_by_side_equal_the_serial_run(portrait_path, driving_clip, monkeypatch):
    monkeypatch.setenv("AVATAR_CONSENT_POLICY", "research")
    runs = {}
    for threads in (1, 3):
        animator = pipeline.Animator(_config(threads))
        assert animator.engine.concurrent_frames
        src = animator.prepare(portrait_path)
        seen = set()
        render = animator.engine.render

        def spy(state, targets, render=render, seen=seen):
            seen.add(threading.current_thread().name)
            return render(state, targets)

        animator.engine.render = spy
        runs[threads] = list(animator.stream(src, read_frames(driving_clip, max_frames=12), 25.0))
        assert len(runs[threads]) == 12
        if threads > 1:  # the first frame renders inline, the rest in the pool
            assert any(name.startswith("avatar-render") for name in seen)
        else:
            assert seen == {threading.current_thread().name}
    for a, b in zip(runs[1], runs[3]):
        assert np.array_equal(a, b)


def test_kept_and_decoded_again_driving_frames_give_the_same_video(tmp_path, portrait_path, driving_clip, monkeypatch):
    monkeypatch.setenv("AVATAR_CONSENT_POLICY", "research")
    written = []
    # the frames handed to the writer (encoded files differ anyway: each carries its own label)
    monkeypatch.setattr(pipeline.Animator, "_write", lambda self, prepared, frames, *a, **k: written.append(list(frames(lambda f: f))))
    animator = pipeline.Animator(_config(1))
    decoded = []
    frames = animator._frames
    monkeypatch.setattr(animator, "_frames", lambda *a: decoded.append(a) or frames(*a))
    animator.animate(portrait_path, driving_clip, tmp_path / "kept.mp4", progress=False)
    assert not decoded  # the tracking pass kept the frames: decoded once
    monkeypatch.setattr(pipeline, "_KEEP_FRAMES_BYTES", 0)
    animator.animate(portrait_path, driving_clip, tmp_path / "again.mp4", progress=False)
    assert decoded  # over the budget: decoded a second time
    kept, again = written
    assert len(kept) == len(again) == 12
    assert all(np.array_equal(a, b) for a, b in zip(kept, again))


def test_a_refused_portrait_stops_the_driver_tracking(tmp_path, portrait_path, driving_clip, monkeypatch):
    monkeypatch.delenv("AVATAR_CONSENT_POLICY", raising=False)  # no consent recorded: refused
    before = {t.name for t in threading.enumerate()}
    with pytest.raises(ConsentError):
        pipeline.Animator(_config(2)).animate(portrait_path, driving_clip, tmp_path / "out.mp4", progress=False)
    assert not any(t.name in ("avatar-track", "avatar-prefetch") for t in threading.enumerate() if t.name not in before)
    assert not (tmp_path / "out.mp4").exists()


def test_blas_runs_on_one_thread_inside_the_pipeline():
    from threadpoolctl import threadpool_info

    blas = [lib for lib in threadpool_info() if lib["user_api"] == "blas"]
    if not blas:
        pytest.skip("numpy has no BLAS library that threadpoolctl can see")
    inside = pipeline.one_blas_thread(lambda: [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"])()
    assert inside and set(inside) == {1}
    outside = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    assert outside == [lib["num_threads"] for lib in blas]  # restored afterwards


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    from avatar.examples import write_example_driving

    return write_example_driving(tmp_path_factory.mktemp("long") / "long.mp4", frames=pipeline._SPLIT_MIN_FRAMES + 4, size=192)


def test_a_clip_tracked_in_two_halves_matches_one_tracker(long_clip):
    one = pipeline.Animator(_config(1))
    two = pipeline.Animator(_config(2))
    names = set()
    detector = two.detector

    def spy(video):
        names.add(threading.current_thread().name)
        return detector(video)

    two.detector = spy
    a = one.landmarks_of(long_clip)
    b = two.landmarks_of(long_clip)
    assert len(names) == 2  # two trackers, in two threads
    half = len(a) // 2
    assert len(a) == len(b) == pipeline._SPLIT_MIN_FRAMES + 4
    assert all(np.array_equal(x, y) for x, y in zip(a[:half], b[:half]))  # the first half: the same tracker
    # the second tracker warmed up before its half: no jump where it takes over
    assert max(float(np.abs(x - y)[:, :2].max()) for x, y in zip(a[half:], b[half:])) < 2.0
    again = two.landmarks_of(long_clip)
    assert all(np.array_equal(x, y) for x, y in zip(b, again))  # the split is fixed: the same every run
    frames = [f for f, _ in two._track(long_clip, None)]
    assert all(np.array_equal(f, g) for f, g in zip(frames, read_frames(long_clip)))  # in order


def test_stopping_a_split_tracking_early_stops_its_threads(long_clip):
    before = set(threading.enumerate())
    it = pipeline.Animator(_config(2))._track(long_clip, None)
    next(it)
    it.close()
    assert not [t for t in threading.enumerate() if t not in before and t.is_alive()]


def test_a_job_given_one_thread_runs_in_the_callers_thread(tmp_path, portrait_path, driving_clip, monkeypatch):
    """A batch worker given one core: no read-ahead, tracking or encoding thread (their hand-offs
    only cost time when every core is busy); given two, the job does start them."""
    monkeypatch.setenv("AVATAR_CONSENT_POLICY", "research")
    started: list[str] = []
    start = threading.Thread.start
    monkeypatch.setattr(threading.Thread, "start", lambda self: started.append(self.name) or start(self))
    result = pipeline.Animator(_config(1)).animate(portrait_path, driving_clip, tmp_path / "one.mp4", progress=False)
    assert result.frames == 12 and (tmp_path / "one.mp4").stat().st_size > 0
    assert not [n for n in started if n.startswith("avatar-")]
    pipeline.Animator(_config(2)).animate(portrait_path, driving_clip, tmp_path / "two.mp4", progress=False)
    assert {"avatar-track", "avatar-label-encode"} <= set(started)


def test_one_thread_times_the_drivers_decoding_apart_from_its_tracking(tmp_path, portrait_path, driving_clip, monkeypatch):
    """Run in one thread, the reference pass decodes and tracks each frame in turn: decoding is
    its own stage ("decode"), not part of "landmarks" (the core stages `bench animate` sums)."""
    import time

    from avatar.media import video

    monkeypatch.setenv("AVATAR_CONSENT_POLICY", "research")
    read = video.read_frames

    def slow(*args, **kwargs):
        for frame in read(*args, **kwargs):
            time.sleep(0.03)  # decoding a frame takes 30 ms
            yield frame

    monkeypatch.setattr(video, "read_frames", slow)
    result = pipeline.Animator(_config(1)).animate(portrait_path, driving_clip, tmp_path / "one.mp4", progress=False)
    assert result.timings_ms["decode"] >= 28.0
    assert result.timings_ms["landmarks"] < 28.0
