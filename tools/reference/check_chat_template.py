#!/usr/bin/env python3
"""Checks oss4's chat template (data/chat_template.jinja) with transformers against openai-harmony's renders.

For every case of tests/data/harmony/render.json (openai-harmony 0.0.8's own renders, made by
make_harmony_goldens.py) that the Hugging Face message form can express, the script turns harmony's conversation
into HF messages, tools and template kwargs, renders them with transformers' apply_chat_template through the
template, and requires the text to equal harmony's byte for byte and the HF tokenizer's ids (from the tokenizer.json
`oss4 synth` writes) to equal harmony's ids. Cases the HF form cannot say (no system message, author names, a
recipient of `all`, built-in tools, several text parts, python calls) are listed as skipped, with the reason.

It writes tests/data/chat_template/renders.json: the template text it checked, the transformers version, and each
case's messages, tools, kwargs and text, which the C++ tests compare with what oss4 ships and synthesizes.

How to run (the pinned environment of requirements.txt, Python 3.11):
  build/oss4 synth --config tiny --out /tmp/ct_tiny
  /tmp/refenv/bin/python tools/reference/check_chat_template.py --model /tmp/ct_tiny --out tests/data/chat_template
"""

import argparse
import json
import os
import sys

import transformers
from transformers import AutoTokenizer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Skip(Exception):
    pass


def text_of(msg):
    parts = msg["content"]
    if len(parts) != 1 or parts[0]["type"] != "text":
        raise Skip("several content parts")
    return parts[0]["text"]


