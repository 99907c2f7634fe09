"""The README's Python snippet (between the readme-python markers) runs on the tiny model: only the model path is
replaced, as the real-model README test replaces the download."""

import os
import re
import subprocess
import sys

from conftest import REPO


def snippet():
    text = open(os.path.join(REPO, "README.md")).read()
    m = re.search(r"<!-- readme-python:begin -->\s*```python\n(.*?)```\s*<!-- readme-python:end -->", text, re.S)
    assert m, "README.md has no readme-python snippet"
    return m.group(1)


def test_readme_snippet_runs(tiny_dir):
    code = snippet()
    assert "from oss4 import LLM, SamplingParams" in code
    assert code.count('"gpt-oss-20b-nvfp4"') == 1
    code = code.replace('"gpt-oss-20b-nvfp4"', repr(tiny_dir))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() != ""  # the tiny model's random words


def test_vllm_snippet_differs_only_in_the_import():
    """docs/python.md shows vLLM's snippet and oss4's side by side: they differ only in the import and the model."""
    text = open(os.path.join(REPO, "docs", "python.md")).read()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    vllm = next(b for b in blocks if "from vllm import" in b)
    ours = next(b for b in blocks if "from oss4 import LLM, SamplingParams" in b)
    norm = lambda b: [l for l in b.splitlines() if "import" not in l and "LLM(model=" not in l]
    assert norm(vllm) == norm(ours)
