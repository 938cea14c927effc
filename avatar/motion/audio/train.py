"""Train Audio2Mouth on synthetic speech: ``python -m avatar.motion.audio.train --out weights/audio2mouth-v1.safetensors``.

Generates speech with espeak-ng (7 accents × 22 voice variants, 120..260 wpm) and flite
(awb, rms, slt, kal16; duration stretch 0.8..1.3), with ``--festival SHARE`` also festival's
voices (Debian festvox), from the Debian licence texts and random CMU-dictionary words,
augments it (noise, reverb, band limit, speed, gain) and fits the network to the rule-based
targets of :mod:`avatar.motion.audio.coarticulation` at 100 fps.
Seeded: the same seed, library versions and thread count give the same weights.
Writes the safetensors file and a JSON sidecar (features, normalisation, data, sha256).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from . import features as feat
from .coarticulation import mouth_tracks, segments_from_phones
from .synthdata import (ESPEAK_ACCENTS, ESPEAK_VARIANTS, FLITE_VOICES, augment, dictionary_words,
                        espeak_utterance, festival_utterance, festival_voices, flite_available,
                        flite_utterance, license_sentences)

LOOKAHEAD = 6  # frames (60 ms)


def _random_text(rng: np.random.Generator, sentences: list[str], words: list[str]) -> str:
    if rng.random() < 0.6:
        return sentences[int(rng.integers(len(sentences)))]
    n = int(rng.integers(4, 14))
    ws = [words[int(rng.integers(len(words)))].lower() for _ in range(n)]
    if rng.random() < 0.5:
        ws.insert(int(rng.integers(1, n)), ",")
    return " ".join(ws).replace(" ,", ",")


def targets_for(phones, num_frames: int) -> dict[str, np.ndarray]:
    """Rule targets at feature frames t = j / 100 s."""
    tr = mouth_tracks(segments_from_phones(phones), np.arange(num_frames) / feat.FRAME_RATE)
    return {"openness": tr.openness, "rounding": tr.rounding, "closed": tr.closed, "viseme": tr.viseme}


def generate(seconds: float, seed: int, flite_share: float = 0.4, log=print,
             real_chain: bool = False, festival_share: float = 0.0) -> tuple[list[dict], dict]:
    """Synthesise about ``seconds`` of augmented speech; returns per-utterance features + targets.
    ``festival_share`` of the utterances come from festival's voices (taken from the flite and
    espeak-ng shares in proportion); it needs festival and its voices installed."""
    rng = np.random.default_rng(seed)
    sentences, words = license_sentences(), dictionary_words()
    use_flite = flite_available()
    voices = festival_voices() if festival_share > 0 else ()
    if festival_share > 0 and not voices:
        raise RuntimeError("--festival needs Debian's festival and festvox voices: "
                           "apt-get install festival festvox-us-slt-hts festvox-kallpc16k festvox-kdlpc16k")
    items, total, counts = [], 0.0, {"espeak-ng": 0, "flite": 0, "festival": 0, "augmented": 0}
    t0 = time.time()
    while total < seconds:
        text = _random_text(rng, sentences, words)
        before, after = float(rng.uniform(0.1, 0.6)), float(rng.uniform(0.2, 0.7))
        if voices and rng.random() < festival_share:
            u = festival_utterance(text, voices[int(rng.integers(len(voices)))], float(rng.uniform(0.8, 1.3)), before, after)
            counts["festival"] += 1
        elif use_flite and rng.random() < flite_share:
            u = flite_utterance(text, FLITE_VOICES[int(rng.integers(len(FLITE_VOICES)))],
                                float(rng.uniform(0.8, 1.3)), before, after)
            counts["flite"] += 1
        else:
            variant = ESPEAK_VARIANTS[int(rng.integers(len(ESPEAK_VARIANTS)))]
            voice = ESPEAK_ACCENTS[int(rng.integers(len(ESPEAK_ACCENTS)))] + (f"+{variant}" if variant else "")
            u = espeak_utterance(text, voice, int(rng.integers(120, 261)), int(rng.integers(20, 81)), before, after)
            counts["espeak-ng"] += 1
        audio, phones = u.audio, u.phones
        if rng.random() < 0.8:
            audio, phones, _ = augment(audio, phones, rng, real_chain)
            counts["augmented"] += 1
        mel = feat.logmel(audio)
        items.append({"mel": mel.astype(np.float16), **targets_for(phones, len(mel))})
        total += len(audio) / feat.SAMPLE_RATE
        if len(items) % 200 == 0:
            log(f"  {len(items)} utterances, {total / 60:.1f} min audio, {time.time() - t0:.0f} s")
    info = {"utterances": len(items), "seconds": round(total, 1), **counts,
            "text": "Debian /usr/share/common-licenses sentences (60 %) + random CMU-dictionary words (40 %)",
            "espeak_voices": f"{len(ESPEAK_ACCENTS)} accents x variants {','.join(v or 'default' for v in ESPEAK_VARIANTS)}; 120-260 wpm; pitch 20-80",
            "flite_voices": ",".join(FLITE_VOICES) if use_flite else "none (flite missing)",
            "festival_voices": f"{','.join(voices)} ({festival_share:.0%}; diphone voices stretched 0.8-1.3)" if voices else "none",
            "augmentation": "80 %: speed 0.9-1.1 (30 %), reverb RT60 0.15-0.6 s (30 %), band-pass (30 %), white/pink/brown noise 5-35 dB SNR (70 %), gain -12..+6 dB"
                            + ("; telephone band 300-3400 Hz at 8 kHz (15 %), MP3/AAC/Opus round trip (40 %)" if real_chain else "")}
    return items, info


def _evaluate(model, items: list[dict]) -> dict[str, float]:
    import torch  # noqa: PLC0415

    from .model_io import gate  # noqa: PLC0415

    preds, gts, hits, events = [], [], 0, 0
    with torch.no_grad():
        for it in items:
            mel = torch.from_numpy(np.concatenate([it["mel"].astype(np.float32), np.repeat(it["mel"][-1:].astype(np.float32), LOOKAHEAD, 0)]))[None]
            out = model(mel)
            o = out.openness[0, LOOKAHEAD:].numpy()
            c = torch.sigmoid(out.closed_logit[0, LOOKAHEAD:]).numpy()
            o = gate(o, c)
            preds.append(o)
            gts.append(it["openness"])
            cl = it["closed"] > 0.99
            edges = np.flatnonzero(np.diff(cl.astype(np.int8)) == 1)
            for e in edges:
                end = e + 1 + np.argmax(~cl[e + 1:]) if np.any(~cl[e + 1:]) else len(cl)
                events += 1
                hits += bool(np.any(o[max(0, e - 2): end + 3] < 0.05))
    p, g = np.concatenate(preds), np.concatenate(gts)
    return {"openness_r": float(np.corrcoef(p, g)[0, 1]), "closures_caught": hits / max(events, 1)}


def train(items: list[dict], epochs: int, seed: int, crop: int = 400, batch: int = 32, log=print):
    """Fit Audio2Mouth; returns (model, validation metrics)."""
    import torch  # noqa: PLC0415
    from torch.nn import functional as F  # noqa: PLC0415

    from .model import Audio2Mouth  # noqa: PLC0415

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed + 1)
    order = rng.permutation(len(items))
    n_val = max(1, len(items) // 20)
    val = [items[i] for i in order[:n_val]]
    tr = [items[i] for i in order[n_val:]]
    mel = np.concatenate([it["mel"] for it in tr]).astype(np.float32)
    cat = {k: np.concatenate([it[k] for it in tr]) for k in ("openness", "rounding", "closed", "viseme")}
    model = Audio2Mouth()
    model.mean.copy_(torch.from_numpy(mel.mean(0)))
    model.std.copy_(torch.from_numpy(mel.std(0) + 1e-3))
    steps_per_epoch = max(1, len(mel) // (crop * batch))
    total = epochs * steps_per_epoch
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=total, pct_start=0.1)
    L = LOOKAHEAD
    mel_t = torch.from_numpy(mel)
    tgt = {k: torch.from_numpy(v) for k, v in cat.items()}
    t0 = time.time()
    for ep in range(epochs):
        model.train()
        losses = []
        for _ in range(steps_per_epoch):
            starts = rng.integers(0, len(mel) - crop - 1, size=batch)
            idx = torch.from_numpy(starts[:, None] + np.arange(crop)[None, :])
            x = mel_t[idx]
            out = model(x)
            o = tgt["openness"][idx][:, : crop - L]
            r = tgt["rounding"][idx][:, : crop - L]
            c = tgt["closed"][idx][:, : crop - L]
            v = tgt["viseme"][idx][:, : crop - L]
            loss = (F.mse_loss(out.openness[:, L:], o)
                    + 0.5 * F.binary_cross_entropy_with_logits(out.closed_logit[:, L:], c, pos_weight=torch.tensor(3.0))
                    + 0.5 * F.mse_loss(out.rounding[:, L:], r)
                    + 0.3 * F.cross_entropy(out.viseme_logits[:, L:].reshape(-1, out.viseme_logits.shape[-1]), v.reshape(-1)))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
        model.eval()
        m = _evaluate(model, val) if (ep % 5 == 4 or ep == epochs - 1) else {}
        log(f"epoch {ep + 1}/{epochs} loss {np.mean(losses):.4f} {m} {time.time() - t0:.0f} s")
    return model, _evaluate(model, val)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m avatar.motion.audio.train", description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output .safetensors path (a .json sidecar is written next to it)")
    ap.add_argument("--minutes", type=float, default=100.0, help="minutes of synthetic audio to generate")
    ap.add_argument("--epochs", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--real-chain", action="store_true", help="also augment with lossy codecs and telephone band")
    ap.add_argument("--festival", type=float, default=0.0, metavar="SHARE",
                    help="this share of the utterances from festival's voices (needs Debian festival + festvox voices)")
    args = ap.parse_args(argv)

    import torch  # noqa: PLC0415

    from .model_io import save_weights  # noqa: PLC0415

    torch.set_num_threads(args.threads)
    t0 = time.time()
    print(f"generating {args.minutes:.0f} min of synthetic speech (seed {args.seed})", flush=True)
    items, info = generate(args.minutes * 60, args.seed, log=lambda s: print(s, flush=True), real_chain=args.real_chain,
                           festival_share=args.festival)
    t_gen = time.time() - t0
    print(f"generated {info['utterances']} utterances in {t_gen:.0f} s", flush=True)
    model, metrics = train(items, args.epochs, args.seed, log=lambda s: print(s, flush=True))
    info.update({"generation_s": round(t_gen), "training_s": round(time.time() - t0 - t_gen), "epochs": args.epochs,
                 "seed": args.seed, "threads": args.threads, "validation": metrics,
                 "command": f"python -m avatar.motion.audio.train --out {args.out} --minutes {args.minutes:g} --epochs {args.epochs} --seed {args.seed} --threads {args.threads}" + (" --real-chain" if args.real_chain else "")
                 + (f" --festival {args.festival:g}" if args.festival else "")})
    save_weights(model, Path(args.out), LOOKAHEAD, info)
    print(f"wrote {args.out}: {metrics}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
