#!/usr/bin/env bash
# The README's main job: build oss4, then the whole NVFP4 pipeline on the embedded tiny gpt-oss model:
# write it in the MXFP4 release layout (oss4 synth), quantize it to NVFP4 (oss4 quantize), measure what that cost
# (oss4 compare: KL divergence, top-1 agreement), and generate from the NVFP4 checkpoint with a harmony prompt.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)" --target oss4

models=${OSS4_DEMO_DIR:-build/models}
mxfp4=$models/tiny-mxfp4
nvfp4=$models/tiny-nvfp4
step() { printf '\n== %s\n' "$*"; }

step "1/4 write the tiny gpt-oss model in the MXFP4 release layout: $mxfp4"
[ -f "$mxfp4/config.json" ] || ./build/oss4 synth --config tiny --dtype mxfp4 --seed 0 --out "$mxfp4"
./build/oss4 info -m "$mxfp4"

step "2/4 quantize it to NVFP4 (experts and attention; ModelOpt's exported layout): $nvfp4"
[ -f "$nvfp4/config.json" ] || ./build/oss4 quantize -m "$mxfp4" -o "$nvfp4"

step "3/4 what NVFP4 cost: the NVFP4 model against the MXFP4 one on a built-in text"
./build/oss4 compare -m "$mxfp4" -m "$nvfp4" -q

step "4/4 generate from the NVFP4 model with a harmony prompt"
./build/oss4 generate -m "$nvfp4" -n 32 --temperature 0.8 --seed 1 \
  --prompt "<|start|>user<|message|>Say hello.<|end|><|start|>assistant"
echo
echo "note: the tiny model has random weights, so its text is noise by design; README.md, \"Run the real gpt-oss-20b\", shows the same steps on the released model."
