"""`oss4 serve` on loopback, driven by the official openai client (pinned in requirements.txt).

Usage: test_openai_client.py --oss4 BIN [--load-requests N] [--quick] [--only NAME]
(--quick: shorter generations, for sanitizer builds)

Two kinds of server, both on the tiny synthetic model (made here with `oss4 synth --config tiny`):
  - the real model, greedy: shapes of every endpoint, streamed == plain, 16 parallel streams == 16 sequential
    requests, cancellation, a bounded load test, time to first token with and without prefix reuse; log-probabilities
    (completions with echo and max_tokens 0 against `oss4 logits` on the same ids, chat content tokens);
  - the same model with --script (a test facility: chosen harmony replies replace sampled tokens, the model still
    runs): the reasoning split, a tool-call round trip, responses items, prefix reuse across chat turns.
A third server checks the API key, the body limit and overload. Every failure is an assertion; the run prints its
numbers (TTFT, latency percentiles) for docs/serving.md.
"""
import argparse
import concurrent.futures as cf
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import openai

from serve_process import ServeProcess

N_PARALLEL_TOKENS = 16  # tokens per stream in the parallel == sequential test (--quick: 6)

SCRIPT = {
    "replies": [
        # checked in order: the tool round trip's second turn holds "sunny" (the tool's result)
        {"when": "sunny", "text": "<|channel|>analysis<|message|>The tool says sunny.<|end|><|start|>assistant<|channel|>final<|message|>It is sunny in Paris.<|return|>"},
        {"when": "weather", "text": "<|channel|>analysis<|message|>I need the weather tool.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\": \"Paris\"}<|call|>"},
        {"when": "greet", "text": "<|channel|>analysis<|message|>I should greet.<|end|><|start|>assistant<|channel|>final<|message|>Hello! How can I help?<|return|>"},
        {"when": "", "text": "<|channel|>final<|message|>Default reply.<|return|>"},
    ]
}


class Server(ServeProcess):
    def client(self, key="none", **kw):
        return openai.OpenAI(base_url=self.base + "/v1", api_key=key, max_retries=0, timeout=120, **kw)

    def raw(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data

    def metrics(self, key=None):
        st, data = self.raw("GET", "/metrics", headers={"Authorization": f"Bearer {key}"} if key else {})
        assert st == 200, (st, data)
        out = {}
        for line in data.decode().splitlines():
            if line and not line.startswith("#"):
                name, val = line.rsplit(" ", 1)
                out[name] = float(val)
        return out



def chat_text(c, content, **kw):
    r = c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": content}], temperature=0, **kw)
    return r


# ---------------- real model ----------------

def test_models_health(s):
    st, data = s.raw("GET", "/health")
    assert st == 200 and json.loads(data)["status"] == "ok"
    models = s.client().models.list()
    assert len(models.data) == 1 and models.data[0].object == "model"
    assert "oss4_queue_length" in s.metrics()


def test_chat_plain_and_streamed(s):
    c = s.client()
    r = chat_text(c, "Tell me a story.", max_tokens=12, seed=1)
    ch = r.choices[0]
    assert ch.finish_reason in ("stop", "length", "tool_calls"), ch.finish_reason
    assert r.usage.prompt_tokens > 0 and 0 < r.usage.completion_tokens <= 12
    assert r.object == "chat.completion" and ch.message.role == "assistant"
    plain = (ch.message.content or "", getattr(ch.message, "reasoning_content", None) or "")
    stream = c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Tell me a story."}], temperature=0,
                                       max_tokens=12, stream=True, stream_options={"include_usage": True})
    content, reasoning, usage, finish = "", "", None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for c0 in chunk.choices:
            content += c0.delta.content or ""
            reasoning += getattr(c0.delta, "reasoning_content", None) or ""
            finish = c0.finish_reason or finish
    assert (content, reasoning) == plain, ((content, reasoning), plain)
    assert finish == ch.finish_reason
    assert usage is not None and usage.completion_tokens == r.usage.completion_tokens, usage


def test_completions(s):
    c = s.client()
    r = c.completions.create(model="tiny", prompt="The capital of France is", max_tokens=10, temperature=0)
    assert r.object == "text_completion" and r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.completion_tokens <= 10
    text = "".join(ch.choices[0].text for ch in c.completions.create(model="tiny", prompt="The capital of France is", max_tokens=10,
                                                                     temperature=0, stream=True) if ch.choices)
    assert text == r.choices[0].text, (text, r.choices[0].text)


# ---------------- log-probabilities ----------------

