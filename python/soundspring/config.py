"""Operating points and component configurations: the one source of truth for constants.

Every constant of DESIGN.md section 2 lives here once. Components take a small frozen
dataclass (validated in ``__post_init__``, JSON round-trippable) or plain keyword
arguments; released settings are named preset functions, not files.
"""

from __future__ import annotations

import dataclasses
import json
from functools import cached_property, lru_cache
from typing import Any, ClassVar, TypeVar

import numpy as np

from ._validate import finite_float, int_in
from .errors import ConfigError

SAMPLE_RATE_HZ = 16_000
"""Audio sample rate of every model; other rates are resampled at the audio boundary."""

FRAME_SAMPLES = 320
"""Codec hop: 20 ms at 16 kHz, 50 frames per second."""

FRAME_MS = 1000 * FRAME_SAMPLES // SAMPLE_RATE_HZ
FRAMES_PER_SECOND = SAMPLE_RATE_HZ // FRAME_SAMPLES

CODEBOOK_SIZE = 1024
"""Entries per RVQ codebook (V): 10 bits per raw token."""

MAX_CODEBOOKS = 24
"""RVQ depth K of the shipped codec."""

BITS_PER_TOKEN = 10
RAW_BPS_PER_CODEBOOK = BITS_PER_TOKEN * FRAMES_PER_SECOND  # 500 bps

BITRATES_KBPS = (1.5, 3.0, 6.0, 12.0)
"""Operating points (raw token bitrate): 3 / 6 / 12 / 24 codebooks."""

BASE_CODEBOOKS = 3
"""Codebooks 0..2 form the base layer (1.5 kbps raw)."""

LAYER_BOUNDS = (0, 3, 6, 12, 24)
"""Codebook ranges of the layers: base [0, 3), fine groups [3, 6), [6, 12), [12, 24)."""

DEFAULT_CHUNK_FRAMES = 2
"""Packet interval: 40 ms (2 frames) by default; 1-5 frames (20-100 ms) allowed."""

MAX_CHUNK_FRAMES = 5

DEFAULT_CODER_PRECISION_BITS = 16
PRECISION_BITS_RANGE = (10, 16)
"""Range-coder CDF precision accepted (V = 1024 needs 10 bits; the coder stops at 16)."""
CHECK_BITS_RANGE = (0, 16)
"""Width of one integrity check, in bits (0 = no check)."""
MAX_CONTEXT_FRAMES = 50
"""Longest entropy-context reach R (and concealment context), in frames."""


def codebooks_for_bitrate(bitrate_kbps: float) -> int:
    """Number of RVQ codebooks K used at a raw bitrate.

    Args:
        bitrate_kbps: one of ``BITRATES_KBPS`` (any multiple of 0.5 kbps up to 12 works).

    Returns:
        K such that K * 500 bps == bitrate.

    Raises:
        ConfigError: the bitrate is not a positive multiple of 0.5 kbps up to 12 kbps.

    Example:
        >>> codebooks_for_bitrate(6)
        12
    """
    k = float(bitrate_kbps) * 1000.0 / RAW_BPS_PER_CODEBOOK
    if not (k == int(k) and 1 <= k <= MAX_CODEBOOKS):
        raise ConfigError(
            f"bitrate_kbps must be a multiple of {RAW_BPS_PER_CODEBOOK / 1000} kbps in "
            f"[{RAW_BPS_PER_CODEBOOK / 1000}, {MAX_CODEBOOKS * RAW_BPS_PER_CODEBOOK / 1000}], "
            f"got {bitrate_kbps!r}"
        )
    return int(k)


def layers_for_codebooks(n_codebooks: int) -> int:
    """Number of layers (base + fine groups) that carry ``n_codebooks`` codebooks."""
    for i, hi in enumerate(LAYER_BOUNDS[1:], start=1):
        if n_codebooks <= hi:
            return i
    raise ConfigError(f"n_codebooks must be in [1, {MAX_CODEBOOKS}], got {n_codebooks}")


