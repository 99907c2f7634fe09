#!/usr/bin/env bash
# What each numeric path costs against the f32 path (W4A16 with the stored BF16 lm_head), by `oss4 compare`: mean KL
# and top-1 agreement of the BF16 and the 8-bit activations, the NVFP4 lm_head and both together, on the golden prompts (the 320
# token ids of tests/data/golden/CFG/reference.safetensors, run through each golden model transcoded to NVFP4) and,
# when given, on a full-size checkpoint with a built-in text. One JSON object per comparison on stdout.
#   bash tools/bench/numeric_paths.sh [NVFP4_20B_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
oss4=${OSS4:-$root/build/oss4}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ids_of() {  # reference.safetensors -> comma-separated ids
  python3 - "$1" <<'PY'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
s, e = h["ids"]["data_offsets"]
raw = b[8 + n + s:8 + n + e]
print(",".join(str(v) for v in struct.unpack(f"<{len(raw) // 4}i", raw)))
PY
}
compare() {  # label dir ids-args... ; B's options come last
  local label=$1 dir=$2; shift 2
  "$oss4" compare -m "$dir" -m "$dir" "$@" --json -q |
    python3 -c "import json,sys; d=json.load(sys.stdin); d['label']='$label'; print(json.dumps(d))"
}
for cfg in c1 c2 c3; do
  "$oss4" quantize -m "$root/tests/data/golden/$cfg/mxfp4" -o "$tmp/$cfg" --method transcode > /dev/null 2>&1
  ids=$(ids_of "$root/tests/data/golden/$cfg/reference.safetensors")
  compare "golden $cfg: bf16 activations" "$tmp/$cfg" --ids "$ids" --activations-b bf16
  compare "golden $cfg: q8 activations" "$tmp/$cfg" --ids "$ids" --activations-b q8
  compare "golden $cfg: nvfp4 lm_head" "$tmp/$cfg" --ids "$ids" --lm-head-b nvfp4
  compare "golden $cfg: q8 + nvfp4 lm_head" "$tmp/$cfg" --ids "$ids" --activations-b q8 --lm-head-b nvfp4
done
if [ $# -gt 0 ]; then
  compare "20b: bf16 activations" "$1" --activations-b bf16
  compare "20b: q8 activations" "$1" --activations-b q8
  compare "20b: nvfp4 lm_head" "$1" --lm-head-b nvfp4
  compare "20b: q8 + nvfp4 lm_head" "$1" --activations-b q8 --lm-head-b nvfp4
fi