def o200k_bytes():
    """rank -> bytes of the shipped vocabulary (data/o200k_base.tiktoken), read here independently of oss4"""
    import base64
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data", "o200k_base.tiktoken")
    out = {}
    with open(path) as f:
        for line in f:
            b64, rank = line.split()
            out[int(rank)] = base64.b64decode(b64)
    return out


def legacy_token(b):
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return "bytes:" + "".join(f"\\x{c:02x}" for c in b)


def oss4_log_softmax(oss4, model, ids, tmp):
    """log-softmax of every position's logits from `oss4 logits` (another command, one forward over the ids)"""
    import array
    import math
    out = os.path.join(tmp, "lp.npy")
    subprocess.run([oss4, "logits", "-q", "-m", model, "--ids", ",".join(map(str, ids)), "--out", out], check=True, capture_output=True)
    with open(out, "rb") as f:
        data = f.read()
    hlen = int.from_bytes(data[8:10], "little")
    header = data[10:10 + hlen].decode()
    assert "'<f4'" in header, header
    vals = array.array("f")
    vals.frombytes(data[10 + hlen:])
    n_vocab = len(vals) // len(ids)
    rows = []
    for t in range(len(ids)):
        row = vals[t * n_vocab:(t + 1) * n_vocab]
        m = max(row)
        lse = m + math.log(math.fsum(math.exp(x - m) for x in row))
        rows.append([x - lse for x in row])
    return rows


