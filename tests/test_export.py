"""Exported models (soundspring.models.export): every artifact, in both formats, reproduces
the eager models over several chunks of speech-like audio with its state carried (tokens
exactly, audio and logits within 1e-4); the flat SpringLM file gives the engine the same
weights and the flat codec decoder file gives the C++ decoder the same audio bits as
``CodecEngine``; corrupt, truncated or hostile flat files and a tampered or mismatched
manifest are refused with a typed error."""

from __future__ import annotations

import dataclasses
import inspect
import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from soundspring.cli import main
from soundspring.config import MASK, MASK_UPPER
from soundspring.errors import ConfigError, ModelMismatchError
from soundspring.models.export import (
    CODEC_FLAT,
    CODEC_FLAT_NAME,
    FLAT_ALIGN,
    LM_FLAT,
    LM_FLAT_NAME,
    MANIFEST_NAME,
    LMCommitStep,
    LMFineStep,
    _Artifact,
    _save,
    export_models,
    load_artifact,
    load_exported,
    read_codec_flat,
    read_flat_tensors,
    read_lm_flat,
    verify_manifest,
    write_flat_tensors,
)
from soundspring.models.weights_io import (
    DEFAULT_LM_WEIGHTS,
    codec_tokenizer_hash,
    load_codec,
    load_lm,
    read_lm_weights,
)

C = 2
N_CHUNKS = 8
AUDIO_TOL = 1e-4


