// PyTorch over shared arrays, without a copy: shmarray.as_tensor, and the registry of live
// ArrayHandles that lets publish/wait/lock/version take a tensor (torch.from_numpy keeps the
// ndarray alive but does not expose it, so the handle is found by address).
//
// Read-only grants: torch has no read-only tensors. torch.from_numpy of a non-writeable ndarray
// warns, then an in-place write through the tensor dies of SIGSEGV on the PROT_READ mapping.
// as_tensor returns a ReadOnlyTensor instead, a torch.Tensor subclass whose __torch_function__
// refuses every operation that would write it (in-place methods, item assignment, out= and
// inplace= arguments, .data assignment, the in-place list ops of optimizers) and the ways out to
// a writable alias (storage(), __dlpack__) with PermissionDenied; everything else works, and
// views of it stay read-only. What skips __torch_function__ (data_ptr() with ctypes,
// torch.utils.dlpack.to_dlpack, other.set_(t)) is not stopped: a write there dies of SIGSEGV and
// the shared array stays unchanged (docs/python.md). Torch is imported only when as_tensor is
// first called.
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
_HARMLESS = frozenset({"requires_grad_", "retain_grad", "grad.__set__", "requires_grad.__set__"})
# Ways out of torch to the same pages as a writable object: a storage (whose fill_, copy_ and item
# assignment torch does not route through __torch_function__) and a DLPack capsule (DLPack cannot
# mark memory read-only: torch.from_dlpack would give a plain, writable tensor).
_ESCAPES = {
    "storage": "a storage's writes bypass the tensor's read-only checks",
    "_storage": "a storage's writes bypass the tensor's read-only checks",
    "untyped_storage": "a storage's writes bypass the tensor's read-only checks",
    "__dlpack__": "DLPack cannot mark memory read-only, so the importer would get a writable tensor",
}


def _name(func):
    name = getattr(func, "__name__", "")
    if name in ("__set__", "__get__"):  # properties: Tensor.data.__set__
        owner = getattr(func, "__self__", None)
        name = getattr(owner, "__name__", "?") + "." + name
    return name


@functools.lru_cache(maxsize=None)
def _parameters(func):
    """Names of func's parameters (torch.nn.functional.relu...), or () for builtins."""
    try:
        return tuple(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return ()


def _writes(func, args, kwargs, cls):
    """What about this call would write a ReadOnlyTensor, or None."""
    name = _name(func)
    names = _parameters(func)
    # The tensor written in place: the first argument, also when passed by name
    # (torch.nn.init.constant_ hands its tensor to __torch_function__ as tensor=...).
    first = args[0] if args else (kwargs.get(names[0]) if names else None)
    if isinstance(first, (tuple, list)) and name.endswith("_") and not name.endswith("__"):
        # torch._foreach_add_(tensors, ...): the in-place list ops optimizers use
        if any(isinstance(t, cls) for t in _tensors(first)):
            return name
    if isinstance(first, cls):
        if name in _INPLACE_DUNDERS or (name.endswith(".__set__") and name not in _HARMLESS):
            return name
        if name.endswith("_") and not name.endswith("__") and name not in _HARMLESS:
            return name
        index = names.index("inplace") if "inplace" in names else None
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
        escape = _ESCAPES.get(_name(func))
        if escape is not None and args and isinstance(args[0], cls):
            raise cls._shmarray_error(
                f"{_name(func)}() of a tensor over a read-only shared array is refused: {escape}, "
                "and a write to its pages kills the process with SIGSEGV. Read through the tensor, "
                ".clone() it for a private copy, or open the array with writable=True")
        what = _writes(func, args, kwargs, cls)
        if what is not None:
            raise cls._shmarray_error(
                f"{what} would write a tensor over a read-only shared array (a read-only grant: "
                "a write to its pages kills the process with SIGSEGV): open the array with "
                "writable=True for a writable grant, or .clone() the tensor for a private copy")
        with torch._C.DisableTorchFunction():
            if _name(func) == "__reduce_ex__":
                # pickle, torch.save: the bytes, loaded as an ordinary tensor (a private copy);
                # torch's subclass path would save a state it cannot load
                return args[0].as_subclass(torch.Tensor).__reduce_ex__(*args[1:], **kwargs)
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
then an in-place write dies of SIGSEGV; here every torch operation that would write the tensor
(add_, t[i] = x, out=, inplace=True, an optimizer step) raises PermissionDenied instead, and so do
storage() and __dlpack__ (torch.from_dlpack), which would hand out writable aliases; reads, views,
pickling and computations work (their results are ordinary tensors). What bypasses torch's
dispatch (data_ptr() with ctypes, torch.utils.dlpack.to_dlpack, other.set_(t)) is not stopped:
a write there dies of SIGSEGV, and the shared array stays unchanged.

publish, wait, lock and version accept these tensors (and those of torch.from_numpy) in place of
the array.
)doc");
}

}  // namespace shmarray::python
