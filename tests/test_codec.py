"""Codec: shapes, bitrates, causality, streaming == offline, weights, bad input, training."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from soundspring.config import codebooks_for_bitrate, codec_tiny
from soundspring.errors import ConfigError, ModelMismatchError
from soundspring.models.codec import Codec
from soundspring.models.weights_io import (
    DEFAULT_CODEC_WEIGHTS,
    codec_from_weights,
    load_codec,
    save_codec_weights,
)

HOP = 320


@pytest.fixture(scope="module")
def codec() -> Codec:
    torch.manual_seed(0)
    c = Codec(codec_tiny())
    c.train()
    with torch.no_grad():  # one training forward initialises the codebooks from data
        c(0.1 * torch.randn(2, 1, 8 * HOP))
    return c.eval()


def _speechlike(t: int, seed: int = 0, batch: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = torch.arange(t) / 16000.0
    f0 = 120 + 40 * torch.rand(batch, 1, 1, generator=g)
    x = sum(torch.sin(2 * np.pi * k * f0 * n) / k for k in range(1, 8))
    env = 0.5 + 0.5 * torch.sin(2 * np.pi * 3 * n)
    return (0.1 * x * env + 0.01 * torch.randn(batch, 1, t, generator=g)).float()


@pytest.mark.parametrize("bitrate", [1.5, 3.0, 6.0, 12.0])
def test_shapes_every_bitrate(codec: Codec, bitrate: float) -> None:
    x = _speechlike(16000, batch=2)
    codes = codec.encode(x, bitrate)
    k = codebooks_for_bitrate(bitrate)
    assert codes.shape == (2, k, 50) and codes.dtype == torch.int64
    assert int(codes.min()) >= 0 and int(codes.max()) < codec.cfg.codebook_size
    y = codec.decode(codes)
    assert y.shape == (2, 1, 16000) and y.dtype == torch.float32
    assert torch.isfinite(y).all()


def test_length_not_multiple_of_hop_is_padded(codec: Codec) -> None:
    codes = codec.encode(_speechlike(16100), 3.0)
    assert codes.shape == (1, 6, 51)
    assert codec.decode(codes).shape == (1, 1, 51 * HOP)


def test_lower_bitrates_are_prefixes(codec: Codec) -> None:
    x = _speechlike(8000, seed=1)
    full = codec.encode(x, 12.0)
    for br in (1.5, 3.0, 6.0):
        k = codebooks_for_bitrate(br)
        assert torch.equal(codec.encode(x, br), full[:, :k])


def test_encoder_causal_prefix(codec: Codec) -> None:
    x = _speechlike(20 * HOP, seed=2)
    full = codec.encode(x, 12.0)
    for f in (1, 7, 13):
        assert torch.equal(codec.encode(x[..., : f * HOP], 12.0), full[..., :f])


def test_decoder_causal_prefix(codec: Codec) -> None:
    codes = codec.encode(_speechlike(20 * HOP, seed=3), 6.0)
    full = codec.decode(codes)
    la = codec.lookahead_samples
    for f in (2, 9):
        part = codec.decode(codes[..., :f])
        # Everything but the last ``lookahead`` samples (still missing later windows) is final.
        torch.testing.assert_close(part[..., : f * HOP - la], full[..., : f * HOP - la],
                                   atol=1e-6, rtol=0)


def test_future_input_does_not_change_past_output(codec: Codec) -> None:
    x = _speechlike(16 * HOP, seed=4)
    x2 = x.clone()
    x2[..., 10 * HOP:] += 0.3 * torch.randn(1, 1, 6 * HOP)
    y, y2 = codec.decode(codec.encode(x, 12.0)), codec.decode(codec.encode(x2, 12.0))
    safe = 10 * HOP - codec.lookahead_samples
    assert torch.equal(y[..., :safe], y2[..., :safe])


@pytest.mark.parametrize("chunks", [[1] * 12, [2, 3, 1, 4, 2], [12]])
def test_streaming_equals_offline(codec: Codec, chunks: list[int]) -> None:
    x = _speechlike(12 * HOP, seed=5, batch=2)
    offline_codes = codec.encode(x, 6.0)
    offline_wav = codec.decode(offline_codes)
    es, ds = codec.init_encoder_state(2), codec.init_decoder_state(2)
    codes, wav, pos = [], [], 0
    for n in chunks:
        c, es = codec.encode_step(x[..., pos * HOP:(pos + n) * HOP], es, 6.0)
        y, ds = codec.decode_step(c, ds)
        codes.append(c)
        wav.append(y)
        pos += n
    assert torch.equal(torch.cat(codes, -1), offline_codes)
    la = codec.lookahead_samples
    stream = torch.cat(wav + [codec.decode_flush(ds)], -1)
    assert torch.equal(stream[..., :la], torch.zeros_like(stream[..., :la]))
    torch.testing.assert_close(stream[..., la:], offline_wav, atol=1e-6, rtol=1e-5)


def test_state_snapshot_is_independent(codec: Codec) -> None:
    x = _speechlike(4 * HOP, seed=6)
    es = codec.init_encoder_state(1)
    _, es = codec.encode_step(x[..., : 2 * HOP], es, 3.0)
    snap = es.snapshot()
    a, _ = codec.encode_step(x[..., 2 * HOP:], es, 3.0)
    b, _ = codec.encode_step(x[..., 2 * HOP:], snap, 3.0)
    assert torch.equal(a, b)


def test_latency_is_documented(codec: Codec) -> None:
    assert codec.algorithmic_latency_ms == pytest.approx(35.0)


@pytest.mark.parametrize(
    "bad",
    [torch.zeros(1, 1, 0), torch.full((1, 1, 640), float("nan")),
     torch.tensor([[[0.0, float("inf")] * 320]]), torch.zeros(1, 640), torch.zeros(1, 2, 640)],
    ids=["empty", "nan", "inf", "2d", "stereo"],
)
def test_bad_audio_raises(codec: Codec, bad: torch.Tensor) -> None:
    with pytest.raises(ConfigError):
        codec.encode(bad, 6.0)


@pytest.mark.parametrize("dtype", [torch.int64, torch.float64], ids=["int", "float64"])
def test_audio_of_another_dtype_is_a_type_error(codec: Codec, dtype: torch.dtype) -> None:
    """The one PCM rule (``audio.check_pcm``): float32 only, a wrong dtype is a TypeError."""
    with pytest.raises(TypeError, match="wav must be float32"):
        codec.encode(torch.zeros(1, 1, 640, dtype=dtype), 6.0)


@pytest.mark.parametrize("bitrate", [0.0, 1.25, 12.5, -3])
def test_bad_bitrate_raises(codec: Codec, bitrate: float) -> None:
    with pytest.raises(ConfigError, match="bitrate"):
        codec.encode(torch.zeros(1, 1, 640), bitrate)


def test_bad_codes_raise(codec: Codec) -> None:
    v = codec.cfg.codebook_size
    for bad in (torch.zeros(1, 3, 5, dtype=torch.int32), torch.full((1, 3, 5), v),
                torch.full((1, 3, 5), -1), torch.zeros(1, 25, 5, dtype=torch.int64),
                torch.zeros(3, 5, dtype=torch.int64)):
        with pytest.raises(ConfigError, match="codes"):
            codec.decode(bad)
    with pytest.raises(TypeError):
        codec.decode(np.zeros((1, 3, 5), np.int64))  # type: ignore[arg-type]


def test_encode_step_needs_whole_frames(codec: Codec) -> None:
    with pytest.raises(ConfigError, match="multiple of 320"):
        codec.encode_step(torch.zeros(1, 1, 100), codec.init_encoder_state(1), 6.0)


def test_weights_round_trip_and_integrity(codec: Codec, tmp_path) -> None:
    path = save_codec_weights(codec, tmp_path / "w.pt", meta={"step": 1})
    blob = torch.load(path, weights_only=True)  # plain dict, no pickled classes
    assert blob["format"] == "soundspring-codec" and blob["version"] == 1
    assert all(t.dtype == torch.float16 for t in blob["state_dict"].values()
               if t.is_floating_point())
    loaded = load_codec(path)
    assert not loaded.training and loaded.meta == {"step": 1}
    x = _speechlike(6 * HOP, seed=7)
    ref = Codec(codec.cfg)
    ref.load_state_dict({k: v.half().float() for k, v in codec.state_dict().items()})
    ref.eval()
    assert torch.equal(loaded.encode(x, 12.0), ref.encode(x, 12.0))
    blob["state_dict"]["decoder.head.bias"] += 1
    torch.save(blob, tmp_path / "bad.pt")
    with pytest.raises(ModelMismatchError, match="sha256"):
        codec_from_weights(tmp_path / "bad.pt")
    with pytest.raises(ConfigError, match="not found"):
        load_codec(tmp_path / "missing.pt")


def test_shipped_weights_load_offline() -> None:
    if not DEFAULT_CODEC_WEIGHTS.exists():
        pytest.skip(f"shipped weights {DEFAULT_CODEC_WEIGHTS} absent in this checkout")
    assert DEFAULT_CODEC_WEIGHTS.stat().st_size <= 30 * 2**20
    import soundspring

    codec = soundspring.load_codec()  # the lazily resolved package-level API
    assert not codec.training and "step" in codec.meta
    assert codec.n_codebooks == 24 and codec.cfg.codebook_size == 1024
    codes = codec.encode(_speechlike(16000), 6.0)
    assert codes.shape == (1, 12, 50)
    assert codec.decode(codes).shape == (1, 1, 16000)


def test_training_forward_backward_and_dropout() -> None:
    torch.manual_seed(1)
    c = Codec(codec_tiny()).train()
    x = _speechlike(4 * HOP, batch=4)
    y, q = c(x)
    loss = (y - x).abs().mean() + q.commit_loss
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in c.encoder.parameters())
    assert q.codes.shape == (4, 24, 4) and q.perplexity.shape == (24,)
    n_q = c.quantizer.sample_n_q(2000, torch.Generator().manual_seed(0))
    assert int(n_q.min()) >= 1 and int(n_q.max()) <= 24
    assert set(range(1, 25)) >= set(n_q.tolist()) >= {3, 6, 12, 24}


def test_train_smoke_and_resume(tmp_path) -> None:
    import soundfile as sf
    from soundspring.config import train_smoke
    from soundspring.training.trainer import Trainer

    rows = []
    for i in range(6):
        rel = f"wav/en/clip{i}.wav"
        (tmp_path / "wav/en").mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / rel, _speechlike(24000, seed=i)[0, 0].numpy(), 16000)
        rows.append({"path": rel, "language": "en", "duration_s": 1.5,
                     "split": "heldout" if i < 2 else "train"})
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = tmp_path / "run"
    out = Trainer(run, codec_tiny(), train_smoke(), manifest=manifest, progress=False).run()
    assert out["step"] == 3 and (run / "checkpoint.pt").exists()
    assert (run / "codec_latest.pt").exists() and (run / "eval.jsonl").exists()
    cfg = train_smoke().__class__(**{**train_smoke().__dict__, "max_steps": 5})
    t2 = Trainer(run, codec_tiny(), cfg, manifest=manifest, progress=False)
    assert t2.resumed and t2.step == 3
    assert t2.run()["step"] == 5
    assert load_codec(run).n_codebooks == 24
    # --init-from: a new run starting from shipped-format weights alone.
    from soundspring.cli import main

    assert main(["train", "export", "--run-dir", str(run), "--out", str(tmp_path / "w.pt")]) == 0
    t3 = Trainer(tmp_path / "run2", codec_tiny(), train_smoke(), manifest=manifest,
                 init_from=str(tmp_path / "w.pt"), progress=False)
    assert not t3.resumed and t3.run()["step"] == 3
    # --freeze-tokenizer: the decoder learns, the tokens (encoder + quantizer) stay put.
    from soundspring.models.weights_io import (
        codec_content_hash,
        codec_from_weights,
        codec_tokenizer_hash,
    )

    before = codec_from_weights(tmp_path / "w.pt")
    frozen = dataclasses.replace(train_smoke(), freeze_tokenizer=True)
    with pytest.raises(ConfigError, match="init-from"):
        Trainer(tmp_path / "run3", codec_tiny(), frozen, manifest=manifest, progress=False)
    assert main(["train", "codec", "--run-dir", str(tmp_path / "run4"), "--preset", "smoke",
                 "--codec-preset", "tiny", "--manifest", str(manifest), "--init-from",
                 str(tmp_path / "w.pt"), "--freeze-tokenizer", "--no-progress",
                 "--perturb", "0.8", "1.25", "--extra-train-manifest", str(manifest)]) == 0
    after = codec_from_weights(tmp_path / "run4" / "codec_latest.pt")
    assert codec_tokenizer_hash(after) == codec_tokenizer_hash(before)
    assert codec_content_hash(after) != codec_content_hash(before)
    run4 = json.loads((tmp_path / "run4" / "config.json").read_text())
    assert run4["train"]["speed_range"] == [0.8, 1.25] and run4["train"]["perturb_prob"] == 0.5
    assert run4["extra_train_manifests"] == [str(manifest)]
    t4 = Trainer(tmp_path / "run4", codec_tiny(), frozen, manifest=manifest, progress=False)
    assert t4.resumed and len(t4.sampler.wavs) == 8  # resumed without the flag: same data
    # soundspring eval codec on the same synthetic corpus.
    out_json = tmp_path / "eval.json"
    assert main(["eval", "codec", "--weights", str(tmp_path / "w.pt"), "--manifest",
                 str(manifest), "--bitrates", "1.5", "12", "--max-clips", "2", "--no-opus",
                 "--no-rtf", "--json", str(out_json)]) == 0
    res = json.loads(out_json.read_text())
    assert set(res["codec"]) == {"1.5", "12"} and res["clips"] == 2
    assert set(res["codec"]["12"]) >= {"pesq_wb", "stoi", "si_sdr_db", "log_mel_dist"}


def test_codebook_norm_cache_follows_codebook_changes(codec: Codec) -> None:
    import copy

    c = copy.deepcopy(codec)
    x = _speechlike(4 * HOP, seed=7)
    before = c.encode(x, 12.0)
    with torch.no_grad():
        c.quantizer.codebooks[:, ::2] *= -1.5  # in place: the cached norms must not be reused
    fresh = copy.deepcopy(c)  # a new module has no cache
    fresh.quantizer.__dict__.pop("_norm_cache", None)
    after = c.encode(x, 12.0)
    assert torch.equal(after, fresh.encode(x, 12.0)) and not torch.equal(after, before)


def test_speed_perturbation_moves_pitch_and_keeps_crop_length() -> None:
    from soundspring.training.dataset import CropSampler, perturb_factors

    assert perturb_factors((0.8, 1.25)) == [16, 17, 18, 19, 21, 22, 23, 24, 25]
    assert perturb_factors((1.0, 1.0)) == []
    t = np.arange(3 * 16000) / 16000
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    plain = CropSampler([tone], 16000, seed=0).batch(4)
    assert plain.shape == (4, 1, 16000)
    peaks = {int(np.argmax(np.abs(np.fft.rfft(x[0] * np.hanning(16000))))) for x in plain}
    assert peaks == {1000}  # 1 Hz bins: untouched crops keep the tone
    moved = CropSampler([tone], 16000, seed=0, speed_range=(0.8, 1.25), perturb_prob=1.0)
    for x in moved.batch(8):
        peak = int(np.argmax(np.abs(np.fft.rfft(x[0] * np.hanning(16000)))))
        assert peak != 1000 and any(abs(peak - 50 * n) <= 1 for n in range(16, 26))
        assert abs(float(np.abs(x[0]).max()) - 1.0) < 0.05  # no edge transients or fades
    with pytest.raises(ConfigError, match="perturb_prob"):
        CropSampler([tone], 16000, perturb_prob=1.5)
    with pytest.raises(ConfigError, match="speed perturbation"):
        CropSampler([tone], 16000, speed_range=(0.3, 1.0), perturb_prob=0.5)


def test_train_sampler_adds_the_train_split_of_extra_manifests(tmp_path) -> None:
    from soundspring.audio import write_wav
    from soundspring.training.dataset import train_sampler

    for name, split, n in (("a", "train", 16000), ("b", "heldout", 8000), ("c", "train", 4800)):
        d = tmp_path / name
        write_wav(d / "x.wav", np.full(n, 0.1, np.float32))
        (d / "manifest.jsonl").write_text(json.dumps(
            {"path": "x.wav", "language": "en", "duration_s": n / 16000, "split": split}) + "\n")
    sampler, minutes = train_sampler(tmp_path / "a" / "manifest.jsonl", 0.2, (0.0, 0.0), 0,
                                     extra_manifests=(tmp_path / "b" / "manifest.jsonl",
                                                      tmp_path / "c" / "manifest.jsonl"))
    assert len(sampler.wavs) == 2 and minutes == pytest.approx((16000 + 4800) / 16000 / 60)


def test_augmentation_level_band_and_noise() -> None:
    from soundspring.config import (
        Augmentation,
        TrainConfig,
        augmentation_real_mics,
        from_json,
        to_json,
    )
    from soundspring.training.dataset import CropSampler

    cfg = TrainConfig(augment=augmentation_real_mics())
    assert from_json(TrainConfig, to_json(cfg)) == cfg  # the nested config round-trips
    rng = np.random.default_rng(0)
    speech = (0.05 * rng.standard_normal(4 * 16000)).astype(np.float32)
    level = CropSampler([speech], 16000, seed=1, augment=Augmentation(
        level_dbfs_range=(-40.0, -10.0))).batch(32)[:, 0]
    db = 20 * np.log10(np.sqrt(np.mean(level.astype(np.float64) ** 2, axis=1)))
    assert db.min() >= -40.01 and db.max() <= -9.99 and db.max() - db.min() > 15
    assert np.abs(level).max() <= 0.99 + 1e-6
    band = CropSampler([speech], 16000, seed=1, augment=Augmentation(
        bandlimit_prob=1.0, lowpass_hz_range=(3000.0, 3000.0))).batch(4)[:, 0]
    spec = np.abs(np.fft.rfft(band, axis=1)) ** 2  # 1 Hz bins
    assert spec[:, 5000:].sum() < 1e-4 * spec[:, 500:2500].sum()  # 8th order: -70 dB+
    tone = np.sin(2 * np.pi * 440 * np.arange(2 * 16000) / 16000).astype(np.float32)
    noisy = CropSampler([tone], 16000, seed=2, augment=Augmentation(
        noise_prob=1.0, noise_snr_db_range=(10.0, 10.0))).batch(4)[:, 0]
    w = 2 * np.pi * 440 * np.arange(16000) / 16000
    basis = np.stack([np.sin(w), np.cos(w)], axis=1)  # the tone at any crop phase
    fit = basis @ np.linalg.lstsq(basis, noisy.T.astype(np.float64), rcond=None)[0]
    snr = 10 * np.log10(np.mean(fit ** 2, axis=0) / np.mean((noisy.T - fit) ** 2, axis=0))
    assert np.all(np.abs(snr - 10.0) < 0.5), snr  # the level scales both alike
    with pytest.raises(ConfigError, match="noise_prob"):
        Augmentation(noise_prob=2.0)
    with pytest.raises(ConfigError, match="level_dbfs_range"):
        Augmentation(level_dbfs_range=(-10.0, 5.0))
