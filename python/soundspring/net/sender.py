"""The sending end over UDP: SoundSpring packets as RTP datagrams on a non-blocking socket,
with optional loss and delay injected at the sender, paced by the audio clock.

- ``RtpSender``: frames packets (``net.rtp``), drops the ones a ``transport`` loss model
  marks lost (drawn per packet in send order, exactly as ``soundspring simulate`` draws
  them), delays the others by a seeded uniform draw in ``[0, jitter_ms]``, and sends on a
  non-blocking socket: a datagram the kernel cannot take at once is dropped and counted
  (``stats.packets_dropped_kernel``), so sending never blocks the audio clock.
- ``send_pcm``: a whole signal in real time: chunk ``k`` is coded and sent when its last
  sample would have been captured, ``t0 + (k + 1) * chunk_ms`` on the monotonic clock
  (absolute deadlines: no drift however long the stream; a chunk that is late because
  coding fell behind is sent at once and counted, ``stats.chunks_behind``).
"""

from __future__ import annotations

import errno
import heapq
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .._validate import finite_float, int_in
from ..config import SAMPLE_RATE_HZ
from ..errors import ConfigError
from ..transceiver import SentPacket, Transmitter
from .rtp import (
    RTP_HEADER_BYTES,
    SUBTYPE_END,
    SUBTYPE_SESSION,
    ControlMessage,
    RtpPacket,
    pack_control,
    pack_rtp,
)
from .session import SESSION_REPEAT_CHUNKS, EndOfStream, SessionDescription, make_session

MAX_JITTER_MS = 10000.0
"""Largest injected delay (``--jitter-ms``)."""
SESSION_COPIES_AT_START = 3
END_COPIES = 3
MAX_DELAYED_PACKETS = 65536
"""Datagrams held for delayed sending at most (a bound, not a tuning knob: at 25 packets/s
and 10 s of delay the queue holds 250)."""