def _speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """A voiced, vibrato, amplitude-modulated harmonic signal plus noise (16 kHz)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    x = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / 16000) / k for k in range(1, 12))
    return (0.2 * x * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
            + 0.01 * rng.normal(size=t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def models():
    codec = load_codec()
    lm = load_lm(DEFAULT_LM_WEIGHTS, tokenizer_sha256=codec_tokenizer_hash(codec))
    return codec, lm


@pytest.fixture(scope="module")
def export_dir(models, tmp_path_factory):
    codec, lm = models
    out = tmp_path_factory.mktemp("export")
    export_models(codec, lm, out, chunk_frames=C)
    return out


@pytest.fixture(scope="module")
def chunks():
    pcm = torch.from_numpy(_speechlike(N_CHUNKS * C * 0.02 + 0.01, seed=3))
    n = C * 320
    return [pcm[i * n:(i + 1) * n].view(1, 1, n) for i in range(N_CHUNKS)]


@pytest.fixture(scope="module", params=["torchscript", "pt2"])
def exported(request, export_dir, models):
    return load_exported(export_dir, codec=models[0], lm=models[1], fmt=request.param)


def test_manifest_records_models_and_files(export_dir, models):
    codec, lm = models
    m = json.loads((export_dir / MANIFEST_NAME).read_text())
    assert m["chunk_frames"] == C and m["sample_rate_hz"] == 16000
    assert m["lm"]["model_id"] == lm.model_id
    assert m["codec"]["tokenizer_sha256"] == codec_tokenizer_hash(codec)
    assert m["bitrates_kbps"] == {"1.5": 3, "3": 6, "6": 12, "12": 24}
    assert m["coding"]["layer_bounds"] == [0, 3, 6, 12, 24] and m["coding"]["mask"] == MASK
    assert set(m["artifacts"]) == {"encoder_step", "decoder_step", "decoder_latent_step",
                                   "lm_fine_step"}  # R = 0 < C: no commit step
    listed = {f for a in m["artifacts"].values() for f in a["files"].values()} | {
        LM_FLAT_NAME, CODEC_FLAT_NAME}
    assert set(m["files"]) == listed
    assert m["codec"]["decoder_weights"] == CODEC_FLAT_NAME
    assert m["lm"]["engine_weights"] == LM_FLAT_NAME
    assert all(len(f["sha256"]) == 64 for f in m["files"].values())


def _reference_codes(codec, z: torch.Tensor) -> torch.Tensor:
    """Every level's codes of latents z by the PyTorch reference search (the greedy
    search the export traces; ``ResidualVQ.encode`` may take a C++ kernel at inference)."""
    encode = codec.quantizer.encode
    if "search" in inspect.signature(encode).parameters:
        return encode(z, 24, search="torch")
    return encode(z, 24)


def test_encoder_step_tokens_exact(exported, models, chunks):
    codec = models[0]
    st_eager = codec.init_encoder_state(1)
    st_lat = codec.init_encoder_state(1)
    st = exported.initial_state("encoder_step")
    worst, agree, total = 0.0, 0, 0
    for wav in chunks:  # state carried across chunks
        codes, st_eager = codec.encode_step(wav, st_eager, 12.0)  # the default search
        with torch.inference_mode():
            z, st_lat = codec.encode_latent_step(wav, st_lat)
            want = _reference_codes(codec, z)
        got, got_z, st = exported.run("encoder_step", wav, st)
        assert got.dtype == torch.int64 and got.shape == (1, 24, C)
        assert torch.equal(got, want)  # every bitrate is a prefix of these levels
        agree += int((got == codes).sum())
        total += codes.numel()
        worst = max(worst, float((got_z - z).abs().max()))
    assert worst <= AUDIO_TOL
    assert agree >= 0.9 * total  # a C++ search differs from it only at float-rounding ties
    assert len({int(x) for x in got.flatten()}) > 4  # real codes, not a constant


def test_decoder_step_audio(exported, models, chunks):
    codec = models[0]
    enc = codec.init_encoder_state(1)
    dec = codec.init_decoder_state(1)
    st = exported.initial_state("decoder_step")
    frames = torch.zeros(1, dtype=torch.int64)
    worst, energy = 0.0, 0.0
    for i, wav in enumerate(chunks):
        codes, enc = codec.encode_step(wav, enc, 12.0)
        n = (24, 12, 3, 6)[i % 4]  # chunks received at several depths
        want, dec = codec.decode_step(codes[:, :n], dec)
        padded = torch.zeros(1, 24, C, dtype=torch.int64)
        padded[:, :n] = codes[:, :n]
        padded[:, n:] = 1023  # ignored levels: any valid code
        got, frames, st = exported.run("decoder_step", padded, torch.tensor([n]), frames, st)
        worst = max(worst, float((got - want).abs().max()))
        energy += float((want ** 2).sum())
    assert int(frames) == N_CHUNKS * C
    assert worst <= AUDIO_TOL and energy > 1.0
    tail = codec.decode_flush(dec)
    assert torch.allclose(st[-1].unsqueeze(1), tail, atol=AUDIO_TOL)


def test_decoder_latent_step_audio(exported, models, chunks):
    codec = models[0]
    enc = codec.init_encoder_state(1)
    dec = codec.init_decoder_state(1)
    st = exported.initial_state("decoder_latent_step")
    frames = torch.zeros(1, dtype=torch.int64)
    worst = 0.0
    for wav in chunks:
        z, enc = codec.encode_latent_step(wav, enc)
        want, dec = codec.decode_latent_step(z, dec)
        got, frames, st = exported.run("decoder_latent_step", z, frames, st)
        worst = max(worst, float((got - want).abs().max()))
    assert worst <= AUDIO_TOL


def _views(codec, chunks) -> list[torch.Tensor]:
    enc = codec.init_encoder_state(1)
    out = []
    for i, wav in enumerate(chunks):
        codes, enc = codec.encode_step(wav, enc, 12.0)
        view = torch.full((1, 24, C), MASK_UPPER, dtype=torch.int64)
        revealed = (3, 6, 12)[i % 3]
        view[:, :revealed] = codes[:, :revealed]
        view[:, revealed:12] = MASK
        out.append(view)
    return out


def test_lm_fine_step_logits(exported, models, chunks):
    codec, lm = models
    worst = 0.0
    for view in _views(codec, chunks):
        want, _ = lm.step(view, lm.init_state(1, 0, C), commit=False, levels=(3, 24))
        got = exported.run("lm_fine_step", view)
        assert got.shape == (1, 21, C, 1024)
        worst = max(worst, float((got - want).abs().max()))
    assert worst <= AUDIO_TOL


@pytest.mark.parametrize("fmt", ["torchscript", "pt2"])
def test_lm_memory_steps(models, chunks, tmp_path, fmt):
    """With a reach R >= C the coding pass reads an explicit memory that the commit step
    writes: 8 chunks through a ring of 2 chunks equal SpringLM.step / commit."""
    codec, lm = models
    r = 4
    cfg = lm.cfg
    cap, dh = r // C * C, cfg.dim // cfg.n_heads
    kv = torch.zeros(cfg.n_layers, 1, cfg.n_heads, cap, dh)
    mem = [torch.zeros(1, dtype=torch.int64), kv, kv.clone(),
           torch.zeros(cap, dtype=torch.int64), torch.zeros(cap, dtype=torch.bool)]
    view0 = torch.zeros(1, 24, C, dtype=torch.int64)
    base0, write0 = torch.zeros(1, 3, C, dtype=torch.int64), torch.zeros(1, dtype=torch.int64)
    fine = _Artifact("lm_fine_step", LMFineStep(lm, r, C), (view0, *mem))
    commit = _Artifact("lm_commit_step", LMCommitStep(lm, r, C), (base0, *mem, write0))
    mods = {}
    for art in (fine, commit):
        path = tmp_path / (art.name + "." + fmt)
        _save(art, fmt, path)
        mods[art.name] = load_artifact(path, fmt)
    state = lm.init_state(1, r, C)
    write = torch.zeros(1, dtype=torch.int64)
    worst = 0.0
    with torch.no_grad():
        for view in _views(codec, chunks):
            want, _ = lm.step(view, state, commit=False, levels=(3, 24))
            got = mods["lm_fine_step"](view, *mem)
            worst = max(worst, float((got - want).abs().max()))
            lm.commit(view[:, :3], state)
            *mem_kv, write, frames = mods["lm_commit_step"](view[:, :3], *mem, write)
            mem = [frames, *mem_kv]
            assert torch.equal(mem[3], state.slot_frame) and torch.equal(mem[4], state.valid)
            assert int(write) == state.write and int(frames) == state.frames
    assert worst <= AUDIO_TOL
    assert float((mem[1] - state.keys).abs().max()) <= AUDIO_TOL


def test_flat_lm_weights_feed_the_engine(export_dir, models):
    from soundspring.models.lm_engine import SpringLMEngine
    from soundspring.models.weights_io import load_lm_engine

    cfg, flat, header = read_lm_flat(export_dir / LM_FLAT_NAME)
    cfg_pt, state, tok, sha, _ = read_lm_weights(DEFAULT_LM_WEIGHTS)
    assert cfg == cfg_pt and header["model_id"] == sha and header["tokenizer_sha256"] == tok
    assert set(flat) == set(state)
    for name, t in state.items():
        assert np.array_equal(flat[name], t.numpy()), name
    a = SpringLMEngine(cfg, flat, weights_id=header["model_id"])
    b = load_lm_engine(DEFAULT_LM_WEIGHTS)
    assert a.model_id == b.model_id == header["engine_model_id"]
    view = np.full((24, C), MASK_UPPER, dtype=np.int64)
    view[:3] = [[5, 9], [100, 7], [1000, 3]]
    view[3:12] = MASK
    sa, sb = a.new_state(0, C), b.new_state(0, C)
    assert np.array_equal(a.fine_logits(sa, view, (3, 12)), b.fine_logits(sb, view, (3, 12)))
    assert np.array_equal(a.base_logits(), b.base_logits())


def test_flat_lm_weights_corruption_refused(export_dir, tmp_path):
    blob = bytearray((export_dir / LM_FLAT_NAME).read_bytes())
    for where in (20, len(blob) - 100):
        bad = bytearray(blob)
        bad[where] ^= 0x10
        p = tmp_path / "bad.bin"
        p.write_bytes(bytes(bad))
        with pytest.raises(ModelMismatchError, match="CRC"):
            read_lm_flat(p)
    p.write_bytes(b"not a flat file at all")
    with pytest.raises(ConfigError):
        read_lm_flat(p)


def test_flat_codec_weights_feed_the_decoder(export_dir, models, chunks):
    """The flat codec file holds the decoder's tensors and the codebooks with the values of
    the codec (float16 where exact, widened back to the same float32), and a C++ decoder
    built from it with the codebooks summed in level order gives CodecEngine's audio bits."""
    from soundspring._native import core
    from soundspring.models.codec_engine import CodecEngine
    from soundspring.models.weights_io import codec_content_hash

    codec = models[0]
    cfg, flat, header = read_codec_flat(export_dir / CODEC_FLAT_NAME)
    assert cfg == codec.cfg
    assert header["codec_id"] == codec_content_hash(codec)
    assert header["tokenizer_sha256"] == codec_tokenizer_hash(codec)
    sd = codec.state_dict()
    want = {k for k, v in sd.items() if k.startswith("decoder.") and v.is_floating_point()}
    assert set(flat) == want | {"quantizer.codebooks"}
    for name, a in flat.items():
        assert np.array_equal(a.astype(np.float32), sd[name].float().numpy()), name
    assert all(a.dtype == np.float16 for a in flat.values())  # the shipped fp16 weights
    assert (export_dir / CODEC_FLAT_NAME).stat().st_size < 12e6

    f32 = {k: np.ascontiguousarray(a, dtype=np.float32) for k, a in flat.items()}
    dec = core.codec.Decoder(dataclasses.asdict(cfg), f32, "auto")
    cb = f32["quantizer.codebooks"]  # [K, V, D]
    engine = CodecEngine(codec)
    st_e, st_f = engine.init_decoder_state(), dec.new_state()
    enc = codec.init_encoder_state(1)
    for i, wav in enumerate(chunks):
        codes, enc = codec.encode_step(wav, enc, 12.0)
        n = (12, 3, 24, 6)[i % 4]
        want_wav, st_e = engine.decode_step(codes[:, :n], st_e)
        c = codes[0, :n].numpy()
        lat = cb[0, c[0]]
        for k in range(1, n):
            lat = lat + cb[k, c[k]]
        got = dec.step(st_f, np.ascontiguousarray(lat))
        assert np.array_equal(got, want_wav[0, 0].numpy()), i
    assert np.array_equal(dec.flush(st_f), engine.decode_flush(st_e)[0, 0].numpy())


