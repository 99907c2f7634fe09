// The serving engine (runtime/engine.h) under the names the HTTP layer uses: src/serve/ puts HTTP in front of it.
#pragma once

#include "runtime/engine.h"

namespace oss4::serve {

using oss4::Engine;
using oss4::EngineConfig;
using oss4::EngineStats;
using oss4::GenRequest;
using oss4::Sequence;
using oss4::SubmitError;
using oss4::SubmitResult;
using oss4::TokenLogprob;
using oss4::TopLogprob;
using FinishReason = oss4::StopReason;  // a sequence's end, as the OpenAI responses name it (finish_reason)
inline const char* finish_reason_name(FinishReason r) { return stop_reason_name(r); }

}  // namespace oss4::serve
