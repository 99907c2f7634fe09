"""Shared fixtures of the Python package's tests: the oss4 CLI (the reference the package is checked against) and a
tiny random-weight gpt-oss checkpoint written by `oss4 synth` (nothing is downloaded).

Run by ctest (python_api) with PYTHONPATH at build/python and OSS4_BIN at build/oss4; by hand:
  PYTHONPATH=build/python OSS4_BIN=build/oss4 build/py-venv/bin/python -m pytest tests/python
"""

import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def oss4_bin():
    return os.environ.get("OSS4_BIN", os.path.join(REPO, "build", "oss4"))


def run_cli(*args, input=None):
    """Runs the oss4 CLI; returns its stdout (fails the test on a non-zero exit)."""
    r = subprocess.run([oss4_bin(), *args], capture_output=True, text=True, input=input)
    assert r.returncode == 0, f"oss4 {' '.join(args)}: {r.stderr}"
    return r.stdout


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("models") / "tiny")
    run_cli("synth", "--config", "tiny", "--dtype", "mxfp4", "--seed", "0", "--out", d)
    return d


@pytest.fixture(scope="session")
def llm(tiny_dir):
    import oss4

    return oss4.LLM(model=tiny_dir, max_num_seqs=8, kv_memory_gib=1.0, max_model_len=4096)


@pytest.fixture(scope="session")
def tok(llm):
    return llm.get_tokenizer()
