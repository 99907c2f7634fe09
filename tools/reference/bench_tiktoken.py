"""tiktoken's single-thread encode throughput on the text bench/bench_tokenizer.cpp builds (the case texts joined
by "\n", repeated to >= --mb MB). Offline: the vocabulary comes from a local o200k_base.tiktoken.

usage: python tools/reference/bench_tiktoken.py [--vocab data/o200k_base.tiktoken]
           [--cases tests/data/tokenizer/o200k_harmony_cases.jsonl] [--mb 4] [--runs 5]     (tiktoken==0.12.0)
"""
import argparse
import json
import os
import time

from o200k_harmony_tiktoken import o200k_harmony

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", default=os.path.join(ROOT, "data", "o200k_base.tiktoken"))
    ap.add_argument("--cases", default=os.path.join(ROOT, "tests", "data", "tokenizer", "o200k_harmony_cases.jsonl"))
    ap.add_argument("--mb", type=float, default=4.0)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    with open(a.cases, encoding="utf-8") as f:
        rnd = "\n".join(json.loads(line)["text"] for line in f if line.strip())
    round_bytes = len(rnd.encode("utf-8"))
    reps = 0
    while reps * round_bytes < a.mb * 1e6:
        reps += 1
    text = rnd * reps
    n_bytes = len(text.encode("utf-8"))
    t0 = time.perf_counter()
    enc = o200k_harmony(a.vocab)
    load_s = time.perf_counter() - t0
    mbps = []
    n_tokens = 0
    for _ in range(max(1, a.runs)):
        t0 = time.perf_counter()
        ids = enc.encode_ordinary(text)
        dt = time.perf_counter() - t0
        n_tokens = len(ids)
        mbps.append(n_bytes / 1e6 / dt)
    mbps.sort()
    print(f"tiktoken {__import__('tiktoken').__version__} o200k_harmony encode_ordinary (1 thread): {n_bytes / 1e6:.2f} MB text, "
          f"{n_tokens} tokens, best {mbps[-1]:.1f} MB/s, median {mbps[len(mbps) // 2]:.1f} MB/s over {len(mbps)} runs; load {load_s:.2f} s")


if __name__ == "__main__":
    main()
