#!/usr/bin/env python3
"""NVFP4 fixtures for oss4, computed by NVIDIA ModelOpt's own quantization code on the CPU.

What it does
  1. w_<case>.safetensors: one f32 matrix [n_out, n_in] per case (random normal, heavy-tailed, Laplace with
     outliers, all-zero blocks, tiny values around the E4M3 subnormal range after scaling, block scales that
     underflow to 0, 1e30 and 1e-30 magnitudes, a subnormal tensor scale, mixed rows, a bf16-rounded input,
     calibrated amax above / below the data maximum, exact E2M1 and E4M3 rounding ties, f32 operation order with a
     non-power-of-two tensor scale) quantized with
         wsf2   = NVFP4QTensor.get_weights_scaling_factor_2_from_quantizer(quantizer with _amax = amax)
         scales = NVFP4QTensor.get_weights_scaling_factor(w, 16, wsf2)[0]
         packed = NVFP4QTensor.quantize(w, 16, scales, wsf2)[0]._quantized_data
         dequant = that NVFP4QTensor.dequantize(torch.float32, scale=scales, double_scale=wsf2, block_sizes={-1: 16})
     which is exactly what modelopt.torch.export.unified_export_hf._export_quantized_weight does for a dynamic
     NVFP4 weight quantizer (get_weight_scaling_factor_2 -> get_weights_scaling_factor -> to_quantized_weight).
     When the case has no explicit amax, amax = max|w| and the script also checks that the one-call path
     NVFP4QTensor.quantize(w, 16) gives the same bytes.
  2. codecs.safetensors: torch's own f32 -> float8_e4m3fn cast (`.to(torch.float8_e4m3fn)`, what ModelOpt uses for
     the block scales) on every rounding midpoint of E4M3, their neighbours, the overflow range and NaN/Inf, and
     ModelOpt's E2M1 rounding NVFP4QTensor._cast_fp4 on its thresholds, their neighbours, signed zeros, tiny
     negatives and NaN/Inf.
  3. export_gptoss_tiny.safetensors: the real end-to-end path on a tiny random bf16 GptOssForCausalLM:
     mtq.quantize(model, NVFP4_DEFAULT_CFG, calibration) then modelopt.torch.export.export_hf_checkpoint; it keeps
     layer 0's q/k/v/o projections and both expert tensors exactly as the exported file holds them (same names,
     dtypes and shapes) plus their bf16 source weights (as F32, under "source.<name>") and the calibrated amax the
     exporter used (after q/k/v fusion; under "amax.<name>").

Every file carries one metadata entry, made_by: the modelopt and torch versions and the call path.

How to run (CPU only, under a minute; never downloads anything)
  python -m venv /tmp/refenv && /tmp/refenv/bin/pip install -r tools/reference/requirements.txt \
      -r tools/reference/requirements-nvfp4.txt
  /tmp/refenv/bin/python tools/reference/make_nvfp4_fixtures.py --out tests/data/nvfp4

Determinism: inputs come from numpy PCG64 generators with fixed seeds; ModelOpt's NVFP4 path is elementwise f32
arithmetic, so the outputs are bit-exact on any IEEE CPU. The one exception, deliberately left out: an all-zero
tensor (amax 0) makes ModelOpt divide 0 by 0, and the sign of that NaN (its E4M3 byte 0x7f or 0xff) depends on
the CPU (x86 gives 0xff). oss4 rejects amax 0 instead; see docs/nvfp4.md.
"""

import argparse
import os
import shutil
import tempfile
import types
import warnings

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import modelopt
import modelopt.torch.quantization as mtq
from modelopt.torch.export import export_hf_checkpoint
from modelopt.torch.quantization.qtensor.nvfp4_tensor import NVFP4QTensor

BLOCK = 16
E4M3_MAX = 448.0

