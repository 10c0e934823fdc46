"""Shared options and I/O rules of the transceiver commands (opusenc / encodec manners).

Inputs:
    ``-`` is stdin (audio bytes in any format libsndfile reads, or a ``.spring`` file); a
    missing input is "cannot read X: no such file"; a folder is refused.

Outputs (``encode``, ``decode``, ``simulate``; ``demo --out-dir`` likewise):
    ``-`` is stdout. Otherwise the output's folder must already exist: a missing folder is
    refused ("folder X does not exist"), as ``cp`` and ``opusenc`` do; nothing is created
    but the file itself (``demo`` creates ``--out-dir`` itself, one level, inside an
    existing folder). An output that is a folder is refused; an existing file needs
    ``--force``; a device or FIFO (``/dev/null``) is written in place. Files are written
    to ``NAME.part`` and renamed onto ``NAME`` only once complete; on every error
    (unwritable place, full device, Ctrl-C) the ``.part`` is removed, so a failed run
    leaves nothing behind. The checks run before any audio is read or coded, and again
    at the write.

Numeric options are checked by argparse (exit 2, one line naming the allowed range);
``-b`` accepts only ``config.BITRATES_KBPS``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import math
import os
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..config import (
    BITRATES_KBPS,
    CHECK_BITS_RANGE,
    CODING_BACKENDS,
    CONCEAL_MODES,
    DEFAULT_CHUNK_FRAMES,
    DEFAULT_CODING_BACKEND,
    DEFAULT_CONCEAL,
    MAX_CHUNK_FRAMES,
    MAX_CONTEXT_FRAMES,
    SAMPLE_RATE_HZ,
)
from ..errors import ConfigError, SoundspringError

MAX_SEED = 2**64 - 1
MAX_THREADS = 256
MAX_INPUT_BYTES = 4 << 30
"""Largest .spring input read (4 GiB)."""

# ---- argparse types: each raises ArgumentTypeError (a usage error, exit 2) ----------------


def _fmt(x: float) -> str:
    return f"{x:g}"


def bitrate_arg(text: str) -> float:
    """``-b``: one of ``BITRATES_KBPS`` (1.5 / 3 / 6 / 12); nan, inf and 7 are refused."""
    choices = ", ".join(_fmt(b) for b in BITRATES_KBPS)
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if value not in BITRATES_KBPS:
        raise argparse.ArgumentTypeError(f"invalid bitrate {text!r} kbps (choose from {choices})")
    return value


def int_arg(lo: int, hi: int) -> Callable[[str], int]:
    """An argparse type: an integer in [lo, hi]."""

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            value = None
        if value is None or not lo <= value <= hi:
            hi_s = "2**64-1" if hi == MAX_SEED else str(hi)
            raise argparse.ArgumentTypeError(f"expected an integer in [{lo}, {hi_s}], got {text!r}")
        return value

    parse.__name__ = "integer"
    return parse


def float_arg(lo: float, hi: float, lo_open: bool = False,
              hi_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number in [lo, hi] (``(`` / ``)`` where open)."""
    form = f"{'(' if lo_open else '['}{_fmt(lo)}, {_fmt(hi)}{')' if hi_open else ']'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        ok = (math.isfinite(value) and (lo < value if lo_open else lo <= value)
              and (value < hi if hi_open else value <= hi))
        if not ok:
            raise argparse.ArgumentTypeError(f"expected a finite number in {form}, got {text!r}")
        return value

    parse.__name__ = "number"
    return parse


seed_arg = int_arg(0, MAX_SEED)
loss_arg = float_arg(0.0, 1.0)
burst_arg = float_arg(1.0, 1e6)
threads_arg = int_arg(1, MAX_THREADS)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--codec", default=None, help="codec weights/checkpoint (default: shipped)")
    parser.add_argument(
        "--lm",
        default="default",
        help="SpringLM weights, 'default' (shipped) or 'none' (static PMFs, no LM)",
    )
    parser.add_argument(
        "--lm-backend",
        choices=CODING_BACKENDS,
        default=DEFAULT_CODING_BACKEND,
        help="how SpringLM runs: 'engine' (the deterministic C++ engine, the default: "
             "bit-identical on every machine) or 'torch' (the PyTorch reference; its "
             "streams decode only with 'torch')",
    )


