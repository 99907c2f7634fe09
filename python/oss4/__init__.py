"""oss4: gpt-oss models in NVFP4 on the CPU, from Python, with vLLM's names.

    from oss4 import LLM, SamplingParams
    llm = LLM(model="gpt-oss-20b-nvfp4")
    outputs = llm.generate(["The capital of France is"], SamplingParams(temperature=0.8, top_p=0.95, max_tokens=256))
    print(outputs[0].outputs[0].text)

docs/python.md describes the API, how it maps to vLLM's, and threading (the GIL is released while the model runs).
"""

from ._llm import LLM
from ._outputs import CompletionOutput, Logprob, RequestOutput, ToolCall
from ._params import SamplingParams
from ._quantize import quantize
from ._tokenizer import Tokenizer

__version__ = "0.1.0"

__all__ = [
    "LLM",
    "SamplingParams",
    "RequestOutput",
    "CompletionOutput",
    "Logprob",
    "ToolCall",
    "Tokenizer",
    "quantize",
    "__version__",
]
