from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from avatar.bench.watermark import blobs_anywhere, clip, h264_roundtrip, half_wall
from avatar.output import watermark as wm

PAYLOAD = 0xC0FFEE42


@pytest.fixture(scope="module")
def marked(portrait):
    frames = clip(portrait, "talking")
    return frames, [wm.embed(f, PAYLOAD) for f in frames]


@pytest.fixture(scope="module")
def half_wall_clip():
    """12 talking frames of the astronaut's right half beside a plain wall."""
    return clip(half_wall(), "talking", 12)


def _bit_accuracy(frames) -> float:
    det = wm.WatermarkDetector()
    for f in frames:
        det.add(f)
    return float(np.mean(np.sign(det.soft_bits()) == wm._message_bits(PAYLOAD)))


@pytest.mark.parametrize("crf,scale", [(18, 1.0), (23, 1.0), (28, 1.0), (23, 0.5)])
def test_payload_survives_h264(marked, crf, scale):
    decoded = h264_roundtrip(marked[1], crf, scale, preset="veryfast")
    res = wm.detect_frames(decoded)
    print(f"CRF {crf} scale {scale}: bit accuracy {_bit_accuracy(decoded):.3f}, payload {res.payload}")
    assert res.payload == PAYLOAD and res.confidence > 0.99


def test_clean_clip_reports_no_payload(marked):
    res = wm.detect_frames(h264_roundtrip(marked[0], 23, preset="veryfast"))
    assert res.payload is None and res.confidence == 0.0


def test_other_payload_is_not_confused(portrait):
    frames = clip(portrait, "talking", 4)
    res = wm.detect_frames([wm.embed(f, 0x12345678) for f in frames])
    assert res.payload == 0x12345678


def test_quality_and_speed(portrait):
    """PSNR counts the change hidden in hair and fabric as much as a blob on a cheek, so it is only
    a floor here (35.3 dB on the astronaut; 34.5 before the detector weighed cells by the host's
    local RMS: see the hair test above)."""
    frame = cv2.resize(portrait, (512, 512))
    out = wm.embed(frame, PAYLOAD)
    psnr = 10 * np.log10(255**2 / np.mean((out.astype(np.float64) - frame) ** 2))
    times = []
    for _ in range(10):
        t = time.perf_counter()
        wm.embed(frame, PAYLOAD)
        times.append(time.perf_counter() - t)
    print(f"PSNR {psnr:.1f} dB, embed {np.median(times) * 1e3:.2f} ms")
    assert psnr > 34 and out.shape == frame.shape and out.dtype == np.uint8
    assert np.median(times) < 0.05   # generous: the budget is 10 ms, CI machines are noisy


def test_bad_frame_is_rejected():
    from avatar.errors import ShapeError

    with pytest.raises(ShapeError):
        wm.embed(np.zeros((10, 10, 3), np.uint8), 1)
    with pytest.raises(ShapeError):
        wm.embed(np.zeros((100, 100), np.uint8), 1)


def test_flat_areas_stay_nearly_untouched_and_the_mark_still_decodes(half_wall_clip):
    """Perceptual masking: on a frame that is half plain wall, half photo, the wall changes by
    well under a grey level on average (unmasked, host cancellation spread ≈ 2.8 there; with a
    flat cell's floor share of 0.15 instead of 0.08, 0.60)."""
    frames = half_wall_clip
    marked = [wm.embed(f, PAYLOAD) for f in frames]
    wall = np.abs(marked[0][:, :200].astype(float) - frames[0][:, :200]).mean()
    assert wall < 0.4, wall
    for crf in (18, 28):
        assert wm.detect_frames(h264_roundtrip(marked, crf, preset="veryfast")).payload == PAYLOAD


def test_a_grainy_plain_wall_is_not_mottled_by_the_mark(half_wall_clip):
    """A photo's grain is finer than the mark's cells and hides none of it: beside the photo, a
    plain wall with grain (σ 4 levels per pixel) changes by little more at the mark's scale than a
    wall without grain, and the mark still decodes. Masked by the texture at full resolution, the
    grain counted as texture and the wall took the full amplitude (2.1 levels at the mark's
    scale; 1.46 with the texture measured at the mark's scale but without smoothing the grain
    away first; 0.50 with one scale and each cell's mean texture, 0.48 now)."""
    frames = half_wall_clip
    rng = np.random.default_rng(0)
    grainy = []
    for f in frames:
        g = f.astype(np.float32)
        g[:, :256] += rng.normal(0.0, 4.0, g[:, :256].shape[:2])[..., None]
        grainy.append(np.clip(g + 0.5, 0, 255).astype(np.uint8))
    marked = [wm.embed(f, PAYLOAD) for f in grainy]
    change = cv2.GaussianBlur(marked[0][..., 0].astype(np.float32) - grainy[0][..., 0], (0, 0), 4.0)
    wall = float(np.abs(change[:, :200]).mean())
    assert wall < 1.0, wall
    assert wm.detect_frames(h264_roundtrip(marked, 23, preset="veryfast")).payload == PAYLOAD


