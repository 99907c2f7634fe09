"""SamplingParams: vLLM's class of the same name, the fields oss4 implements (others are refused, not ignored)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Union


@dataclass
class SamplingParams:
    """How to sample, as vLLM's SamplingParams: temperature 0 is greedy; top_k 0 (or -1) is off."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: Optional[int] = None
    max_tokens: Optional[int] = 16  # None: up to the context length
    stop: Optional[Union[str, List[str]]] = None  # stop strings: the text ends before the first
    stop_token_ids: Optional[List[int]] = None  # stop after any of these (in token_ids, not in the text)
    ignore_eos: bool = False
    logprobs: Optional[int] = None  # each generated token's log-probability and this many most likely tokens'
    skip_special_tokens: bool = True
    # vLLM's, accepted at their defaults only (oss4 does not implement them)
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    min_p: float = 0.0
    min_tokens: int = 0
    stop_list: List[str] = field(init=False, repr=False, default_factory=list)

    def __post_init__(self) -> None:
        def bad(msg: str) -> None:
            raise ValueError(f"SamplingParams: {msg}")

        if self.n != 1:
            bad(f"n must be 1 (one completion per prompt), not {self.n}")
        if not self.temperature >= 0:
            bad(f"temperature must be at least 0, not {self.temperature}")
        if not 0 < self.top_p <= 1:
            bad(f"top_p must be in (0, 1], not {self.top_p}")
        if self.top_k < -1:
            bad(f"top_k must be at least -1 (-1 or 0: off), not {self.top_k}")
        if self.max_tokens is not None and self.max_tokens < 1:
            bad(f"max_tokens must be at least 1, not {self.max_tokens}")
        if self.seed is not None and not 0 <= self.seed < 2**64:
            bad(f"seed must be in [0, 2**64), not {self.seed}")
        if self.logprobs is not None and self.logprobs < 0:
            bad(f"logprobs must be at least 0, not {self.logprobs}")
        if isinstance(self.stop, str):
            self.stop_list = [self.stop]
        elif self.stop is None:
            self.stop_list = []
        else:
            self.stop_list = list(self.stop)
        if any(not isinstance(s, str) or not s for s in self.stop_list):
            bad("stop must be a string or a list of non-empty strings")
        for name, default in (("presence_penalty", 0.0), ("frequency_penalty", 0.0), ("repetition_penalty", 1.0),
                              ("min_p", 0.0), ("min_tokens", 0)):
            if getattr(self, name) != default:
                bad(f"{name} is not supported by oss4 (only its default {default})")
