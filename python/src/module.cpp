// The `shmarray` Python module: NumPy arrays in shared memory, handed out by the shmarrayd broker.
#include "bindings.hpp"
#include "frames_py.hpp"
#include <pybind11/eval.h>
#include "shmarray/socket_path.hpp"

#ifndef SHMARRAY_VERSION
#define SHMARRAY_VERSION "0.0.0"
#endif

PYBIND11_MODULE(shmarray, m) {
  namespace sp = shmarray::python;
  m.doc() = R"doc(
shmarray: NumPy arrays in POSIX shared memory, zero copy between processes.

A broker (shmarrayd) owns the names; Client.create/open return numpy.ndarray objects over the
same physical pages in every process:

    import shmarray
    with shmarray.Client() as c:
        a = c.create("demo/frame", (480, 640), "float32")   # writable, zero-filled
        a[:] = 1.0
        shmarray.publish(a)                                  # version 1, wakes waiters

    # another process
    with shmarray.Client() as c:
        b = c.open("demo/frame")                             # read-only view of the same pages
        v = shmarray.wait(b, newer_than=0, timeout=5.0)

Arrays (and their views) stay valid after the Client is closed, after their name is removed and
while the broker is down. Errors are shmarray.Error subclasses; see docs/python.md.
)doc";
  m.attr("__version__") = SHMARRAY_VERSION;
  sp::bind_errors(m);
  sp::bind_array_info(m);
  sp::bind_array_handle(m);
  sp::bind_client(m);
  sp::bind_streams(m);
  sp::bind_sync(m);
  sp::bind_checked_read(m);
  sp::bind_torch_interop(m);
  // Frames (create_frame, open_frame, put_frame, put, read_frame_consistent): src/frames.py.
  pybind11::exec(kFramesPy, m.attr("__dict__"));
  // For tests and tools: the /dev/shm name prefix of the segments of the broker at `socket`.
  m.def(
      "_segment_prefix",
      [](const pybind11::object& socket) {
        return shmarray::segment_prefix(
            shmarray::resolve_client_socket_path(socket.is_none() ? std::string() : sp::fspath(socket)));
      },
      pybind11::arg("socket") = pybind11::none());
  m.def(
      "dtype_text", [](const pybind11::handle& dtype) { return sp::typestr_of(dtype); },
      pybind11::arg("dtype"),
      R"doc(The canonical text shmarray stores for a dtype (ArrayInfo.typestr, what C++ and the CLI
see): NumPy's typestr ('<f8', '>M8[ns]', '|S10') or, for a structured dtype, its fields with
explicit offsets ("{'x':<f4@0,'y':<f4@4}8"). Raises InvalidArgument for what cannot be shared
(object dtype, field titles, limits: see docs/python.md).)doc");
}
