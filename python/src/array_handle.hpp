#pragma once
// ArrayHandle: the Python object that owns one shmarray::Array (and so keeps its mapping alive).
// Every numpy.ndarray the module returns has an ArrayHandle as its base, and NumPy makes every
// view of it (slices, transposes, pandas blocks) point at the same base, so the mapping lives as
// long as any view does, independently of the Client, the name and the broker.
#include "bindings.hpp"
#include "shmarray/segment_layout.hpp"

namespace shmarray::python {

class ArrayHandle {
 public:
  explicit ArrayHandle(Array array) : array_(std::move(array)) {}

  [[nodiscard]] const Array& array() const noexcept { return array_; }
  [[nodiscard]] bool writable() const noexcept { return array_.writable(); }
  [[nodiscard]] const std::string& name() const noexcept { return array_.info().name; }
  // First byte of the data (const_cast: writes happen only through writable grants, checked by
  // the callers; NumPy enforces it for read-only ndarrays and the kernel for read-only mappings).
  [[nodiscard]] std::byte* data() const noexcept {
    return const_cast<std::byte*>(array_.bytes().data());
  }
  // The segment's live fields, for the seqlock write window of lock(seqlock=True), which Array
  // does not expose (everything else goes through Array's methods). The mapping starts at the
  // segment's first byte, so the header page is data_offset bytes before the data.
  [[nodiscard]] LiveFields& live() const noexcept {
    return *live_fields_of(data() - array_.info().data_offset);
  }

 private:
  Array array_;
};

// The ArrayHandle behind `obj`: `obj` itself, or the first one found by following .base
// (ndarray) and .obj (memoryview); for a torch.Tensor, a live handle whose mapping holds the
// tensor's bytes (a writable one first). The returned object keeps the handle alive; hold it
// while the GIL is released. TypeError when `obj` is not (a view of) an array made by this module.
[[nodiscard]] py::object owner_of(py::handle obj);

// --- torch_interop.cpp ---
// A live ArrayHandle whose mapping holds [address, address + size), a writable one first (or a
// read-only one first); None when no handle does. Every handle make_ndarray creates is
// registered (weakly) for this.
[[nodiscard]] py::object handle_holding(std::uintptr_t address, std::size_t size,
                                        bool writable_first);
// Registers `handle` (an ArrayHandle object) for handle_holding until it is destroyed.
void register_handle(const py::object& handle);

}  // namespace shmarray::python
