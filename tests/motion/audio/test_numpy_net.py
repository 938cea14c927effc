"""The NumPy Audio2Mouth equals the torch network it replaces at inference, and talk needs no torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from avatar.motion.audio.model_io import load_model, load_numpy_model


def test_numpy_network_matches_torch_streamed_in_chunks():
    torch = pytest.importorskip("torch")
    model, _ = load_model(None)
    net, _ = load_numpy_model(None)
    mel = np.random.default_rng(0).normal(-4, 3, size=(230, net.n_mels)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(mel)[None])
    ref = np.stack([ref.openness[0].numpy(), ref.closed_logit[0].numpy(), ref.rounding[0].numpy()], axis=1)
    ref_vis = model(torch.from_numpy(mel)[None]).viseme_logits[0].detach().numpy()
    state, outs = net.initial_state(), []
    for a, b in ((0, 1), (1, 50), (50, 50), (50, 230)):  # chunks of 1, 49, 0 and 180 frames
        o, state = net.step(mel[a:b], state)
        outs.append(o)
    o = np.concatenate(outs)
    got = np.stack([1 / (1 + np.exp(-o[:, 0])), o[:, 1], np.tanh(o[:, 2])], axis=1)
    np.testing.assert_allclose(got, ref, atol=2e-4)
    np.testing.assert_allclose(o[:, 3:], ref_vis, atol=2e-4)


def test_wrong_tensor_shapes_are_a_weights_error(tmp_path):
    import hashlib
    import json

    from safetensors.numpy import load_file, save_file

    from avatar.errors import WeightsError
    from avatar.motion.audio.model_io import DEFAULT_WEIGHTS
    from avatar.paths import shipped_weights_dir

    src = shipped_weights_dir() / DEFAULT_WEIGHTS
    tensors = load_file(str(src))
    tensors["gru.weight_hh_l1"] = tensors["gru.weight_hh_l1"][:, :64].copy()
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad))
    side = json.loads(src.with_suffix(".json").read_text())
    side["sha256"] = hashlib.sha256(bad.read_bytes()).hexdigest()
    bad.with_suffix(".json").write_text(json.dumps(side))
    with pytest.raises(WeightsError, match="gru.weight_hh_l1"):
        load_numpy_model(str(bad))


def test_audio_to_mouth_streaming_does_not_import_torch():
    code = ("import sys, numpy as np\n"
            "from avatar.motion.audio.drive import LiveSpeech\n"
            "from avatar.motion.audio.stream import MouthStreamer\n"
            "s = MouthStreamer(25); out = s.push(np.zeros(16000, np.float32)) + s.flush()\n"
            "assert len(out) == 25, len(out)\n"
            "print(sorted(m for m in ('torch', 'librosa', 'numba') if m in sys.modules))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_features_equal_librosa_and_scipy_without_importing_them():
    librosa = pytest.importorskip("librosa")
    import scipy.signal

    from avatar.motion.audio import features as feat

    ref = librosa.filters.mel(sr=feat.SAMPLE_RATE, n_fft=feat.N_FFT, n_mels=feat.N_MELS, fmin=feat.FMIN, fmax=feat.FMAX)
    np.testing.assert_allclose(feat._mel_basis(), ref, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(feat._window(), scipy.signal.get_window("hann", feat.WIN, fftbins=True), atol=1e-7)
    x = np.random.default_rng(1).normal(size=5000).astype(np.float32)
    f = feat.num_frames(len(x))
    pad = np.concatenate([np.zeros(feat.WIN // 2, np.float32), x])
    frames = librosa.util.frame(pad[: (f - 1) * feat.HOP + feat.WIN], frame_length=feat.WIN, hop_length=feat.HOP, axis=0)
    np.testing.assert_allclose(feat.logmel(x), feat.logmel_frames(np.ascontiguousarray(frames)), atol=1e-5)
