"""The C++ SpringLM engine (csrc/core/lm_engine.h, models/lm_engine.py).

- agreement with the PyTorch reference (``masked_lm.SpringLM`` through its adapter) to
  1e-4 absolute on logits, for the coding pass, the memory pass, the whole-sequence coding
  forward and the concealment window, over several reaches and chunk sizes;
- the same bits for every kernel level this CPU runs (forced by argument and by
  ``SOUNDSPRING_ENGINE_ISA``), every thread count, batch size and stream interleaving;
- a golden SHA-256 of the engine's output bytes on a fixed tiny model and fixed tokens, so
  any change of bits on any machine fails here;
- fused CDFs equal to ``coding.cdf_from_logits`` of the logits;
- typed errors for bad tokens, shapes, levels, states, weights and options;
- a full transmit -> receive round trip with the engine at both ends.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from soundspring import coding
from soundspring.config import MASK, MASK_UPPER, SpringLMConfig, codec_tiny, springlm_tiny
from soundspring.errors import ConfigError, ModelMismatchError
from soundspring.models.lm_adapter import SpringLMCodingModel
from soundspring.models.lm_engine import (
    ENGINE_ID_SUFFIX,
    ISA_ENV,
    SpringLMEngine,
    StreamState,
    best_isa,
    supported_isas,
)
from soundspring.models.masked_lm import SpringLM

ATOL = 1e-4
V = 1024


def _hash_u16(n: int, salt: int) -> np.ndarray:
    """n pseudo-random uint16 values from an integer hash of (salt, index) (splitmix64
    finaliser): the same on every machine and numpy version."""
    h = np.arange(n, dtype=np.uint64) + np.uint64(salt << 40)
    h = h * np.uint64(6364136223846793005) + np.uint64(1442695040888963407)
    h ^= h >> np.uint64(29)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(32)
    return (h & np.uint64(0xFFFF)).astype(np.int64)


def _deterministic_weights(cfg: SpringLMConfig) -> dict[str, np.ndarray]:
    """Every SpringLM tensor from ``_hash_u16``: exact float32 values (multiples of
    2^-18), the same on every machine. Peaked enough that the PMFs vary from token to
    token."""
    out = {}
    for n, (name, t) in enumerate(sorted(SpringLM(cfg).state_dict().items())):
        u = (_hash_u16(t.numel(), n) - 32768).astype(np.float32) / 32768.0
        if name.endswith(("ln1.weight", "ln2.weight", "ln_out.weight")):
            x = 1.0 + u / 8
        elif name.startswith("rel_bias") or name == "head_bias":
            x = u / 2
        elif name == "unigram_logprobs":
            x = u - 7.0
        else:
            x = u / 8
        out[name] = x.astype(np.float32).reshape(tuple(t.shape))
    return out


CFG = springlm_tiny()
WEIGHTS = _deterministic_weights(CFG)


@pytest.fixture(scope="module")
def torch_lm() -> SpringLM:
    lm = SpringLM(CFG).eval()
    lm.load_state_dict({k: torch.from_numpy(v) for k, v in WEIGHTS.items()})
    return lm


@pytest.fixture(scope="module")
def reference(torch_lm) -> SpringLMCodingModel:
    return SpringLMCodingModel(torch_lm)


@pytest.fixture(scope="module")
def engine() -> SpringLMEngine:
    return SpringLMEngine(CFG, WEIGHTS, weights_id="tiny-deterministic")


def _view(rng: np.random.Generator, k: int, c: int, n_fine_visible: int | None = None) -> np.ndarray:
    """A coding view int64 [k, C]: base tokens, some fine levels visible, then MASK, then
    MASK_UPPER above a random bitrate."""
    view = rng.integers(0, V, size=(k, c)).astype(np.int64)
    vis = int(rng.integers(3, k + 1)) if n_fine_visible is None else n_fine_visible
    top = int(rng.integers(vis, k + 1))
    view[vis:top] = MASK
    view[top:] = MASK_UPPER
    return view


def _window(rng: np.random.Generator, w: int) -> np.ndarray:
    window = rng.integers(0, V, size=(CFG.n_codebooks, w)).astype(np.int64)
    lost = rng.random(w) < 0.3
    window[:3, lost] = MASK
    return window


# ---- agreement with PyTorch ---------------------------------------------------------------


@pytest.mark.parametrize("context_frames,chunk_frames", [(4, 2), (0, 2), (3, 1), (15, 3), (50, 5)])
def test_coding_and_memory_passes_match_torch(engine, reference, context_frames, chunk_frames):
    rng = np.random.default_rng(context_frames * 7 + chunk_frames)
    st_e = engine.new_state(context_frames, chunk_frames)
    st_t = reference.new_state(context_frames, chunk_frames)
    n_chunks = context_frames // chunk_frames + 4  # the ring wraps
    worst = 0.0
    for _ in range(n_chunks):
        k = int(rng.integers(3, CFG.n_codebooks + 1))
        view = _view(rng, k, chunk_frames)
        lo = int(rng.integers(0, k))
        hi = int(rng.integers(lo + 1, CFG.n_codebooks + 1))
        got = engine.fine_logits(st_e, view, (lo, hi))
        want = reference.fine_logits(st_t, view, (lo, hi))
        assert got.shape == want.shape == (hi - lo, chunk_frames, V) and got.dtype == np.float32
        worst = max(worst, float(np.abs(got - want).max()))
        base = view[: int(rng.integers(1, 4))]
        engine.commit(st_e, base)
        reference.commit(st_t, base)
    assert st_e.frames == n_chunks * chunk_frames
    assert worst < ATOL, worst


def test_forward_coding_matches_torch(engine, torch_lm):
    rng = np.random.default_rng(1)
    codes = _view(rng, 12, 12, n_fine_visible=6)
    want = torch_lm.forward_coding(torch.from_numpy(codes)[None], context_frames=6,
                                   chunk_frames=3)[0].detach().numpy()
    got = engine.forward_coding(codes, context_frames=6, chunk_frames=3)
    assert got.shape == want.shape == (12, 12, V)
    assert float(np.abs(got - want).max()) < ATOL


@pytest.mark.parametrize("w", [1, 7, 30, 80])  # 80 > max_rel_distance: clipped distances
def test_concealment_window_matches_torch(engine, reference, torch_lm, w):
    window = _window(np.random.default_rng(w), w)
    got = engine.conceal_logits(window)
    want = reference.conceal_logits(window)
    assert got.shape == want.shape == (3, w, V)
    assert float(np.abs(got - want).max()) < ATOL
    every = engine.conceal_logits(window, levels=(0, CFG.n_codebooks))
    want_every = torch_lm.forward_conceal(torch.from_numpy(window)[None],
                                          levels=(0, CFG.n_codebooks))[0].detach().numpy()
    assert float(np.abs(every - want_every).max()) < ATOL


def test_shipped_format_file_matches_torch(tmp_path, torch_lm):
    from soundspring.models.weights_io import load_lm, load_lm_engine, save_lm_weights

    path = save_lm_weights(torch_lm, tmp_path / "lm.pt", tokenizer_sha256="ab" * 32)
    eng = load_lm_engine(path, tokenizer_sha256="ab" * 32)
    ref = SpringLMCodingModel(load_lm(path))
    # the same weights, but streams of one are not streams of the other (fused CDFs)
    assert eng.weights_id == ref.model_id
    assert eng.model_id == ref.model_id + ENGINE_ID_SUFFIX != ref.model_id
    np.testing.assert_array_equal(eng.base_logits(), ref.base_logits())
    rng = np.random.default_rng(2)
    st_e, st_t = eng.new_state(4, 2), ref.new_state(4, 2)
    for _ in range(4):
        view = _view(rng, 12, 2)
        got, want = eng.fine_logits(st_e, view, (3, 12)), ref.fine_logits(st_t, view, (3, 12))
        assert float(np.abs(got - want).max()) < ATOL
        eng.commit(st_e, view[:3])
        ref.commit(st_t, view[:3])
    with pytest.raises(ModelMismatchError):
        load_lm_engine(path, tokenizer_sha256="cd" * 32)


def test_shipped_preset_in_binary16_matches_torch():
    """The shipped shape (D=192, L=4, H=4: Dh = 48) with fp16-valued weights, as the shipped
    file holds them (so AVX2 / AVX-512 stream the matrices as binary16), scaled up 4x so the
    logits are large and peaked: float32 error grows with them, in torch as in the engine
    (both about 1e-5 from a float64 forward here), hence a bound relative to their scale."""
    from soundspring.config import springlm_default

    torch.manual_seed(0)
    lm = SpringLM(springlm_default()).eval()
    with torch.no_grad():
        for p in lm.parameters():
            p.copy_(p.half().float() * 4)
    eng, ref = SpringLMEngine.from_model(lm), SpringLMCodingModel(lm)
    rng = np.random.default_rng(4)
    st_e, st_t = eng.new_state(15, 2), ref.new_state(15, 2)
    for _ in range(10):  # logits up to about 20: the bound is relative to their scale
        view = _view(rng, 24, 2)
        got, want = eng.fine_logits(st_e, view, (3, 24)), ref.fine_logits(st_t, view, (3, 24))
        assert float(np.abs(got - want).max()) < 1e-5 * float(np.abs(want).max())
        eng.commit(st_e, view[:3])
        ref.commit(st_t, view[:3])
    window = _window(rng, 17)
    got, want = eng.conceal_logits(window), ref.conceal_logits(window)
    assert float(np.abs(got - want).max()) < 1e-5 * float(np.abs(want).max())


def test_the_shipped_model_matches_torch():
    from soundspring.models.weights_io import DEFAULT_LM_WEIGHTS, load_lm, load_lm_engine

    if not DEFAULT_LM_WEIGHTS.exists():
        pytest.skip("no shipped SpringLM weights in this checkout")
    eng = load_lm_engine(DEFAULT_LM_WEIGHTS)
    ref = SpringLMCodingModel(load_lm(DEFAULT_LM_WEIGHTS))
    assert eng.weights_id == ref.model_id
    if "avx2" in supported_isas():
        assert eng.weight_storage == "binary16"  # the file's fp16 values, streamed as such
    rng = np.random.default_rng(9)
    st_e, st_t = eng.new_state(15, 2), ref.new_state(15, 2)
    for _ in range(10):
        view = _view(rng, 12, 2)
        got, want = eng.fine_logits(st_e, view, (3, 12)), ref.fine_logits(st_t, view, (3, 12))
        assert float(np.abs(got - want).max()) < ATOL
        eng.commit(st_e, view[:3])
        ref.commit(st_t, view[:3])
    window = _window(rng, 17)
    assert float(np.abs(eng.conceal_logits(window) - ref.conceal_logits(window)).max()) < ATOL


def test_untied_heads_match_torch():
    cfg = SpringLMConfig(dim=32, n_layers=1, n_heads=4, ffn_mult=1, dropout=0.0,
                         tie_embeddings=False, n_codebooks=6)
    weights = _deterministic_weights(cfg)
    lm = SpringLM(cfg).eval()
    lm.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    eng, ref = SpringLMEngine(cfg, weights), SpringLMCodingModel(lm)
    rng = np.random.default_rng(3)
    st_e, st_t = eng.new_state(4, 2), ref.new_state(4, 2)
    for _ in range(4):
        view = rng.integers(0, V, size=(6, 2)).astype(np.int64)
        view[4:] = MASK
        got, want = eng.fine_logits(st_e, view, (0, 6)), ref.fine_logits(st_t, view, (0, 6))
        assert float(np.abs(got - want).max()) < ATOL
        eng.commit(st_e, view[:3])
        ref.commit(st_t, view[:3])


# ---- the same bits everywhere ----------------------------------------------------------------


def _outputs(eng: SpringLMEngine) -> bytes:
    """Every mode on fixed tokens (from ``_hash_u16``, not numpy's generators): coding-pass
    logits of 8 chunks (R = 6, C = 2) with their memory passes, fused CDFs of the next
    chunk, and a concealment window with lost frames."""
    def view(i: int) -> np.ndarray:
        v = (_hash_u16(24, 1000 + i) % V).reshape(12, 2)
        v[3 + i % 4:9] = MASK
        v[9 + i % 3:] = MASK_UPPER
        return v

    st = eng.new_state(6, 2)
    parts = []
    for i in range(8):
        parts.append(eng.fine_logits(st, view(i), (0, 12)))
        eng.commit(st, view(i)[:3])
    parts.append(eng.fine_cdfs(st, view(8), (3, 12), precision_bits=16))
    window = (_hash_u16(24 * 17, 2000) % V).reshape(24, 17)
    window[:3, [2, 3, 9]] = MASK
    parts.append(eng.conceal_logits(window))
    return b"".join(np.ascontiguousarray(p).tobytes() for p in parts)


# SHA-256 of _outputs on the deterministic tiny model: the engine's bits, pinned. A change
# means the engine no longer computes what every deployed peer computes.
GOLDEN_SHA256 = "1f1f29d00e24e941647f58d78843806e70dba9b94d33d787910a017b9fdead8b"


@pytest.mark.golden
def test_golden_digest_of_engine_bits(engine):
    digest = hashlib.sha256(_outputs(engine)).hexdigest()
    assert digest == GOLDEN_SHA256, (
        f"the engine's bits changed (digest {digest}); every peer must compute the same "
        "bits: a deliberate change of the arithmetic needs a new GOLDEN_SHA256 and a note")


def test_every_isa_level_gives_the_same_bits(engine):
    levels = supported_isas()
    assert {"generic", best_isa()} <= set(levels)
    want = _outputs(engine)
    for isa in levels:
        eng = SpringLMEngine(CFG, WEIGHTS, isa=isa)
        assert eng.isa == isa
        assert _outputs(eng) == want, isa


def test_isa_forced_by_environment(monkeypatch):
    monkeypatch.setenv(ISA_ENV, "generic")
    assert SpringLMEngine(CFG, WEIGHTS).isa == "generic"
    assert SpringLMEngine(CFG, WEIGHTS, isa="auto").isa == best_isa()  # the argument wins
    monkeypatch.setenv(ISA_ENV, "mmx")
    with pytest.raises(ConfigError, match=ISA_ENV):
        SpringLMEngine(CFG, WEIGHTS)


@pytest.mark.skipif("avx512" in supported_isas(), reason="this CPU runs AVX-512")
def test_missing_isa_level_is_refused():
    with pytest.raises(ConfigError, match="avx512"):
        SpringLMEngine(CFG, WEIGHTS, isa="avx512")


def test_binary16_weight_storage_gives_the_same_bits():
    halves = {k: v.astype(np.float16).astype(np.float32) for k, v in WEIGHTS.items()}
    engines = {isa: SpringLMEngine(CFG, halves, isa=isa) for isa in supported_isas()}
    storage = {isa: e.weight_storage for isa, e in engines.items()}
    assert storage["generic"] == "float32" and SpringLMEngine(CFG, WEIGHTS).weight_storage == "float32"
    if "avx2" in storage:
        assert storage["avx2"] == "binary16"
    outputs = {isa: _outputs(e) for isa, e in engines.items()}
    assert len(set(outputs.values())) == 1, storage


@pytest.mark.parametrize("threads", [2, 3])
def test_thread_count_never_changes_a_bit(engine, threads):
    eng = SpringLMEngine(CFG, WEIGHTS, num_threads=threads)
    assert eng.num_threads == threads
    assert _outputs(eng) == _outputs(engine)


@pytest.mark.parametrize("threads", [1, 2])
def test_batched_streams_equal_separate_calls_bitwise(threads):
    eng = SpringLMEngine(CFG, WEIGHTS, num_threads=threads)
    rng = np.random.default_rng(5)
    b, c = 5, 2
    states = [eng.new_state(8, c) for _ in range(b)]
    for i, st in enumerate(states):  # different histories (and ring positions) per stream
        for _ in range(i + 1):
            eng.commit(st, _view(rng, 3, c))
    views = np.stack([_view(rng, 12, c) for _ in range(b)])
    batched = eng.fine_logits_batch(states, views, (2, 12))
    assert batched.shape == (b, 10, c, V)
    for i in range(b):
        assert batched[i].tobytes() == eng.fine_logits(states[i], views[i], (2, 12)).tobytes()
    # another order of the same streams: each stream's rows are unchanged
    order = [3, 0, 4, 1, 2]
    again = eng.fine_logits_batch([states[i] for i in order], views[order], (2, 12))
    assert again.tobytes() == batched[order].tobytes()


def test_batched_commits_equal_separate_commits_bitwise(engine):
    rng = np.random.default_rng(11)
    reaches = [8, 0, 4, 8, 2]  # any reach per stream, one C
    one = [engine.new_state(r, 2) for r in reaches]
    many = [engine.new_state(r, 2) for r in reaches]
    for step in range(6):
        base = np.stack([_view(rng, 3, 2) for _ in reaches])
        for st, b in zip(one, base):
            engine.commit(st, b)
        engine.commit_batch(many, base)
        assert [s.frames for s in many] == [2 * (step + 1)] * len(reaches)
    view = _view(rng, 12, 2)
    for a, b in zip(one, many):
        assert engine.fine_logits(a, view, (3, 12)).tobytes() == \
            engine.fine_logits(b, view, (3, 12)).tobytes()
    with pytest.raises(ConfigError, match="distinct"):
        engine.commit_batch([many[0], many[0]], np.zeros((2, 3, 2), dtype=np.int64))
    bad = np.zeros((2, 3, 2), dtype=np.int64)
    bad[1, 0, 0] = V + 2
    with pytest.raises(ConfigError, match="token ids"):
        engine.commit_batch(many[:2], bad)
    assert [s.frames for s in many[:2]] == [12, 12]  # a refused batch commits nothing


def test_interleaved_streams_do_not_interact(engine):
    rng = np.random.default_rng(6)
    chunks = [[_view(rng, 12, 2) for _ in range(5)] for _ in range(2)]
    alone = []
    for stream in chunks:
        st = engine.new_state(4, 2)
        for view in stream:
            alone.append(engine.fine_logits(st, view, (3, 12)).tobytes())
            engine.commit(st, view[:3])
    states = [engine.new_state(4, 2), engine.new_state(4, 2)]
    mixed = {}
    for j in range(5):
        for s in (1, 0):
            mixed[s * 5 + j] = engine.fine_logits(states[s], chunks[s][j], (3, 12)).tobytes()
            engine.commit(states[s], chunks[s][j][:3])
    assert [mixed[i] for i in range(10)] == alone


def test_fused_cdfs_are_cdf_from_logits_of_the_logits(engine):
    rng = np.random.default_rng(7)
    st = engine.new_state(4, 2)
    engine.commit(st, _view(rng, 3, 2))
    view = _view(rng, 12, 2)
    logits = engine.fine_logits(st, view, (3, 12))
    for bits in (11, 16):
        cdfs = engine.fine_cdfs(st, view, (3, 12), precision_bits=bits)
        assert cdfs.shape == (9, 2, V + 1) and cdfs.dtype == np.uint32
        want = coding.cdf_from_logits(np.ascontiguousarray(logits.reshape(-1, V)),
                                      precision_bits=bits)
        np.testing.assert_array_equal(cdfs.reshape(-1, V + 1), want)


def test_snapshot_is_independent_and_reset_empties(engine):
    rng = np.random.default_rng(8)
    st = engine.new_state(4, 2)
    engine.commit(st, _view(rng, 3, 2))
    view = _view(rng, 12, 2)
    before = engine.fine_logits(st, view, (3, 12))
    snap = st.snapshot()
    engine.commit(st, _view(rng, 3, 2))
    assert snap.frames == 2 and st.frames == 4
    assert engine.fine_logits(snap, view, (3, 12)).tobytes() == before.tobytes()
    st.reset()
    fresh = engine.new_state(4, 2)
    assert st.frames == 0
    assert engine.fine_logits(st, view, (3, 12)).tobytes() == \
        engine.fine_logits(fresh, view, (3, 12)).tobytes()


# ---- typed errors ---------------------------------------------------------------------------


def test_bad_tokens_and_shapes_raise_typed_errors(engine):
    st = engine.new_state(4, 2)
    good = np.zeros((12, 2), dtype=np.int64)
    bad_ids = [good.copy() for _ in range(2)]
    bad_ids[0][5, 1] = -1
    bad_ids[1][0, 0] = V + 2
    for view in bad_ids:
        with pytest.raises(ConfigError, match="token ids"):
            engine.fine_logits(st, view, (3, 12))
        with pytest.raises(ConfigError, match="token ids"):
            engine.commit(st, view)
        with pytest.raises(ConfigError, match="token ids"):
            engine.conceal_logits(view)
    assert st.frames == 0  # a refused commit changes nothing
    with pytest.raises(ConfigError, match="C=2"):
        engine.fine_logits(st, np.zeros((12, 3), dtype=np.int64), (3, 12))
    with pytest.raises(ConfigError, match="C=2"):
        engine.commit(st, np.zeros((3, 1), dtype=np.int64))
    with pytest.raises(ConfigError):
        engine.fine_logits(st, np.zeros((25, 2), dtype=np.int64), (3, 12))  # K > K_max
    with pytest.raises(ConfigError):
        engine.fine_logits(st, np.zeros((0, 2), dtype=np.int64), (3, 12))
    with pytest.raises(ConfigError):
        engine.fine_logits(st, np.zeros((1, 12, 2), dtype=np.int64), (3, 12))
    with pytest.raises(ConfigError):
        engine.conceal_logits(np.zeros((3, 0), dtype=np.int64))
    with pytest.raises(TypeError):
        engine.fine_logits(st, good.astype(np.float32), (3, 12))
    with pytest.raises(TypeError):
        engine.fine_logits(st, good.tolist(), (3, 12))
    for levels in [(3, 25), (5, 5), (-1, 2), (3,), "all", (True, 3)]:
        with pytest.raises(ConfigError, match="levels"):
            engine.fine_logits(st, good, levels)
    with pytest.raises(ConfigError):
        engine.fine_cdfs(st, good, (3, 12), precision_bits=9)  # V = 1024 > 2^9
    with pytest.raises(ConfigError):
        engine.fine_logits_batch([st], np.zeros((2, 12, 2), dtype=np.int64), (3, 12))
    with pytest.raises(TypeError):
        engine.fine_logits_batch([st, "state"], np.zeros((2, 12, 2), dtype=np.int64), (3, 12))
    with pytest.raises(TypeError):
        engine.fine_logits("state", good, (3, 12))


def test_bad_state_and_options_raise_typed_errors(engine):
    for r, c in [(-1, 2), (51, 2), (4, 0), (4, 6), (4.0, 2)]:
        with pytest.raises(ConfigError):
            engine.new_state(r, c)
    other = SpringLMEngine(SpringLMConfig(dim=32, n_layers=1, n_heads=2, ffn_mult=1, dropout=0.0),
                           _deterministic_weights(SpringLMConfig(dim=32, n_layers=1, n_heads=2,
                                                                 ffn_mult=1, dropout=0.0)))
    foreign = other.new_state(4, 2)
    with pytest.raises(ConfigError, match="model"):
        engine.fine_logits(foreign, np.zeros((12, 2), dtype=np.int64), (3, 12))
    with pytest.raises(TypeError):  # states come from new_state only
        StreamState()
    for kwargs in [{"isa": "mmx"}, {"num_threads": 0}, {"num_threads": 1000}]:
        with pytest.raises(ConfigError):
            SpringLMEngine(CFG, WEIGHTS, **kwargs)


def test_mismatched_weights_raise_model_mismatch():
    missing = dict(WEIGHTS)
    del missing["blocks.1.ff2.bias"]
    with pytest.raises(ModelMismatchError, match="blocks.1.ff2.bias"):
        SpringLMEngine(CFG, missing)
    wrong = dict(WEIGHTS)
    wrong["blocks.0.qkv.weight"] = np.zeros((3 * 64, 63), dtype=np.float32)
    with pytest.raises(ModelMismatchError, match="qkv.weight"):
        SpringLMEngine(CFG, wrong)
    extra = dict(WEIGHTS, head_weight=np.zeros((24, V, 64), dtype=np.float32))  # tied model
    with pytest.raises(ModelMismatchError, match="head_weight"):
        SpringLMEngine(CFG, extra)
    with pytest.raises(ModelMismatchError):
        SpringLMEngine(CFG, dict(WEIGHTS, **{"ln_out.bias": np.zeros(64, dtype=np.int32)}))
    with pytest.raises(ModelMismatchError, match="unigram"):
        SpringLMEngine(CFG, dict(WEIGHTS, unigram_logprobs=np.zeros((24, 10), np.float32)))
    with pytest.raises(ModelMismatchError):  # another config for the same tensors
        SpringLMEngine(SpringLMConfig(dim=64, n_layers=3, n_heads=2, ffn_mult=2, dropout=0.0),
                       WEIGHTS)
    with pytest.raises(TypeError):
        SpringLMEngine(CFG, dict(WEIGHTS, **{"ln_out.bias": [0.0] * 64}))


# ---- the transceiver on the engine ------------------------------------------------------------


@pytest.fixture(scope="module")
def codec():
    from soundspring.models.codec import Codec

    torch.manual_seed(0)
    return Codec(codec_tiny()).eval()


def _speechlike(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    x = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / 16000) / k for k in range(1, 12))
    return (0.2 * x * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


@pytest.mark.parametrize("progressive", [False, True])
def test_transceiver_round_trip_with_the_engine_at_both_ends(codec, progressive):
    from soundspring.transceiver import Receiver, TransceiverConfig, Transmitter

    cfg = TransceiverConfig(bitrate_kbps=6, context_frames=4, progressive=progressive)
    tx = Transmitter(codec, SpringLMEngine(CFG, WEIGHTS), cfg)
    pcm = _speechlike(0.6)
    packets = []
    for start in range(0, len(pcm), 700):
        packets += tx.push(pcm[start:start + 700])
    packets += tx.flush()
    # the receiver's own engine: another instance, another kernel level and thread count
    rx_engine = SpringLMEngine(CFG, WEIGHTS, isa=supported_isas()[0], num_threads=2)
    rx = Receiver(codec, rx_engine, cfg)
    for p in reversed(packets):
        rx.push(p.data, p.seq, p.chunk)
    rx.decode_until(tx.chunks_sent)
    assert [h.base for h in rx.history] == ["received"] * tx.chunks_sent
    for sent, got in zip(tx.sent_tokens, rx.history):
        np.testing.assert_array_equal(got.tokens, sent)
    assert rx.stats.fine_packets_failed_check == 0 and rx.stats.fine_packets_undecodable == 0

    lossy = Receiver(codec, SpringLMEngine(CFG, WEIGHTS), cfg)  # a lost base, LM concealment
    for p in packets:
        if not (p.chunk == 2 and p.layer == 0):
            lossy.push(p.data, p.seq, p.chunk)
    lossy.decode_until(tx.chunks_sent)
    assert lossy.history[2].base == "concealed"
    for c, outcome in enumerate(lossy.history):
        if c not in (2, 3, 4):  # the lost chunk and the R // C = 2 chunks its base reaches
            np.testing.assert_array_equal(outcome.tokens, tx.sent_tokens[c])
    assert lossy.stats.fine_packets_failed_check == 0


def test_docstring_example_runs():
    import doctest

    import soundspring.models.lm_engine as module

    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_shipped_models_round_trip_on_the_engine():
    """The shipped codec and SpringLM, the engine at both ends (``load_coding_model``
    checks the LM against the codec's tokenizer): every token arrives as sent."""
    from soundspring.models.weights_io import DEFAULT_LM_WEIGHTS, load_codec, load_coding_model
    from soundspring.transceiver import Receiver, TransceiverConfig, Transmitter

    if not DEFAULT_LM_WEIGHTS.exists():
        pytest.skip("no shipped SpringLM weights in this checkout")
    codec = load_codec()
    cfg = TransceiverConfig(bitrate_kbps=6, context_frames=15)
    tx = Transmitter(codec, load_coding_model(None, codec), cfg)
    assert isinstance(tx.model, SpringLMEngine) and tx.coder.fused_cdfs  # the default
    packets = tx.push(_speechlike(1.0)) + tx.flush()
    rx = Receiver(codec, load_coding_model(None, codec, "engine"), cfg)
    for p in packets:
        rx.push(p.data, p.seq, p.chunk)
    rx.decode_until(tx.chunks_sent)
    for sent, got in zip(tx.sent_tokens, rx.history):
        np.testing.assert_array_equal(got.tokens, sent)
    assert rx.stats.fine_packets_failed_check == 0 and rx.stats.chunks_concealed == 0
