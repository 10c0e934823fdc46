"""The ``.spring`` file container (docs/bitstream.md, "Container").

A stream header (magic ``SPRG``, version, a JSON object, CRC-32) followed by records, each
``sync | len | seq | chunk | packet | CRC-32``. Reading never stops at damage: every intact
record before and after a damaged byte range is returned together with the damaged ranges.
Version 2 writers repeat the stream header in *header-copy records* (``seq`` and ``chunk``
both 0xFFFFFFFF): after the header, every ``HEADER_COPY_INTERVAL`` records and at the end.
A reader whose primary header is damaged takes the first intact copy instead
(``ContainerContents.header_recovered``); copies never appear among the records.

The header JSON is parsed strictly: UTF-8, a JSON object at the top level, no NaN or
Infinity, no duplicate keys, nesting at most ``MAX_JSON_DEPTH`` deep, number literals of
at most ``MAX_JSON_NUMBER_CHARS`` characters and finite; anything else is BitstreamError.
The meaning of the keys is ``soundspring.transceiver.stream``'s business.

Example:
    >>> import io
    >>> from soundspring.transport import write_container, read_container
    >>> buf = io.BytesIO()
    >>> write_container(buf, {"model_id": "demo"}, [(0, 0, b"\\x40\\x01"), (1, 1, b"\\x40")])
    >>> _ = buf.seek(0)
    >>> contents = read_container(buf)
    >>> contents.header, [r.packet for r in contents.records], contents.damage
    ({'model_id': 'demo'}, [b'@\\x01', b'@'], [])
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
from collections.abc import Iterable, Mapping
from typing import IO, Any, BinaryIO, Union

from .._native import core
from ..errors import BitstreamError, ConfigError, IntegrityError, ModelMismatchError

_t = core.transport

CONTAINER_VERSION: int = int(_t.CONTAINER_VERSION)
"""The container version writers emit (2); readers also read ``OLDEST_CONTAINER_VERSION``."""
OLDEST_CONTAINER_VERSION: int = int(_t.OLDEST_CONTAINER_VERSION)
MAX_HEADER_JSON_BYTES: int = int(_t.MAX_HEADER_JSON_BYTES)
RECORD_OVERHEAD_BYTES: int = int(_t.RECORD_OVERHEAD_BYTES)
HEADER_COPY_MARKER: int = int(_t.HEADER_COPY_MARKER)
"""``seq`` and ``chunk`` of a header-copy record (0xFFFFFFFF); reserved in version 2."""
MAX_HEADER_COPY_JSON_BYTES: int = int(_t.MAX_HEADER_COPY_JSON_BYTES)
"""Headers with longer JSON (2034 bytes) are written without copies."""
HEADER_COPY_INTERVAL: int = int(_t.HEADER_COPY_INTERVAL)
"""A header copy follows every this many packet records (1500: 60 s of 40 ms chunks)."""
MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays/objects accepted in the header JSON (the top object is 1)."""
MAX_JSON_NUMBER_CHARS = 64
"""Longest number literal accepted in the header JSON."""

PathOrFile = Union[str, "os.PathLike[str]", IO[bytes]]


@dataclasses.dataclass(frozen=True)
class Record:
    """One intact record.

    Attributes:
        seq: transport sequence number, u32.
        chunk: chunk index (RTP-style timestamp in chunks), u32.
        packet: the packet bytes (parse with ``parse_packet``).
        offset: byte offset of the record in the file.
    """

    seq: int
    chunk: int
    packet: bytes
    offset: int = -1


@dataclasses.dataclass(frozen=True)
class DamageRegion:
    """A byte range [offset, offset + size) of the file holding no valid record."""

    offset: int
    size: int


