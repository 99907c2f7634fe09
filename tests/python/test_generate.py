"""LLM.generate against `oss4 generate` (token ids), batching against one-by-one runs, stop conditions, streaming,
log-probabilities and Ctrl-C."""

import os
import signal
import threading
import time

import pytest

import oss4
from conftest import run_cli

GREEDY = oss4.SamplingParams(temperature=0, max_tokens=12)


def cli_ids(model, ids, n, *extra):
    out = run_cli("generate", "-m", model, "--ids", ",".join(map(str, ids)), "-n", str(n), "-q", *extra)
    return [int(x) for x in out.split()]


def test_greedy_equals_cli(llm, tiny_dir):
    prompt = [200006, 1428, 200008, 3575, 553, 17554, 200007, 200006, 173781]
    out = llm.generate([prompt], GREEDY, use_tqdm=False)
    assert len(out) == 1 and out[0].prompt_token_ids == prompt
    got = out[0].outputs[0].token_ids
    assert got == cli_ids(tiny_dir, prompt, 12, "--temperature", "0")
    assert out[0].outputs[0].finish_reason in ("stop", "length")
    assert len(got) == 12 or out[0].outputs[0].finish_reason == "stop"


def test_ignore_eos_length_and_text_prompt(llm, tiny_dir, tok):
    p = oss4.SamplingParams(temperature=0, max_tokens=20, ignore_eos=True)
    out = llm.generate("The capital of France is", p, use_tqdm=False)[0]
    assert out.prompt == "The capital of France is"
    assert out.prompt_token_ids == tok.encode("The capital of France is", allow_special=True)
    c = out.outputs[0]
    assert len(c.token_ids) == 20 and c.finish_reason == "length"
    cli = run_cli("generate", "-m", tiny_dir, "--prompt", "The capital of France is", "--print-ids", "-n", "20",
                  "--temperature", "0", "--ignore-eos", "-q")
    assert c.token_ids == [int(x) for x in cli.split()]
    # the text is the tokens' text, special tokens left out (vLLM's skip_special_tokens)
    assert c.text == tok.decode([t for t in c.token_ids if not tok.is_special(t)])


def test_seeded_sampling_equals_cli(llm, tiny_dir):
    prompt = [200006, 1428, 200008, 12194, 200007, 200006, 173781]
    p = oss4.SamplingParams(temperature=0.8, top_p=0.95, top_k=40, seed=5, max_tokens=16, ignore_eos=True)
    a = llm.generate([prompt], p, use_tqdm=False)[0].outputs[0].token_ids
    b = llm.generate([prompt], p, use_tqdm=False)[0].outputs[0].token_ids
    assert a == b
    assert a == cli_ids(tiny_dir, prompt, 16, "--temperature", "0.8", "--top-p", "0.95", "--top-k", "40", "--seed", "5",
                        "--ignore-eos")


def test_batch_equals_one_by_one_and_is_batched(llm):
    prompts = [[200006, 1428, 200008] + list(range(1000, 1000 + 7 * k)) + [200007, 200006, 173781] for k in range(1, 7)]
    prompts.append("Hello, world")
    p = oss4.SamplingParams(temperature=0, max_tokens=10, ignore_eos=True)
    steps0 = llm._model.stats()[2]
    batch = llm.generate(prompts, p, use_tqdm=True)
    steps_batch = llm._model.stats()[2] - steps0
    singles = []
    steps0 = llm._model.stats()[2]
    for q in prompts:
        singles.append(llm.generate(q, p, use_tqdm=False)[0])
    steps_single = llm._model.stats()[2] - steps0
    assert [o.outputs[0].token_ids for o in batch] == [o.outputs[0].token_ids for o in singles]
    assert [o.outputs[0].text for o in batch] == [o.outputs[0].text for o in singles]
    # continuous batching: the prompts advanced together, not one after another
    assert steps_batch < steps_single / 2, (steps_batch, steps_single)


def test_prompt_forms(llm, tok):
    p = oss4.SamplingParams(temperature=0, max_tokens=4, ignore_eos=True)
    ids = tok.encode("abc")
    forms = [llm.generate(x, p, use_tqdm=False) for x in ("abc", ["abc"], ids, [ids], {"prompt": "abc"},
                                                          {"prompt_token_ids": ids}, [{"prompt_token_ids": ids}])]
    assert all(len(f) == 1 for f in forms)
    assert len({tuple(f[0].outputs[0].token_ids) for f in forms}) == 1
    # one SamplingParams per prompt
    two = llm.generate(["abc", "abc"], [p, oss4.SamplingParams(temperature=0, max_tokens=2, ignore_eos=True)],
                       use_tqdm=False)
    assert two[1].outputs[0].token_ids == two[0].outputs[0].token_ids[:2]


