"""LLM.chat against the harmony renderer's goldens (openai-harmony 0.0.8's own output) and the output parser: the
reply's tokens are those of a raw generate over the rendered prompt, and a forced tool call comes back parsed."""

import json
import os

import pytest

import oss4
from conftest import REPO

GREEDY = oss4.SamplingParams(temperature=0, max_tokens=16)
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Gets the weather",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}


def golden(name):
    with open(os.path.join(REPO, "tests", "data", "harmony", "render.json")) as f:
        return next(c for c in json.load(f)["cases"] if c["name"] == name)


def test_render_equals_harmony_golden(llm, tok):
    g = golden("simple_chat")
    ids = llm.render_chat([{"role": "user", "content": "What is 2 + 2?"}])
    assert ids == g["ids"]
    assert tok.decode(ids) == g["text"]
    high = tok.decode(llm.render_chat([{"role": "user", "content": "hi"}], reasoning_effort="high"))
    assert "Reasoning: high" in high


def test_chat_is_generate_over_the_rendered_prompt(llm, tok):
    conv = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]
    out = llm.chat(conv, GREEDY, use_tqdm=False)
    assert len(out) == 1
    c = out[0].outputs[0]
    prompt = llm.render_chat(conv)
    assert out[0].prompt_token_ids == prompt and out[0].prompt == tok.decode(prompt)
    stops = [tok.special_id("<|return|>"), tok.special_id("<|call|>")]
    raw = llm.generate([prompt], oss4.SamplingParams(temperature=0, max_tokens=16, stop_token_ids=stops,
                                                     skip_special_tokens=False), use_tqdm=False)[0].outputs[0]
    assert c.token_ids == raw.token_ids
    assert c.finish_reason == raw.finish_reason
    # the parse keeps every piece of text: final text, reasoning and tool-call arguments all come from the reply
    whole = tok.decode(c.token_ids)
    for piece in (c.text, c.reasoning_content or "", *[t.arguments for t in c.tool_calls]):
        assert piece in whole


def test_forced_tool_call_is_parsed(llm, tok):
    conv = [{"role": "user", "content": "Weather in Paris?"}]
    choice = {"type": "function", "function": {"name": "get_weather"}}
    out = llm.chat(conv, oss4.SamplingParams(temperature=0, max_tokens=12), use_tqdm=False, tools=[WEATHER],
                   tool_choice=choice)[0].outputs[0]
    prefix = tok.encode("<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>", allow_special=True)
    assert out.token_ids[:len(prefix)] == prefix
    assert len(out.tool_calls) == 1
    call = out.tool_calls[0]
    assert call.name == "get_weather" and call.type == "function" and call.id.startswith("call_")
    body = [t for t in out.token_ids[len(prefix):] if t != tok.special_id("<|call|>")]
    end = body.index(tok.special_id("<|end|>")) if tok.special_id("<|end|>") in body else len(body)
    assert call.arguments == tok.decode(body[:end])
    # the tool is rendered into the prompt as harmony's TypeScript namespace
    assert "namespace functions" in tok.decode(llm.render_chat(conv, tools=[WEATHER]))


def test_many_conversations_equal_one_by_one(llm):
    convs = [[{"role": "user", "content": f"Question number {k}"}] for k in range(4)]
    batch = llm.chat(convs, GREEDY, use_tqdm=False)
    singles = [llm.chat(c, GREEDY, use_tqdm=False)[0] for c in convs]
    assert [o.outputs[0].token_ids for o in batch] == [o.outputs[0].token_ids for o in singles]
    assert [o.outputs[0].text for o in batch] == [o.outputs[0].text for o in singles]


def test_chat_stream(llm):
    conv = [{"role": "user", "content": "stream please"}]
    p = oss4.SamplingParams(temperature=0, max_tokens=24)
    assert "".join(llm.chat_stream(conv, p)) == llm.chat(conv, p, use_tqdm=False)[0].outputs[0].text


def test_bad_conversations(llm):
    with pytest.raises(ValueError):
        llm.chat([], use_tqdm=False)
    with pytest.raises(ValueError, match="role"):
        llm.chat([{"content": "no role"}], use_tqdm=False)
    with pytest.raises(ValueError, match="reasoning_effort"):
        llm.chat([{"role": "user", "content": "hi"}], use_tqdm=False, reasoning_effort="extreme")
    with pytest.raises(ValueError, match="tool_choice"):
        llm.chat([{"role": "user", "content": "hi"}], use_tqdm=False, tools=[WEATHER],
                 tool_choice={"type": "function", "function": {"name": "nope"}})


def scripted_chat(llm, tok, reply, **kw):
    """chat() over a known reply: the engine's script facility emits `reply`'s ids in place of sampled ones (as the
    server's tests drive it), so the harmony parse of a real reply is checked end to end."""
    ids = llm.render_chat([{"role": "user", "content": "What is the capital of France?"}], **kw)
    job = llm._submit(ids, None, oss4.SamplingParams(temperature=0, max_tokens=64), chat=True,
                      script=tok.encode(reply, allow_special=True))
    return llm._run([job], False)[0].outputs[0]


def test_reasoning_final_and_tool_calls_apart(llm, tok):
    c = scripted_chat(llm, tok, "<|channel|>analysis<|message|>The user asks about France.<|end|>"
                                "<|start|>assistant<|channel|>final<|message|>Paris.<|return|>")
    assert c.reasoning_content == "The user asks about France."
    assert c.text == "Paris."
    assert c.tool_calls == [] and c.finish_reason == "stop"
    assert c.token_ids[-1] == tok.special_id("<|return|>")
    c = scripted_chat(llm, tok, "<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant<|channel|>commentary"
                                " to=functions.get_weather <|constrain|>json<|message|>{\"city\": \"Paris\"}<|call|>",
                      tools=[WEATHER])
    assert c.reasoning_content == "Need weather." and c.text == ""
    assert [(t.name, t.arguments) for t in c.tool_calls] == [("get_weather", '{"city": "Paris"}')]
    assert c.finish_reason == "stop"