CALL_PATH = (
    "wsf2 = NVFP4QTensor.get_weights_scaling_factor_2_from_quantizer(q with _amax); "
    "scales = NVFP4QTensor.get_weights_scaling_factor(w, 16, wsf2)[0]; "
    "packed = NVFP4QTensor.quantize(w, 16, scales, wsf2)[0]._quantized_data; "
    "dequant = NVFP4QTensor.dequantize(float32, scale=scales, double_scale=wsf2)"
)


def metadata(call):
    # one key: safetensors writes metadata in hash order, and a single entry keeps reruns byte-identical
    return {"made_by": f"nvidia-modelopt {modelopt.__version__}, torch {torch.__version__}: {call}"}


def modelopt_nvfp4(w, amax=None):
    """ModelOpt's NVFP4 weight path for w [n_out, n_in] f32 with a calibrated amax (default max|w|)."""
    assert w.dtype == torch.float32 and w.dim() == 2 and w.shape[1] % BLOCK == 0
    if amax is None:
        amax_t = w.abs().amax().float()
    else:
        amax_t = torch.tensor(amax, dtype=torch.float32)
    # a dynamic NVFP4 weight quantizer as export sees it: _amax and block_sizes (no static global_amax)
    quantizer = types.SimpleNamespace(_amax=amax_t, block_sizes={-1: BLOCK, "type": "dynamic", "scale_bits": (4, 3)})
    wsf2 = NVFP4QTensor.get_weights_scaling_factor_2_from_quantizer(quantizer)
    scales, _ = NVFP4QTensor.get_weights_scaling_factor(w, BLOCK, wsf2)
    qt, _, _ = NVFP4QTensor.quantize(w, BLOCK, scales, wsf2)
    packed = qt._quantized_data
    dequant = qt.dequantize(dtype=torch.float32, scale=scales, double_scale=wsf2, block_sizes={-1: BLOCK})
    if amax is None:
        qt2, scales2, wsf2b = NVFP4QTensor.quantize(w.clone(), BLOCK)
        assert torch.equal(qt2._quantized_data, packed)
        assert torch.equal(scales2.view(torch.uint8), scales.view(torch.uint8)) and torch.equal(wsf2b, wsf2)
    assert scales.dtype == torch.float8_e4m3fn and packed.dtype == torch.uint8
    assert not torch.isnan(scales.float()).any(), "NaN block scale: not a well-defined fixture"
    return {
        "input": w.contiguous(),
        "amax": amax_t.reshape(()).contiguous(),
        "packed": packed.contiguous(),
        "scales": scales.contiguous(),
        "weight_scale_2": wsf2.float().reshape(()).contiguous(),
        "dequant": dequant.contiguous(),
    }


def f32(a):
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def e4m3_positive_values():
    """Every finite non-negative E4M3FN value, ascending (codes 0x00..0x7e)."""
    return torch.arange(0, 0x7F, dtype=torch.uint8).view(torch.float8_e4m3fn).float()


def nudge(x, direction):
    return np.nextafter(np.float32(x), np.float32(direction * np.inf), dtype=np.float32)


# ---- the matrix cases ------------------------------------------------------------------------------------------

def case_normal(rng):
    return f32(rng.standard_normal((32, 256)) * 0.02), None


def case_heavy_tailed(rng):
    w = rng.standard_t(df=1.5, size=(48, 256)) * 0.01
    idx = rng.choice(w.size, 24, replace=False)
    w.flat[idx] = rng.choice([-1.0, 1.0], 24) * rng.uniform(20.0, 80.0, 24)  # isolated outliers
    return f32(w), None


def case_laplace_outliers(rng):
    w = rng.laplace(0.0, 0.01, size=(32, 256))
    idx = rng.choice(w.size, 12, replace=False)
    w.flat[idx] = rng.choice([-1.0, 1.0], 12) * rng.uniform(2.0, 6.0, 12)
    return f32(w), None