def test_completions_logprobs(s):
    oss4, model = s.oss4, s.model
    c = s.client()
    vocab = o200k_bytes()
    broken = next(r for r in range(256) if vocab[r] and vocab[r][0] >= 0x80)  # one byte of a multi-byte character
    prompt = [976, 4853, 19705, 68347, 65613, 1072, 290, 29082, 6446, broken, 13, 3673]
    r = c.completions.create(model="tiny", prompt=prompt, max_tokens=1, echo=True, logprobs=5, temperature=0)
    ch = r.choices[0]
    lp = ch.logprobs
    gen = prompt + [None]
    assert len(lp.tokens) == len(prompt) + 1 and r.usage.completion_tokens == 1, lp
    # the generated token: greedy, so it is its position's most likely token
    top_last = lp.top_logprobs[-1]
    assert lp.token_logprobs[-1] == max(top_last.values()), (lp.token_logprobs[-1], top_last)
    gen_id = next(i for i, b in vocab.items() if legacy_token(b) == lp.tokens[-1])
    gen[-1] = gen_id
    rows = oss4_log_softmax(oss4, model, gen, s.tmp)
    assert lp.tokens == [legacy_token(vocab[i]) for i in gen], lp.tokens
    assert lp.tokens[prompt.index(broken)].startswith("bytes:\\x"), lp.tokens
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    for i in range(1, len(gen)):
        want = rows[i - 1][gen[i]]
        assert abs(lp.token_logprobs[i] - want) < 1e-4, (i, lp.token_logprobs[i], want)
        order = sorted(range(len(rows[i - 1])), key=lambda j: -rows[i - 1][j])
        if rows[i - 1][order[4]] - rows[i - 1][order[5]] > 1e-4:  # the top 5 is well defined
            want_top = {legacy_token(vocab[j]): rows[i - 1][j] for j in order[:5]}
            got = lp.top_logprobs[i]
            assert set(got) == set(want_top), (i, got, want_top)
            assert all(abs(got[k] - want_top[k]) < 1e-4 for k in got), (i, got, want_top)
    # text_offset: characters of the text before each token
    text = b"".join(vocab[i] for i in gen).decode("utf-8", errors="replace")
    assert ch.text == text or ch.text.startswith(b"".join(vocab[i] for i in prompt).decode("utf-8", errors="replace")), ch.text
    off, at = [], 0
    for i in gen:
        off.append(at)
        at += sum(1 for b in vocab[i] if b & 0xC0 != 0x80)
    assert lp.text_offset == off, (lp.text_offset, off)

    # max_tokens 0: pure scoring of the prompt, the same numbers
    z = c.completions.create(model="tiny", prompt=prompt, max_tokens=0, echo=True, logprobs=1, temperature=0)
    assert z.usage.completion_tokens == 0 and z.choices[0].finish_reason == "length", z
    assert z.choices[0].logprobs.tokens == lp.tokens[:-1]
    assert z.choices[0].logprobs.token_logprobs == lp.token_logprobs[:-1]
    # the lm-evaluation-harness request shape: a batch of one token list
    st, data = s.raw("POST", "/v1/completions", json.dumps({"model": "tiny", "prompt": [prompt], "max_tokens": 1, "echo": True,
                                                              "logprobs": 1, "temperature": 0}), {"Content-Type": "application/json"})
    assert st == 200, data
    assert json.loads(data)["choices"][0]["logprobs"]["token_logprobs"] == lp.token_logprobs

    # without echo: only the completion, offsets after the prompt; streamed chunks carry the same numbers
    p = c.completions.create(model="tiny", prompt="The capital of France is", max_tokens=6, logprobs=2, temperature=0)
    plp = p.choices[0].logprobs
    assert len(plp.tokens) == p.usage.completion_tokens == len(plp.token_logprobs) == len(plp.top_logprobs)
    assert "".join(plp.tokens) == p.choices[0].text or any(t.startswith("bytes:") for t in plp.tokens)
    assert plp.text_offset[0] == len("The capital of France is"), plp.text_offset
    for t, v, top in zip(plp.tokens, plp.token_logprobs, plp.top_logprobs):
        assert v == max(top.values()), (t, v, top)
    toks, vals = [], []
    for chunk in c.completions.create(model="tiny", prompt="The capital of France is", max_tokens=6, logprobs=2, temperature=0, stream=True):
        if chunk.choices and chunk.choices[0].logprobs:
            toks += chunk.choices[0].logprobs.tokens
            vals += chunk.choices[0].logprobs.token_logprobs
    # (the second request reuses the first's cached prompt, evaluated in other chunks: equal to float rounding)
    assert toks == plp.tokens and all(abs(a - b) < 1e-4 for a, b in zip(vals, plp.token_logprobs)), (toks, vals, plp.token_logprobs)
    # errors
    for body, param in [({"prompt": "x", "max_tokens": 0}, "max_tokens"), ({"prompt": "x", "logprobs": 21}, "logprobs"),
                        ({"prompt": "x", "logprobs": -1}, "logprobs"), ({"prompt": [[1, 2], [3]]}, "prompt"), ({"prompt": "x", "echo": 1}, "echo")]:
        st, data = s.raw("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
        assert st == 400 and json.loads(data)["error"]["param"] == param, (body, st, data)


def test_chat_logprobs_real(s):
    c = s.client()
    r = chat_text(c, "Tell me a story.", max_tokens=8, logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert content, r
    assert b"".join(bytes(t.bytes) for t in content).decode("utf-8", errors="replace") == r.choices[0].message.content
    for t in content:  # greedy: each token is its position's most likely
        assert len(t.top_logprobs) == 3 and t.top_logprobs[0].logprob == t.logprob, t
        assert t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob >= t.top_logprobs[2].logprob
    streamed = []
    for ch in c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Tell me a story."}], temperature=0, max_tokens=8,
                                        logprobs=True, top_logprobs=3, stream=True):
        if ch.choices and ch.choices[0].logprobs:
            streamed += ch.choices[0].logprobs.content
    assert [t.token for t in streamed] == [t.token for t in content], (streamed, content)
    assert all(abs(a.logprob - b.logprob) < 1e-4 for a, b in zip(streamed, content))  # prefix reuse: other chunks
    assert chat_text(c, "hi", max_tokens=2).choices[0].logprobs is None
    st, data = s.raw("POST", "/v1/chat/completions", json.dumps({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}),
                     {"Content-Type": "application/json"})
    assert st == 400 and json.loads(data)["error"]["param"] == "top_logprobs", data


def test_chat_logprobs_scripted(s):
    c = s.client()
    r = c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Please greet me."}], logprobs=True, top_logprobs=2)
    m = r.choices[0].message
    assert m.content == "Hello! How can I help?" and m.reasoning_content == "I should greet.", m
    content = r.choices[0].logprobs.content
    # the final message's text only: no reasoning, no header, no special token
    assert b"".join(bytes(t.bytes) for t in content).decode() == "Hello! How can I help?", [t.token for t in content]
    assert all(t.logprob <= 0 and len(t.top_logprobs) == 2 for t in content)
    streamed = []
    for ch in c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Please greet me."}], logprobs=True,
                                        top_logprobs=2, stream=True):
        if ch.choices and ch.choices[0].logprobs:
            streamed += ch.choices[0].logprobs.content
    assert [t.token for t in streamed] == [t.token for t in content], [t.token for t in streamed]


