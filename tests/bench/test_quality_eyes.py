"""The quality bench's eye columns: eye opening from landmarks and how deep blinks go."""

from __future__ import annotations

import numpy as np

from avatar.bench.quality import blink_depth, eye_opening
from avatar.face import topology


def test_eye_opening_falls_as_the_lids_meet(portrait):
    from avatar.face.landmarks import detect_face

    lm = detect_face(portrait).landmarks.astype(np.float64)
    closed = lm.copy()
    for loop in topology.mesh()["eye_loops"]:
        loop = np.asarray(loop, int)
        closed[loop, 1] = lm[loop, 1].mean()  # every lid point on the eye's middle line
    assert eye_opening(lm) > 0.1 and eye_opening(closed) < 0.01


def test_blink_depth_reads_the_output_at_the_drivers_blinks():
    driver = np.r_[np.full(20, 0.3), [0.03, 0.02, 0.03], np.full(20, 0.3)]
    deep = driver.copy()
    shallow = np.where(driver < 0.1, 0.2, driver)  # the output's eyes stay two thirds open
    assert blink_depth(driver, deep) == (blink_depth(driver, deep)[1],) * 2
    out, drv = blink_depth(driver, shallow)
    assert np.isclose(out, 0.2 / 0.3) and np.isclose(drv, (0.08 / 3) / 0.3)
    assert all(np.isnan(blink_depth(np.full(10, 0.3), np.full(10, 0.3))))
