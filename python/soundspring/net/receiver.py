"""The receiving end over UDP: datagrams -> session -> jitter buffer playout -> audio.

``NetReceiver`` owns a bound, non-blocking UDP socket and runs one loop (``step``): wait
for a datagram or the next playout deadline, read at most ``MAX_DATAGRAMS_PER_STEP``
datagrams, then play every chunk that is due. So a flood of datagrams (at any rate) can
delay playout by at most one batch, never stall it, and what the loop holds is bounded: the
jitter buffer's window of future chunks, one batch of datagrams, the counters, and the
``report_chunks`` latest chunk rows. The kernel's socket buffer drops what the loop does
not read.

Rules, in order, for each datagram (counted in ``NetStats``; nothing here raises for bad
bytes):

1. Not a valid RTP data packet or SoundSpring control message: ``malformed``.
2. A session description: the first valid one for the loaded models fixes the stream
   (unless one was given, ``--sdp``); one for other models is ``session_mismatch``;
   copies of the fixed one refresh the idle timer; any other one is ``foreign``.
3. Data before a session is known: ``before_session``. Another SSRC or payload type:
   ``foreign``. A timestamp off the chunk grid or before the stream start: ``malformed``.
   The first packet must lie within ``window_chunks`` of where the session says the
   sender is (a far-future packet cannot anchor the clock): ``implausible``.
4. The jitter buffer: accepted, duplicate, late (arrived after its chunk's deadline: lost
   and concealed), too early (beyond the window), damaged.
5. An end-of-stream message of the stream: every chunk before its ``n_chunks`` is played
   (the missing ones concealed) and the receiver is done. With no datagram of the stream
   for ``idle_timeout_s`` (a session copy, or a data packet accepted, late or duplicate)
   it is done as well (``finish_reason``).

Interarrival jitter is RFC 3550 A.8's estimator over accepted data packets, in ms.

Latency (``latency_report``): with the sender's capture epoch (same host: loopback, where
both ends read one monotonic clock), the capture-to-playout latency of each chunk's first
output sample is measured, and its mean is split into parts that add up to it:
``chunk`` (the transmitter waits for a whole chunk), ``codec_lookahead`` (the decoder's
overlap-add delay), ``sender_compute`` (coding one chunk, from the end-of-stream message)
and ``network`` (the rest of the transit from capture end to arrival: injected delay and
the network), ``jitter_buffer`` (arrival to the chunk's deadline) and ``receiver_compute``
(deadline to the audio being handed out: decoding and the loop's wake-up). "Playout" is
the hand-over of the decoded samples to the output (file, ``LiveReceiver.read``); an audio
device adds its own buffer on top.
"""

from __future__ import annotations

import ipaddress
import select
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from .._validate import finite_float, int_in
from ..config import DEFAULT_CONCEAL, FRAME_SAMPLES, SAMPLE_RATE_HZ
from ..errors import BitstreamError, ConfigError, ModelMismatchError
from ..models.weights_io import codec_content_hash
from ..transceiver import DEFAULT_HISTORY_CHUNKS, Receiver, TransceiverConfig
from .playout import PlayedChunk, Playout
from .rtp import (
    MAX_DATAGRAM_BYTES,
    SUBTYPE_END,
    SUBTYPE_SESSION,
    ControlMessage,
    TimestampUnwrapper,
    parse_datagram,
)
from .sender import monotonic_ms
from .session import EndOfStream, SessionDescription, parse_end, parse_session

MAX_DATAGRAMS_PER_STEP = 64
DEFAULT_IDLE_TIMEOUT_S = 10.0
DEFAULT_WINDOW_CHUNKS = 64
REPORT_CHUNKS = 15000
"""Per-chunk rows a receiver keeps for its report (10 min at 40 ms chunks; the latest)."""


DEFAULT_PLAYOUT_DELAY_MS = 1000.0 * FRAME_SAMPLES / SAMPLE_RATE_HZ
"""The default jitter-buffer delay: one codec frame, 20 ms. On top of the first packet's
own transit, it absorbs the spread of the sender's per-chunk compute and of the network;
it keeps the capture-to-playout latency under 100 ms at the defaults (measured: see
``soundspring receive``'s latency line). Raise it on real networks. With FEC the default
adds one chunk (``default_playout_delay_ms``)."""