def add_bitrate_argument(parser: argparse.ArgumentParser, default: float = 6.0) -> None:
    parser.add_argument(
        "-b",
        "--bitrate",
        type=bitrate_arg,
        default=default,
        help=f"raw token bitrate in kbps, one of {', '.join(_fmt(b) for b in BITRATES_KBPS)}",
    )


def add_channel_arguments(parser: argparse.ArgumentParser, loss: float = 0.1,
                          burst: float = 2.0) -> None:
    """``--loss`` [0, 1], ``--burst`` [1, 1e6] and ``--seed`` [0, 2**64)."""
    parser.add_argument("--loss", type=loss_arg, default=loss,
                        help="packet loss rate in [0, 1] (bernoulli; gilbert needs < 1)")
    parser.add_argument("--burst", type=burst_arg, default=burst,
                        help="mean burst length in packets, >= 1 (gilbert)")
    parser.add_argument("--seed", type=seed_arg, default=0, help="channel seed in [0, 2**64)")


def add_stream_arguments(parser: argparse.ArgumentParser) -> None:
    add_bitrate_argument(parser)
    parser.add_argument(
        "--chunk-frames",
        type=int_arg(1, MAX_CHUNK_FRAMES),
        default=DEFAULT_CHUNK_FRAMES,
        help=f"frames (20 ms) per packet interval, 1-{MAX_CHUNK_FRAMES}",
    )
    from ..transceiver import TransceiverConfig

    defaults = TransceiverConfig()
    parser.add_argument(
        "--context-frames", type=int_arg(0, MAX_CONTEXT_FRAMES), default=defaults.context_frames,
        help=f"entropy-context reach of the LM in frames, 0-50 (default {defaults.context_frames})",
    )
    parser.add_argument("--progressive", action="store_true", help="progressive fine coding")
    parser.add_argument("--check-bits", type=int_arg(*CHECK_BITS_RANGE), default=defaults.check_bits,
                        help="bits of each integrity check, 0-16 (0: none, so corruption may "
                             "play): one per chunk; --layered: one per packet; a base check "
                             "too in FEC copies and when --context-frames >= --chunk-frames")
    parser.add_argument(
        "--fec", action="store_true", help="copy each base payload into the next chunk"
    )
    parser.add_argument(
        "--layered", action="store_true",
        help="one packet per layer (base, fine groups) instead of one packet per chunk",
    )
    parser.add_argument(
        "--rd-lambda", type=float_arg(0.0, 1e6), default=defaults.rd_lambda,
        help="rate-distortion weight of the transmitter's token choice (latent squared error "
             f"per bit, 0-1e6; 0 = nearest codewords; default {defaults.rd_lambda:g}); "
             "receivers need not know it",
    )


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads", type=threads_arg, default=1,
        help=f"torch CPU threads, 1-{MAX_THREADS} (1 = the real-time setting)",
    )


def add_io_flags(parser: argparse.ArgumentParser, *,
                 force_help: str = "overwrite existing outputs",
                 quiet_help: str = "no progress bars") -> None:
    """``-f/--force``, ``-q/--quiet`` and ``--threads`` (the help texts name what a
    command overwrites and what ``-q`` silences)."""
    parser.add_argument("-f", "--force", action="store_true", help=force_help)
    parser.add_argument("-q", "--quiet", action="store_true", help=quiet_help)
    add_threads_argument(parser)


def add_conceal_argument(parser: argparse.ArgumentParser) -> None:
    """``--conceal``: one of ``config.CONCEAL_MODES`` (read it with ``conceal_from_args``)."""
    parser.add_argument("--conceal", choices=CONCEAL_MODES, default=DEFAULT_CONCEAL,
                        help=f"concealment of lost chunks (default {DEFAULT_CONCEAL}; see "
                             "soundspring.plc)")


def conceal_from_args(args: argparse.Namespace) -> str:
    """The concealment mode of ``--conceal``: ``lm`` with ``--lm none`` (no LM to run) is
    ``repeat``."""
    return "repeat" if (args.lm == "none" and args.conceal == "lm") else args.conceal


def apply_threads(args: argparse.Namespace) -> None:
    """Sets torch's thread count; streaming inference on one thread avoids spin-waits."""
    import torch

    if isinstance(args.threads, bool) or not 1 <= args.threads <= MAX_THREADS:
        raise ConfigError(f"--threads must be in [1, {MAX_THREADS}], got {args.threads}")
    torch.set_num_threads(args.threads)


# ---- inputs ------------------------------------------------------------------------------


