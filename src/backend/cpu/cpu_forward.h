// The CPU backend: Forward (runtime/forward.h) over the shared gpt-oss schedule (runtime/schedule.h) and the CPU op
// table (cpu_ops.h). It owns its thread pool, its kernel rung and numeric path (CpuExec, from BackendOptions), its
// prepared weights (prepare.h) and host f32 KV caches. Made through make_forward (backend/backend.h) only.
#pragma once

#include <memory>

#include "backend/options.h"
#include "model/weights.h"
#include "runtime/forward.h"

namespace oss4 {

Result<std::unique_ptr<Forward>> make_cpu_forward(const ModelWeights& m, const BackendOptions& o, const ProgressFn& progress);
// the options the CPU backend refuses before any weights: a kernel rung this CPU or build cannot run
Status check_cpu_options(const BackendOptions& o);

}  // namespace oss4