def test_responses_real(s):
    c = s.client()
    r = c.responses.create(model="tiny", input="Say something.", max_output_tokens=10, temperature=0)
    assert r.object == "response" and r.status in ("completed", "incomplete"), r.status
    assert r.usage.output_tokens <= 10
    events = list(c.responses.create(model="tiny", input="Say something.", max_output_tokens=10, temperature=0, stream=True))
    assert events[0].type == "response.created" and events[-1].type in ("response.completed", "response.incomplete"), events[-1].type
    final = events[-1].response
    assert final.output_text == r.output_text, (final.output_text, r.output_text)


def test_parallel_equals_sequential(s):
    c = s.client()
    prompts = [f"Request number {i}: count to {i + 3}." for i in range(16)]

    def one(p, stream):
        if not stream:
            r = c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": p}], temperature=0, max_tokens=N_PARALLEL_TOKENS)
            return (r.choices[0].message.content or "", r.choices[0].message.reasoning_content if hasattr(r.choices[0].message, "reasoning_content") else None)
        content, reasoning = "", ""
        for ch in c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": p}], temperature=0, max_tokens=N_PARALLEL_TOKENS,
                                            stream=True):
            for c0 in ch.choices:
                content += c0.delta.content or ""
                reasoning += getattr(c0.delta, "reasoning_content", None) or ""
        return (content, reasoning or None)

    sequential = [one(p, False) for p in prompts]
    steps_before = s.metrics()["oss4_decode_steps_total"]
    with cf.ThreadPoolExecutor(16) as ex:
        parallel = list(ex.map(lambda p: one(p, True), prompts))
    steps = s.metrics()["oss4_decode_steps_total"] - steps_before
    assert parallel == sequential, [(i, a, b) for i, (a, b) in enumerate(zip(parallel, sequential)) if a != b]
    # 16 streams of N tokens in far fewer than 16 x N steps: they were batched
    assert steps < 16 * N_PARALLEL_TOKENS / 2, steps
    print(f"  16 parallel greedy streams == 16 sequential requests ({int(steps)} decode steps for the parallel run)")


def wait_cancelled(s, before, t0, what, limit_s):
    """waits until no sequence runs and one more was cancelled than in `before`; returns those metrics"""
    while True:
        m = s.metrics()
        if m["oss4_running_sequences"] == 0 and m["oss4_sequences_cancelled_total"] > before["oss4_sequences_cancelled_total"]:
            print(f"  {what}, slot and KV freed in {time.time() - t0:.2f} s")
            return m
        assert time.time() - t0 < limit_s, f"{what}, but its sequence still runs: {m}"
        time.sleep(0.05)


def test_cancel_frees_slot(s):
    c = s.client()
    # chat: the random model rarely closes a harmony header, so only the first chunk arrives before the client leaves;
    # completions: text streams, the client leaves after a few chunks
    for kind in ("chat", "completions"):
        before = s.metrics()
        if kind == "chat":
            stream = c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Write a very long essay."}], max_tokens=3000,
                                               stream=True, temperature=0)
            n_read = 1
        else:
            stream = c.completions.create(model="tiny", prompt="Write a very long essay.", max_tokens=3000, stream=True, temperature=0)
            n_read = 4
        n = 0
        for _ in stream:
            n += 1
            if n == n_read:
                break
        t0 = time.time()
        stream.close()
        wait_cancelled(s, before, t0, f"{kind}: client left mid-stream", 20)


def test_nonstream_disconnect_frees_slot(s):
    """a plain (non-streamed) request whose client leaves is cancelled at once: the server writes leading whitespace
    while it generates, and the failed write cancels the sequence"""
    import socket
    for path, body in (("/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": "Write a very long essay."}], "max_tokens": 3000, "temperature": 0}),
                       ("/v1/completions", {"model": "tiny", "prompt": "Write a very long essay.", "max_tokens": 3000, "temperature": 0})):
        before = s.metrics()
        data = json.dumps(body).encode()
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=30)
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
        deadline = time.time() + 30
        while True:  # running and generating (the status line came: 200, the body is whitespace so far)
            m = s.metrics()
            if m["oss4_running_sequences"] >= 1 and m["oss4_decode_steps_total"] >= before["oss4_decode_steps_total"] + 3:
                break
            assert time.time() < deadline, f"the request never ran: {m}"
            time.sleep(0.05)
        head = sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 200"), head[:200]
        t0 = time.time()
        sock.close()
        # 3000 tokens take minutes here: only cancellation ends it this soon
        m = wait_cancelled(s, before, t0, f"{path}: non-streamed client left", 5)
        # its K/V is freed, not parked (it may have started from a parked cache, which goes with it)
        assert m["oss4_kv_bytes_used"] <= before["oss4_kv_bytes_used"], (m, before)


