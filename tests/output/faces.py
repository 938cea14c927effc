"""Test faces made offline from scikit-image's astronaut portrait."""

from __future__ import annotations

import cv2
import numpy as np


def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def different_face(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """A genuinely different face: eyes moved apart and up, jaw widened, nose lengthened, mouth
    lowered (smooth warp driven by the landmarks), plus a different skin texture and tone."""
    h, w = image.shape[:2]
    pts = landmarks[:, :2].astype(np.float64)
    centre = pts.mean(0)
    width = pts[:, 0].max() - pts[:, 0].min()
    target = pts.copy()
    left_eye = [33, 133, 160, 158, 153, 144, 468, 469, 470, 471, 472]
    right_eye = [362, 263, 385, 387, 373, 380, 473, 474, 475, 476, 477]
    target[left_eye] += (-0.12 * width, -0.06 * width)
    target[right_eye] += (0.12 * width, -0.06 * width)
    below = pts[:, 1] > centre[1]
    target[below, 0] = centre[0] + (pts[below, 0] - centre[0]) * 1.35   # wider jaw
    target[[1, 4, 5, 195, 197], 1] += 0.08 * width                       # longer nose
    target[[13, 14, 61, 291, 0, 17], 1] += 0.10 * width                  # lower mouth
    # Smooth inverse map via thin-plate-like Gaussian RBF of the displacements.
    src, dst = target, pts
    disp = dst - src
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    sigma = 0.08 * width
    map_x = xx.copy()
    map_y = yy.copy()
    sub = np.arange(0, len(src), 2)
    weights = np.zeros((h, w), np.float32) + 1e-6
    acc_x = np.zeros((h, w), np.float32)
    acc_y = np.zeros((h, w), np.float32)
    for i in sub:
        g = np.exp(-((xx - src[i, 0]) ** 2 + (yy - src[i, 1]) ** 2) / (2 * sigma**2)).astype(np.float32)
        weights += g
        acc_x += g * disp[i, 0]
        acc_y += g * disp[i, 1]
    fall = np.clip(weights, 0, 1)
    map_x += acc_x / weights * fall
    map_y += acc_y / weights * fall
    warped = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    # Different texture and tone: darker, warmer skin with a coarse mottled texture.
    rng = np.random.default_rng(7)
    noise = cv2.resize(rng.normal(0, 1, (h // 16, w // 16)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    tone = warped.astype(np.float32) * np.array([0.78, 0.66, 0.58], np.float32)
    tone += 14 * noise[..., None]
    return np.clip(tone, 0, 255).astype(np.uint8)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
