"""The skin a portrait shows beyond the face mesh's outline, below the nose.

mediapipe's face oval often runs a little inside the real jaw and chin: on a three-quarter
portrait the far jaw goes on 10–15 px (at 512) past it before the background starts. The warp's
first ring lies further out and follows the head only partly, so when that side turns into
view the band between oval and ring stretches, and the jaw's crisp edge was drawn as a wide
pale smear beside the chin (a ghost chin). Found once per portrait, that band of skin becomes
control points that ride on the oval in every frame (:class:`avatar.render.warp.WarpEngine`):
the jaw's edge stays as far outside the outline as the portrait shows it, and the stretch
lands on the background or neck beyond.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..face import topology

REACH = 0.12   # × the oval's mean radius: how far past the oval the skin's edge is looked for
NARROWEST = 0.04  # × that radius: a thinner band is left to the rings (its triangles would be slivers)
STEP = 30.0    # Lab distance between the means either side of an edge (L scaled 0-255)
WINDOW = 3     # px averaged on either side of a candidate edge


def outward_normals(points: np.ndarray) -> np.ndarray:
    """(N, 2) unit normals of the closed polygon ``points`` ((N, 2), in order), pointing away from its centroid."""
    tangent = np.roll(points, -1, 0) - np.roll(points, 1, 0)
    normal = np.stack([tangent[:, 1], -tangent[:, 0]], 1)
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-9)
    return normal * np.where(((points - points.mean(0)) * normal).sum(1) < 0, -1.0, 1.0)[:, None]


def pushed_out(points: np.ndarray, band: np.ndarray) -> np.ndarray:
    """(N, 2): each point of the closed outline ``points`` moved ``band`` px along its outward normal."""
    return points + outward_normals(points) * band[:, None]


def skin_band(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(N,) per point of the face oval (mesh order): how many px the skin goes on beyond it to
    a clear edge, on the lower face (below the nose tip); 0 where the edge is not clear, nearer
    than :data:`NARROWEST` or further than :data:`REACH`, or above the nose (hair and ears have
    rings of their own).

    ``image``: (S, S, 3) uint8 RGB crop; ``landmarks``: (478, 2+) in its pixels. An edge found
    at one point alone, with neither neighbour finding one, is taken for a stray line (the
    neck's outline seen past the jaw) and dropped.
    """
    oval = landmarks[topology.mesh()["oval"], :2].astype(np.float64)
    normal = outward_normals(oval)
    radius = float(np.linalg.norm(oval - oval.mean(0), axis=1).mean())
    down = landmarks[topology.CHIN, :2] - landmarks[topology.FOREHEAD, :2]
    lower = (oval - landmarks[topology.NOSE_TIP, :2]) @ down > 0
    reach = int(round(REACH * radius))
    if reach < 2 or not lower.any():
        return np.zeros(len(oval))
    w = WINDOW
    steps = np.arange(-w, reach + w + 1, dtype=np.float64)
    along = oval[:, None, :] + steps[None, :, None] * normal[:, None, :]
    lab = cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2LAB).astype(np.float32)
    profile = cv2.remap(lab, along[..., 0].astype(np.float32), along[..., 1].astype(np.float32),
                        cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    csum = np.concatenate([np.zeros((len(oval), 1, 3), np.float32), np.cumsum(profile, axis=1)], 1)
    at = np.arange(w, w + reach + 1)  # profile index of 0..reach px past the oval
    strength = np.linalg.norm((csum[:, at + w] - 2 * csum[:, at] + csum[:, at - w]) / w, axis=2)
    edge = np.argmax(strength[:, 1:], axis=1) + 1
    found = (strength[np.arange(len(oval)), edge] > STEP) & lower & (edge >= NARROWEST * radius)
    found &= np.roll(found, 1) | np.roll(found, -1)
    return np.where(found, edge - 0.5, 0.0)  # the step lies between pixels edge - 1 and edge
