// PyTorch over shared arrays, without a copy: shmarray.as_tensor, and the registry of live
// ArrayHandles that lets publish/wait/lock/version take a tensor (torch.from_numpy keeps the
// ndarray alive but does not expose it, so the handle is found by address).
//
// Read-only grants: torch has no read-only tensors. torch.from_numpy of a non-writeable ndarray
// warns, then an in-place write through the tensor dies of SIGSEGV on the PROT_READ mapping.
// as_tensor returns a ReadOnlyTensor instead, a torch.Tensor subclass whose __torch_function__
// refuses every operation that would write it (in-place methods, item assignment, out= and
// inplace= arguments, .data assignment) with PermissionDenied; everything else works, and views
// of it stay read-only. Torch is imported only when as_tensor is first called.
#include <pybind11/eval.h>

#include "array_handle.hpp"

namespace shmarray::python {
namespace {

// Defines ReadOnlyTensor and as_tensor(arr, name, writable, error) in a fresh namespace.
constexpr const char* kTorchSource = R"py(
import functools
import inspect
import warnings

import torch

_INPLACE_DUNDERS = frozenset(
    "__setitem__ __iadd__ __isub__ __imul__ __itruediv__ __ifloordiv__ __imod__ __ipow__ "
    "__iand__ __ior__ __ixor__ __ilshift__ __irshift__ __imatmul__".split())
_HARMLESS = frozenset({"requires_grad_", "retain_grad"})


def _name(func):
    name = getattr(func, "__name__", "")
    if name in ("__set__", "__get__"):  # properties: Tensor.data.__set__
        owner = getattr(func, "__self__", None)
        name = getattr(owner, "__name__", "?") + "." + name
    return name


@functools.lru_cache(maxsize=None)
def _inplace_index(func):
    """Position of an `inplace` parameter of func (torch.nn.functional.relu...), or None."""
    try:
        names = list(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return None
    return names.index("inplace") if "inplace" in names else None


def _writes(func, args, kwargs, cls):
    """What about this call would write a ReadOnlyTensor, or None."""
    name = _name(func)
    if args and isinstance(args[0], cls):
        if name in _INPLACE_DUNDERS or name.endswith(".__set__"):
            return name
        if name.endswith("_") and not name.endswith("__") and name not in _HARMLESS:
            return name
        index = _inplace_index(func)
        if kwargs.get("inplace") or (index is not None and len(args) > index and args[index]):
            return name + "(inplace=True)"
    out = kwargs.get("out")
    if any(isinstance(o, cls) for o in (out if isinstance(out, (tuple, list)) else (out,))):
        return name + "(out=...)"
    return None


def _tensors(items):
    for item in items:
        if isinstance(item, torch.Tensor):
            yield item
        elif isinstance(item, (tuple, list)):
            yield from _tensors(item)


def _rewrap(result, cls, shared):
    """Results over the read-only storage stay read-only; new tensors are plain ones."""
    if isinstance(result, torch.Tensor):
        if result.storage().data_ptr() in shared:
            return result if type(result) is cls else result.as_subclass(cls)
        return result if type(result) is torch.Tensor else result.as_subclass(torch.Tensor)
    if isinstance(result, (tuple, list)):
        return type(result)(_rewrap(r, cls, shared) for r in result)
    if shared and hasattr(result, "setflags") and hasattr(result, "__array_interface__"):
        result.setflags(write=False)  # Tensor.numpy() of a read-only tensor
    return result


class ReadOnlyTensor(torch.Tensor):
    """A tensor over a read-only shared array (shmarray.as_tensor): every torch operation that
    would write it raises shmarray.PermissionDenied; views of it are read-only too, results of
    computations are ordinary tensors."""

    _shmarray_error = PermissionError
    _shmarray_read_only = True  # owner_of: publish/lock find a read-only handle, and refuse

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        what = _writes(func, args, kwargs, cls)
        if what is not None:
            raise cls._shmarray_error(
                f"{what} would write a tensor over a read-only shared array (a read-only grant: "
                "a write to its pages kills the process with SIGSEGV): open the array with "
                "writable=True for a writable grant, or .clone() the tensor for a private copy")
        with torch._C.DisableTorchFunction():
            result = func(*args, **kwargs)
            shared = {t.storage().data_ptr() for t in _tensors(args) if isinstance(t, cls)}
            return _rewrap(result, cls, shared)


def as_tensor(arr, writable, error):
    ReadOnlyTensor._shmarray_error = error
    if writable:
        return torch.from_numpy(arr)
    with warnings.catch_warnings():
        # "The given NumPy array is not writable": ReadOnlyTensor is what makes that safe.
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(arr).as_subclass(ReadOnlyTensor)
)py";

// Weak registry of live ArrayHandle objects: id -> weakref (the weakref's callback removes its
// entry). Owned by the module (attribute _handles); borrowed here.
PyObject* g_handles = nullptr;

py::dict handles() { return py::reinterpret_borrow<py::dict>(g_handles); }

// The namespace kTorchSource defined, made on first use and kept as the module attribute
// _torch. ModuleNotFoundError naming the package when torch is not installed.
py::dict torch_namespace(py::module_& m) {
  if (py::hasattr(m, "_torch")) return m.attr("_torch").cast<py::dict>();
  try {
    py::module_::import("torch");
  } catch (py::error_already_set& e) {
    if (!e.matches(PyExc_ImportError)) throw;
    PyErr_SetString(PyExc_ModuleNotFoundError,
                    "shmarray.as_tensor needs PyTorch, which is not installed (Debian: apt-get "
                    "install python3-torch)");
    throw py::error_already_set();
  }
  py::dict ns;
  ns["__builtins__"] = py::module_::import("builtins");
  ns["__name__"] = "shmarray";  // ReadOnlyTensor's module
  py::exec(kTorchSource, ns);
  m.attr("_torch") = ns;
  return ns;
}

}  // namespace

void register_handle(const py::object& handle) {
  if (g_handles == nullptr) return;
  py::int_ key(reinterpret_cast<std::uintptr_t>(handle.ptr()));
  py::dict registry = handles();  // held by the callback: it may outlive the module's attribute
  py::cpp_function forget([registry, key](py::handle) {
    if (PyDict_DelItem(registry.ptr(), key.ptr()) != 0) PyErr_Clear();
  });
  registry[key] = py::weakref(handle, forget);
}

py::object handle_holding(std::uintptr_t address, std::size_t size, bool writable_first) {
  py::object found = py::none();
  if (g_handles == nullptr) return found;
  for (const auto& item : handles()) {
    py::object handle = item.second.cast<py::weakref>()();
    if (handle.is_none()) continue;
    const ArrayHandle& h = handle.cast<const ArrayHandle&>();
    const auto start = reinterpret_cast<std::uintptr_t>(h.data());
    const auto end = start + static_cast<std::uintptr_t>(h.array().info().nbytes);
    if (address < start || address > end || size > end - address) continue;
    if (h.writable() == writable_first) return handle;
    found = handle;
  }
  return found;
}

void bind_torch_interop(py::module_& m) {
  py::dict registry;
  m.attr("_handles") = registry;
  g_handles = registry.ptr();  // the module keeps it alive
  m.def(
      "as_tensor",
      [m](const py::object& arr) mutable {
        if (!py::isinstance<py::array>(arr)) {
          throw py::type_error("as_tensor() takes a numpy.ndarray from shmarray (or a view)");
        }
        py::object owner = owner_of(arr);  // TypeError for an array not from shmarray
        const bool writable = py::reinterpret_borrow<py::array>(arr).writeable();
        py::dict ns = torch_namespace(m);
        return ns["as_tensor"](arr, writable, m.attr("PermissionDenied"));
      },
      py::arg("arr"), R"doc(
A torch.Tensor over the same shared pages as `arr` (an ndarray from create/open, or a view of
one), without a copy. Needs PyTorch (imported on first use).

A writable array gives a plain tensor (torch.from_numpy): writes through either are seen by every
process that maps the array. A read-only array (open(name) without writable=True) gives a
ReadOnlyTensor: torch has no read-only tensors, and torch.from_numpy of a read-only array warns,
then an in-place write dies of SIGSEGV; here every operation that would write the tensor
(add_, t[i] = x, out=, inplace=True, an optimizer step) raises PermissionDenied instead, while
reads, views and computations work (their results are ordinary tensors). Writes that bypass
torch (data_ptr and ctypes, DLPack export to another library) are not stopped.

publish, wait, lock and version accept these tensors (and those of torch.from_numpy) in place of
the array.
)doc");
}

}  // namespace shmarray::python
