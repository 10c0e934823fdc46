"""SpringLM: exact caching, bounded entropy-context reach, masking, invariances, errors.

Random-init tiny models (with randomised position biases so relative positions matter)
and synthetic tokens; every test prints its seed through the ``rng`` fixture.
"""

from __future__ import annotations

import pytest
import torch
from soundspring.config import LAYER_BOUNDS
from soundspring.errors import ConfigError, ModelMismatchError
from soundspring.models.masked_lm import (
    MASK,
    MASK_UPPER,
    SpringLM,
    SpringLMConfig,
    context_chunks,
    springlm_default,
    springlm_tiny,
)
from soundspring.models.weights_io import lm_model_id, load_lm, read_lm_weights, save_lm_weights

V = 1024


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def lm() -> SpringLM:
    torch.manual_seed(1234)
    model = SpringLM(springlm_tiny()).eval()
    with torch.no_grad():
        model.rel_bias_self.normal_(0, 1.0)
        model.rel_bias_mem.normal_(0, 1.0)
        model.head_bias.normal_(0, 0.1)
    return model


def _tokens(rng, b: int, k: int, f: int) -> torch.Tensor:
    return torch.from_numpy(rng.integers(0, V, (b, k, f))).long()


def _view(codes: torch.Tensor, n_levels: int, revealed: int = 3) -> torch.Tensor:
    """Coding view: levels < revealed visible, MASK up to n_levels, MASK_UPPER above."""
    v = codes.clone()
    v[:, revealed:n_levels] = MASK
    v[:, n_levels:] = MASK_UPPER
    return v


