// oss4._core: the native half of the Python package (python/oss4/ is the other half, and the API users see). It
// binds what the CLI runs, from the same static libraries (oss4_core, oss4_serve): Model::load, the engine's
// continuous batching (runtime/engine.h, as `oss4 serve` runs it), the tokenizer, the harmony renderer and the output
// parser the server uses, quantize_checkpoint. The scheduling loop is Python's (oss4/_llm.py): each call here is one
// bounded piece of work, the model's steps run without the GIL, and Ctrl-C is checked between them.
#include "common.h"

NB_MODULE(_core, m) {
  m.doc() = "oss4's native module: use the oss4 package (LLM, SamplingParams, Tokenizer, quantize)";
  oss4::py::bind_tokenizer(m);
  oss4::py::bind_request(m);
  oss4::py::bind_engine(m);
  oss4::py::bind_quantize(m);
}
