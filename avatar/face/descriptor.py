"""Face descriptor: recognise the consented face again after resizing, re-encoding or relighting.

The face is aligned to a canonical frame with a similarity transform fitted on stable mediapipe
landmarks (eye corners, nose bridge, temples, chin). The descriptor concatenates

- geometry: rigid-ish landmarks (face oval, eyes, brows, nose; no lips, which move with
  expression) in the canonical frame, centred and divided by the inter-ocular distance;
- appearance: a HOG of the aligned 64×64 grayscale face with zero-mean/unit-variance contrast
  normalisation (robust to brightness and gain), L2-normalised.

This is a consent-matching aid, not a face-recognition model: it separates re-encodings of one
photo from other faces well, but two photos of the same person in different pose or lighting
may exceed :data:`MATCH_THRESHOLD`. See docs/consent.md for measured distances.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import ShapeError
from .landmarks import NUM_LANDMARKS, Face

DESCRIPTOR_VERSION = 1
MATCH_THRESHOLD = 0.30
"""Descriptors closer than this (:func:`descriptor_distance`) are the same consented face.

Measured on astronaut: 50 % resize 0.13, JPEG q60 0.11, +25 brightness 0.08, resize + JPEG 0.19;
a synthetic different face (warped geometry, other skin) 0.47, the mirrored photo 0.45
(see tests/output/test_descriptor.py and docs/consent.md)."""

# Stable points for alignment: eye corners, nose bridge/tip, temples, chin.
_ALIGN_IDS = np.array([33, 133, 362, 263, 168, 6, 1, 234, 454, 152])
# Rigid-ish points for geometry: face oval, brows, eye contours, nose (no lips or jaw opening).
_GEOM_IDS = np.array([
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
    148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,   # face oval
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,                                 # brows
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,                     # eyes
    168, 6, 197, 195, 5, 4, 1, 98, 327, 129, 358,                                  # nose
])
_CROP = 64
_GEOM_WEIGHT = 4.0   # balances the two parts (each is ~unit norm for a typical face difference)
_APP_WEIGHT = 1.0


def _canonical_points() -> np.ndarray:
    """(len(_ALIGN_IDS), 2) canonical positions in [0, 1]² crop coordinates."""
    # Symmetric frontal layout (eyes on y=0.38, chin at 0.92), in crop fractions.
    return np.array([
        [0.27, 0.38], [0.42, 0.39], [0.58, 0.39], [0.73, 0.38],   # eye corners
        [0.50, 0.38], [0.50, 0.47], [0.50, 0.62],                 # nose bridge → tip
        [0.08, 0.45], [0.92, 0.45],                               # temples
        [0.50, 0.95],                                             # chin
    ], dtype=np.float64)


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(2, 3) least-squares similarity (Umeyama) mapping src (N, 2) onto dst (N, 2)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ sign @ vt
    scale = np.trace(np.diag(sig) @ sign) / (s**2).sum(1).mean()
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def face_descriptor(image: np.ndarray, face: Face) -> np.ndarray:
    """Descriptor of one face.

    Args:
        image: (H, W, 3) uint8 RGB, the image ``face`` was detected in.
        face: landmarks (478, 3) in image pixels.
    Returns:
        (D,) float32 vector; compare with :func:`descriptor_distance`.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ShapeError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    lms = np.asarray(face.landmarks, dtype=np.float64)
    if lms.shape[0] != NUM_LANDMARKS:
        raise ShapeError(f"face must have {NUM_LANDMARKS} landmarks, got {lms.shape}")
    pts = lms[:, :2]
    m = _similarity(pts[_ALIGN_IDS], _canonical_points() * _CROP)

    # Geometry in the canonical frame, scale-normalised by the inter-ocular distance.
    canon = pts[_GEOM_IDS] @ m[:, :2].T + m[:, 2]
    eyes = (pts[[33, 133]].mean(0), pts[[362, 263]].mean(0))
    eyes_c = np.array(eyes) @ m[:, :2].T + m[:, 2]
    iod = float(np.linalg.norm(eyes_c[1] - eyes_c[0])) or 1.0
    geom = ((canon - canon.mean(0)) / iod).reshape(-1)
    geom = geom / np.sqrt(len(_GEOM_IDS))  # per-point RMS scale

    # Appearance: aligned grey crop, contrast-normalised, HOG.
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    # Antialias first when the face is much larger than the crop, so resizing the source
    # does not change what the crop sees.
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    if scale < 0.5:
        sigma = 0.5 / scale
        gray = cv2.GaussianBlur(gray, (0, 0), sigma)
    crop = cv2.warpAffine(gray, m, (_CROP, _CROP), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    crop = (crop - crop.mean()) / (crop.std() + 1e-3)
    app = _hog(crop)
    return np.concatenate([_GEOM_WEIGHT * geom, _APP_WEIGHT * app]).astype(np.float32)


def _hog(crop: np.ndarray) -> np.ndarray:
    """(8·8·9,) L2-normalised orientation histograms of a (64, 64) float image on 8×8 cells."""
    gx = cv2.Sobel(crop, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(crop, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.hypot(gx, gy)
    ang = (np.arctan2(gy, gx) % np.pi) / np.pi * 9          # unsigned orientation bins
    b0 = np.floor(ang).astype(int) % 9
    frac = ang - np.floor(ang)
    cells = _CROP // 8
    hist = np.zeros((cells, cells, 9), dtype=np.float32)
    cy, cx = np.divmod(np.arange(_CROP * _CROP), _CROP)
    cy, cx = (cy // 8), (cx // 8)
    np.add.at(hist, (cy, cx, b0.reshape(-1)), (mag * (1 - frac)).reshape(-1))
    np.add.at(hist, (cy, cx, ((b0 + 1) % 9).reshape(-1)), (mag * frac).reshape(-1))
    hist = np.sqrt(hist)                                      # Hellinger-style compression
    hist /= np.linalg.norm(hist, axis=2, keepdims=True) + 1e-6
    v = hist.reshape(-1)
    return v / (np.linalg.norm(v) + 1e-6)


def descriptor_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two descriptors (same face: below :data:`MATCH_THRESHOLD`)."""
    a = np.asarray(a, dtype=np.float32).reshape(-1)
    b = np.asarray(b, dtype=np.float32).reshape(-1)
    if a.shape != b.shape:
        raise ShapeError(f"descriptors must have the same length, got {a.shape} and {b.shape}")
    return float(np.linalg.norm(a - b))
