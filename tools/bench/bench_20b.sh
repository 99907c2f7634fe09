#!/usr/bin/env bash
# The docs/benchmarks.md matrix: `oss4 bench --json` on full-size synthetic gpt-oss-20b checkpoints, one JSON object
# per line on stdout (progress on stderr). Make the checkpoints first (13-14 GB each, ~5 min):
#   build/oss4 synth --config gpt-oss-20b --out /tmp/s20b          # MXFP4 experts, the release layout
#   build/oss4 quantize -m /tmp/s20b -o /tmp/s20b_nvfp4 --method transcode
# Usage: tools/bench/bench_20b.sh MXFP4_DIR NVFP4_DIR [-p 512] [-n 128] [-r 3] [-t "2 1"] > results.jsonl
# Only one checkpoint's pages fit this 24 GiB machine's page cache at a time: runs are grouped by checkpoint and
# each group starts by reading its files once (warm cache, as the targets ask).
set -euo pipefail
mx=$1 nv=$2
shift 2
p=512 n=128 r=3 threads="2 1"
while [ $# -gt 0 ]; do
  case $1 in
    -p) p=$2; shift 2 ;;
    -n) n=$2; shift 2 ;;
    -r) r=$2; shift 2 ;;
    -t) threads=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
bin=$(dirname "$0")/../../build/oss4
run() {  # dir lm_head activations threads label
  echo "== $5: $1 lm_head $2 activations $3 threads $4 (load average $(cut -d' ' -f1 /proc/loadavg))" >&2
  "$bin" bench -m "$1" -p "$p" -n "$n" -r "$r" -t "$4" --lm-head "$2" --activations "$3" --json |
    python3 -c "import json,sys; d=json.load(sys.stdin); d['label']='$5'; d['loadavg_after']=open('/proc/loadavg').read().split()[0]; print(json.dumps(d))"
}
cat "$nv"/*.safetensors > /dev/null
for t in $threads; do
  run "$nv" bf16 f32 "$t" "NVFP4 default (W4A16, bf16 lm_head)"
  run "$nv" nvfp4 f32 "$t" "NVFP4 W4A16, nvfp4 lm_head"
  run "$nv" nvfp4 q8 "$t" "NVFP4 fastest (8-bit activations, nvfp4 lm_head)"
done
cat "$mx"/*.safetensors > /dev/null
for t in $threads; do run "$mx" bf16 f32 "$t" "MXFP4 (release layout)"; done
