"""Whole signals through both ends: ``transmit`` a signal into packets, ``receive`` (or
``receive_blocks``, streaming) packets back into audio."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .._validate import int_in
from ..audio import check_pcm
from ..config import SAMPLE_RATE_HZ, TransceiverConfig
from ..entropy import CodingModel
from ._endpoint import DEFAULT_HISTORY_CHUNKS
from .receiver import Receiver
from .transmitter import SentPacket, Transmitter


def transmit(
    codec, model: CodingModel, pcm: np.ndarray, cfg: TransceiverConfig, progress: bool = False
) -> tuple[list[SentPacket], Transmitter]:
    """Encodes a whole signal float32 [T] into packets (chunk by chunk, as a stream)."""
    from tqdm import tqdm

    pcm = check_pcm(pcm, "pcm")
    tx = Transmitter(codec, model, cfg, history_chunks=None)  # every chunk's tokens
    step = cfg.chunk_samples * 25
    packets: list[SentPacket] = []
    for start in tqdm(
        range(0, len(pcm), step),
        desc="transmit",
        unit="s",
        disable=not progress,
        unit_scale=step / SAMPLE_RATE_HZ,
    ):
        packets += tx.push(pcm[start : start + step])
    packets += tx.flush()
    return packets, tx


def receive_blocks(
    codec,
    model: CodingModel,
    cfg: TransceiverConfig,
    packets,
    n_chunks: int,
    n_samples: int,
    progress: bool = False,
    keep_history: bool = False,
) -> tuple[Receiver, Iterator[np.ndarray]]:
    """Decodes received packets as a stream: (the receiver, an iterator of float32 audio
    blocks that add up to exactly ``n_samples``, aligned with the transmitter's input).

    The same decoding as ``receive``, one chunk at a time, so a caller can write the audio
    as it comes (``soundspring decode`` does): the memory held is the packets plus one
    chunk of audio, however long the stream. ``packets``: SentPacket-like objects with
    seq, chunk and data. Chunks whose base never arrived are concealed; the codec's
    lookahead delay is removed. The receiver's stats and history are final once the
    iterator is exhausted.
    """
    n_chunks = int_in("n_chunks", n_chunks, 0, 1 << 40)
    n_samples = int_in("n_samples", n_samples, 0, 1 << 40)
    rx = Receiver(codec, model, cfg, keep_history=keep_history,
                  history_chunks=None if keep_history else DEFAULT_HISTORY_CHUNKS)
    by_chunk: dict[int, list] = {}
    for p in packets:
        by_chunk.setdefault(p.chunk, []).append(p)

    def blocks() -> Iterator[np.ndarray]:
        from tqdm import tqdm

        skip = codec.lookahead_samples  # the codec's delay: its first samples precede the input
        left = n_samples

        def trim(pcm: np.ndarray) -> np.ndarray:
            nonlocal skip, left
            cut = min(skip, len(pcm))
            pcm, skip = pcm[cut:], skip - cut
            pcm = pcm[:left]
            left -= len(pcm)
            return pcm

        for c in tqdm(range(n_chunks), desc="receive", unit="chunk", disable=not progress):
            # Deliver chunk c and the next one before decoding c: concealment may then
            # interpolate from the following chunk's base (a 1-chunk jitter buffer).
            for cc in (c, c + 1) if c == 0 else (c + 1,):
                for p in by_chunk.pop(cc, []):
                    rx.push(p.data, p.seq, p.chunk)
            rx.decode_until(c + 1)
            pcm = trim(rx.pull(rx.buffered_samples))
            if len(pcm):
                yield pcm
        pcm = trim(rx.flush())
        if len(pcm):
            yield pcm
        if left:  # the stream ended before n_samples: silence, as a decoder of nothing
            yield np.zeros(left, dtype=np.float32)

    return rx, blocks()


def receive(
    codec,
    model: CodingModel,
    cfg: TransceiverConfig,
    packets,
    n_chunks: int,
    n_samples: int,
    progress: bool = False,
    keep_history: bool = False,
) -> tuple[np.ndarray, Receiver]:
    """Decodes received packets (an iterable of SentPacket-like objects with seq, chunk and
    data) into float32 [n_samples] audio aligned with the transmitter's input.

    Chunks whose base never arrived are concealed. The codec's lookahead delay is removed.
    Linear in ``n_chunks``: the audio is written into one preallocated array as it is
    decoded (``receive_blocks`` streams it instead). ``keep_history``: the receiver keeps
    every chunk's outcome (``rx.history``).
    """
    rx, blocks = receive_blocks(codec, model, cfg, packets, n_chunks, n_samples, progress,
                                keep_history)
    out = np.empty(n_samples, dtype=np.float32)
    pos = 0
    for block in blocks:
        out[pos:pos + len(block)] = block
        pos += len(block)
    return out, rx
