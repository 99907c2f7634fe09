#!/usr/bin/env bash
# Build oss4 and run every test (the README's test command). Installs its Debian packages when run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  pkgs="build-essential cmake ninja-build clang libclang-rt-14-dev nlohmann-json3-dev libcli11-dev libgtest-dev libbenchmark-dev libpcre2-dev libcpp-httplib-dev pkg-config python3"
  missing=""
  for p in $pkgs; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"; done
  if [ -n "${missing// /}" ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  fi
fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j"$(nproc)"
