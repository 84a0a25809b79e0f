#!/usr/bin/env bash
# Installs the Debian packages recur needs to build, test and benchmark, and the npm packages of the server tests
# (tests/server) and of the llama.cpp comparison (bench/llama), each from its package-lock.json (idempotent; run as
# root or with sudo).
set -euo pipefail
packages=(
  build-essential cmake pkg-config
  clang-format-14                 # scripts/check_format.sh
  libopenblas-openmp-dev          # BLAS sgemm, OpenMP-threaded (shares the OpenMP runtime with our kernels)
  libdnnl-dev                     # oneDNN: native bf16 matrix products on AVX512-BF16 CPUs (src/kernels/dnnl_gemm.cpp)
  nlohmann-json3-dev libcli11-dev # config/JSON parsing, command line
  libcpp-httplib-dev              # recur server's HTTP layer (src/server)
  libsentencepiece-dev            # SentencePiece tokenizers (src/data/tokenizer*.cpp)
  python3-sentencepiece           # the tokenizer agreement test (tests/tokenizer_agreement.py)
  googletest libgtest-dev         # tests
  python3-torch python3-numpy     # PyTorch oracle for parity tests and the peer benchmark
  python3-matplotlib              # experiment plots
  bible-kjv bible-kjv-text        # built-in corpus
  libopenmpi-dev openmpi-bin      # data-parallel training over processes and machines (docs/distributed.md)
  iproute2                        # scripts/two_host_mpi.sh: two network namespaces joined by a veth pair
)
command -v npm > /dev/null || packages+=(nodejs npm)  # the server tests (tests/server) run on node
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The official openai client the server tests drive recur server with, pinned by tests/server/package-lock.json.
server_tests="$(cd "$(dirname "$0")/../tests/server" && pwd)"
if [ ! -d "$server_tests/node_modules/openai" ]; then
  (cd "$server_tests" && npm ci --no-audit --no-fund --loglevel=error)
fi
# node-llama-cpp (prebuilt llama.cpp CPU binaries and the llama.cpp source) for the llama.cpp greedy-equality test
# and bench/compare_decode.py, pinned by bench/llama/package.json (an exact version) and package-lock.json. `npm ci`
# refuses this lock (some of the package's optional per-platform binaries, mac and windows ones, are not in the registry
# at that version, so the lock cannot list them), so `npm install` installs from the lock and leaves it as it is.
llama_bench="$(cd "$(dirname "$0")/../bench/llama" && pwd)"
if [ ! -f "$llama_bench/node_modules/node-llama-cpp/package.json" ]; then
  (cd "$llama_bench" && npm install --no-audit --no-fund --loglevel=error --silent)
fi
echo "setup: all packages present"
