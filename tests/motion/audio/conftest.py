import numpy as np
import pytest

from avatar.motion.audio import espeak


@pytest.fixture(scope="session")
def espeak_ok():
    if not espeak.available():
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng libespeak-ng1)")
    return True


@pytest.fixture(scope="session")
def spoken(espeak_ok):
    """A short synthesised sentence with its rule-based frame tracks (25 fps)."""
    from avatar.motion.audio import speech_track

    text = "Maybe the brown puppy will bob happily beside my mum."
    return text, speech_track(None, 0, 25, text=text, head_amplitude=0.0, blink_rate=0.0)


@pytest.fixture(scope="session")
def canonical_face():
    """A plausible canonical (478, 3) face: random points with a real mouth and eyes layout."""
    from avatar.motion import rig

    rng = np.random.default_rng(0)
    p = rng.normal(0, 0.6, (478, 3)) * [1, 1.3, 0.3]
    p[:, 1] = np.where(p[:, 1] > 0.5, p[:, 1] + 0.3, p[:, 1])  # some points under the mouth (chin area)
    xs = np.linspace(-0.4, 0.4, 9)
    p[list(rig.INNER_UPPER)] = np.c_[xs, np.full(9, 0.60), np.zeros(9)]
    p[list(rig.INNER_LOWER)] = np.c_[xs, np.full(9, 0.64), np.zeros(9)]
    p[list(rig.OUTER_UPPER)] = np.c_[xs, np.full(9, 0.52), np.zeros(9)]
    p[list(rig.OUTER_LOWER)] = np.c_[xs, np.full(9, 0.75), np.zeros(9)]
    p[[78, 308]] = [[-0.45, 0.62, 0], [0.45, 0.62, 0]]
    p[[61, 291]] = [[-0.5, 0.62, 0], [0.5, 0.62, 0]]
    p[152] = [0, 1.3, 0]
    p[10] = [0, -1.2, 0]  # forehead: face height 2.5
    p[33], p[263] = [-0.5, -0.3, 0], [0.5, -0.3, 0]
    return p
