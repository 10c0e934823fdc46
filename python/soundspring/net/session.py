"""The session description: what a receiver needs before it can decode a live stream.

It is the ``.spring`` stream header (``transceiver.stream``: the same fields, validated by
the same ``parse_stream_header``) plus the RTP fields of the stream, as one JSON object::

    {"format": "soundspring-session", "version": 1,
     "stream": {<the .spring stream header>},
     "rtp": {"payload_type": 96, "ssrc": 305419896, "timestamp_base": 4660,
             "clock_rate_hz": 16000},
     "capture_epoch_ms": 81234.5}

``stream.n_samples`` is the length of the audio when the sender knows it (a file) and 0
for a live source (the end-of-stream message then says how long the stream was).
``capture_epoch_ms`` (optional) is the sender's ``time.monotonic()`` in ms at which sample
0 was captured: on one host (loopback) the receiver measures capture-to-playout latency
with it.

It travels in-band, repeated (``net.rtp`` control subtype 0: three copies at the start,
then one every ``SESSION_REPEAT_CHUNKS`` chunks, so a receiver that joins late or loses
the first datagrams still starts), or out of band as SDP-like text (``to_sdp`` /
``from_sdp``; ``soundspring send --sdp FILE``, ``soundspring receive --sdp FILE``).

End of stream (control subtype 1): ``{"n_chunks": N, "n_samples": S, "sender": {...}}``
(``EndOfStream``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import DEFAULT_CONCEAL, TransceiverConfig
from ..errors import BitstreamError
from ..transceiver.stream import (
    MAX_N_SAMPLES,
    StreamHeader,
    config_from_header,
    parse_stream_header,
)
from ..transport.container import header_json, parse_header_json
from .rtp import CLOCK_RATE_HZ, PAYLOAD_TYPE

SESSION_FORMAT = "soundspring-session"
SESSION_VERSION = 1
SESSION_REPEAT_CHUNKS = 250
"""Chunks between two in-band copies of the session description after the first three
(10 s at 40 ms chunks: about 0.35 kbps for a 430-byte description)."""
SDP_ATTRIBUTE = "x-soundspring-session"
MAX_SDP_BYTES = 16384


def _fail(name: str, expected: str, value: Any) -> BitstreamError:
    shown = ascii(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return BitstreamError(f"session field {name!r} must be {expected}, got {shown}")


def _uint(body: Mapping[str, Any], name: str, hi: int) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= hi:
        raise _fail(name, f"an integer in [0, {hi}]", value)
    return int(value)


def _session_json(header: Mapping[str, Any], ssrc: Any, timestamp_base: Any, payload_type: Any,
                  capture_epoch_ms: Any) -> dict[str, Any]:
    """The session description JSON object (the module doc's layout; the one place it is
    built). The values are put in as given: ``parse_session`` checks them."""
    body: dict[str, Any] = {
        "format": SESSION_FORMAT,
        "version": SESSION_VERSION,
        "stream": dict(header),
        "rtp": {
            "payload_type": payload_type,
            "ssrc": ssrc,
            "timestamp_base": timestamp_base,
            "clock_rate_hz": CLOCK_RATE_HZ,
        },
    }
    if capture_epoch_ms is not None:
        body["capture_epoch_ms"] = capture_epoch_ms
    return body


@dataclass(frozen=True)
class SessionDescription:
    """A validated session description (``parse_session`` / ``make_session``).

    Attributes:
        header: the stream header dict (the ``.spring`` JSON header fields).
        stream: the same, validated (``StreamHeader``).
        ssrc: the stream's RTP SSRC.
        timestamp_base: RTP timestamp of sample 0 (chunk 0).
        payload_type: RTP payload type of data packets.
        capture_epoch_ms: sender monotonic time of sample 0's capture, or None.
    """

    header: dict[str, Any]
    stream: StreamHeader
    ssrc: int
    timestamp_base: int
    payload_type: int = PAYLOAD_TYPE
    capture_epoch_ms: float | None = None

    def config(self, conceal: str = DEFAULT_CONCEAL) -> TransceiverConfig:
        """The stream's TransceiverConfig (concealment is the receiver's choice)."""
        return config_from_header(self.header, conceal)

    def to_json(self) -> dict[str, Any]:
        epoch = None if self.capture_epoch_ms is None else float(self.capture_epoch_ms)
        return _session_json(self.header, self.ssrc, self.timestamp_base, self.payload_type,
                             epoch)

    def same_stream(self, other: SessionDescription) -> bool:
        """True iff ``other`` describes the same stream (capture epochs may differ by
        rounding, nothing else may)."""
        return (self.header == other.header and self.ssrc == other.ssrc
                and self.timestamp_base == other.timestamp_base
                and self.payload_type == other.payload_type)


def make_session(header: Mapping[str, Any], ssrc: int, timestamp_base: int,
                 capture_epoch_ms: float | None = None) -> SessionDescription:
    """A session description from a stream header (``transceiver.stream.stream_header``).

    Raises:
        BitstreamError: the header or a field is invalid (as ``parse_session``).
    """
    return parse_session(_session_json(header, ssrc, timestamp_base, PAYLOAD_TYPE,
                                       capture_epoch_ms))


def parse_session(body: Mapping[str, Any]) -> SessionDescription:
    """Validates a session description JSON object (every field's type and range; the
    stream header as ``parse_stream_header`` does; unknown keys are ignored).

    Raises:
        BitstreamError: naming the first invalid field.
    """
    if not isinstance(body, Mapping):
        raise BitstreamError("the session description must be a JSON object")
    if body.get("format") != SESSION_FORMAT:
        raise _fail("format", f"the string {SESSION_FORMAT!r}", body.get("format"))
    version = body.get("version")
    if isinstance(version, bool) or version != SESSION_VERSION:
        raise _fail("version", f"the integer {SESSION_VERSION}", version)
    header = body.get("stream")
    if not isinstance(header, Mapping):
        raise _fail("stream", "a JSON object (the stream header)", header)
    stream = parse_stream_header(header)
    config_from_header(header)  # a combination the transceiver refuses: BitstreamError
    rtp = body.get("rtp")
    if not isinstance(rtp, Mapping):
        raise _fail("rtp", "a JSON object", rtp)
    pt = _uint(rtp, "payload_type", 127)
    if not 96 <= pt <= 127:
        raise _fail("payload_type", "a dynamic RTP payload type, 96..127", pt)
    ssrc = _uint(rtp, "ssrc", 0xFFFFFFFF)
    base = _uint(rtp, "timestamp_base", 0xFFFFFFFF)
    rate = rtp.get("clock_rate_hz")
    if isinstance(rate, bool) or rate != CLOCK_RATE_HZ:
        raise _fail("clock_rate_hz", f"the integer {CLOCK_RATE_HZ}", rate)
    epoch = body.get("capture_epoch_ms")
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, (int, float))
                              or not math.isfinite(epoch)):
        raise _fail("capture_epoch_ms", "a finite number of milliseconds", epoch)
    return SessionDescription(dict(header), stream, ssrc, base, pt,
                              None if epoch is None else float(epoch))


@dataclass(frozen=True)
class EndOfStream:
    """The end-of-stream message: chunks and samples sent, and the sender's counters."""

    n_chunks: int
    n_samples: int
    sender: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"n_chunks": self.n_chunks, "n_samples": self.n_samples,
                "sender": dict(self.sender)}


