#!/usr/bin/env bash
# Build oss4, write the embedded tiny gpt-oss model with `oss4 synth`, and run it (the README's main job).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh build-essential cmake ninja-build nlohmann-json3-dev libcli11-dev libgtest-dev libpcre2-dev pkg-config
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)" --target oss4
model=${OSS4_DEMO_MODEL:-build/models/tiny}
[ -f "$model/config.json" ] || ./build/oss4 synth --config tiny --seed 0 --out "$model"
./build/oss4 info -m "$model"
./build/oss4 tokenize --text "Hello from oss4!"
./build/oss4 generate -m "$model" -n 32 --temperature 0.8 --seed 1 \
  --prompt "<|start|>user<|message|>Say hello.<|end|><|start|>assistant"
