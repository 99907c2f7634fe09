#!/usr/bin/env bash
# oss4 against llama.cpp in the same run, on full-size synthetic gpt-oss-20b checkpoints of both: decode (tg128) and
# prefill (pp512), 2 threads, runs alternated, the read-bandwidth probe before and after. Not in CI (it builds
# llama.cpp, writes ~40 GB and takes about an hour on 2 cores). Prints one markdown table with the ratios on stdout,
# progress and every raw JSON line on stderr.
#
#   bash tools/bench/vs_llamacpp.sh WORKDIR [-r 3] [-t 2]
#
# WORKDIR gets what is missing:
#   venv/                          llama-cpp-python (pinned below; pip compiles llama.cpp from source for this host,
#                                  -DGGML_NATIVE=ON), numpy and gguf (make_synth_gguf.py's)
#   gpt-oss-20b-synth-mxfp4.gguf   tools/bench/make_synth_gguf.py: ggml-org's gpt-oss-20b GGUF layout, MXFP4 experts,
#                                  Q8_0 elsewhere, random weights
#   s20b/, s20b_nvfp4/             oss4 synth (MXFP4 release layout) and oss4 quantize --method transcode (NVFP4)
# oss4 runs as build/oss4 (build it first); configurations: default (as oss4 runs with no options), bf16-activations
# (--activations bf16: the BF16 prefill) and fastest
# (--lm-head nvfp4 --activations q8).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
oss4=$root/build/oss4
work=${1:?usage: vs_llamacpp.sh WORKDIR [-r 3] [-t 2]}
shift
r=3 t=2
while [ $# -gt 0 ]; do
  case $1 in
    -r) r=$2; shift 2 ;;
    -t) t=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
LLAMA_CPP_PYTHON=0.3.36 NUMPY=2.2.6 GGUF=0.19.0
mkdir -p "$work"
[ -x "$oss4" ] || { echo "vs_llamacpp: build oss4 first (cmake -S . -B build && cmake --build build -j)" >&2; exit 1; }

if [ ! -x "$work/venv/bin/python" ] || ! "$work/venv/bin/python" -c "import llama_cpp, gguf, numpy" 2>/dev/null; then
  echo "vs_llamacpp: building llama.cpp for this host (llama-cpp-python $LLAMA_CPP_PYTHON, ~15 min on 2 cores)" >&2
  python3 -m venv "$work/venv"
  "$work/venv/bin/pip" install -q "numpy==$NUMPY" "gguf==$GGUF"
  CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAMA_CURL=OFF" FORCE_CMAKE=1 "$work/venv/bin/pip" install -v --no-binary llama-cpp-python \
    "llama-cpp-python==$LLAMA_CPP_PYTHON" >&2
fi
gguf=$work/gpt-oss-20b-synth-mxfp4.gguf
if [ ! -f "$gguf" ]; then
  "$work/venv/bin/python" "$here/make_synth_gguf.py" --experts mxfp4 --out "$gguf.tmp" >&2
  mv "$gguf.tmp" "$gguf"
fi
[ -d "$work/s20b" ] || "$oss4" synth --config gpt-oss-20b --out "$work/s20b" >&2
[ -d "$work/s20b_nvfp4" ] || "$oss4" quantize -m "$work/s20b" -o "$work/s20b_nvfp4" --method transcode >&2

# each run reads its files once first: only one checkpoint fits a 24 GiB page cache at a time
warm() { cat "$@" > /dev/null; }
[ -d "$work/tiny" ] || "$oss4" synth --out "$work/tiny" > /dev/null
probe() { "$oss4" bench -m "$work/tiny" -p 0 -n 1 -r 1 -t "$t" --json -q 2>/dev/null |
  python3 -c "import json,sys; d = json.load(sys.stdin); print(d['read_bw_gb_s'])"; }
results=$(mktemp)
echo "{\"probe_before_gbps\": $(probe)}" | tee -a "$results" >&2
for rep in $(seq 1 "$r"); do
  echo "== round $rep of $r (load average $(cut -d' ' -f1 /proc/loadavg))" >&2
  warm "$gguf"
  "$work/venv/bin/python" "$here/llamacpp_bench.py" "$gguf" -p 512 -n 128 -r 1 -t "$t" | tee -a "$results" >&2
  warm "$work"/s20b_nvfp4/*.safetensors
  for cfg in "default" "bf16-activations --activations bf16" "fastest --lm-head nvfp4 --activations q8"; do
    read -r label opts <<< "$cfg"
    # shellcheck disable=SC2086
    "$oss4" bench -m "$work/s20b_nvfp4" -p 512 -n 128 -r 1 -t "$t" $opts --json -q |
      python3 -c "import json,sys; d=json.load(sys.stdin); d['engine']='oss4 $label'; print(json.dumps(d))" | tee -a "$results" >&2
  done
done
echo "{\"probe_after_gbps\": $(probe)}" | tee -a "$results" >&2
python3 "$here/vs_llamacpp_table.py" "$results"
