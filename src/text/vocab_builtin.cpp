// the o200k_base vocabulary compiled into the binary, so an installed oss4 tokenizes from any folder without the
// source tree. The bytes are the file itself (data/o200k_base.tiktoken), placed by the assembler's .incbin:
// no generated 20 MB array source, no copy at start-up.
#include "text/tokenizer.h"

#ifndef OSS4_VOCAB_FILE
#error "OSS4_VOCAB_FILE must name data/o200k_base.tiktoken (set by CMakeLists.txt)"
#endif

// clang-format off
__asm__(
    ".pushsection .rodata\n"
    ".balign 16\n"
    "oss4_builtin_vocab_begin:\n"
    ".incbin \"" OSS4_VOCAB_FILE "\"\n"
    "oss4_builtin_vocab_end:\n"
    ".popsection\n");
// clang-format on

extern "C" const char oss4_builtin_vocab_begin[];
extern "C" const char oss4_builtin_vocab_end[];

namespace oss4 {

std::string_view builtin_vocab() {
  return {oss4_builtin_vocab_begin, static_cast<size_t>(oss4_builtin_vocab_end - oss4_builtin_vocab_begin)};
}

}  // namespace oss4
