#!/usr/bin/env python3
"""ctest python_wheel: `pip wheel .` builds the package, a clean venv installs the wheel alone, and the installed
package (not the build tree) imports and generates on a tiny synthesized model, matching `oss4 generate`.

The wheel is built without build isolation by the test venv's pinned scikit-build-core and nanobind
(tests/python/requirements.txt), in a persistent build folder (--build-dir, beside the main build folder), through ccache when it
is installed: after the first run only what changed is recompiled. `pip install .` with isolation (what users run)
fetches the same pinned versions from pyproject.toml.

usage: wheel_check.py --oss4 build/oss4 --build-dir build-wheel [--cxx /usr/bin/c++]

The build folder is a sibling of the main build folder (build-wheel beside build): with ccache's base_dir the two
compile the same sources with the same relative paths, so a first run after the main build hits the cache.
"""

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHECK = r"""
import os, sys
import oss4
assert os.path.dirname(oss4.__file__).startswith(sys.prefix), oss4.__file__  # the installed copy
here = os.path.dirname(oss4.__file__)
assert os.path.exists(os.path.join(here, "py.typed")) and os.path.exists(os.path.join(here, "_core.pyi"))
llm = oss4.LLM(model=sys.argv[1], max_model_len=256)
out = llm.generate([[200006, 1428, 200008, 3575, 200007, 200006, 173781]],
                   oss4.SamplingParams(temperature=0, max_tokens=8, ignore_eos=True), use_tqdm=False)
print(" ".join(map(str, out[0].outputs[0].token_ids)))
"""


def run(cmd, **kw):
    t = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.stderr.write(f"FAIL: {' '.join(cmd)}\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}\n")
        sys.exit(1)
    print(f"{time.monotonic() - t:6.1f}s  {' '.join(os.path.basename(c) for c in cmd[:4] if len(c) < 200)} ...", flush=True)
    return r.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--oss4", required=True)
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--cxx", help="the C++ compiler of the main build: the same one makes ccache hits possible")
    a = ap.parse_args()
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(min(os.cpu_count() or 1, 4)))
    args = env.get("CMAKE_ARGS", "").split()
    if a.cxx:
        args.append(f"-DCMAKE_CXX_COMPILER={a.cxx}")
    if shutil.which("ccache"):
        args.append("-DCMAKE_CXX_COMPILER_LAUNCHER=ccache")
    env["CMAKE_ARGS"] = " ".join(args)
    with tempfile.TemporaryDirectory() as tmp:
        wheels = os.path.join(tmp, "wheels")
        run([sys.executable, "-m", "pip", "wheel", REPO, "--no-build-isolation", "--no-deps", "-q",
             "--disable-pip-version-check", "-w", wheels, f"--config-settings=build-dir={os.path.abspath(a.build_dir)}"],
            env=env)
        found = glob.glob(os.path.join(wheels, "oss4-*.whl"))
        assert len(found) == 1, found
        clean = os.path.join(tmp, "venv")
        run([sys.executable, "-m", "venv", clean], env=env)
        py = os.path.join(clean, "bin", "python")
        run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-index", "--no-deps", found[0]], env=env)
        model = os.path.join(tmp, "tiny")
        run([a.oss4, "synth", "--config", "tiny", "--seed", "3", "--out", model])
        got = run([py, "-c", CHECK, model], env=env, cwd=tmp).split()
        want = run([a.oss4, "generate", "-m", model, "--ids", "200006,1428,200008,3575,200007,200006,173781", "-n", "8",
                    "--temperature", "0", "--ignore-eos", "-q"]).split()
        if got != want:
            sys.stderr.write(f"FAIL: the installed wheel generated {got}, oss4 generate {want}\n")
            return 1
    print("ok: the wheel installs in a clean venv and generates what oss4 generate does")
    return 0


if __name__ == "__main__":
    sys.exit(main())