def test_nonstream_leading_whitespace_parses(s):
    """a plain reply long enough to get keep-alive spaces before its JSON: raw JSON parsers and the client take it"""
    # 300 tokens take seconds here (a space goes out every 0.25 s)
    body = json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "Count slowly."}], "max_tokens": 300, "temperature": 0})
    st, data = s.raw("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
    assert st == 200, data
    n_ws = len(data) - len(data.lstrip())
    assert n_ws > 0 and set(data[:n_ws]) == {ord(" ")}, data[:80]
    raw = json.loads(data)
    r = s.client().chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Count slowly."}], max_tokens=300, temperature=0)
    assert r.choices[0].message.content == raw["choices"][0]["message"]["content"] and r.usage.completion_tokens == raw["usage"]["completion_tokens"], (r, raw)
    print(f"  a {raw['usage']['completion_tokens']}-token plain reply came after {n_ws} bytes of leading whitespace; the client parsed it")


def test_tool_choice(s):
    """the random model never calls a tool by itself; tool_choice forces the call"""
    c = s.client()
    msgs = [{"role": "user", "content": "What is the weather in Paris?"}]
    tools = TOOLS + [{"type": "function", "function": {"name": "get_time", "description": "Current time in a city",
                                                       "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    r = c.chat.completions.create(model="tiny", messages=msgs, tools=tools, tool_choice="none", max_tokens=16, temperature=0)
    assert not r.choices[0].message.tool_calls and r.choices[0].finish_reason in ("length", "stop"), r
    r = c.chat.completions.create(model="tiny", messages=msgs, tools=tools, max_tokens=16, temperature=0)
    assert not r.choices[0].message.tool_calls, r  # auto: the random model does not call
    for name in ("get_time", "get_weather"):
        r = c.chat.completions.create(model="tiny", messages=msgs, tools=tools, max_tokens=16, temperature=0,
                                      tool_choice={"type": "function", "function": {"name": name}})
        ch = r.choices[0]
        assert ch.finish_reason == "tool_calls", ch
        assert [t.function.name for t in ch.message.tool_calls] == [name], ch.message
        assert ch.message.tool_calls[0].id.startswith("call_") and ch.message.tool_calls[0].type == "function"
    for seed in (1, 2, 3):
        r = c.chat.completions.create(model="tiny", messages=msgs, tools=tools, max_tokens=16, temperature=1.0, seed=seed, tool_choice="required")
        ch = r.choices[0]
        assert ch.finish_reason == "tool_calls" and len(ch.message.tool_calls) == 1, ch
        assert ch.message.tool_calls[0].function.name in ("get_weather", "get_time"), ch.message
    # streamed: the forced call arrives as tool_calls deltas
    names, finish = "", None
    for chunk in c.chat.completions.create(model="tiny", messages=msgs, tools=tools, max_tokens=16, temperature=0, stream=True,
                                           tool_choice={"type": "function", "function": {"name": "get_time"}}):
        for c0 in chunk.choices:
            for tc in c0.delta.tool_calls or []:
                names += (tc.function.name or "") if tc.function else ""
            finish = c0.finish_reason or finish
    assert names == "get_time" and finish == "tool_calls", (names, finish)
    # responses: a function_call item
    rtools = [{"type": "function", "name": t["function"]["name"], "parameters": t["function"]["parameters"]} for t in tools]
    rr = c.responses.create(model="tiny", input="What is the weather in Paris?", tools=rtools, max_output_tokens=16, temperature=0,
                            tool_choice={"type": "function", "name": "get_weather"})
    fc = [o for o in rr.output if o.type == "function_call"]
    assert len(fc) == 1 and fc[0].name == "get_weather", rr.output
    # a function that is not offered
    try:
        c.chat.completions.create(model="tiny", messages=msgs, tools=tools, max_tokens=4, tool_choice={"type": "function", "function": {"name": "nope"}})
        raise AssertionError("unknown tool_choice accepted")
    except openai.BadRequestError as e:
        assert e.status_code == 400 and e.param == "tool_choice", e


def test_errors(s):
    def err(st, data, status, param=None):
        assert st == status, (st, data)
        e = json.loads(data)["error"]
        assert isinstance(e["message"], str) and e["message"] and "type" in e and "code" in e and "param" in e, e
        if param is not None:
            assert e["param"] == param, e

    post = lambda path, body: s.raw("POST", path, body=body, headers={"Content-Type": "application/json"})
    err(*post("/v1/chat/completions", "{not json"), 400)
    err(*post("/v1/chat/completions", "[1,2]"), 400)
    err(*post("/v1/chat/completions", json.dumps({"model": "tiny"})), 400, "messages")
    err(*post("/v1/chat/completions", json.dumps({"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"})), 400, "temperature")
    err(*post("/v1/chat/completions", json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 100000})), 400, "max_tokens")
    err(*post("/v1/completions", json.dumps({"prompt": "hi " * 5000})), 400, "prompt")
    err(*post("/v1/responses", json.dumps({"input": 5})), 400, "input")
    err(*post("/v1/chat/completions", '{"messages": ' + "[" * 100000 + "]" * 100000 + "}"), 400)
    err(*s.raw("GET", "/v1/nothing"), 404)
    # unknown fields are ignored
    st, data = post("/v1/chat/completions", json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "frobnicate": [1]}))
    assert st == 200, data
    # the openai client maps them to its exceptions
    try:
        s.client().chat.completions.create(model="tiny", messages=[{"role": "user", "content": "x"}], max_tokens=10 ** 6)
        raise AssertionError("context overflow accepted")
    except openai.BadRequestError as e:
        assert e.code == "context_length_exceeded", e
    st, _ = s.raw("GET", "/health")
    assert st == 200, "the server survived"


