#!/usr/bin/env python3
"""ctest entry for the server tests: finds the venv that tools/test.sh made (the pinned `openai` client) and runs
test_openai_client.py with it. No venv or no openai is a FAILURE, not a skip: CI must run these tests."""
import os
import subprocess
import sys


def main() -> int:
    args = sys.argv[1:]
    venvs = []
    while args and args[0] == "--venv":
        venvs.append(args[1])
        args = args[2:]
    for v in venvs:
        py = os.path.join(v, "bin", "python3")
        if os.path.exists(py) and subprocess.run([py, "-c", "import openai"], capture_output=True).returncode == 0:
            here = os.path.dirname(os.path.abspath(__file__))
            return subprocess.run([py, os.path.join(here, "test_openai_client.py")] + args).returncode
    print("FAIL: no virtual environment with the pinned openai client in: " + ", ".join(venvs), file=sys.stderr)
    print("      create it with tools/test.sh (python3 -m venv build/serve-venv && "
          "build/serve-venv/bin/pip install -r tests/serve/requirements.txt)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
