#!/usr/bin/env python3
"""llama-bench's pp/tg tests through llama-cpp-python's bindings (the pip package builds llama.cpp from source for
this host; its wheel has no llama-bench binary). One JSON object on stdout:
  {"engine": "llama.cpp", "pp_tok_s": [...], "tg_tok_s": [...], "threads": T, "llama_cpp_python": version}
pp: an empty context evaluates n_prompt tokens in one batch; tg: an empty context evaluates n_gen tokens one at a
time, as llama-bench's pp512 / tg128 do. Token ids are random (the weights are random too).

  python3 llamacpp_bench.py MODEL.gguf [-p 512] [-n 128] [-r 3] [-t 2]
"""
import argparse
import json
import random
import sys
import time

import gguf
import llama_cpp


def weight_bytes_per_token(path: str, n_used: int = 4) -> int:
    """Bytes of weights one decoded token reads: every tensor but the embedding table (one row is gathered), the
    expert tensors (ffn_*_exps) at n_used of their experts."""
    r = gguf.GGUFReader(path)
    n_expert = int(r.fields["gpt-oss.expert_count"].parts[-1][0])
    total = 0
    for t in r.tensors:
        if t.name == "token_embd.weight":
            total += int(t.n_bytes) // int(t.shape[-1])
        elif "_exps" in t.name:
            total += int(t.n_bytes) * n_used // n_expert
        else:
            total += int(t.n_bytes)
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("-p", type=int, default=512)
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("-r", type=int, default=3)
    ap.add_argument("-t", type=int, default=2)
    a = ap.parse_args()
    llm = llama_cpp.Llama(model_path=a.model, n_ctx=a.p + a.n + 16, n_batch=a.p, n_ubatch=a.p, n_threads=a.t,
                          n_threads_batch=a.t, use_mmap=True, verbose=False, logits_all=False)
    rng = random.Random(0)
    n_vocab = llm.n_vocab()
    out = {"engine": "llama.cpp", "llama_cpp_python": llama_cpp.__version__, "threads": a.t, "pp_tok_s": [], "tg_tok_s": [],
           "weight_bytes_per_token": weight_bytes_per_token(a.model)}
    # one warm-up of each (pages in, threads up), not counted, as llama-bench does
    for rep in range(a.r + 1):
        if a.p > 0:
            ids = [rng.randrange(1000, n_vocab - 1000) for _ in range(a.p)]
            llm.reset()  # n_tokens = 0: the next eval drops every cached position (kv_cache_seq_rm from n_tokens)
            t0 = time.perf_counter()
            llm.eval(ids)
            dt = time.perf_counter() - t0
            if rep > 0:
                out["pp_tok_s"].append(a.p / dt)
            print(f"llama.cpp pp{a.p} rep {rep}: {a.p / dt:.2f} tok/s", file=sys.stderr)
        if a.n > 0:
            llm.reset()  # n_tokens = 0: the next eval drops every cached position (kv_cache_seq_rm from n_tokens)
            tok = rng.randrange(1000, n_vocab - 1000)
            t0 = time.perf_counter()
            for _ in range(a.n):
                llm.eval([tok])
                tok = rng.randrange(1000, n_vocab - 1000)
            dt = time.perf_counter() - t0
            if rep > 0:
                out["tg_tok_s"].append(a.n / dt)
            print(f"llama.cpp tg{a.n} rep {rep}: {a.n / dt:.2f} tok/s", file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