_C = TypeVar("_C")


def to_json(cfg: Any) -> str:
    """Serialises a config dataclass to a JSON string (sorted keys)."""
    return json.dumps(dataclasses.asdict(cfg), sort_keys=True)


def from_json(cls: type[_C], text: str | dict) -> _C:
    """Builds config dataclass ``cls`` from JSON text or a dict; unknown keys are refused.

    A class's ``LEGACY_FIELDS`` ({old name: new name, or None for a retired field}) lets
    the configs that older run directories and checkpoints recorded still load.
    """
    data = json.loads(text) if isinstance(text, str) else dict(text)
    for old, new in getattr(cls, "LEGACY_FIELDS", {}).items():
        if old in data:
            value = data.pop(old)
            if new is not None:
                data.setdefault(new, value)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in data and isinstance(data[f.name], list):
            data[f.name] = tuple(data[f.name])
        elif (f.name in data and isinstance(data[f.name], dict)
              and dataclasses.is_dataclass(f.default)):  # a nested config
            data[f.name] = from_json(type(f.default), data[f.name])
    return cls(**data)


# --------------------------------------------------------------------------------------
# Codec and codec-training configurations (DESIGN.md section 3).
# --------------------------------------------------------------------------------------


def _prod(xs: tuple[int, ...]) -> int:
    out = 1
    for x in xs:
        out *= int(x)
    return out


@dataclasses.dataclass(frozen=True)
class CodecConfig:
    """Shape of the streaming codec: SEANet encoder, EMA residual VQ, Vocos-style decoder.

    The encoder strides multiply to the hop (320 samples = one 20 ms frame). The decoder
    runs ConvNeXt blocks at the frame rate and predicts ``hop / istft_hop_samples``
    short-time spectra per frame, which an inverse FFT with a causal overlap-add turns into
    audio; the overlap ``istft_n_fft - istft_hop_samples`` samples is lookahead that adds
    to the algorithmic latency (see ``Codec.algorithmic_latency_ms``).

    RVQ codebooks follow EMA k-means updates (``ema_decay``); a code whose EMA assignment
    count per step falls under ``dead_code_threshold`` is restarted from a batch residual.
    The count is absolute: at batch 8 x 1 s (400 vectors, V=1024) the mean is 0.39, so 0.15
    restarts codes used under ~40% of the average (scale it with the batch size).
    Quantizer dropout draws the codebooks the decoder sees per item from
    ``dropout_codebooks``, or uniformly in [1, K] with ``random_codebooks_prob``.
    """

    sample_rate_hz: int = SAMPLE_RATE_HZ
    enc_channels: int = 32
    enc_strides: tuple[int, ...] = (2, 4, 5, 8)
    enc_max_channels: int = 256
    enc_res_dilations: tuple[int, ...] = (1,)
    latent_dim: int = 128
    n_codebooks: int = MAX_CODEBOOKS
    codebook_size: int = CODEBOOK_SIZE
    dec_dim: int = 192
    dec_intermediate: int = 576
    dec_layers: int = 8
    dec_kernel: int = 7
    istft_hop_samples: int = 80
    istft_n_fft: int = 320
    ema_decay: float = 0.99
    dead_code_threshold: float = 0.15
    dropout_codebooks: tuple[int, ...] = (3, 6, 12, 24)
    random_codebooks_prob: float = 0.25

    def __post_init__(self) -> None:
        if self.sample_rate_hz != SAMPLE_RATE_HZ:
            raise ConfigError(f"sample_rate_hz must be {SAMPLE_RATE_HZ}, got {self.sample_rate_hz}")
        if _prod(self.enc_strides) != FRAME_SAMPLES:
            raise ConfigError(
                f"enc_strides must multiply to the hop {FRAME_SAMPLES}, got {self.enc_strides}"
            )
        if not 1 <= self.n_codebooks <= 64 or self.codebook_size < 2:
            raise ConfigError(f"bad RVQ shape K={self.n_codebooks} V={self.codebook_size}")
        if FRAME_SAMPLES % self.istft_hop_samples:
            raise ConfigError("istft_hop_samples must divide the hop (320)")
        if self.istft_n_fft % self.istft_hop_samples or self.istft_n_fft < self.istft_hop_samples:
            raise ConfigError("istft_n_fft must be a multiple of istft_hop_samples")
        if self.istft_n_fft % 2:
            raise ConfigError("istft_n_fft must be even")
        if any(not 1 <= k <= self.n_codebooks for k in self.dropout_codebooks):
            raise ConfigError(f"dropout_codebooks must lie in [1, {self.n_codebooks}]")
        if not 0.0 <= self.random_codebooks_prob <= 1.0 or not 0.0 < self.ema_decay < 1.0:
            raise ConfigError("random_codebooks_prob must be in [0, 1] and ema_decay in (0, 1)")

    @property
    def hop_samples(self) -> int:
        return _prod(self.enc_strides)


