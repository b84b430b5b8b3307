#pragma once
// Error type shared by every layer of shmarray. No exceptions cross our API: every fallible call
// returns Result<T> = std::expected<T, Error>.
#include <cstdint>
#include <expected>
#include <string>
#include <string_view>

namespace shmarray {

// Wire-stable values: never renumber (they travel in error replies).
// Guidance, in the spirit of absl::StatusCode:
//   kInvalidArgument    the request itself is wrong (bad name, dtype, shape): fix the call.
//   kNotFound           no array of that name (or it was removed).
//   kAlreadyExists      create of a name that exists: open it or remove it first.
//   kPermissionDenied   the caller may not do this (mode bits, read-only grant).
//   kResourceExhausted  a limit was hit (bytes, arrays, /dev/shm full, connections).
//   kUnavailable        the broker cannot be reached: start it, or retry the call.
//   kDeadlineExceeded   a timeout elapsed before the operation completed.
//   kProtocolError      malformed/unexpected bytes on the socket; the connection is unusable.
//   kFailedPrecondition the system is not in a state that allows the call; fix the state first.
//   kInternal           a bug or an unexpected OS failure.
//   kDataLoss           the array's bytes cannot be trusted: its segment was truncated or resized
//                       by a writer, or a write was abandoned (possibly torn) and nobody has
//                       published since. Rewrite and publish, or remove and recreate it.
enum class ErrorCode : std::uint16_t {
  kOk = 0,
  kInvalidArgument = 1,
  kNotFound = 2,
  kAlreadyExists = 3,
  kPermissionDenied = 4,
  kResourceExhausted = 5,
  kUnavailable = 6,
  kDeadlineExceeded = 7,
  kProtocolError = 8,
  kFailedPrecondition = 9,
  kInternal = 10,
  kCancelled = 11,
  kDataLoss = 12,
};

// Name of the code without the leading 'k' ("NotFound"); "Unknown" for values out of range.
[[nodiscard]] std::string_view to_string(ErrorCode code) noexcept;
// True when `value` is a known ErrorCode (used when decoding error replies).
[[nodiscard]] bool is_valid_error_code(std::uint16_t value) noexcept;

class Error {
 public:
  Error(ErrorCode code, std::string message, int sys_errno = 0)
      : code_(code), message_(std::move(message)), sys_errno_(sys_errno) {}

  [[nodiscard]] ErrorCode code() const noexcept { return code_; }
  // Human-readable: names the object and, where possible, what to do about it.
  [[nodiscard]] const std::string& message() const noexcept { return message_; }
  // errno of the failing system call, or 0.
  [[nodiscard]] int sys_errno() const noexcept { return sys_errno_; }
  // "NotFound: no array named 'x'".
  [[nodiscard]] std::string to_string() const;

 private:
  ErrorCode code_;
  std::string message_;
  int sys_errno_;
};

template <class T>
using Result = std::expected<T, Error>;

// Shorthand for `return fail(ErrorCode::kNotFound, "...")` in functions returning Result<T>.
[[nodiscard]] inline std::unexpected<Error> fail(ErrorCode code, std::string message,
                                                 int sys_errno = 0) {
  return std::unexpected<Error>(Error(code, std::move(message), sys_errno));
}
// An Error for a failed system call: message + ": " + strerror(err); code chosen from errno.
[[nodiscard]] Error sys_error(std::string_view what, int err);

}  // namespace shmarray
