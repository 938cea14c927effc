"""Person mask (head, hair, neck, body against the background) of a still image.

mediapipe's selfie segmentation, bundled with the mediapipe wheel (no download). The warp
engine uses it once per portrait to know how far the hair reaches, so that hair moves with the
head and the stretch a 2-D warp needs happens in the background instead.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from .landmarks import _import_mediapipe

log = logging.getLogger(__name__)
_LOCK = threading.Lock()  # one graph, used from any thread (demo workers, live loop)
_MODEL = None
_WARNED = False


def person_mask(image: np.ndarray) -> np.ndarray | None:
    """(H, W) float32 in [0, 1], 1 = person, for an (H, W, 3) uint8 RGB image; None when
    mediapipe's segmentation model cannot run here (callers fall back to fixed rings)."""
    global _MODEL, _WARNED
    try:
        with _LOCK:
            if _MODEL is None:
                mp = _import_mediapipe()
                _MODEL = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
            result = _MODEL.process(np.ascontiguousarray(image[..., :3]))
    except Exception as exc:  # noqa: BLE001 - any failure of the optional helper model means "no mask"
        if not _WARNED:
            _WARNED = True
            log.warning("person segmentation unavailable (%s); the warp places hair by fixed rings", str(exc).splitlines()[0][:200])
        return None
    mask = getattr(result, "segmentation_mask", None)
    if mask is None or mask.shape != image.shape[:2]:
        return None
    return np.clip(mask.astype(np.float32), 0.0, 1.0)