def parse_end(body: Mapping[str, Any]) -> EndOfStream:
    """Validates an end-of-stream JSON object.

    Raises:
        BitstreamError: a missing or out-of-range field.
    """
    if not isinstance(body, Mapping):
        raise BitstreamError("the end-of-stream message must be a JSON object")
    n_samples = _uint(body, "n_samples", MAX_N_SAMPLES)
    n_chunks = _uint(body, "n_chunks", MAX_N_SAMPLES)
    sender = body.get("sender", {})
    if not isinstance(sender, Mapping):
        raise _fail("sender", "a JSON object", sender)
    return EndOfStream(n_chunks, n_samples, dict(sender))


def to_sdp(session: SessionDescription, host: str, port: int) -> str:
    """SDP-like text (RFC 4566 lines) announcing the stream to ``host:port``; the full
    description rides in one ``a=x-soundspring-session:`` attribute."""
    family = "IP6" if ":" in host else "IP4"
    pt = session.payload_type
    body = header_json(session.to_json()).decode("utf-8")
    return "\r\n".join([
        "v=0",
        f"o=- {session.ssrc} 1 IN {family} {host}",
        "s=soundspring",
        f"c=IN {family} {host}",
        "t=0 0",
        f"m=audio {int(port)} RTP/AVP {pt}",
        f"a=rtpmap:{pt} soundspring/{CLOCK_RATE_HZ}",
        f"a=ssrc:{session.ssrc}",
        f"a={SDP_ATTRIBUTE}:{body}",
        "",
    ])


def from_sdp(text: str | bytes) -> SessionDescription:
    """Parses ``to_sdp`` text (the session attribute, checked against the ``m=`` payload
    type and ``a=ssrc`` line when present).

    Raises:
        BitstreamError: no session attribute, malformed JSON or fields, or lines that
            contradict it.
    """
    if isinstance(text, (bytes, bytearray)):
        if len(text) > MAX_SDP_BYTES:
            raise BitstreamError(f"SDP text longer than {MAX_SDP_BYTES} bytes")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BitstreamError(f"SDP text is not UTF-8: {exc}") from None
    if len(text) > MAX_SDP_BYTES:
        raise BitstreamError(f"SDP text longer than {MAX_SDP_BYTES} characters")
    prefix = f"a={SDP_ATTRIBUTE}:"
    found = [ln[len(prefix):] for ln in text.splitlines() if ln.startswith(prefix)]
    if len(found) != 1:
        raise BitstreamError(f"SDP text must hold exactly one {prefix} line, found {len(found)}")
    session = parse_session(parse_header_json(found[0].strip().encode("utf-8")))
    for ln in text.splitlines():
        parts = ln.split()
        if ln.startswith("m=audio") and (len(parts) < 4 or parts[3] != str(session.payload_type)):
            raise BitstreamError(f"SDP {ln!r} contradicts payload type {session.payload_type}")
        if ln.startswith("a=ssrc:") and ln[7:].split(" ")[0] != str(session.ssrc):
            raise BitstreamError(f"SDP {ln!r} contradicts SSRC {session.ssrc}")
    return session


__all__ = [
    "SESSION_FORMAT", "SESSION_REPEAT_CHUNKS", "SESSION_VERSION", "EndOfStream",
    "SessionDescription", "from_sdp", "make_session", "parse_end", "parse_session", "to_sdp",
]
