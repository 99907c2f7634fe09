#!/usr/bin/env bash
# Build oss4 and run every test (the README's test command). Installs its Debian packages when run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
# the pinned openai client for the server tests (tests/serve/requirements.txt), in a venv inside the build dir
if ! cmp -s tests/serve/requirements.txt build/serve-venv/requirements.txt; then
  rm -rf build/serve-venv
  python3 -m venv build/serve-venv
  build/serve-venv/bin/pip install -q --disable-pip-version-check -r tests/serve/requirements.txt
  cp tests/serve/requirements.txt build/serve-venv/requirements.txt
fi
ctest --test-dir build --output-on-failure -j"$(nproc)"
