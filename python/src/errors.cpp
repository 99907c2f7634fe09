// Status -> Python exceptions, and the signal check between steps (common.h).
#include <filesystem>
#include <system_error>

#include "common.h"

namespace oss4::py {

void raise(PyObject* type, const std::string& msg) {
  PyErr_SetString(type, msg.c_str());
  throw nb::python_error();
}

void require_path(const std::string& path, const char* what) {
  if (path.rfind("builtin:", 0) == 0) return;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) raise(PyExc_FileNotFoundError, std::string(what) + " '" + path + "' does not exist");
}

nb::str utf8(const std::string& s) {
  return nb::steal<nb::str>(PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace"));
}

void check_signals() {
  // PyErr_CheckSignals runs the Python handlers (KeyboardInterrupt for SIGINT) and returns -1 with the error set
  if (PyErr_CheckSignals() != 0) throw nb::python_error();
}

}  // namespace oss4::py
