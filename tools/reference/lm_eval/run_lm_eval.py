#!/usr/bin/env python3
"""lm-evaluation-harness against `oss4 serve`, checked against oss4's own numbers. Not in CI (heavy: torch).

    python3 -m venv /tmp/lmeval-venv && /tmp/lmeval-venv/bin/pip install -r tools/reference/lm_eval/requirements.txt
    /tmp/lmeval-venv/bin/python tools/reference/lm_eval/run_lm_eval.py --oss4 build/oss4 [--model DIR] [--out FILE.json]

Without --model it writes the tiny synthetic model (`oss4 synth --config tiny`, which also writes the tokenizer files
lm_eval's huggingface tokenizer backend loads). It starts `oss4 serve` on a free loopback port and runs the two tasks
in tasks/ (written for this: nothing comes from a hub):

  - oss4_mc (32 four-way questions, log-likelihood, `acc`) with lm_eval's `local-completions` model: it sends token ids
    with echo, logprobs 1 and max_tokens 1 and sums the continuation's token_logprobs;
  - oss4_gen (6 greedy completions, `exact_match`) with `local-completions` and with `local-chat-completions`.

Then it computes the same without the server or lm_eval: every (question, choice) is tokenized by `oss4 tokenize`
(split into context and continuation as lm_eval's _encode_pair splits it) and scored from `oss4 logits` (one forward
over the ids, log-softmax here); the completions of oss4_gen come from `oss4 generate`. It fails unless the accuracy,
every log-likelihood (to 1e-4) and every completion agree.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from importlib.metadata import version

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TASKS = os.path.join(HERE, "tasks")


def start_server(oss4, model):
    proc = subprocess.Popen([oss4, "serve", "-m", model, "--port", "0", "--model-name", "tiny", "-q"], stderr=subprocess.PIPE, text=True)
    port, ready, log = [None], threading.Event(), []

    def read():
        for line in proc.stderr:
            log.append(line)
            m = re.search(r"on http://[0-9.]+:(\d+)", line)
            if m and port[0] is None:
                port[0] = int(m.group(1))
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(120) or port[0] is None:
        raise RuntimeError("oss4 serve did not start: " + "".join(log))
    return proc, port[0]


def read_npy_f32(path):
    with open(path, "rb") as f:
        data = f.read()
    hlen = int.from_bytes(data[8:10], "little")
    header = data[10:10 + hlen].decode()
    shape = tuple(int(x) for x in re.search(r"'shape': \(([^)]*)\)", header).group(1).split(",") if x.strip())
    return np.frombuffer(data[10 + hlen:], dtype="<f4").reshape(shape)


def tokenize(oss4, model, texts, tmp):
    path = os.path.join(tmp, "texts.jsonl")
    with open(path, "w") as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
    out = subprocess.run([oss4, "tokenize", "--tokenizer", model, "--jsonl", path], check=True, capture_output=True, text=True).stdout
    return [json.loads(line)["ids"] for line in out.splitlines() if line.strip()]


def loglikelihood(oss4, model, ctx, cont, tmp):
    """sum of log p(cont | ctx) and whether every continuation token is the greedy one, from `oss4 logits`"""
    ids = ctx + cont
    out = os.path.join(tmp, "l.npy")
    subprocess.run([oss4, "logits", "-q", "-m", model, "--ids", ",".join(map(str, ids)), "--out", out], check=True, capture_output=True)
    logits = read_npy_f32(out).astype(np.float64)
    ll, greedy = 0.0, True
    for j, tok in enumerate(cont):
        row = logits[len(ctx) - 1 + j]
        m = row.max()
        lse = m + np.log(np.exp(row - m).sum())
        ll += row[tok] - lse
        greedy = greedy and int(np.argmax(row)) == tok
    return ll, greedy


def direct_mc(oss4, model, tmp):
    docs = [json.loads(line) for line in open(os.path.join(TASKS, "oss4_mc.jsonl"))]
    pairs = []  # (context, continuation) as the task renders them (target_delimiter " ")
    for d in docs:
        ctx = f"Question: {d['question']}\nAnswer:"
        pairs += [(ctx, " " + c) for c in d["choices"]]
    # lm_eval's _encode_pair: encode context + continuation whole, the context alone, split at its length
    enc = tokenize(oss4, model, [c + x for c, x in pairs] + [c for c, _ in pairs], tmp)
    whole, ctxs = enc[:len(pairs)], enc[len(pairs):]
    lls, correct, k = [], 0, 0
    for d in docs:
        scores = []
        for _ in d["choices"]:
            ctx_ids = ctxs[k]
            ll = loglikelihood(oss4, model, ctx_ids, whole[k][len(ctx_ids):], tmp)
            scores.append(ll)
            k += 1
        lls.append(scores)
        correct += int(np.argmax([s[0] for s in scores]) == d["answer"])
    return correct / len(docs), lls


def direct_gen(oss4, model):
    docs = [json.loads(line) for line in open(os.path.join(TASKS, "oss4_gen.jsonl"))]
    outs, hits = [], 0
    for d in docs:
        text = subprocess.run([oss4, "generate", "-q", "-m", model, "--prompt", d["prompt"], "-n", "8", "--temperature", "0"],
                              check=True, capture_output=True, text=True).stdout
        text = text[:-1] if text.endswith("\n") else text  # generate ends its output with a newline
        for stop in ("\n", "."):
            text = text.split(stop)[0]
        outs.append(text)
        hits += int(text.strip() == d["target"].strip())
    return hits / len(docs), outs


def run_lm_eval(model_name, model_args, tasks, chat):
    import lm_eval
    from lm_eval.tasks import TaskManager
    cwd = os.getcwd()
    os.chdir(TASKS)  # the tasks' data_files are relative
    try:
        return lm_eval.simple_evaluate(model=model_name, model_args=model_args, tasks=tasks, task_manager=TaskManager(include_path=TASKS),
                                       log_samples=True, batch_size=1, apply_chat_template=chat)
    finally:
        os.chdir(cwd)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--oss4", required=True)
    ap.add_argument("--model", help="checkpoint directory with tokenizer files (default: a fresh oss4 synth --config tiny)")
    ap.add_argument("--out", help="write the numbers here as JSON")
    a = ap.parse_args()
    oss4 = os.path.abspath(a.oss4)
    tmp = tempfile.mkdtemp(prefix="oss4-lmeval-")
    try:
        model = a.model or os.path.join(tmp, "tiny")
        if not a.model:
            subprocess.run([oss4, "synth", "--config", "tiny", "--out", model], check=True, capture_output=True)
        model = os.path.abspath(model)
        proc, port = start_server(oss4, model)
        try:
            common = f"model=tiny,tokenizer={model},tokenizer_backend=huggingface,num_concurrent=1,max_retries=1,max_length=4096"
            comp = run_lm_eval("local-completions", f"base_url=http://127.0.0.1:{port}/v1/completions,tokenized_requests=True,{common}",
                               ["oss4_mc", "oss4_gen"], chat=False)
            chat = run_lm_eval("local-chat-completions", f"base_url=http://127.0.0.1:{port}/v1/chat/completions,tokenized_requests=False,{common}",
                               ["oss4_gen"], chat=True)
        finally:
            proc.terminate()
            proc.wait(30)
        acc = comp["results"]["oss4_mc"]["acc,none"]
        em = comp["results"]["oss4_gen"]["exact_match,none"]
        em_chat = chat["results"]["oss4_gen"]["exact_match,none"]
        print(f"lm_eval local-completions:      oss4_mc acc {acc:.4f}, oss4_gen exact_match {em:.4f}")
        print(f"lm_eval local-chat-completions: oss4_gen exact_match {em_chat:.4f}")

        d_acc, d_lls = direct_mc(oss4, model, tmp)
        d_em, d_outs = direct_gen(oss4, model)
        print(f"direct (oss4 tokenize + oss4 logits): oss4_mc acc {d_acc:.4f}; (oss4 generate): oss4_gen exact_match {d_em:.4f}")
        # every log-likelihood and completion, not only the averages
        worst, greedy_ok = 0.0, True
        for s in comp["samples"]["oss4_mc"]:
            got = [r[0] for r in s["resps"]]  # per choice: [(log-likelihood, is_greedy)]
            want = d_lls[s["doc_id"]]
            for (g_ll, g_greedy), (w_ll, w_greedy) in zip(got, want):
                worst = max(worst, abs(float(g_ll) - w_ll))
                if bool(g_greedy) != w_greedy:
                    print(f"oss4_mc doc {s['doc_id']}: is_greedy {g_greedy} from lm_eval, {w_greedy} from oss4 logits")
                    greedy_ok = False
        gen_resps = {s["doc_id"]: s["resps"][0][0] for s in comp["samples"]["oss4_gen"]}
        print(f"max |log-likelihood difference| {worst:.2e} over {len(d_lls) * 4} (question, choice) pairs")
        ok = acc == d_acc and em == d_em and worst < 1e-4 and greedy_ok
        for i, want in enumerate(d_outs):
            got = gen_resps[i]
            if got != want:
                print(f"oss4_gen doc {i}: lm_eval got {got!r}, oss4 generate {want!r}")
                ok = False
        versions = {p: version(p) for p in ("lm_eval", "torch", "transformers", "datasets", "tokenizers", "numpy")}
        versions["python"] = sys.version.split()[0]
        print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
        if a.out:
            with open(a.out, "w") as f:
                json.dump({"lm_eval": {"oss4_mc_acc": acc, "oss4_gen_exact_match": em, "oss4_gen_exact_match_chat": em_chat},
                           "direct": {"oss4_mc_acc": d_acc, "oss4_gen_exact_match": d_em}, "max_ll_diff": worst, "versions": versions}, f, indent=2)
        print("AGREE" if ok else "DISAGREE")
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