def _os_reason(exc: OSError, reading: bool = True) -> str:
    """A short reason for an OSError: "no such file" for a missing input; otherwise the
    system's words and the errno name ("No space left on device (ENOSPC)")."""
    if reading and exc.errno == errno.ENOENT:
        return "no such file"
    if not reading and exc.errno == errno.ENOENT:
        folder = Path(exc.filename).parent if exc.filename else None
        return f"{'folder ' + str(folder) if folder else 'the folder'} does not accept new files"
    words = exc.strerror or str(exc) or type(exc).__name__
    name = errno.errorcode.get(exc.errno or 0)
    return f"{words} ({name})" if name else words


def _read_stdin(what: str) -> bytes:
    stdin = sys.stdin
    if stdin is None:
        raise ConfigError(f"cannot read {what} from stdin: there is no stdin")
    if stdin.isatty():
        raise ConfigError(f"refusing to read {what} from a terminal; pipe a file into - "
                          "or give a path")
    buf = getattr(stdin, "buffer", None)
    data = buf.read() if buf is not None else stdin.read()
    if isinstance(data, str):
        data = data.encode("latin-1", "replace")
    if not data:
        raise ConfigError(f"{what} on stdin is empty (0 bytes)")
    return data


def read_input_bytes(path: str) -> bytes:
    """The bytes of ``path`` (``-`` = stdin, which must not be a terminal or empty).

    Raises:
        ConfigError: "cannot read X: no such file", a folder, unreadable, too large.
    """
    if path == "-":
        return _read_stdin("input")
    p = Path(path)
    try:
        st = p.stat()
        if stat.S_ISDIR(st.st_mode):
            raise ConfigError(f"cannot read {path}: it is a folder, not a file")
        if stat.S_ISREG(st.st_mode) and st.st_size > MAX_INPUT_BYTES:
            raise ConfigError(f"cannot read {path}: larger than {MAX_INPUT_BYTES >> 30} GiB")
        with open(p, "rb") as f:
            data = f.read(MAX_INPUT_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {_os_reason(exc)}") from None
    if len(data) > MAX_INPUT_BYTES:
        raise ConfigError(f"cannot read {path}: larger than {MAX_INPUT_BYTES >> 30} GiB")
    return data


def read_audio(path: str) -> np.ndarray:
    """float32 mono [T] at 16 kHz from a file or stdin (``-``; WAV/FLAC/OGG... bytes, any
    rate: resampled). Raises ConfigError with the reason (see ``audio.read_wav``)."""
    from ..audio import read_wav

    if path == "-":
        return read_wav(_read_stdin("audio"), name="stdin")
    return read_wav(path)


# ---- outputs -----------------------------------------------------------------------------


def _is_special(p: Path) -> bool:
    """An existing device, FIFO or socket (``/dev/null``): written in place, never renamed."""
    try:
        mode = p.stat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def part_path(path: str | Path) -> Path:
    p = Path(path)
    return p.with_name(p.name + ".part")


def check_output_path(path: str, force: bool, what: str = "output") -> None:
    """Refuses an output that cannot be written, before any work (see the module doc).

    Raises:
        ConfigError: the folder is missing or not a folder; the output is a folder; it
            exists and ``force`` is False; the folder is not writable.
    """
    if path == "-":
        return
    if not path:
        raise ConfigError(f"the {what} path is empty")
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"cannot write {path}: it is a folder; give a file name")
    if path.endswith(("/", os.sep)):
        raise ConfigError(f"cannot write {path}: a name ending in / is a folder; "
                          "give a file name")
    parent = p.parent
    if not parent.exists():
        raise ConfigError(f"cannot write {path}: folder {parent} does not exist (create it first)")
    if not parent.is_dir():
        raise ConfigError(f"cannot write {path}: {parent} is not a folder")
    if _is_special(p):
        return
    if p.exists() and not force:
        raise ConfigError(f"{path} exists; use --force to overwrite")
    tmp = part_path(p)
    try:  # probe: can a file be created here at all (read-only mounts, /proc, permissions)?
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:  # a stale NAME.part: the write will replace it
        return
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {_os_reason(exc, False)}") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        tmp.unlink()


