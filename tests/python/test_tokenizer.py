"""oss4.Tokenizer against `oss4 tokenize` (itself checked against tiktoken in the C++ tests)."""

import json

import pytest

import oss4
from conftest import run_cli

TEXTS = ["Hello, world!", "  leading spaces and\ttabs\n\nnew lines", "naïve café, 東京, emoji 🎉👍🏽", "1234567 + 89 = ?",
         "<|start|>user<|message|>hi<|end|>", "'s 've 're ll don't"]


@pytest.mark.parametrize("allow_special", [False, True])
def test_encode_equals_cli(allow_special):
    t = oss4.Tokenizer()
    for text in TEXTS:
        args = ["tokenize", "--text", text] + (["--allow-special"] if allow_special else [])
        assert t.encode(text, allow_special=allow_special) == json.loads(run_cli(*args))["ids"], text


def test_decode_equals_cli():
    t = oss4.Tokenizer()
    for text in TEXTS:
        ids = t.encode(text, allow_special=True)
        assert t.decode(ids) == text
        assert t.decode(ids) == run_cli("tokenize", "--decode", ",".join(map(str, ids))).rstrip("\n")


def test_model_tokenizer_and_specials(tiny_dir, tok):
    t = oss4.Tokenizer(tiny_dir)
    assert t.n_vocab == tok.n_vocab == len(tok)
    sp = tok.special_tokens
    assert sp["<|start|>"] == 200006 and sp["<|return|>"] == 200002 and sp["<|call|>"] == 200012
    assert tok.special_id("<|message|>") == 200008 and tok.special_id("not special") is None
    assert tok.is_special(200006) and not tok.is_special(1000)
    for text in TEXTS:
        assert t.encode(text, True) == tok.encode(text, True)
    assert tok.token_bytes(tok.encode("hello")[0]) == b"hello"


def test_tokenizer_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        oss4.Tokenizer(str(tmp_path / "missing.tiktoken"))
    bad = tmp_path / "bad.tiktoken"
    bad.write_text("not a vocabulary\n")
    with pytest.raises(ValueError):
        oss4.Tokenizer(str(bad))
    with pytest.raises(ValueError):
        oss4.Tokenizer().decode([10**8])
    with pytest.raises(ValueError):
        oss4.Tokenizer().token_bytes(-1)
