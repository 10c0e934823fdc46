"""SpringLM training pipeline: token files, masks, losses, evaluation, resume, init-from.

Synthetic tokens (a Markov-ish stream so the LM has something to learn), a tiny model,
tmp_path only.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from soundspring.cli import main
from soundspring.config import LAYER_BOUNDS, LMTrainConfig, codec_tiny
from soundspring.data.tokens import (
    eval_windows,
    load_tokens,
    precompute_tokens,
    save_tokens,
)
from soundspring.errors import ConfigError, ModelMismatchError
from soundspring.evaluation.lm_eval import evaluate_lm
from soundspring.models.masked_lm import MASK, MASK_UPPER, SpringLM, springlm_tiny
from soundspring.models.weights_io import (
    codec_content_hash,
    codec_from_weights,
    codec_tokenizer_hash,
    load_codec,
    load_lm,
    read_lm_weights,
    save_codec_weights,
    save_lm_weights,
)
from soundspring.training.lm import (
    coding_view,
    conceal_mask,
    train_lm,
    training_losses,
)

V = 1024
HASH = "12" * 32


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _clips(rng, n: int, frames: int) -> list[np.ndarray]:
    out = []
    for _ in range(n):
        base = np.cumsum(rng.integers(0, 3, (24, frames)), axis=1) % 64
        out.append((base + 7 * np.arange(24)[:, None]).astype(np.int64) % V)
    return out


@pytest.fixture
def tokens_dir(tmp_path, rng):
    d = tmp_path / "tokens"
    save_tokens(d / "train.npz", _clips(rng, 6, 80), [f"t{i}" for i in range(6)], HASH)
    save_tokens(d / "heldout.npz", _clips(rng, 2, 70), ["h0", "h1"], HASH)
    return d


def _cfg(**kw) -> LMTrainConfig:
    base = {"batch_size": 2, "crop_frames": 20, "warmup_steps": 2, "log_every_steps": 1,
                "checkpoint_every_min": 0.0, "eval_every_min": 0.0, "eval_windows": 2,
                "eval_frames": 20, "max_steps": 2, "threads": 1}
    return LMTrainConfig(**(base | kw))


def test_token_file_round_trip(tokens_dir) -> None:
    ts = load_tokens(tokens_dir / "train.npz", HASH)
    assert len(ts) == 6 and ts.frames == 480 and ts.tokens.dtype == np.int16
    assert ts.clip(2).shape == (24, 80) and ts.names[2] == "t2"
    with pytest.raises(ModelMismatchError, match="codec"):
        load_tokens(tokens_dir / "train.npz", "ff" * 32)
    with pytest.raises(ConfigError, match="not found"):
        load_tokens(tokens_dir / "none.npz")


def test_precompute_with_tiny_codec(tmp_path, rng) -> None:
    from soundspring.audio import write_wav
    from soundspring.models.codec import Codec

    torch.manual_seed(0)
    wpath = save_codec_weights(Codec(codec_tiny()), tmp_path / "codec.pt")
    corpus = tmp_path / "corpus"
    rows = []
    for i, split in enumerate(["train", "train", "heldout"]):
        write_wav(corpus / f"c{i}.wav", (0.1 * rng.standard_normal(16000 + 320 * i)).astype(
            np.float32))
        rows.append(json.dumps({"path": f"c{i}.wav", "language": "en", "duration_s": 1.0,
                                "split": split}))
    (corpus / "manifest.jsonl").write_text("\n".join(rows) + "\n")
    paths = precompute_tokens(wpath, corpus / "manifest.jsonl", tmp_path / "tok",
                              progress=False)
    codec = load_codec(wpath, as_exported=True)
    h = codec_tokenizer_hash(codec)

    # a checkpoint's codec is rounded to fp16 first: same hashes as its weights file
    assert codec_content_hash(codec) == torch.load(wpath, weights_only=True)["sha256"]
    assert h == codec_tokenizer_hash(codec_from_weights(wpath))
    tr = load_tokens(paths["train"], h)
    assert len(tr) == 2 and tr.clip(1).shape == (24, 51) and tr.names == ("c0.wav", "c1.wav")
    assert load_tokens(paths["heldout"], h).clip(0).shape == (24, 52)


def test_tokenizer_hash_ignores_the_decoder_only() -> None:
    from soundspring.models.codec import Codec

    torch.manual_seed(0)
    codec = Codec(codec_tiny())
    full, tok = codec_content_hash(codec), codec_tokenizer_hash(codec)
    with torch.no_grad():
        next(codec.decoder.parameters()).add_(0.5)
    assert codec_tokenizer_hash(codec) == tok and codec_content_hash(codec) != full
    with torch.no_grad():
        next(codec.encoder.parameters()).add_(0.5)
    after_encoder = codec_tokenizer_hash(codec)
    assert after_encoder != tok
    with torch.no_grad():
        codec.quantizer.codebooks[0, 0, 0] += 1.0
    assert codec_tokenizer_hash(codec) != after_encoder


def test_conceal_mask_bursts_and_ratio(rng) -> None:
    m = conceal_mask(64, 40, _cfg(burst_prob=0.5), rng)
    assert m.shape == (64, 40) and m.dtype == torch.bool and m.any(dim=1).all()
    assert 0.05 < m.float().mean() < 0.6


@pytest.mark.parametrize("n_levels", [6, 12, 24])
def test_coding_view_is_causal_order(rng, n_levels: int) -> None:
    codes = torch.from_numpy(rng.integers(0, V, (4, 24, 12)))
    view = coding_view(codes, n_levels, 3, progressive_prob=0.7, rng=rng)
    assert torch.equal(view[:, :3], codes[:, :3])
    assert (view[:, n_levels:] == MASK_UPPER).all()
    fine = view[:, 3:n_levels]
    masked = fine == MASK
    # a masked level never lies below a visible one, and the prefix is a whole group
    assert (masked[:, :-1] <= masked[:, 1:]).all()
    assert (torch.where(~masked, fine, codes[:, 3:n_levels]) == codes[:, 3:n_levels]).all()
    first = torch.where(masked.any(1), masked.float().argmax(1) + 3, torch.tensor(n_levels))
    assert set(first.unique().tolist()) <= set(LAYER_BOUNDS[1:])
    assert masked.any(1).all()  # every frame has something to code
    # chunk-constant prefix
    assert (first.view(4, 4, 3) == first.view(4, 4, 3)[..., :1]).all()


def test_training_losses_finite_and_backprop(rng) -> None:
    model = SpringLM(springlm_tiny())
    codes = torch.from_numpy(rng.integers(0, V, (2, 24, 20)))
    out = training_losses(model, codes, _cfg(), rng)
    loss = out["conceal"] + out["entropy"]
    assert torch.isfinite(loss)
    loss.backward()
    assert model.embed.weight.grad is not None and model.rel_bias_mem.grad is not None
    # near log(V) at init
    assert abs(out["entropy"].item() - np.log(V)) < 1.0


def test_evaluate_lm_keys(tokens_dir) -> None:
    model = SpringLM(springlm_tiny())
    w = eval_windows(load_tokens(tokens_dir / "heldout.npz"), 3, 20)
    res = evaluate_lm(model, w, batch_size=2)
    assert len(res["bits_lm"]) == 24 and len(res["conceal_top1"]) == 3
    assert abs(res["fine_mean_bits_unigram"] - 10.0) < 1e-3  # uniform before set_unigram
    assert res["bits_lm"][:3] == res["bits_unigram"][:3]


def test_train_resume_and_init_from(tmp_path, tokens_dir) -> None:
    run = tmp_path / "run"
    out = train_lm(run, tokens_dir, springlm_tiny(), _cfg(), progress=False)
    assert out["step"] == 2 and out["last_eval"]["step"] == 2
    rows = [json.loads(x) for x in (run / "train.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2]
    assert (run / "eval.jsonl").exists()
    _, _, codec_h, _, meta = read_lm_weights(run / "lm_latest.pt")
    assert codec_h == HASH and meta["step"] == 2
    lm = load_lm(run / "lm_latest.pt", HASH)
    assert lm.unigram_logprobs[0].exp().sum().item() == pytest.approx(1.0, abs=1e-2)
    # resume continues from the full state
    out = train_lm(run, tokens_dir, None, _cfg(max_steps=4), progress=False)
    assert out["step"] == 4
    starts = [json.loads(x) for x in (run / "train.jsonl").read_text().splitlines()
              if '"start"' in x]
    assert starts[-1]["resumed"] and starts[-1]["step"] == 2
    # a new run from shipped weights alone
    run2 = tmp_path / "run2"
    out = train_lm(run2, tokens_dir, None, _cfg(max_steps=1), init_from=run / "lm_latest.pt",
                   progress=False)
    assert out["step"] == 1
    init_sha = read_lm_weights(run / "lm_latest.pt")[3]
    assert json.loads((run2 / "config.json").read_text())["init_sha256"] == init_sha


def test_codec_mismatch_refused(tmp_path, tokens_dir, rng) -> None:
    p = save_lm_weights(SpringLM(springlm_tiny()), tmp_path / "lm.pt", tokenizer_sha256="ff" * 32)
    with pytest.raises(ModelMismatchError, match="codec"):
        train_lm(tmp_path / "r", tokens_dir, None, _cfg(), init_from=p, progress=False)
    # An explicit warm start across tokenizers: the run trains on (and records) the tokens'.
    out = train_lm(tmp_path / "warm", tokens_dir, None, _cfg(max_steps=1), init_from=p,
                   progress=False, init_other_tokenizer=True)
    assert out["step"] == 1
    cfg = json.loads((tmp_path / "warm" / "config.json").read_text())
    assert cfg["tokenizer_sha256"] == HASH and cfg["init_from"] == str(p)
    other = tmp_path / "other"
    save_tokens(other / "train.npz", _clips(rng, 2, 40), ["a", "b"], HASH)
    save_tokens(other / "heldout.npz", _clips(rng, 1, 40), ["c"], "ff" * 32)
    with pytest.raises(ModelMismatchError, match="codec"):
        train_lm(tmp_path / "r2", other, None, _cfg(), progress=False)


def test_cli_arguments(tmp_path, tokens_dir, capsys) -> None:
    assert main(["train", "lm", "--run-dir", str(tmp_path / "cli"), "--tokens-dir",
                 str(tokens_dir), "--preset", "smoke", "--model-preset", "tiny",
                 "--max-steps", "1", "--batch-size", "2", "--crop-frames", "20",
                 "--eval-windows", "2", "--no-progress"]) == 0
    assert '"step": 1' in capsys.readouterr().out


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="coding_levels"):
        LMTrainConfig(coding_levels=(3,))
    with pytest.raises(ConfigError, match="chunk_frames_choices"):
        LMTrainConfig(chunk_frames_choices=(6,))
    assert dataclasses.replace(LMTrainConfig(), lr=1e-3).lr == 1e-3
    assert MASK == V


def test_masked_true_values_never_reach_the_model(rng) -> None:
    """Training inputs: changing the true token behind any masked position (coding or
    concealment) leaves the model input, hence every logit, unchanged."""
    model = SpringLM(springlm_tiny()).eval()
    codes = torch.from_numpy(rng.integers(0, V, (2, 24, 12)))
    seed = int(rng.integers(0, 2**31))
    view = coding_view(codes, 12, 2, 0.5, np.random.default_rng(seed))
    masked = view == MASK
    other = torch.where(masked, (codes + 1) % V, codes)
    view2 = coding_view(other, 12, 2, 0.5, np.random.default_rng(seed))
    assert torch.equal(view, view2)
    assert torch.equal(model.forward_coding(view, 6, 2), model.forward_coding(view2, 6, 2))
    lost = conceal_mask(2, 12, _cfg(), rng)
    cv = codes.clone()
    cv[:, :3] = torch.where(lost[:, None], MASK, cv[:, :3])
    cv2 = torch.where(lost[:, None], (codes + 5) % V, codes)  # other lost values, fine too
    cv2[:, :3] = torch.where(lost[:, None], MASK, cv2[:, :3])
    assert torch.equal(model.forward_conceal(cv), model.forward_conceal(cv2))


def _tiny_corpus_and_models(tmp_path, rng):
    """A 3-clip corpus, a tiny random codec, its tokens and an untrained tiny SpringLM."""
    from soundspring.audio import write_wav
    from soundspring.models.codec import Codec

    torch.manual_seed(0)
    wpath = save_codec_weights(Codec(codec_tiny()), tmp_path / "codec.pt")
    corpus = tmp_path / "corpus"
    rows = []
    for i, (split, seconds) in enumerate([("train", 1.0), ("heldout", 2.5), ("heldout", 1.5)]):
        write_wav(corpus / f"c{i}.wav", (0.1 * rng.standard_normal(int(16000 * seconds))).astype(
            np.float32))
        rows.append(json.dumps({"path": f"c{i}.wav", "language": "en", "duration_s": seconds,
                                "split": split}))
    manifest = corpus / "manifest.jsonl"
    manifest.write_text("\n".join(rows) + "\n")
    precompute_tokens(wpath, manifest, tmp_path / "tok", progress=False)
    h = codec_tokenizer_hash(load_codec(wpath, as_exported=True))
    lm = save_lm_weights(SpringLM(springlm_tiny()), tmp_path / "lm.pt", tokenizer_sha256=h)
    return wpath, lm, manifest


def test_eval_lm_reports_model_and_packet_bits(tmp_path, rng, capsys) -> None:
    from soundspring.cli import main

    wpath, lm, manifest = _tiny_corpus_and_models(tmp_path, rng)
    out = tmp_path / "lm_eval.json"
    assert main(["eval", "lm", "--codec", str(wpath), "--lm", str(lm), "--tokens-dir",
                 str(tmp_path / "tok"), "--manifest", str(manifest), "--reach", "0", "4",
                 "--windows", "2", "--max-clips", "2", "--bitrates", "3", "--json",
                 str(out)]) == 0
    res = json.loads(out.read_text())
    assert set(res["model_bits"]) == {"0", "4"} and res["clips"] == 2
    for r in res["model_bits"].values():
        assert len(r["bits_lm"]) == 24 and r["bits_lm"][:3] == r["bits_unigram"][:3]
    row = res["packet_bits"]["3"]
    assert row["raw_bps"] == 3000
    # an untrained LM is near-uniform: both codings pay about 10 bits/token plus packet
    # overhead (TOC byte, 8 check bits, termination), so both land a little above raw
    for name in ("springlm", "static"):
        assert -0.2 < row[name]["saving_vs_raw"] < 0.05
    assert "Packets on 2 held-out clips" in capsys.readouterr().out


def test_eval_rd_trades_bits_for_distortion(tmp_path, rng, capsys) -> None:
    from soundspring.cli import main

    wpath, lm, manifest = _tiny_corpus_and_models(tmp_path, rng)
    out, png = tmp_path / "rd.json", tmp_path / "rd.png"
    assert main(["eval", "rd", "--codec", str(wpath), "--lm", str(lm), "--manifest",
                 str(manifest), "--max-clips", "2", "--bitrates", "6", "--rd-lambdas", "0",
                 "1e6", "--static", "--opus-bitrates", "--json", str(out), "--plot",
                 str(png)]) == 0
    res = json.loads(out.read_text())
    assert res["clips"] == 2 and "opus" not in res and png.stat().st_size > 0
    for name in ("springlm", "static"):
        nearest, cheapest = res["curves"][name]["6"]["0"], res["curves"][name]["6"]["1e+06"]
        # an untrained LM is near-uniform, so the rate term saves little here (its effect
        # on a peaked model is tested in test_transceiver); it never costs bits
        assert cheapest["bitrate_bps"] <= nearest["bitrate_bps"]
        assert nearest["raw_bps"] == 6000 and nearest["n"] == 2
        assert np.isfinite([nearest["pesq_wb"], nearest["stoi"], cheapest["pesq_wb"]]).all()
    assert "rd_lambda" in capsys.readouterr().out
