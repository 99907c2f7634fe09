"""oss4.Tokenizer: the o200k_harmony tokenizer, exactly tiktoken's ids (the one `oss4 tokenize` runs)."""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Union

from . import _core


class Tokenizer:
    """Tokenizer(path=None): a model directory (its tokenizer.json), a tokenizer.json or a .tiktoken file; None: the
    vocabulary built into oss4. LLM.get_tokenizer() returns the model's."""

    def __init__(self, path: Optional[Union[str, "os.PathLike[str]"]] = None) -> None:
        self._tok = _core.Tokenizer.load(None if path is None else os.fspath(path))

    @classmethod
    def _wrap(cls, native: _core.Tokenizer) -> "Tokenizer":
        t = cls.__new__(cls)
        t._tok = native
        return t

    def encode(self, text: str, allow_special: bool = False) -> List[int]:
        """Token ids of text; allow_special: special tokens written in the text (<|start|>) become their ids."""
        return self._tok.encode(text, allow_special)

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ids (bytes that are not valid UTF-8 become U+FFFD; decode_bytes keeps them)."""
        return self._tok.decode(list(ids))

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        return self._tok.decode_bytes(list(ids))

    def token_bytes(self, token_id: int) -> bytes:
        return self._tok.token_bytes(token_id)

    @property
    def special_tokens(self) -> Dict[str, int]:
        """{"<|start|>": 200006, ...}"""
        return dict(self._tok.special_tokens)

    def special_id(self, text: str) -> Optional[int]:
        return self._tok.special_id(text)

    def is_special(self, token_id: int) -> bool:
        return self._tok.is_special(token_id)

    @property
    def n_vocab(self) -> int:
        return self._tok.n_vocab

    def __len__(self) -> int:
        return self._tok.n_vocab