def default_playout_delay_ms(cfg) -> float:
    """The default jitter-buffer delay of a stream: DEFAULT_PLAYOUT_DELAY_MS, plus one
    chunk with FEC, whose copy of a chunk's base rides in the next chunk's packet and
    must arrive before the lost chunk's deadline to be of use."""
    chunk_ms = 1000.0 * cfg.chunk_samples / SAMPLE_RATE_HZ
    return DEFAULT_PLAYOUT_DELAY_MS + (chunk_ms if cfg.fec else 0.0)


@dataclass
class NetStats:
    """Counters of a ``NetReceiver`` (datagrams and chunks since it was made)."""

    datagrams: int = 0
    malformed: int = 0
    foreign: int = 0
    before_session: int = 0
    session_mismatch: int = 0
    session_copies: int = 0
    implausible: int = 0
    accepted: int = 0
    duplicate: int = 0
    late: int = 0
    too_early: int = 0
    unused_layer: int = 0
    damaged: int = 0
    end_messages: int = 0
    payload_bytes: int = 0
    chunks_played: int = 0
    layers_expected: int = 0
    layers_received: int = 0
    max_playout_lag_ms: float = 0.0  # worst (play time - deadline) over chunks played

    @property
    def loss_rate(self) -> float:
        """Packets not received in time over packets expected (chunks played x layers)."""
        if not self.layers_expected:
            return 0.0
        return 1.0 - self.layers_received / self.layers_expected


