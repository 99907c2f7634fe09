"""oss4.LLM: vLLM's offline LLM class over oss4's engine (the continuous batching `oss4 serve` runs).

A list of prompts is submitted at once and advances together: each engine step is one batched forward over every
running sequence's next token and the prefill chunks admitted with it. The loop below drives the steps; the native
step runs without the GIL and a pending Ctrl-C raises KeyboardInterrupt after it, cancelling the batch's sequences.
"""

from __future__ import annotations

import itertools
import json
import os
import random
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Union

from . import _core
from ._outputs import CompletionOutput, Logprob, RequestOutput, ToolCall
from ._params import SamplingParams
from ._progress import CallbackBar, progress_bar
from ._tokenizer import Tokenizer

PromptType = Union[str, Sequence[int], Dict[str, Any]]
Conversation = List[Dict[str, Any]]


def _is_ids(x: Any) -> bool:
    return isinstance(x, (list, tuple)) and all(isinstance(i, int) and not isinstance(i, bool) for i in x)


class LLM:
    """LLM(model, device="auto", threads=None, lm_head=None, activations=None, max_num_seqs=16, kv_memory_gib=4.0)

    model: a checkpoint directory (any form oss4 reads: the MXFP4 release, BF16, NVFP4). device: auto | cpu | cuda.
    threads: None = every core (or OSS4_THREADS). lm_head: stored | bf16 | nvfp4. activations: None (f32 on the CPU, bf16 on CUDA) | f32 | bf16 | q8.
    max_num_seqs: sequences decoded together. kv_memory_gib: the K/V budget of running (and parked, for prefix reuse)
    sequences. max_model_len: positions per sequence (None: the model's, at most 8192). seed: the default seed of
    requests whose SamplingParams give none (each request gets its own, drawn from it).
    """

    def __init__(self, model: Union[str, "os.PathLike[str]"], tokenizer: Optional[str] = None, device: str = "auto",
                 threads: Optional[int] = None, lm_head: Optional[str] = None, activations: Optional[str] = None,
                 kernels: str = "auto", max_num_seqs: int = 16, kv_memory_gib: float = 4.0,
                 max_model_len: Optional[int] = None, seed: Optional[int] = 0, progress: Optional[bool] = None) -> None:
        if threads is not None and threads < 1:
            raise ValueError(f"threads: must be at least 1 (None: every core), not {threads}")
        show = progress if progress is not None else os.isatty(2)
        bar = CallbackBar("Loading", "layer", show)
        try:
            self._model = _core.Model(os.fspath(model), device, lm_head or "stored", activations or "auto", kernels,
                                      threads or 0, max_num_seqs, kv_memory_gib, max_model_len or 0, tokenizer, bar)
        finally:
            bar.close()
        self._rng = random.Random(seed)
        self._ids = itertools.count()

    # ---------------------------------------------------------------------------------------------- information

    def get_tokenizer(self) -> Tokenizer:
        return Tokenizer._wrap(self._model.tokenizer())

    @property
    def max_model_len(self) -> int:
        return self._model.max_model_len

    @property
    def eos_token_ids(self) -> List[int]:
        return list(self._model.eos_token_ids)

    # ---------------------------------------------------------------------------------------------- generate

    def generate(self, prompts: Union[PromptType, Sequence[PromptType]],
                 sampling_params: Optional[Union[SamplingParams, Sequence[SamplingParams]]] = None,
                 use_tqdm: bool = True) -> List[RequestOutput]:
        """Completes each prompt (a string, token ids, {"prompt": str} or {"prompt_token_ids": [...]}, or a list of
        them) with continuous batching; one RequestOutput per prompt, in order."""
        items = self._prompts(prompts)
        params = self._params(sampling_params, len(items))
        jobs = [self._submit(ids, text, p, chat=False) for (text, ids), p in zip(items, params)]
        return self._run(jobs, use_tqdm)

    def generate_stream(self, prompt: PromptType, sampling_params: Optional[SamplingParams] = None) -> Iterator[str]:
        """Yields the text of one prompt's completion as it is made (deltas; joined they are outputs[0].text)."""
        items = self._prompts(prompt)
        if len(items) != 1:
            raise ValueError(f"generate_stream takes one prompt, not {len(items)}")
        (text, ids), = items
        yield from self._stream(self._submit(ids, text, sampling_params or SamplingParams(), chat=False))

    # ---------------------------------------------------------------------------------------------- chat

    def chat(self, messages: Union[Conversation, Sequence[Conversation]],
             sampling_params: Optional[Union[SamplingParams, Sequence[SamplingParams]]] = None, use_tqdm: bool = True,
             reasoning_effort: Optional[str] = None, tools: Optional[List[Dict[str, Any]]] = None,
             tool_choice: Optional[Union[str, Dict[str, Any]]] = None) -> List[RequestOutput]:
        """One conversation (a list of {"role", "content"} dicts, OpenAI's chat format) or a list of them, rendered in
        the harmony format as `oss4 serve` renders /v1/chat/completions; the reply is parsed: outputs[0].text is the
        final answer, .reasoning_content the analysis channel, .tool_calls the functions called."""
        convs = self._conversations(messages)
        params = self._params(sampling_params, len(convs))
        tok = self._model.tokenizer()
        jobs = []
        for conv, p in zip(convs, params):
            ids, prefixes = self._render(conv, reasoning_effort, tools, tool_choice)
            jobs.append(self._submit(ids, tok.decode(ids), p, chat=True, prefixes=prefixes))
        return self._run(jobs, use_tqdm)

    def chat_stream(self, messages: Conversation, sampling_params: Optional[SamplingParams] = None,
                    reasoning_effort: Optional[str] = None, tools: Optional[List[Dict[str, Any]]] = None) -> Iterator[str]:
        """Yields the final answer's text of one conversation as it is made (the reasoning is not streamed)."""
        convs = self._conversations(messages)
        if len(convs) != 1:
            raise ValueError(f"chat_stream takes one conversation, not {len(convs)}")
        ids, prefixes = self._render(convs[0], reasoning_effort, tools, None)
        yield from self._stream(self._submit(ids, None, sampling_params or SamplingParams(), chat=True, prefixes=prefixes))

    def render_chat(self, messages: Conversation, reasoning_effort: Optional[str] = None,
                    tools: Optional[List[Dict[str, Any]]] = None) -> List[int]:
        """The harmony prompt chat() would submit for one conversation (ends with <|start|>assistant)."""
        convs = self._conversations(messages)
        if len(convs) != 1:
            raise ValueError(f"render_chat takes one conversation, not {len(convs)}")
        return self._render(convs[0], reasoning_effort, tools, None)[0]

    # ---------------------------------------------------------------------------------------------- internals

    def _prompts(self, prompts: Any) -> List[tuple]:
        """[(text or None, ids)] of one prompt or a list of them."""
        if isinstance(prompts, (str, dict)) or (_is_ids(prompts) and len(prompts) > 0):
            prompts = [prompts]
        if not isinstance(prompts, (list, tuple)):
            raise TypeError(f"prompts: expected a string, token ids, a dict or a list of them, not {type(prompts).__name__}")
        out = []
        tok = None
        for p in prompts:
            if isinstance(p, dict):
                if "prompt_token_ids" in p:
                    p = p["prompt_token_ids"]
                elif "prompt" in p:
                    p = p["prompt"]
                else:
                    raise ValueError("a dict prompt needs 'prompt' or 'prompt_token_ids'")
            if isinstance(p, str):
                if tok is None:
                    tok = self._model.tokenizer()
                # like `oss4 generate --prompt` and vLLM's HF tokenizer: special tokens written in the text count
                out.append((p, tok.encode(p, True)))
            elif _is_ids(p):
                out.append((None, list(p)))
            else:
                raise TypeError(f"a prompt must be a string or a list of token ids, not {type(p).__name__}")
        if not out:
            raise ValueError("no prompts")
        return out

    def _conversations(self, messages: Any) -> List[Conversation]:
        if isinstance(messages, (list, tuple)) and messages and all(isinstance(m, dict) for m in messages):
            return [list(messages)]
        if isinstance(messages, (list, tuple)) and messages and all(isinstance(c, (list, tuple)) for c in messages):
            return [list(c) for c in messages]
        raise ValueError("messages: expected a conversation (a non-empty list of message dicts) or a list of them")

    def _params(self, sp: Any, n: int) -> List[SamplingParams]:
        if sp is None:
            return [SamplingParams()] * n
        if isinstance(sp, SamplingParams):
            return [sp] * n
        sp = list(sp)
        if len(sp) != n or not all(isinstance(p, SamplingParams) for p in sp):
            raise ValueError(f"sampling_params: one SamplingParams, or one per prompt ({n}), not {len(sp)}")
        return sp

    def _render(self, conv: Conversation, effort: Optional[str], tools: Optional[list], tool_choice: Any) -> tuple:
        body: Dict[str, Any] = {"messages": conv}
        if effort is not None:
            body["reasoning_effort"] = effort
        if tools is not None:
            body["tools"] = tools
        if tool_choice is not None:
            body["tool_choice"] = tool_choice
        try:
            text = json.dumps(body)
        except TypeError as e:
            raise ValueError(f"messages: not JSON-serializable: {e}") from None
        return self._model.render_chat(text)

    def _submit(self, ids: List[int], text: Optional[str], p: SamplingParams, chat: bool,
                prefixes: Optional[List[List[int]]] = None, script: Optional[List[int]] = None) -> "_Job":
        """script: the engine's test facility, ids emitted in place of sampled ones (tests drive the parser with it)."""
        max_tokens = p.max_tokens
        if max_tokens is None:
            max_tokens = max(1, self._model.max_model_len - len(ids))
        seed = p.seed if p.seed is not None else self._rng.getrandbits(64)
        req = self._model.submit(ids, float(p.temperature), float(p.top_p), max(p.top_k, 0), seed, max_tokens,
                                 list(p.stop_token_ids or []), p.stop_list, -1 if p.logprobs is None else p.logprobs,
                                 p.ignore_eos, p.skip_special_tokens, chat, prefixes or [], script or [])
        return _Job(str(next(self._ids)), text, ids, p, req)

    def _step_until(self, jobs: List["_Job"], on_done: Any = None) -> Iterator[List[tuple]]:
        """Runs engine steps until every job is done; yields each round's [(job, text delta)]."""
        pending = list(jobs)
        idle = 0
        while pending:
            deltas = []
            still = []
            for j in pending:
                _, text, _, done = j.req.poll()
                if text:
                    deltas.append((j, text))
                if done:
                    if on_done:
                        on_done(j)
                else:
                    still.append(j)
            pending = still
            yield deltas
            if not pending:
                break
            if self._model.step():
                idle = 0
            else:
                idle += 1  # a step with nothing to run: the sequences ended in it; a second one is a bug
                if idle > 2:
                    raise RuntimeError("the engine stopped with sequences still pending")

    def _run(self, jobs: List["_Job"], use_tqdm: bool) -> List[RequestOutput]:
        bar = progress_bar(len(jobs), "Processed prompts", "prompt", use_tqdm)
        try:
            for _ in self._step_until(jobs, lambda j: bar.update(1)):
                pass
        except BaseException:
            for j in jobs:
                j.req.cancel()
            raise
        finally:
            bar.close()
        return [j.output(self) for j in jobs]

    def _stream(self, job: "_Job") -> Iterator[str]:
        try:
            for deltas in self._step_until([job]):
                for _, text in deltas:
                    yield text
        finally:
            job.req.cancel()  # no-op once done; frees the sequence of an abandoned or interrupted stream
        if job.req.finish_reason == "error":
            raise RuntimeError(f"generation failed: {job.req.error}")


