import numpy as np

from avatar.config import SmoothingConfig
from avatar.motion.smooth import OneEuroFilter, smooth_sequence


def test_streaming_equals_batch():
    x = np.random.default_rng(1).normal(size=(40, 5, 3))
    cfg = SmoothingConfig(min_cutoff=1.0, beta=0.2)
    batch = smooth_sequence(x, cfg, 25)
    f = OneEuroFilter(cfg, 25)
    assert np.allclose(np.stack([f(v) for v in x]), batch)


def test_reduces_jitter_and_follows_steps():
    rng = np.random.default_rng(2)
    still = 1.0 + rng.normal(0, 0.02, size=(100, 1))
    out = smooth_sequence(still, SmoothingConfig(min_cutoff=1.0, beta=0.0), 25)
    assert np.diff(out[20:, 0]).std() < 0.3 * np.diff(still[20:, 0]).std()
    step = np.concatenate([np.zeros(20), np.ones(30)])[:, None]
    out = smooth_sequence(step, SmoothingConfig(min_cutoff=1.0, beta=50.0), 25)
    assert out[-1, 0] > 0.99  # no lasting lag


def test_disabled_passes_through():
    x = np.random.default_rng(3).normal(size=(10, 4))
    assert np.allclose(smooth_sequence(x, SmoothingConfig(enabled=False), 25), x)