@dataclasses.dataclass(frozen=True)
class ContainerContents:
    """What ``read_container`` returns; unpacks as ``header, records, damage``.

    Attributes:
        header: the stream header's JSON object (keys unchecked; see transceiver.stream).
        records: the intact packet records in file order (never header copies).
        damage: damaged byte ranges in file order; when ``header_recovered`` the first
            one covers the damaged stream header.
        version: container version of the header used.
        header_recovered: the primary stream header was damaged and the header was taken
            from the header-copy record at byte ``header_copy_offset``.
        header_copy_offset: see ``header_recovered`` (None otherwise).
        header_error: why the primary header was refused, when recovered ("" otherwise).
        header_copies: intact header-copy records found in the file.
    """

    header: dict[str, Any]
    records: list[Record]
    damage: list[DamageRegion]
    version: int = CONTAINER_VERSION
    header_recovered: bool = False
    header_copy_offset: int | None = None
    header_error: str = ""
    header_copies: int = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter((self.header, self.records, self.damage))


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _u32(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise ConfigError(f"{name} must be an int in [0, 2**32), got {value!r}")
    return value


def header_json(header: Mapping[str, Any]) -> bytes:
    """The canonical JSON bytes of a stream header (sorted keys, no spaces, UTF-8).

    Raises:
        ConfigError: header is not a mapping with str keys, is not JSON-serialisable
            (NaN and infinities included), or its JSON exceeds MAX_HEADER_JSON_BYTES.
    """
    if not isinstance(header, Mapping):
        raise ConfigError(f"header must be a dict, got {type(header).__name__}")
    try:
        text = json.dumps(dict(header), sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ConfigError(f"header must be JSON-serialisable: {exc}") from exc
    data = text.encode("utf-8")
    if len(data) > MAX_HEADER_JSON_BYTES:
        raise ConfigError(
            f"stream header JSON is {len(data)} bytes; the maximum is {MAX_HEADER_JSON_BYTES}"
        )
    try:
        parse_header_json(data)
    except BitstreamError as exc:  # e.g. nesting deeper than readers accept
        raise ConfigError(f"header would not be readable: {exc}") from exc
    return data


def encode_header(header: Mapping[str, Any]) -> bytes:
    """The stream-header bytes for a JSON-serialisable mapping (keys sorted, UTF-8); the
    header alone, without the header copies that ``ContainerWriter`` adds.

    Raises:
        ConfigError: see ``header_json``.
    """
    return bytes(_t.encode_header(header_json(header)))


def encode_header_copy(header: Mapping[str, Any]) -> bytes:
    """One header-copy record for ``header`` (seq = chunk = 0xFFFFFFFF, payload: the
    stream-header bytes).

    Raises:
        ConfigError: see ``header_json``; or the JSON exceeds MAX_HEADER_COPY_JSON_BYTES.
    """
    return bytes(_t.encode_header_copy(header_json(header)))


def encode_record(seq: int, chunk: int, packet: bytes) -> bytes:
    """One record's bytes.

    Raises:
        ConfigError: seq/chunk outside [0, 2**32), both equal to HEADER_COPY_MARKER (the
            reserved pair), or a packet of 0 or more than MAX_PACKET_BYTES bytes.
    """
    _check_not_marker(_u32("seq", seq), _u32("chunk", chunk))
    return bytes(_t.encode_record(seq, chunk, packet))


def _check_not_marker(seq: int, chunk: int) -> None:
    if seq == HEADER_COPY_MARKER and chunk == HEADER_COPY_MARKER:
        raise ConfigError(
            "seq and chunk are both 0xFFFFFFFF, the reserved marker of header-copy records"
        )


class ContainerWriter:
    """Streams a container to a binary file object (or a path), record by record, with
    the header copies of container version 2 (after the header, after every
    HEADER_COPY_INTERVAL-th record and, on ``close``, at the end).

    Example:
        >>> import io
        >>> buf = io.BytesIO()
        >>> with ContainerWriter(buf, {"sample_rate_hz": 16000}) as w:
        ...     w.write(0, 0, b"\\x40")
        >>> read_container(buf.getvalue()).header_copies
        2
    """

    def __init__(self, path_or_file: PathOrFile, header: Mapping[str, Any]) -> None:
        self._native = _t.ContainerWriter(header_json(header))
        if isinstance(path_or_file, (str, os.PathLike)):
            self._file: BinaryIO = open(path_or_file, "wb")  # noqa: SIM115
            self._owned = True
        else:
            self._file = path_or_file  # type: ignore[assignment]
            self._owned = False
        self._closed = False
        self._file.write(bytes(self._native.head))

    @property
    def writes_copies(self) -> bool:
        """False when the header JSON is too long for a record (no copies are written)."""
        return bool(self._native.writes_copies)

    def write(self, seq: int, chunk: int, packet: bytes) -> None:
        """Appends one record (see ``encode_record`` for the errors)."""
        if self._closed:
            raise ConfigError("ContainerWriter.write after close")
        _check_not_marker(_u32("seq", seq), _u32("chunk", chunk))
        self._file.write(bytes(self._native.write(seq, chunk, packet)))

    def close(self) -> None:
        """Writes the closing header copy, flushes, and closes the file if this writer
        opened it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._file.write(bytes(self._native.finish()))
            self._file.flush()
        finally:
            if self._owned:
                self._file.close()

    def __enter__(self) -> ContainerWriter:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_container(
    path_or_file: PathOrFile,
    header: Mapping[str, Any],
    packets: Iterable[tuple[int, int, bytes] | Record],
) -> None:
    """Writes a whole container (the same bytes as ``ContainerWriter``, copies included).

    Args:
        path_or_file: a path or a writable binary file object.
        header: JSON-serialisable stream header (model id, checkpoint hash, sample rate, ...).
        packets: ``(seq, chunk, packet_bytes)`` tuples or Records, in sending order.

    Raises:
        ConfigError: see ``encode_header`` and ``encode_record``.
    """
    native = _t.ContainerWriter(header_json(header))
    parts = [bytes(native.head)]
    for item in packets:
        if isinstance(item, Record):
            seq, chunk, packet = item.seq, item.chunk, item.packet
        else:
            seq, chunk, packet = item
        _check_not_marker(_u32("seq", seq), _u32("chunk", chunk))
        parts.append(bytes(native.write(seq, chunk, packet)))
    parts.append(bytes(native.finish()))
    data = b"".join(parts)
    if isinstance(path_or_file, (str, os.PathLike)):
        with open(path_or_file, "wb") as f:
            f.write(data)
    else:
        path_or_file.write(data)


def _json_depth(value: Any) -> int:
    """Deepest array/object nesting of a parsed JSON value (iterative: no recursion)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if depth <= MAX_JSON_DEPTH:  # deeper is refused anyway: stop looking
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _reject_constant(name: str) -> Any:
    raise BitstreamError(
        f"container stream header JSON holds {name}; only finite numbers are valid"
    )


def _parse_float(text: str) -> float:
    if len(text) > MAX_JSON_NUMBER_CHARS:
        raise BitstreamError(
            f"container stream header JSON holds a {len(text)}-character number; at most "
            f"{MAX_JSON_NUMBER_CHARS} are valid"
        )
    value = float(text)
    if not math.isfinite(value):
        raise BitstreamError(
            f"container stream header JSON holds the number {text[:20]}, beyond the float range"
        )
    return value


def _parse_int(text: str) -> int:
    if len(text) > MAX_JSON_NUMBER_CHARS:
        raise BitstreamError(
            f"container stream header JSON holds a {len(text)}-digit integer; at most "
            f"{MAX_JSON_NUMBER_CHARS} characters are valid"
        )
    return int(text)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise BitstreamError(
                f"container stream header JSON repeats the key {key[:40]!r} in one object"
            )
        out[key] = value
    return out


def parse_header_json(data: bytes | bytearray | memoryview) -> dict[str, Any]:
    """Parses stream-header JSON bytes strictly (see the module doc).

    Raises:
        BitstreamError: not UTF-8, not JSON, not an object, NaN/Infinity, a non-finite or
            over-long number, a repeated key, or nesting deeper than MAX_JSON_DEPTH.
    """
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BitstreamError(f"container stream header is not valid UTF-8 JSON: {exc}") from exc
    try:
        header = json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_parse_float,
            parse_int=_parse_int,
            object_pairs_hook=_object,
        )
    except BitstreamError:
        raise
    except RecursionError as exc:  # json's C scanner stops deep nesting this way
        raise BitstreamError(
            f"container stream header JSON nests too deep; at most {MAX_JSON_DEPTH} levels "
            "are valid"
        ) from exc
    except ValueError as exc:
        raise BitstreamError(f"container stream header is not valid UTF-8 JSON: {exc}") from exc
    depth = _json_depth(header)
    if depth > MAX_JSON_DEPTH:
        raise BitstreamError(
            f"container stream header JSON nests more than {MAX_JSON_DEPTH} levels deep"
        )
    if not isinstance(header, dict):
        raise BitstreamError(
            f"container stream header must be a JSON object, got a JSON {type(header).__name__}"
        )
    return header


def read_container(
    path_or_data: PathOrFile | bytes | bytearray | memoryview,
    *,
    strict: bool = False,
    require: Mapping[str, Any] | None = None,
) -> ContainerContents:
    """Reads a container, recovering every intact record around damaged bytes.

    Args:
        path_or_data: a path, a readable binary file object, or the bytes themselves.
        strict: raise IntegrityError if any damage is found instead of reporting it.
        require: header entries that must match exactly (e.g. ``{"model_id": ...,
            "checkpoint_sha256": ...}``); a mismatch raises ModelMismatchError.

    Returns:
        ContainerContents(header, records, damage, ...), records in file order. A damaged
        primary stream header is replaced by the first intact header copy
        (``header_recovered``; its bytes are reported as damage).

    Raises:
        BitstreamError: not a .spring file (bad magic and no header copy), reserved byte
            set, oversized, or a JSON header refused by ``parse_header_json``.
        TruncatedError: the file ends inside its stream header (and holds no copy).
        UnsupportedVersionError: a container version this build cannot read.
        IntegrityError: the stream header's CRC fails and no copy stands in for it (or any
            damage with strict=True, a recovered header included).
        ModelMismatchError: a ``require`` entry differs from the header.
    """
    if isinstance(path_or_data, (bytes, bytearray, memoryview)):
        data: Any = path_or_data
    elif isinstance(path_or_data, (str, os.PathLike)):
        with open(path_or_data, "rb") as f:
            data = f.read()
    elif isinstance(path_or_data, io.IOBase) or hasattr(path_or_data, "read"):
        data = path_or_data.read()
    else:
        raise TypeError(
            f"path_or_data must be a path, a binary file or bytes, got {type(path_or_data).__name__}"
        )
    json_bytes, seqs, chunks, offsets, packets, damage, meta = _t.read_container(data)
    header = parse_header_json(json_bytes)
    records = [
        Record(int(s), int(c), bytes(p), int(o))
        for s, c, o, p in zip(seqs.tolist(), chunks.tolist(), offsets.tolist(), packets)
    ]
    regions = [DamageRegion(int(o), int(n)) for o, n in damage.tolist()]
    if strict and regions:
        raise IntegrityError(
            f"container has {len(regions)} damaged region(s), first at byte {regions[0].offset}"
            + (" (the stream header; recovered from a copy)" if meta["header_recovered"] else "")
        )
    if require:
        for key, want in require.items():
            if header.get(key) != want:
                raise ModelMismatchError(
                    f"stream header {key}={_short(header.get(key))} does not match the "
                    f"expected {want!r}"
                )
    return ContainerContents(
        header,
        records,
        regions,
        version=int(meta["version"]),
        header_recovered=bool(meta["header_recovered"]),
        header_copy_offset=meta["header_copy_offset"],
        header_error=str(meta["header_error"]),
        header_copies=int(meta["header_copies"]),
    )


__all__ = [
    "CONTAINER_VERSION",
    "HEADER_COPY_INTERVAL",
    "HEADER_COPY_MARKER",
    "MAX_HEADER_COPY_JSON_BYTES",
    "MAX_HEADER_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_JSON_NUMBER_CHARS",
    "OLDEST_CONTAINER_VERSION",
    "RECORD_OVERHEAD_BYTES",
    "ContainerContents",
    "ContainerWriter",
    "DamageRegion",
    "Record",
    "encode_header",
    "encode_header_copy",
    "encode_record",
    "header_json",
    "parse_header_json",
    "read_container",
    "write_container",
]
