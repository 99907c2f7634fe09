#include "eval/saved_logits.h"

#include <cmath>
#include <cstring>

#include "format/safetensors.h"

namespace oss4 {

namespace {
constexpr const char* kFormat = "oss4-saved-logits-1";

template <typename T>
Status write_tensor(SafetensorsWriter& w, const std::vector<T>& v) {
  return w.write(v.data(), v.size() * sizeof(T));
}

Result<int64_t> meta_int(const SafetensorsFile& f, const std::string& key) {
  auto it = f.metadata().find(key);
  if (it == f.metadata().end()) return error("metadata '" + key + "' is missing");
  try {
    size_t used = 0;
    const long long v = std::stoll(it->second, &used);
    if (used != it->second.size() || v < 0) throw std::invalid_argument(key);
    return static_cast<int64_t>(v);
  } catch (const std::exception&) {
    return error("metadata '" + key + "' is not a non-negative integer: '" + it->second + "'");
  }
}

template <typename T>
Result<std::vector<T>> read_tensor(const SafetensorsFile& f, const std::string& name, DType dtype, const std::vector<int64_t>& shape) {
  const TensorView* t = f.find(name);
  if (t == nullptr) return error("tensor '" + name + "' is missing");
  if (t->dtype != dtype || t->shape != shape) {
    return error("tensor " + t->describe() + " should be " + dtype_name(dtype) + " " + shape_str(shape));
  }
  std::vector<T> v(static_cast<size_t>(t->numel()));
  if (!v.empty()) std::memcpy(v.data(), t->data, v.size() * sizeof(T));
  return v;
}
}  // namespace

Status write_saved_logits(const std::string& path, const SavedLogits& s) {
  const int64_t n = s.n_scored();
  if (s.ctx < 2 || s.top_k < 1 || s.top_k > s.n_vocab || static_cast<int64_t>(s.ids.size()) != s.n_chunks * s.ctx ||
      n != s.n_chunks * scored_per_chunk(s.ctx) || static_cast<int64_t>(s.top_ids.size()) != n * s.top_k ||
      s.top_logprobs.size() != s.top_ids.size() || static_cast<int64_t>(s.rest_mass.size()) != n) {
    return error(path + ": inconsistent saved-logits sizes (a bug)");
  }
  SafetensorsWriter w(path);
  w.set_metadata("format", kFormat);
  w.set_metadata("ctx", std::to_string(s.ctx));
  w.set_metadata("n_chunks", std::to_string(s.n_chunks));
  w.set_metadata("n_vocab", std::to_string(s.n_vocab));
  w.set_metadata("top_k", std::to_string(s.top_k));
  w.declare("ids", DType::kI32, {static_cast<int64_t>(s.ids.size())});
  w.declare("top_ids", DType::kI32, {n, s.top_k});
  w.declare("top_logprobs", DType::kF32, {n, s.top_k});
  w.declare("rest_mass", DType::kF32, {n});
  w.declare("target_logprob", DType::kF32, {n});
  OSS4_TRY(w.begin());
  OSS4_TRY(write_tensor(w, s.ids));
  OSS4_TRY(write_tensor(w, s.top_ids));
  OSS4_TRY(write_tensor(w, s.top_logprobs));
  OSS4_TRY(write_tensor(w, s.rest_mass));
  OSS4_TRY(write_tensor(w, s.target_logprob));
  return w.finish();
}

Result<SavedLogits> read_saved_logits(const std::string& path) {
  auto opened = SafetensorsFile::open(path);
  if (!opened.ok()) return opened.status();
  const SafetensorsFile& f = **opened;
  auto fmt = f.metadata().find("format");
  if (fmt == f.metadata().end() || fmt->second != kFormat) {
    return error(path + ": not a saved-logits file of oss4 perplexity --save-logits (metadata format should be " + kFormat + ")");
  }
  SavedLogits s;
  auto fill = [&]() -> Status {
    OSS4_ASSIGN_OR_RETURN(s.ctx, meta_int(f, "ctx"));
    OSS4_ASSIGN_OR_RETURN(s.n_chunks, meta_int(f, "n_chunks"));
    OSS4_ASSIGN_OR_RETURN(s.n_vocab, meta_int(f, "n_vocab"));
    OSS4_ASSIGN_OR_RETURN(s.top_k, meta_int(f, "top_k"));
    if (s.ctx < 2 || s.ctx > (int64_t{1} << 24)) return error("ctx " + std::to_string(s.ctx) + " is out of range");
    if (s.n_vocab < 1 || s.n_vocab > (int64_t{1} << 24)) return error("n_vocab " + std::to_string(s.n_vocab) + " is out of range");
    if (s.top_k < 1 || s.top_k > s.n_vocab) return error("top_k " + std::to_string(s.top_k) + " is not in 1..n_vocab");
    if (s.n_chunks < 1 || s.n_chunks > (int64_t{1} << 30) / s.ctx) return error("n_chunks " + std::to_string(s.n_chunks) + " is out of range");
    const int64_t n = s.n_chunks * scored_per_chunk(s.ctx);
    OSS4_ASSIGN_OR_RETURN(s.ids, read_tensor<int32_t>(f, "ids", DType::kI32, {s.n_chunks * s.ctx}));
    OSS4_ASSIGN_OR_RETURN(s.top_ids, read_tensor<int32_t>(f, "top_ids", DType::kI32, {n, s.top_k}));
    OSS4_ASSIGN_OR_RETURN(s.top_logprobs, read_tensor<float>(f, "top_logprobs", DType::kF32, {n, s.top_k}));
    OSS4_ASSIGN_OR_RETURN(s.rest_mass, read_tensor<float>(f, "rest_mass", DType::kF32, {n}));
    OSS4_ASSIGN_OR_RETURN(s.target_logprob, read_tensor<float>(f, "target_logprob", DType::kF32, {n}));
    for (int32_t id : s.ids) {
      if (id < 0 || id >= s.n_vocab) return error("ids holds " + std::to_string(id) + ", outside the vocabulary");
    }
    for (int32_t id : s.top_ids) {
      if (id < 0 || id >= s.n_vocab) return error("top_ids holds " + std::to_string(id) + ", outside the vocabulary");
    }
    for (float v : s.top_logprobs) {
      if (!(v <= 0)) return error("top_logprobs holds " + std::to_string(v) + ", not a log-probability");
    }
    for (float v : s.target_logprob) {
      if (!(v <= 0)) return error("target_logprob holds " + std::to_string(v) + ", not a log-probability");
    }
    for (float v : s.rest_mass) {
      if (!(v >= 0 && v <= 1)) return error("rest_mass holds " + std::to_string(v) + ", not a probability");
    }
    return ok_status();
  };
  OSS4_TRY(fill().with_context(path));
  return s;
}

}  // namespace oss4
