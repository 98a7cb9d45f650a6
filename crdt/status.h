// Status and Result<T>: errors as values across module boundaries.
//
// A Status is ok or carries a code and a message meant for a human (it is sent
// to clients verbatim in error replies). NotFound is an ordinary outcome, not an
// exception. Result<T> holds either a value or a non-ok Status.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace lattice {

class Status {
 public:
  enum class Code : std::uint8_t {
    kOk,
    kNotFound,
    kInvalidArgument,
    kCorruption,
    kIOError,
    kWrongType,
    kResourceExhausted,
    kUnavailable,
    kTimeout,
    kRefused,
  };

  Status() = default;
  static Status Ok() { return {}; }
  static Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
  static Status Corruption(std::string m) { return {Code::kCorruption, std::move(m)}; }
  static Status IOError(std::string m) { return {Code::kIOError, std::move(m)}; }
  static Status WrongType(std::string m) { return {Code::kWrongType, std::move(m)}; }
  static Status ResourceExhausted(std::string m) { return {Code::kResourceExhausted, std::move(m)}; }
  static Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
  static Status Timeout(std::string m) { return {Code::kTimeout, std::move(m)}; }
  static Status Refused(std::string m) { return {Code::kRefused, std::move(m)}; }

  bool ok() const { return code_ == Code::kOk; }
  bool IsNotFound() const { return code_ == Code::kNotFound; }
  bool IsCorruption() const { return code_ == Code::kCorruption; }
  bool IsWrongType() const { return code_ == Code::kWrongType; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // The same code with `prefix` before the message.
  Status Annotate(std::string_view prefix) const { return {code_, std::string(prefix) + message_}; }

  // "Corruption: <message>" style, for logs.
  std::string ToString() const;

 private:
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  Code code_ = Code::kOk;
  std::string message_;
};

// A value or the Status that explains why there is none.
template <class T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}              // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}      // NOLINT: implicit by design

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }
  const T& operator*() const { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace lattice