def _range_in(name: str, r: tuple[float, float], lo: float, hi: float) -> None:
    if not (len(r) == 2 and lo <= r[0] <= r[1] <= hi):
        raise ConfigError(f"{name} must be (min, max) with {lo} <= min <= max <= {hi}, got {r}")


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """What real microphones do to speech, applied to training crops (in this order, each
    crop independently; ``training.dataset.CropSampler``).

    ``bandlimit_prob`` of the crops pass a band: a high-pass at a corner drawn from
    ``highpass_hz_range`` and an 8th-order low-pass at one from ``lowpass_hz_range``
    (telephone-band to wide-band microphones). ``noise_prob`` get noise (white, pink or
    brown, equally likely) at an SNR drawn from ``noise_snr_db_range``. With
    ``level_dbfs_range`` set, every crop's RMS is set to a level drawn from it (dBFS) and
    then scaled down if its peak would pass ``max_peak``; otherwise TrainConfig's
    ``gain_db_range`` applies.
    """

    level_dbfs_range: tuple[float, float] | None = None
    max_peak: float = 0.99
    noise_prob: float = 0.0
    noise_snr_db_range: tuple[float, float] = (15.0, 40.0)
    bandlimit_prob: float = 0.0
    lowpass_hz_range: tuple[float, float] = (3400.0, 7500.0)
    highpass_hz_range: tuple[float, float] = (50.0, 300.0)

    def __post_init__(self) -> None:
        if self.level_dbfs_range is not None:
            _range_in("level_dbfs_range", self.level_dbfs_range, -80.0, 0.0)
        if not 0.0 < self.max_peak <= 1.0:
            raise ConfigError(f"max_peak must be in (0, 1], got {self.max_peak}")
        for name in ("noise_prob", "bandlimit_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        _range_in("noise_snr_db_range", self.noise_snr_db_range, -10.0, 100.0)
        nyquist = SAMPLE_RATE_HZ / 2
        _range_in("lowpass_hz_range", self.lowpass_hz_range, 100.0, nyquist * 0.98)
        _range_in("highpass_hz_range", self.highpass_hz_range, 1.0, self.lowpass_hz_range[0] / 2)


def augmentation_real_mics() -> Augmentation:
    """Level over 40 dB (-45 to -5 dBFS RMS, i.e. +-20 dB around -25), a third of the crops
    band-limited, a quarter with noise at 15-40 dB SNR."""
    return Augmentation(level_dbfs_range=(-45.0, -5.0), noise_prob=0.25, bandlimit_prob=0.33)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Codec training hyperparameters (CPU-sized by default; see ``train_cpu_long``).

    ``freeze_tokenizer`` trains the decoder alone (encoder and quantizer frozen, no EMA
    updates): the tokens, and so a SpringLM trained on them, stay valid.
    ``perturb_prob`` of the crops are played faster by a factor drawn from ``speed_range``
    (pitch and formants shift together; see ``training.dataset.CropSampler``); ``augment``
    adds level, band and noise changes (``Augmentation``).
    """

    LEGACY_FIELDS: ClassVar[dict[str, str | None]] = {"adversarial": None}
    """Fields older checkpoints recorded (read by ``from_json``): ``adversarial`` was never
    implemented (it could only be False)."""

    batch_size: int = 8
    crop_s: float = 1.0
    lr: float = 5e-4
    betas: tuple[float, float] = (0.8, 0.99)
    weight_decay: float = 1e-4
    warmup_steps: int = 500
    lr_decay_steps: int = 400_000
    min_lr_ratio: float = 0.1
    grad_clip: float = 5.0
    w_mel: float = 1.0
    w_stft: float = 1.0
    w_l1: float = 0.1
    w_commit: float = 0.25
    freeze_tokenizer: bool = False
    gain_db_range: tuple[float, float] = (-9.0, 0.0)
    speed_range: tuple[float, float] = (1.0, 1.0)
    perturb_prob: float = 0.0
    augment: Augmentation = Augmentation()
    log_every_steps: int = 25
    checkpoint_every_min: float = 5.0
    eval_every_min: float = 30.0
    eval_clips: int = 16
    eval_bitrates_kbps: tuple[float, ...] = BITRATES_KBPS
    max_steps: int = 0
    max_hours: float = 0.0
    threads: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.crop_s <= 0 or self.lr <= 0:
            raise ConfigError("batch_size, crop_s and lr must be positive")
        if self.crop_s * SAMPLE_RATE_HZ % FRAME_SAMPLES:
            raise ConfigError(f"crop_s must be a whole number of {FRAME_MS} ms frames")
        if not 0.0 <= self.perturb_prob <= 1.0:
            raise ConfigError(f"perturb_prob must be in [0, 1], got {self.perturb_prob}")
        if not 0.5 <= self.speed_range[0] <= self.speed_range[1] <= 2.0:
            raise ConfigError(f"speed_range must lie in [0.5, 2], got {self.speed_range}")
        for b in self.eval_bitrates_kbps:
            codebooks_for_bitrate(b)


def codec_default() -> CodecConfig:
    """The shipped codec: 3.84 M trainable parameters (+ 3.1 M codebook entries),
    K=24 x V=1024, D=128, 35 ms algorithmic latency."""
    return CodecConfig()


def codec_tiny() -> CodecConfig:
    """A tiny codec for tests (same strides and latency, few channels and codes)."""
    return CodecConfig(
        enc_channels=4, enc_max_channels=16, latent_dim=8, n_codebooks=24, codebook_size=16,
        dec_dim=16, dec_intermediate=32, dec_layers=2,
    )


def train_cpu_long() -> TrainConfig:
    """The long resumable CPU run: batch 8 x 1 s, checkpoint every 5 min, eval every 30."""
    return TrainConfig()


def train_smoke() -> TrainConfig:
    """A seconds-long smoke run (tests and CLI checks)."""
    return TrainConfig(batch_size=2, log_every_steps=1, checkpoint_every_min=0.0,
                       eval_every_min=0.0, eval_clips=2, max_steps=3, warmup_steps=1)


CODEC_PRESETS = {"default": codec_default, "tiny": codec_tiny}
TRAIN_PRESETS = {"cpu_long": train_cpu_long, "smoke": train_smoke}


# ---- SpringLM ---------------------------------------------------------------------------

MASK = CODEBOOK_SIZE
"""Token id of an unknown token that the model predicts."""

MASK_UPPER = CODEBOOK_SIZE + 1
"""Token id of a level above the bitrate or not yet revealed."""

DEFAULT_RD_LAMBDA = 0.5
"""Default rate-distortion weight of the transmitter's token choice (latent squared error
per bit; ``TransceiverConfig.rd_lambda``), for the shipped codec's latent scale.
Measured with ``soundspring eval rd`` on 40 held-out clips (lossless transmission, every
packet byte; ``reports/rd``): at 12 kbps the packets drop from 11.69 to 10.01 kbps (saving
against raw tokens 2.6 % -> 16.6 %) while PESQ-WB moves 2.649 -> 2.643 and STOI
0.954 -> 0.953; at 6 kbps 6.12 -> 5.86 kbps at unchanged PESQ-WB (2.626 -> 2.627).
0.3 saves 15.0 % at 12 kbps, 1.0 saves 18.7 % at -0.022 PESQ-WB."""

DEFAULT_CONCEAL = "repeat"
"""Default receiver concealment (``plc.CONCEAL_MODES``). Measured on 80 speaker-disjoint
clips at 6 kbps with the shipped models and the same loss masks (``reports/conceal``),
PESQ-WB of LM concealment ``lm`` / ``lm_greedy`` / ``blend`` / ``repeat``: Bernoulli 10 %
1.565 / 1.532 / 1.685 / 1.669, 20 % 1.374 / 1.341 / 1.461 / 1.434, WLAN 1.521 / 1.504 /
1.574 / 1.599; PLCMOS v2 ranks repeat first in all three. On voices no model heard the LM
predicts the lost base worse than repeating the last frame does (top-1 0.077 vs 0.153), and
its latent carries the base levels only, so the default repeats; ``lm`` stays selectable
(on the five training speakers it was ahead, ``reports/conceal`` of earlier versions)."""

CODING_BACKENDS = ("engine", "torch")
"""Where SpringLM runs as the transceiver's coding model: ``engine`` (the deterministic C++
engine, the default at both ends) or ``torch`` (the PyTorch training / reference path)."""
DEFAULT_CODING_BACKEND = "engine"

DEFAULT_CONTEXT_FRAMES = 0
"""Default entropy-context reach R: fine PMFs see the chunk's own base only. Any R in
[0, max_context_frames] works; measured with the shipped LM (``soundspring eval lm``, 256
held-out windows), past base tokens buy 0.4% of the fine bits (R = 2: 9.236 bits/token,
R = 15: 9.230, R = 0: 9.273) while every lost packet makes the next R // C chunks' fine
levels undecodable, so the default reaches nowhere (DESIGN.md proposed 15)."""



@dataclasses.dataclass(frozen=True)
class SpringLMConfig:
    """Shape of SpringLM. ``SpringLMConfig()`` is the shipped size (``springlm_default``).

    Attributes:
        n_codebooks: K_max, levels the model knows (24).
        codebook_size: V (1024); the embeddings have V + 2 rows per level.
        base_codebooks: levels of the base layer (3): the only levels of the memory view.
        dim: D, transformer width.
        n_layers: L, pre-LN transformer blocks.
        n_heads: H; ``dim`` must be a multiple of it.
        ffn_mult: FFN hidden width = ffn_mult * D.
        max_context_frames: largest entropy-context reach R (frames) the model supports.
        max_rel_distance: frame distances are clipped to [-M, M] for the position bias;
            must cover ``max_context_frames + MAX_CHUNK_FRAMES``.
        dropout: residual dropout while training (0 at inference).
        tie_embeddings: output heads reuse the first V rows of each level's embedding.
    """

    n_codebooks: int = MAX_CODEBOOKS
    codebook_size: int = CODEBOOK_SIZE
    base_codebooks: int = BASE_CODEBOOKS
    dim: int = 192
    n_layers: int = 4
    n_heads: int = 4
    ffn_mult: int = 4
    max_context_frames: int = 50
    max_rel_distance: int = 64
    dropout: float = 0.1
    tie_embeddings: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.base_codebooks <= self.n_codebooks <= 64:
            raise ConfigError("need 1 <= base_codebooks <= n_codebooks <= 64, got "
                              f"{self.base_codebooks}, {self.n_codebooks}")
        if self.codebook_size < 2:
            raise ConfigError(f"codebook_size must be >= 2, got {self.codebook_size}")
        if self.dim < 1 or self.n_heads < 1 or self.dim % self.n_heads:
            raise ConfigError(f"dim ({self.dim}) must be a positive multiple of n_heads "
                              f"({self.n_heads})")
        if self.n_layers < 1 or self.ffn_mult < 1:
            raise ConfigError("n_layers and ffn_mult must be >= 1")
        if self.max_context_frames < 0:
            raise ConfigError("max_context_frames must be >= 0")
        if self.max_rel_distance < self.max_context_frames + MAX_CHUNK_FRAMES:
            raise ConfigError(f"max_rel_distance must be >= max_context_frames + "
                              f"{MAX_CHUNK_FRAMES}, got {self.max_rel_distance}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")


def springlm_default() -> SpringLMConfig:
    """The shipped size: D=192, L=4, H=4, FFN 768, tied heads (about 6.6 M parameters, most
    of them the 24 x 1026 x D embeddings): trainable on CPU, real time on one thread. The
    same as ``SpringLMConfig()``."""
    return SpringLMConfig()


def springlm_large() -> SpringLMConfig:
    """D=256, L=6, H=4, FFN 1024 (about 11 M parameters): for GPU training; about 1.5x
    the shipped size's CPU inference time."""
    return SpringLMConfig(dim=256, n_layers=6)


