#!/usr/bin/env python3
"""One tiny gpt-oss, quantized to NVFP4 by the real tools, in the three checkpoint forms oss4 loads, plus logits.

What it writes (under --out, normally tests/data/nvfp4_forms/)
  a/  ModelOpt's fake-quant checkpoint: mto.enable_huggingface_checkpointing(); mtq.quantize(model,
      NVFP4_DEFAULT_CFG, calibration); model.save_pretrained(a/). BF16 weights plus the quantizers' buffers
      (`*.weight_quantizer._amax`, `*.input_quantizer._amax`, `mlp.experts.gate_up_proj_weight_quantizer._amax`, ...)
      exactly as save_pretrained leaves them. modelopt_state.pth (a torch pickle that only ModelOpt reads) is dropped.
  b/  ModelOpt's export of that same quantized model: modelopt.torch.export.export_hf_checkpoint(model, b/):
      hf_quant_config.json, U8 `weight`, F8_E4M3 `weight_scale`, F32 `weight_scale_2` / `input_scale`, experts as
      `gate_up_proj` [E, in/2, out] with `gate_up_proj_weight_scale` [E, in/16, out].
  c/  compressed-tensors `nvfp4-pack-quantized` (compressed-tensors' own NVFP4PackedCompressor, qparams from its
      generate_gparam / calculate_qparams): q/k/v/o as `weight_packed` / `weight_scale` / `weight_global_scale`
      (= 1 / ModelOpt's weight_scale_2, from the same amax) / `input_global_scale`; experts rewritten first, as
      llm-compressor's gpt-oss linearization does, into per-expert nn.Linear gate_proj / up_proj / down_proj
      (`mlp.experts.experts.E.gate_proj.weight_packed`, gate = even columns of gate_up_proj), biases as
      `...gate_proj.bias`. Global scales come from the same amax ModelOpt used (q/k/v share one; each expert
      projection one across all experts), so the three forms describe the same NVFP4 numbers.
  golden.safetensors
      ids [n] (I32); logits_modelopt [n, vocab] (F32): transformers' GptOssForCausalLM in float32 (eager attention)
      with every NVFP4 weight replaced by ModelOpt's dequantization of form b (NVFP4QTensor.dequantize), the rest
      from the BF16 model; logits_compressed_tensors: the same on compressed-tensors' dequantization of form c
      (the two tools round a few elements differently, and a tiny random model amplifies that); calib_ids [2, 16]
      (I32), the calibration batch mtq.quantize saw.

How to run (CPU only, a few seconds, never downloads anything)
  /tmp/refenv/bin/pip install -r tools/reference/requirements.txt -r tools/reference/requirements-nvfp4.txt
  /tmp/refenv/bin/python tools/reference/make_nvfp4_forms.py --out tests/data/nvfp4_forms
"""

import argparse
import json
import os
import shutil
import tempfile
import warnings

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import compressed_tensors
import modelopt
import modelopt.torch.opt as mto
import modelopt.torch.quantization as mtq
import transformers
from compressed_tensors.compressors import NVFP4PackedCompressor
from compressed_tensors.compressors.nvfp4.helpers import unpack_fp4_from_uint8
from compressed_tensors.quantization.lifecycle.forward import dequantize
from compressed_tensors.quantization import QuantizationScheme
from compressed_tensors.quantization.quant_scheme import NVFP4
from compressed_tensors.quantization.utils.helpers import calculate_qparams, generate_gparam
from modelopt.torch.export import export_hf_checkpoint
from modelopt.torch.quantization.qtensor.nvfp4_tensor import NVFP4QTensor
from transformers import GptOssConfig, GptOssForCausalLM

BLOCK = 16


def tiny_config():
    return GptOssConfig(vocab_size=256, hidden_size=64, intermediate_size=32, num_hidden_layers=2, num_attention_heads=4,
                        num_key_value_heads=2, head_dim=16, num_local_experts=4, num_experts_per_tok=2, sliding_window=8,
                        layer_types=["sliding_attention", "full_attention"], max_position_embeddings=131072,
                        architectures=["GptOssForCausalLM"], tie_word_embeddings=False, attn_implementation="eager")