def monotonic_ms() -> float:
    """The clock every live component uses: ``time.monotonic()`` in ms (system-wide on
    Linux, so two processes on one host share it)."""
    return time.monotonic() * 1000.0


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPV6]:PORT`` -> (host, port).

    Raises:
        ConfigError: no port, a port outside 1..65535, or an empty host.
    """
    if not isinstance(text, str) or not text:
        raise ConfigError(f"address must be HOST:PORT, got {text!r}")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ConfigError(f"address must be [IPV6]:PORT, got {text!r}")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ConfigError(f"address must be HOST:PORT, got {text!r}")
    if not host:
        raise ConfigError(f"address {text!r} has no host")
    try:
        port = int(port_text, 10)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise ConfigError(f"address {text!r}: the port must be an integer in [1, 65535]")
    return host, port


def open_udp(host: str, port: int, *, bind: bool) -> socket.socket:
    """A non-blocking UDP socket bound to (bind=True) or connected to (host, port).

    Raises:
        ConfigError: the host does not resolve, the port is in use, or the address
            cannot be used ("cannot listen on ..." / "cannot send to ...").
    """
    what = "listen on" if bind else "send to"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise ConfigError(f"cannot {what} {host}:{port}: unknown host ({exc})") from None
    family, _, proto, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_DGRAM, proto)
    try:
        sock.setblocking(False)
        if bind:
            sock.bind(addr)
        else:
            sock.connect(addr)
    except OSError as exc:
        sock.close()
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else (
            exc.strerror or str(exc))
        raise ConfigError(f"cannot {what} {host}:{port}: {reason}") from None
    return sock


@dataclass
class SenderStats:
    """Counters of an ``RtpSender`` (and of the pacing loop that drives it)."""

    chunks: int = 0
    packets: int = 0  # data packets produced by the transmitter
    packets_sent: int = 0
    packets_dropped_loss: int = 0  # injected loss (the channel model)
    packets_dropped_kernel: int = 0  # the socket could not take them at once
    send_errors: int = 0  # ECONNREFUSED and the like: nobody listening yet
    payload_bytes: int = 0  # SoundSpring packet bytes sent (RTP/UDP/IP headers excluded)
    control_sent: int = 0
    chunks_behind: int = 0  # chunks coded after their audio-clock time (encoder too slow)
    encode_ms_total: float = 0.0
    encode_ms_max: float = 0.0
    wall_ms: float = 0.0  # send_pcm: from the audio clock's start to the last datagram

    def to_json(self) -> dict:
        return asdict(self)


class RtpSender:
    """RTP framing, injected loss and delay, and non-blocking sending of one stream.

    Args:
        sock: a UDP socket connected to the receiver (``open_udp(host, port, bind=False)``);
            made non-blocking. The sender closes it in ``close``.
        session: the stream's session description (SSRC, timestamp base, header).
        loss_model: a ``transport`` loss model (``make_loss_model``) or None.
        jitter_ms: injected delay of each datagram, uniform in [0, jitter_ms], 0..10000.
        seed: seed of the delay draws (the loss model has its own).
        session_repeat_chunks: chunks between in-band session copies after the first three.
        clock: ms clock (default ``monotonic_ms``).
    """

    def __init__(self, sock: socket.socket, session: SessionDescription, *, loss_model=None,
                 jitter_ms: float = 0.0, seed: int = 0,
                 session_repeat_chunks: int = SESSION_REPEAT_CHUNKS,
                 clock: Callable[[], float] = monotonic_ms) -> None:
        self.jitter_ms = finite_float("jitter_ms", jitter_ms)
        if not 0.0 <= self.jitter_ms <= MAX_JITTER_MS:
            raise ConfigError(f"jitter_ms must be in [0, {MAX_JITTER_MS:g}], got {jitter_ms}")
        self.session_repeat_chunks = int_in("session_repeat_chunks", session_repeat_chunks,
                                            1, 1 << 30)
        seed = int_in("seed", seed, 0, 2**64 - 1)
        self.sock = sock
        sock.setblocking(False)
        self.session = session
        self.chunk_samples = session.stream.chunk_samples
        self.loss_model = loss_model
        self._rng = np.random.default_rng([seed, 0x5EED])
        self._delayed: list[tuple[float, int, bytes]] = []
        self._order = 0
        self.clock = clock
        self.stats = SenderStats()
        self._first = True

    # ------------------------------------------------------------------ control
    def _session_datagram(self) -> bytes:
        body = self.session.to_json()
        body["next_chunk"] = self.stats.chunks  # where the stream is: a late joiner starts here
        return pack_control(ControlMessage(SUBTYPE_SESSION, self.session.ssrc, body))

    def send_session(self, copies: int = 1) -> None:
        """Sends the session description (in-band, not subject to injected loss)."""
        data = self._session_datagram()
        for _ in range(copies):
            self._send(data, control=True)

    def send_end(self, n_chunks: int, n_samples: int) -> None:
        """Sends the end-of-stream message (END_COPIES copies; call once the delayed
        datagrams are out, ``drain``)."""
        body = EndOfStream(n_chunks, n_samples, self.stats.to_json()).to_json()
        data = pack_control(ControlMessage(SUBTYPE_END, self.session.ssrc, body))
        for _ in range(END_COPIES):
            self._send(data, control=True)

    # ------------------------------------------------------------------ data
    def send_packets(self, packets: list[SentPacket]) -> None:
        """Frames, loss-filters, delays and sends the packets of one chunk."""
        now = self.clock()
        if packets and self.stats.chunks % self.session_repeat_chunks == 0 and self.stats.chunks:
            self.send_session()
        self.stats.chunks += 1 if packets else 0
        lost = (self.loss_model.losses(len(packets)) if self.loss_model is not None
                else np.zeros(len(packets), dtype=bool))
        delays = (self._rng.uniform(0.0, self.jitter_ms, len(packets)) if self.jitter_ms
                  else np.zeros(len(packets)))
        base = self.session.timestamp_base
        for p, gone, delay in zip(packets, lost, delays):
            self.stats.packets += 1
            if gone:
                self.stats.packets_dropped_loss += 1
                continue
            ts = (base + p.chunk * self.chunk_samples) & 0xFFFFFFFF
            data = pack_rtp(RtpPacket(p.seq & 0xFFFF, ts, self.session.ssrc, p.data,
                                      self.session.payload_type, self._first))
            self._first = False
            if delay <= 0.0 and not self._delayed:
                self._send(data, payload=len(p.data))
            elif len(self._delayed) < MAX_DELAYED_PACKETS:
                heapq.heappush(self._delayed, (now + float(delay), self._order, data))
                self._order += 1
            else:
                self.stats.packets_dropped_kernel += 1
        self.service(now)

    def next_due_ms(self) -> float | None:
        """When the next delayed datagram is due (None: none held)."""
        return self._delayed[0][0] if self._delayed else None

    def service(self, now_ms: float | None = None) -> None:
        """Sends every delayed datagram due at ``now_ms`` (default: now)."""
        now = self.clock() if now_ms is None else now_ms
        while self._delayed and self._delayed[0][0] <= now:
            _, _, data = heapq.heappop(self._delayed)
            self._send(data, payload=len(data) - RTP_HEADER_BYTES)

    def drain(self, sleep: Callable[[float], None] = time.sleep) -> None:
        """Waits for and sends every delayed datagram (at most one wait per datagram)."""
        for _ in range(len(self._delayed) + 1):
            due = self.next_due_ms()
            if due is None:
                return
            wait = due - self.clock()
            if wait > 0:
                sleep(wait / 1000.0)
            self.service()

    def _send(self, data: bytes, payload: int = 0, control: bool = False) -> None:
        for attempt in range(2):
            try:
                self.sock.send(data)
                break
            except (BlockingIOError, InterruptedError):
                self.stats.packets_dropped_kernel += 0 if control else 1
                return
            except OSError:
                # ECONNREFUSED reports an ICMP error caused by an *earlier* datagram (nobody
                # was listening then) and sends nothing: count it and try this one again.
                self.stats.send_errors += 1
                if attempt:
                    return
        if control:
            self.stats.control_sent += 1
        else:
            self.stats.packets_sent += 1
            self.stats.payload_bytes += payload

    def close(self) -> None:
        self.sock.close()


def new_stream_ids() -> tuple[int, int]:
    """A random SSRC and RTP timestamp base (RFC 3550 section 5.1: both SHOULD be random)."""
    raw = int.from_bytes(os.urandom(8), "little")
    return raw & 0xFFFFFFFF, raw >> 32


def new_session(header: Mapping[str, Any],
                capture_epoch_ms: float | None = None) -> SessionDescription:
    """The session description of a new stream: ``header``
    (``transceiver.stream.stream_header``) with a random SSRC and timestamp base
    (``new_stream_ids``).

    Raises:
        BitstreamError: the header or the epoch is invalid (``make_session``).
    """
    ssrc, timestamp_base = new_stream_ids()
    return make_session(header, ssrc, timestamp_base, capture_epoch_ms)


def warm_up(codec, model, cfg) -> None:
    """Runs both ends once on two chunks of silence, on throwaway instances: the first calls
    into torch and the coder are several times slower than the later ones, and a slow
    first packet would anchor the receiver's playout clock late (adding its delay to every
    chunk's latency)."""
    from ..transceiver import Receiver

    tx = Transmitter(codec, model, cfg)
    rx = Receiver(codec, model, cfg, keep_history=False)
    for p in tx.push(np.zeros(2 * cfg.chunk_samples, dtype=np.float32)):
        rx.push(p.data, p.seq, p.chunk)
    rx.decode_until(2)
    rx.flush()


