// Result<T, E>: a value or an error, shaped like std::expected (C++23) so
// the code can move to it later. Expected network and parse outcomes are
// values, not exceptions (ARCHITECTURE.md, "Errors"). E is Error unless a
// port needs more (a policy fetch carries its RFC 8460 type and whether it
// is temporary: FetchError).
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace mtasts::policy {

// A classified failure: `code` is a stable machine-readable reason (it lands
// in logs, JSON and TLSRPT failure-reason-code), `detail` is for humans.
struct Error {
  std::string code;
  std::string detail;
};

template <class T, class E = Error>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(E error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  const T& value() const& { return std::get<0>(v_); }
  T& value() & { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const T& operator*() const& { return value(); }
  const T* operator->() const { return &value(); }

  const E& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, E> v_;
};

}  // namespace mtasts::policy
