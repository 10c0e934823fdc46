"""Non-intrusive MOS estimates through PyPI ``speechmos``: PLCMOS v2 and DNSMOS (P.835 + P.808).

``speechmos`` 0.0.1.1 ships its ONNX models inside the wheel (``plcmos_models/plcmos_v2.onnx``,
``dnsmos_models/{sig_bak_ovr,model_v8}.onnx``) and needs no network; it imports
``onnxruntime``, ``librosa`` (DNSMOS mel features), ``pandas`` and ``requests`` (imported at
module level by ``speechmos.dnsmos``), so all four are listed as explicit dependencies.

Two departures from ``speechmos.plcmos.run`` / ``speechmos.dnsmos.run``, for a reproducible
sweep:

- PLCMOS v2 averages 15 runs with random "rater embeddings" drawn from numpy's *global*
  RNG, so the upstream score changes from call to call. Here the 15 embeddings are drawn
  once from ``np.random.default_rng(0)`` and reused: the same audio always gets the same
  score.
- ONNX sessions are created once per process (cached) with one intra-op and one inter-op
  thread, so scores and timings do not depend on what else runs on the machine.

Inputs are float [T] at 16 kHz; they are clipped to [-1, 1] (``speechmos`` refuses
anything outside). DNSMOS scores 9.01 s windows: a shorter clip is repeated to exactly
9.01 s and scored once (upstream doubles it until it is at least 9.01 s long and scores
every 1 s hop of that, i.e. the same content up to three times at three times the cost);
longer clips are scored as upstream (mean over 1 s hops).

Example:
    >>> import numpy as np
    >>> if speechmos_unavailable_reason() is None:
    ...     x = 0.1 * np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    ...     s = mos_scores(x)
    ...     sorted(s)
    ... else:
    ...     ['dnsmos_bak', 'dnsmos_ovrl', 'dnsmos_p808', 'dnsmos_sig', 'plcmos']
    ['dnsmos_bak', 'dnsmos_ovrl', 'dnsmos_p808', 'dnsmos_sig', 'plcmos']
"""

from __future__ import annotations

import functools
import os

import numpy as np

from ..errors import ConfigError

PLCMOS_EMBED_ROUNDS = 15
DNSMOS_INPUT_SAMPLES = int(9.01 * 16000)  # speechmos.dnsmos.INPUT_LENGTH at 16 kHz
MOS_KEYS: tuple[str, ...] = ("plcmos", "dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808")


@functools.lru_cache(maxsize=1)
def speechmos_unavailable_reason() -> str | None:
    """None when PLCMOS/DNSMOS can run offline here, else why not (checked once)."""
    try:
        import librosa  # noqa: F401
        import onnxruntime  # noqa: F401
        import pandas  # noqa: F401
        import requests  # noqa: F401
        import speechmos
    except Exception as exc:  # noqa: BLE001 -- any import failure: unavailable, say why
        return (f"speechmos unavailable ({type(exc).__name__}: {exc}); install speechmos "
                "onnxruntime librosa pandas requests")
    root = os.path.dirname(os.path.abspath(speechmos.__file__))
    for rel in _MODEL_FILES.values():
        if not os.path.isfile(os.path.join(root, rel)):
            return f"speechmos is installed but does not ship {rel} (needs a download)"
    return None


_MODEL_FILES = {
    "plcmos": os.path.join("plcmos_models", "plcmos_v2.onnx"),
    "dnsmos": os.path.join("dnsmos_models", "sig_bak_ovr.onnx"),
    "p808": os.path.join("dnsmos_models", "model_v8.onnx"),
}


@functools.lru_cache(maxsize=4)
def _session(kind: str):  # type: ignore[no-untyped-def]
    import onnxruntime as ort
    import speechmos

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    path = os.path.join(os.path.dirname(os.path.abspath(speechmos.__file__)), _MODEL_FILES[kind])
    return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


@functools.lru_cache(maxsize=1)
def _plcmos():  # type: ignore[no-untyped-def]
    from speechmos.plcmos import PLCMOS

    obj = PLCMOS.__new__(PLCMOS)  # upstream __init__ would build its own session
    obj.model_name, obj.onnx_name = "plcmos_v2", "plcmos_v2.onnx"
    obj.max_lens, obj.embed_rounds = 999999999999, PLCMOS_EMBED_ROUNDS
    obj.session = _session("plcmos")
    return obj


@functools.lru_cache(maxsize=1)
def _rater_embeds() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(PLCMOS_EMBED_ROUNDS, 1, 64)).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _dnsmos():  # type: ignore[no-untyped-def]
    from speechmos.dnsmos import DNSMOS

    obj = DNSMOS.__new__(DNSMOS)
    obj.primary_model_path = _MODEL_FILES["dnsmos"]
    obj.onnx_sess, obj.p808_onnx_sess = _session("dnsmos"), _session("p808")
    return obj


def _audio(deg: np.ndarray) -> np.ndarray:
    x = np.asarray(deg, dtype=np.float32).reshape(-1)
    if x.size < 1600:
        raise ConfigError(f"MOS estimates need at least 0.1 s of audio, got {x.size} samples")
    if not np.isfinite(x).all():
        raise ConfigError("deg must be finite (no NaN/inf)")
    return np.clip(x, -1.0, 1.0)


def plcmos(deg: np.ndarray) -> float:
    """PLCMOS v2 (1..5, higher is better) of float [T] 16 kHz audio; deterministic."""
    model = _plcmos()
    feats = np.float32(model.stft_transform(_audio(deg)))[np.newaxis, np.newaxis, ...]
    scores = [float(np.asarray(model.session.run(
        None, {"degraded_audio": feats, "rater_embed": e})[0]).reshape(-1)[0])
        for e in _rater_embeds()]
    return float(np.mean(scores))


def dnsmos(deg: np.ndarray) -> dict[str, float]:
    """DNSMOS P.835 (OVRL, SIG, BAK) and P.808 MOS of float [T] 16 kHz audio."""
    x = _audio(deg).astype(np.float64)
    if x.size < DNSMOS_INPUT_SAMPLES:  # repeat to exactly one 9.01 s window (see module doc)
        x = np.resize(x, DNSMOS_INPUT_SAMPLES)
    r = _dnsmos()(x, 16000, False)
    return {"dnsmos_ovrl": float(r["ovrl_mos"]), "dnsmos_sig": float(r["sig_mos"]),
            "dnsmos_bak": float(r["bak_mos"]), "dnsmos_p808": float(r["p808_mos"])}


def mos_scores(deg: np.ndarray) -> dict[str, float]:
    """PLCMOS v2 and DNSMOS of one clip (keys :data:`MOS_KEYS`).

    Raises:
        NativeFeatureError: speechmos (or one of its dependencies/models) is unavailable.
    """
    reason = speechmos_unavailable_reason()
    if reason is not None:
        from ..errors import NativeFeatureError

        raise NativeFeatureError(reason)
    return {"plcmos": plcmos(deg), **dnsmos(deg)}


__all__ = ["MOS_KEYS", "dnsmos", "mos_scores", "plcmos", "speechmos_unavailable_reason"]