def case_zero_blocks(rng):
    w = rng.standard_normal((16, 128)) * 0.05
    w[0, :] = 0.0                     # a whole zero row
    w[1, 16:32] = 0.0                 # one zero block
    w[2, 0:16] = -0.0                 # a block of negative zeros
    w[3, 32:48] = 0.0
    w[3, 40] = -1e-20                 # a zero block but for one tiny negative
    w[4, ::16] = 0.0                  # first element of every block zero
    for r in range(5, 16, 3):
        w[r, 16 * (r % 8):16 * (r % 8) + 16] = 0.0
    return f32(w), None


def case_tiny(rng):
    # amax 1.0; block k of each row has block amax 1.0 * f_k with f_k sweeping from 1 down to 1e-12, so the block
    # scale block_amax * 448 runs through E4M3 normals, subnormals (< 2^-6) and below 2^-9 (clamped).
    n_out, n_blocks = 32, 16
    w = np.empty((n_out, n_blocks * BLOCK))
    for r in range(n_out):
        for b in range(n_blocks):
            f = 10.0 ** (-(r * n_blocks + b) * 12.0 / (n_out * n_blocks - 1))
            blk = rng.uniform(-1.0, 1.0, BLOCK)
            blk *= f / np.abs(blk).max()
            w[r, b * BLOCK:(b + 1) * BLOCK] = blk
    # tiny negatives next to large values: they quantize to zero magnitude and keep the sign bit (code 0x8)
    w[1, 1:8] = -np.array([1e-3, 1e-6, 1e-9, 1e-20, 1e-30, 1e-38, 1e-44])
    w[1, 0] = 0.9
    w[2, 17:20] = [-1e-12, 1e-12, -0.0]
    w[0, 0] = 1.0
    return f32(w), None


def case_scale_underflow(rng):
    # amax 1e4: block_amax / (6 * amax / 2688) underflows to exactly 0 in f32 for 1e-45 (the smallest subnormal),
    # and ModelOpt then replaces the block scale 0 by 1.0; 1e-43 gives a subnormal f32 ratio that clamps to 2^-9.
    w = rng.standard_normal((4, 64)) * 10.0
    w[0, 0] = 1e4
    w[1, 0:16] = rng.choice([-1.0, 1.0], 16) * 1e-45
    w[1, 16:32] = rng.choice([-1.0, 1.0], 16) * 1e-43
    w[2, 32:48] = -1e-45
    w[3, 48:64] = rng.standard_normal(16) * 1e-40
    return f32(w), None


def case_huge(rng):
    w = rng.standard_normal((16, 128)) * 1e30
    w[3, 5] = 3e38                    # close to FLT_MAX
    return f32(w), None


def case_small(rng):
    return f32(rng.standard_normal((16, 128)) * 1e-30), None


def case_subnormal_amax(rng):
    # amax ~ 3e-38: weight_scale_2 = amax / 2688 is an f32 subnormal; many inputs are subnormal too
    return f32(rng.standard_normal((8, 64)) * 1e-38), None


def case_mixed_rows(rng):
    n_out, n_in = 24, 192
    w = rng.standard_normal((n_out, n_in))
    for r in range(n_out):
        w[r] *= 10.0 ** (r % 13 - 8)  # rows from 1e-8 to 1e4
    w[7] = 0.0
    w[19] = -0.0
    return f32(w), None


def case_bf16_rounded(rng):
    w = torch.from_numpy(rng.standard_normal((32, 320)).astype(np.float32) * 0.02)
    return w.to(torch.bfloat16).float().contiguous(), None


def case_amax_above(rng):
    w = f32(rng.standard_normal((16, 128)) * 0.1)
    return w, float(w.abs().max()) * 4.0  # a calibrated amax larger than this tensor's max (e.g. fused q/k/v)


def case_amax_below(rng):
    w = f32(rng.standard_normal((16, 128)) * 0.1)
    # an amax below the data: block scales saturate at 448 and values at +-6
    return w, float(w.abs().max()) * 0.3