def test_stop_string_and_stop_token(llm):
    p = oss4.SamplingParams(temperature=0, max_tokens=40, ignore_eos=True)
    full = llm.generate("Once upon a time", p, use_tqdm=False)[0].outputs[0]
    assert len(full.text) > 10
    stop = full.text[5:8]
    cut = llm.generate("Once upon a time", oss4.SamplingParams(temperature=0, max_tokens=40, ignore_eos=True, stop=[stop]),
                       use_tqdm=False)[0].outputs[0]
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[:full.text.index(stop)]
    stop_id = full.token_ids[6]
    cut = llm.generate("Once upon a time", oss4.SamplingParams(temperature=0, max_tokens=40, ignore_eos=True,
                                                               stop_token_ids=[stop_id]), use_tqdm=False)[0].outputs[0]
    first = full.token_ids.index(stop_id)
    assert cut.finish_reason == "stop" and cut.token_ids == full.token_ids[:first + 1]


def test_stream_equals_generate(llm):
    p = oss4.SamplingParams(temperature=0, max_tokens=24, ignore_eos=True)
    deltas = list(llm.generate_stream("Streaming test", p))
    assert len(deltas) > 1
    assert "".join(deltas) == llm.generate("Streaming test", p, use_tqdm=False)[0].outputs[0].text
    # leaving a stream early cancels its sequence: the engine is empty again after the next run
    it = llm.generate_stream("abandoned", oss4.SamplingParams(temperature=0, max_tokens=500, ignore_eos=True))
    next(it)
    it.close()
    llm.generate("next", GREEDY, use_tqdm=False)
    assert llm._model.stats()[:2] == (0, 0)
    with pytest.raises(ValueError):
        next(llm.generate_stream(["one", "two"], p))


def test_logprobs(llm):
    p = oss4.SamplingParams(temperature=0, max_tokens=6, ignore_eos=True, logprobs=3)
    c = llm.generate("log", p, use_tqdm=False)[0].outputs[0]
    assert len(c.logprobs) == len(c.token_ids) == 6
    for t, d in zip(c.token_ids, c.logprobs):
        assert d[t].rank == 1  # greedy: the chosen token is the most likely
        assert len(d) == 3 and all(v.logprob <= 0 for v in d.values())
    assert c.cumulative_logprob == pytest.approx(sum(d[t].logprob for t, d in zip(c.token_ids, c.logprobs)))


def test_errors(llm, tiny_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="nonexistent"):
        oss4.LLM(model=str(tmp_path / "nonexistent"))
    with pytest.raises(ValueError, match="activations"):
        oss4.LLM(model=tiny_dir, activations="q4")
    with pytest.raises(ValueError, match="device"):
        oss4.LLM(model=tiny_dir, device="tpu")
    with pytest.raises(RuntimeError):
        oss4.LLM(model=str(tmp_path))  # a folder that is not a checkpoint
    for bad in (dict(temperature=-1), dict(top_p=0), dict(max_tokens=0), dict(n=2), dict(presence_penalty=1.0)):
        with pytest.raises(ValueError):
            oss4.SamplingParams(**bad)
    with pytest.raises(ValueError, match="vocabulary"):
        llm.generate([[1, 2, 10**7]], use_tqdm=False)
    with pytest.raises(ValueError):
        llm.generate([[]], use_tqdm=False)
    with pytest.raises(ValueError):
        llm.generate([[1] * 5000], use_tqdm=False)  # longer than max_model_len
    with pytest.raises(TypeError):
        llm.generate(5, use_tqdm=False)
    with pytest.raises(ValueError):
        llm.generate(["a", "b"], [GREEDY], use_tqdm=False)
    # the engine is still usable after the errors
    assert len(llm.generate("ok", GREEDY, use_tqdm=False)[0].outputs[0].token_ids) >= 1


def test_ctrl_c_cancels_cleanly(llm):
    p = oss4.SamplingParams(temperature=0, max_tokens=3000, ignore_eos=True)
    prompts = [f"long run {k}" for k in range(8)]
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    t0 = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        llm.generate(prompts, p, use_tqdm=False)
    timer.cancel()
    assert time.monotonic() - t0 < 60
    # the cancelled sequences are dropped: the next run works and matches a fresh run's output
    q = oss4.SamplingParams(temperature=0, max_tokens=8, ignore_eos=True)
    a = llm.generate(prompts[:2], q, use_tqdm=False)
    b = [llm.generate(x, q, use_tqdm=False)[0] for x in prompts[:2]]
    assert [o.outputs[0].token_ids for o in a] == [o.outputs[0].token_ids for o in b]
    running, waiting = llm._model.stats()[:2]
    assert running == 0 and waiting == 0


def test_two_threads_share_one_llm(llm):
    """The GIL is released while a step runs and one thread steps at a time: two threads generating on one LLM both
    finish (no deadlock) with what each gets alone, since every step advances both threads' sequences."""
    p = oss4.SamplingParams(temperature=0, max_tokens=30, ignore_eos=True)
    prompts = [["thread a one", "thread a two"], ["thread b one", "thread b two", "thread b three"]]
    alone = [[o.outputs[0].token_ids for o in llm.generate(ps, p, use_tqdm=False)] for ps in prompts]
    got = [None, None]
    errors = []

    def work(k):
        try:
            got[k] = [o.outputs[0].token_ids for o in llm.generate(prompts[k], p, use_tqdm=False)]
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread is stuck"
    assert not errors, errors
    assert got == alone
