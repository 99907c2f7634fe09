// The CUDA backend: Forward (runtime/forward.h) over the shared gpt-oss schedule (runtime/schedule.h) with every op on
// the device (ops.h, kernels.h), weights prepared by cuda_weights.h, K/V in BF16 pages (cuda_kv.h). Activations are
// BF16 at every matmul input (the residual stream, norms, softmax and all sums f32). Made through make_forward
// (backend/backend.h) only. Built when nvcc is found (OSS4_HAVE_CUDA).
#pragma once

#include <memory>
#include <string>

#include "backend/options.h"
#include "core/mem_bandwidth.h"
#include "model/weights.h"
#include "runtime/forward.h"

namespace oss4 {

Result<std::unique_ptr<Forward>> make_cuda_forward(const ModelWeights& m, const BackendOptions& o, const ProgressFn& progress);
// the options the CUDA backend refuses before any weights: no device visible, activations other than BF16
Status check_cuda_options(const BackendOptions& o);
// CUDA devices this process sees (0 when the driver is missing or CUDA_VISIBLE_DEVICES hides them all)
int cuda_device_count();
// "NVIDIA H100 80GB HBM3, sm_90, 79.1 GiB" of device 0, or the error
Result<std::string> cuda_device_summary();
// device 0's memory bandwidth: device-to-device copies of `bytes`, bytes read + written per second, `passes` timed
// after one warm-up (the ceiling `oss4 bench --device cuda` reports its decode traffic against)
Result<ReadBandwidth> measure_device_bandwidth(size_t bytes, int passes);
// bytes of device 0's memory in use now (total - free: every process's), and free now
Result<size_t> cuda_memory_in_use();
Result<size_t> cuda_memory_free();

}  // namespace oss4