def springlm_tiny() -> SpringLMConfig:
    """A tiny model for tests and smoke runs: D=64, L=2, H=2."""
    return SpringLMConfig(dim=64, n_layers=2, n_heads=2, ffn_mult=2, dropout=0.0)


SPRINGLM_PRESETS = {"default": springlm_default, "large": springlm_large,
                    "tiny": springlm_tiny}


@dataclasses.dataclass(frozen=True)
class LMTrainConfig:
    """SpringLM training hyperparameters (``soundspring train lm``).

    ``coding_levels`` are the bitrates of the entropy loss, as codebook counts K (6 / 12 /
    24 levels: 3 / 6 / 12 kbps), one drawn per batch.
    """

    LEGACY_FIELDS: ClassVar[dict[str, str | None]] = {"coding_bitrates": "coding_levels"}
    """Names older run directories wrote (read by ``from_json``)."""


    batch_size: int = 16
    crop_frames: int = 60
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 0.01
    warmup_steps: int = 500
    lr_decay_steps: int = 200_000
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    w_conceal: float = 1.0
    w_entropy: float = 1.0
    coding_levels: tuple[int, ...] = (6, 12, 24)
    chunk_frames_choices: tuple[int, ...] = (1, 2, 2, 2, 3, 4, 5)
    progressive_prob: float = 0.5
    max_mask_ratio: float = 0.8
    burst_prob: float = 0.5
    log_every_steps: int = 25
    checkpoint_every_min: float = 5.0
    eval_every_min: float = 15.0
    eval_windows: int = 64
    eval_frames: int = 60
    max_steps: int = 0
    max_hours: float = 0.0
    threads: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.crop_frames < 10 or self.lr <= 0:
            raise ConfigError("batch_size >= 1, crop_frames >= 10 and lr > 0 required")
        if any(k not in (6, 12, 24) for k in self.coding_levels) or not self.coding_levels:
            raise ConfigError("coding_levels must be drawn from (6, 12, 24) codebooks")
        if any(not 1 <= c <= 5 for c in self.chunk_frames_choices):
            raise ConfigError("chunk_frames_choices must lie in [1, 5]")
        if not 0 < self.max_mask_ratio <= 1 or not 0 <= self.burst_prob <= 1:
            raise ConfigError("max_mask_ratio in (0, 1] and burst_prob in [0, 1] required")
        if self.eval_frames % 2:
            raise ConfigError("eval_frames must be even (chunks of 2 frames)")


