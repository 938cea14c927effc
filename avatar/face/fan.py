"""Optional face-alignment (FAN, 68 points) backend: face boxes from S3FD + 2D-FAN.

face-alignment downloads its weights at first use, which fails offline, so this backend is
used only when the files are already on disk (torch hub's ``checkpoints/`` folder); otherwise
it refuses with a message naming the files and where to put them. Its boxes seed mediapipe,
which still supplies the 478-point mesh every engine works with.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import EngineUnavailable

INSTALL = 'pip install "avatar[face-alignment]"'


def _module():
    try:
        import face_alignment  # noqa: PLC0415
    except ImportError as exc:
        raise EngineUnavailable(f"the face-alignment backend needs the face-alignment package: {INSTALL} "
                                f"(or use the default mediapipe backend)") from exc
    return face_alignment


def required_files() -> list[Path]:
    """The weight files face-alignment would download (2D-FAN-4 and S3FD), in torch hub's cache."""
    import torch.hub  # noqa: PLC0415

    fa = _module()
    urls = [getattr(fa, "api").models_urls["2DFAN-4"]]
    try:
        from face_alignment.detection.sfd import sfd_detector  # noqa: PLC0415

        urls.append(sfd_detector.models_urls["s3fd"])
    except (ImportError, AttributeError, KeyError):
        pass
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    return [folder / os.path.basename(u.split("?")[0]) for u in urls]


class FanBoxes:
    """Face boxes (and 68 points) from face-alignment, only from weights already on disk.

    Raises:
        EngineUnavailable: package missing, or its weights not downloaded yet.
    """

    def __init__(self, device: str = "cpu") -> None:
        fa = _module()
        missing = [p for p in required_files() if not p.is_file()]
        if missing:
            names = ", ".join(p.name for p in missing)
            raise EngineUnavailable(
                f"face-alignment weights not found ({names} in {missing[0].parent}); it would download them, and "
                f"this machine may be offline: fetch them once on a connected machine (run face_alignment once) "
                f"and copy them to {missing[0].parent}, or use the default mediapipe backend")
        kwargs = {"device": device, "face_detector": "sfd", "flip_input": False}
        landmarks_type = getattr(fa.LandmarksType, "TWO_D", None) or getattr(fa.LandmarksType, "_2D")
        try:
            self._fa = fa.FaceAlignment(landmarks_type, compile=False, **kwargs)
        except TypeError:  # versions before 1.5 have no compile option
            self._fa = fa.FaceAlignment(landmarks_type, **kwargs)

    def detect(self, image: np.ndarray) -> list[np.ndarray]:
        """(68, 2) points per face in an (H, W, 3) uint8 RGB image, largest face first."""
        found = self._fa.get_landmarks_from_image(image) or []
        faces = [np.asarray(p, np.float32)[:, :2] for p in found]
        return sorted(faces, key=lambda p: -float(np.prod(p.max(0) - p.min(0))))

    def boxes(self, image: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Square windows (x0, y0, x1, y1), twice each face's size, clipped to the image, for mediapipe."""
        h, w = image.shape[:2]
        out = []
        for p in self.detect(image):
            (x0, y0), (x1, y1) = p.min(0), p.max(0)
            cx, cy, side = (x0 + x1) / 2, (y0 + y1) / 2, 2.0 * max(x1 - x0, y1 - y0)
            out.append((max(0, int(cx - side / 2)), max(0, int(cy - side / 2)),
                        min(w, int(cx + side / 2)), min(h, int(cy + side / 2))))
        return out
