// shmarray.Error and its subclasses: the one place where an ErrorCode becomes a Python exception.
//
// Each subclass also derives from the builtin exception a Python programmer would catch for the
// same situation (NotFound is a FileNotFoundError, DeadlineExceeded a TimeoutError, ...), so
// generic code keeps working. The classes are made with PyErr_NewExceptionWithDoc and a tuple of
// bases, which is `class NotFound(Error, FileNotFoundError)` in C.
#include <array>
#include <cstddef>

#include "bindings.hpp"

namespace shmarray::python {
namespace {

struct ExceptionSpec {
  ErrorCode code;
  const char* name;     // class name in the module
  PyObject* builtin;    // second base, or nullptr
  const char* doc;
};

constexpr std::size_t kCodeCount = static_cast<std::size_t>(ErrorCode::kDataLoss) + 1;

// Owned references, deliberately never released: exception classes must outlive every module
// object (a static py::object would be decref'd after the interpreter is gone).
PyObject* g_base = nullptr;
std::array<PyObject*, kCodeCount> g_by_code{};

std::array<ExceptionSpec, kCodeCount - 1> specs() {
  return {{
      {ErrorCode::kInvalidArgument, "InvalidArgument", PyExc_ValueError,
       "The request itself is wrong (name, dtype, shape, order): fix the call. Also a "
       "ValueError."},
      {ErrorCode::kNotFound, "NotFound", PyExc_FileNotFoundError,
       "No array of that name (or it was removed). Also a FileNotFoundError."},
      {ErrorCode::kAlreadyExists, "AlreadyExists", PyExc_FileExistsError,
       "create() of a name that exists: open it or remove it first. Also a FileExistsError."},
      {ErrorCode::kPermissionDenied, "PermissionDenied", PyExc_PermissionError,
       "The caller may not do this (mode bits, or a read-only grant). Also a PermissionError."},
      {ErrorCode::kResourceExhausted, "ResourceExhausted", nullptr,
       "A limit was hit (bytes, number of arrays, /dev/shm full, connections)."},
      {ErrorCode::kUnavailable, "BrokerUnavailable", PyExc_ConnectionError,
       "The broker cannot be reached: start shmarrayd, or retry. Also a ConnectionError."},
      {ErrorCode::kDeadlineExceeded, "DeadlineExceeded", PyExc_TimeoutError,
       "A timeout elapsed before the operation completed (wait, lock, a broker reply). Also a "
       "TimeoutError."},
      {ErrorCode::kProtocolError, "ProtocolError", nullptr,
       "Malformed or unexpected bytes from the broker; the connection is unusable."},
      {ErrorCode::kFailedPrecondition, "FailedPrecondition", nullptr,
       "The state does not allow the call (a closed Client, a lock this thread already holds, "
       "an unrecoverable lock): fix the state first."},
      {ErrorCode::kInternal, "InternalError", nullptr,
       "A bug or an unexpected operating-system failure."},
      {ErrorCode::kCancelled, "Cancelled", nullptr, "The operation was cancelled."},
      {ErrorCode::kDataLoss, "DataLoss", nullptr,
       "The array's bytes cannot be trusted: its segment was resized by a writer, or a write was "
       "abandoned (possibly torn) and nobody has published since."},
  }};
}

PyObject* new_exception(py::module_& m, const char* name, PyObject* bases, const char* doc) {
  const std::string qualified = std::string("shmarray.") + name;
  PyObject* type = PyErr_NewExceptionWithDoc(qualified.c_str(), doc, bases, nullptr);
  if (type == nullptr) throw py::error_already_set();
  m.add_object(name, py::reinterpret_borrow<py::object>(type));
  return type;  // the new reference is kept forever in g_base / g_by_code
}

}  // namespace

void bind_errors(py::module_& m) {
  g_base = new_exception(
      m, "Error", PyExc_Exception,
      "Base class of every shmarray error. Attributes: code (the C++ ErrorCode name without the "
      "'k', e.g. 'NotFound'), sys_errno (errno of the failing system call, or 0).");
  g_by_code.fill(g_base);
  for (const ExceptionSpec& spec : specs()) {
    py::tuple bases = spec.builtin != nullptr
                          ? py::make_tuple(py::handle(g_base), py::handle(spec.builtin))
                          : py::make_tuple(py::handle(g_base));
    g_by_code[static_cast<std::size_t>(spec.code)] = new_exception(m, spec.name, bases.ptr(),
                                                                   spec.doc);
  }
}

void raise_error(const Error& error) {
  // A call ended by Ctrl-C (kCancelled) left KeyboardInterrupt pending (PyErr_CheckSignals in
  // interrupt_check): that is what the caller gets. Building our exception on top of it would
  // turn it into a SystemError, which `except KeyboardInterrupt` misses.
  if (PyErr_Occurred() != nullptr) throw py::error_already_set();
  const auto index = static_cast<std::size_t>(error.code());
  PyObject* type = index < g_by_code.size() && g_by_code[index] != nullptr ? g_by_code[index]
                                                                           : g_base;
  py::object instance =
      py::reinterpret_borrow<py::object>(type)(py::str(error.message()));
  instance.attr("code") = py::str(std::string(to_string(error.code())));
  instance.attr("sys_errno") = py::int_(error.sys_errno());
  if (error.sys_errno() != 0 && PyObject_IsSubclass(type, PyExc_OSError) == 1) {
    instance.attr("errno") = py::int_(error.sys_errno());
  }
  PyErr_SetObject(type, instance.ptr());
  throw py::error_already_set();
}

}  // namespace shmarray::python
