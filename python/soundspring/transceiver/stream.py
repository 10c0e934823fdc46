"""The ``.spring`` stream header: the JSON object at the start of a ``.spring`` file
(docs/bitstream.md, "Container" / "Stream header JSON"), in one place.

- ``stream_header(codec, model, cfg, n_samples)``: the header a writer records.
- ``parse_stream_header(header)``: validates every field (type and range) of a header read
  back, raising BitstreamError naming the field, what was expected and what was found;
  returns a ``StreamHeader``. Unknown extra keys are ignored (later writers may add keys
  that older readers need not understand).
- ``config_from_header(header, conceal)``: the TransceiverConfig a header records.
- ``plan_decode(cfg, n_samples, record_chunks)``: how much audio the records of a file
  justify, so that a hostile ``n_samples`` or record chunk index cannot make a decoder run
  or allocate without bound (``DecodePlan``).
- ``check_models(header, codec, model)``: refuses models other than the writer's
  (ModelMismatchError).
- ``open_stream(source, models, conceal)``: all of the above for one ``.spring`` file: the
  container read back, its header validated, the loaded models checked against it, the
  decode planned; returns a ``SpringStream`` (``.blocks()`` decodes it). The API and
  ``soundspring decode`` both open files through it.

Example:
    >>> h = {"format": "soundspring", "codec_id": "c0de", "model_id": "static-0",
    ...      "sample_rate_hz": 16000, "n_samples": 16000, "bitrate_kbps": 6.0,
    ...      "chunk_frames": 2, "context_frames": 15, "progressive": False,
    ...      "check_bits": 8, "precision_bits": 16, "fec": False, "layered": False}
    >>> parse_stream_header(h).n_chunks
    25
    >>> plan = plan_decode(parse_stream_header(h), 16000, [0, 1, 2, 3, 4000])
    >>> plan.n_chunks, plan.n_samples, plan.dropped_records
    (25, 16000, 1)
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import (
    BITRATES_KBPS,
    CHECK_BITS_RANGE,
    CONCEAL_MODES,
    DEFAULT_CONCEAL,
    FRAME_SAMPLES,
    MAX_CHUNK_FRAMES,
    MAX_CONTEXT_FRAMES,
    PRECISION_BITS_RANGE,
    TransceiverConfig,
)
from ..config import SAMPLE_RATE_HZ as _RATE
from ..errors import BitstreamError, ConfigError, ModelMismatchError
from ..models.weights_io import codec_content_hash
from ..transport import ContainerContents, read_container
from .batch import receive_blocks
from .receiver import Receiver
from .transmitter import SentPacket

if TYPE_CHECKING:
    from ..entropy import CodingModel

FORMAT = "soundspring"
"""Value of the header's ``format`` key."""
MAX_ID_CHARS = 128
"""Longest ``codec_id`` / ``model_id`` accepted (printable ASCII, 1..128 characters)."""
MAX_N_SAMPLES = 24 * 3600 * _RATE
"""Largest ``n_samples`` accepted: 24 h at 16 kHz (1 382 400 000)."""
MAX_GAP_SAMPLES = 10 * _RATE
"""Longest run of missing audio (10 s) that ``plan_decode`` conceals between two records,
or after the last one, before it declares the stream ended."""

_SHOW_CHARS = 60


def _show(value: Any) -> str:
    """A short, ASCII-only rendering of a (hostile) header value for error messages."""
    if isinstance(value, (dict, list)):
        return f"a JSON {'object' if isinstance(value, dict) else 'array'}"
    text = ascii(value)
    return text if len(text) <= _SHOW_CHARS else text[: _SHOW_CHARS - 3] + "..."


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def _fail(name: str, expected: str, value: Any) -> BitstreamError:
    if value is None:
        got = "null"
    elif isinstance(value, bool):
        got = f"a boolean {'true' if value else 'false'}"
    elif isinstance(value, (dict, list)):
        got = _show(value)
    else:
        got = f"{_kind(value)} {_show(value)}"
    return BitstreamError(f"stream header field {name!r} must be {expected}, got {got}")


_MISSING = object()


