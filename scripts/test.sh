#!/usr/bin/env bash
# Runs every test: the C++ core's own tests (ctest, no Python), then pytest over tests/
# and the benchmarks as smoke tests (--benchmark-disable).
set -euo pipefail
cd "$(dirname "$0")/.."

cmake -S . -B build/ctest -G Ninja -DSOUNDSPRING_PYTHON=OFF -DSOUNDSPRING_CPP_TESTS=ON \
    -DSOUNDSPRING_WERROR=ON >/dev/null
cmake --build build/ctest
ctest --test-dir build/ctest --output-on-failure

python3 -m pytest tests benchmarks --benchmark-disable -q "$@"