def lm_train_default() -> LMTrainConfig:
    """The shipped LM's training settings."""
    return LMTrainConfig()


def lm_train_smoke() -> LMTrainConfig:
    """A minutes-long pipeline check (tiny model, a few hundred steps)."""
    return LMTrainConfig(batch_size=8, warmup_steps=50, log_every_steps=25, max_steps=300,
                         checkpoint_every_min=2.0, eval_every_min=0.0, eval_windows=32,
                         lr=2e-3, threads=1)


LM_TRAIN_PRESETS = {"default": lm_train_default, "smoke": lm_train_smoke}


# ---- Speech data (DESIGN.md section 8) ---------------------------------------------------

TUXPAINT_HELDOUT_LANGUAGES = ("be", "bg", "el")
"""Tux Paint languages held out whole: the speaker-disjoint evaluation set (split
``"heldout"`` of ``data.tuxpaint``, ``tuxpaint.heldout_manifest``); every other Tux Paint
language is training data. Fixed before any training on Tux Paint; never change it after.

Measured by ``soundspring data prepare`` (package 2022.06.04-1, deduplicated by decoded
samples, trimmed at -35 dB, clips >= 0.5 s): Belarusian 621 clips / 14.52 min, Bulgarian
722 / 17.21 min, Greek 547 / 15.33 min: 1,890 clips, 47.06 min, against 4,171 clips,
103.86 min of Tux Paint training speech. Why these three of the nine large languages: none
is an Asterisk language (en es fr it ru), so both the voices and the languages are unseen
in training; each has one credited voice (Kseniya Buraya, Krasimir Petkov, Kiriaki
Serafeim: by their names two women and one man); together they come to about 50 minutes;
and Romanian, the largest Tux Paint language (25.65 min), stays for training."""


