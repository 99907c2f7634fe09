#!/usr/bin/env python3
"""Soak test for `oss4 serve` (issue 19), standard library only, loopback only.

Starts `oss4 serve` on a model (the tiny synthetic one when --model is not given) and, for --duration seconds, runs
--concurrency clients that each pick a case at random:
  chat / chat_stream / completion / completion_stream / response / response_stream  -> 200 and a valid body
  disconnect     a streamed chat closed after its first event                      -> 200 (the server cancels it)
  malformed      a body that is not JSON                                           -> 400
  oversized      a body larger than --max-body                                     -> 413
  wrong_key      a wrong API key                                                   -> 401
  slow_sender    headers, then the body in 4 pieces 0.25 s apart (from 127.0.0.3) -> 200
and every 10 s a burst of max_seqs + max_queue + 8 requests at once (from 127.0.0.2) -> 200 or 429, at least one 429.
A generation request may also get 429 while a burst fills the queue: counted apart, not an error. Any other status,
an invalid body, a dropped connection or a server exit is counted as unexpected.

At the end it waits for the engine to go idle and checks that the engine's K/V bytes are those its parked sequences
hold, that RSS at the end is within --rss-tolerance of RSS after the warm-up, and that SIGTERM exits 0. It prints a
markdown table (counts and p50/p99 latency per case) and exits 1 on any failure.

Usage: soak.py --oss4 BIN [--model DIR] [--duration 60] [--concurrency 8] [--json OUT]
"""
import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

KEY = "soak-key"
MAX_SEQS, MAX_QUEUE, MAX_BODY_MIB = 4, 16, 1
PROMPTS = ["Tell me about the sea.", "Count to five.", "What is a prime number?", "Write a haiku about rain.",
           "Explain recursion briefly.", "Name three colors."]
WEIGHTS = {"chat": 14, "chat_stream": 14, "completion": 8, "completion_stream": 8, "response": 8, "response_stream": 8,
           "disconnect": 8, "malformed": 6, "oversized": 2, "wrong_key": 6, "slow_sender": 4}


