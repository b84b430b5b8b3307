#pragma once
// Lets a test assert that code did NOT make a huge allocation (e.g. a frame reader trusting a
// hostile body_length). This test executable replaces the global operator new/delete with thin
// malloc/free wrappers; while an AllocationProbe is alive on a thread, the largest single request
// made on that thread is recorded. Sanitizers still see every malloc/free.
#include <cstddef>

namespace shmarray::test {

class AllocationProbe {
 public:
  AllocationProbe() noexcept;
  ~AllocationProbe();
  AllocationProbe(const AllocationProbe&) = delete;
  AllocationProbe& operator=(const AllocationProbe&) = delete;

  // Largest single operator-new request (bytes) on this thread since construction.
  [[nodiscard]] std::size_t largest() const noexcept;
};

}  // namespace shmarray::test