def test_load(s, n_requests):
    """n_requests, 16 at a time, alternating chat and completions (whose text streams from the first token, so its
    time to first token is visible even on a random model, whose chat replies rarely leave the harmony header)."""
    c = s.client()
    lat, ttft, errors = [], [], []

    def one(i):
        t0 = time.time()
        first = None
        try:
            if i % 2 == 0:
                stream = c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": f"Load request {i}."}], temperature=0,
                                                   max_tokens=4, stream=True)
            else:
                stream = c.completions.create(model="tiny", prompt=f"<|start|>user<|message|>Load request {i}.<|end|><|start|>assistant",
                                              temperature=0, max_tokens=4, stream=True)
            for ch in stream:
                if first is None and i % 2 == 1 and ch.choices and ch.choices[0].text:
                    first = time.time() - t0
        except Exception as e:  # noqa: BLE001 - every failure counts
            errors.append(repr(e))
        lat.append(time.time() - t0)
        if first is not None:
            ttft.append(first)

    t0 = time.time()
    with cf.ThreadPoolExecutor(16) as ex:
        list(ex.map(one, range(n_requests)))
    wall = time.time() - t0
    assert not errors, errors[:5]
    assert len(lat) == n_requests and ttft, (len(lat), len(ttft))
    pct = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(p / 100 * len(xs)))]
    m = s.metrics()
    print(f"  load: {n_requests} requests (chat and completions, 4 tokens each), 16 at a time, {wall:.1f} s ({n_requests / wall:.1f} req/s), "
          f"0 errors; latency p50 {pct(lat, 50) * 1000:.0f} ms, p90 {pct(lat, 90) * 1000:.0f} ms, p99 {pct(lat, 99) * 1000:.0f} ms; "
          f"TTFT (completions) p50 {pct(ttft, 50) * 1000:.0f} ms, p99 {pct(ttft, 99) * 1000:.0f} ms; decode {m['oss4_decode_tokens_per_second']:.0f} tok/s")


def ttft_once(c, system, user):
    t0 = time.time()
    # closed on leaving: a stream left to the garbage collector can be finalized inside httpcore's connection-pool lock
    # when a later request allocates, and its close then waits on that same lock forever (this hung CI once)
    with c.chat.completions.create(model="tiny", messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
                                   temperature=0, max_tokens=1, stream=True, stream_options={"include_usage": True}) as stream:
        for ch in stream:
            if ch.usage:
                return time.time() - t0, ch.usage.prompt_tokens, ch.usage.prompt_tokens_details.cached_tokens
    raise AssertionError("no usage chunk")


def test_ttft_prefix_reuse(s):
    c = s.client()
    # a system prompt no earlier request had: the cold request reuses only harmony's system message
    system = f"Session {time.time()}. " + " ".join(f"Rule {i}: answer politely and cite the handbook section {i}." for i in range(120))
    calls0 = s.metrics()["oss4_prefill_calls_total"]
    cold, n_prompt, cached0 = ttft_once(c, system, "First question?")
    # the long prompt was prefilled in pieces of --prefill-chunk (256) tokens, one per scheduler step
    calls = s.metrics()["oss4_prefill_calls_total"] - calls0
    assert calls >= (n_prompt - cached0) // 256, (calls, n_prompt, cached0)
    warm, n_prompt2, cached = ttft_once(c, system, "Second question?")
    assert cached0 < 100, cached0
    assert cached >= n_prompt - 16, (cached, n_prompt)  # all but the user turn
    print(f"  TTFT with a {n_prompt}-token prompt: {cold * 1000:.0f} ms with {cached0} tokens reused, {warm * 1000:.0f} ms with {cached} reused")


