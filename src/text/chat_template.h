// The Hugging Face chat template oss4 writes beside synthesized weights (data/chat_template.jinja, compiled in):
// renders HF messages in the harmony format exactly as openai-harmony does (see the file's header comment).
#pragma once

#include <string_view>

namespace oss4 {

std::string_view chat_template_jinja();

}  // namespace oss4
