#pragma once
// Client-supplied text (array names before validation, client names, error messages that quote
// them) made safe for one log line: a hostile client must not forge log lines, drive the
// operator's terminal with escape sequences, or fill the log with 64 KiB names.
#include <cstddef>
#include <string>
#include <string_view>

namespace shmarray::server {

inline constexpr std::size_t kMaxLoggedBytes = 200;          // names
inline constexpr std::size_t kMaxLoggedMessageBytes = 1024;  // error messages that may quote them

// `text` with every byte outside printable ASCII (controls, DEL, bytes >= 0x80) and the backslash
// escaped as \xNN / "\\", cut after `max_bytes` input bytes with "...(N bytes)" appended naming
// the full length. Printable ASCII up to the cap comes out unchanged.
[[nodiscard]] std::string log_text(std::string_view text, std::size_t max_bytes = kMaxLoggedBytes);

}  // namespace shmarray::server
