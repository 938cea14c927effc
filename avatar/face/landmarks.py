"""Face landmarks from mediapipe face mesh (478 points with refined eyes and irises).

Works offline: mediapipe 0.10.21 bundles the face-mesh models in its wheel.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import types
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError, EngineUnavailable, NoFaceError, ShapeError

NUM_LANDMARKS = 478
# While a video shows one face it is tracked by a one-face graph: a graph with room for more runs
# mediapipe's face detector on every frame, looking for them (about 2 of 5 ms a frame at 512 px,
# with the same landmarks). Every this many frames a still-image graph counts the faces again.
RECOUNT_FRAMES = 25


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face.

    landmarks: (478, 3) float32 in image pixels (x, y, z); z uses the x pixel scale,
        smaller is closer to the camera.
    """

    landmarks: np.ndarray

    @property
    def box(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) bounding box of the landmarks in pixels."""
        lo = self.landmarks[:, :2].min(axis=0)
        hi = self.landmarks[:, :2].max(axis=0)
        return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return (x1 - x0) * (y1 - y0)


class _Deferred(types.ModuleType):
    """Stands in for a module until one of its attributes is used, then imports the real one."""

    def __getattr__(self, attr: str):
        sys.modules.pop(self.__name__, None)
        return getattr(importlib.import_module(self.__name__), attr)


# mediapipe's package __init__ imports its drawing helpers, which import matplotlib.pyplot: about
# 0.4 s of every start-up for code that draws nothing here. They load on first use instead.
_DRAWING = ("mediapipe.python.solutions.drawing_utils", "mediapipe.python.solutions.drawing_styles")


def _import_mediapipe():
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "mediapipe" not in sys.modules:
        for name in _DRAWING:
            sys.modules.setdefault(name, _Deferred(name))
    try:
        import mediapipe as mp  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - mediapipe is a core dependency
        raise EngineUnavailable(
            "mediapipe is not installed; run `pip install mediapipe==0.10.21` (the last release that bundles face mesh)"
        ) from exc
    for name in _DRAWING:  # keep `mp.solutions.drawing_utils` working for anyone who draws
        parent, _, child = name.rpartition(".")
        if parent in sys.modules and name in sys.modules and not hasattr(sys.modules[parent], child):
            setattr(sys.modules[parent], child, sys.modules[name])
    if not hasattr(mp, "solutions"):  # pragma: no cover - newer wheels dropped solutions
        raise EngineUnavailable(
            f"mediapipe {mp.__version__} ships no face-mesh model; install mediapipe==0.10.21"
        )
    return mp


class LandmarkDetector:
    """mediapipe face mesh.

    Args:
        video: tracking mode (landmarks of the previous frame seed the next); False for stills.
        max_faces: how many faces to look for.
        min_confidence: detection confidence threshold.
        backend: "mediapipe", or "face_alignment" to find faces with face-alignment's S3FD + FAN
            (weights must already be on disk) and run the mesh inside each box.
    """

    def __init__(self, video: bool = False, max_faces: int = 5, min_confidence: float = 0.5,
                 backend: str = "mediapipe") -> None:
        if backend not in ("mediapipe", "face_alignment"):
            raise ConfigError(f"face backend must be 'mediapipe' or 'face_alignment', got {backend!r}")
        self._fan = None
        if backend == "face_alignment":
            from .fan import FanBoxes

            self._fan = FanBoxes()
        self.video = video
        self._max_faces = max_faces
        self._min_confidence = min_confidence
        # video with room for several faces: the one-face graph while one is shown (see RECOUNT_FRAMES);
        # one of the two tracking graphs at a time, made when the recount asks for it
        self._alone = video and max_faces > 1 and self._fan is None
        self._mesh: Any = None if self._alone else self._graph(max_faces)
        self._single: Any = None
        self._still: Any = None  # counts the faces; finds them where the one-face graph lost its own
        self._until_recount = 0
        self._lock = threading.Lock()

    def _graph(self, max_faces: int, video: bool | None = None) -> Any:
        video = self.video if video is None else video
        return _import_mediapipe().solutions.face_mesh.FaceMesh(
            static_image_mode=not video,
            max_num_faces=max_faces,
            refine_landmarks=True,
            min_detection_confidence=self._min_confidence,
            min_tracking_confidence=self._min_confidence,
        )

    def _process(self, image: np.ndarray) -> Any:
        """mediapipe's result for one frame (call under ``_lock``)."""
        if not self._alone:
            return self._mesh.process(image)
        if self._still is None:
            self._still = self._graph(self._max_faces, video=False)
        if self._until_recount <= 0:
            alone = len(self._still.process(image).multi_face_landmarks or ()) <= 1
            if (self._single if alone else self._mesh) is None:
                for graph in (self._mesh, self._single):
                    if graph is not None:
                        graph.close()
                self._mesh, self._single = (None, self._graph(1)) if alone else (self._graph(self._max_faces), None)
            self._until_recount = RECOUNT_FRAMES
        self._until_recount -= 1
        if self._single is None:
            return self._mesh.process(image)
        result = self._single.process(image)
        if not result.multi_face_landmarks:
            # having lost its face (a cut, a jump) the one-face graph looks for it again only on the
            # next frame; the graph with room for more would have found it on this one
            result = self._still.process(image)
            if len(result.multi_face_landmarks or ()) > 1:
                self._until_recount = 0
        return result

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in an (H, W, 3) uint8 RGB image, largest first."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ShapeError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
        faces = self._detect(image)
        h, w = image.shape[:2]
        if self._fan is not None and (not self.video or not faces):
            for x0, y0, x1, y1 in self._fan.boxes(image):
                faces += self._detect(np.ascontiguousarray(image[y0:y1, x0:x1]), x0, y0)
            faces = _merge(faces)
        elif not self.video and (max(h, w) > 1.3 * min(h, w) or len(faces) < 2):
            # the face detector sees a downscaled square: scan square windows for small faces
            faces = _merge(faces + self._scan(image))
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces

    def _detect(self, image: np.ndarray, x0: int = 0, y0: int = 0) -> list[Face]:
        h, w = image.shape[:2]
        with self._lock:  # mediapipe graphs are not re-entrant
            result = self._process(np.ascontiguousarray(image))
        faces = []
        for lms in result.multi_face_landmarks or ():
            arr = _xyz(lms)
            arr[:, 0] = arr[:, 0] * w + x0
            arr[:, 1] = arr[:, 1] * h + y0
            arr[:, 2] *= w
            faces.append(Face(arr))
        return faces

    def _scan(self, image: np.ndarray) -> list[Face]:
        h, w = image.shape[:2]
        side = min(h, w)
        found: list[Face] = []
        for win in (side, side // 2):
            if win < 128:
                break
            step = max(win // 2, 1)
            for y in range(0, max(h - win, 0) + 1, step):
                for x in range(0, max(w - win, 0) + 1, step):
                    found += self._detect(image[y:y + win, x:x + win], x, y)
        return found

    def close(self) -> None:
        for graph in (self._mesh, self._single, self._still):
            if graph is not None:
                graph.close()

    def __enter__(self) -> "LandmarkDetector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# a NormalizedLandmarkList serialised: per landmark a submessage (tag 0x0a, 15 bytes) holding
# x, y and z as fixed 32-bit floats (tags 0x0d, 0x15, 0x1d), no visibility or presence
_WIRE = np.dtype([("tag", "u1"), ("len", "u1"), ("tx", "u1"), ("x", "<f4"), ("ty", "u1"), ("y", "<f4"), ("tz", "u1"), ("z", "<f4")])
_WIRE_TAGS = (0x0A, 15, 0x0D, 0x15, 0x1D)


def _xyz(landmarks: Any) -> np.ndarray:
    """(N, 3) float32 x, y, z of a mediapipe landmark list: read from its serialised form when that
    is the plain layout (a twelfth of the time of 1434 attribute reads), else field by field."""
    wire = np.frombuffer(landmarks.SerializeToString(), np.uint8)
    if wire.size % _WIRE.itemsize == 0:
        rec = wire.view(_WIRE)
        if all(bool((rec[k] == v).all()) for k, v in zip(("tag", "len", "tx", "ty", "tz"), _WIRE_TAGS)):
            return np.stack([rec["x"], rec["y"], rec["z"]], 1).astype(np.float32)
    return np.array([(p.x, p.y, p.z) for p in landmarks.landmark], dtype=np.float32)


def _iou(a: Face, b: Face) -> float:
    ax0, ay0, ax1, ay1 = a.box
    bx0, by0, bx1, by1 = b.box
    iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    ih = max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    return inter / max(a.area + b.area - inter, 1e-6)


def _merge(faces: list[Face]) -> list[Face]:
    """Drop duplicates of one face found in overlapping windows (keep the larger detection)."""
    kept: list[Face] = []
    for f in sorted(faces, key=lambda f: f.area, reverse=True):
        if all(_iou(f, k) < 0.3 for k in kept):
            kept.append(f)
    return kept


def select_face(faces: list[Face], face_index: int | None, where: str, require_single: bool = False) -> Face:
    """Pick one face, or raise a :class:`NoFaceError` that names ``where`` (file and frame)."""
    if not faces:
        raise NoFaceError(f"no face found in {where}; use a photo with one clearly visible, roughly frontal face")
    if require_single and face_index is None and len(faces) > 1:
        raise NoFaceError(f"{len(faces)} faces found in {where}; choose one with --face-index 0..{len(faces) - 1} (0 = largest)")
    idx = 0 if face_index is None else face_index
    if idx >= len(faces):
        raise NoFaceError(f"--face-index {idx} asked for, but only {len(faces)} face(s) found in {where}")
    return faces[idx]


def detect_face(image: np.ndarray, where: str = "the image", face_index: int | None = None,
                require_single: bool = False, min_confidence: float = 0.5) -> Face:
    """Detect the faces of a still image and return the chosen one (largest by default)."""
    with LandmarkDetector(video=False, min_confidence=min_confidence) as det:
        return select_face(det.detect(image), face_index, where, require_single)