class NetReceiver:
    """One live stream from a UDP socket to audio blocks.

    Args:
        sock: a bound UDP socket (``sender.open_udp(host, port, bind=True)``); closed by
            ``close``.
        codec, model: the decoding models (refusing sessions of other models).
        session: the stream's description when known out of band (SDP); else the first
            in-band description for these models is used.
        playout_delay_ms: jitter-buffer delay; None = ``default_playout_delay_ms(cfg)``.
        idle_timeout_s: done after this long without a valid datagram of the stream
            (from the start, too), (0, 86400].
        conceal: concealment mode of lost chunks.
        on_audio: called with each block of played audio (float32 [n], the codec's
            streaming output: the first ``codec.lookahead_samples`` are its delay).
        window_chunks: future chunks the jitter buffer holds.
        report_chunks: per-chunk rows kept (the latest).
        clock: ms clock shared with the sender for latency (default ``monotonic_ms``).
    """

    def __init__(self, sock: socket.socket, codec, model, *,
                 session: SessionDescription | None = None,
                 playout_delay_ms: float | None = None,
                 idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
                 conceal: str = DEFAULT_CONCEAL,
                 on_audio: Callable[[np.ndarray], None] | None = None,
                 window_chunks: int = DEFAULT_WINDOW_CHUNKS,
                 report_chunks: int = REPORT_CHUNKS,
                 clock: Callable[[], float] = monotonic_ms) -> None:
        self.sock = sock
        sock.setblocking(False)
        self.codec, self.model = codec, model
        self.codec_id = codec_content_hash(codec)
        # a concealment mode this model cannot run fails here, not at the first datagram
        Receiver(codec, model, TransceiverConfig(conceal=conceal), keep_history=False)
        self.conceal = conceal
        if playout_delay_ms is not None:
            playout_delay_ms = finite_float("playout_delay_ms", playout_delay_ms)
            if not 0.0 <= playout_delay_ms <= 60000.0:
                raise ConfigError(f"playout_delay_ms must be in [0, 60000], got "
                                  f"{playout_delay_ms}")
        self._delay_arg = playout_delay_ms
        self.idle_timeout_s = finite_float("idle_timeout_s", idle_timeout_s)
        if not 0.0 < self.idle_timeout_s <= 86400.0:
            raise ConfigError(f"idle_timeout_s must be in (0, 86400], got {idle_timeout_s}")
        self.window_chunks = int_in("window_chunks", window_chunks, 1, 65536)
        self.on_audio = on_audio
        self.clock = clock
        self.stats = NetStats()
        self.session: SessionDescription | None = None
        self.playout: Playout | None = None
        self.end: EndOfStream | None = None
        self.finish_reason: str | None = None
        self.mismatch_reason: str | None = None
        self.rows: deque[PlayedChunk] = deque(maxlen=int_in("report_chunks", report_chunks,
                                                            1, 1 << 24))
        self.samples_played = 0
        self._announced_chunk = 0
        self._unwrap: TimestampUnwrapper | None = None
        self._jitter_ts = 0.0  # RFC 3550 J, in timestamp units (samples)
        self._prev_transit: float | None = None
        self._sender_loopback = False
        self._last_valid_ms = clock()
        self._lat = _LatencySums()
        if session is not None:
            self._check_models(session)
            self._start(session)

    # ------------------------------------------------------------------ session
    def _check_models(self, s: SessionDescription) -> None:
        if s.stream.codec_id != self.codec_id or s.stream.model_id != self.model.model_id:
            raise ModelMismatchError(
                f"the stream is coded with codec {s.stream.codec_id} and model "
                f"{s.stream.model_id}; the loaded ones are {self.codec_id} and "
                f"{self.model.model_id}"
            )

    def _start(self, s: SessionDescription) -> None:
        cfg = s.config(self.conceal)
        delay = default_playout_delay_ms(cfg) if self._delay_arg is None else self._delay_arg
        self.session = s
        self.config = cfg
        self.playout = Playout(self.codec, self.model, cfg, delay, self.window_chunks,
                              history_chunks=DEFAULT_HISTORY_CHUNKS)
        self._unwrap = TimestampUnwrapper(s.timestamp_base)

    @property
    def playout_delay_ms(self) -> float | None:
        return None if self.playout is None else self.playout.playout_delay_ms

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    # ------------------------------------------------------------------ datagrams
    def handle(self, data: bytes, addr, now_ms: float) -> None:
        """Processes one datagram received at ``now_ms`` (see the module rules)."""
        st = self.stats
        st.datagrams += 1
        if self.done:
            return
        try:
            msg = parse_datagram(data)
        except BitstreamError:
            st.malformed += 1
            return
        if isinstance(msg, ControlMessage):
            self._control(msg, addr, now_ms)
            return
        s = self.session
        if s is None:
            st.before_session += 1
            return
        if msg.ssrc != s.ssrc or msg.payload_type != s.payload_type:
            st.foreign += 1
            return
        n = self.config.chunk_samples
        pos = self._unwrap.position(msg.timestamp)
        if pos < 0 or pos % n or pos // n > 0xFFFFFFFF:
            st.malformed += 1
            return
        chunk = pos // n
        pl = self.playout
        if pl.next_deadline_ms is None:  # the first packet anchors the clock: check it
            if abs(chunk - self._announced_chunk) > self.window_chunks:
                st.implausible += 1
                return
            if chunk >= self.window_chunks:  # a late join: start at this chunk
                pl.start_at(chunk)
        try:
            outcome = pl.push(msg.payload, msg.seq, chunk, now_ms)
        except (BitstreamError, ConfigError):  # refused by the transceiver: never fatal
            outcome = "damaged"
        setattr(st, outcome, getattr(st, outcome) + 1)
        if outcome in ("late", "duplicate"):  # the stream is alive, if behind
            self._last_valid_ms = now_ms
        if outcome != "accepted":
            return
        self._unwrap.commit(pos)
        st.payload_bytes += len(msg.payload)
        self._last_valid_ms = now_ms
        self._sender_loopback = _is_loopback(addr)
        transit = now_ms * (SAMPLE_RATE_HZ / 1000.0) - pos
        if self._prev_transit is not None:
            self._jitter_ts += (abs(transit - self._prev_transit) - self._jitter_ts) / 16.0
        self._prev_transit = transit

    def _control(self, msg: ControlMessage, addr, now_ms: float) -> None:
        st = self.stats
        if msg.subtype == SUBTYPE_SESSION:
            try:
                s = parse_session(msg.body)
            except BitstreamError:
                st.malformed += 1
                return
            if s.ssrc != msg.ssrc:
                st.malformed += 1
                return
            nxt = msg.body.get("next_chunk")
            if isinstance(nxt, int) and not isinstance(nxt, bool) and 0 <= nxt <= 0xFFFFFFFF:
                same = self.session is None or self.session.same_stream(s)
                if same and (self.playout is None or self.playout.next_deadline_ms is None):
                    self._announced_chunk = nxt
            if self.session is None:
                try:
                    self._check_models(s)
                except ModelMismatchError as exc:  # another stream's models: not ours
                    st.session_mismatch += 1
                    self.mismatch_reason = str(exc)
                    return
                try:
                    self._start(s)
                except ConfigError as exc:  # a setting this receiver cannot decode
                    st.session_mismatch += 1
                    self.mismatch_reason = str(exc)
                    return
                self._last_valid_ms = now_ms
                self._sender_loopback = _is_loopback(addr)
                return
            if self.session.same_stream(s):
                st.session_copies += 1
                self._last_valid_ms = now_ms
                if self.session.capture_epoch_ms is None and s.capture_epoch_ms is not None:
                    self.session = s
            else:
                st.foreign += 1
            return
        if msg.subtype == SUBTYPE_END:
            if self.session is None or msg.ssrc != self.session.ssrc:
                st.foreign += 1
                return
            try:
                end = parse_end(msg.body)
            except BitstreamError:
                st.malformed += 1
                return
            st.end_messages += 1
            self.end = end
            self.finish("end_of_stream", end.n_chunks)

    # ------------------------------------------------------------------ loop
    def step(self, max_wait_s: float = 0.05) -> None:
        """Waits (at most ``max_wait_s``, less when a chunk falls due or the idle timer
        runs out) for datagrams, reads at most MAX_DATAGRAMS_PER_STEP of them, and plays
        what is due."""
        if self.done:
            return
        now = self.clock()
        wait = min(max_wait_s, (self._last_valid_ms + 1000.0 * self.idle_timeout_s - now) / 1000)
        nd = None if self.playout is None else self.playout.next_deadline_ms
        if nd is not None:
            wait = min(wait, (nd - now) / 1000.0)
        ready, _, _ = select.select([self.sock], [], [], max(0.0, wait))
        if ready:
            for _ in range(MAX_DATAGRAMS_PER_STEP):
                try:
                    data, addr = self.sock.recvfrom(MAX_DATAGRAM_BYTES + 1)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:  # e.g. ECONNREFUSED queued by an ICMP error
                    continue
                self.handle(data, addr, self.clock())
                if self.done:
                    return
        self.play(self.clock())
        if self.clock() - self._last_valid_ms > 1000.0 * self.idle_timeout_s:
            self.finish("idle_timeout")

    def play(self, now_ms: float) -> None:
        """Plays every chunk due at ``now_ms`` (``step`` calls it; a caller driving
        ``handle`` on its own clock calls it too)."""
        if self.playout is not None and not self.done:
            pcm, played = self.playout.play(now_ms, self.clock)
            self._emit(pcm, played)

    def run(self, max_seconds: float = 86400.0, *, max_wait_s: float = 0.05,
            on_step: Callable[[NetReceiver], bool | None] | None = None) -> str | None:
        """The receiving loop: ``step(max_wait_s)`` until done (end of stream, idle
        timeout) or ``max_seconds`` have passed on ``clock`` (then finished as
        ``"time_limit"``; ``math.inf``: no limit).

        Args:
            max_seconds: the time limit, >= 0 (``math.inf`` allowed).
            max_wait_s: the longest wait of one step for datagrams, >= 0.
            on_step: called with the receiver after each step (a status line, a stop
                flag); a true return stops the loop with the stream left unfinished.

        Returns:
            ``finish_reason``: None when ``on_step`` stopped the loop first.

        Raises:
            ConfigError: ``max_seconds`` or ``max_wait_s`` not a number >= 0.
        """
        for name, value in (("max_seconds", max_seconds), ("max_wait_s", max_wait_s)):
            if (isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                                  np.floating))
                    or not value >= 0):
                raise ConfigError(f"{name} must be a number >= 0, got {value!r}")
        stop = self.clock() + 1000.0 * float(max_seconds)
        while not self.done:
            if self.clock() > stop:
                self.finish("time_limit")
                break
            self.step(max_wait_s)
            if on_step is not None and on_step(self):
                break
        return self.finish_reason

    def finish(self, reason: str, n_chunks: int | None = None) -> None:
        """Ends the stream (``finish_reason``): plays every chunk before ``n_chunks`` (None:
        up to the last one held), the missing ones concealed, and the codec's tail."""
        if self.done:
            return
        self.finish_reason = reason
        if self.playout is not None:
            pcm, played = self.playout.finish(n_chunks, self.clock)
            self._emit(pcm, played)

    def _emit(self, pcm: np.ndarray, played: list[PlayedChunk]) -> None:
        st = self.stats
        ppc = self.config.packets_per_chunk if self.playout is not None else 1
        for row in played:
            st.chunks_played += 1
            st.layers_expected += ppc
            st.layers_received += min(row.received_layers, ppc)
            if self.finish_reason is None and row.chunk >= (self.playout.anchor_chunk or 0):
                st.max_playout_lag_ms = max(st.max_playout_lag_ms,
                                            row.played_ms - row.deadline_ms)
                self._lat.add(self, row)
            self.rows.append(row)
        if len(pcm):
            self.samples_played += len(pcm)
            if self.on_audio is not None:
                self.on_audio(pcm)

    # ------------------------------------------------------------------ reports
    @property
    def jitter_ms(self) -> float:
        return self._jitter_ts * 1000.0 / SAMPLE_RATE_HZ

    def status_line(self) -> str:
        """``packets N  loss x %  concealed N  late N  jitter x ms  bitrate x kbps``."""
        st = self.stats
        rx = None if self.playout is None else self.playout.rx
        concealed = 0 if rx is None else rx.stats.chunks_concealed
        media_s = st.chunks_played * (0 if self.playout is None else self.playout.chunk_ms) / 1e3
        kbps = st.payload_bytes * 8 / media_s / 1000 if media_s else 0.0
        return (f"packets {st.accepted}  loss {100 * st.loss_rate:.1f} %  concealed {concealed}"
                f"  late {st.late}  jitter {self.jitter_ms:.1f} ms  bitrate {kbps:.2f} kbps")

    def latency_report(self) -> dict:
        """Capture-to-playout latency and its parts (module doc), means over the chunks
        whose base packet arrived in time; None where it cannot be measured (no shared
        clock with the sender: not loopback, or no capture epoch)."""
        cfg = getattr(self, "config", None)
        chunk_ms = None if cfg is None else 1000.0 * cfg.chunk_samples / SAMPLE_RATE_HZ
        look_ms = 1000.0 * self.codec.lookahead_samples / SAMPLE_RATE_HZ
        sender_encode = None
        if self.end is not None:
            snd = self.end.sender
            total, n = snd.get("encode_ms_total"), snd.get("chunks")
            if isinstance(total, (int, float)) and isinstance(n, int) and n > 0:
                sender_encode = float(total) / n
        return self._lat.report(chunk_ms, look_ms, self.playout_delay_ms, sender_encode,
                                self._sender_loopback and self.session is not None
                                and self.session.capture_epoch_ms is not None)

    def report(self) -> dict:
        """Everything measured, as strict-JSON-able values."""
        rx = None if self.playout is None else self.playout.rx
        return {
            "finish_reason": self.finish_reason,
            "clocked_receiver": True,  # (the only form since the Receiver has a clock)
            "playout_delay_ms": self.playout_delay_ms,
            "samples_played": self.samples_played,
            "jitter_ms": self.jitter_ms,
            "loss_rate": self.stats.loss_rate,
            "net": asdict(self.stats),
            "receiver": None if rx is None else asdict(rx.stats),
            "sender": None if self.end is None else self.end.sender,
            "end_of_stream": None if self.end is None else {
                "n_chunks": self.end.n_chunks, "n_samples": self.end.n_samples},
            "latency": self.latency_report(),
            "mismatch_reason": self.mismatch_reason,
        }

    def close(self) -> None:
        self.sock.close()


