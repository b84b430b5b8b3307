#include "allocation_probe.hpp"

#include <cstdlib>
#include <new>

namespace {
// Constant-initialised thread-locals: safe to touch from operator new at any time.
thread_local bool t_armed = false;
thread_local std::size_t t_largest = 0;

void* allocate(std::size_t n) {
  if (t_armed && n > t_largest) t_largest = n;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
}  // namespace

namespace shmarray::test {
AllocationProbe::AllocationProbe() noexcept {
  t_armed = true;
  t_largest = 0;
}
AllocationProbe::~AllocationProbe() { t_armed = false; }
std::size_t AllocationProbe::largest() const noexcept { return t_largest; }
}  // namespace shmarray::test

// Replacements of the (non-aligned) global allocation functions; the nothrow forms of libstdc++
// call these. The aligned forms keep their library definitions, which pair among themselves.
void* operator new(std::size_t n) { return allocate(n); }
void* operator new[](std::size_t n) { return allocate(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
