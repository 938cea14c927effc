from __future__ import annotations

import cv2
import numpy as np
import pytest

from avatar.face.descriptor import MATCH_THRESHOLD, descriptor_distance, face_descriptor
from avatar.face.landmarks import detect_face
from faces import jpeg


def _desc(img):
    return face_descriptor(img, detect_face(img))


@pytest.mark.parametrize("name", ["half", "jpeg60", "brighter", "half_jpeg"])
def test_same_face_matches(portrait, portrait_face, name):
    variants = {
        "half": lambda im: cv2.resize(im, (256, 256), interpolation=cv2.INTER_AREA),
        "jpeg60": lambda im: jpeg(im, 60),
        "brighter": lambda im: np.clip(im.astype(np.int16) + 20, 0, 255).astype(np.uint8),
        "half_jpeg": lambda im: jpeg(cv2.resize(im, (256, 256), interpolation=cv2.INTER_AREA), 60),
    }
    d = descriptor_distance(face_descriptor(portrait, portrait_face), _desc(variants[name](portrait)))
    print(f"{name}: {d:.3f}")
    assert d < MATCH_THRESHOLD


def test_different_face_rejected(portrait, portrait_face, other_face):
    d = descriptor_distance(face_descriptor(portrait, portrait_face), _desc(other_face))
    print(f"different face: {d:.3f}")
    assert d > MATCH_THRESHOLD
