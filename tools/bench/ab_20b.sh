#!/usr/bin/env bash
# Before/after speed of two oss4 binaries on the docs/benchmarks.md matrix, run back to back per configuration (A then
# B, then the next configuration), so both see the same machine state. One JSON object per run on stdout, labelled
# with the binary; progress on stderr. Make the checkpoints as tools/bench/bench_20b.sh says.
# Usage: tools/bench/ab_20b.sh BIN_A BIN_B MXFP4_DIR NVFP4_DIR [-p 512] [-n 128] [-r 2] [-t 2] > results.jsonl
set -euo pipefail
bin_a=$1 bin_b=$2 mx=$3 nv=$4
shift 4
p=512 n=128 r=2 t=2
while [ $# -gt 0 ]; do
  case $1 in
    -p) p=$2; shift 2 ;;
    -n) n=$2; shift 2 ;;
    -r) r=$2; shift 2 ;;
    -t) t=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
run() {  # bin dir lm_head activations label
  echo "== $5 [$1]: $2 lm_head $3 activations $4 (load average $(cut -d' ' -f1 /proc/loadavg))" >&2
  "$1" bench -m "$2" -p "$p" -n "$n" -r "$r" -t "$t" --lm-head "$3" --activations "$4" --json |
    python3 -c "import json,sys; d=json.load(sys.stdin); d['label']='$5'; d['binary']='$1'; d['loadavg_after']=open('/proc/loadavg').read().split()[0]; print(json.dumps(d))"
}
cat "$nv"/*.safetensors > /dev/null
for cfg in "bf16 f32 NVFP4 default (W4A16, bf16 lm_head)" "nvfp4 f32 NVFP4 W4A16, nvfp4 lm_head" "nvfp4 q8 NVFP4 fastest (8-bit activations, nvfp4 lm_head)"; do
  read -r lm act label <<< "$cfg"
  for b in "$bin_a" "$bin_b"; do run "$b" "$nv" "$lm" "$act" "$label"; done
done
cat "$mx"/*.safetensors > /dev/null
for b in "$bin_a" "$bin_b"; do run "$b" "$mx" bf16 f32 "MXFP4 (release layout)"; done