def _flat_blob(kind, header: dict, data: bytes) -> bytes:
    """A flat file with valid CRCs around any header (write_flat_tensors's layout)."""
    text = json.dumps(header).encode()
    head = kind.magic + struct.pack("<II", kind.version, len(text)) + text
    head += struct.pack("<I", zlib.crc32(head))
    head += b"\0" * ((-len(head)) % FLAT_ALIGN)
    return head + data + struct.pack("<I", zlib.crc32(data))


def _entry(name="t", dtype="float32", shape=(4,), offset=0, nbytes=16) -> dict:
    return {"name": name, "dtype": dtype, "shape": list(shape), "offset": offset,
            "nbytes": nbytes}


HOSTILE_TABLES = {
    "past the data": [_entry(offset=56)],
    "nbytes not the shape's": [_entry(nbytes=12)],
    "negative offset": [_entry(offset=-16)],
    "negative dimension": [_entry(shape=(-4,))],
    "dtype": [_entry(dtype="int64", shape=(2,))],
    "repeated name": [_entry(), _entry()],
    "entry not an object": [7],
    "no shape": [{"name": "t", "dtype": "float32", "offset": 0, "nbytes": 16}],
}


def test_flat_codec_weights_corruption_refused(export_dir, tmp_path):
    blob = (export_dir / CODEC_FLAT_NAME).read_bytes()
    p = tmp_path / "bad.bin"
    for where in (20, len(blob) // 2, len(blob) - 5):  # header, data, data CRC
        bad = bytearray(blob)
        bad[where] ^= 0x10
        p.write_bytes(bytes(bad))
        with pytest.raises(ModelMismatchError, match="CRC"):
            read_codec_flat(p)
    for n in (30, len(blob) // 2, len(blob) - 1):
        p.write_bytes(blob[:n])
        with pytest.raises(ModelMismatchError, match="truncated|CRC"):
            read_codec_flat(p)
    with pytest.raises(ConfigError, match="not a flat codec decoder"):  # another kind
        read_codec_flat(export_dir / LM_FLAT_NAME)
    with pytest.raises(ConfigError, match="not a flat SpringLM"):
        read_lm_flat(export_dir / CODEC_FLAT_NAME)
    p.write_bytes(blob[:8] + struct.pack("<I", 2) + blob[12:])
    with pytest.raises(ConfigError, match="version 2 unsupported"):
        read_codec_flat(p)
    base = {"format": CODEC_FLAT.format, "version": 1, "data_bytes": 64}
    for table in HOSTILE_TABLES.values():
        p.write_bytes(_flat_blob(CODEC_FLAT, {**base, "tensors": table}, bytes(64)))
        with pytest.raises(ModelMismatchError, match="tensor table"):
            read_flat_tensors(p, CODEC_FLAT)
    p.write_bytes(_flat_blob(CODEC_FLAT, {**base, "format": LM_FLAT.format, "tensors": []},
                             bytes(64)))
    with pytest.raises(ConfigError, match="not a soundspring-codec-decoder-flat header"):
        read_flat_tensors(p, CODEC_FLAT)
    p.write_bytes(_flat_blob(CODEC_FLAT, {**base, "data_bytes": 128, "tensors": []}, bytes(64)))
    with pytest.raises(ModelMismatchError, match="truncated"):
        read_flat_tensors(p, CODEC_FLAT)
    p.write_bytes(_flat_blob(CODEC_FLAT, {**base, "tensors": [_entry()]}, bytes(64)))
    header, arrays = read_flat_tensors(p, CODEC_FLAT)  # the baseline of the hostile tables
    assert header["data_bytes"] == 64 and arrays["t"].shape == (4,)


def test_flat_tensors_round_trip_and_refusals(tmp_path):
    tensors = {"b": np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5,
               "a": np.array([1.0, -0.0, 65504.0], dtype=np.float16),
               "s": np.array(3.0, dtype=np.float32)}
    p = write_flat_tensors(tmp_path / "x.bin", CODEC_FLAT, {"note": [1, "two"]}, tensors)
    header, got = read_flat_tensors(p, CODEC_FLAT)
    assert header["note"] == [1, "two"] and [t["name"] for t in header["tensors"]] == ["a", "b", "s"]
    assert all(t["offset"] % FLAT_ALIGN == 0 for t in header["tensors"])
    for name, a in tensors.items():
        assert got[name].dtype == a.dtype and got[name].shape == a.shape, name
        assert got[name].tobytes() == a.tobytes(), name
    with pytest.raises(ConfigError, match="reserved"):
        write_flat_tensors(tmp_path / "y.bin", CODEC_FLAT, {"tensors": 1}, tensors)
    with pytest.raises(ConfigError, match="float16 or float32"):
        write_flat_tensors(tmp_path / "y.bin", CODEC_FLAT, {}, {"i": np.arange(3)})
    assert not (tmp_path / "y.bin").exists()


# ---- a wrong manifest is refused ---------------------------------------------------------------


def _linked_copy(src: Path, dst: Path, edit=None) -> Path:
    """dst with symlinks to src's files and an (edited) copy of its manifest."""
    dst.mkdir()
    for p in src.iterdir():
        if p.name != MANIFEST_NAME:
            (dst / p.name).symlink_to(p)
    m = json.loads((src / MANIFEST_NAME).read_text())
    if edit is not None:
        edit(m)
    (dst / MANIFEST_NAME).write_text(json.dumps(m))
    return dst


def _set(path: list, value):
    def edit(m):
        d = m
        for key in path[:-1]:
            d = d[key]
        d[path[-1]] = value
    return edit


TAMPERING = {
    "file hash": (_set(["files", "decoder_step.ts.pt", "sha256"], "0" * 64),
                  ModelMismatchError, "SHA-256"),
    "file size": (_set(["files", "encoder_step.pt2", "bytes"], 12), ModelMismatchError, "SHA-256"),
    "input shape": (_set(["artifacts", "decoder_step", "inputs", 0, "shape"], [1, 24, 3]),
                    ModelMismatchError, "inputs"),
    "state shape": (_set(["artifacts", "encoder_step", "state", 0, "shape"], [1, 1, 7]),
                    ModelMismatchError, "state"),
    "output dtype": (_set(["artifacts", "lm_fine_step", "outputs", 0, "dtype"], "float16"),
                     ModelMismatchError, "outputs"),
    "chunk frames": (_set(["chunk_frames"], 3), ModelMismatchError, "inputs"),
    "version": (_set(["version"], 99), ConfigError, "version 99 unsupported"),
    "format": (_set(["format"], "something-else"), ConfigError, "not a soundspring-export"),
    "codec hash": (_set(["codec", "content_sha256"], "f" * 64), ModelMismatchError, "codec"),
    "lm model id": (_set(["lm", "model_id"], "e" * 64), ModelMismatchError, "SpringLM"),
    "missing file": (_set(["files", "ghost.pt", ], {"sha256": "0" * 64, "bytes": 1}),
                     ModelMismatchError, "missing"),
    "missing key": (lambda m: m.pop("artifacts"), ConfigError, "lacks 'artifacts'"),
    "bitstream constants": (_set(["coding", "layer_bounds"], [0, 3, 6, 12, 20]),
                            ModelMismatchError, "bitstream constants"),
    "codec flat hash": (_set(["files", CODEC_FLAT_NAME, "sha256"], "0" * 64),
                        ModelMismatchError, "SHA-256"),
    "codec flat unlisted": (lambda m: m["files"].pop(CODEC_FLAT_NAME), ModelMismatchError,
                            "not listed"),
    "lm flat unlisted": (lambda m: m["files"].pop(LM_FLAT_NAME), ModelMismatchError,
                         "not listed"),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_tampered_manifest_refused(export_dir, models, tmp_path, case):
    edit, exc, words = TAMPERING[case]
    d = _linked_copy(export_dir, tmp_path / "x", edit)
    with pytest.raises(exc, match=words):
        load_exported(d, codec=models[0], lm=models[1])


@pytest.mark.parametrize("name", ["decoder_step.ts.pt", CODEC_FLAT_NAME])
def test_modified_artifact_file_refused(export_dir, models, tmp_path, name):
    d = _linked_copy(export_dir, tmp_path / "x")
    target = d / name
    data = bytearray(target.read_bytes())
    target.unlink()
    data[len(data) // 2] ^= 1
    target.write_bytes(bytes(data))
    with pytest.raises(ModelMismatchError, match="modified or foreign"):
        verify_manifest(d)


def test_other_models_refused(export_dir, models):
    codec, _lm = models
    other = load_codec()
    with torch.no_grad():
        other.decoder.head.bias.add_(0.5)  # a retrained decoder: another content hash
    with pytest.raises(ModelMismatchError, match="codec"):
        load_exported(export_dir, codec=other)

    class Foreign:
        model_id = "not-this-lm"

    with pytest.raises(ModelMismatchError, match="SpringLM"):
        verify_manifest(export_dir, codec=codec, lm=Foreign())
    with pytest.raises(ConfigError, match="no soundspring|no manifest"):
        load_exported(export_dir / "nowhere")


# ---- the command ---------------------------------------------------------------------------------


def test_cli_export_codec_only(tmp_path, capsys):
    out = tmp_path / "ex"
    assert main(["export", "--out", str(out), "--lm", "none", "--formats", "torchscript",
                 "--quiet"]) == 0
    m = verify_manifest(out, codec=load_codec())
    assert m["lm"] is None and set(m["artifacts"]) == {"encoder_step", "decoder_step",
                                                       "decoder_latent_step"}
    assert m["codec"]["decoder_weights"] == CODEC_FLAT_NAME in m["files"]  # without an LM too
    assert "manifest.json" in capsys.readouterr().err
    # a second export into the same directory needs --force; errors are one line
    assert main(["export", "--out", str(out), "--lm", "none", "--formats", "torchscript",
                 "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("soundspring export: error:") and "--force" in err
    assert len(err.splitlines()) == 1
    assert main(["export", "--out", str(out), "--formats", "onnx"]) == 2
    assert "expected distinct names" in capsys.readouterr().err
    assert main(["export", "--out", str(tmp_path / "no" / "such"), "--lm", "none"]) == 1
    assert "does not exist" in capsys.readouterr().err
    shutil.rmtree(out)
