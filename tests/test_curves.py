"""Learning-curve plots of training runs (codec and SpringLM eval.jsonl layouts)."""

from __future__ import annotations

import json

import pytest
from soundspring.errors import ConfigError
from soundspring.training.curves import learning_curves, plot_learning_curves


def _write(path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_codec_and_lm_runs_become_panels(tmp_path) -> None:
    codec = tmp_path / "codec"
    codec.mkdir()
    _write(codec / "eval.jsonl", [
        {"step": s, "train_minutes": t, "metrics": {
            "6": {"pesq_wb": p, "stoi": 0.9}, "12": {"pesq_wb": p + 0.1, "stoi": 0.91}}}
        for s, t, p in ((10, 20.0, 2.0), (20, 40.0, 2.1))])
    _write(codec / "train.jsonl", [{"event": "start", "step": 0},
                                   {"step": 25, "train_minutes": 1.0, "loss": 1.7}])
    panels = learning_curves(codec)
    assert panels["pesq_wb"]["6 kbps"] == [(20.0, 2.0), (40.0, 2.1)]
    assert list(panels["pesq_wb"]) == ["6 kbps", "12 kbps"]  # ordered by bitrate
    assert panels["training loss"]["train"] == [(1.0, 1.7)]
    png = plot_learning_curves(codec, tmp_path / "out" / "curve.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lm = tmp_path / "lm"
    lm.mkdir()
    _write(lm / "eval.jsonl", [{"step": 5, "train_minutes": 3.0, "fine_mean_bits_lm": 9.4,
                                "conceal_top1": [0.1, 0.2, 0.3]}])
    panels = learning_curves(lm)
    assert panels["fine_mean_bits_lm"]["held-out"] == [(3.0, 9.4)]
    assert panels["conceal_top1"]["held-out"][0][1] == pytest.approx(0.2)
    with pytest.raises(ConfigError, match="no eval.jsonl"):
        learning_curves(tmp_path)