def make_model(seed):
    model = GptOssForCausalLM(tiny_config()).eval()
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            # well-conditioned for a float32 comparison: norms near 1, a wide router spread (top-k boundaries far
            # from ties, so one NVFP4 rounding difference cannot flip an expert choice)
            scale = 0.1 if "norm" in name else 0.5 if "router" in name else 0.05
            base = 1.0 if "norm" in name else 0.0
            p.copy_(torch.from_numpy(base + rng.standard_normal(tuple(p.shape)).astype(np.float32) * scale))
    return model.to(torch.bfloat16), rng


def read_dir(d):
    out = {}
    for f in sorted(os.listdir(d)):
        if f.endswith(".safetensors"):
            with safe_open(os.path.join(d, f), "pt") as sf:
                for k in sf.keys():
                    out[k] = sf.get_tensor(k)
    return out


def keep_files(src, dst, names):
    os.makedirs(dst, exist_ok=True)
    for n in names:
        shutil.copyfile(os.path.join(src, n), os.path.join(dst, n))
        os.chmod(os.path.join(dst, n), 0o644)


def ct_quantize(w, amax):
    """compressed-tensors NVFP4 of w [out, in] f32 with the global scale from amax: its state dict."""
    args = QuantizationScheme(targets=["Linear"], **NVFP4).weights
    a = torch.tensor(float(amax), dtype=torch.float32)
    gs = generate_gparam(-a, a)                                            # 448 * 6 / amax, [1]
    blocks = w.reshape(w.shape[0], w.shape[1] // BLOCK, BLOCK)
    scale, _ = calculate_qparams(blocks.amin(-1), blocks.amax(-1), args, global_scale=gs)
    sd = {"weight": w, "weight_scale": scale, "weight_global_scale": gs}
    out = NVFP4PackedCompressor.compress(sd, QuantizationScheme(targets=["Linear"], **NVFP4))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.manual_seed(0)
    mto.enable_huggingface_checkpointing()
    model, rng = make_model(23)
    calib = torch.from_numpy(rng.integers(0, 256, size=(2, 16)))
    ids = torch.from_numpy(rng.integers(0, 256, size=(24,)))

    def loop(m):
        with torch.no_grad():
            m(calib)

    mtq.quantize(model, mtq.NVFP4_DEFAULT_CFG, loop)
    cfg = model.config
    L, E = cfg.num_hidden_layers, cfg.num_local_experts
    tmp = tempfile.mkdtemp(prefix="nvfp4_forms_")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # ---- a: fake-quant save
            model.save_pretrained(os.path.join(tmp, "a"))
            keep_files(os.path.join(tmp, "a"), os.path.join(args.out, "a"), ["config.json", "model.safetensors"])
            a = read_dir(os.path.join(tmp, "a"))
            # ---- b: export
            export_hf_checkpoint(model, dtype=torch.bfloat16, export_dir=os.path.join(tmp, "b"))
            bfiles = [f for f in os.listdir(os.path.join(tmp, "b")) if f.endswith((".safetensors", ".json"))
                      and f in ("config.json", "hf_quant_config.json", "model.safetensors")]
            keep_files(os.path.join(tmp, "b"), os.path.join(args.out, "b"), sorted(bfiles))
            b = read_dir(os.path.join(tmp, "b"))
    finally:
        shutil.rmtree(tmp)

    # ---- c: compressed-tensors, from the BF16 weights and the amax ModelOpt exported
    c = {}
    lin = ["q_proj", "k_proj", "v_proj", "o_proj"]
    for k, v in a.items():
        if "_quantizer" in k:
            continue
        is_lin = any(f"self_attn.{p}.weight" in k for p in lin)
        is_exp = k.endswith("mlp.experts.gate_up_proj") or k.endswith("mlp.experts.down_proj")
        is_exp_bias = k.endswith("mlp.experts.gate_up_proj_bias") or k.endswith("mlp.experts.down_proj_bias")
        if not (is_lin or is_exp or is_exp_bias):
            c[k] = v
    for li in range(L):
        pre = f"model.layers.{li}."
        for p in lin:
            n = pre + f"self_attn.{p}"
            # the amax export used: after export, q/k/v's quantizers hold their fused (shared) amax
            amax = model.get_submodule(n).weight_quantizer._amax.float()
            for kk, vv in ct_quantize(a[n + ".weight"].float(), amax).items():
                c[n + "." + kk] = vv
            c[n + ".input_global_scale"] = (1.0 / b[n + ".input_scale"].float()).reshape([1])
        ex = model.get_submodule(pre + "mlp.experts")
        gu, dn = a[pre + "mlp.experts.gate_up_proj"].float(), a[pre + "mlp.experts.down_proj"].float()  # [E, in, out]
        gub, dnb = a[pre + "mlp.experts.gate_up_proj_bias"], a[pre + "mlp.experts.down_proj_bias"]
        gu_amax = ex.gate_up_proj_weight_quantizer._amax.float()
        dn_amax = ex.down_proj_weight_quantizer._amax.float()
        for e in range(E):
            m = pre + f"mlp.experts.experts.{e}."
            wt = gu[e].t().contiguous()  # [2F, H], rows interleaved gate 2j, up 2j+1
            for name, rows, bias in (("gate_proj", wt[0::2], gub[e][0::2]), ("up_proj", wt[1::2], gub[e][1::2])):
                for kk, vv in ct_quantize(rows.contiguous(), gu_amax).items():
                    c[m + name + "." + kk] = vv
                c[m + name + ".bias"] = bias.contiguous()
                c[m + name + ".input_global_scale"] = (1.0 / b[pre + "mlp.experts.gate_up_proj_input_scale"].float()).reshape([1])
            for kk, vv in ct_quantize(dn[e].t().contiguous(), dn_amax).items():
                c[m + "down_proj." + kk] = vv
            c[m + "down_proj.bias"] = dnb[e].contiguous()
            c[m + "down_proj.input_global_scale"] = (1.0 / b[pre + "mlp.experts.down_proj_input_scale"].float()).reshape([1])
    os.makedirs(os.path.join(args.out, "c"), exist_ok=True)
    save_file({k: v.contiguous() for k, v in c.items()}, os.path.join(args.out, "c", "model.safetensors"),
              metadata={"format": "pt"})
    ccfg = json.load(open(os.path.join(args.out, "b", "config.json")))
    ccfg.pop("quantization_config", None)
    scheme = {k: (v.model_dump() if hasattr(v, "model_dump") else v) for k, v in NVFP4.items()}
    ccfg["quantization_config"] = {
        "quant_method": "compressed-tensors", "format": "nvfp4-pack-quantized", "quantization_status": "compressed",
        "config_groups": {"group_0": {"targets": ["Linear"], "format": "nvfp4-pack-quantized", **scheme}},
        "ignore": ["lm_head", "re:.*mlp.router$"], "version": compressed_tensors.__version__}
    with open(os.path.join(args.out, "c", "config.json"), "w") as f:
        json.dump(ccfg, f, indent=2, default=str)

    # ---- golden logits: transformers in f32 on each form's own dequantization (ModelOpt's of b, which a equals;
    # compressed-tensors' decompress of c)
    def reference_logits(set_weights):
        # a fresh float32 model loaded with the BF16 weights: model.to(bfloat16) would also have rounded the RoPE
        # inv_freq buffer (not in the state dict) to BF16
        src, _ = make_model(23)
        ref = GptOssForCausalLM(tiny_config()).eval()
        ref.load_state_dict({k: v.float() for k, v in src.state_dict().items()})
        with torch.no_grad():
            set_weights(ref.state_dict())
            return ref(ids[None]).logits[0].float().contiguous()

    def modelopt_dequant(packed, scale, scale2):  # packed [out, in/2], scale [out, in/16] -> [out, in] f32
        q = NVFP4QTensor((packed.shape[0], packed.shape[1] * 2), torch.float32, packed)
        return q.dequantize(dtype=torch.float32, scale=scale, double_scale=scale2, block_sizes={-1: BLOCK})

    def set_b(sd):
        for li in range(L):
            pre = f"model.layers.{li}."
            for p in lin:
                n = pre + f"self_attn.{p}"
                sd[n + ".weight"].copy_(modelopt_dequant(b[n + ".weight"], b[n + ".weight_scale"], b[n + ".weight_scale_2"]))
            for p in ("gate_up_proj", "down_proj"):
                n = pre + "mlp.experts." + p
                packed = b[n].transpose(1, 2).contiguous()                  # [E, out, in/2]
                scale = b[n + "_weight_scale"].transpose(1, 2).contiguous()  # [E, out, in/16]
                ws = [modelopt_dequant(packed[e], scale[e], b[n + "_weight_scale_2"]) for e in range(E)]
                sd[n].copy_(torch.stack(ws).transpose(1, 2))                # back to [E, in, out]

    scheme = QuantizationScheme(targets=["Linear"], **NVFP4)

    def ct_dequant(prefix):
        # compressed-tensors' own dequantization of one Linear -> [out, in] f32. NVFP4PackedCompressor.decompress
        # does the same steps but in BF16 (unpack_fp4_from_uint8's default dtype), which rounds every weight; here
        # they run in f32: w = q * (float(weight_scale) / weight_global_scale).
        packed, scale, gs = (c[prefix + "." + k] for k in ("weight_packed", "weight_scale", "weight_global_scale"))
        q = unpack_fp4_from_uint8(packed, packed.shape[0], packed.shape[1] * 2, dtype=torch.float32)
        return dequantize(x_q=q, scale=scale.to(torch.float32), global_scale=gs, dtype=torch.float32)

    def set_c(sd):
        for li in range(L):
            pre = f"model.layers.{li}."
            for p in lin:
                sd[pre + f"self_attn.{p}.weight"].copy_(ct_dequant(pre + f"self_attn.{p}"))
            gu, dn = [], []
            for e in range(E):
                m = pre + f"mlp.experts.experts.{e}."
                g, u = ct_dequant(m + "gate_proj"), ct_dequant(m + "up_proj")  # [F, H] each
                gu.append(torch.stack([g, u], 1).reshape(2 * g.shape[0], g.shape[1]).t())  # [H, 2F], gate even
                dn.append(ct_dequant(m + "down_proj").t())                                   # [F, H]
            sd[pre + "mlp.experts.gate_up_proj"].copy_(torch.stack(gu))
            sd[pre + "mlp.experts.down_proj"].copy_(torch.stack(dn))

    save_file({"ids": ids.to(torch.int32), "logits_modelopt": reference_logits(set_b),
               "logits_compressed_tensors": reference_logits(set_c), "calib_ids": calib.to(torch.int32)},
              os.path.join(args.out, "golden.safetensors"),
              metadata={"made_by": f"transformers {transformers.__version__} GptOssForCausalLM f32 eager; logits_modelopt on "
                                    f"NVFP4QTensor.dequantize of the ModelOpt {modelopt.__version__} export (b), "
                                    f"logits_compressed_tensors on compressed-tensors {compressed_tensors.__version__} "
                                    f"dequantize (f32) of c; torch {torch.__version__}"})
    for f in ("golden.safetensors", "c/model.safetensors", "c/config.json"):
        os.chmod(os.path.join(args.out, f), 0o644)

    # ---- self-checks: c holds the same numbers as b
    diff = 0
    for li in range(L):
        pre = f"model.layers.{li}."
        for p in lin:
            n = pre + f"self_attn.{p}"
            diff += int((c[n + ".weight_packed"] != b[n + ".weight"]).sum())
            diff += int((c[n + ".weight_scale"].view(torch.uint8) != b[n + ".weight_scale"].view(torch.uint8)).sum())
    print(f"attention: {diff} bytes of compressed-tensors' form differ from ModelOpt's export")
    print("a keys:", sorted(k for k in a if "quantizer" in k)[:12])
    print("wrote", args.out)


if __name__ == "__main__":
    main()
