"""``soundspring receive --port PORT OUT.wav``: receive one live stream, write it as WAV.

Binds ``--bind`` (default 127.0.0.1) at ``--port`` (0: an ephemeral port), prints
``soundspring receive: listening on HOST:PORT`` on stderr once ready, and follows the first
stream whose session description matches the loaded models (or the one ``--sdp FILE``
describes). Chunks are played on the jitter buffer's clock (``--playout-delay-ms``, default
20 ms, one chunk more with FEC): a packet that misses its chunk's deadline is lost and
concealed. A status line on stderr shows packets, loss, concealed chunks, late packets,
interarrival jitter and bitrate (refreshed in place on a terminal, every 10 s otherwise;
``-q``: only at the end). After the end-of-stream message, ``--idle-timeout-s`` without
the stream, or Ctrl-C (exit status 130), it writes ``OUT.wav``: the audio aligned with the
sender's input (with no loss, the same samples as ``encode`` + ``decode``). Then it prints
the capture-to-playout latency split into its parts and exits (``--json``: the whole
report on stdout; ``--report FILE.json``: also one row per chunk).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from ..errors import ConfigError
from ..models.weights_io import load_models
from ..net import NetReceiver, from_sdp, latency_line, open_udp
from ..net.receiver import DEFAULT_IDLE_TIMEOUT_S, DEFAULT_PLAYOUT_DELAY_MS
from ..net.sender import warm_up
from ..transceiver import TransceiverConfig, settle_heap
from ._common import (
    add_conceal_argument,
    add_io_flags,
    add_model_arguments,
    apply_threads,
    atomic_output,
    check_output_path,
    conceal_from_args,
    float_arg,
    int_arg,
    pcm16_bytes,
    pcm16_wav_header,
    read_input_bytes,
    write_output_bytes,
)

STATUS_INTERVAL_TTY_S = 0.5
STATUS_INTERVAL_LOG_S = 10.0
MAX_RUN_S = 86400.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output", help="16 kHz WAV file to write")
    parser.add_argument("--port", type=int_arg(0, 65535), required=True,
                        help="UDP port to listen on (0: an ephemeral port, printed)")
    parser.add_argument("--bind", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--sdp", metavar="FILE", default=None,
                        help="the session description written by send --sdp")
    parser.add_argument("--playout-delay-ms", type=float_arg(0.0, 60000.0), default=None,
                        help=f"jitter-buffer delay (default {DEFAULT_PLAYOUT_DELAY_MS:g} ms; one chunk more "
                             "for --fec streams)")
    parser.add_argument("--idle-timeout-s", type=float_arg(0.0, 86400.0, lo_open=True),
                        default=DEFAULT_IDLE_TIMEOUT_S,
                        help=f"stop after this long without the stream (default "
                             f"{DEFAULT_IDLE_TIMEOUT_S:g} s)")
    add_conceal_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--report", metavar="FILE.json", default=None,
                        help="write the report with one row per chunk (strict JSON)")
    add_model_arguments(parser)
    add_io_flags(parser, quiet_help="no live status line")


class _WavWriter:
    """16-bit WAV written as the audio plays (memory: one block), header fixed at the end."""

    def __init__(self, f, skip_samples: int) -> None:
        self.f = f
        self.skip = skip_samples
        self.n = 0
        f.write(pcm16_wav_header(0))

    def write(self, pcm: np.ndarray) -> None:
        cut = min(self.skip, len(pcm))  # the codec's delay: aligned with the sender's input
        self.skip -= cut
        if cut < len(pcm):
            self.f.write(pcm16_bytes(pcm[cut:]))
            self.n += len(pcm) - cut

    def finish(self, n_samples: int) -> None:
        if self.n > n_samples:
            self.f.truncate(44 + 2 * n_samples)
        elif self.n < n_samples:  # the stream ended early: silence, as decode does
            self.f.write(b"\0\0" * (n_samples - self.n))
        self.f.seek(0)
        self.f.write(pcm16_wav_header(n_samples))
        self.f.flush()
        self.n = n_samples


def _status(rx: NetReceiver, final: bool = False) -> str:
    return f"soundspring receive: {rx.status_line()}" + (" (done)" if final else "")


def run(args: argparse.Namespace) -> int:
    if args.output == "-":
        raise ConfigError("receive writes a file (the WAV header is completed at the end); "
                          "give a path, not -")
    check_output_path(args.output, args.force)
    if args.report is not None:
        if args.report == args.output:
            raise ConfigError("--report must name another file than the audio output")
        check_output_path(args.report, args.force, "report")
    session = None
    if args.sdp is not None:
        session = from_sdp(read_input_bytes(args.sdp))
    apply_threads(args)
    sock = open_udp(args.bind, args.port, bind=True)  # a port in use fails before the models load
    try:
        codec, model = load_models(args.codec, args.lm, backend=args.lm_backend)
        conceal = conceal_from_args(args)
        with atomic_output(args.output) as tmp, open(tmp, "wb") as f:
            warm_up(codec, model, TransceiverConfig(conceal=conceal))
            settle_heap()  # no full garbage collection walks the models mid-stream
            writer = _WavWriter(f, codec.lookahead_samples)
            rx = NetReceiver(sock, codec, model, session=session,
                             playout_delay_ms=args.playout_delay_ms,
                             idle_timeout_s=args.idle_timeout_s, conceal=conceal,
                             on_audio=writer.write)
            host, port = sock.getsockname()[:2]
            print(f"soundspring receive: listening on {host}:{port}", file=sys.stderr,
                  flush=True)
            _receive(rx, args.quiet)
            if rx.session is None:
                why = f"; {rx.mismatch_reason}" if rx.mismatch_reason else ""
                raise ConfigError(f"no stream arrived within {args.idle_timeout_s:g} s "
                                  f"({rx.stats.datagrams} datagrams){why}")
            if rx.end is not None:
                n_samples = rx.end.n_samples
            else:  # idle timeout: what played (the header's length when the sender knew it)
                known = rx.session.stream.n_samples
                n_samples = min(known, writer.n) if known else writer.n
            writer.finish(n_samples)
    finally:
        sock.close()
    report = rx.report()
    report["output"] = {"path": os.fspath(args.output), "n_samples": n_samples}
    print(_status(rx, final=True), file=sys.stderr)
    print(f"soundspring receive: {latency_line(report['latency'])}", file=sys.stderr)
    if rx.finish_reason != "end_of_stream":
        why = {"idle_timeout": f"no datagram of the stream for {args.idle_timeout_s:g} s",
               "interrupted": "interrupted", "time_limit": "time limit"}[rx.finish_reason]
        print(f"soundspring receive: stopped before the end-of-stream message ({why})",
              file=sys.stderr)
    if args.report is not None:
        full = dict(report)
        full["chunks"] = [
            {"chunk": r.chunk, "deadline_ms": r.deadline_ms, "arrival_ms": r.arrival_ms,
             "played_ms": r.played_ms, "received_layers": r.received_layers}
            for r in rx.rows
        ]
        history = rx.playout.rx.history if rx.playout is not None else None
        full["outcomes"] = [
            {"chunk": int(o.chunk), "status": o.status} for o in (history or [])
        ]
        write_output_bytes(args.report, json.dumps(full, allow_nan=False).encode("utf-8"))
    if args.json:
        print(json.dumps(report, allow_nan=False))
    return 130 if rx.finish_reason == "interrupted" else 0


def _receive(rx: NetReceiver, quiet: bool) -> None:
    """``rx.run`` (bounded: end of stream, idle timeout or MAX_RUN_S) with the status line
    on stderr every STATUS_INTERVAL_*_S once the stream is known (``quiet``: none); Ctrl-C
    finishes the stream as "interrupted", keeping what was received."""
    tty = sys.stderr.isatty()
    interval_ms = 1000.0 * (STATUS_INTERVAL_TTY_S if tty else STATUS_INTERVAL_LOG_S)
    next_status = rx.clock() + interval_ms

    def status(rx: NetReceiver) -> None:
        nonlocal next_status
        if rx.session is not None and rx.clock() >= next_status:
            next_status = rx.clock() + interval_ms
            print(("\r" if tty else "") + _status(rx), end="" if tty else "\n",
                  file=sys.stderr, flush=True)

    try:
        rx.run(MAX_RUN_S, on_step=None if quiet else status)
    except KeyboardInterrupt:
        rx.finish("interrupted")
    if tty and not quiet:
        print(file=sys.stderr)
