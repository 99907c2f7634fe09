#!/usr/bin/env bash
# Build oss4 and run every test (the README's test command). Installs its Debian packages when run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh build-essential cmake ninja-build clang libclang-rt-14-dev nlohmann-json3-dev libcli11-dev libgtest-dev libbenchmark-dev libpcre2-dev pkg-config python3
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j"$(nproc)"