def case_e2m1_ties(rng):
    # amax 2688 -> weight_scale_2 = 1.0 exactly; every block holds a +-6 so its scale is exactly 1.0 and the
    # scaled values are the inputs themselves: each E2M1 threshold, its f32 neighbours, signed zeros and tinies.
    vals = [0.0, -0.0, 1e-30, -1e-30, 0.1, -0.1]
    for t in [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]:
        for v in (t, nudge(t, -1), nudge(t, 1)):
            vals += [float(v), -float(v)]
    per_block = BLOCK - 1
    n_blocks = (len(vals) + per_block - 1) // per_block
    vals += [0.0] * (n_blocks * per_block - len(vals))
    blocks = []
    for b in range(n_blocks):
        sign = 1.0 if b % 2 == 0 else -1.0
        blocks.append([6.0 * sign] + vals[b * per_block:(b + 1) * per_block])
    # 8 blocks per row
    while len(blocks) % 8:
        blocks.append([6.0] + [0.0] * per_block)
    w = np.array(blocks, dtype=np.float64).reshape(-1, 8 * BLOCK)
    return f32(w), 2688.0


def case_e4m3_scale_ties(rng):
    # weight_scale_2 = 1.0, so a block with block amax 6*m gets the f32 block scale m exactly: m runs over every
    # midpoint between neighbouring E4M3 values (and the midpoints' f32 neighbours), so the scale cast is tested on
    # its ties (round half to even) through the whole quantizer; midpoints below 2^-9 clamp to 2^-9.
    v = e4m3_positive_values().double().numpy()
    ms = []
    for a, b in zip(v[:-1], v[1:]):
        mid = np.float32((a + b) / 2.0)
        ms += [mid, nudge(mid, -1), nudge(mid, 1)]
    ms += [np.float32(448.0), np.float32(460.0), np.float32(2.0 ** -12)]
    blocks = []
    for i, m in enumerate(ms):
        blk = rng.uniform(-1.0, 1.0, BLOCK) * float(m) * 6.0
        k = i % BLOCK
        blk[k] = float(np.float32(m) * np.float32(6.0)) * (1.0 if i % 2 == 0 else -1.0)
        np.clip(blk, -abs(blk[k]), abs(blk[k]), out=blk)
        blocks.append(blk)
    while len(blocks) % 16:
        blocks.append(np.zeros(BLOCK))
    w = np.array(blocks).reshape(-1, 16 * BLOCK)
    return f32(w), 2688.0


def case_rounding_order(rng):
    # a weight_scale_2 that is not a power of two (amax 0.7311), with blocks built so that the f32 operation order
    # matters: block amaxes f32(m * f32(6 * wsf2)) whose ratio lands on E4M3 midpoints m (ModelOpt divides by the
    # rounded product 6 * wsf2, not by 6 then wsf2), and elements f32(t * f32(s * wsf2)) that land on the E2M1
    # thresholds t (ModelOpt divides by the rounded product scale * wsf2, not by scale then wsf2).
    amax = np.float32(0.7311)
    g = amax / np.float32(2688.0)
    d = np.float32(6.0) * g
    v = e4m3_positive_values().double().numpy()
    blocks = []
    for i, (a, b) in enumerate(zip(v[:-1], v[1:])):
        m = np.float32((a + b) / 2.0)
        bam = float(m * d)
        blk = rng.uniform(-1.0, 1.0, BLOCK) * bam
        blk[i % BLOCK] = bam if i % 2 == 0 else -bam
        blocks.append(blk)
    thresholds = [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0]
    for s in v[v >= 0.5][:48].astype(np.float32):
        den = s * g
        blk = [float(s * d)] + [float(np.float32(t) * den) for t in thresholds]
        blk += [-x for x in blk[1:]] + [0.0]
        blocks.append(np.array(blk))
    while len(blocks) % 16:
        blocks.append(np.zeros(BLOCK))
    w = np.array(blocks).reshape(-1, 16 * BLOCK)
    return f32(w), float(amax)


