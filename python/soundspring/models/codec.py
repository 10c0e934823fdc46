"""The streaming neural speech codec: ``Codec`` and its streaming states (its weights files
and loader: ``models.weights_io``).

Shapes (glossary): B batch, T samples at 16 kHz, F frames (50 Hz), K codebooks, D latent.

Example:
    >>> import torch, soundspring
    >>> codec = soundspring.load_codec()                       # shipped weights, offline
    >>> codes = codec.encode(torch.zeros(1, 1, 16000), 6)      # [1, 12, 50] int64
    >>> wav = codec.decode(codes)                              # [1, 1, 16000]
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch
from torch import nn

from ..audio import check_pcm
from ..config import (
    SAMPLE_RATE_HZ,
    CodecConfig,
    codebooks_for_bitrate,
    codec_default,
)
from ..errors import ConfigError
from .rvq import ResidualVQ, RVQOutput
from .seanet import SEANetEncoder
from .vocos import VocosDecoder


@dataclasses.dataclass
class EncoderState:
    """Streaming encoder state: fixed-size conv histories (one list per encoder stage)."""

    convs: list[list[torch.Tensor]]
    frames: int = 0

    def snapshot(self) -> EncoderState:
        return copy.deepcopy(self)


@dataclasses.dataclass
class DecoderState:
    """Streaming decoder state: conv histories plus the overlap-add tail [B, lookahead]."""

    convs: list[torch.Tensor]
    frames: int = 0

    def snapshot(self) -> DecoderState:
        return copy.deepcopy(self)


class Codec(nn.Module):
    """Causal streaming codec: wav [B, 1, T] <-> codes int64 [B, K, F], F = ceil(T / 320)."""

    def __init__(self, cfg: CodecConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or codec_default()
        self.hop = self.cfg.hop_samples
        self.encoder = SEANetEncoder(self.cfg)
        self.quantizer = ResidualVQ(self.cfg)
        self.decoder = VocosDecoder(self.cfg)

    # ---- properties --------------------------------------------------------------------
    @property
    def sample_rate_hz(self) -> int:
        return self.cfg.sample_rate_hz

    @property
    def n_codebooks(self) -> int:
        return self.cfg.n_codebooks

    @property
    def lookahead_samples(self) -> int:
        """Decoder overlap-add lookahead: the samples of a frame still missing later windows."""
        return self.decoder.ola.lookahead

    @property
    def algorithmic_latency_ms(self) -> float:
        """Input-to-output algorithmic latency of the codec alone, in ms.

        The encoder needs a whole frame (hop, 20 ms) before it emits its code, and the
        decoder's iSTFT overlap-add finishes a sample only once the next ``N - H`` samples'
        windows have arrived (lookahead, 15 ms with N = 320, H = 80): 35 ms by default.
        Packet chunking and LM lookahead add on top (DESIGN.md section 2).
        """
        return 1000.0 * (self.hop + self.lookahead_samples) / self.sample_rate_hz

    def num_parameters(self) -> int:
        """Trainable parameters (the EMA codebooks are buffers, counted separately)."""
        return sum(p.numel() for p in self.parameters())

    # ---- validation at the boundary ------------------------------------------------------
    def _check_wav(self, wav: torch.Tensor | np.ndarray, name: str = "wav") -> torch.Tensor:
        wav = check_pcm(wav, name, batched=True, tensors=True)
        return torch.from_numpy(wav) if isinstance(wav, np.ndarray) else wav

    def _check_codes(self, codes: torch.Tensor) -> torch.Tensor:
        if not isinstance(codes, torch.Tensor):
            raise TypeError("codes must be a torch.Tensor int64 [B, K, F]")
        if codes.dtype != torch.int64 or codes.dim() != 3:
            raise ConfigError(
                f"codes must be int64 [B, K, F] with values in [0, {self.cfg.codebook_size}), "
                f"got {codes.dtype} {tuple(codes.shape)}"
            )
        if not 1 <= codes.shape[1] <= self.n_codebooks or codes.shape[0] == 0:
            raise ConfigError(f"codes must have 1..{self.n_codebooks} codebooks and B >= 1, got "
                              f"{tuple(codes.shape)}")
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.cfg.codebook_size):
            raise ConfigError(f"codes values must lie in [0, {self.cfg.codebook_size})")
        return codes

    def _n_q(self, bitrate_kbps: float) -> int:
        n_q = codebooks_for_bitrate(bitrate_kbps)
        if n_q > self.n_codebooks:
            raise ConfigError(f"bitrate {bitrate_kbps} kbps needs {n_q} codebooks; this model "
                              f"has {self.n_codebooks}")
        return n_q

    def _pad(self, wav: torch.Tensor) -> torch.Tensor:
        rem = (-wav.shape[-1]) % self.hop
        return torch.nn.functional.pad(wav, (0, rem)) if rem else wav

    # ---- offline -------------------------------------------------------------------------
    @torch.inference_mode()
    def encode(self, wav: torch.Tensor, bitrate_kbps: float = 6.0) -> torch.Tensor:
        """Encodes audio to RVQ codes.

        Args:
            wav: float32 [B, 1, T] at 16 kHz (resample other rates with
                ``soundspring.audio.resample``); T is zero-padded to a multiple of 320.
            bitrate_kbps: raw bitrate, 0.5 kbps per codebook (1.5 / 3 / 6 / 12).

        Returns:
            int64 [B, K, F] codes in [0, V), K = bitrate_kbps / 0.5, F = ceil(T / 320).

        Raises:
            ConfigError: empty, non-finite or wrongly shaped audio; unsupported bitrate.
        """
        n_q = self._n_q(bitrate_kbps)
        wav = self._pad(self._check_wav(wav))
        return self.quantizer.encode(self.encoder(wav), n_q)

    @torch.inference_mode()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Decodes codes int64 [B, K, F] (any K <= 24) to audio float32 [B, 1, F * 320]
        (F = 0 gives an empty [B, 1, 0]).

        Raises:
            ConfigError: codes of the wrong dtype, shape or range.
        """
        codes = self._check_codes(codes)
        if codes.shape[-1] == 0:  # F = 0: no frames, no samples (the convs need >= 1 frame)
            return torch.zeros(codes.shape[0], 1, 0, dtype=torch.float32, device=codes.device)
        return self.decoder(self.quantizer.decode(codes))

    def forward(self, wav: torch.Tensor,
                n_q: torch.Tensor | None = None) -> tuple[torch.Tensor, RVQOutput]:
        """Training forward: wav [B, 1, T] (T a multiple of 320) -> (reconstruction, RVQ out)."""
        q = self.quantizer(self.encoder(wav), n_q)
        return self.decoder(q.quantized), q

    # ---- streaming -----------------------------------------------------------------------
    def init_encoder_state(self, batch: int = 1) -> EncoderState:
        return EncoderState(self.encoder.init_state(batch))

    def init_decoder_state(self, batch: int = 1) -> DecoderState:
        return DecoderState(self.decoder.init_state(batch))

    @torch.inference_mode()
    def encode_step(self, wav: torch.Tensor, state: EncoderState,
                    bitrate_kbps: float = 6.0) -> tuple[torch.Tensor, EncoderState]:
        """Streams whole frames: wav [B, 1, n * 320] -> (codes [B, K, n], new state).

        Concatenated outputs equal ``encode`` of the concatenated input.
        """
        n_q = self._n_q(bitrate_kbps)
        z, state = self.encode_latent_step(wav, state)
        return self.quantizer.encode(z, n_q), state

    @torch.inference_mode()
    def encode_latent_step(self, wav: torch.Tensor,
                           state: EncoderState) -> tuple[torch.Tensor, EncoderState]:
        """``encode_step`` before quantisation: wav [B, 1, n * 320] -> (latents float32
        [B, D, n], new state), for a caller that picks the codes itself (e.g. with a
        rate term: ``ResidualVQ.nearest_rd``)."""
        wav = self._check_wav(wav)
        if wav.shape[-1] % self.hop:
            raise ConfigError(f"encode_step needs a multiple of {self.hop} samples, got "
                              f"{wav.shape[-1]}")
        z, convs = self.encoder.step(wav, state.convs)
        return z, EncoderState(convs, state.frames + z.shape[-1])

    @torch.inference_mode()
    def decode_step(self, codes: torch.Tensor,
                    state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        """Streams frames: codes [B, K, n] -> (wav [B, 1, n * 320], new state).

        The output is the offline ``decode`` output delayed by ``lookahead_samples``
        (the first ``lookahead_samples`` of a stream are zeros); ``decode_flush`` returns
        the remaining partial tail.
        """
        codes = self._check_codes(codes)
        return self.decode_latent_step(self.quantizer.decode(codes), state)

    @torch.inference_mode()
    def decode_latent_step(self, latents: torch.Tensor,
                           state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        """``decode_step`` from quantised latents float32 [B, D, n] (e.g. the expected
        latents of concealed frames) instead of codes."""
        d = self.quantizer.dim
        if latents.ndim != 3 or latents.shape[1] != d or not latents.is_floating_point():
            raise ConfigError(f"latents must be float [B, {d}, n], got {latents.dtype} "
                              f"{tuple(latents.shape)}")
        if latents.shape[-1] == 0:  # n = 0 frames: nothing to emit, the state is unchanged
            return torch.zeros(latents.shape[0], 1, 0, dtype=torch.float32,
                               device=latents.device), state
        y, convs = self.decoder.step(latents, state.convs, at_start=state.frames == 0)
        return y, DecoderState(convs, state.frames + latents.shape[-1])

    def decode_flush(self, state: DecoderState) -> torch.Tensor:
        """The unfinished last ``lookahead_samples`` samples [B, 1, lookahead] of a stream."""
        return state.convs[-1].unsqueeze(1).clone()


__all__ = ["SAMPLE_RATE_HZ", "Codec", "DecoderState", "EncoderState"]
