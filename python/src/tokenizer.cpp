// oss4._core.Tokenizer (tokenizer.h): encode, decode and the special tokens, as `oss4 tokenize` gives them.
#include "tokenizer.h"

#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace oss4::py {

namespace {

using namespace nb::literals;

PyTokenizer load(const std::optional<std::string>& path) {
  const std::string p = path.value_or(default_vocab_path());
  require_path(p, "tokenizer");
  // a model directory means its tokenizer.json (else the built-in vocabulary), as the CLI's --tokenizer reads it
  std::error_code ec;
  auto tok = std::filesystem::is_directory(p, ec) ? load_model_tokenizer(p, "") : load_tokenizer(p);
  auto shared = std::make_shared<const Tokenizer>(take(std::move(tok), Err::kValue));
  return PyTokenizer{shared, shared.get(), nb::none()};
}

std::string decode_raw(const PyTokenizer& t, const std::vector<int32_t>& ids) { return take(t.tok->decode(ids), Err::kValue); }

}  // namespace

void bind_tokenizer(nb::module_& m) {
  nb::class_<PyTokenizer>(m, "Tokenizer", "the o200k_harmony tokenizer (exactly tiktoken's ids)")
      .def_static("load", &load, "path"_a = nb::none(),
                  "a model directory (its tokenizer.json), a tokenizer.json or a .tiktoken file; None: the built-in vocabulary")
      .def("encode", [](const PyTokenizer& t, const std::string& text, bool allow_special) {
             std::vector<int32_t> out;
             check(t.tok->encode(text, allow_special, &out), Err::kValue);
             return out;
           }, "text"_a, "allow_special"_a = false)
      .def("decode", [](const PyTokenizer& t, const std::vector<int32_t>& ids) { return utf8(decode_raw(t, ids)); }, "ids"_a)
      .def("decode_bytes", [](const PyTokenizer& t, const std::vector<int32_t>& ids) {
             const std::string b = decode_raw(t, ids);
             return nb::bytes(b.data(), b.size());
           }, "ids"_a)
      .def("token_bytes", [](const PyTokenizer& t, int32_t id) {
             if (id < 0 || id >= t.tok->n_vocab()) raise(PyExc_ValueError, "token id " + std::to_string(id) + " is outside the vocabulary [0, " + std::to_string(t.tok->n_vocab()) + ")");
             const std::string_view b = t.tok->token_bytes(id);
             return nb::bytes(b.data(), b.size());
           }, "id"_a)
      .def("special_id", [](const PyTokenizer& t, const std::string& s) -> std::optional<int32_t> {
             const int32_t id = t.tok->special_id(s);
             return id < 0 ? std::nullopt : std::optional<int32_t>(id);
           }, "text"_a)
      .def("is_special", [](const PyTokenizer& t, int32_t id) { return t.tok->is_special(id); }, "id"_a)
      .def_prop_ro("n_vocab", [](const PyTokenizer& t) { return t.tok->n_vocab(); })
      .def_prop_ro("special_tokens", [](const PyTokenizer& t) {
        std::vector<std::pair<std::string, int32_t>> out;
        for (const SpecialToken& s : t.tok->special_tokens()) out.emplace_back(s.text, s.id);
        return out;
      });
}

}  // namespace oss4::py
