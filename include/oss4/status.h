// Status and Result: how library code reports user and I/O errors (with context) instead of exiting.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <variant>

namespace oss4 {

class Status {
 public:
  Status() = default;
  static Status ok_status() { return Status(); }
  static Status error(std::string message) {
    Status s;
    s.ok_ = false;
    s.message_ = std::move(message);
    return s;
  }

  bool ok() const { return ok_; }
  const std::string& message() const { return message_; }

  // prefixes context, e.g. "model.safetensors: " + message.
  Status with_context(const std::string& context) const {
    if (ok_) return *this;
    return error(context + ": " + message_);
  }

 private:
  bool ok_ = true;
  std::string message_;
};

inline Status ok_status() { return Status::ok_status(); }
inline Status error(std::string message) { return Status::error(std::move(message)); }

template <class T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}           // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {     // NOLINT(google-explicit-constructor)
    if (std::get<Status>(v_).ok()) {
      std::fprintf(stderr, "%s:%d: Result constructed from an ok Status\n", __FILE__, __LINE__);
      std::abort();
    }
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  Status status() const { return ok() ? Status() : std::get<Status>(v_); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &std::get<T>(v_); }
  const T* operator->() const { return &std::get<T>(v_); }
  T& operator*() & { return std::get<T>(v_); }
  const T& operator*() const& { return std::get<T>(v_); }
  T&& operator*() && { return std::get<T>(std::move(v_)); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace oss4

#define OSS4_CONCAT_INNER(a, b) a##b
#define OSS4_CONCAT(a, b) OSS4_CONCAT_INNER(a, b)

// returns the Status from the enclosing function when expr is not ok.
#define OSS4_TRY(expr)                          \
  do {                                          \
    ::oss4::Status oss4_try_s_ = (expr);        \
    if (!oss4_try_s_.ok()) return oss4_try_s_;  \
  } while (0)

#define OSS4_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()

#define OSS4_ASSIGN_OR_RETURN(lhs, expr) \
  OSS4_ASSIGN_OR_RETURN_IMPL(OSS4_CONCAT(oss4_res_, __LINE__), lhs, expr)

// programmer errors only: prints file:line and aborts.
#define OSS4_CHECK(cond)                                                              \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
      std::abort();                                                                   \
    }                                                                                 \
  } while (0)
