#!/usr/bin/env bash
# Reads the SASS of the built CUDA kernels for every target and checks what the resource report cannot: the FP4
# kernels run on the tensor cores (HMMA.16816.F32.BF16), load their weights 16 bytes at a time (LDG ... .128), and
# nothing touches local memory (no LDL/STL). Needs cuobjdump and nvdisasm on PATH (not in this machine's toolkit:
# the PyPI wheels nvidia-cuda-cuobjdump and nvidia-cuda-nvdisasm hold them, under nvidia/cu13/bin).
#   tools/cuda_sass_check.sh [BUILD_DIR]
set -euo pipefail
build=${1:-build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && ar x "$OLDPWD/$build/liboss4_cuda.a" fp4_matmul.cu.o)
cuobjdump -sass "$tmp/fp4_matmul.cu.o" > "$tmp/all.sass"
fail=0
for arch in sm_80 sm_90a sm_100f sm_120f; do
  awk -v A="arch = $arch" '/arch = /{cur=$0} {if (cur==A) print}' "$tmp/all.sass" > "$tmp/$arch.sass"
  hmma=$(grep -c 'HMMA.16816.F32.BF16' "$tmp/$arch.sass" || true)
  ld128=$(grep -cE 'LDG[.A-Z0-9]*\.128' "$tmp/$arch.sass" || true)
  lmem=$(grep -cE '\b(LDL|STL)\b' "$tmp/$arch.sass" || true)
  printf '%-8s HMMA.16816.F32.BF16 %4s   128-bit weight loads %3s   LDL/STL %s\n' "$arch" "$hmma" "$ld128" "$lmem"
  if [ "$hmma" -eq 0 ] || [ "$ld128" -eq 0 ] || [ "$lmem" -ne 0 ]; then fail=1; fi
done
exit $fail