# ---------------- scripted replies ----------------

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


def test_reasoning_split(s):
    c = s.client()
    r = c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Please greet me."}])
    m = r.choices[0].message
    assert m.content == "Hello! How can I help?", m
    assert m.reasoning_content == "I should greet.", m
    assert r.choices[0].finish_reason == "stop"
    content, reasoning = "", ""
    for ch in c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Please greet me."}], stream=True):
        for c0 in ch.choices:
            content += c0.delta.content or ""
            reasoning += getattr(c0.delta, "reasoning_content", None) or ""
    assert (content, reasoning) == ("Hello! How can I help?", "I should greet."), (content, reasoning)
    # a stop string cuts the content
    r = c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Please greet me."}], stop=["How"])
    assert r.choices[0].message.content == "Hello! " and r.choices[0].finish_reason == "stop", r


def test_tool_round_trip(s):
    c = s.client()
    msgs = [{"role": "system", "content": "You are a weather bot."}, {"role": "user", "content": "What is the weather in Paris?"}]
    r = c.chat.completions.create(model="tiny", messages=msgs, tools=TOOLS)
    ch = r.choices[0]
    assert ch.finish_reason == "tool_calls", ch
    call = ch.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather", call
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert ch.message.reasoning_content == "I need the weather tool."
    # streamed: the same call, assembled from deltas
    calls = {}
    for chunk in c.chat.completions.create(model="tiny", messages=msgs, tools=TOOLS, stream=True):
        for c0 in chunk.choices:
            for tc in c0.delta.tool_calls or []:
                d = calls.setdefault(tc.index, {"name": "", "args": "", "id": None})
                d["id"] = tc.id or d["id"]
                d["name"] += (tc.function.name or "") if tc.function else ""
                d["args"] += (tc.function.arguments or "") if tc.function else ""
            if c0.finish_reason:
                assert c0.finish_reason == "tool_calls"
    assert calls[0]["name"] == "get_weather" and json.loads(calls[0]["args"]) == {"city": "Paris"}, calls
    msgs.append(ch.message.model_dump(exclude_none=True))
    msgs.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 24 C"})
    r2 = c.chat.completions.create(model="tiny", messages=msgs, tools=TOOLS)
    assert r2.choices[0].message.content == "It is sunny in Paris.", r2
    assert r2.choices[0].finish_reason == "stop"
    # the earlier turns came from the prefix cache
    assert r2.usage.prompt_tokens_details.cached_tokens >= r.usage.prompt_tokens, (r2.usage, r.usage)


def test_responses_scripted(s):
    c = s.client()
    r = c.responses.create(model="tiny", input="Please greet me.")
    kinds = [o.type for o in r.output]
    assert kinds == ["reasoning", "message"], kinds
    assert r.output[0].content[0].text == "I should greet."
    assert r.output_text == "Hello! How can I help?"
    tools = [{"type": "function", "name": "get_weather", "description": "weather", "parameters": TOOLS[0]["function"]["parameters"]}]
    r = c.responses.create(model="tiny", input="What is the weather in Paris?", tools=tools)
    fc = [o for o in r.output if o.type == "function_call"]
    assert len(fc) == 1 and fc[0].name == "get_weather" and json.loads(fc[0].arguments) == {"city": "Paris"}, r.output
    r2 = c.responses.create(model="tiny", tools=tools, input=[
        {"role": "user", "content": "What is the weather in Paris?"},
        {"type": "function_call", "call_id": fc[0].call_id, "name": "get_weather", "arguments": fc[0].arguments},
        {"type": "function_call_output", "call_id": fc[0].call_id, "output": "sunny"}])
    assert r2.output_text == "It is sunny in Paris.", r2.output
    text, types = "", []
    for ev in c.responses.create(model="tiny", input="Please greet me.", stream=True):
        types.append(ev.type)
        if ev.type == "response.output_text.delta":
            text += ev.delta
    assert text == "Hello! How can I help?", text
    for t in ("response.created", "response.output_item.added", "response.reasoning_text.delta", "response.output_text.done", "response.completed"):
        assert t in types, (t, types)


