"""The .spring stream header schema (soundspring.transceiver.stream): strict validation of
every field, header recovery under bit flips, and the decode plan's length cap."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from soundspring.config import BITRATES_KBPS, codec_tiny
from soundspring.entropy.static import StaticModel
from soundspring.errors import BitstreamError, ConfigError
from soundspring.models.codec import Codec
from soundspring.transceiver import TransceiverConfig
from soundspring.transceiver.stream import (
    MAX_GAP_SAMPLES,
    MAX_N_SAMPLES,
    DecodePlan,
    config_from_header,
    parse_stream_header,
    plan_decode,
    stream_header,
)
from soundspring.transport import read_container, write_container
from soundspring.transport.container import encode_header

GOOD = {
    "format": "soundspring",
    "codec_id": "3f" * 32,
    "model_id": "static-0123456789abcdef",
    "sample_rate_hz": 16000,
    "n_samples": 16000,
    "bitrate_kbps": 6.0,
    "chunk_frames": 2,
    "context_frames": 15,
    "progressive": False,
    "check_bits": 8,
    "precision_bits": 16,
    "fec": False,
    "layered": False,
}


def with_(**changes) -> dict:
    out = dict(GOOD)
    for key, value in changes.items():
        if value is _DROP:
            out.pop(key)
        else:
            out[key] = value
    return out


_DROP = object()

# (case id, header, text the error must contain)
HOSTILE = [
    ("n_samples_huge", with_(n_samples=10**12), "n_samples"),
    ("n_samples_1e300", with_(n_samples=1e300), "n_samples"),
    ("n_samples_str", with_(n_samples="abc"), "n_samples"),
    ("n_samples_float", with_(n_samples=16000.0), "an integer"),
    ("n_samples_bool", with_(n_samples=True), "a boolean"),
    ("n_samples_negative", with_(n_samples=-1), "n_samples"),
    ("n_samples_null", with_(n_samples=None), "null"),
    ("n_samples_list", with_(n_samples=[16000]), "array"),
    ("n_samples_missing", with_(n_samples=_DROP), "lacks the field 'n_samples'"),
    ("layered_str_false", with_(layered="false"), "layered"),
    ("layered_int", with_(layered=0), "JSON boolean"),
    ("layered_null", with_(layered=None), "layered"),
    ("fec_str", with_(fec="true"), "fec"),
    ("fec_missing", with_(fec=_DROP), "fec"),
    ("progressive_int", with_(progressive=1), "progressive"),
    ("chunk_frames_1_9", with_(chunk_frames=1.9), "chunk_frames"),
    ("chunk_frames_2_0", with_(chunk_frames=2.0), "chunk_frames"),
    ("chunk_frames_0", with_(chunk_frames=0), "[1, 5]"),
    ("chunk_frames_6", with_(chunk_frames=6), "[1, 5]"),
    ("chunk_frames_str", with_(chunk_frames="2"), "chunk_frames"),
    ("context_frames_51", with_(context_frames=51), "[0, 50]"),
    ("context_frames_neg", with_(context_frames=-1), "context_frames"),
    ("check_bits_17", with_(check_bits=17), "[0, 16]"),
    ("check_bits_float", with_(check_bits=8.0), "check_bits"),
    ("precision_bits_9", with_(precision_bits=9), "[10, 16]"),
    ("precision_bits_17", with_(precision_bits=17), "[10, 16]"),
    ("bitrate_7", with_(bitrate_kbps=7), "one of 1.5, 3, 6, 12"),
    ("bitrate_4_5", with_(bitrate_kbps=4.5), "bitrate_kbps"),
    ("bitrate_str", with_(bitrate_kbps="6"), "bitrate_kbps"),
    ("bitrate_bool", with_(bitrate_kbps=True), "bitrate_kbps"),
    ("bitrate_huge", with_(bitrate_kbps=1e300), "bitrate_kbps"),
    ("bitrate_missing", with_(bitrate_kbps=_DROP), "bitrate_kbps"),
    ("sample_rate_48k", with_(sample_rate_hz=48000), "16000"),
    ("sample_rate_float", with_(sample_rate_hz=16000.0), "sample_rate_hz"),
    ("sample_rate_missing", with_(sample_rate_hz=_DROP), "sample_rate_hz"),
    ("format_other", with_(format="opus"), "format"),
    ("format_missing", with_(format=_DROP), "format"),
    ("format_int", with_(format=1), "format"),
    ("codec_id_empty", with_(codec_id=""), "codec_id"),
    ("codec_id_long", with_(codec_id="a" * 129), "codec_id"),
    ("codec_id_int", with_(codec_id=5), "codec_id"),
    ("codec_id_control", with_(codec_id="ab\x1b[2Jcd"), "codec_id"),
    ("model_id_unicode", with_(model_id="mod\u00e8le"), "model_id"),
    ("model_id_obj", with_(model_id={"a": 1}), "object"),
    ("model_id_missing", with_(model_id=_DROP), "model_id"),
]


@pytest.mark.parametrize("header,match", [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_headers_are_refused(header: dict, match: str) -> None:
    with pytest.raises(BitstreamError, match=match.replace("[", r"\[")):
        parse_stream_header(header)
    with pytest.raises(BitstreamError):
        config_from_header(header, "repeat")


def test_errors_name_field_expectation_and_value() -> None:
    with pytest.raises(BitstreamError) as info:
        parse_stream_header(with_(n_samples=10**12))
    msg = str(info.value)
    assert "'n_samples'" in msg and f"[0, {MAX_N_SAMPLES}]" in msg and "1000000000000" in msg
    with pytest.raises(BitstreamError, match="got a string 'false'"):
        parse_stream_header(with_(layered="false"))
    with pytest.raises(BitstreamError, match=r"got a number 1\.9"):
        parse_stream_header(with_(chunk_frames=1.9))
    long = "x" * 5000
    with pytest.raises(BitstreamError) as info:
        parse_stream_header(with_(model_id=long))
    assert len(str(info.value)) < 300  # hostile values are shortened in messages
    with pytest.raises(BitstreamError, match="JSON object"):
        parse_stream_header([1, 2])  # type: ignore[arg-type]


def test_valid_headers() -> None:
    h = parse_stream_header(GOOD)
    assert (h.n_samples, h.bitrate_kbps, h.chunk_frames, h.layered) == (16000, 6.0, 2, False)
    assert h.n_chunks == 25 and h.chunk_samples == 640
    for b in BITRATES_KBPS:  # ints equal to an operating point are fine
        assert parse_stream_header(with_(bitrate_kbps=b)).bitrate_kbps == b
    assert parse_stream_header(with_(bitrate_kbps=6)).bitrate_kbps == 6.0
    assert parse_stream_header(with_(bitrate_kbps=12)).bitrate_kbps == 12.0
    # headers written before the "layered" key described layered streams
    assert parse_stream_header(with_(layered=_DROP)).layered is True
    # unknown extra keys are ignored
    extra = with_(future_key={"nested": [1, 2]}, comment="x")
    assert parse_stream_header(extra) == h
    assert parse_stream_header(with_(n_samples=0)).n_chunks == 0
    assert parse_stream_header(with_(n_samples=MAX_N_SAMPLES)).n_samples == MAX_N_SAMPLES
    cfg = config_from_header(GOOD, "zero")
    assert cfg == TransceiverConfig(bitrate_kbps=6.0, context_frames=15, conceal="zero")
    with pytest.raises(ConfigError, match="conceal"):
        config_from_header(GOOD, "magic")


def test_writer_header_round_trips_and_is_valid() -> None:
    torch.manual_seed(0)
    codec = Codec(codec_tiny()).eval()
    model = StaticModel()
    for cfg in (
        TransceiverConfig(bitrate_kbps=12, conceal="repeat"),
        TransceiverConfig(bitrate_kbps=1.5, chunk_frames=5, context_frames=0, fec=True,
                          layered=True, progressive=True, check_bits=0, precision_bits=12),
    ):
        header = stream_header(codec, model, cfg, 12345)
        buf = io.BytesIO()
        write_container(buf, header, [])
        got = read_container(buf.getvalue()).header
        assert got == header
        assert config_from_header(got, cfg.conceal) == cfg
        assert parse_stream_header(got).n_samples == 12345
    with pytest.raises(ConfigError, match="n_samples"):
        stream_header(codec, model, TransceiverConfig(), MAX_N_SAMPLES + 1)
    with pytest.raises(ConfigError, match="n_samples"):
        stream_header(codec, model, TransceiverConfig(), 1.5)  # type: ignore[arg-type]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**15), 10**15)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                  max_size=3),
    max_leaves=8,
)


@settings(max_examples=300)
@given(key=st.sampled_from(sorted(GOOD)), value=json_values)
def test_random_field_values_parse_or_raise_bitstream_error(key: str, value: object) -> None:
    header = with_(**{key: value})
    try:
        parsed = parse_stream_header(header)
    except BitstreamError as exc:
        assert key in str(exc)
        return
    # accepted: then the value is of the field's exact type and in range
    got = getattr(parsed, key, header[key])
    if isinstance(GOOD[key], bool):
        assert isinstance(value, bool)
    elif isinstance(GOOD[key], int) and key != "bitrate_kbps":
        assert type(value) is int and got == value
    parsed.config("repeat")  # every accepted header makes a valid TransceiverConfig


@settings(max_examples=100)
@given(header=st.dictionaries(st.text(max_size=15), json_values, max_size=15))
def test_random_headers_parse_or_raise_bitstream_error(header: dict) -> None:
    try:
        parse_stream_header(header)
    except BitstreamError:
        pass


def real_container(n: int = 30) -> tuple[bytes, dict, list[tuple[int, int, bytes]]]:
    packets = [(i, i, bytes([0x40, i % 256, 7])) for i in range(n)]
    buf = io.BytesIO()
    write_container(buf, GOOD, packets)
    return buf.getvalue(), GOOD, packets


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 8 * len(encode_header(GOOD)) - 1), min_size=1, max_size=16))
def test_random_bit_flips_of_a_real_header_recover_every_record(bits: list[int]) -> None:
    data, header, packets = real_container()
    bad = bytearray(data)
    for bit in bits:
        bad[bit // 8] ^= 1 << (bit % 8)
    if bytes(bad) == data:  # flips cancelled out
        return
    contents = read_container(bytes(bad))
    assert contents.header_recovered and contents.header == header
    assert [(r.seq, r.chunk, r.packet) for r in contents.records] == packets
    assert parse_stream_header(contents.header) == parse_stream_header(GOOD)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 8 * 1400 - 1), min_size=1, max_size=24))
def test_random_bit_flips_anywhere_raise_only_typed_errors(bits: list[int]) -> None:
    data, _, _ = real_container()
    bad = bytearray(data)
    for bit in bits:
        bad[(bit // 8) % len(bad)] ^= 1 << (bit % 8)
    try:
        contents = read_container(bytes(bad))
        parse_stream_header(contents.header)
    except BitstreamError:
        pass


# --------------------------------------------------------------------------- decode plan


class _Cfg:
    chunk_samples = 640  # 40 ms


def test_plan_caps_the_length_at_what_the_records_justify() -> None:
    gap = MAX_GAP_SAMPLES // 640
    assert gap == 250
    # an honest file: every chunk present
    plan = plan_decode(_Cfg(), 16000, range(25))
    assert (plan.n_chunks, plan.n_samples, plan.dropped_records) == (25, 16000, 0)
    assert not plan.truncated and plan.records_kept == 25 and plan.last_record_chunk == 24
    # a hostile n_samples (10^12) with 1 s of records: 250 chunks of concealment at most
    plan = plan_decode(_Cfg(), 10**12, range(25))
    assert plan.n_chunks == 25 + gap and plan.n_samples == plan.n_chunks * 640
    assert plan.truncated and plan.header_n_samples == 10**12
    # a hostile record at chunk 4e9 is dropped and counted
    plan = plan_decode(_Cfg(), 10**12, [*range(25), 4_000_000_000])
    assert plan.n_chunks == 25 + gap and plan.dropped_records == 1
    # gaps of up to `gap` missing chunks are bridged; longer ones end the stream
    chunks = [0, 1 + gap, 2 + 2 * gap, 4 + 3 * gap]  # the last gap is gap + 1 chunks
    plan = plan_decode(_Cfg(), 10**9, chunks)
    assert plan.last_record_chunk == 2 + 2 * gap and plan.dropped_records == 1
    assert plan.n_chunks == 3 + 3 * gap
    # the header's length wins when it is shorter; records past it are dropped
    plan = plan_decode(_Cfg(), 6400, range(25))
    assert (plan.n_chunks, plan.n_samples, plan.dropped_records) == (10, 6400, 15)
    # a partial last chunk
    plan = plan_decode(_Cfg(), 1000, [0, 1])
    assert (plan.n_chunks, plan.n_samples) == (2, 1000)
    # no record at all: at most `gap` chunks
    plan = plan_decode(_Cfg(), 10**12, [])
    assert plan.n_chunks == gap and plan.last_record_chunk == -1
    plan = plan_decode(_Cfg(), 16000, [])
    assert plan.n_chunks == 25
    # repeats and order do not matter (layered streams hold several records per chunk)
    a = plan_decode(_Cfg(), 10**6, [3, 1, 1, 0, 2, 2])
    b = plan_decode(_Cfg(), 10**6, np.array([0, 1, 2, 3], dtype=np.uint32))
    assert (a.n_chunks, a.last_record_chunk) == (b.n_chunks, b.last_record_chunk)
    assert a.records_kept == 6 and a.dropped_records == 0
    assert isinstance(a, DecodePlan) and a.keeps(0) and not a.keeps(a.n_chunks)
    # explicit gap; zero
    assert plan_decode(_Cfg(), 10**6, [0, 2], max_gap_chunks=0).n_chunks == 1
    assert plan_decode(_Cfg(), 0, [0, 1]).n_chunks == 0


def test_plan_output_is_bounded_by_the_records() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(0, 200))
        chunks = rng.integers(0, 2**32, n, dtype=np.int64)
        chunks[: n // 2] = rng.integers(0, 2000, n // 2)
        plan = plan_decode(_Cfg(), MAX_N_SAMPLES, chunks)
        assert plan.n_chunks <= (len(set(chunks.tolist())) + 1) * plan.max_gap_chunks + n
        assert plan.records_kept + plan.dropped_records == n
        assert plan.n_samples <= plan.n_chunks * 640


def test_plan_argument_errors() -> None:
    with pytest.raises(ConfigError, match="n_samples"):
        plan_decode(_Cfg(), -1, [])
    with pytest.raises(ConfigError, match="n_samples"):
        plan_decode(_Cfg(), 1.5, [])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_gap_chunks"):
        plan_decode(_Cfg(), 10, [], max_gap_chunks=-1)
    with pytest.raises(ConfigError, match="chunk_samples"):
        plan_decode(object(), 10, [])
    plan = plan_decode(parse_stream_header(GOOD), GOOD["n_samples"], [0])
    assert plan.chunk_samples == 640


def test_stream_header_json_is_strict_json() -> None:
    # what encode writes is plain JSON that any strict reader parses
    text = json.dumps(GOOD, sort_keys=True, separators=(",", ":"), allow_nan=False)
    assert json.loads(text) == GOOD
