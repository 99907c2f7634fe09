#!/usr/bin/env python3
"""`oss4 serve` against hostile clients (issue 19), standard library only, loopback only, every loop bounded:
  - 1,000 slow connections from 127.0.0.2 (partial headers / partial bodies): /health from 127.0.0.1 stays fast and a
    chat request completes (tools/slow_clients.py does the work and prints the figures);
  - past --max-conns-per-client an address gets 429 with a JSON body, at once;
  - a request that does not arrive whole within --request-timeout is closed;
  - when idle keep-alive connections hold every worker, they are closed for a new client;
  - SIGTERM: new requests get 503, a running stream ends with a final event and [DONE] within --shutdown-timeout,
    and the process exits 0.

Usage: test_robust.py --oss4 BIN [--model DIR] [--only NAME]
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

from serve_process import ServeProcess

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.join(HERE, "..", "..", "tools")


class Server(ServeProcess):
    def get(self, path, src="127.0.0.1", timeout=30):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout, source_address=(src, 0))
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def metrics(self):
        st, data = self.get("/metrics")
        assert st == 200, st
        return {ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1]) for ln in data.decode().splitlines() if ln and not ln.startswith("#")}



def connect(port, src):
    s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(src, 0))
    return s


def read_all(s, limit_s):
    """what the server sends until it closes the connection (bounded by limit_s)."""
    s.settimeout(limit_s)
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except socket.timeout:
        return out, False
    except ConnectionResetError:
        return out, True
    return out, True


def test_slow_connections(oss4, model):
    srv = Server(oss4, model)
    try:
        r = subprocess.run([sys.executable, os.path.join(TOOLS, "slow_clients.py"), "--port", str(srv.port), "--n", "1000", "--hold", "6", "--json"],
                           capture_output=True, text=True, timeout=300)
        print("     " + r.stdout.strip(), flush=True)
        res = json.loads(r.stdout)
        assert res["connected"] == 1000, res
        assert res["health_failed"] == 0 and res["health_n"] >= 20, res
        # the bound is 100 ms; CI machines run other jobs, so the test allows the median that and every one 1 s
        assert res["health_p50_ms"] < 100 and res["health_max_ms"] < 1000, res
        assert res["chat_ok"], res
        assert res["refused_or_closed_by_server"] >= 1000 - 32, res  # the per-client cap (32 by default) refused the rest
        m = srv.metrics()
        assert m["oss4_http_refused_per_client_total"] >= 1000 - 32, m
    finally:
        srv.stop()


def test_cap_deadline_idle(oss4, model):
    srv = Server(oss4, model, "--max-conns-per-client", "16", "--request-timeout", "2", "--keep-alive", "60")
    try:
        # the cap: 16 silent connections are held, the 17th gets 429 with an OpenAI-shaped body at once
        held = [connect(srv.port, "127.0.0.3") for _ in range(16)]
        time.sleep(0.3)
        extra = connect(srv.port, "127.0.0.3")
        t0 = time.time()
        data, closed = read_all(extra, 5)
        assert closed and time.time() - t0 < 2, (data, closed)
        assert data.startswith(b"HTTP/1.1 429"), data
        body = json.loads(data.split(b"\r\n\r\n", 1)[1])
        assert body["error"]["code"] == "too_many_connections" and "127.0.0.3" in body["error"]["message"], body
        extra.close()
        assert srv.get("/health")[0] == 200  # another address is served
        # the deadline: the held connections sent nothing, so they are closed about 2 s after they connected
        t0 = time.time()
        for s in held:
            _, closed = read_all(s, 10)
            assert closed, "a silent connection outlived --request-timeout"
            s.close()
        assert time.time() - t0 < 6, time.time() - t0
        # trickling a header byte a second does not extend it
        s = connect(srv.port, "127.0.0.3")
        t0 = time.time()
        s.sendall(b"GET /health HTTP/1.1\r\n")
        closed = False
        for _ in range(10):
            try:
                s.sendall(b"X")
            except OSError:
                closed = True
                break
            s.settimeout(1.0)
            try:
                if s.recv(4096) == b"":
                    closed = True
                    break
            except socket.timeout:
                pass
            except OSError:
                closed = True
                break
        s.close()
        assert closed and time.time() - t0 < 5, (closed, time.time() - t0)
        assert srv.metrics()["oss4_http_request_deadline_total"] >= 17

        # idle keep-alive connections on every worker (88 with the default queue; 6 addresses x 16 = 96 idle) are
        # closed for a new client
        idle = []
        for a in range(6):
            for _ in range(16):
                c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10, source_address=(f"127.0.0.{4 + a}", 0))
                c.request("GET", "/health")
                r = c.getresponse()
                assert r.status == 200
                r.read()
                idle.append(c)
        time.sleep(0.3)
        t0 = time.time()
        st, _ = srv.get("/health", timeout=20)
        dt = time.time() - t0
        assert st == 200 and dt < 5, (st, dt)
        assert srv.metrics()["oss4_http_idle_closed_total"] >= 1
        for c in idle:
            c.close()
    finally:
        srv.stop()


def test_sigterm_graceful(oss4, model):
    srv = Server(oss4, model, "--shutdown-timeout", "3")
    try:
        sigterm_during_stream(srv)
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait()


def sigterm_during_stream(srv):
    # a plain completion stops only at the model's eos ids: on the tiny model it runs for its 4,000 tokens
    body = json.dumps({"model": "m", "max_tokens": 4000, "stream": True, "prompt": "Once upon a time"})
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    c.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    assert r.status == 200, (r.status, r.read())
    first = r.readline()
    assert first.startswith(b"data: "), first
    t0 = time.time()
    srv.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    st, data = srv.get("/health")
    assert st == 503 and json.loads(data)["error"]["code"] == "shutting_down", (st, data)
    events = []
    while True:
        line = r.readline()
        if not line:
            break
        if line.startswith(b"data: "):
            events.append(line[6:].strip())
    dt = time.time() - t0
    c.close()
    assert events and events[-1] == b"[DONE]", events[-3:]
    final = json.loads(events[-2])
    # still generating after 3 s: the final event is the shutdown error; if it ended first, a finish_reason
    assert ("error" in final and "shutting down" in final["error"]["message"]) or final["choices"][0]["finish_reason"], final
    print(f"     stream ended {dt:.1f} s after SIGTERM with {'the shutdown error' if 'error' in final else 'its own finish'}", flush=True)
    assert dt < 3 + 3, dt
    rc = srv.proc.wait(30)
    assert rc == 0, (rc, "".join(srv.log[-10:]))
    assert any("SIGTERM" in ln for ln in srv.log), srv.log


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--oss4", required=True)
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="oss4-robust-")
    failed = []
    try:
        model = os.path.join(tmp, "tiny")
        subprocess.run([a.oss4, "synth", "--config", "tiny", "--out", model], check=True, capture_output=True)
        for fn in (test_slow_connections, test_cap_deadline_idle, test_sigterm_graceful):
            if a.only and a.only not in fn.__name__:
                continue
            t0 = time.time()
            try:
                fn(a.oss4, model)
                print(f"ok   {fn.__name__} ({time.time() - t0:.1f} s)", flush=True)
            except Exception:  # noqa: BLE001 - report every test
                failed.append(fn.__name__)
                print(f"FAIL {fn.__name__}\n{traceback.format_exc()}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failed:
        print("failed: " + ", ".join(failed))
        return 1
    print("all robustness tests passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
