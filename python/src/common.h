// What the native module's files share: turning oss4's Status into Python exceptions, UTF-8 text out, and the
// functions that bind each part (one file each: tokenizer.cpp, request.cpp, engine.cpp, quantize.cpp).
//
// Errors keep oss4's one-line Status message: FileNotFoundError for a path that does not exist, ValueError for bad
// arguments (options, sampling parameters, a prompt that does not fit), RuntimeError for everything else.
#pragma once

#include <nanobind/nanobind.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>

#include "oss4/status.h"

namespace oss4::py {

namespace nb = nanobind;

enum class Err { kValue, kRuntime };

// sets the Python error and throws nb::python_error (nanobind hands it to Python as it is).
[[noreturn]] void raise(PyObject* type, const std::string& msg);

inline void check(const Status& s, Err kind = Err::kRuntime) {
  if (!s.ok()) raise(kind == Err::kValue ? PyExc_ValueError : PyExc_RuntimeError, s.message());
}

template <class T>
T take(Result<T>&& r, Err kind = Err::kRuntime) {
  check(r.status(), kind);
  return std::move(r).value();
}

// FileNotFoundError unless `path` exists ("builtin:..." names the compiled-in vocabulary and always does).
void require_path(const std::string& path, const char* what);

// text for Python: invalid UTF-8 (a token cut inside a character) becomes U+FFFD, never an exception.
nb::str utf8(const std::string& s);

// after a step of work done without the GIL: a pending signal (Ctrl-C) raises its exception (KeyboardInterrupt).
void check_signals();

// a progress callback for library code running without the GIL: each call takes the GIL and calls `progress`; an
// exception from it cannot cross the library, so it is kept (restored as the pending Python error), *failed is set,
// later calls do nothing, and the caller throws nb::python_error once the library returns. Empty when progress is.
inline std::function<void(int64_t, int64_t)> gil_progress(const std::function<void(int64_t, int64_t)>& progress, bool* failed) {
  if (!progress) return {};
  return [&progress, failed](int64_t done, int64_t total) {
    nb::gil_scoped_acquire gil;
    if (*failed) return;
    try {
      progress(done, total);
    } catch (nb::python_error& e) {
      e.restore();
      *failed = true;
    }
  };
}

void bind_tokenizer(nb::module_& m);
void bind_request(nb::module_& m);
void bind_engine(nb::module_& m);
void bind_quantize(nb::module_& m);

}  // namespace oss4::py