def _get(header: Mapping[str, Any], name: str, expected: str) -> Any:
    value = header.get(name, _MISSING)
    if value is _MISSING:
        raise BitstreamError(f"stream header lacks the field {name!r} ({expected})")
    return value


def _int_field(header: Mapping[str, Any], name: str, lo: int, hi: int) -> int:
    expected = f"an integer in [{lo}, {hi}]"
    value = _get(header, name, expected)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _fail(name, expected, value)
    return int(value)


def _bool_field(header: Mapping[str, Any], name: str, default: Any = _MISSING) -> bool:
    expected = "a JSON boolean (true or false)"
    value = header.get(name, default)
    if value is _MISSING:
        raise BitstreamError(f"stream header lacks the field {name!r} ({expected})")
    if not isinstance(value, bool):
        raise _fail(name, expected, value)
    return value


def _id_field(header: Mapping[str, Any], name: str) -> str:
    expected = f"a string of 1..{MAX_ID_CHARS} printable ASCII characters"
    value = _get(header, name, expected)
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= MAX_ID_CHARS
        or not all(" " <= ch <= "~" for ch in value)
    ):
        raise _fail(name, expected, value)
    return value


@dataclass(frozen=True)
class StreamHeader:
    """A validated stream header (``parse_stream_header``).

    Attributes:
        codec_id: content hash of the codec that wrote the stream.
        model_id: id of the coding model (SpringLM or static PMFs).
        n_samples: samples of audio the writer encoded (0..MAX_N_SAMPLES).
        bitrate_kbps ... layered: the TransceiverConfig fields both ends share.
        sample_rate_hz: always 16000.
    """

    codec_id: str
    model_id: str
    n_samples: int
    bitrate_kbps: float
    chunk_frames: int
    context_frames: int
    progressive: bool
    check_bits: int
    precision_bits: int
    fec: bool
    layered: bool
    sample_rate_hz: int = _RATE

    @property
    def chunk_samples(self) -> int:
        return self.chunk_frames * FRAME_SAMPLES

    @property
    def n_chunks(self) -> int:
        """Chunks the header announces: ceil(n_samples / chunk_samples)."""
        return -(-self.n_samples // self.chunk_samples)

    def config(self, conceal: str = DEFAULT_CONCEAL) -> TransceiverConfig:
        """The TransceiverConfig of the stream (concealment is the reader's choice).

        Raises:
            ConfigError: ``conceal`` is not a concealment mode.
        """
        return TransceiverConfig(
            bitrate_kbps=self.bitrate_kbps,
            chunk_frames=self.chunk_frames,
            context_frames=self.context_frames,
            progressive=self.progressive,
            check_bits=self.check_bits,
            precision_bits=self.precision_bits,
            fec=self.fec,
            layered=self.layered,
            conceal=conceal,
        )


def stream_header(codec, model: CodingModel, cfg: TransceiverConfig, n_samples: int) -> dict:
    """The .spring JSON header: everything a decoder needs to reproduce the PMFs.

    Raises:
        ConfigError: n_samples is not an int in [0, MAX_N_SAMPLES], or the ids do not
            satisfy ``parse_stream_header`` (the writer never records what readers refuse).
    """


    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)):
        raise ConfigError(f"n_samples must be an int, got {type(n_samples).__name__}")
    if not 0 <= int(n_samples) <= MAX_N_SAMPLES:
        raise ConfigError(
            f"n_samples must be in [0, {MAX_N_SAMPLES}] (24 h at 16 kHz), got {int(n_samples)}"
        )
    header = {
        "format": FORMAT,
        "codec_id": codec_content_hash(codec),
        "model_id": model.model_id,
        "sample_rate_hz": _RATE,
        "n_samples": int(n_samples),
        "bitrate_kbps": cfg.bitrate_kbps,
        "chunk_frames": cfg.chunk_frames,
        "context_frames": cfg.context_frames,
        "progressive": cfg.progressive,
        "check_bits": cfg.check_bits,
        "precision_bits": cfg.precision_bits,
        "fec": cfg.fec,
        "layered": cfg.layered,
    }
    try:
        parse_stream_header(header)
    except BitstreamError as exc:
        raise ConfigError(f"cannot write this stream header: {exc}") from exc
    return header