def send_pcm(tx: Transmitter, pcm: np.ndarray, sender: RtpSender, *,
             sleep: Callable[[float], None] = time.sleep,
             on_chunk: Callable[[int], None] | None = None) -> SenderStats:
    """Sends a whole signal float32 [T] at 16 kHz in real time (``send_pcm`` in the module
    doc): the session description first (three copies), then chunk k at
    ``t0 + (k + 1) * chunk_ms``, delayed datagrams at their times, then the end of stream.
    ``t0`` is ``sender.session.capture_epoch_ms`` when set, else now. Returns the stats
    (also ``sender.stats``)."""
    n = tx.config.chunk_samples
    chunk_ms = 1000.0 * n / SAMPLE_RATE_HZ
    clock = sender.clock
    epoch = sender.session.capture_epoch_ms
    t0 = clock() if epoch is None else epoch
    sender.send_session(SESSION_COPIES_AT_START)
    n_chunks = -(-len(pcm) // n)
    stats = sender.stats
    for k in range(n_chunks):
        due = t0 + (k + 1) * chunk_ms
        for _ in range(MAX_DELAYED_PACKETS + 2):  # wake for delayed datagrams meanwhile
            now = clock()
            if now >= due:
                break
            nxt = sender.next_due_ms()
            wake = due if nxt is None else min(due, nxt)
            sleep(max(0.0, wake - now) / 1000.0)
            sender.service()
        if clock() > due + chunk_ms:
            stats.chunks_behind += 1
        start = time.perf_counter()
        piece = pcm[k * n:(k + 1) * n]
        packets = tx.push(piece) + (tx.flush() if k == n_chunks - 1 else [])
        spent = 1000.0 * (time.perf_counter() - start)
        stats.encode_ms_total += spent
        stats.encode_ms_max = max(stats.encode_ms_max, spent)
        sender.send_packets(packets)
        if on_chunk is not None:
            on_chunk(k)
    sender.drain(sleep)
    stats.wall_ms = clock() - t0
    sender.send_end(tx.chunks_sent, len(pcm))
    return stats


__all__ = [
    "MAX_JITTER_MS", "RtpSender", "SenderStats", "monotonic_ms", "new_session",
    "new_stream_ids",
    "open_udp", "parse_address", "send_pcm", "warm_up",
]