def to_hf(case):
    """harmony Conversation.to_dict() -> (messages, tools, kwargs, add_generation_prompt)."""
    msgs = case["conversation"]["messages"]
    if not msgs or msgs[0]["role"] != "system":
        raise Skip("no system message (the template always writes one)")
    if case["mode"] == "conversation":
        raise Skip("render_conversation mode (neither a prompt nor a training example)")
    kwargs = {}
    sc = msgs[0]["content"][0]
    if sc.get("tools"):
        raise Skip("built-in tools")
    kwargs["reasoning_effort"] = sc["reasoning_effort"].lower()
    if sc.get("conversation_start_date"):
        kwargs["current_date"] = sc["conversation_start_date"]
    if sc["model_identity"] != "You are ChatGPT, a large language model trained by OpenAI.":
        kwargs["model_identity"] = sc["model_identity"]
    if not case["auto_drop_analysis"]:
        kwargs["auto_drop_analysis"] = False
    messages, tools = [], None
    rest = msgs[1:]
    if rest and rest[0]["role"] == "developer":
        dc = rest[0]["content"][0]
        if dc.get("instructions"):
            messages.append({"role": "developer", "content": dc["instructions"]})
        ns = (dc.get("tools") or {}).get("functions")
        if ns:
            tools = []
            for t in ns["tools"]:
                f = {"name": t["name"], "description": t["description"]}
                if "parameters" in t:
                    f["parameters"] = t["parameters"]
                tools.append({"type": "function", "function": f})
        rest = rest[1:]
    cur = None  # the HF assistant message being assembled from harmony's assistant messages
    for m in rest:
        if m.get("name"):
            if m["role"] != "tool":
                raise Skip("author name")
        role = m["role"]
        if role == "user":
            cur = None
            messages.append({"role": "user", "content": text_of(m)})
        elif role == "assistant":
            ch, rcp, ct = m.get("channel"), m.get("recipient"), m.get("content_type")
            if ch == "analysis" and not rcp:
                cur = {"role": "assistant", "thinking": text_of(m)}
                messages.append(cur)
            elif ch == "final" and not rcp and not ct:
                if cur is not None and "content" not in cur and "tool_calls" not in cur:
                    cur["content"] = text_of(m)
                else:
                    messages.append({"role": "assistant", "content": text_of(m)})
                cur = None
            elif ch == "commentary" and rcp and rcp.startswith("functions.") and ct == "<|constrain|>json":
                call = {"type": "function", "function": {"name": rcp[len("functions."):], "arguments": text_of(m)}}
                if cur is not None and "content" not in cur and "tool_calls" not in cur:
                    cur["tool_calls"] = [call]
                else:
                    messages.append({"role": "assistant", "tool_calls": [call]})
                cur = None
            else:
                raise Skip(f"assistant message on {ch} to {rcp} ({ct}) has no HF form")
        elif role == "tool":
            cur = None
            if m.get("channel") != "commentary" or not (m.get("name") or "").startswith("functions."):
                raise Skip("tool result that is not a function's on commentary")
            messages.append({"role": "tool", "name": m["name"][len("functions."):], "content": text_of(m)})
        else:
            raise Skip(f"role {role} after the start")
    return messages, tools, kwargs, case["mode"] == "completion"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="a directory written by `oss4 synth` (tokenizer files + template)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    template_path = os.path.join(REPO, "data", "chat_template.jinja")
    template = open(template_path, encoding="utf-8").read()
    shipped = open(os.path.join(args.model, "chat_template.jinja"), encoding="utf-8").read()
    if shipped != template:
        sys.exit(f"{args.model}/chat_template.jinja differs from {template_path}: rebuild oss4 and synthesize again")
    tok = AutoTokenizer.from_pretrained(args.model)
    if tok.chat_template != template:
        sys.exit("transformers did not pick up chat_template.jinja from the model directory")

    goldens = json.load(open(os.path.join(REPO, "tests", "data", "harmony", "render.json"), encoding="utf-8"))
    cases, skipped, failures = [], [], 0
    for case in goldens["cases"]:
        try:
            messages, tools, kwargs, gen = to_hf(case)
        except Skip as e:
            skipped.append({"name": case["name"], "reason": str(e)})
            continue
        text = tok.apply_chat_template(messages, tools=tools, add_generation_prompt=gen, tokenize=False, **kwargs)
        ids = tok.encode(text, add_special_tokens=False)
        ok_text, ok_ids = text == case["text"], ids == case["ids"]
        print(f"{case['name']:45s} text {'ok' if ok_text else 'DIFFERS'}  ids {'ok' if ok_ids else 'DIFFER'}")
        if not ok_text:
            failures += 1
            a, b = text, case["text"]
            i = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
            print(f"  first difference at {i}:\n  template: {a[max(0, i - 80):i + 80]!r}\n  harmony:  {b[max(0, i - 80):i + 80]!r}")
        elif not ok_ids:
            # a text template hands the tokenizer one string, so special-token text inside a message becomes the
            # special token; harmony encodes message content as plain text. Any other id difference is a failure.
            if any("<|" in (m.get("content") or "") for m in messages):
                print("  (expected: a message contains special-token text, which any text chat template turns into specials)")
            else:
                failures += 1
        cases.append({"name": case["name"], "messages": messages, "tools": tools, "kwargs": kwargs,
                      "add_generation_prompt": gen, "text": text, "ids": ids, "ids_match_harmony": ok_ids})
    for s in skipped:
        print(f"{s['name']:45s} skipped: {s['reason']}")
    if failures:
        sys.exit(f"{failures} case(s) differ from openai-harmony")
    os.makedirs(args.out, exist_ok=True)
    out = {"generator": "tools/reference/check_chat_template.py", "transformers_version": transformers.__version__,
           "harmony_goldens": "tests/data/harmony/render.json", "template": template, "cases": cases, "skipped": skipped}
    path = os.path.join(args.out, "renders.json")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    os.replace(path + ".tmp", path)
    n_ids = sum(c["ids_match_harmony"] for c in cases)
    print(f"{len(cases)} cases match openai-harmony byte for byte ({n_ids} id for id); {len(skipped)} skipped; wrote {path}")


if __name__ == "__main__":
    main()
