#include "interruptible.hpp"

namespace shmarray::python {

namespace {

bool finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing() != 0;
#else
  return _Py_IsFinalizing() != 0;
#endif
}

}  // namespace

Result<void> interrupt_check() {
  // A daemon thread must not take the GIL while the interpreter shuts down (it would hang).
  if (finalizing()) return {};
  py::gil_scoped_acquire gil;
  // Signal handlers run only on the main thread; elsewhere this returns 0 at once.
  if (PyErr_CheckSignals() == 0) return {};
  return fail(ErrorCode::kCancelled, "interrupted by a signal (its exception is raised)");
}

}  // namespace shmarray::python