class Bad(Exception):
    pass


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Soak:
    def __init__(self, port, pid, seed):
        self.port, self.pid = port, pid
        self.lock = threading.Lock()
        self.counts = {}      # (case, outcome) -> n
        self.lat = {}         # case -> [seconds] of answers as expected
        self.unexpected = []  # first few descriptions
        self.n_unexpected = 0
        self.rng = random.Random(seed)

    def record(self, case, outcome, dt=None):
        with self.lock:
            self.counts[(case, outcome)] = self.counts.get((case, outcome), 0) + 1
            if dt is not None:
                self.lat.setdefault(case, []).append(dt)

    def fail(self, case, what):
        with self.lock:
            self.n_unexpected += 1
            self.counts[(case, "UNEXPECTED")] = self.counts.get((case, "UNEXPECTED"), 0) + 1
            if len(self.unexpected) < 20:
                self.unexpected.append(f"{case}: {what}")

    # ---- HTTP ----
    def conn(self, src="127.0.0.1", timeout=120):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout, source_address=(src, 0))

    def post(self, path, body, key=KEY, src="127.0.0.1"):
        c = self.conn(src)
        try:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            c.request("POST", path, body=data, headers={"Content-Type": "application/json", "Authorization": "Bearer " + key})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def stream(self, path, body, stop_after=None):
        """the data events of an SSE response (and their event names); stop_after: close after that many events."""
        c = self.conn()
        try:
            c.request("POST", path, body=json.dumps(body).encode(), headers={"Content-Type": "application/json", "Authorization": "Bearer " + KEY})
            r = c.getresponse()
            if r.status != 200:
                return r.status, r.read(), []
            events, name = [], None
            while True:
                line = r.readline()
                if not line:
                    break
                line = line.rstrip(b"\r\n")
                if line.startswith(b"event: "):
                    name = line[7:].decode()
                elif line.startswith(b"data: "):
                    events.append((name, line[6:]))
                    name = None
                    if stop_after is not None and len(events) >= stop_after:
                        break
            return 200, b"", events
        finally:
            c.close()

    # ---- checks ----
    @staticmethod
    def error_body(data, status):
        j = json.loads(data)
        if not isinstance(j.get("error"), dict) or not isinstance(j["error"].get("message"), str):
            raise Bad(f"{status} without an OpenAI error body: {data[:200]!r}")
        return j["error"]

    def expect_gen(self, case, st, data, check):
        if st == 429:
            e = self.error_body(data, st)
            if e.get("code") != "rate_limit_exceeded":
                raise Bad(f"429 with code {e.get('code')}")
            return "429"
        if st != 200:
            raise Bad(f"status {st}: {data[:200]!r}")
        check(json.loads(data))
        return "200"

    @staticmethod
    def check_chat(j, max_tokens):
        ch = j["choices"][0]
        if j.get("object") != "chat.completion" or ch["message"]["role"] != "assistant":
            raise Bad("not a chat.completion")
        if ch["finish_reason"] not in ("stop", "length", "tool_calls") or not 0 <= j["usage"]["completion_tokens"] <= max_tokens:
            raise Bad(f"finish {ch['finish_reason']}, usage {j['usage']}")

    @staticmethod
    def check_completion(j, max_tokens):
        if j.get("object") != "text_completion" or not isinstance(j["choices"][0]["text"], str):
            raise Bad("not a text_completion")
        if j["choices"][0]["finish_reason"] not in ("stop", "length") or j["usage"]["completion_tokens"] > max_tokens:
            raise Bad("finish or usage")

    @staticmethod
    def check_response(j):
        if j.get("object") != "response" or j.get("status") not in ("completed", "incomplete") or not isinstance(j.get("output"), list):
            raise Bad(f"not a finished response: {str(j)[:200]}")

    @staticmethod
    def check_sse_choices(events, obj):
        if not events or events[-1][1] != b"[DONE]":
            raise Bad("stream without [DONE]")
        finish = None
        for _, d in events[:-1]:
            j = json.loads(d)
            if "error" in j:
                raise Bad(f"error event: {j['error']}")
            if j.get("object") != obj:
                raise Bad(f"chunk object {j.get('object')}")
            for c in j.get("choices", []):
                finish = c.get("finish_reason") or finish
        if finish is None:
            raise Bad("stream without a finish_reason")

    @staticmethod
    def check_sse_response(events):
        if not events:
            raise Bad("empty stream")
        last = json.loads(events[-1][1])
        if last.get("type") not in ("response.completed", "response.incomplete"):
            raise Bad(f"last event {last.get('type')}")
        Soak.check_response(last["response"])

    # ---- cases ----
    def run_case(self, case):
        rng = self.rng
        n = rng.randint(1, 16)
        msgs = [{"role": "user", "content": rng.choice(PROMPTS)}]
        t0 = time.perf_counter()
        if case == "chat":
            st, data = self.post("/v1/chat/completions", {"model": "m", "messages": msgs, "max_tokens": n})
            out = self.expect_gen(case, st, data, lambda j: self.check_chat(j, n))
        elif case == "completion":
            st, data = self.post("/v1/completions", {"model": "m", "prompt": msgs[0]["content"], "max_tokens": n})
            out = self.expect_gen(case, st, data, lambda j: self.check_completion(j, n))
        elif case == "response":
            st, data = self.post("/v1/responses", {"model": "m", "input": msgs[0]["content"], "max_output_tokens": n})
            out = self.expect_gen(case, st, data, self.check_response)
        elif case in ("chat_stream", "completion_stream", "response_stream"):
            path, body = {
                "chat_stream": ("/v1/chat/completions", {"model": "m", "messages": msgs, "max_tokens": n, "stream": True}),
                "completion_stream": ("/v1/completions", {"model": "m", "prompt": msgs[0]["content"], "max_tokens": n, "stream": True}),
                "response_stream": ("/v1/responses", {"model": "m", "input": msgs[0]["content"], "max_output_tokens": n, "stream": True}),
            }[case]
            st, data, events = self.stream(path, body)
            if st != 200:
                out = self.expect_gen(case, st, data, lambda j: None)
            else:
                if case == "chat_stream":
                    self.check_sse_choices(events, "chat.completion.chunk")
                elif case == "completion_stream":
                    self.check_sse_choices(events, "text_completion")
                else:
                    self.check_sse_response(events)
                out = "200"
        elif case == "disconnect":
            st, data, events = self.stream("/v1/chat/completions", {"model": "m", "messages": msgs, "max_tokens": 400, "stream": True}, stop_after=1)
            out = self.expect_gen(case, st, data, lambda j: None) if st != 200 else "200"
            if st == 200 and not events:
                raise Bad("no first event")
        elif case == "malformed":
            st, data = self.post("/v1/chat/completions", b'{"model": "m", "messages": [')
            if st != 400:
                raise Bad(f"status {st}")
            self.error_body(data, st)
            out = "400"
        elif case == "oversized":
            big = b'{"model": "m", "prompt": "' + b"x" * (MAX_BODY_MIB * 1024 * 1024 + 1000) + b'"}'
            st, data = self.post("/v1/completions", big)
            if st != 413:
                raise Bad(f"status {st}")
            self.error_body(data, st)
            out = "413"
        elif case == "wrong_key":
            st, data = self.post("/v1/chat/completions", {"model": "m", "messages": msgs, "max_tokens": 2}, key="wrong")
            if st != 401:
                raise Bad(f"status {st}")
            self.error_body(data, st)
            out = "401"
        elif case == "slow_sender":
            body = json.dumps({"model": "m", "messages": msgs, "max_tokens": n}).encode()
            s = socket.create_connection(("127.0.0.1", self.port), timeout=60, source_address=("127.0.0.3", 0))
            try:
                s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
                          b"Authorization: Bearer " + KEY.encode() + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n")
                q = (len(body) + 3) // 4
                for i in range(4):
                    time.sleep(0.25)
                    s.sendall(body[i * q:(i + 1) * q])
                # the reply, chunked or not, read by http.client's parser
                r = http.client.HTTPResponse(s)
                r.begin()
                st, payload = r.status, r.read()
            finally:
                s.close()
            out = self.expect_gen(case, st, payload, lambda j: self.check_chat(j, n))
        else:
            raise ValueError(case)
        self.record(case, out, time.perf_counter() - t0 if out in ("200", "400", "401", "413") else None)

    def client(self, end):
        cases, weights = list(WEIGHTS), list(WEIGHTS.values())
        while time.time() < end:
            with self.lock:
                case = self.rng.choices(cases, weights)[0]
            try:
                self.run_case(case)
            except Bad as e:
                self.fail(case, str(e))
            except (OSError, ValueError, KeyError, IndexError, TypeError, http.client.HTTPException) as e:
                self.fail(case, f"{type(e).__name__}: {e}")

    def burst(self):
        n = MAX_SEQS + MAX_QUEUE + 8
        res = []

        def one():
            try:
                st, data = self.post("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "burst"}], "max_tokens": 32},
                                     src="127.0.0.2")
                res.append(self.expect_gen("burst", st, data, lambda j: self.check_chat(j, 32)))
            except Bad as e:
                self.fail("burst", str(e))
            except (OSError, ValueError, KeyError, http.client.HTTPException) as e:
                self.fail("burst", f"{type(e).__name__}: {e}")

        ts = [threading.Thread(target=one) for _ in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        for o in res:
            self.record("burst", o)
        if "429" not in res:
            self.fail("burst", f"{n} requests at once and no 429")

    def metrics(self):
        c = self.conn(timeout=30)
        try:
            c.request("GET", "/metrics", headers={"Authorization": "Bearer " + KEY})
            r = c.getresponse()
            data = r.read().decode()
        finally:
            c.close()
        return {ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1]) for ln in data.splitlines() if ln and not ln.startswith("#")}


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--oss4", required=True)
    ap.add_argument("--model", default="")
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--warmup", type=float, default=0, help="seconds before the reference RSS (default: 10%% of the run, 5..60 s)")
    ap.add_argument("--rss-tolerance", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="oss4-soak-")
    proc = None
    try:
        model = a.model
        if not model:
            model = os.path.join(tmp, "tiny")
            subprocess.run([a.oss4, "synth", "--config", "tiny", "--out", model], check=True, capture_output=True)
        proc = subprocess.Popen([a.oss4, "serve", "-m", model, "--port", "0", "-q", "--api-key", KEY, "--max-seqs", str(MAX_SEQS),
                                 "--max-queue", str(MAX_QUEUE), "--max-body", str(MAX_BODY_MIB), "--ctx", "2048", "--kv-memory", "0.25",
                                 "--request-timeout", "5", "--shutdown-timeout", "5"], stderr=subprocess.PIPE, text=True)
        log, port, ready = [], [None], threading.Event()

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
            print("soak: the server did not start:\n" + "".join(log), file=sys.stderr)
            return 1
        soak = Soak(port[0], proc.pid, a.seed)
        rss_start = rss_kib(proc.pid)
        warmup = a.warmup or min(60.0, max(5.0, a.duration * 0.1))
        t_start = time.time()
        end = t_start + a.duration
        workers = [threading.Thread(target=soak.client, args=(end,)) for _ in range(a.concurrency)]
        for w in workers:
            w.start()
        rss_warm, next_burst, crashed = None, t_start + 5, False
        while time.time() < end:
            time.sleep(0.2)
            if proc.poll() is not None:
                crashed = True
                break
            if rss_warm is None and time.time() >= t_start + warmup:
                rss_warm = rss_kib(proc.pid)
            if time.time() >= next_burst and time.time() < end - 5:
                soak.burst()
                next_burst = time.time() + 10
        for w in workers:
            w.join()
        crashed = crashed or proc.poll() is not None
        result = {"duration_s": a.duration, "concurrency": a.concurrency, "crashes": int(crashed)}
        ok = not crashed
        if not crashed:
            # idle: every sequence has ended; the K/V left is what the parked sequences hold
            idle_end = time.time() + 30
            m = soak.metrics()
            while (m["oss4_running_sequences"] or m["oss4_queue_length"]) and time.time() < idle_end:
                time.sleep(0.2)
                m = soak.metrics()
            rss_end = rss_kib(proc.pid)
            rss_warm = rss_warm or rss_start
            result.update({
                "rss_start_mib": round(rss_start / 1024, 1), "rss_after_warmup_mib": round(rss_warm / 1024, 1), "rss_end_mib": round(rss_end / 1024, 1),
                "rss_change_after_warmup": round(rss_end / rss_warm - 1, 4),
                "kv_bytes_used_end": int(m["oss4_kv_bytes_used"]), "kv_bytes_parked_end": int(m["oss4_kv_bytes_parked"]),
                "parked_sequences_end": int(m["oss4_parked_sequences"]), "running_end": int(m["oss4_running_sequences"]),
                "http_refused_per_client": int(m["oss4_http_refused_per_client_total"]),
                "sequences_cancelled": int(m["oss4_sequences_cancelled_total"]),
            })
            if m["oss4_running_sequences"] or m["oss4_queue_length"]:
                ok = False
                soak.fail("end", "the engine did not go idle")
            if m["oss4_kv_bytes_used"] != m["oss4_kv_bytes_parked"]:
                ok = False
                soak.fail("end", f"K/V bytes {m['oss4_kv_bytes_used']:.0f} != parked {m['oss4_kv_bytes_parked']:.0f}")
            if abs(rss_end / rss_warm - 1) > a.rss_tolerance:
                ok = False
                soak.fail("end", f"RSS {rss_warm} KiB after warm-up, {rss_end} KiB at the end")
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(30)
            except subprocess.TimeoutExpired:
                rc = "hung"
            result["sigterm_exit"] = rc
            if rc != 0:
                ok = False
                soak.fail("end", f"SIGTERM: exit {rc}")
        ok = ok and soak.n_unexpected == 0
        result["unexpected"] = soak.n_unexpected
        result["unexpected_first"] = soak.unexpected
        cases = sorted({c for c, _ in soak.counts})
        rows = []
        all_lat = []
        for c in cases:
            outs = {o: n for (cc, o), n in soak.counts.items() if cc == c}
            lat = soak.lat.get(c, [])
            all_lat += lat
            rows.append((c, sum(outs.values()), ", ".join(f"{o}: {n}" for o, n in sorted(outs.items())),
                         f"{pct(lat, 50) * 1000:.0f}" if lat else "-", f"{pct(lat, 99) * 1000:.0f}" if lat else "-"))
        result["requests"] = sum(r[1] for r in rows)
        result["p50_ms"] = round(pct(all_lat, 50) * 1000, 1) if all_lat else None
        result["p99_ms"] = round(pct(all_lat, 99) * 1000, 1) if all_lat else None
        result["cases"] = {r[0]: {"n": r[1], "outcomes": r[2], "p50_ms": r[3], "p99_ms": r[4]} for r in rows}
        print("| case | requests | outcomes | p50 ms | p99 ms |\n|---|---:|---|---:|---:|")
        for r in rows:
            print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} |")
        print("\n" + " ".join(f"{k}={v}" for k, v in result.items() if k not in ("cases", "unexpected_first")))
        for u in soak.unexpected:
            print("unexpected: " + u)
        if a.json:
            with open(a.json, "w") as f:
                json.dump(result, f, indent=1)
        print("soak: " + ("PASS" if ok else "FAIL"), flush=True)
        return 0 if ok else 1
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
