"""Face-mesh topology: triangles, contour loops and landmark groups of mediapipe's 478-point mesh.

Everything is derived once from mediapipe's published connection sets, so it stays in step
with the landmark model.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from functools import lru_cache

import numpy as np

# Landmark ids used by name across the package (mediapipe face mesh, subject's right = image left).
NOSE_TIP = 1
FOREHEAD = 10
CHIN = 152
UPPER_LIP_INNER = 13
LOWER_LIP_INNER = 14
EYE_OUTER = (33, 263)          # image-left, image-right outer eye corners
EYE_INNER = (133, 362)
UPPER_LID = (159, 386)
LOWER_LID = (145, 374)
IRIS_CENTERS = (468, 473)
CHEEKS = (50, 280, 205, 425)  # mid-cheek points, left and right
MOUTH_CORNERS = (61, 291)


def _mp_connections():
    from mediapipe.python.solutions import face_mesh_connections as c  # noqa: PLC0415

    return c


def _ids(edges) -> np.ndarray:
    return np.array(sorted({i for e in edges for i in e}), dtype=np.int64)


def _order_loop(edges) -> np.ndarray:
    """Order the vertices of a closed edge loop."""
    nbr = defaultdict(list)
    for a, b in edges:
        nbr[a].append(b)
        nbr[b].append(a)
    start = min(nbr)
    loop, prev, cur = [start], None, start
    while True:
        nxt = [n for n in nbr[cur] if n != prev]
        if not nxt or nxt[0] == start:
            break
        prev, cur = cur, nxt[0]
        loop.append(cur)
    return np.array(loop, dtype=np.int64)


@lru_cache(maxsize=1)
def mesh() -> dict[str, np.ndarray]:
    """Triangles (T, 3) and named loops / groups of landmark ids."""
    c = _mp_connections()
    edges = {tuple(sorted(e)) for e in c.FACEMESH_TESSELATION}
    adj = defaultdict(set)
    for a, b in edges:
        adj[a].add(b)
        adj[b].add(a)
    tris = sorted({tuple(sorted((a, b, k))) for a, b in edges for k in adj[a] & adj[b]})
    count = Counter(e for t in tris for e in ((t[0], t[1]), (t[0], t[2]), (t[1], t[2])))
    boundary = [e for e, n in count.items() if n == 1]

    # split the boundary into its loops: face oval, two eyes, inner mouth
    comp: dict[int, int] = {}
    loops: list[list[tuple[int, int]]] = []
    for e in boundary:
        hit = {comp[v] for v in e if v in comp}
        if not hit:
            loops.append([e])
            idx = len(loops) - 1
        else:
            idx = min(hit)
            for other in sorted(hit - {idx}, reverse=True):
                loops[idx].extend(loops[other])
                loops[other] = []
                for v in list(comp):
                    if comp[v] == other:
                        comp[v] = idx
            loops[idx].append(e)
        for v in e:
            comp[v] = idx
    loops = [lp for lp in loops if lp]
    ordered = [_order_loop(lp) for lp in loops]
    oval = max(ordered, key=len)
    mouth = next(lp for lp in ordered if UPPER_LIP_INNER in lp)
    eye_l = next(lp for lp in ordered if EYE_OUTER[0] in lp)
    eye_r = next(lp for lp in ordered if EYE_OUTER[1] in lp)

    # close the eye holes with fans from the iris centres (the mouth stays open: it is drawn)
    eye_tris = []
    for loop, centre in ((eye_l, IRIS_CENTERS[0]), (eye_r, IRIS_CENTERS[1])):
        for i in range(len(loop)):
            eye_tris.append((int(loop[i]), int(loop[(i + 1) % len(loop)]), centre))
    return {
        "triangles": np.array(tris, dtype=np.int64),
        "eye_triangles": np.array(eye_tris, dtype=np.int64),
        "oval": oval,
        "mouth_loop": mouth,
        "eye_loops": np.stack([eye_l, eye_r]) if len(eye_l) == len(eye_r) else np.array([eye_l, eye_r], dtype=object),
        "lips": _ids(c.FACEMESH_LIPS),
        "eyes": np.union1d(_ids(c.FACEMESH_LEFT_EYE), _ids(c.FACEMESH_RIGHT_EYE)),
        "brows": np.union1d(_ids(c.FACEMESH_LEFT_EYEBROW), _ids(c.FACEMESH_RIGHT_EYEBROW)),
        "irises": _ids(c.FACEMESH_IRISES),
    }
