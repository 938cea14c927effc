"""Pose, mouth and eye numbers of one face, comparable across frames of one person.

Everything is measured in the pose-free canonical frame of :func:`avatar.motion.decompose.decompose`
(unit: the outer inter-ocular distance), so a turned or distant head gives the same mouth numbers
as a frontal close one.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..face import topology
from ..motion.decompose import decompose

POSE_DIMS = 3          # yaw, pitch, roll (degrees)
MOUTH_DIMS = 2 + 2 * 20  # opening, width, then the inner+outer lip loop shape (x, y)
EYE_DIMS = 2
FEATURE_DIMS = POSE_DIMS + MOUTH_DIMS + EYE_DIMS


@lru_cache(maxsize=1)
def _lip_ids() -> np.ndarray:
    lips = topology.mesh()["lips"]
    # 20 of the 40 lip points (every other one) describe the shape well enough, at half the cost
    return np.asarray(lips[::2], dtype=np.int64)


def _eye_opening(canon: np.ndarray, upper: int, lower: int, outer: int, inner: int) -> float:
    width = float(np.linalg.norm(canon[outer, :2] - canon[inner, :2])) or 1.0
    return float(canon[lower, 1] - canon[upper, 1]) / width


def face_features(landmarks: np.ndarray) -> np.ndarray:
    """(FEATURE_DIMS,) float32: [yaw, pitch, roll] degrees, mouth opening and width, lip shape
    (canonical, centred), and the two eyes' opening (lid gap / eye width)."""
    pose, canon = decompose(np.asarray(landmarks, np.float64))
    yaw, pitch, roll = pose.angles()
    opening = float(canon[topology.LOWER_LIP_INNER, 1] - canon[topology.UPPER_LIP_INNER, 1])
    a, b = topology.MOUTH_CORNERS
    width = float(np.linalg.norm(canon[a, :2] - canon[b, :2]))
    lips = canon[_lip_ids(), :2]
    shape = (lips - lips.mean(0)).reshape(-1)
    eyes = [_eye_opening(canon, topology.UPPER_LID[k], topology.LOWER_LID[k], topology.EYE_OUTER[k],
                         topology.EYE_INNER[k]) for k in (0, 1)]
    return np.concatenate([[yaw, pitch, roll, opening, width], shape, eyes]).astype(np.float32)


def pose_part(f: np.ndarray) -> np.ndarray:
    return f[..., :POSE_DIMS]


def mouth_part(f: np.ndarray) -> np.ndarray:
    return f[..., POSE_DIMS:POSE_DIMS + MOUTH_DIMS]


def eye_part(f: np.ndarray) -> np.ndarray:
    return f[..., POSE_DIMS + MOUTH_DIMS:]


def opening(f: np.ndarray) -> np.ndarray:
    """Mouth opening (inner-lip gap, canonical units) of feature vector(s)."""
    return f[..., POSE_DIMS]


def lip_gap(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip gap over face height (forehead to chin), in the picture as a viewer sees it, of
    (..., 478, 2+) landmarks: how open a mouth looks, the same measure for real and rendered frames."""
    lm = np.asarray(landmarks, np.float64)[..., :2]
    gap = np.linalg.norm(lm[..., topology.LOWER_LIP_INNER, :] - lm[..., topology.UPPER_LIP_INNER, :], axis=-1)
    height = np.linalg.norm(lm[..., topology.CHIN, :] - lm[..., topology.FOREHEAD, :], axis=-1)
    return gap / np.maximum(height, 1e-9)


def eyes_open(f: np.ndarray) -> np.ndarray:
    """Mean eye opening of feature vector(s)."""
    return eye_part(f).mean(-1)


# Scales that make one unit of each part about equally noticeable: 6 degrees of head turn,
# 0.02 IOD of lip position, 0.08 of eye opening (a blink is about 0.25).
POSE_SCALE = 6.0
MOUTH_SCALE = 0.02
EYE_SCALE = 0.08


def distances(keys: np.ndarray, target: np.ndarray, pose_w: float = 1.0, mouth_w: float = 1.0,
              eye_w: float = 1.0) -> np.ndarray:
    """(K,) weighted distance of each of ``keys`` (K, D) to ``target`` (D,); the mouth term is
    the RMS lip-point difference (opening counted twice: it is what speech is read by)."""
    dp = np.linalg.norm((pose_part(keys) - pose_part(target)) / POSE_SCALE, axis=-1)
    km, tm = mouth_part(keys), mouth_part(target)
    dm = np.sqrt(((km[..., 2:] - tm[2:]) ** 2).mean(-1) + 2 * (km[..., 0] - tm[0]) ** 2
                 + 0.5 * (km[..., 1] - tm[1]) ** 2) / MOUTH_SCALE
    de = np.abs(eye_part(keys) - eye_part(target)).mean(-1) / EYE_SCALE
    return pose_w * dp + mouth_w * dm + eye_w * de
