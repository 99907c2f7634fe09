#!/usr/bin/env bash
# Build oss4 and run every test (the README's test command). Installs its Debian packages when run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
# the Python package's pinned build and test tools (tests/python/requirements.txt: nanobind, scikit-build-core,
# pytest), in a venv inside the build dir; the build below then makes the module (-DOSS4_PYTHON=ON) with them
if ! cmp -s tests/python/requirements.txt build/py-venv/requirements.txt; then
  rm -rf build/py-venv
  python3 -m venv build/py-venv
  build/py-venv/bin/pip install -q --disable-pip-version-check -r tests/python/requirements.txt
  cp tests/python/requirements.txt build/py-venv/requirements.txt
fi
# ccache, when installed, also serves the wheel test's rebuild of the same sources (tests/python/wheel_check.py)
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DOSS4_PYTHON=ON -DPython_EXECUTABLE="$PWD/build/py-venv/bin/python" "${launcher[@]}"
cmake --build build -j"$(nproc)"
# the pinned openai client for the server tests (tests/serve/requirements.txt), in a venv inside the build dir
if ! cmp -s tests/serve/requirements.txt build/serve-venv/requirements.txt; then
  rm -rf build/serve-venv
  python3 -m venv build/serve-venv
  build/serve-venv/bin/pip install -q --disable-pip-version-check -r tests/serve/requirements.txt
  cp tests/serve/requirements.txt build/serve-venv/requirements.txt
fi
ctest --test-dir build --output-on-failure -j"$(nproc)"
