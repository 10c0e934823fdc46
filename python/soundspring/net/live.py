"""The application API: feed microphone frames, read playout frames (threads).

Threads, not asyncio: audio APIs (PortAudio / sounddevice, ALSA, CoreAudio) call back on
their own real-time threads and cannot await; the codec and the LM spend their time in
torch and the C++ core, which release the GIL; and a worker thread per end keeps the
caller's audio callback down to one non-blocking queue operation. An asyncio application
calls ``feed`` / ``read(timeout_s=0)`` from its loop, or ``read`` through
``loop.run_in_executor``.

Example (loopback, 20 ms frames)::

    rx = LiveReceiver(codec, model, port=0)            # binds 127.0.0.1, an ephemeral port
    tx = LiveSender(codec, model, TransceiverConfig(), to=rx.address)
    for frame in mic_frames:                           # float32 [320] each, 16 kHz
        tx.feed(frame)                                 # never blocks
        out = rx.read(timeout_s=0.0)                   # a playout frame, or None
    tx.close(); rx.close()
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
import time
from collections import deque

import numpy as np
import torch

from .._validate import int_in
from ..audio import check_pcm
from ..config import DEFAULT_CONCEAL, SAMPLE_RATE_HZ, TransceiverConfig
from ..errors import ConfigError
from ..transceiver import Transmitter
from ..transceiver.stream import stream_header
from .receiver import DEFAULT_IDLE_TIMEOUT_S, NetReceiver
from .sender import (
    SESSION_COPIES_AT_START,
    RtpSender,
    monotonic_ms,
    new_session,
    open_udp,
    warm_up,
)
from .session import SESSION_REPEAT_CHUNKS, SessionDescription

FRAME_MS_CHOICES = (10, 20)
DEFAULT_QUEUE_FRAMES = 100
"""Frames a live end buffers between the audio thread and its worker (2 s of 20 ms)."""
_JOIN_S = 10.0


def _same_threads(n: int) -> None:
    """Gives the calling (worker) thread the creator's torch thread count. The setting is
    per thread (OpenMP's): a new thread otherwise starts with one OpenMP thread per core,
    and on a busy machine their spin-waits made coding a chunk 15x slower (measured: 5.4 s
    instead of 0.37 s for 1 s of audio with the tiny codec, 2 cores)."""
    torch.set_num_threads(n)


def _frame_samples(frame_ms: int) -> int:
    if frame_ms not in FRAME_MS_CHOICES:
        raise ConfigError(f"frame_ms must be one of {FRAME_MS_CHOICES}, got {frame_ms!r}")
    return SAMPLE_RATE_HZ * frame_ms // 1000


class LiveSender:
    """Codes and sends microphone frames on a worker thread.

    Args:
        codec, model: the coding models.
        cfg: the stream settings.
        to: (host, port) of the receiver.
        frame_ms: 10 or 20: the size of the frames ``feed`` takes.
        loss_model, jitter_ms, seed: injected loss and delay (``RtpSender``).
        queue_frames: frames buffered for the worker; when it is full (the coder cannot
            keep up) a fed frame is dropped and counted (``frames_dropped``), and the
            audio thread is never blocked.
        session_repeat_chunks: chunks between in-band session copies.
    """

    def __init__(self, codec, model, cfg: TransceiverConfig, to: tuple[str, int], *,
                 frame_ms: int = 20, loss_model=None, jitter_ms: float = 0.0, seed: int = 0,
                 queue_frames: int = DEFAULT_QUEUE_FRAMES,
                 session_repeat_chunks: int = SESSION_REPEAT_CHUNKS) -> None:
        self.frame_samples = _frame_samples(frame_ms)
        self.frame_ms = frame_ms
        warm_up(codec, model, cfg)
        self._tx = Transmitter(codec, model, cfg)
        self._header = stream_header(codec, model, cfg, 0)  # a live source: length unknown
        self._sock = open_udp(to[0], int(to[1]), bind=False)
        self._sender: RtpSender | None = None
        self._loss, self._jitter, self._seed = loss_model, jitter_ms, seed
        self._repeat = session_repeat_chunks
        self._queue: queue.Queue = queue.Queue(int_in("queue_frames", queue_frames, 1, 1 << 20))
        self.frames_fed = 0
        self.frames_dropped = 0
        self.samples_sent = 0
        self._closed = False
        self._error: BaseException | None = None
        self._threads = torch.get_num_threads()
        self._thread = threading.Thread(target=self._work, name="soundspring-send", daemon=True)
        self._thread.start()

    def feed(self, frame: np.ndarray) -> bool:
        """Queues one frame float32 [frame_samples] at 16 kHz (call from the audio thread).
        Returns False (and counts it) when the frame was dropped: queue full or closed.

        Raises:
            ConfigError: the frame has the wrong length or is not finite float audio.
        """
        frame = check_pcm(frame, "frame")
        if len(frame) != self.frame_samples:
            raise ConfigError(f"frame must hold {self.frame_samples} samples "
                              f"({self.frame_ms} ms), got {len(frame)}")
        if self._closed:
            self.frames_dropped += 1
            return False
        now = monotonic_ms()
        try:
            self._queue.put_nowait((now, frame.copy()))
        except queue.Full:
            self.frames_dropped += 1
            return False
        self.frames_fed += 1
        return True

    def _start(self, first_feed_ms: float) -> RtpSender:
        epoch = first_feed_ms - self.frame_ms  # the first frame began one frame earlier
        session = new_session(self._header, epoch)
        sender = RtpSender(self._sock, session, loss_model=self._loss, jitter_ms=self._jitter,
                           seed=self._seed, session_repeat_chunks=self._repeat)
        sender.send_session(SESSION_COPIES_AT_START)
        return sender

    def _work(self) -> None:
        _same_threads(self._threads)
        try:
            while True:
                try:
                    item = self._queue.get(timeout=0.02)
                except queue.Empty:
                    if self._sender is not None:
                        self._sender.service()
                    continue
                if item is None:
                    break
                fed_ms, frame = item
                if self._sender is None:
                    self._sender = self._start(fed_ms)
                start = time.perf_counter()
                packets = self._tx.push(frame)
                if packets:
                    st = self._sender.stats
                    spent = 1000.0 * (time.perf_counter() - start)
                    st.encode_ms_total += spent
                    st.encode_ms_max = max(st.encode_ms_max, spent)
                self.samples_sent += len(frame)
                self._sender.send_packets(packets)
            if self._sender is not None:
                self._sender.send_packets(self._tx.flush())
                self._sender.drain()
                self._sender.send_end(self._tx.chunks_sent, self.samples_sent)
        except BaseException as exc:  # noqa: BLE001  (reported by close)
            self._error = exc

    @property
    def stats(self):
        """The ``SenderStats`` (None before the first frame)."""
        return None if self._sender is None else self._sender.stats

    def close(self) -> None:
        """Sends what is buffered, the last partial chunk and the end of stream; joins the
        worker and closes the socket. Re-raises an error of the worker."""
        if not self._closed:
            self._closed = True
            for _ in range(int(_JOIN_S / 0.01)):  # the sentinel, even into a full queue
                try:
                    self._queue.put(None, timeout=0.01)
                    break
                except queue.Full:
                    continue
            self._thread.join(_JOIN_S)
            self._sock.close()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> LiveSender:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LiveReceiver:
    """Receives one stream on a worker thread and hands out playout frames.

    Args:
        codec, model: the decoding models.
        port: UDP port to bind (0 = ephemeral; see ``address``).
        bind: address to bind (default 127.0.0.1: loopback only).
        session: the session description when known out of band (else in-band).
        playout_delay_ms: jitter-buffer delay (None: one chunk).
        frame_ms: 10 or 20: the size of the frames ``read`` returns.
        idle_timeout_s: finish after this long without the stream.
        conceal: concealment mode.
        queue_frames: playout frames held for the reader; when the reader falls behind
            the oldest are dropped (``frames_dropped``): memory stays bounded.
    """

    def __init__(self, codec, model, *, port: int = 0, bind: str = "127.0.0.1",
                 session: SessionDescription | None = None,
                 playout_delay_ms: float | None = None, frame_ms: int = 20,
                 idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S, conceal: str = DEFAULT_CONCEAL,
                 queue_frames: int = DEFAULT_QUEUE_FRAMES) -> None:
        self.frame_samples = _frame_samples(frame_ms)
        warm_up(codec, model, TransceiverConfig(conceal=conceal))
        sock = open_udp(bind, int_in("port", port, 0, 65535), bind=True)
        self.address: tuple[str, int] = sock.getsockname()[:2]
        self._lock = threading.Lock()
        self._frames: deque[np.ndarray] = deque(maxlen=int_in("queue_frames", queue_frames, 1,
                                                               1 << 20))
        self._pending = np.zeros(0, dtype=np.float32)
        self._skip = codec.lookahead_samples
        self._ready = threading.Event()
        self.frames_dropped = 0
        self._stop = threading.Event()
        self._error: BaseException | None = None
        try:
            self.receiver = NetReceiver(sock, codec, model, session=session,
                                        playout_delay_ms=playout_delay_ms,
                                        idle_timeout_s=idle_timeout_s, conceal=conceal,
                                        on_audio=self._on_audio)
        except BaseException:
            sock.close()
            raise
        self._threads = torch.get_num_threads()
        self._thread = threading.Thread(target=self._work, name="soundspring-receive",
                                        daemon=True)
        self._thread.start()

    def _on_audio(self, pcm: np.ndarray) -> None:
        cut = min(self._skip, len(pcm))  # the codec's delay: aligned with the input
        self._skip -= cut
        buf = np.concatenate([self._pending, pcm[cut:]])
        n = self.frame_samples
        whole = len(buf) - len(buf) % n
        with self._lock:
            for start in range(0, whole, n):
                if len(self._frames) == self._frames.maxlen:
                    self.frames_dropped += 1
                self._frames.append(buf[start:start + n])
        self._pending = buf[whole:]
        self._ready.set()

    def _work(self) -> None:
        _same_threads(self._threads)
        try:
            if not self._stop.is_set():  # until the stream ends or close() stops it
                self.receiver.run(math.inf, max_wait_s=0.02,
                                  on_step=lambda _rx: self._stop.is_set())
            if len(self._pending):  # the last partial frame, zero-padded
                pad = np.zeros(self.frame_samples - len(self._pending), dtype=np.float32)
                self._on_audio_tail(np.concatenate([self._pending, pad]))
        except BaseException as exc:  # noqa: BLE001  (reported by close)
            self._error = exc
        finally:
            self._ready.set()

    def _on_audio_tail(self, frame: np.ndarray) -> None:
        with self._lock:
            self._frames.append(frame)
        self._pending = np.zeros(0, dtype=np.float32)

    @property
    def done(self) -> bool:
        """The stream ended (end of stream, idle timeout) and every frame was read."""
        with self._lock:
            return not self._thread.is_alive() and not self._frames

    def read(self, timeout_s: float = 0.1) -> np.ndarray | None:
        """The next playout frame float32 [frame_samples], waiting at most ``timeout_s``;
        None when none is ready (or the stream is over: see ``done``)."""
        deadline = time.monotonic() + max(0.0, float(timeout_s))
        for _ in range(1 + int(max(0.0, float(timeout_s)) / 0.005)):
            with self._lock:
                if self._frames:
                    return self._frames.popleft()
                self._ready.clear()
            left = deadline - time.monotonic()
            if left <= 0 or not self._thread.is_alive():
                break
            self._ready.wait(min(left, 0.05))
        with self._lock:
            return self._frames.popleft() if self._frames else None

    @property
    def stats(self):
        return self.receiver.stats

    def close(self, timeout_s: float = _JOIN_S) -> None:
        """Stops the worker (if still running) and closes the socket."""
        self._stop.set()
        self._thread.join(timeout_s)
        with contextlib.suppress(OSError):
            self.receiver.close()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> LiveReceiver:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["FRAME_MS_CHOICES", "LiveReceiver", "LiveSender"]
