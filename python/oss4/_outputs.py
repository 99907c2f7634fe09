"""What generate() and chat() return: vLLM's RequestOutput and CompletionOutput (the fields oss4 fills), plus the
chat's reasoning (analysis channel) and tool calls apart from the final text."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional


@dataclass
class Logprob:
    """One token's log-probability (vLLM's Logprob): rank 1 is the most likely."""

    logprob: float
    rank: Optional[int] = None
    decoded_token: Optional[str] = None


@dataclass
class ToolCall:
    """A function call the model made: arguments is the JSON text it wrote."""

    id: str
    name: str
    arguments: str
    type: str = "function"


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: List[int]
    cumulative_logprob: Optional[float]
    logprobs: Optional[List[Dict[int, Logprob]]]
    finish_reason: Optional[str]  # "stop" (a stop token or string), "length" (max_tokens or the context)
    stop_reason: Optional[object] = None  # the stop string or token id that ended it, when known
    reasoning_content: Optional[str] = None  # chat: the analysis channel's text
    tool_calls: List[ToolCall] = field(default_factory=list)  # chat: functions the model called

    def finished(self) -> bool:
        return self.finish_reason is not None


@dataclass
class RequestOutput:
    request_id: str
    prompt: Optional[str]
    prompt_token_ids: List[int]
    outputs: List[CompletionOutput]
    finished: bool = True
    num_cached_tokens: int = 0  # prompt tokens whose K/V came from an earlier request (prefix reuse)