# ---- the transceiver's shared settings ------------------------------------------------------

CONCEAL_MODES = ("lm", "lm_greedy", "blend", "repeat", "zero")
"""Receiver concealment modes (``soundspring.plc`` says what each does)."""


@dataclasses.dataclass(frozen=True)
class LayerLayout:
    """Levels per layer for ``n_codebooks`` codebooks: base [0, 3), then the fine groups.

    Example:
        >>> LayerLayout.for_bitrate(6).layers
        ((0, 3), (3, 6), (6, 12))
    """

    n_codebooks: int

    @classmethod
    def for_bitrate(cls, bitrate_kbps: float) -> LayerLayout:
        return _layout_for_codebooks(codebooks_for_bitrate(bitrate_kbps))

    @cached_property
    def n_layers(self) -> int:
        return layers_for_codebooks(self.n_codebooks)

    @cached_property
    def layers(self) -> tuple[tuple[int, int], ...]:
        """(first level, end level) of each layer, clipped to ``n_codebooks``."""
        return tuple(
            (LAYER_BOUNDS[i], min(LAYER_BOUNDS[i + 1], self.n_codebooks))
            for i in range(self.n_layers)
        )

    @property
    def base_levels(self) -> int:
        return min(BASE_CODEBOOKS, self.n_codebooks)