CASES = [
    ("normal", case_normal),
    ("heavy_tailed", case_heavy_tailed),
    ("laplace_outliers", case_laplace_outliers),
    ("zero_blocks", case_zero_blocks),
    ("tiny", case_tiny),
    ("scale_underflow", case_scale_underflow),
    ("huge", case_huge),
    ("small", case_small),
    ("subnormal_amax", case_subnormal_amax),
    ("mixed_rows", case_mixed_rows),
    ("bf16_rounded", case_bf16_rounded),
    ("amax_above", case_amax_above),
    ("amax_below", case_amax_below),
    ("e2m1_ties", case_e2m1_ties),
    ("e4m3_scale_ties", case_e4m3_scale_ties),
    ("rounding_order", case_rounding_order),
]


# ---- scalar codecs ------------------------------------------------------------------------------------------------

def codecs(rng):
    v = e4m3_positive_values().double().numpy()
    xs = [0.0, 2.0 ** -10, 2.0 ** -11, 3 * 2.0 ** -11, 1e-30, 1e-45, 1e-40, 448.0, 456.0, 460.0, 463.99, 464.0,
          464.01, 470.0, 479.99, 480.0, 500.0, 1e6, 3e38, np.inf, np.nan]
    for a in v:
        xs += [a, nudge(a, -1), nudge(a, 1)]
    for a, b in zip(v[:-1], v[1:]):
        mid = (a + b) / 2.0
        xs += [mid, nudge(mid, -1), nudge(mid, 1)]
    xs += list(np.exp(rng.uniform(np.log(1e-5), np.log(600.0), 2048)))
    xs = np.array(xs, dtype=np.float32)
    e4m3_in = np.concatenate([xs, -xs]).astype(np.float32)
    e4m3_in_t = torch.from_numpy(e4m3_in)
    e4m3_codes = e4m3_in_t.to(torch.float8_e4m3fn).view(torch.uint8)

    ys = [0.0, 1e-45, 1e-30, 0.1, np.inf, np.nan]
    for t in [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 7.0, 100.0]:
        ys += [t, nudge(t, -1), nudge(t, 1)]
    ys += list(rng.uniform(0.0, 8.0, 512))
    ys = np.array(ys, dtype=np.float32)
    e2m1_in = torch.from_numpy(np.concatenate([ys, -ys]).astype(np.float32))
    e2m1_codes = NVFP4QTensor._cast_fp4(e2m1_in.clone())
    return {
        "e4m3_input": e4m3_in_t.contiguous(),
        "e4m3_codes": e4m3_codes.contiguous(),
        "e2m1_input": e2m1_in.contiguous(),
        "e2m1_codes": e2m1_codes.to(torch.uint8).contiguous(),
    }


# ---- the real export of a tiny gpt-oss ------------------------------------------------------------------------------

