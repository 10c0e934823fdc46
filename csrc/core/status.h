// Status codes of the SoundSpring C++ core.
//
// The core never throws and never asserts on input: every fallible function returns a
// Status (or sets a sticky error flag that the caller reads once per call). The pybind11
// layer maps each StatusCode to exactly one Python exception class (see
// csrc/bindings/module.cc and python/soundspring/errors.py).
#pragma once

#include <string>
#include <utility>

namespace soundspring {

enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument = 1,     // caller error: bad shape, range, precision, configuration
  kCorrupt = 2,             // input bytes are not a valid bitstream
  kTruncated = 3,           // input bytes end before the structure they announce
  kBufferTooSmall = 4,      // caller-owned output buffer cannot hold the result
  kUnsupportedVersion = 5,  // a format version this build cannot read
  kIntegrity = 6,           // an integrity check (CRC) failed
  kDevice = 7,              // an accelerator call failed (CUDA runtime error, no device)
};

/// A status code plus a human-readable message naming what was expected.
class Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return Status(StatusCode::kInvalidArgument, std::move(m)); }
inline Status Corrupt(std::string m) { return Status(StatusCode::kCorrupt, std::move(m)); }
inline Status Truncated(std::string m) { return Status(StatusCode::kTruncated, std::move(m)); }
inline Status BufferTooSmall(std::string m) { return Status(StatusCode::kBufferTooSmall, std::move(m)); }
inline Status UnsupportedVersion(std::string m) { return Status(StatusCode::kUnsupportedVersion, std::move(m)); }
inline Status IntegrityError(std::string m) { return Status(StatusCode::kIntegrity, std::move(m)); }
inline Status DeviceFailure(std::string m) { return Status(StatusCode::kDevice, std::move(m)); }

}  // namespace soundspring
