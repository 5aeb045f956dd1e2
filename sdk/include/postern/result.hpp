// Result<T>: a value or an error (status + message). g++ 12 has no
// std::expected; this is the small one the house style asks for.
#pragma once

#include <postern/abi.h>

#include <string>
#include <utility>
#include <variant>

namespace postern::sdk {

struct Error {
  pst_status status = PST_ERR;
  std::string message;
  // Temporary: the protocol answers 451 / NO [UNAVAILABLE] and the client
  // retries (SCALE-OUT rule 2).
  bool retryable() const { return status == PST_ERR_RETRYABLE || status == PST_ERR_CLOSED; }
};

template <class T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Error error) : v_(std::move(error)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

}  // namespace postern::sdk
