"""Builds ``avatar/assets/face_template.npy``: a left-right symmetric neutral face in canonical units.

Run ``python -m avatar.face.template`` to rebuild it from scikit-image's public-domain
``astronaut`` portrait. The template only fixes the axes of the canonical frame; relative
motion transfer cancels its individual shape.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from . import topology


_PAIRS = ((33, 263), (133, 362), (61, 291), (159, 386), (145, 374), (234, 454), (70, 300), (105, 334),
          (127, 356), (172, 397), (78, 308), (468, 473), (50, 280), (206, 426))
_MIDLINE = (1, 10, 152, 13, 14, 0, 17, 168, 6, 4, 2, 199, 175, 9, 151)


def symmetric_template(landmarks: np.ndarray, iterations: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Symmetrise (478, 3) landmarks; returns (template, mirror permutation)."""
    from ..motion.decompose import fit_similarity

    pts = landmarks.astype(np.float64)
    pts = pts - pts.mean(0)
    perm = np.arange(len(pts))
    # seed the correspondence with known mirror pairs; a free fit could undo the mirror by a 180° turn
    for a, b in _PAIRS:
        perm[a], perm[b] = b, a
    anchors = np.array(sorted({i for p in _PAIRS for i in p} | set(_MIDLINE)))
    for it in range(iterations):
        mirrored = pts * np.array([-1.0, 1.0, 1.0])
        use = anchors if it == 0 else np.arange(len(pts))
        s, r, t = fit_similarity(mirrored[perm][use], pts[use])
        aligned = s * mirrored @ r.T + t
        cost = ((pts[:, None, :] - aligned[None, :, :]) ** 2).sum(-1)
        _, perm = linear_sum_assignment(cost)
        s, r, t = fit_similarity(mirrored[perm], pts)
        pts = 0.5 * (pts + s * mirrored[perm] @ r.T + t)
    # axes: x normal to the symmetry plane, y from forehead to chin, z = x × y
    mid = np.where(perm == np.arange(len(perm)))[0]
    centred = pts[mid] - pts[mid].mean(0)
    normal = np.linalg.svd(centred)[2][-1]
    x_axis = normal if (pts[topology.EYE_OUTER[1]] - pts[topology.EYE_OUTER[0]]) @ normal > 0 else -normal
    down = pts[topology.CHIN] - pts[topology.FOREHEAD]
    y_axis = down - (down @ x_axis) * x_axis
    y_axis /= np.linalg.norm(y_axis)
    rot = np.stack([x_axis, y_axis, np.cross(x_axis, y_axis)])
    pts = pts @ rot.T
    pts /= np.linalg.norm(pts[topology.EYE_OUTER[1]] - pts[topology.EYE_OUTER[0]])
    return pts, perm


def main() -> None:
    from skimage import data

    from ..motion import decompose
    from .landmarks import detect_face

    face = detect_face(data.astronaut(), "astronaut")
    tpl, perm = symmetric_template(face.landmarks)
    out = Path(__file__).resolve().parent.parent / "assets"
    np.save(out / "face_template.npy", tpl.astype(np.float32))
    np.save(out / "face_mirror.npy", perm.astype(np.int16))
    decompose.canonical_template.cache_clear()
    decompose.stable_ids.cache_clear()
    tpl = tpl - tpl[decompose.stable_ids()].mean(0)  # origin at the stable centroid
    np.save(out / "face_template.npy", tpl.astype(np.float32))
    print(f"wrote {out / 'face_template.npy'}: {len(tpl)} points, {int((perm == np.arange(len(perm))).sum())} on the midline")


if __name__ == "__main__":
    main()