def _cached(lm: SpringLM, view: torch.Tensor, r: int, c: int, levels=None,
            peeks: int = 0) -> torch.Tensor:
    state = lm.init_state(view.shape[0], r, c)
    out = []
    for i in range(view.shape[2] // c):
        chunk = view[..., i * c:(i + 1) * c]
        for _ in range(peeks):
            peek, state = lm.step(chunk, state, commit=False, levels=levels)
        logits, state = lm.step(chunk, state, levels=levels)
        if peeks:
            assert torch.equal(peek, logits)
        out.append(logits)
    return torch.cat(out, dim=2)


@pytest.mark.parametrize("r", [0, 1, 4, 15, 50])
@pytest.mark.parametrize("c", [1, 2, 3, 5])
def test_cached_equals_uncached(lm: SpringLM, rng, r: int, c: int) -> None:
    n_levels = [6, 12, 24][(r + c) % 3]
    codes = _tokens(rng, 2, 24, 6 * c)
    view = _view(codes, n_levels)
    full = lm.forward_coding(view, r, c, levels=(3, n_levels))
    cached = _cached(lm, view, r, c, levels=(3, n_levels), peeks=1)
    assert cached.shape == (2, n_levels - 3, 6 * c, V) and cached.dtype == torch.float32
    assert (cached - full).abs().max().item() < 1e-5


def test_progressive_peeks_equal_uncached(lm: SpringLM, rng) -> None:
    """One chunk coded group by group (peeks), then committed; each group's logits equal
    the uncached forward of the same views."""
    r, c, f = 6, 2, 10
    codes = _tokens(rng, 1, 24, f)
    state = lm.init_state(1, r, c)
    for i in range(f // c):
        for g in range(1, len(LAYER_BOUNDS) - 1):
            lo, hi = LAYER_BOUNDS[g], LAYER_BOUNDS[g + 1]
            view = _view(codes, 24, revealed=lo)
            full = lm.forward_coding(view[..., :(i + 1) * c], r, c, levels=(lo, hi))
            peek, state = lm.step(view[..., i * c:(i + 1) * c], state, commit=False,
                                  levels=(lo, hi))
            assert (peek - full[:, :, i * c:]).abs().max().item() < 1e-5
        state = lm.commit(codes[:, :3, i * c:(i + 1) * c], state)
    assert state.frames == f


def test_commit_equals_step_commit(lm: SpringLM, rng) -> None:
    codes = _view(_tokens(rng, 2, 12, 8), 12)
    s1, s2 = lm.init_state(2, 5, 2), lm.init_state(2, 5, 2)
    for i in range(4):
        _, s1 = lm.step(codes[..., 2 * i:2 * i + 2], s1)
        s2 = lm.commit(codes[:, :3, 2 * i:2 * i + 2], s2)
    assert torch.equal(s1.keys, s2.keys) and torch.equal(s1.values, s2.values)
    assert torch.equal(s1.slot_frame, s2.slot_frame) and s1.write == s2.write


def test_memory_is_fixed_size_ring(lm: SpringLM, rng) -> None:
    state = lm.init_state(1, 15, 2)
    cap = context_chunks(15, 2) * 2
    assert state.keys.shape[3] == cap == 14
    ptr = state.keys.data_ptr()
    for i in range(20):
        _, state = lm.step(_view(_tokens(rng, 1, 6, 2), 6), state)
    assert state.keys.shape[3] == cap and state.keys.data_ptr() == ptr and state.frames == 40
    snap = state.snapshot()
    state.reset()
    assert state.frames == 0 and not state.valid.any() and snap.frames == 40


def test_reach_is_exact(lm: SpringLM, rng) -> None:
    """Chunk 7's logits depend on the base tokens of chunks 7 - R // C .. 6 only."""
    r, c, n = 5, 2, 8  # memory = 2 chunks
    codes = _tokens(rng, 1, 12, n * c)
    view = _view(codes, 12)
    ref = lm.forward_coding(view, r, c)[:, :, -c:]
    for chunk, should_change in [(0, False), (4, False), (5, True), (6, True)]:
        v2 = view.clone()
        v2[:, :3, chunk * c:(chunk + 1) * c] = (v2[:, :3, chunk * c:(chunk + 1) * c] + 1) % V
        out = lm.forward_coding(v2, r, c)[:, :, -c:]
        changed = (out - ref).abs().max().item() > 1e-4
        assert changed == should_change, (chunk, changed)


def test_no_dependence_on_past_fine_tokens(lm: SpringLM, rng) -> None:
    """Fine levels of past chunks (visible, MASK or MASK_UPPER) never reach the memory."""
    r, c = 8, 2
    codes = _tokens(rng, 1, 24, 10)
    view = _view(codes, 24)
    ref = lm.forward_coding(view, r, c)[:, :, -c:]
    v2 = view.clone()
    v2[:, 3:, :-c] = _tokens(rng, 1, 21, 10 - c)  # past fine levels: arbitrary visible ids
    v3 = view.clone()
    v3[:, 3:, :-c] = MASK_UPPER
    for v in (v2, v3):
        assert (lm.forward_coding(v, r, c)[:, :, -c:] - ref).abs().max().item() < 1e-5


def test_masked_values_never_leak(lm: SpringLM, rng) -> None:
    """Changing the true value behind a MASK cannot change anything: the model only sees
    MASK. Changing a visible lower level does change the logits of masked levels above."""
    codes = _tokens(rng, 1, 24, 6)
    view = _view(codes, 24, revealed=6)
    ref = lm.forward_coding(view, 6, 2)
    assert torch.equal(view[:, 6:24], torch.full_like(view[:, 6:24], MASK))
    v2 = view.clone()
    v2[:, 4, 4] = (v2[:, 4, 4] + 3) % V  # a revealed level of the last chunk
    out = lm.forward_coding(v2, 6, 2)
    assert (out[:, 6:, 4:] - ref[:, 6:, 4:]).abs().max().item() > 1e-4
    assert (out[:, :, :4] - ref[:, :, :4]).abs().max().item() < 1e-6  # other chunks untouched


def test_fewer_input_levels_equal_mask_upper(lm: SpringLM, rng) -> None:
    codes = _view(_tokens(rng, 1, 12, 4), 12)
    padded = torch.cat([codes, torch.full((1, 12, 4), MASK_UPPER)], dim=1)
    a = lm.forward_coding(codes, 4, 2)
    b = lm.forward_coding(padded, 4, 2, levels=(0, 12))
    assert (a - b).abs().max().item() < 1e-6


def test_batch_invariance(lm: SpringLM, rng) -> None:
    codes = _view(_tokens(rng, 5, 24, 8), 24)
    batch = _cached(lm, codes, 6, 2, levels=(3, 24))
    diffs = [(_cached(lm, codes[i:i + 1], 6, 2, levels=(3, 24)) - batch[i:i + 1]).abs().max()
             for i in range(5)]
    worst = max(float(d) for d in diffs)
    print(f"batch invariance: max abs logit diff {worst:.3g}")
    assert worst < 1e-5


def test_thread_invariance(lm: SpringLM, rng) -> None:
    codes = _view(_tokens(rng, 2, 24, 8), 24)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _cached(lm, codes, 6, 2)
        torch.set_num_threads(2)
        two = _cached(lm, codes, 6, 2)
    finally:
        torch.set_num_threads(old)
    worst = float((one - two).abs().max())
    print(f"thread invariance: max abs logit diff {worst:.3g}")
    assert worst < 1e-5


def test_position_invariance(lm: SpringLM, rng) -> None:
    """A stream's chunk logits depend on relative positions only: the same context at a
    later absolute position of the stream gives the same logits (ring wrapped)."""
    r, c = 4, 2
    codes = _view(_tokens(rng, 1, 12, 30), 12)
    full = _cached(lm, codes, r, c)
    late = lm.forward_coding(codes[..., -6:], r, c)  # fresh stream: last 3 chunks
    assert (full[:, :, -2:] - late[:, :, -2:]).abs().max().item() < 1e-5


def test_conceal_shapes_and_locality(lm: SpringLM, rng) -> None:
    codes = _tokens(rng, 3, 12, 20)
    codes[:, :3, 8:12] = MASK
    out = lm.forward_conceal(codes)
    assert out.shape == (3, 3, 20, V) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert lm.forward_conceal(codes, levels=(0, 6)).shape == (3, 6, 20, V)
    # fine levels are ignored; future received frames matter (bidirectional)
    c2 = codes.clone()
    c2[:, 3:] = MASK_UPPER
    assert (lm.forward_conceal(c2) - out).abs().max().item() < 1e-6
    c3 = codes.clone()
    c3[:, 0, 15] = (c3[:, 0, 15] + 1) % V
    assert (lm.forward_conceal(c3)[:, :, 8] - out[:, :, 8]).abs().max().item() > 1e-5


def test_weights_round_trip(lm: SpringLM, tmp_path) -> None:
    lm.set_unigram(torch.arange(24 * V).reshape(24, V) % 7)
    p = save_lm_weights(lm, tmp_path / "lm.pt", tokenizer_sha256="ab" * 32, meta={"step": 3})
    cfg, state, codec_h, sha, meta = read_lm_weights(p)
    assert cfg == lm.cfg and codec_h == "ab" * 32 and meta == {"step": 3}
    assert all(v.dtype == torch.float16 for v in state.values())
    back = load_lm(p, tokenizer_sha256="ab" * 32)
    assert back.model_id == sha == lm_model_id(back)
    x = _view(torch.randint(0, V, (1, 24, 4), generator=torch.Generator().manual_seed(0)), 24)
    ref = SpringLM(lm.cfg).eval()
    ref.load_state_dict({k: v.half().float() for k, v in lm.state_dict().items()})
    assert torch.equal(back.forward_coding(x, 4, 2), ref.forward_coding(x, 4, 2))
    assert torch.allclose(back.unigram_logprobs, lm.unigram_logprobs, atol=1e-2)
    with pytest.raises(ModelMismatchError, match="codec"):
        load_lm(p, tokenizer_sha256="cd" * 32)
    blob = torch.load(p, weights_only=True)
    blob["state_dict"]["head_bias"][0, 0] += 1
    torch.save(blob, tmp_path / "bad.pt")
    with pytest.raises(ModelMismatchError, match="hash"):
        load_lm(tmp_path / "bad.pt")
    with pytest.raises(ConfigError, match="not found"):
        load_lm(tmp_path / "missing.pt")


def test_unigram_add_one(lm: SpringLM) -> None:
    counts = torch.zeros(24, V)
    counts[:, 0] = 1022
    lm.set_unigram(counts)
    p = lm.unigram_logprobs.exp()
    assert torch.allclose(p.sum(-1), torch.ones(24), atol=1e-5)
    assert torch.allclose(p[:, 0], torch.full((24,), 0.5)) and (p[:, 1:] > 0).all()


def test_default_size() -> None:
    m = SpringLM(springlm_default())
    assert 5e6 < m.num_parameters() < 8e6


@pytest.mark.parametrize("bad, exc, match", [
    ([[[1]]], TypeError, "codes must be an int64 torch.Tensor"),
    (torch.zeros(1, 3, 4, dtype=torch.int32), ConfigError, "codes must be an int64"),
    (torch.zeros(3, 4, dtype=torch.int64), ConfigError, "codes must be an int64"),
    (torch.zeros(1, 25, 4, dtype=torch.int64), ConfigError, "shape"),
    (torch.full((1, 3, 4), V + 2), ConfigError, "ids in"),
    (torch.full((1, 3, 4), -1), ConfigError, "ids in"),
    (torch.zeros(1, 3, 5, dtype=torch.int64), ConfigError, "multiple of chunk_frames"),
])
def test_bad_codes(lm: SpringLM, bad, exc, match) -> None:
    with pytest.raises(exc, match=match):
        lm.forward_coding(bad, 4, 2)


def test_bad_arguments(lm: SpringLM) -> None:
    x = torch.zeros(1, 3, 4, dtype=torch.int64)
    with pytest.raises(ConfigError, match="context_frames"):
        lm.forward_coding(x, 51, 2)
    with pytest.raises(ConfigError, match="chunk_frames"):
        lm.init_state(1, 4, 6)
    with pytest.raises(ConfigError, match="levels"):
        lm.forward_coding(x, 4, 2, levels=(3, 30))
    with pytest.raises(ConfigError, match="batch"):
        lm.init_state(0, 4, 2)
    state = lm.init_state(1, 4, 2)
    with pytest.raises(ConfigError, match="chunk_tokens must be"):
        lm.step(torch.zeros(1, 3, 3, dtype=torch.int64), state)
    with pytest.raises(ConfigError, match="chunk_tokens must be"):
        lm.step(torch.zeros(2, 3, 2, dtype=torch.int64), state)
    with pytest.raises(TypeError, match="state"):
        lm.step(torch.zeros(1, 3, 2, dtype=torch.int64), None)
    with pytest.raises(ConfigError, match="base_tokens"):
        lm.commit(torch.zeros(1, 3, 2, dtype=torch.int16), state)


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="n_heads"):
        SpringLMConfig(dim=65, n_heads=2)
    with pytest.raises(ConfigError, match="max_rel_distance"):
        SpringLMConfig(max_context_frames=60)


def test_docstring_examples() -> None:
    import doctest

    import soundspring.models.masked_lm
    import soundspring.models.weights_io

    for module in (soundspring.models.masked_lm, soundspring.models.weights_io):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.attempted > 0 and result.failed == 0


def test_untied_heads_cached_equals_uncached(rng) -> None:
    torch.manual_seed(7)
    model = SpringLM(SpringLMConfig(dim=32, n_layers=1, n_heads=2, ffn_mult=2,
                                    tie_embeddings=False)).eval()
    view = _view(_tokens(rng, 2, 12, 8), 12)
    full = model.forward_coding(view, 4, 2, levels=(3, 12))
    assert (_cached(model, view, 4, 2, levels=(3, 12)) - full).abs().max().item() < 1e-5
