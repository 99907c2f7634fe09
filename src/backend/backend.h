// The one place a backend is chosen: make_forward builds the Forward (runtime/forward.h) of the device BackendOptions
// names, from loaded weights. Adding a backend is its files under src/backend/NAME/ and one line here.
#pragma once

#include <memory>

#include "backend/options.h"
#include "model/weights.h"
#include "runtime/forward.h"

namespace oss4 {

// the weights must outlive the Forward. The backend prepares its own copy of what it lays out differently (the CPU:
// row-major NVFP4 matrices repacked input-major, or every NVFP4 matrix in tiles on the AVX-512 rung; an lm_head
// quantized at load); m itself is left as it was, except that checkpoint pages the backend no longer reads are
// released (they read back from the file if touched). progress (optional, called on this thread): matrices prepared.
Result<std::unique_ptr<Forward>> make_forward(const ModelWeights& m, const BackendOptions& o, const ProgressFn& progress = nullptr);

// what make_forward would refuse about the options alone (an unknown device, a kernel rung this machine cannot run),
// so a bad option fails before minutes of loading. Errors name the option.
Status check_backend_options(const BackendOptions& o);

}  // namespace oss4
