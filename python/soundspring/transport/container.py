"""The ``.spring`` file container (docs/bitstream.md, "Container").

A stream header (magic ``SPRG``, version, a JSON object, CRC-32) followed by records, each
``sync | len | seq | chunk | packet | CRC-32``. Reading never stops at damage: every intact
record before and after a damaged byte range is returned together with the damaged ranges.

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
import os
from collections.abc import Iterable, Mapping
from typing import IO, Any, BinaryIO, Union

from .._native import core
from ..errors import BitstreamError, ConfigError, IntegrityError, ModelMismatchError

_t = core.transport

CONTAINER_VERSION: int = int(_t.CONTAINER_VERSION)
MAX_HEADER_JSON_BYTES: int = int(_t.MAX_HEADER_JSON_BYTES)
RECORD_OVERHEAD_BYTES: int = int(_t.RECORD_OVERHEAD_BYTES)

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
    """What ``read_container`` returns; unpacks as ``header, records, damage``."""

    header: dict[str, Any]
    records: list[Record]
    damage: list[DamageRegion]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter((self.header, self.records, self.damage))


def _u32(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise ConfigError(f"{name} must be an int in [0, 2**32), got {value!r}")
    return value


def encode_header(header: Mapping[str, Any]) -> bytes:
    """The stream-header bytes for a JSON-serialisable mapping (keys sorted, UTF-8).

    Raises:
        ConfigError: header is not a mapping with str keys, is not JSON-serialisable, or
            its JSON exceeds MAX_HEADER_JSON_BYTES.
    """
    if not isinstance(header, Mapping):
        raise ConfigError(f"header must be a dict, got {type(header).__name__}")
    try:
        text = json.dumps(dict(header), sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"header must be JSON-serialisable: {exc}") from exc
    return bytes(_t.encode_header(text.encode("utf-8")))


def encode_record(seq: int, chunk: int, packet: bytes) -> bytes:
    """One record's bytes.

    Raises:
        ConfigError: seq/chunk outside [0, 2**32), or a packet of 0 or more than
            MAX_PACKET_BYTES bytes.
    """
    return bytes(_t.encode_record(_u32("seq", seq), _u32("chunk", chunk), packet))


class ContainerWriter:
    """Streams a container to a binary file object (or a path), record by record.

    Example:
        >>> import io
        >>> buf = io.BytesIO()
        >>> with ContainerWriter(buf, {"sample_rate_hz": 16000}) as w:
        ...     w.write(0, 0, b"\\x40")
        >>> len(buf.getvalue()) > 0
        True
    """

    def __init__(self, path_or_file: PathOrFile, header: Mapping[str, Any]) -> None:
        head = encode_header(header)
        if isinstance(path_or_file, (str, os.PathLike)):
            self._file: BinaryIO = open(path_or_file, "wb")  # noqa: SIM115
            self._owned = True
        else:
            self._file = path_or_file  # type: ignore[assignment]
            self._owned = False
        self._file.write(head)

    def write(self, seq: int, chunk: int, packet: bytes) -> None:
        """Appends one record (see ``encode_record`` for the errors)."""
        self._file.write(encode_record(seq, chunk, packet))

    def close(self) -> None:
        """Flushes, and closes the file if this writer opened it."""
        self._file.flush()
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
    """Writes a whole container.

    Args:
        path_or_file: a path or a writable binary file object.
        header: JSON-serialisable stream header (model id, checkpoint hash, sample rate, ...).
        packets: ``(seq, chunk, packet_bytes)`` tuples or Records, in sending order.

    Raises:
        ConfigError: see ``encode_header`` and ``encode_record``.
    """
    parts = [encode_header(header)]
    for item in packets:
        if isinstance(item, Record):
            parts.append(encode_record(item.seq, item.chunk, item.packet))
        else:
            seq, chunk, packet = item
            parts.append(encode_record(seq, chunk, packet))
    data = b"".join(parts)
    if isinstance(path_or_file, (str, os.PathLike)):
        with open(path_or_file, "wb") as f:
            f.write(data)
    else:
        path_or_file.write(data)


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
        ContainerContents(header, records, damage), records in file order.

    Raises:
        BitstreamError: not a .spring file (bad magic), reserved byte set, oversized or
            non-object/invalid-UTF-8 JSON header.
        TruncatedError: the file ends inside its stream header.
        UnsupportedVersionError: a container version this build cannot read.
        IntegrityError: the stream header's CRC fails (or any damage with strict=True).
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
    json_bytes, seqs, chunks, offsets, packets, damage = _t.read_container(data)
    try:
        header = json.loads(bytes(json_bytes).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BitstreamError(f"container stream header is not valid UTF-8 JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise BitstreamError("container stream header must be a JSON object")
    records = [
        Record(int(s), int(c), bytes(p), int(o))
        for s, c, o, p in zip(seqs.tolist(), chunks.tolist(), offsets.tolist(), packets)
    ]
    regions = [DamageRegion(int(o), int(n)) for o, n in damage.tolist()]
    if strict and regions:
        raise IntegrityError(
            f"container has {len(regions)} damaged region(s), first at byte {regions[0].offset}"
        )
    if require:
        for key, want in require.items():
            if header.get(key) != want:
                raise ModelMismatchError(
                    f"stream header {key}={header.get(key)!r} does not match the expected {want!r}"
                )
    return ContainerContents(header, records, regions)


__all__ = [
    "CONTAINER_VERSION",
    "MAX_HEADER_JSON_BYTES",
    "RECORD_OVERHEAD_BYTES",
    "ContainerContents",
    "ContainerWriter",
    "DamageRegion",
    "Record",
    "encode_header",
    "encode_record",
    "read_container",
    "write_container",
]