def check_output(path: str, force: bool) -> None:
    """``check_output_path`` for a command's single output (kept for encode/decode)."""
    check_output_path(path, force)


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yields the path to write (``NAME.part``) and renames it onto ``NAME`` on success.

    On any exception (OSError, Ctrl-C, ...) the ``.part`` is removed; an OSError becomes
    SoundspringError("cannot write NAME: <reason>"). Devices/FIFOs are written in place.
    """
    p = Path(path)
    if _is_special(p):
        try:
            yield p
        except OSError as exc:
            raise SoundspringError(f"cannot write {path}: {_os_reason(exc, False)}") from exc
        return
    tmp = part_path(p)
    try:
        yield tmp
        os.replace(tmp, p)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise SoundspringError(f"cannot write {path}: {_os_reason(exc, False)}") from exc
        raise


def _write_all(f, data: bytes) -> None:
    """Writes every byte of ``data`` to the binary file ``f`` (the one place file bytes are
    written; tests patch it to simulate a full device)."""
    f.write(data)
    f.flush()


def _write_stdout(data: bytes) -> None:
    out = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else sys.stdout
    try:
        out.write(data)
        out.flush()
    except OSError as exc:
        raise SoundspringError(f"cannot write to stdout: {_os_reason(exc, False)}") from exc


def write_output_bytes(path: str, data: bytes) -> None:
    """Writes ``data`` to ``path`` via ``NAME.part`` + rename (``-`` = stdout)."""
    if path == "-":
        _write_stdout(data)
        return
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        _write_all(f, data)


def wav_bytes(wav: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ) -> bytes:
    """float audio [T] as the bytes of a 16-bit PCM WAV file (checked finite; T = 0, a
    stream of no samples, gives a valid empty WAV)."""
    import soundfile as sf

    from ..audio import check_pcm

    arr = check_pcm(np.asarray(wav, dtype=np.float32).reshape(-1), "decoded audio",
                    allow_empty=True)
    buf = io.BytesIO()
    sf.write(buf, np.clip(arr, -1, 1), sample_rate_hz, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def pcm16_wav_header(n_samples: int, sample_rate_hz: int = SAMPLE_RATE_HZ) -> bytes:
    """The 44-byte header of a mono 16-bit PCM WAV file of ``n_samples`` samples."""
    import struct

    data_bytes = 2 * n_samples
    if data_bytes > 0xFFFFFFFF - 36:
        raise ConfigError(f"{n_samples} samples do not fit a WAV file (at most about 37 h)")
    return struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + data_bytes, b"WAVE", b"fmt ", 16,
                       1, 1, sample_rate_hz, 2 * sample_rate_hz, 2, 16, b"data", data_bytes)


def pcm16_bytes(block: np.ndarray) -> bytes:
    """float audio [T] in [-1, 1] (clipped) as 16-bit little-endian PCM: floor(x * 32768),
    clipped to int16, which is what libsndfile's float-to-short conversion gives here (a
    test pins the two equal), so streamed and whole-file WAVs are identical."""
    from ..audio import check_pcm

    arr = check_pcm(np.asarray(block, dtype=np.float32).reshape(-1), "decoded audio",
                    allow_empty=True)
    scaled = np.floor(np.clip(arr, -1.0, 1.0).astype(np.float64) * 32768.0)
    return np.clip(scaled, -32768, 32767).astype("<i2").tobytes()


def write_audio_stream(path: str, n_samples: int, blocks) -> None:
    """Writes float audio blocks (an iterable adding up to exactly ``n_samples``) as a 16-bit
    WAV to ``path`` (``-`` = stdout) while they are produced: the memory held is one
    block, however long the audio. Atomic like ``write_output_bytes``."""
    header = pcm16_wav_header(n_samples)

    def emit(write) -> None:
        write(header)
        written = 0
        for block in blocks:
            written += len(block)
            if written > n_samples:
                raise SoundspringError(f"internal error: more than {n_samples} samples decoded")
            write(pcm16_bytes(block))
        if written != n_samples:
            raise SoundspringError(f"internal error: {written} of {n_samples} samples decoded")

    if path == "-":
        emit(_write_stdout)
        return
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        emit(lambda data: _write_all(f, data))


def write_audio(path: str, wav: np.ndarray) -> None:
    """Writes float [T] at 16 kHz as a 16-bit WAV to ``path`` (``-`` = stdout), atomically."""
    write_output_bytes(path, wav_bytes(wav))


def show_progress(args: argparse.Namespace, n_samples: int) -> bool:
    return not args.quiet and sys.stderr.isatty() and n_samples > 16000 * 20