def parse_stream_header(header: Mapping[str, Any]) -> StreamHeader:
    """Validates a stream header read from a file (every field's type and range).

    Fields (all required unless noted): ``format`` = "soundspring"; ``codec_id``,
    ``model_id``: 1..128 printable ASCII characters; ``sample_rate_hz``: the integer
    16000; ``n_samples``: an integer in [0, MAX_N_SAMPLES]; ``bitrate_kbps``: a number
    equal to one of BITRATES_KBPS; ``chunk_frames``: integer 1..5;
    ``context_frames``: integer 0..50; ``check_bits``: integer 0..16; ``precision_bits``:
    integer 10..16; ``progressive``, ``fec``: booleans; ``layered``: a boolean, optional
    (absent in headers written before the key existed, which describe layered streams).
    Integers must be JSON integers (not 2.0, not true). Other keys are ignored.

    Raises:
        BitstreamError: naming the first invalid field, what it must be and what it is.
    """
    if not isinstance(header, Mapping):
        raise BitstreamError(f"the stream header must be a JSON object, got {_kind(header)}")
    fmt = _get(header, "format", f"the string {FORMAT!r}")
    if fmt != FORMAT or not isinstance(fmt, str):
        raise _fail("format", f"the string {FORMAT!r}", fmt)
    codec = _id_field(header, "codec_id")
    model = _id_field(header, "model_id")
    rate = _get(header, "sample_rate_hz", f"the integer {_RATE}")
    if isinstance(rate, bool) or not isinstance(rate, int) or rate != _RATE:
        raise _fail("sample_rate_hz", f"the integer {_RATE}", rate)
    n_samples = _int_field(header, "n_samples", 0, MAX_N_SAMPLES)
    expected = "one of " + ", ".join(f"{b:g}" for b in BITRATES_KBPS) + " (kbps)"
    bitrate = _get(header, "bitrate_kbps", expected)
    if (
        isinstance(bitrate, bool)
        or not isinstance(bitrate, (int, float))
        or not math.isfinite(bitrate)
        or float(bitrate) not in BITRATES_KBPS
    ):
        raise _fail("bitrate_kbps", expected, bitrate)
    chunk_frames = _int_field(header, "chunk_frames", 1, MAX_CHUNK_FRAMES)
    context_frames = _int_field(header, "context_frames", 0, MAX_CONTEXT_FRAMES)
    progressive = _bool_field(header, "progressive")
    check_bits = _int_field(header, "check_bits", *CHECK_BITS_RANGE)
    precision_bits = _int_field(header, "precision_bits", *PRECISION_BITS_RANGE)
    fec = _bool_field(header, "fec")
    layered = _bool_field(header, "layered", True)  # streams before the key were layered
    return StreamHeader(
        codec_id=codec,
        model_id=model,
        n_samples=n_samples,
        bitrate_kbps=float(bitrate),
        chunk_frames=chunk_frames,
        context_frames=context_frames,
        progressive=progressive,
        check_bits=check_bits,
        precision_bits=precision_bits,
        fec=fec,
        layered=layered,
    )


def config_from_header(header: Mapping[str, Any],
                       conceal: str = DEFAULT_CONCEAL) -> TransceiverConfig:
    """The TransceiverConfig recorded in a .spring header (concealment is the reader's choice).

    Raises:
        BitstreamError: see ``parse_stream_header``; or a setting the transceiver refuses.
        ConfigError: ``conceal`` is not a concealment mode.
    """
    parsed = parse_stream_header(header)
    if conceal not in CONCEAL_MODES:
        raise ConfigError(f"conceal must be one of {CONCEAL_MODES}, got {conceal!r}")
    try:
        return parsed.config(conceal)
    except ConfigError as exc:  # a combination the validated fields still cannot make
        raise BitstreamError(f"the stream header's transceiver setting is invalid: {exc}") from exc


