"""Plain data carried between the stages face → motion → render → output."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)
class FaceCrop:
    """A square crop around one face.

    Attributes:
        image: (S, S, 3) uint8 RGB crop.
        landmarks: (N, 3) float32 landmarks in crop pixels (x, y, z); z is in the same
            pixel scale as x (mediapipe's relative depth), N = 478 for face mesh.
        crop_from_frame: (2, 3) float64 affine map from frame pixels to crop pixels
            (pixel centres at integer coordinates).
        frame_size: (H, W) of the frame the crop came from.
    """

    image: np.ndarray
    landmarks: np.ndarray
    crop_from_frame: np.ndarray
    frame_size: tuple[int, int]

    @property
    def size(self) -> int:
        return int(self.image.shape[0])


@dataclass(frozen=True, eq=False)
class DriveTarget:
    """What one output frame should look like, in the source crop's frame.

    Attributes:
        landmarks: (N, 3) float32 target landmark positions in source-crop pixels,
            produced by motion transfer (pose + expression applied to the source face).
        driving: the driving crop for this frame, for engines that are driven by images
            (FOMM); None for landmark-only signals (speech).
        reference: the driving reference crop (relative mode); None in absolute mode.
        mouth_interior: (0..1) how much synthetic mouth interior to show; None lets the
            engine infer it from the landmarks.
    """

    landmarks: np.ndarray
    driving: FaceCrop | None = None
    reference: FaceCrop | None = None
    extras: dict[str, Any] = field(default_factory=dict)
