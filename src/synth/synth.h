// `oss4 synth`: random-weight gpt-oss checkpoints of any config in the real HF layout, written streaming.
#pragma once

#include <cstdint>
#include <string>

#include "model/config.h"
#include "model/weights.h"

namespace oss4 {

struct SynthOptions {
  ModelConfig cfg;
  bool mxfp4 = true;  // experts as *_blocks/*_scales (the release layout); false: the BF16 layout [E, in, out]
  uint64_t seed = 0;
  std::string out_dir;
  uint64_t shard_bytes = 4800000000ull;  // the converter's shard cap; above it shards + index are written
  // a .tiktoken or tokenizer.json to write beside the weights as tokenizer.json + tokenizer_config.json, as the
  // HF repository has them; empty, or a vocabulary smaller than the tokenizer: none written.
  std::string tokenizer_path;
};

// writes the checkpoint into out_dir.oss4-tmp.<pid> and renames it to out_dir when complete; out_dir must not exist
// or be empty. The same seed gives the same model in both layouts (BF16 experts are the decoded MXFP4 values).
Status synth_checkpoint(const SynthOptions& opt, const ProgressFn& progress);

}  // namespace oss4
