"""Split face landmarks into rigid head pose and a pose-free (canonical) shape.

Canonical frame: the symmetric template in ``avatar/assets/face_template.npy``; x towards
image right, y down, z away from the camera; unit = the outer inter-ocular distance
(landmarks 33–263); origin at the centroid of the stable landmarks.
Pixel landmarks relate to canonical ones by ``p = scale · R · c + t``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..face import topology

_ASSETS = Path(__file__).resolve().parent.parent / "assets"


@lru_cache(maxsize=1)
def canonical_template() -> np.ndarray:
    """(478, 3) float64 symmetric neutral face in canonical units."""
    return np.load(_ASSETS / "face_template.npy").astype(np.float64)


@lru_cache(maxsize=1)
def stable_ids() -> np.ndarray:
    """Landmarks that move with the skull, not with expressions (forehead, nose, temples, eye corners)."""
    tpl = canonical_template()
    m = topology.mesh()
    moving = np.union1d(np.union1d(m["lips"], m["eyes"]), np.union1d(m["brows"], m["irises"]))
    below_nose = np.where(tpl[:, 1] > tpl[topology.NOSE_TIP, 1] + 0.05)[0]  # jaw and cheeks follow the mouth
    ids = np.setdiff1d(np.arange(468), np.union1d(moving, below_nose))
    return np.union1d(ids, np.array(topology.EYE_OUTER + topology.EYE_INNER))


@dataclass(frozen=True, eq=False)
class Pose:
    """Rigid head pose with uniform scale: ``pixels = scale · rotation @ canonical + translation``."""

    rotation: np.ndarray  # (3, 3)
    scale: float
    translation: np.ndarray  # (3,)

    def apply(self, canonical: np.ndarray) -> np.ndarray:
        """(N, 3) canonical → (N, 3) pixels."""
        return self.scale * canonical @ self.rotation.T + self.translation

    def invert(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 3) pixels → (N, 3) canonical."""
        return (pixels - self.translation) @ self.rotation / self.scale

    def angles(self) -> tuple[float, float, float]:
        """(yaw, pitch, roll) in degrees; yaw > 0 turns the face towards image right."""
        r = self.rotation
        yaw = np.degrees(np.arcsin(np.clip(r[0, 2], -1.0, 1.0)))
        pitch = np.degrees(np.arctan2(-r[1, 2], r[2, 2]))
        roll = np.degrees(np.arctan2(-r[0, 1], r[0, 0]))
        return float(yaw), float(pitch), float(roll)


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity ``dst ≈ s · R @ src + t`` (Umeyama 1991) for (N, D) point sets."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    u, d, vt = np.linalg.svd(cov)
    sign = np.ones(len(d))
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rot = (u * sign) @ vt
    var = (xs**2).sum() / len(src)
    scale = float((d * sign).sum() / var) if var > 0 else 1.0
    return scale, rot, mu_d - scale * rot @ mu_s


def decompose(landmarks: np.ndarray) -> tuple[Pose, np.ndarray]:
    """Fit the head pose on stable landmarks.

    Args: landmarks: (478, 3) pixels.
    Returns: the pose and the (478, 3) canonical shape (expression included).
    """
    ids = stable_ids()
    s, r, t = fit_similarity(canonical_template()[ids], landmarks[ids].astype(np.float64))
    pose = Pose(r, s, t)
    return pose, pose.invert(landmarks.astype(np.float64))