def export_gptoss_tiny(seed):
    from transformers import GptOssConfig, GptOssForCausalLM

    cfg = GptOssConfig(vocab_size=128, hidden_size=64, intermediate_size=32, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, head_dim=16, num_local_experts=4, num_experts_per_tok=2, sliding_window=8,
                       layer_types=["sliding_attention", "full_attention"], max_position_embeddings=131072,
                       architectures=["GptOssForCausalLM"], tie_word_embeddings=False)
    model = GptOssForCausalLM(cfg).eval()
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            p.copy_(torch.from_numpy(rng.standard_normal(tuple(p.shape)).astype(np.float32) * 0.02))
    model = model.to(torch.bfloat16)
    calib = torch.from_numpy(rng.integers(0, 128, size=(2, 16)))

    def loop(m):
        with torch.no_grad():
            m(calib)

    mtq.quantize(model, mtq.NVFP4_DEFAULT_CFG, loop)
    pre = "model.layers.0."
    linears = [pre + f"self_attn.{p}_proj" for p in "qkvo"]
    experts = [pre + "mlp.experts.gate_up_proj", pre + "mlp.experts.down_proj"]
    sources = {}
    for n in linears:
        sources[n + ".weight"] = model.get_submodule(n).weight.detach().float().clone()
    ex = model.get_submodule(pre + "mlp.experts")
    for n in experts:
        sources[n] = getattr(ex, n.rsplit(".", 1)[1]).detach().float().clone()

    out = tempfile.mkdtemp(prefix="nvfp4_export_")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_hf_checkpoint(model, export_dir=out)
        tensors = {}
        files = [f for f in os.listdir(out) if f.endswith(".safetensors")]
        for f in files:
            with safe_open(os.path.join(out, f), "pt") as sf:
                for k in sf.keys():
                    keep = any(k.startswith(n + ".weight") for n in linears) or any(
                        k == n or k.startswith(n + "_weight_scale") for n in experts)
                    if keep:
                        tensors[k] = sf.get_tensor(k).contiguous()
    finally:
        shutil.rmtree(out)

    # the amax export used (after preprocess_linear_fusion gave q/k/v one shared amax)
    for n in linears:
        q = model.get_submodule(n).weight_quantizer
        tensors["amax." + n + ".weight"] = q._amax.float().reshape(()).contiguous()
    for n in experts:
        q = getattr(ex, n.rsplit(".", 1)[1] + "_weight_quantizer")
        tensors["amax." + n] = q._amax.float().reshape(()).contiguous()
    for k, v in sources.items():
        tensors["source." + k] = v.contiguous()
    # self-checks: weight_scale_2 = amax / 2688 in f32, q/k/v share it, layouts as docs/nvfp4.md describes
    for n in linears:
        s2 = tensors[n + ".weight_scale_2"]
        assert s2.dtype == torch.float32 and s2.dim() == 0
        assert torch.equal(s2, tensors["amax." + n + ".weight"] / 2688.0)
        o, i = sources[n + ".weight"].shape
        assert tensors[n + ".weight"].shape == (o, i // 2) and tensors[n + ".weight_scale"].shape == (o, i // 16)
    assert torch.equal(tensors[linears[0] + ".weight_scale_2"], tensors[linears[1] + ".weight_scale_2"])
    assert torch.equal(tensors[linears[0] + ".weight_scale_2"], tensors[linears[2] + ".weight_scale_2"])
    for n in experts:
        e, i, o = sources[n].shape
        assert tensors[n].shape == (e, i // 2, o) and tensors[n + "_weight_scale"].shape == (e, i // 16, o)
        assert tensors[n + "_weight_scale"].dtype == torch.float8_e4m3fn
    return tensors


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)
    for i, (name, fn) in enumerate(CASES):
        rng = np.random.default_rng(1000 + i)
        w, amax = fn(rng)
        t = modelopt_nvfp4(w, amax)
        save_file(t, os.path.join(args.out, f"w_{name}.safetensors"), metadata=metadata(CALL_PATH))
        print(f"w_{name}: {tuple(w.shape)} amax {float(t['amax']):.6g} weight_scale_2 {float(t['weight_scale_2']):.6g}")
    save_file(codecs(np.random.default_rng(7)), os.path.join(args.out, "codecs.safetensors"),
              metadata=metadata("torch .to(torch.float8_e4m3fn); NVFP4QTensor._cast_fp4"))
    save_file(export_gptoss_tiny(11), os.path.join(args.out, "export_gptoss_tiny.safetensors"),
              metadata=metadata("mtq.quantize(NVFP4_DEFAULT_CFG) + modelopt.torch.export.export_hf_checkpoint"))
    for f in os.listdir(args.out):
        os.chmod(os.path.join(args.out, f), 0o644)
    total = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
    print(f"wrote {len(CASES) + 2} files, {total} bytes")


if __name__ == "__main__":
    main()
