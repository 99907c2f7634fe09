#!/usr/bin/env python3
"""Checks that no folder under src/ includes a folder above it (issue 13).

Every `#include "X/..."` line of every file under src/ is an edge from the file's folder to X. A folder may include
itself and any folder below it in LAYERS (lowest first); public headers (`#include "oss4/..."`, include/oss4) may be
included from anywhere. backend/cpu and backend/cuda are both the `backend` layer but may not include each other.

usage: check_layering.py [REPO_ROOT] [--allow FILE:FROM->TO ...]
Exit 0 when every edge is in order (or allowed), 1 with one `file:line: FROM -> TO (include)` line per offence.
"""

import argparse
import os
import re
import sys

# lowest first
LAYERS = ["core", "format", "numeric", "text", "model", "runtime", "backend", "quant", "eval", "synth", "api", "serve"]
RANK = {name: i for i, name in enumerate(LAYERS)}
PUBLIC = "oss4"  # include/oss4: the public API, includable from every layer
SIBLINGS = ("backend/cpu", "backend/cuda")  # one layer, neither may include the other

# known violations, as "file:FROM->TO" (file relative to the repository root)
ALLOWED: set = set()  # known violations being removed (FILE:FROM->TO); none today

INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')


def unit_of(rel_path):
    """The layering unit of a path under src/ ('backend/cpu', 'model', ...) or of an include ('backend/cpu/x.h')."""
    parts = rel_path.split("/")
    if parts[0] == "backend" and len(parts) > 2:
        return "backend/" + parts[1]
    return parts[0]


def layer_of(unit):
    return unit.split("/")[0]


def check(root, allowed):
    src = os.path.join(root, "src")
    src_folders = {d for d in os.listdir(src) if os.path.isdir(os.path.join(src, d))}
    offences, used = [], set()
    for folder in sorted(src_folders - set(LAYERS)):
        offences.append(f"src/{folder}: folder not in the layering order of tools/check_layering.py (LAYERS)")
    for dirpath, _, files in os.walk(src):
        for name in sorted(files):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            from_unit = unit_of(rel[len("src/"):])
            from_layer = layer_of(from_unit)
            if from_layer not in RANK:
                continue  # reported above
            try:
                with open(path, encoding="utf-8") as f:
                    lines = f.readlines()
            except UnicodeDecodeError:
                continue  # not source text
            for lineno, line in enumerate(lines, 1):
                m = INCLUDE.match(line)
                if not m or "/" not in m.group(1):
                    continue  # a same-folder include
                target = m.group(1)
                to_unit = unit_of(target)
                to_layer = layer_of(to_unit)
                if to_layer == PUBLIC or (to_layer not in RANK and to_layer not in src_folders):
                    continue  # public header, or not a src/ folder (a generated or third-party header)
                edge = f"{from_layer}->{to_layer}"
                if to_layer not in RANK:
                    bad = f"{edge}: {to_layer} is not in the layering order"
                elif RANK[to_layer] > RANK[from_layer]:
                    bad = f"{edge}: {to_layer} is above {from_layer}"
                elif from_unit != to_unit and from_unit in SIBLINGS and to_unit in SIBLINGS:
                    edge = f"{from_unit}->{to_unit}"
                    bad = f"{edge}: sibling backends may not include each other"
                else:
                    continue
                key = f"{rel}:{edge}"
                if key in allowed:
                    used.add(key)
                    continue
                offences.append(f'{rel}:{lineno}: {bad} (#include "{target}")')
    return offences, allowed - used


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    ap.add_argument("--allow", action="append", default=[], metavar="FILE:FROM->TO",
                    help="a further known violation, e.g. src/runtime/kv_cache.h:runtime->backend")
    args = ap.parse_args()
    offences, stale = check(os.path.abspath(args.root), ALLOWED | set(args.allow))
    for s in sorted(stale):
        print(f"note: allowed edge no longer present, remove it from ALLOWED: {s}")
    for o in offences:
        print(o)
    if offences:
        print(f"{len(offences)} layering violation(s); order, lowest first: {', '.join(LAYERS)}")
        return 1
    print(f"layering ok: {', '.join(LAYERS)} (lowest first)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
