#pragma once
// Blocking calls that Ctrl-C interrupts. Every call of the module that may block (a broker reply,
// open(wait=), wait, lock, read_consistent, read_checked) waits without the GIL in slices of
// kSlice and checks for signals between them, so a KeyboardInterrupt (or any exception a signal
// handler raises) ends it within about one slice.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include "bindings.hpp"

namespace shmarray::python {

inline constexpr std::chrono::nanoseconds kSlice = std::chrono::milliseconds(50);

// Runs the Python signal handlers (GIL held); a handler's exception propagates as
// error_already_set.
inline void check_signals() {
  if (PyErr_CheckSignals() != 0) throw py::error_already_set();
}

// "1.500 s", or "without limit".
inline std::string seconds_text(std::optional<std::chrono::nanoseconds> timeout) {
  if (!timeout) return "without limit";
  char text[32];
  std::snprintf(text, sizeof text, "%.3f s", std::chrono::duration<double>(*timeout).count());
  return text;
}

// Runs attempt(slice) without the GIL until it returns something other than kDeadlineExceeded
// or `timeout` has elapsed (then returns the last kDeadlineExceeded). timeout 0: one attempt.
template <class T, class Attempt>
Result<T> in_slices(std::optional<std::chrono::nanoseconds> timeout, Attempt&& attempt) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point deadline = timeout ? Clock::now() + *timeout : Clock::time_point::max();
  for (;;) {
    const auto left = timeout ? deadline - Clock::now() : kSlice;
    const auto slice =
        std::clamp<std::chrono::nanoseconds>(left, std::chrono::nanoseconds(0), kSlice);
    Result<T> result = [&] {
      py::gil_scoped_release nogil;
      return attempt(slice);
    }();
    if (result || result.error().code() != ErrorCode::kDeadlineExceeded) return result;
    if (timeout && Clock::now() >= deadline) return result;
    check_signals();
  }
}

// For ClientOptions::interrupt_check, called without the GIL while a broker call waits: takes
// the GIL, runs the signal handlers and, when one raised, leaves its exception set on this
// thread and returns kCancelled. The caller, with the GIL again, unwraps the result: raise_error
// raises the pending exception (KeyboardInterrupt) in place of the kCancelled error.
[[nodiscard]] Result<void> interrupt_check();

}  // namespace shmarray::python
