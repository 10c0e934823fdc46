"""The command line: dispatch, exit codes, the synthetic link test and the coder benchmark
as JSON."""

from __future__ import annotations

import json

import pytest
from soundspring.cli import main


def test_usage_and_unknown_command(capsys):
    assert main([]) == 2
    assert main(["--help"]) == 0
    assert "commands:" in capsys.readouterr().out
    assert main(["no-such-command"]) == 2
    assert "unknown command" in capsys.readouterr().err


def test_bad_option_is_a_usage_error(capsys):
    assert main(["linktest", "--no-such-option"]) == 2


@pytest.mark.parametrize("channel", ["none", "bernoulli", "gilbert", "wlan"])
def test_linktest_round_trip(capsys, channel):
    assert main(["linktest", "--seconds", "2", "--channel", channel, "--loss", "0.2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["decoded_tokens_exact"] and report["container_round_trip_ok"]
    assert report["packets_sent"] == 50 * 3
    assert report["bitrate_bps"] < report["raw_bitrate_bps"]
    if channel == "none":
        assert report["packets_lost"] == 0 and report["layers_decoded"] == 150
    else:
        assert report["packets_lost"] > 0
        assert (
            report["layers_decoded"] + report["packets_lost"] + report["packets_late_or_dropped"]
            == 150
        )


def test_linktest_out_of_range_option_is_a_usage_error(capsys):
    assert main(["linktest", "--seconds", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--seconds" in err and "(0, 3600]" in err


def test_linktest_config_error_exits_1(capsys):
    assert main(["linktest", "--channel", "gilbert", "--loss", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("soundspring linktest: error:") and "below 1" in err


def test_bench_coder_json(capsys):
    assert main(["bench", "coder", "--symbols", "20000", "--mirror-symbols", "500", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for name in ("soundspring", "soundspring_from_logits", "constriction", "python_mirror"):
        r = report["results"][name]
        assert (
            r["round_trip_ok"] and r["encode_symbols_per_s"] > 0 and r["decode_symbols_per_s"] > 0
        )
    assert set(report["ratios"]) == {
        "encode_soundspring_over_constriction",
        "decode_soundspring_over_constriction",
    }


@pytest.mark.parametrize(("command", "force", "quiet", "conceal"), [
    ("send", "overwrite --sdp FILE", "no progress line", False),
    ("receive", "overwrite existing outputs", "no live status line", True),
    ("simulate", "overwrite existing outputs", "no progress bars", True),
])
def test_shared_io_and_conceal_flags(capsys, command, force, quiet, conceal):
    """send / receive / simulate take -f, -q, --threads (and --conceal) from the shared
    helpers, each with its own words for what -f overwrites and -q silences."""
    assert main([command, "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"-f, --force {force}" in out and f"-q, --quiet {quiet}" in out
    assert "--threads THREADS" in out
    assert ("--conceal {lm,lm_greedy,blend,repeat,zero}" in out) == conceal
