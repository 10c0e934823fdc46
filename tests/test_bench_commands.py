"""``soundspring bench lm`` and ``soundspring bench transceiver`` (and ``bench coder``'s
text output unchanged), on tiny models written to a temporary directory: the JSON
reports hold every measurement the benchmarks promise, with sane values; the engine and
the reference agree on the logits; every packet decodes; bad options are usage errors and
missing weights typed errors."""

from __future__ import annotations

import json

import pytest
import torch
from soundspring.cli import main
from soundspring.config import codec_tiny, springlm_tiny
from soundspring.models.codec import Codec
from soundspring.models.lm_engine import ENGINE_ID_SUFFIX
from soundspring.models.masked_lm import SpringLM
from soundspring.models.weights_io import (
    codec_tokenizer_hash,
    load_codec,
    save_codec_weights,
    save_lm_weights,
)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> tuple[str, str]:
    """(codec weights, SpringLM weights bound to that codec's tokenizer), both tiny."""
    d = tmp_path_factory.mktemp("bench_models")
    torch.manual_seed(0)
    codec_path = save_codec_weights(Codec(codec_tiny()), d / "codec.pt")
    tokenizer = codec_tokenizer_hash(load_codec(codec_path))
    lm_path = save_lm_weights(SpringLM(springlm_tiny()), d / "lm.pt", tokenizer)
    return str(codec_path), str(lm_path)


def test_bench_lm_json(capsys, tiny_models):
    _, lm = tiny_models
    assert main(["bench", "lm", "--lm", lm, "--bitrates", "6", "12", "--batches", "1", "3",
                 "--threads", "1", "2", "--calls", "2", "--entropy-chunks", "3", "--json"]) == 0
    out = capsys.readouterr()
    report = json.loads(out.out)
    assert "bench lm:" in out.err  # progress on stderr, the JSON alone on stdout
    assert [(s["threads"], s["bitrate_kbps"]) for s in report["steps"]] == [
        (1, 6.0), (1, 12.0), (2, 6.0), (2, 12.0)]
    for s in report["steps"]:
        assert s["levels"] == [3, 12 if s["bitrate_kbps"] == 6 else 24]
        for side in ("torch", "engine"):
            assert s[side]["step_ms"] > 0 and s[side]["fine_ms"] > 0
        assert s["step_speedup_engine_over_torch"] > 0
        assert s["max_abs_logit_diff"] < 1e-4  # the engine computes the reference's logits
        assert set(s["engine_batches"]) == {"1", "3"}
        for cell in s["engine_batches"].values():
            assert cell["step_ms_per_stream"] > 0 and cell["realtime_streams"] > 0
    e = report["entropy_coding"]
    assert e["n_symbols"] == 3 * 2 * 21 and e["soundspring"]["round_trip_ok"]
    if e["constriction"] is not None:
        assert e["constriction"]["round_trip_ok"]
        assert e["round_trip_soundspring_over_constriction"] > 0
    gpu = report["gpu"]
    assert gpu["available"] == torch.cuda.is_available()
    assert report["model"]["weights"] == lm


def test_bench_transceiver_json(capsys, tiny_models):
    codec, lm = tiny_models
    assert main(["bench", "transceiver", "--codec", codec, "--lm", lm, "--bitrates", "6",
                 "--seconds", "0.2", "--rounds", "1", "--json"]) == 0
    out = capsys.readouterr()
    report = json.loads(out.out)
    assert "bench transceiver:" in out.err
    cells = {c["backend"]: c for c in report["cells"]}
    assert set(cells) == {"engine", "torch"}
    assert cells["engine"]["model_id"] == cells["torch"]["model_id"] + ENGINE_ID_SUFFIX
    assert cells["engine"]["fused_cdfs"] and not cells["torch"]["fused_cdfs"]
    for c in cells.values():
        assert c["chunks"] == 5 and c["audio_seconds"] == pytest.approx(0.2)
        assert c["rtf"] == pytest.approx(c["tx_rtf"] + c["rx_rtf"]) and c["rtf"] > 0
        assert c["cpu_rtf"] == pytest.approx(c["tx_cpu_rtf"] + c["rx_cpu_rtf"])
        stages = c["cpu_ms_per_chunk"]
        # the stages and the rest add up to the CPU time of both ends
        assert sum(stages.values()) == pytest.approx(
            1e3 * c["cpu_rtf"] * c["audio_seconds"] / c["chunks"], rel=1e-6)
        for stage in ("tx.encoder", "tx.rd_search", "tx.lm", "tx.range_coding", "rx.lm",
                      "rx.range_coding", "rx.decoder"):
            assert stages[stage] > 0, stage
        assert c["fine_packets_failed_check"] == 0 and c["chunks_concealed"] == 0
    assert set(report["torch_rtf_over_engine_rtf"]) == {"6kbps_1t"}


def test_bench_transceiver_text(capsys, tiny_models):
    codec, lm = tiny_models
    assert main(["bench", "transceiver", "--codec", codec, "--lm", lm, "--bitrates", "6",
                 "--backends", "engine", "--seconds", "0.1", "--rounds", "1"]) == 0
    text = capsys.readouterr().out
    assert "6 kbps, engine, 1 thread(s): CPU RTF" in text and "tx.encoder" in text


@pytest.mark.parametrize("argv,what", [
    (["bench", "lm", "--batches", "0"], "--batches"),
    (["bench", "lm", "--threads", "0"], "--threads"),
    (["bench", "lm", "--bitrates", "7"], "bitrate"),
    (["bench", "transceiver", "--backends", "onnx"], "--backends"),
    (["bench", "transceiver", "--seconds", "0"], "--seconds"),
    (["bench", "transceiver", "--rounds", "0"], "--rounds"),
])
def test_bad_options_are_usage_errors(capsys, argv, what):
    assert main(argv) == 2
    assert what in capsys.readouterr().err


def test_missing_weights_are_typed_errors(capsys, tmp_path):
    missing = str(tmp_path / "absent.pt")
    assert main(["bench", "lm", "--lm", missing, "--json"]) == 1
    assert "not found" in capsys.readouterr().err
    assert main(["bench", "transceiver", "--lm", missing, "--seconds", "0.1", "--json"]) == 1
    assert "not found" in capsys.readouterr().err
