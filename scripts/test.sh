#!/usr/bin/env bash
# Installs packages, checks the format, builds, and runs the whole test suite (kernels, formats, training,
# PyTorch parity, CLI, layer and length checks) in build/, the fuzz targets for a bounded time, then the whole suite
# again under ASan+UBSan in build-asan/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/check_format.sh
bash scripts/build.sh
ctest --test-dir build --output-on-failure --timeout 900
# libFuzzer targets over the readers, 15 s each from their seed corpora (build-fuzz/, clang++); a crash fails.
bash scripts/fuzz.sh 15
# Sanitizers: a second tree, built after the first so the two cores are not shared. Measured on 2 cores: the build
# takes 856 s of CPU (about 8 min alone, 20 min on a busy machine) and the suite about 2 min. The mpirun tests
# (their ranks without the leak check, see CMakeLists.txt) and the node-driven tests (server_integration,
# server_load, server_disconnect, llama_greedy) drive the ASan-built recur here as well.
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRECUR_SANITIZE=address,undefined -DRECUR_MPI=ON \
  > /dev/null
cmake --build build-asan -j2
ctest --test-dir build-asan --output-on-failure --timeout 1800
