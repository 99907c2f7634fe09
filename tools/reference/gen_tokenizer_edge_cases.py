"""Writes tests/data/tokenizer/o200k_harmony_edge_cases.jsonl: ids from tiktoken for inputs where a regex engine
or BPE implementation could differ from tiktoken's Rust core (Unicode White_Space, case folding, long pieces,
special-token lookalikes, characters newer than some Unicode tables).

usage: python tools/reference/gen_tokenizer_edge_cases.py data/o200k_base.tiktoken OUT.jsonl   (tiktoken==0.12.0)
"""
import json
import sys

from o200k_harmony_tiktoken import o200k_harmony

TEXTS = [
    "a\u180eb", "a\u180e b", "x\u0085y", "x\u0085\u0085 y", "a\u00a0b", "a\u00a0 b", "a\u1680\u2000\u200a b",
    "don'\u017f it'S", "I'LL we'Re", "Kelvin \u212a x'K", "tab\t\t\nnl", " \r\n\r\n  x", "a \n\n \t b\x0b\x0cc",
    "1234567", "\u0661\u0662\u0663\u0664", "\u2160\u2161\u2162 \u00bd\u00bc", "x" * 300, " " * 300 + "a", "!" * 300,
    "\u3000\u3000a", "e\u0301\u0301 \u0301x", "\U0001F389\U0001F389 party", "<|reserved_201088|><|endofprompt|>",
    "abc<|start|", "<|start|><|start|>x<|end|", "\u2028\u2029a", "a\u200b b", "a\U00031350b \U00031350new",
    "\U00011F00\U00011F04 kawi", "\U0001E4D0\U0001E4EB x", "Hello\r\nWorld\r\n\r\n", "path/to//file\n/x",
    "  leading and trailing  ", "mixed\u00a0\u00a0\nlines", "ǅungla ǈj Ǉ", "\ufeffbom", "\x00\x01\x7f ctrl",
]


def main():
    enc = o200k_harmony(sys.argv[1])
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        for t in TEXTS:
            for allow in (False, True):
                ids = enc.encode(t, allowed_special="all") if allow else enc.encode_ordinary(t)
                f.write(json.dumps({"text": t, "allow_special": allow, "ids": ids}) + "\n")


if __name__ == "__main__":
    main()
