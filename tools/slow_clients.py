#!/usr/bin/env python3
"""Slow-connection check for `oss4 serve` (issue 19): N connections from one client address (127.0.0.2 by default)
send partial request headers or a partial body and then wait; meanwhile a second address (127.0.0.1) times
/health and one chat request. Loopback only; every loop is bounded and the run ends by itself.

Usage: slow_clients.py --port P [--n 1000] [--hold 15] [--slow-addr 127.0.0.2] [--json]
Prints one line of figures (or JSON with --json); exit 1 when /health took >= 100 ms or the chat request failed.
"""
import argparse
import http.client
import json
import resource
import socket
import statistics
import sys
import time

PARTIAL_HEADERS = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
PARTIAL_BODY = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n{")


def open_slow(port, addr, i):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2.0)
    try:
        s.bind((addr, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(PARTIAL_HEADERS if i % 2 == 0 else PARTIAL_BODY)
    except OSError:
        s.close()
        return None
    s.setblocking(False)
    return s


def refused(s):
    """True when the server answered or closed this connection (a refusal or a deadline)."""
    try:
        data = s.recv(4096)
        return True if data is not None else False
    except BlockingIOError:
        return False
    except OSError:
        return True


def health_ms(port, src):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(src, 0))
    t0 = time.perf_counter()
    try:
        c.request("GET", "/health")
        r = c.getresponse()
        r.read()
        ok = r.status == 200
    except OSError:
        ok = False
    c.close()
    return (time.perf_counter() - t0) * 1000.0, ok


def chat_ms(port, src, key):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=(src, 0))
    body = json.dumps({"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hello"}]})
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    t0 = time.perf_counter()
    try:
        c.request("POST", "/v1/chat/completions", body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        ok = r.status == 200 and "choices" in json.loads(data)
    except (OSError, ValueError):
        ok = False
    c.close()
    return (time.perf_counter() - t0) * 1000.0, ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--hold", type=float, default=15.0, help="seconds the slow connections stay open")
    ap.add_argument("--slow-addr", default="127.0.0.2")
    ap.add_argument("--check-addr", default="127.0.0.1")
    ap.add_argument("--api-key", default="")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    for addr in (a.slow_addr, a.check_addr):
        if not addr.startswith("127."):
            print("slow_clients.py: loopback addresses only", file=sys.stderr)
            return 2
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, a.n + 256)), hard))

    t_open = time.perf_counter()
    socks = [open_slow(a.port, a.slow_addr, i) for i in range(a.n)]
    opened = sum(1 for s in socks if s is not None)
    open_s = time.perf_counter() - t_open
    time.sleep(1.0)
    lat = []
    n_fail = 0
    t_end = time.perf_counter() + a.hold
    while len(lat) < 200 and time.perf_counter() < t_end:
        ms, ok = health_ms(a.port, a.check_addr)
        lat.append(ms)
        n_fail += 0 if ok else 1
        time.sleep(0.05)
    chat, chat_ok = chat_ms(a.port, a.check_addr, a.api_key)
    n_refused = sum(1 for s in socks if s is not None and refused(s))
    for s in socks:
        if s is not None:
            s.close()
    res = {
        "slow_connections": a.n, "connected": opened, "open_seconds": round(open_s, 2),
        "refused_or_closed_by_server": n_refused,
        "health_n": len(lat), "health_failed": n_fail,
        "health_p50_ms": round(statistics.median(lat), 1) if lat else None,
        "health_max_ms": round(max(lat), 1) if lat else None,
        "chat_ms": round(chat, 1), "chat_ok": chat_ok,
    }
    print(json.dumps(res) if a.json else " ".join(f"{k}={v}" for k, v in res.items()), flush=True)
    good = lat and n_fail == 0 and res["health_max_ms"] < 100 and chat_ok
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
