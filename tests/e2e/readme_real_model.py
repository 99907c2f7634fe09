"""Runs the README's "Run the real gpt-oss-20b" commands on the tiny model, so that section cannot rot.

usage: python3 readme_real_model.py --oss4 build/oss4 --readme README.md

Every command between the readme-real-model markers is run, in a temporary folder, as written, with three
substitutions (each checked, never silent):
- `python3 -m pip install ...` is not run (tests never download);
- `hf download openai/gpt-oss-20b FILES --local-dir DIR` becomes `oss4 synth --config tiny --out DIR`: the same
  Hugging Face layout, tiny shapes; the file list is checked to hold what the loader needs;
- `oss4 chat` gets one user turn on stdin and `-n 48` appended (the tiny model's random text would run to 2048).
`oss4 serve ... &` runs in the background until /health answers, on a free port put in place of the README's
(in the curl URL too); the `curl` after it must return a chat completion; the server is stopped at the end. Any other command fails the test: add a mapping here first.
"""
import argparse
import json
import os
import shlex
import shutil
import socket
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

BEGIN, END = "<!-- readme-real-model:begin -->", "<!-- readme-real-model:end -->"


def section_commands(readme):
    text = open(readme, encoding="utf-8").read()
    if BEGIN not in text or END not in text:
        sys.exit(f"{readme}: the readme-real-model markers are missing")
    body = text[text.index(BEGIN) + len(BEGIN):text.index(END)]
    commands, pending = [], ""
    for line in body.splitlines():
        line = line.strip()
        if line.startswith("```") or line.startswith("#") or not line:
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        commands.append(pending + line)
        pending = ""
    if len(commands) < 5:
        sys.exit(f"{readme}: only {len(commands)} commands in the section")
    return commands


def run(argv, **kw):
    print("+", " ".join(shlex.quote(a) for a in argv), flush=True)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600, **kw)
    sys.stdout.write(r.stdout[-3000:])
    sys.stdout.write(r.stderr[-3000:])
    if r.returncode != 0:
        sys.exit(f"FAILED (exit {r.returncode}): {argv}")
    return r


def wait_health(port, proc, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"oss4 serve exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    sys.exit("oss4 serve did not answer /health")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--oss4", required=True)
    ap.add_argument("--readme", required=True)
    args = ap.parse_args()
    oss4 = os.path.abspath(args.oss4)
    commands = section_commands(args.readme)
    work = tempfile.mkdtemp(prefix="oss4-readme-")
    server, ran, port, readme_port = None, [], free_port(), None
    try:
        for cmd in commands:
            background = cmd.endswith("&")
            argv = shlex.split(cmd.rstrip("&").strip())
            tool = argv[0]
            if argv[:4] == ["python3", "-m", "pip", "install"]:
                print("skipped (no downloads in tests):", cmd)
                continue
            if tool == "hf":
                assert argv[1] == "download" and argv[2] == "openai/gpt-oss-20b", cmd
                files = set(argv[3:argv.index("--local-dir")])
                need = {"config.json", "generation_config.json", "model.safetensors.index.json", "tokenizer.json"}
                assert need <= files, f"the download misses {need - files}"
                assert any(f.startswith("model-0000") and f.endswith(".safetensors") for f in files), cmd
                run([oss4, "synth", "--config", "tiny", "--out", argv[argv.index("--local-dir") + 1]], cwd=work)
                ran.append("hf download -> synth")
                continue
            if tool == "oss4":
                argv[0] = oss4
                sub = argv[1]
                if sub == "serve":
                    assert background, "the README starts the server in the background"
                    readme_port = argv[argv.index("--port") + 1]
                    argv[argv.index("--port") + 1] = port
                    print("+ (background)", " ".join(argv), flush=True)
                    server = subprocess.Popen(argv, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                    wait_health(port, server)
                elif sub == "chat":
                    r = run(argv + ["-n", "48", "--seed", "1"], cwd=work, input="Say hello.\n")
                    assert r.stdout.strip(), "chat printed no reply"
                else:
                    assert not background, cmd
                    r = run(argv, cwd=work)
                    if sub == "compare":
                        assert "mean KL" in r.stdout and "top-1 agreement" in r.stdout, r.stdout
                ran.append("oss4 " + sub)
                continue
            if tool == "curl":
                assert server is not None, "curl before oss4 serve"
                if shutil.which("curl") is None:
                    sys.exit("curl is not installed (tools/debian-packages.txt lists it)")
                argv = [a.replace(f"127.0.0.1:{readme_port}/", f"127.0.0.1:{port}/") for a in argv]
                assert any(f"127.0.0.1:{port}/" in a for a in argv), "curl does not call the server's port"
                r = run(argv, cwd=work)
                reply = json.loads(r.stdout)
                assert reply["object"] == "chat.completion", reply
                assert reply["choices"][0]["message"]["role"] == "assistant", reply
                ran.append("curl chat completion")
                continue
            sys.exit(f"no mapping for this README command (add one in {__file__}): {cmd}")
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(work, ignore_errors=True)
    if server is not None and server.returncode != 0:
        sys.exit(f"oss4 serve exited with {server.returncode} on SIGTERM")
    print("readme-real-model: ok, " + str(len(ran)) + " commands ran: " + ", ".join(ran))


if __name__ == "__main__":
    main()