@lru_cache(maxsize=64)
def _layout_for_codebooks(n_codebooks: int) -> LayerLayout:
    """One shared (immutable) layout per codebook count: the per-chunk paths ask often."""
    return LayerLayout(n_codebooks)


@dataclasses.dataclass(frozen=True)
class TransceiverConfig:
    """Settings both ends must share (recorded in the .spring header).

    Attributes:
        bitrate_kbps: raw token bitrate: 1.5 / 3 / 6 / 12.
        chunk_frames: C, frames per packet interval (1..5; 20..100 ms).
        context_frames: entropy-context reach R in frames (0..model max; below C: fine
            PMFs depend on the chunk's own base only, so a lost packet taints nothing).
        progressive: fine group g coded given the lower fine groups of its chunk.
        check_bits: bits of each integrity check, 0..16 (combined: one check per chunk,
            plus one after the base when ``context_frames >= chunk_frames`` or at the
            base-only bitrate; layered: one per packet). A corrupted payload passes with
            probability about 2^-check_bits; 0 disables integrity (corruption may play).
        precision_bits: range-coder CDF precision (10..16).
        layered: one packet per layer instead of one packet per chunk. Costs a TOC byte
            and a check per extra packet; only worth it where the network treats the
            base packet better than the fine ones.
        fec: carry a copy of the previous chunk's base payload in each base packet.
        conceal: receiver concealment, one of ``plc.CONCEAL_MODES`` (receiver only;
            default ``config.DEFAULT_CONCEAL``; see ``soundspring.plc``).
        conceal_context_frames: past frames the concealment window shows the model.
        rd_lambda: transmitter only (no header field: receivers need not know it):
            rate-distortion quantisation. Each token is the codeword minimising the
            latent squared error plus ``rd_lambda`` times the bits it would cost under
            the PMF the coder will use (static for the base, the LM's for fine levels,
            given the levels already chosen); 0 = the nearest codeword, as
            ``codec.encode`` picks it. Units: latent squared error per bit; the default
            (``config.DEFAULT_RD_LAMBDA``) saves 16.6 % at 12 kbps for -0.006 PESQ-WB.
    """

    bitrate_kbps: float = 6.0
    chunk_frames: int = DEFAULT_CHUNK_FRAMES
    context_frames: int = DEFAULT_CONTEXT_FRAMES
    progressive: bool = False
    check_bits: int = 8
    precision_bits: int = 16
    fec: bool = False
    layered: bool = False
    conceal: str = DEFAULT_CONCEAL
    conceal_context_frames: int = 15
    rd_lambda: float = DEFAULT_RD_LAMBDA

    def __post_init__(self) -> None:
        finite_float("bitrate_kbps", self.bitrate_kbps, "a number")
        LayerLayout.for_bitrate(self.bitrate_kbps)  # validates the bitrate
        int_in("chunk_frames", self.chunk_frames, 1, MAX_CHUNK_FRAMES)
        int_in("context_frames", self.context_frames, 0, MAX_CONTEXT_FRAMES)
        int_in("check_bits", self.check_bits, *CHECK_BITS_RANGE)
        int_in("precision_bits", self.precision_bits, *PRECISION_BITS_RANGE)
        int_in("conceal_context_frames", self.conceal_context_frames, 0, MAX_CONTEXT_FRAMES)
        for name in ("progressive", "fec", "layered"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ConfigError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if self.conceal not in CONCEAL_MODES:
            raise ConfigError(f"conceal must be one of {CONCEAL_MODES}, got {self.conceal!r}")
        if finite_float("rd_lambda", self.rd_lambda, "finite and >= 0") < 0:
            raise ConfigError(f"rd_lambda must be finite and >= 0, got {self.rd_lambda!r}")

    @property
    def layout(self) -> LayerLayout:
        return LayerLayout.for_bitrate(self.bitrate_kbps)

    @property
    def raw_bitrate_bps(self) -> float:
        """Bitrate of the raw tokens (10 bits each) at this operating point."""
        return float(self.layout.n_codebooks * RAW_BPS_PER_CODEBOOK)

    @property
    def packets_per_chunk(self) -> int:
        return self.layout.n_layers if self.layered else 1

    @property
    def chunk_samples(self) -> int:
        return self.chunk_frames * FRAME_SAMPLES

    @property
    def reach_chunks(self) -> int:
        """Whole past chunks in the model memory: the chunks a fine packet depends on
        besides its own (the memory holds the last R // C chunks, at most R frames)."""
        return self.context_frames // self.chunk_frames

    @property
    def combined_base_check(self) -> bool:
        """Whether a combined payload carries a check after its base prefix: when the
        entropy context reaches past chunks, a receiver whose memory is tainted must
        still be able to verify the base alone (docs/bitstream.md, "Token payloads")."""
        return self.reach_chunks > 0
