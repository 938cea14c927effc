"""The one interface every rendering engine implements.

The pipeline, CLI, Python API, Gradio demo and live driver talk to engines only through
:class:`Engine`, so none of them special-cases an engine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Sequence

import numpy as np

from ..config import MotionConfig
from ..types import DriveTarget, FaceCrop


class Engine(ABC):
    """Renders a portrait crop posed as a sequence of :class:`DriveTarget` s.

    ``needs_driving_image``: True when the engine reads ``DriveTarget.driving`` (FOMM);
    the pipeline then supplies a driving image even for speech (by rendering the landmark
    target with the warp engine first).
    ``wants_driving_image``: True when the engine uses ``DriveTarget.driving`` and
    ``reference`` if they are given (the warp's shading transfer) but renders without them;
    driving videos and webcams then supply them, speech does not.
    """

    name: ClassVar[str]
    needs_driving_image: ClassVar[bool] = False
    # True when render() keeps no state between calls and may run in several threads at once
    # (numpy and OpenCV release the GIL): the pipeline then renders frames side by side
    concurrent_frames: ClassVar[bool] = False
    wants_driving_image: bool = False

    @property
    def uses_driving_image(self) -> bool:
        """Whether driving videos and webcams should hand this engine their driving crops."""
        return self.needs_driving_image or self.wants_driving_image

    @abstractmethod
    def prepare(self, source: FaceCrop) -> Any:
        """Precompute everything that depends on the source only. Called once per portrait."""

    def for_use(self, state: Any, use: str) -> Any:
        """The state to render ``use`` ("video", "audio" or "live") with, from :meth:`prepare`'s.
        Most engines render every use alike; a video avatar talks over its own footage."""
        return state

    def speech_lead(self, state: Any, lead_s: float, fps: float) -> float:
        """The lip lead (seconds) a speech source for ``state`` at ``fps`` should use, given the
        configured ``lead_s``. Most engines take it as is; a video avatar adds its person's own."""
        return lead_s

    def crop_scale(self, scale: float, use: str) -> float:
        """The side of the source crop for ``use``, relative to the face box, given the configured
        ``scale``. Most engines keep it; a talking video avatar widens it (its crop is live footage)."""
        return scale

    def background_plate(self, state: Any) -> np.ndarray | None:
        """(S, S, 3) uint8: the source crop with the person taken out, where the engine composites
        the person over a still plate (paste-back then never lets the portrait's own person show
        where the plate does); None for engines without one."""
        return None

    def speech_model(self, state: Any) -> Any:
        """The person's own audio-to-mouth model a speech source for ``state`` should use
        (:class:`~avatar.motion.audio.personal.PersonalMouth`), or None for the generic one."""
        return None

    @abstractmethod
    def render(self, state: Any, targets: Sequence[DriveTarget]) -> np.ndarray:
        """Render one crop per target.

        Returns: (B, S, S, 3) uint8 RGB crops, S = the source crop size, B = len(targets); or a
        list of B such crops, where they carry more for paste-back than their pixels
        (:class:`~avatar.face.blend.FootageCrop`).
        """

    def configure(self, motion: MotionConfig) -> None:
        """Take the motion settings an engine applies itself (FOMM: movement-scale adaptation). Default: none."""

    def close(self) -> None:
        """Release resources (sessions, GPU memory). Safe to call twice."""
