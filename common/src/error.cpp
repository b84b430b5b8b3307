#include "shmarray/error.hpp"

#include <cerrno>
#include <cstring>

namespace shmarray {

std::string_view to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::kOk: return "Ok";
    case ErrorCode::kInvalidArgument: return "InvalidArgument";
    case ErrorCode::kNotFound: return "NotFound";
    case ErrorCode::kAlreadyExists: return "AlreadyExists";
    case ErrorCode::kPermissionDenied: return "PermissionDenied";
    case ErrorCode::kResourceExhausted: return "ResourceExhausted";
    case ErrorCode::kUnavailable: return "Unavailable";
    case ErrorCode::kDeadlineExceeded: return "DeadlineExceeded";
    case ErrorCode::kProtocolError: return "ProtocolError";
    case ErrorCode::kFailedPrecondition: return "FailedPrecondition";
    case ErrorCode::kInternal: return "Internal";
    case ErrorCode::kCancelled: return "Cancelled";
    case ErrorCode::kDataLoss: return "DataLoss";
  }
  return "Unknown";
}

bool is_valid_error_code(std::uint16_t value) noexcept {
  return value <= static_cast<std::uint16_t>(ErrorCode::kDataLoss);
}

std::string Error::to_string() const {
  std::string out(shmarray::to_string(code_));
  out += ": ";
  out += message_;
  return out;
}

Error sys_error(std::string_view what, int err) {
  ErrorCode code = ErrorCode::kInternal;
  switch (err) {
    case ENOENT: code = ErrorCode::kNotFound; break;
    case EEXIST: code = ErrorCode::kAlreadyExists; break;
    case EACCES:
    case EPERM: code = ErrorCode::kPermissionDenied; break;
    case ENOSPC:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
    case EFBIG: code = ErrorCode::kResourceExhausted; break;
    case ECONNREFUSED:
    case ECONNRESET:
    case EPIPE:
    case ENOTCONN: code = ErrorCode::kUnavailable; break;
    case ETIMEDOUT: code = ErrorCode::kDeadlineExceeded; break;
    case EINVAL: code = ErrorCode::kInvalidArgument; break;
    default: break;
  }
  std::string message(what);
  message += ": ";
  message += std::strerror(err);
  return Error(code, std::move(message), err);
}

}  // namespace shmarray