def test_the_mark_beside_a_photo_spares_the_plain_wall_next_to_it(half_wall_clip):
    """The smooth mark spreads about a cell past its own: the plain wall within a few cells of the
    photo took the photo's cells' amplitude as a halo. Each cell now takes its least textured
    neighbour's texture: 0.25 grey levels on the wall beside the photo; 2.8 with half its own and
    half that, 3.5 with its own alone."""
    frames = half_wall_clip
    marked = wm.embed(frames[0], PAYLOAD)
    change = np.abs(cv2.GaussianBlur(marked[..., 0].astype(np.float32) - frames[0][..., 0], (0, 0), 2.0))
    beside = float(change[:, 232:254].mean())  # about the last three cells of wall before the photo at x = 256
    assert beside < 1.5, beside


def test_a_plain_area_beside_a_lone_edge_is_not_mottled_by_the_mark():
    """A jaw above a collar, a cheek beside the hair: one straight edge between two plain areas is
    no texture to hide a smooth change in, on either side. Measured as each cell's mean
    |Laplacian|, the edge's cells took the mark at full share and drew a column of blobs along it
    (4.1 grey levels within 16 px of the edge, 15.8 at most); each cell's median ignores it."""
    frame = half_wall()
    frame[:, :100] = (120, 100, 90)  # a darker plain area, a straight edge at x = 100
    marked = wm.embed(frame, PAYLOAD)
    change = np.abs(cv2.GaussianBlur(marked[..., 0].astype(np.float32) - frame[..., 0], (0, 0), 2.0))
    assert change[:, 84:116].mean() < 0.5 and change[:, 84:116].max() < 3.0, (change[:, 84:116].mean(), change[:, 84:116].max())
    frames = clip(frame, "talking", 12)
    assert wm.detect_frames(h264_roundtrip([wm.embed(f, PAYLOAD) for f in frames], 23, preset="veryfast")).payload == PAYLOAD


def _hair_above_a_wall(size: int = 512) -> np.ndarray:
    """Fine strands with light and dark locks (a cell-scale variation of about 18 grey levels, as
    real hair has) over the top 40 %, a plain wall with a slow gradient below."""
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    strands = 20 * np.sin(2 * np.pi * (y + 0.15 * x + 6 * np.sin(x / 40)) / 5)
    locks = cv2.resize(rng.normal(0, 18, (24, 24)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    frame = 120.0 + 0.05 * y
    top = size * 2 // 5
    frame[:top] = np.clip(170 + strands + locks, 0, 255)[:top]
    return np.repeat(frame[..., None], 3, 2).round().astype(np.uint8)


def test_hair_is_not_blotched_by_cancelling_its_own_locks():
    """Hair's light and dark locks vary at the mark's own scale, so a detector that counts every
    cell alike reads them as a strong host, and embedding cancelled it there with 20-50 grey
    levels: blotches on hair. Weighing cells by the host's local RMS, the mark needs far less
    (the strongest blobs 16.2 grey levels before, 8.1 now) and still comes back after H.264."""
    frame = _hair_above_a_wall()
    marked = wm.embed(frame, PAYLOAD)
    assert blobs_anywhere(frame, marked) < 11.0, blobs_anywhere(frame, marked)
    frames = clip(frame, "talking", 12)
    decoded = h264_roundtrip([wm.embed(f, PAYLOAD) for f in frames], 28, preset="veryfast")
    assert wm.detect_frames(decoded).payload == PAYLOAD


def test_big_frames_are_marked_at_a_working_resolution_and_survive_h264_and_downscale(portrait):
    """A 1920 px output is analysed at ≤ WORK_SIDE and only the smooth residual is drawn at full
    size; the payload must still come back after H.264 and after H.264 + a 50 % downscale."""
    frames = [cv2.resize(f, (1920, 1080), interpolation=cv2.INTER_CUBIC) for f in clip(portrait, "talking", 8)]
    assert max(wm._working(frames[0]).shape[:2]) <= wm.WORK_SIDE < 1920
    marked = [wm.embed(f, PAYLOAD) for f in frames]
    change = np.abs(marked[0].astype(np.int16) - frames[0])
    inside = np.all((frames[0] > 40) & (frames[0] < 215), axis=2)  # no saturation at 0 / 255
    assert change.max() > 0 and np.all((change[..., 0] == change[..., 1])[inside])  # same delta on R, G, B
    for crf, scale in ((23, 1.0), (23, 0.5)):
        assert wm.detect_frames(h264_roundtrip(marked, crf, scale, preset="veryfast")).payload == PAYLOAD
    assert wm.detect_frames(h264_roundtrip(frames, 23, 0.5, preset="veryfast")).payload is None


def test_embedding_in_place_marks_the_frame_itself_exactly_as_a_copy_would():
    from avatar.output.provenance import add_visible_label

    rng = np.random.default_rng(3)
    frame = cv2.GaussianBlur(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8), (0, 0), 2)
    copy = wm.embed(frame, 0xC0FFEE)
    own = frame.copy()
    marked = wm.embed(own, 0xC0FFEE, inplace=True)
    assert marked is own and np.array_equal(marked, copy) and not np.array_equal(frame, copy)
    labelled = add_visible_label(own, inplace=True)
    assert labelled is own and np.array_equal(labelled, add_visible_label(copy))
    frozen = frame.copy()
    frozen.setflags(write=False)  # a frame it may not write to is copied
    assert wm.embed(frozen, 1, inplace=True) is not frozen