def _is_loopback(addr) -> bool:
    try:
        return ipaddress.ip_address(addr[0]).is_loopback
    except (ValueError, TypeError, IndexError):
        return False


class _LatencySums:
    """Running sums of the latency parts (bounded memory: sums and a window for p95)."""

    def __init__(self) -> None:
        self.n = 0
        self.sums = {"transit_ms": 0.0, "jitter_buffer_ms": 0.0, "decode_ms": 0.0,
                     "total_ms": 0.0}
        self.totals: deque[float] = deque(maxlen=4096)
        self.jb_n = 0
        self.jb_sum = 0.0
        self.dec_sum = 0.0
        self.dec_n = 0

    def add(self, rx: NetReceiver, row: PlayedChunk) -> None:
        self.dec_sum += row.played_ms - row.deadline_ms
        self.dec_n += 1
        if row.arrival_ms is None:
            return
        self.jb_sum += row.deadline_ms - row.arrival_ms
        self.jb_n += 1
        s = rx.session
        if s is None or s.capture_epoch_ms is None:
            return
        cfg = rx.config
        chunk_ms = 1000.0 * cfg.chunk_samples / SAMPLE_RATE_HZ
        look = 1000.0 * rx.codec.lookahead_samples / SAMPLE_RATE_HZ
        capture_end = s.capture_epoch_ms + (row.chunk + 1) * chunk_ms
        parts = {
            "transit_ms": row.arrival_ms - capture_end,
            "jitter_buffer_ms": row.deadline_ms - row.arrival_ms,
            "decode_ms": row.played_ms - row.deadline_ms,
        }
        total = chunk_ms + look + sum(parts.values())
        parts["total_ms"] = total
        for k, v in parts.items():
            self.sums[k] += v
        self.totals.append(total)
        self.n += 1

    def report(self, chunk_ms, look_ms, delay_ms, sender_encode_ms, shared_clock) -> dict:
        """The latency JSON: ``total_ms`` (mean), ``total_p95_ms`` and ``parts_ms`` that
        add up to the mean (``sender_compute`` + ``network`` = ``transit_ms``)."""
        jb = self.jb_sum / self.jb_n if self.jb_n else None
        dec = self.dec_sum / self.dec_n if self.dec_n else None
        out = {
            "shared_clock": bool(shared_clock),
            "chunks_measured": self.n if shared_clock else 0,
            "playout_delay_ms": delay_ms,
            "total_ms": None,
            "total_p95_ms": None,
            "transit_ms": None,
            "parts_ms": {
                "chunk": chunk_ms,
                "codec_lookahead": look_ms,
                "sender_compute": sender_encode_ms,
                "network": None,
                "jitter_buffer": jb,
                "receiver_compute": dec,
            },
        }
        if shared_clock and self.n:
            transit = self.sums["transit_ms"] / self.n
            out["transit_ms"] = transit
            out["total_ms"] = self.sums["total_ms"] / self.n
            out["total_p95_ms"] = float(np.percentile(np.asarray(self.totals), 95))
            parts = out["parts_ms"]
            parts["jitter_buffer"] = self.sums["jitter_buffer_ms"] / self.n
            parts["receiver_compute"] = self.sums["decode_ms"] / self.n
            if sender_encode_ms is not None:
                parts["network"] = transit - sender_encode_ms
        return out


def latency_line(lat: dict) -> str:
    """One line: ``latency 93.1 ms (p95 97.0): chunk 40.0 + lookahead 15.0 + ...``."""
    p = lat["parts_ms"]

    def f(v) -> str:
        return "n/a" if v is None else f"{v:.1f}"

    parts = (f"chunk {f(p['chunk'])} + codec lookahead {f(p['codec_lookahead'])} + sender "
             f"compute {f(p['sender_compute'])} + network {f(p['network'])} + jitter buffer "
             f"{f(p['jitter_buffer'])} + receiver compute {f(p['receiver_compute'])} ms")
    if lat["total_ms"] is None:
        return f"latency n/a (no clock shared with the sender): {parts}"
    return f"latency {f(lat['total_ms'])} ms (p95 {f(lat['total_p95_ms'])}): {parts}"


__all__ = [
    "DEFAULT_IDLE_TIMEOUT_S",
    "DEFAULT_PLAYOUT_DELAY_MS",
    "MAX_DATAGRAMS_PER_STEP",
    "NetReceiver",
    "NetStats",
    "latency_line",
]
