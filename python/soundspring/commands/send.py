"""``soundspring send IN.wav --to HOST:PORT``: the transceiver live over UDP/RTP.

The file plays the microphone: chunk k is coded and sent when its audio would have been
captured (a 10 s file takes about 10 s). Loss (``--channel``, ``--loss``, ``--burst``,
``--seed``, ``--trace``: drawn per packet in send order, as ``soundspring simulate``
draws them) and delay (``--jitter-ms J``: each datagram delayed uniformly in [0, J] ms,
seeded by ``--seed``) are injected at the sender. The stream begins with its session
description (repeated in-band; ``--sdp FILE`` also writes it as SDP-like text) and ends
with an end-of-stream message. Prints what was sent (``--json``: one JSON object).
"""

from __future__ import annotations

import argparse
import json
import sys

from ..config import SAMPLE_RATE_HZ
from ..models.weights_io import load_models
from ..net import RtpSender, open_udp, parse_address, send_pcm, to_sdp
from ..net.sender import MAX_JITTER_MS, monotonic_ms, new_session, warm_up
from ..transceiver import Transmitter, settle_heap
from ..transceiver.stream import stream_header
from ..transport import LOSS_MODEL_KINDS
from ._common import (
    add_channel_arguments,
    add_io_flags,
    add_model_arguments,
    add_stream_arguments,
    apply_threads,
    check_output_path,
    float_arg,
    read_audio,
    write_output_bytes,
)
from .encode import config_from_args
from .simulate import make_channel


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="audio file (any rate; mixed down to mono), or - for stdin")
    parser.add_argument("--to", required=True, metavar="HOST:PORT",
                        help="the receiver's address ([IPV6]:PORT for IPv6)")
    add_stream_arguments(parser)
    parser.add_argument("--channel", choices=LOSS_MODEL_KINDS, default=None,
                        help="loss injected at the sender (default: bernoulli when --loss > 0, "
                             "else none)")
    add_channel_arguments(parser, loss=0.0)
    parser.add_argument("--trace", default=None, help="loss trace file, one 0/1 per packet")
    parser.add_argument("--jitter-ms", type=float_arg(0.0, MAX_JITTER_MS), default=0.0,
                        help="delay each datagram uniformly in [0, J] ms (seeded by --seed)")
    parser.add_argument("--sdp", metavar="FILE", default=None,
                        help="also write the session description as SDP-like text")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_model_arguments(parser)
    add_io_flags(parser, force_help="overwrite --sdp FILE", quiet_help="no progress line")


def run(args: argparse.Namespace) -> int:
    host, port = parse_address(args.to)
    if args.sdp is not None:
        check_output_path(args.sdp, args.force, "SDP")
    if args.channel is None:
        args.channel = "bernoulli" if args.loss > 0 else "none"
    apply_threads(args)
    cfg = config_from_args(args)
    channel = make_channel(args)  # a bad --trace fails here, before any audio is coded
    pcm = read_audio(args.input)
    codec, model = load_models(args.codec, args.lm, backend=args.lm_backend)
    warm_up(codec, model, cfg)
    settle_heap()  # no full garbage collection walks the models mid-stream
    sock = open_udp(host, port, bind=False)
    try:
        session = new_session(stream_header(codec, model, cfg, len(pcm)), monotonic_ms() + 20.0)
        if args.sdp is not None:
            write_output_bytes(args.sdp, to_sdp(session, host, port).encode("utf-8"))
        sender = RtpSender(sock, session, loss_model=channel, jitter_ms=args.jitter_ms,
                           seed=args.seed)
        tty = not args.quiet and sys.stderr.isatty()

        def progress(k: int) -> None:
            if tty and k % 25 == 0:
                st = sender.stats
                print(f"\rsoundspring send: {(k + 1) * cfg.chunk_samples / SAMPLE_RATE_HZ:.1f} s"
                      f"  packets {st.packets_sent}  dropped {st.packets_dropped_loss} (loss) "
                      f"{st.packets_dropped_kernel} (socket)", end="", file=sys.stderr)

        stats = send_pcm(Transmitter(codec, model, cfg), pcm, sender, on_chunk=progress)
    finally:
        sock.close()
    if tty:
        print(file=sys.stderr)
    if stats.chunks_behind:
        chunk_ms = 1000.0 * cfg.chunk_samples / SAMPLE_RATE_HZ
        print(f"soundspring send: coding fell behind the audio clock for "
              f"{stats.chunks_behind} of {stats.chunks} chunks (mean "
              f"{stats.encode_ms_total / max(1, stats.chunks):.1f} ms per {chunk_ms:g} ms "
              "chunk): their packets left late and may be concealed", file=sys.stderr)
    report = {
        "to": f"{host}:{port}",
        "ssrc": session.ssrc,
        "duration_s": len(pcm) / SAMPLE_RATE_HZ,
        "bitrate_bps": stats.payload_bytes * 8 * SAMPLE_RATE_HZ / max(1, len(pcm)),
        "channel": args.channel,
        "jitter_ms": args.jitter_ms,
        **stats.to_json(),
        "encode_ms_mean": stats.encode_ms_total / max(1, stats.chunks),
    }
    if args.json:
        print(json.dumps(report, allow_nan=False))
    else:
        for key, value in report.items():
            text = f"{value:.4f}" if isinstance(value, float) else str(value)
            print(f"{key:>22}: {text}")
    return 0