def test_turn_two_reuses_turn_one(s):
    c = s.client()
    msgs = [{"role": "user", "content": "Please greet me."}]
    r1 = c.chat.completions.create(model="tiny", messages=msgs)
    # harmony drops turn 1's analysis from turn 2's prompt: everything up to the first assistant reply is reused
    # (turn 1's prompt, which ends in <|start|>assistant, and the <|channel|> token the reply and its rendering share)
    msgs += [{"role": "assistant", "content": r1.choices[0].message.content}, {"role": "user", "content": "And again?"}]
    r2 = c.chat.completions.create(model="tiny", messages=msgs)
    assert r2.usage.prompt_tokens_details.cached_tokens == r1.usage.prompt_tokens + 1, (r2.usage, r1.usage)


# ---------------- limits ----------------

def test_auth_body_overload(s):
    try:
        s.client(key="wrong").models.list()
        raise AssertionError("bad key accepted")
    except openai.AuthenticationError as e:
        assert e.status_code == 401 and e.code == "invalid_api_key", e
    assert s.client(key="sekrit").models.list().data
    st, data = s.raw("POST", "/v1/chat/completions", body="x" * (2 << 20), headers={"Authorization": "Bearer sekrit", "Content-Type": "application/json"})
    assert st == 413 and json.loads(data)["error"]["code"] == "request_too_large", (st, data[:200])
    # one slot, a queue of one: the third concurrent request is refused with 429
    c = s.client(key="sekrit")
    long = lambda: c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "long"}], max_tokens=3000, stream=True, temperature=1.0)
    a = long()
    next(iter(a))
    b_box = []
    threading.Thread(target=lambda: b_box.append(long()), daemon=True).start()
    deadline = time.time() + 20
    while s.metrics("sekrit")["oss4_queue_length"] < 1:
        assert time.time() < deadline, "the second request never queued"
        time.sleep(0.05)
    try:
        c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "x"}], max_tokens=2)
        raise AssertionError("overload accepted")
    except openai.RateLimitError as e:
        assert e.status_code == 429
    a.close()
    while not b_box:
        assert time.time() < deadline, "the queued request never started"
        time.sleep(0.05)
    b_box[0].close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--oss4", required=True)
    ap.add_argument("--load-requests", type=int, default=200)
    ap.add_argument("--only", default="")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    global N_PARALLEL_TOKENS
    if a.quick:
        N_PARALLEL_TOKENS = 6
    tmp = tempfile.mkdtemp(prefix="oss4-serve-")
    servers = []
    failed = []
    try:
        model = os.path.join(tmp, "tiny")
        subprocess.run([a.oss4, "synth", "--config", "tiny", "--out", model], check=True, capture_output=True)
        script = os.path.join(tmp, "script.json")
        with open(script, "w") as f:
            json.dump(SCRIPT, f)
        real = Server(a.oss4, model, "--ctx", "4096", "--max-seqs", "16")
        real.tmp, real.oss4, real.model = tmp, a.oss4, model  # for test_completions_logprobs (oss4 logits on the same model)
        scripted = Server(a.oss4, model, "--script", script, "--ctx", "2048")
        limited = Server(a.oss4, model, "--api-key", "sekrit", "--max-seqs", "1", "--max-queue", "1", "--max-body", "1")
        servers = [real, scripted, limited]
        tests = [
            (test_models_health, real), (test_chat_plain_and_streamed, real), (test_completions, real), (test_responses_real, real),
            (test_errors, real), (test_parallel_equals_sequential, real), (test_cancel_frees_slot, real), (test_nonstream_disconnect_frees_slot, real),
            (test_nonstream_leading_whitespace_parses, real), (test_tool_choice, real), (test_ttft_prefix_reuse, real),
            (test_completions_logprobs, real), (test_chat_logprobs_real, real), (test_chat_logprobs_scripted, scripted),
            (test_reasoning_split, scripted), (test_tool_round_trip, scripted), (test_responses_scripted, scripted),
            (test_turn_two_reuses_turn_one, scripted), (test_auth_body_overload, limited),
            (lambda s: test_load(s, a.load_requests), real),
        ]
        for fn, srv in tests:
            name = getattr(fn, "__name__", "test_load")
            if name == "<lambda>":
                name = "test_load"
            if a.only and a.only not in name:
                continue
            t0 = time.time()
            try:
                fn(srv)
                print(f"ok   {name} ({time.time() - t0:.1f} s)", flush=True)
            except Exception:  # noqa: BLE001 - report every test
                failed.append(name)
                print(f"FAIL {name}\n{traceback.format_exc()}", flush=True)
        for srv in servers:
            srv.stop()
        servers = []
    finally:
        for srv in servers:
            srv.proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    if failed:
        print("failed: " + ", ".join(failed))
        return 1
    print("all server tests passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
