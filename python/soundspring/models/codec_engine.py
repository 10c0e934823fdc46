"""The codec's streaming steps on the C++ engine: ``CodecEngine`` wraps a ``Codec``.

``CodecEngine`` has the streaming interface of ``codec.Codec`` (``init_encoder_state``,
``encode_step``, ``encode_latent_step``, ``init_decoder_state``, ``decode_step``,
``decode_latent_step``, ``decode_flush``), so ``transceiver.Transmitter`` / ``Receiver`` take
either. Its encoder and decoder steps run ``soundspring._core.codec`` (csrc/core/
codec_engine.h): the whole SEANet encoder step and the whole Vocos decoder step (its
inverse FFT included) in C++ on the SpringLM engine's kernels, with no per-layer Python or
torch dispatch. The latents agree with the PyTorch streaming path to float rounding (about
1e-6 relative) and are the same bits on every instruction set. The RVQ token search stays
``quantizer`` (itself C++: ``_core.rvq``).

Everything else (offline ``encode`` / ``decode``, ``quantizer``, ``cfg``, ``meta``,
``state_dict``, training) is the wrapped PyTorch ``Codec``, the training and reference
path, reachable as ``reference``; other attributes are looked up there.

States are advanced in place by each step and returned (take ``snapshot()`` to keep one);
the engine steps one stream (batch 1).

Example:
    >>> import numpy as np, torch
    >>> from soundspring.models.codec import Codec
    >>> from soundspring.config import codec_tiny
    >>> engine = CodecEngine(Codec(codec_tiny()))
    >>> st = engine.init_encoder_state()
    >>> z, st = engine.encode_latent_step(torch.zeros(1, 1, 640), st)
    >>> tuple(z.shape), st.frames
    ((1, 16, 2), 2)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from .._native import core
from ..audio import check_pcm
from ..errors import ConfigError, ModelMismatchError
from .lm_engine import resolve_isa


@dataclasses.dataclass
class _EngineState:
    """One stream's state on the engine (``native``: a ``_core.codec`` state object)."""

    native: Any

    @property
    def frames(self) -> int:
        return int(self.native.frames)

    def snapshot(self):
        return type(self)(self.native.copy())


class EngineEncoderState(_EngineState):
    """An encoder stream's state (``native``: ``_core.codec.EncoderState``)."""


class EngineDecoderState(_EngineState):
    """A decoder stream's state (``native``: ``_core.codec.DecoderState``)."""


def _inference_tensors(codec: Any) -> dict[str, np.ndarray]:
    return {name: t.detach().to("cpu", torch.float32).numpy()
            for name, t in codec.state_dict().items()
            if name.startswith(("encoder.", "decoder.")) and t.is_floating_point()}