class _Job:
    def __init__(self, request_id: str, prompt: Optional[str], ids: List[int], params: SamplingParams, req: Any) -> None:
        self.request_id, self.prompt, self.ids, self.params, self.req = request_id, prompt, ids, params, req

    def output(self, llm: LLM) -> RequestOutput:
        r = self.req
        if r.finish_reason == "error":
            raise RuntimeError(f"generation failed: {r.error}")
        logprobs = None
        cumulative = None
        if self.params.logprobs is not None:
            tok = llm._model.tokenizer()
            logprobs = []
            cumulative = 0.0
            for tid, lp, top in r.logprobs():
                d: Dict[int, Logprob] = {}
                for rank, (i, l) in enumerate(top, 1):
                    d[i] = Logprob(l, rank, tok.decode([i]))
                if tid not in d:
                    d[tid] = Logprob(lp, None, tok.decode([tid]))
                logprobs.append(d)
                cumulative += lp
        calls = [ToolCall(i, n, a) for i, n, a in r.tool_calls()]
        reasoning = r.reasoning if r.reasoning else None
        out = CompletionOutput(index=0, text=r.text, token_ids=list(r.token_ids), cumulative_logprob=cumulative,
                               logprobs=logprobs, finish_reason=r.finish_reason, reasoning_content=reasoning,
                               tool_calls=calls)
        return RequestOutput(request_id=self.request_id, prompt=self.prompt, prompt_token_ids=list(self.ids),
                             outputs=[out], finished=True, num_cached_tokens=r.n_reused)
