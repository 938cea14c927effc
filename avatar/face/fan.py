"""Optional face-alignment (FAN, 68 points) backend: face boxes from S3FD + 2D-FAN.

face-alignment downloads its weights at first use, which fails offline, so this backend is
used only when the files are already on disk (torch hub's ``checkpoints/`` folder); otherwise
it refuses with a message naming the files and where to put them. Its boxes seed mediapipe,
which still supplies the 478-point mesh every engine works with.
"""

from __future__ import annotations

import inspect
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


def _fan_url(api: object, name: str = "2DFAN-4") -> str:
    """The URL face-alignment downloads network ``name`` from, in each release's own layout.

    1.1–1.3 and 1.5+ keep a flat ``models_urls[name]``; 1.4.x nests it by torch ``major.minor``
    and falls back to ``default_model_urls`` (the lookup below mirrors its ``FaceAlignment``).
    """
    import torch  # noqa: PLC0415

    urls = getattr(api, "models_urls", {}) or {}
    if isinstance(urls.get(name), str):
        return urls[name]
    version = torch.__version__
    version = version.rsplit(".", 2)[0] if "dev" in version else version.rsplit(".", 1)[0]
    table = urls.get(version) or getattr(api, "default_model_urls", {}) or {}
    if not isinstance(table.get(name), str):
        raise EngineUnavailable(f"this face-alignment release keeps its {name} weights somewhere avatar does not "
                                f"know (tested with 1.4 and 1.5); use the default mediapipe backend")
    return table[name]


def required_files() -> list[Path]:
    """The weight files face-alignment would download (2D-FAN-4 and S3FD), in torch hub's cache."""
    import torch.hub  # noqa: PLC0415

    urls = [_fan_url(_module().api)]
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
        if "compile" in inspect.signature(fa.FaceAlignment).parameters:
            kwargs["compile"] = False  # 1.5+: torch.compile would add minutes of start-up and a disk cache
        landmarks_type = getattr(fa.LandmarksType, "TWO_D", None) or getattr(fa.LandmarksType, "_2D")
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