@dataclass(frozen=True)
class DecodePlan:
    """How much of a stream to decode (``plan_decode``).

    Attributes:
        n_chunks: chunks to decode, 0..; records of chunks >= n_chunks are dropped.
        n_samples: samples of output: min(header n_samples, n_chunks * chunk_samples).
        header_n_samples: what the header announced.
        chunk_samples: samples per chunk.
        max_gap_chunks: longest run of missing chunks bridged (MAX_GAP_SAMPLES of audio).
        last_record_chunk: the last chunk reached by a record (-1: none).
        records_kept: records of chunks < n_chunks.
        dropped_records: records beyond the end (unreachable, or past the header's length).
    """

    n_chunks: int
    n_samples: int
    header_n_samples: int
    chunk_samples: int
    max_gap_chunks: int
    last_record_chunk: int
    records_kept: int
    dropped_records: int

    @property
    def truncated(self) -> bool:
        """The output is shorter than the header announced."""
        return self.n_samples < self.header_n_samples

    def keeps(self, chunk: int) -> bool:
        """True iff a record of ``chunk`` is decoded."""
        return 0 <= chunk < self.n_chunks


def plan_decode(
    cfg: Any,
    n_samples: int,
    record_chunks: Iterable[int] | np.ndarray,
    *,
    max_gap_chunks: int | None = None,
) -> DecodePlan:
    """The length of audio that the records of a stream justify (docs/bitstream.md,
    "Decoded length").

    The stream is read from chunk 0: a record is *reachable* if at most ``max_gap_chunks``
    chunks without any record lie between it and chunk 0 or the previous reachable record.
    The decoded stream ends ``max_gap_chunks`` chunks after the last reachable record, or
    at the header's ``n_samples`` if that comes first (a file with no record at all thus
    decodes at most ``max_gap_chunks`` chunks of concealment). Records beyond the end are
    dropped and counted. Work and memory are O(len(record_chunks)), and the output length
    is at most (records + 1) x max_gap_chunks chunks, whatever the header says.

    Args:
        cfg: anything with ``chunk_samples`` (TransceiverConfig, StreamHeader).
        n_samples: the header's n_samples (int >= 0).
        record_chunks: the chunk index of every record (any order, repeats allowed).
        max_gap_chunks: default MAX_GAP_SAMPLES // chunk_samples (250 at 40 ms chunks).

    Raises:
        ConfigError: negative or non-int n_samples / max_gap_chunks, bad chunk_samples.
    """
    chunk_samples = getattr(cfg, "chunk_samples", None)
    if isinstance(chunk_samples, bool) or not isinstance(chunk_samples, int) or chunk_samples < 1:
        raise ConfigError(f"cfg.chunk_samples must be a positive int, got {chunk_samples!r}")
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 0:
        raise ConfigError(f"n_samples must be an int >= 0, got {n_samples!r}")
    n_samples = int(n_samples)
    if max_gap_chunks is None:
        max_gap_chunks = max(1, MAX_GAP_SAMPLES // chunk_samples)
    if (
        isinstance(max_gap_chunks, bool)
        or not isinstance(max_gap_chunks, int)
        or max_gap_chunks < 0
    ):
        raise ConfigError(f"max_gap_chunks must be an int >= 0, got {max_gap_chunks!r}")
    chunks = np.asarray(
        record_chunks if isinstance(record_chunks, np.ndarray) else list(record_chunks),
        dtype=np.int64,
    ).reshape(-1)
    header_chunks = -(-n_samples // chunk_samples)
    present = np.unique(chunks[(chunks >= 0) & (chunks < header_chunks)])
    # present[i] is reachable iff no step from -1, present[0], ..., present[i] skips more
    # than max_gap_chunks chunks.
    steps = np.diff(np.concatenate([[-1], present])) - 1
    broken = np.flatnonzero(steps > max_gap_chunks)
    reach = present[: broken[0] if broken.size else present.size]
    last = int(reach[-1]) if reach.size else -1
    n_chunks = min(header_chunks, last + 1 + max_gap_chunks)
    kept = int(np.count_nonzero((chunks >= 0) & (chunks < n_chunks)))
    return DecodePlan(
        n_chunks=n_chunks,
        n_samples=min(n_samples, n_chunks * chunk_samples),
        header_n_samples=n_samples,
        chunk_samples=chunk_samples,
        max_gap_chunks=max_gap_chunks,
        last_record_chunk=last,
        records_kept=kept,
        dropped_records=int(chunks.size) - kept,
    )


def check_models(header: StreamHeader, codec, model: CodingModel) -> None:
    """Refuses models other than the ones that wrote the stream.

    Raises:
        ModelMismatchError: the header's ``codec_id`` is not the content hash of
            ``codec``, or its ``model_id`` not ``model.model_id``.
    """
    have = codec_content_hash(codec)
    if header.codec_id != have:
        raise ModelMismatchError(
            f"the stream was coded with codec {header.codec_id}, the loaded codec is {have}"
        )
    if header.model_id != model.model_id:
        raise ModelMismatchError(
            f"the stream was coded with model {header.model_id}, "
            f"the loaded model is {model.model_id}"
        )


@dataclass(frozen=True)
class SpringStream:
    """An opened ``.spring`` file (``open_stream``): everything a decoder needs.

    Attributes:
        contents: the container read back (header, records, damage, header copies).
        header: the validated stream header.
        config: the stream's TransceiverConfig (with the reader's concealment).
        plan: how much audio the records justify (``plan_decode``).
        codec, model: the loaded models, checked against the header.
        packets: the records the plan keeps, as SentPacket (seq, chunk, layer -1, data),
            in file order.
    """

    contents: ContainerContents
    header: StreamHeader
    config: TransceiverConfig
    plan: DecodePlan
    codec: Any
    model: Any
    packets: list[SentPacket]

    def blocks(self, progress: bool = False, keep_history: bool = True
               ) -> tuple[Receiver, Iterator[np.ndarray]]:
        """Decodes the stream as ``transceiver.receive_blocks`` does: (the receiver, an
        iterator of float32 audio blocks adding up to ``plan.n_samples``)."""
        return receive_blocks(self.codec, self.model, self.config, self.packets,
                              self.plan.n_chunks, self.plan.n_samples, progress=progress,
                              keep_history=keep_history)


StreamSource = bytes | bytearray | memoryview | str | os.PathLike
"""A ``.spring`` file: its bytes, a path, or (``read_container``) a binary file object."""


def open_stream(
    source: Any,
    models: tuple[Any, CodingModel] | Callable[[], tuple[Any, CodingModel]],
    conceal: str = DEFAULT_CONCEAL,
) -> SpringStream:
    """Opens a ``.spring`` file for decoding: reads the container (``transport``), validates
    every header field, checks the models against the header, plans the decode.

    Args:
        source: the file's bytes, a path, or a readable binary file object.
        models: ``(codec, coding_model)``, or a zero-argument callable returning them,
            called only once the header is valid (a damaged file costs no model load).
        conceal: the reader's concealment mode (``config.CONCEAL_MODES``).

    Returns:
        A SpringStream; ``stream.blocks()`` decodes it.

    Raises:
        BitstreamError (TruncatedError, UnsupportedVersionError, IntegrityError): not a
            readable ``.spring`` file, or a header field out of its range.
        ModelMismatchError: the file was written with another codec or coding model.
        ConfigError: ``conceal`` is not a concealment mode (``blocks()`` raises it for a
            mode the model cannot run).

    Example:
        >>> stream = open_stream("speech.spring", (codec, model))  # doctest: +SKIP
        >>> rx, blocks = stream.blocks()                            # doctest: +SKIP
        >>> pcm = np.concatenate(list(blocks))                      # doctest: +SKIP
    """
    if conceal not in CONCEAL_MODES:
        raise ConfigError(f"conceal must be one of {CONCEAL_MODES}, got {conceal!r}")
    contents = read_container(source)
    header = parse_stream_header(contents.header)  # every field checked before any work
    codec, model = models() if callable(models) else models
    check_models(header, codec, model)
    cfg = header.config(conceal)
    plan = plan_decode(cfg, header.n_samples, [r.chunk for r in contents.records])
    packets = [SentPacket(r.seq, r.chunk, -1, r.packet)
               for r in contents.records if plan.keeps(r.chunk)]
    return SpringStream(contents, header, cfg, plan, codec, model, packets)


__all__ = [
    "FORMAT",
    "MAX_GAP_SAMPLES",
    "MAX_ID_CHARS",
    "MAX_N_SAMPLES",
    "DecodePlan",
    "SpringStream",
    "StreamHeader",
    "check_models",
    "config_from_header",
    "open_stream",
    "parse_stream_header",
    "plan_decode",
    "stream_header",
]
