#!/usr/bin/env bash
# Runs every test: the C++ core's own tests (ctest, no Python), then pytest over tests/
# and the benchmarks as smoke tests (--benchmark-disable), in the environment that
# scripts/install.sh made (${SOUNDSPRING_VENV:-.venv}).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${SOUNDSPRING_VENV:-.venv}"
[[ -x "${VENV}/bin/python" ]] || { echo "[test] no ${VENV}: run scripts/install.sh first" >&2; exit 2; }
export PATH="$(cd "${VENV}" && pwd)/bin:${PATH}"

cmake -S . -B build/ctest -G Ninja -DSOUNDSPRING_PYTHON=OFF -DSOUNDSPRING_CPP_TESTS=ON \
    -DSOUNDSPRING_WERROR=ON >/dev/null
cmake --build build/ctest
ctest --test-dir build/ctest --output-on-failure

# The C++ receiver (examples/cpp_receiver; needs no torch), configured if install.sh has
# not, brought up to date and handed to tests/test_cpp_receiver.py (unless one is given).
if [[ -z "${SOUNDSPRING_CPP_RECEIVER:-}" ]]; then
    [[ -f build/cpp_receiver/build.ninja ]] || cmake -S examples/cpp_receiver \
        -B build/cpp_receiver -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build build/cpp_receiver --target soundspring_receiver >/dev/null
    export SOUNDSPRING_CPP_RECEIVER="$(pwd)/build/cpp_receiver/soundspring_receiver"
fi

python -m pytest tests benchmarks --benchmark-disable -q "$@"