class CodecEngine:
    """A ``Codec`` whose streaming steps run on the C++ engine.

    Args:
        codec: the PyTorch ``Codec`` (its current weights are packed once, here; later
            changes to it are not seen: build a new engine).
        isa: kernel level, as for ``lm_engine.SpringLMEngine`` (None reads
            ``SOUNDSPRING_ENGINE_ISA``, else ``auto``); every level gives the same bits.

    Raises:
        ConfigError: ``isa`` unknown or not runnable here.
        ModelMismatchError: the codec's tensors do not fit its config.
    """

    def __init__(self, codec: Any, *, isa: str | None = None) -> None:
        isa = resolve_isa(isa)
        self.reference = codec
        shape = dataclasses.asdict(codec.cfg)
        tensors = _inference_tensors(codec)
        try:
            self._enc = core.codec.Encoder(shape, tensors, isa)
            self._dec = core.codec.Decoder(shape, tensors, isa)
        except ConfigError as exc:
            if "codec weights" in str(exc):
                raise ModelMismatchError(f"codec weights do not fit the config: {exc}") from exc
            raise
        self._dim = int(self._enc.latent_dim)
        self._codebooks = codec.quantizer.codebooks.detach().to("cpu", torch.float32).numpy().copy()
        self._levels = np.arange(self._codebooks.shape[0])[:, None]  # [K, 1] gather rows

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes this instance and class lack: the reference's (none
        # before __init__ has set it, e.g. while unpickling).
        reference = self.__dict__.get("reference")
        if reference is None:
            raise AttributeError(name)
        return getattr(reference, name)

    @property
    def isa(self) -> str:
        return str(self._enc.isa)

    @property
    def half_weights(self) -> bool:
        """Whether the matrices are held as binary16 (exact: the shipped fp16 weights)."""
        return bool(self._enc.half_weights and self._dec.half_weights)

    @property
    def weight_storage(self) -> str:
        """How the matrices are held, as ``lm_engine.SpringLMEngine.weight_storage``:
        ``int8`` (every column exactly q 2^e, ``block_float.round_engine_weights``),
        ``binary16`` or ``float32``; ``"<encoder>/<decoder>"`` when the two differ. The
        same bits either way."""
        enc, dec = str(self._enc.weight_storage), str(self._dec.weight_storage)
        return enc if enc == dec else f"{enc}/{dec}"

    # ---- encoder ---------------------------------------------------------------------------
    def init_encoder_state(self, batch: int = 1) -> EngineEncoderState:
        _one_stream(batch)
        return EngineEncoderState(self._enc.new_state())

    def encode_latent_step(self, wav: torch.Tensor | np.ndarray,
                           state: EngineEncoderState) -> tuple[torch.Tensor, EngineEncoderState]:
        """wav [1, 1, n * 320] (or [n * 320]) float32 -> (latents float32 [1, D, n], state
        advanced in place)."""
        pcm = _pcm(wav)
        _check_state(state, EngineEncoderState)
        z = self._enc.step(state.native, pcm)  # [n, D]
        return torch.from_numpy(np.ascontiguousarray(z.T))[None], state

    def encode_latent_frames(self, pcm: np.ndarray, state: EngineEncoderState) -> np.ndarray:
        """``encode_latent_step`` for a caller whose audio is already one stream's checked
        float32 [n * 320] C-contiguous numpy samples (``audio.check_pcm``: the
        transmitter's chunks): the latents float32 [n, D] frame-major, the search's layout,
        with no torch (state advanced in place)."""
        _check_state(state, EngineEncoderState)
        return self._enc.step(state.native, pcm)

    def encode_step(self, wav: torch.Tensor | np.ndarray, state: EngineEncoderState,
                    bitrate_kbps: float = 6.0) -> tuple[torch.Tensor, EngineEncoderState]:
        """wav [1, 1, n * 320] -> (codes int64 [1, K, n], state advanced in place)."""
        n_q = self.reference._n_q(bitrate_kbps)
        z, state = self.encode_latent_step(wav, state)
        with torch.inference_mode():
            return self.reference.quantizer.encode(z, n_q), state

    # ---- decoder ---------------------------------------------------------------------------
    def init_decoder_state(self, batch: int = 1) -> EngineDecoderState:
        _one_stream(batch)
        return EngineDecoderState(self._dec.new_state())

    def decode_step(self, codes: torch.Tensor,
                    state: EngineDecoderState) -> tuple[torch.Tensor, EngineDecoderState]:
        """codes int64 [1, K, n] -> (wav float32 [1, 1, n * 320], state advanced in place),
        the offline decode delayed by ``lookahead_samples``."""
        codes = self.reference._check_codes(codes)
        _one_stream(codes.shape[0])
        _check_state(state, EngineDecoderState)
        if codes.shape[-1] == 0:
            return torch.zeros(1, 1, 0), state
        # The quantizer's decode (sum of the levels' codewords in level order, from the
        # first) in numpy: the same float32 additions in the same order, without torch
        # (numpy reduces the outer axis row after row, in order).
        wav = self.decode_tokens(np.ascontiguousarray(codes[0].numpy()), state)
        return torch.from_numpy(wav).view(1, 1, -1), state

    def decode_tokens(self, codes: np.ndarray, state: EngineDecoderState) -> np.ndarray:
        """``decode_step`` on numpy, with no torch: codes int64 [K, n] of one stream ->
        wav float32 [n * 320] (state advanced in place), the same samples.

        Raises:
            ConfigError: codes not int64 [K <= n_codebooks, n] with values in [0, V).
        """
        _check_state(state, EngineDecoderState)
        k_max, v = self._codebooks.shape[:2]
        if (not isinstance(codes, np.ndarray) or codes.dtype != np.int64 or codes.ndim != 2
                or not 1 <= codes.shape[0] <= k_max
                or (codes.size and (codes.min() < 0 or codes.max() >= v))):
            raise ConfigError(f"codes must be int64 [K <= {k_max}, n] with values in "
                              f"[0, {v}), got {getattr(codes, 'dtype', type(codes).__name__)} "
                              f"{getattr(codes, 'shape', ())}")
        if codes.shape[1] == 0:
            return np.zeros(0, dtype=np.float32)
        lat = self._codebooks[self._levels[: codes.shape[0]], codes].sum(axis=0, dtype=np.float32)
        return self._dec.step(state.native, lat)

    def decode_latent_step(self, latents: torch.Tensor,
                           state: EngineDecoderState) -> tuple[torch.Tensor, EngineDecoderState]:
        """latents float [1, D, n] -> (wav float32 [1, 1, n * 320], state advanced in place)."""
        if (not isinstance(latents, torch.Tensor) or latents.ndim != 3
                or latents.shape[0] != 1 or latents.shape[1] != self._dim
                or not latents.is_floating_point()):
            raise ConfigError(f"latents must be float [1, {self._dim}, n], got "
                              f"{getattr(latents, 'dtype', type(latents).__name__)} "
                              f"{tuple(getattr(latents, 'shape', ()))}")
        _check_state(state, EngineDecoderState)
        if latents.shape[-1] == 0:
            return torch.zeros(1, 1, 0), state
        lat = np.ascontiguousarray(latents[0].detach().to("cpu", torch.float32).numpy().T)
        wav = self._dec.step(state.native, lat)
        return torch.from_numpy(wav).view(1, 1, -1), state

    def decode_flush(self, state: EngineDecoderState) -> torch.Tensor:
        """The unfinished last ``lookahead_samples`` samples [1, 1, lookahead]."""
        _check_state(state, EngineDecoderState)
        return torch.from_numpy(self._dec.flush(state.native)).view(1, 1, -1)


def _one_stream(batch: int) -> None:
    if batch != 1:
        raise ConfigError(f"the codec engine steps one stream (batch 1), got batch {batch}; "
                          "use the PyTorch Codec (CodecEngine.reference) for batches")


def _check_state(state: Any, kind: type) -> None:
    if not isinstance(state, kind):
        raise ConfigError(f"state must be a {kind.__name__} of this engine, got "
                          f"{type(state).__name__}")


def _pcm(wav: torch.Tensor | np.ndarray) -> np.ndarray:
    """float32 [T] C-contiguous from one stream's [1, 1, T] or [T] audio (``check_pcm``)."""
    pcm = check_pcm(wav, "wav", tensors=True)
    return np.ascontiguousarray(pcm.detach().to("cpu").numpy() if isinstance(pcm, torch.Tensor)
                                else pcm)


__all__ = ["CodecEngine", "EngineDecoderState", "EngineEncoderState"]
