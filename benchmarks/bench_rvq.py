"""Per-chunk residual-VQ token search: the C++ kernel against the PyTorch search, same run.

Run: ``pytest benchmarks/bench_rvq.py --benchmark-only`` (smoke: ``--benchmark-disable``).
Shipped size (24 codebooks [1024, 128]), random codebooks rounded to fp16 like the shipped
file (the search time does not depend on their values; fp16-exact values let the kernel
hold them as binary16, as it does for the shipped codec), chunks of C = 2 frames (40 ms),
one thread for both (torch's intra-op threads are set to 1 by benchmarks/conftest.py, and
the kernel gets ``torch.get_num_threads()``). Each case runs on the kernel at every level
this CPU has (``native-<isa>``; ``-fp32`` forces float32 storage) and on the PyTorch
search (``torch``), levels 0..K-1 of the bitrate (K = 12 at 6 kbps, 24 at 12 kbps).

Cases:
    nearest:  the codec's inference RVQ encode (``ResidualVQ.encode``, rd_lambda = 0)
    rd:       the transmitter's rate-distortion search (``RateDistortionQuantizer.quantize``,
              lambda = config.DEFAULT_RD_LAMBDA, per-layer bit costs from a static table)
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from soundspring._native import core
from soundspring.config import DEFAULT_RD_LAMBDA, LayerLayout, codec_default
from soundspring.models.rd import RateDistortionQuantizer
from soundspring.models.rvq import ResidualVQ

C = 2
LEVELS = {"6kbps": 12, "12kbps": 24}
ISAS = [isa for isa in core.lm.supported_isas() if isa != "generic"]
IMPLS = ["torch", *(f"native-{isa}" for isa in ISAS),
         *(f"native-{isa}-fp32" for isa in ISAS if isa in ("avx2", "avx512"))]


@pytest.fixture(scope="module")
def quantizer() -> ResidualVQ:
    torch.manual_seed(0)
    q = ResidualVQ(codec_default()).eval()
    with torch.no_grad():  # the shipped file's fp16 values, as load_codec gives them
        q.codebooks.copy_(q.codebooks.half().float())
    return q


def _latents(seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).normal(0, 1, size=(128, C))
                            .astype(np.float32))  # [D, C]


def _run_native(q: ResidualVQ, impl: str):
    isa = impl.removeprefix("native-").removesuffix("-fp32")
    storage = "fp32" if impl.endswith("-fp32") else "auto"
    packed = core.rvq.Codebooks(np.ascontiguousarray(q.codebooks.numpy()), isa=isa,
                                storage=storage)
    return packed


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("bitrate", list(LEVELS), ids=str)
def test_nearest(benchmark, quantizer, impl: str, bitrate: str) -> None:
    k = LEVELS[bitrate]
    z = _latents()
    if impl == "torch":
        def run():
            with torch.inference_mode():
                return quantizer.encode(z[None], k, search="torch")[0].numpy()
    else:
        packed = _run_native(quantizer, impl)
        r0 = np.ascontiguousarray(z.t().numpy())

        def run():
            return packed.search(r0.copy(), 0, k)
    codes = benchmark(run)
    assert codes.shape == (k, C)
    with torch.inference_mode():
        want = quantizer.encode(z[None], k, search="native")[0].numpy()
    np.testing.assert_array_equal(codes, want)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("bitrate", list(LEVELS), ids=str)
def test_rd(benchmark, quantizer, impl: str, bitrate: str) -> None:
    k = LEVELS[bitrate]
    layers = LayerLayout.for_bitrate(float(bitrate.removesuffix("kbps"))).layers
    bits = np.random.default_rng(1).uniform(0, 14, size=(C, k, 1024)).astype(np.float32)
    z = _latents(2)
    if impl == "torch":
        rd = RateDistortionQuantizer(quantizer, layers, search="torch")
        run = lambda: rd.quantize(z, bits, DEFAULT_RD_LAMBDA)
    else:
        packed = _run_native(quantizer, impl)
        r0 = np.ascontiguousarray(z.t().numpy())

        def run():  # RateDistortionQuantizer._search_native on a chosen kernel level
            r = r0.copy()
            tokens = np.zeros((k, C), dtype=np.int64)
            for lo, hi in layers:
                tokens[lo:hi] = packed.search(r, lo, hi, np.ascontiguousarray(bits[:, lo:hi]),
                                              DEFAULT_RD_LAMBDA)
            return tokens
    tokens = benchmark(run)
    assert tokens.shape == (k, C)
    want = RateDistortionQuantizer(quantizer, layers, search="native").quantize(
        z, bits, DEFAULT_RD_LAMBDA)
    np.testing.assert_array_equal(tokens, want)


@pytest.mark.parametrize("bitrate", list(LEVELS), ids=str)
def test_rd_quantizer_end_to_end(benchmark, quantizer, bitrate: str) -> None:
    """``RateDistortionQuantizer.quantize`` as the transmitter calls it (auto: the kernel),
    Python overhead included."""
    k = LEVELS[bitrate]
    layers = LayerLayout.for_bitrate(float(bitrate.removesuffix("kbps"))).layers
    bits = np.random.default_rng(3).uniform(0, 14, size=(C, k, 1024)).astype(np.float32)
    rd = RateDistortionQuantizer(quantizer, layers)
    z = _latents(4)
    tokens = benchmark(rd.quantize, z, lambda layer, t: bits[:, layers[layer][0]:layers[layer][1]],
                       DEFAULT_RD_LAMBDA)
    assert tokens.shape == (k, C)


# ---- agreement with the PyTorch search on real speech (python benchmarks/bench_rvq.py) -----


def agreement(n_clips: int = 60, bitrate_kbps: float = 12.0) -> dict:
    """Tokens of the C++ search against the PyTorch search through the shipped codec on
    ``n_clips`` held-out Tux Paint clips (every len / n_clips-th line of heldout.jsonl):

    * lambda 0: ``Codec.encode`` (the kernel) against ``ResidualVQ.encode(search="torch")``
      on the same latents, all K levels of ``bitrate_kbps``;
    * lambda = DEFAULT_RD_LAMBDA: the transmitter (shipped SpringLM on the C++ engine) with
      both ``RateDistortionQuantizer`` searches run on every chunk with the same bit costs
      (the kernel's tokens are sent, so both see the same LM memory).

    Returns token and frame agreement fractions (a frame agrees when all its K tokens do).
    """
    import json
    from pathlib import Path

    from soundspring.audio import read_wav
    from soundspring.data.tuxpaint import tuxpaint_dir
    from soundspring.models.weights_io import load_models
    from soundspring.transceiver import TransceiverConfig, Transmitter

    torch.set_num_threads(1)
    root = tuxpaint_dir()
    rows = [json.loads(line) for line in Path(root, "heldout.jsonl").read_text().splitlines()]
    picked = rows[::max(1, len(rows) // n_clips)][:n_clips]
    codec, model = load_models()
    q = codec.quantizer
    k = int(bitrate_kbps / 0.5)
    out = {"clips": len(picked), "bitrate_kbps": bitrate_kbps, "levels": k}
    tok = frames = tok_same = frame_same = 0
    rd_tok = rd_frames = rd_tok_same = rd_frame_same = 0
    for row in picked:
        pcm = read_wav(Path(root, row["path"]))
        wav = torch.from_numpy(pcm).view(1, 1, -1)
        with torch.inference_mode():
            native = codec.encode(wav, bitrate_kbps)[0]  # [K, F]
            pad = (-wav.shape[-1]) % codec.hop
            z = codec.encoder(torch.nn.functional.pad(wav, (0, pad)))
            ref = q.encode(z, k, search="torch")[0]
        eq = native == ref
        tok += eq.numel()
        tok_same += int(eq.sum())
        frames += eq.shape[1]
        frame_same += int(eq.all(0).sum())

        cfg = TransceiverConfig(bitrate_kbps=bitrate_kbps, rd_lambda=DEFAULT_RD_LAMBDA)
        tx = Transmitter(codec, model, cfg)
        rd_n = RateDistortionQuantizer(q, cfg.layout.layers, search="native")
        rd_t = RateDistortionQuantizer(q, cfg.layout.layers, search="torch")
        stats = [0, 0, 0, 0]

        def both(zc, cache, tx=tx, rd_n=rd_n, rd_t=rd_t, stats=stats):
            def costs(layer, tokens):
                return tx.coder.rate_bits(tx._memory, tokens, layer, cache)
            a = rd_n.quantize(zc, costs, DEFAULT_RD_LAMBDA)
            b = rd_t.quantize(zc, costs, DEFAULT_RD_LAMBDA)
            stats[0] += a.size
            stats[1] += int((a == b).sum())
            stats[2] += a.shape[1]
            stats[3] += int((a == b).all(0).sum())
            return a

        tx._rd_tokens = both
        tx.push(pcm)
        tx.flush()
        rd_tok, rd_tok_same = rd_tok + stats[0], rd_tok_same + stats[1]
        rd_frames, rd_frame_same = rd_frames + stats[2], rd_frame_same + stats[3]
    out["lambda0"] = {"tokens": tok, "tokens_equal": tok_same, "frames": frames,
                      "frames_equal": frame_same}
    out["lambda_default"] = {"rd_lambda": DEFAULT_RD_LAMBDA, "tokens": rd_tok,
                             "tokens_equal": rd_tok_same, "frames": rd_frames,
                             "frames_equal": rd_frame_same}
    return out


if __name__ == "__main__":
    import argparse
    import json as _json

    parser = argparse.ArgumentParser(description=agreement.__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=60)
    parser.add_argument("--bitrate", type=float, default=12.0)
    args = parser.parse_args()
    print(_json.dumps(agreement(args.clips, args.bitrate), indent=1))
