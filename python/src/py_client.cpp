// shmarray.Client: the control plane (create/open/remove/chmod/list/stat) over shmarray::Client.
//
// Every broker round trip runs with the GIL released. The C++ Client is held by shared_ptr and
// copied before the GIL is released, so close() from one thread never destroys a connection that
// another thread is using: the last call in flight frees it.
#include <pybind11/stl.h>

#include <memory>

#include "bindings.hpp"
#include "interruptible.hpp"
#include "shmarray/client.hpp"
#include "shmarray/socket_path.hpp"

namespace shmarray::python {
namespace {

std::chrono::milliseconds to_ms(std::optional<std::chrono::nanoseconds> ns,
                                std::chrono::milliseconds if_none) {
  if (!ns) return if_none;
  return std::chrono::ceil<std::chrono::milliseconds>(*ns);
}

class PyClient {
  // Runs fn(client) without the GIL and unwraps its Result with the GIL held again.
  template <class Fn>
  auto call(Fn&& fn) {
    if (!client_) {
      raise_error(Error(ErrorCode::kFailedPrecondition,
                        "this shmarray.Client (" + socket_path_ + ") is closed: create a new one"));
    }
    std::shared_ptr<Client> client = client_;  // keeps the connection alive during the call
    auto result = [&] {
      py::gil_scoped_release nogil;
      return fn(*client);
    }();
    return unwrap(std::move(result));
  }

 public:
  PyClient(const py::object& socket, std::optional<double> timeout, std::string client_name,
           std::optional<uid_t> broker_uid) {
    ClientOptions options;
    options.broker_uid = broker_uid;
    if (!socket.is_none()) options.socket_path = fspath(socket);
    options.request_timeout = to_ms(timeout_of(timeout), std::chrono::hours(24 * 365));
    options.client_name = std::move(client_name);
    options.interrupt_check = interrupt_check;  // Ctrl-C ends any wait for the broker
    Result<Client> connected = [&] {
      py::gil_scoped_release nogil;
      return Client::connect(std::move(options));
    }();
    Client client = unwrap(std::move(connected));
    socket_path_ = client.socket_path();
    broker_pid_ = client.broker_pid();
    protocol_version_ = client.protocol_version();
    client_ = std::make_shared<Client>(std::move(client));
  }

  py::array create(const std::string& name, py::handle shape, py::handle dtype,
                   const std::string& order, std::uint32_t mode, bool ephemeral,
                   bool populate) {
    ArraySpec spec;
    spec.dtype = typestr_of(dtype);
    spec.shape = shape_of(shape);
    spec.order = order_of(order);
    spec.mode = mode;
    spec.ephemeral = ephemeral;
    spec.populate = populate;
    return make_ndarray(call([&](Client& c) { return c.create(name, spec); }));
  }

  py::array open(const std::string& name, bool writable, std::optional<double> wait,
                 bool populate, std::optional<uid_t> owner) {
    OpenOptions options;
    options.owner = owner;
    options.wait =
        to_ms(timeout_of(wait.value_or(0.0), "wait"), std::chrono::milliseconds(UINT32_MAX));
    options.populate = populate;
    const Access access = writable ? Access::kReadWrite : Access::kReadOnly;
    return make_ndarray(call([&](Client& c) { return c.open(name, access, options); }));
  }

  void chmod(const std::string& name, std::uint32_t mode) {
    call([&](Client& c) { return c.chmod(name, mode); });
  }

  void remove(const std::string& name) {
    call([&](Client& c) { return c.remove(name); });
  }
  std::vector<ArrayInfo> list(const std::string& prefix) {
    return call([&](Client& c) { return c.list(prefix); });
  }
  ArrayInfo stat(const std::string& name) {
    return call([&](Client& c) { return c.stat(name); });
  }

  // The C++ client, for the stream bindings (stream.cpp). FailedPrecondition when closed.
  std::shared_ptr<Client> shared_client() const {
    if (!client_) {
      raise_error(Error(ErrorCode::kFailedPrecondition,
                        "this shmarray.Client (" + socket_path_ + ") is closed: create a new one"));
    }
    return client_;
  }

  void close() { client_.reset(); }
  [[nodiscard]] bool closed() const noexcept { return client_ == nullptr; }
  [[nodiscard]] const std::string& socket_path() const noexcept { return socket_path_; }
  [[nodiscard]] std::uint32_t broker_pid() const noexcept { return broker_pid_; }
  [[nodiscard]] std::uint16_t protocol_version() const noexcept { return protocol_version_; }

 private:
  std::shared_ptr<Client> client_;
  std::string socket_path_;
  std::uint32_t broker_pid_ = 0;
  std::uint16_t protocol_version_ = 0;
};

}  // namespace

std::shared_ptr<Client> client_of(py::handle py_client) {
  return py_client.cast<const PyClient&>().shared_client();
}

void bind_client(py::module_& m) {
  m.def("default_socket_path", &client_socket_path, R"doc(
The socket path used when Client(socket=None): $SHMARRAY_SOCKET if set; else your own broker's
$XDG_RUNTIME_DIR/shmarray.sock (/tmp/shmarray-$UID/shmarray.sock without $XDG_RUNTIME_DIR) if it
exists; else the system broker's socket (system_socket_path()) if that exists; else your own.
)doc");
  m.def("system_socket_path", &system_socket_path, R"doc(
The system broker's socket (the shmarrayd package's shmarrayd.socket): /run/shmarray/shmarray.sock,
or $SHMARRAY_SYSTEM_SOCKET if set. A broker there is trusted when it runs as the owner of the
socket's directory (docs/operations.md).
)doc");

  py::class_<PyClient>(m, "Client", R"doc(
One connection to the broker (shmarrayd), for the control plane: create, open, remove, list,
stat. Array bytes never cross this connection: create/open return numpy.ndarray objects over the
shared pages themselves. Those arrays stay valid after close(), after remove() of their name and
while the broker is down.

A Client may be shared between threads (calls are serialised on its connection; the GIL is
released while waiting for the broker). Use it as a context manager to close it.

Raises BrokerUnavailable (a ConnectionError) when no broker listens on the socket.
)doc")
      .def(py::init<const py::object&, std::optional<double>, std::string,
                    std::optional<uid_t>>(),
           py::arg("socket") = py::none(), py::arg("timeout") = 10.0,
           py::arg("client_name") = "shmarray-python", py::kw_only(),
           py::arg("broker_uid") = py::none(), R"doc(
Connects to the broker.

socket: path of the broker's socket (str or os.PathLike); None uses default_socket_path().
timeout: longest wait in seconds for any one reply from the broker (None: no limit).
client_name: shown in the broker's debug log.
broker_uid: besides your own uid and root, the uid a trusted broker may run as (a system broker
  run as a dedicated user); None uses $SHMARRAY_BROKER_UID if set. A broker of any other uid may be
  an impostor: PermissionDenied naming both uids, before anything is sent.
)doc")
      .def("create", &PyClient::create, py::arg("name"), py::arg("shape"),
           py::arg("dtype") = "float64", py::arg("order") = "C", py::kw_only(),
           py::arg("mode") = 0600, py::arg("ephemeral") = false, py::arg("populate") = false,
           R"doc(
Creates a new zero-filled shared array and returns a writable numpy.ndarray over its pages.

name: 1-255 characters of [A-Za-z0-9._:/-], e.g. 'demo/matrix'.
shape: an int or a tuple of ints.
dtype: anything numpy.dtype() accepts that shmarray supports: float16/32/64, int8..64,
  uint8..64, bool, complex64/128 (little-endian).
order: 'C' (row-major) or 'F' (column-major).
mode: permission bits for other users (read 4, write 2), e.g. 0o640.
ephemeral: remove the name when this Client's connection closes.
populate: pre-fault this process's mapping (page tables and the zero-filled pages) in one call,
  instead of one page fault per page on first write; worth it for a large array written soon.

Raises AlreadyExists (FileExistsError), InvalidArgument (ValueError) for a bad name, dtype or
shape, ResourceExhausted when a limit or /dev/shm is full.
)doc")
      .def("open", &PyClient::open, py::arg("name"), py::arg("writable") = false, py::kw_only(),
           py::arg("wait") = py::none(), py::arg("populate") = false,
           py::arg("owner") = py::none(), R"doc(
Maps an existing array and returns a numpy.ndarray over the same pages as every other process.

writable: False gives a read-only grant: the ndarray is not writeable (arr[0] = 1 raises
  ValueError) and, in a process that holds no writable mapping of it, the mapping itself is
  read-only (the kernel kills a write through a raw pointer with SIGSEGV).
wait: seconds to wait for the name to be created if it does not exist yet (None or 0: do not
  wait; negative: ValueError). DeadlineExceeded (TimeoutError) if it does not appear in time.
  Ctrl-C interrupts the wait (KeyboardInterrupt), as it does every call that waits for the
  broker.
populate: pre-fault the whole array's page tables in one call; worth it when all of it will be
  read soon.
owner: require the array to be owned by this uid (another user may have taken the name first):
  PermissionDenied naming the real owner otherwise. With wait, an array of another owner created
  meanwhile fails the open at once.

Raises NotFound (FileNotFoundError), PermissionDenied (PermissionError).
)doc")
      .def("remove", &PyClient::remove, py::arg("name"), R"doc(
Removes the name at once. Arrays already open (here or in other processes) stay valid until their
last view is gone; the memory is freed then. Raises NotFound, PermissionDenied.
)doc")
      .def("chmod", &PyClient::chmod, py::arg("name"), py::arg("mode"), R"doc(
Changes who may open the array (read/write bits for owner, group, others, like a file: e.g.
0o640). Owner or root only; later opens are checked against the new mode, handles already granted
keep working. Raises NotFound, PermissionDenied, InvalidArgument (bits outside 0o777).
)doc")
      .def("list", &PyClient::list, py::arg("prefix") = "",
           "ArrayInfo of every array whose name starts with prefix, sorted by name.")
      .def("stat", &PyClient::stat, py::arg("name"),
           "ArrayInfo of one array. Raises NotFound.")
      .def("close", &PyClient::close, R"doc(
Closes the connection (idempotent). Arrays obtained from this Client remain valid; further calls
on the Client raise FailedPrecondition.
)doc")
      .def_property_readonly("closed", &PyClient::closed)
      .def_property_readonly("socket_path", &PyClient::socket_path,
                             "The socket this client connected to.")
      .def_property_readonly("broker_pid", &PyClient::broker_pid)
      .def_property_readonly("protocol_version", &PyClient::protocol_version)
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__",
           [](PyClient& self, const py::object&, const py::object&, const py::object&) {
             self.close();
             return false;
           })
      .def("__repr__", [](const PyClient& self) {
        return "<shmarray.Client socket='" + self.socket_path() + "'" +
               (self.closed() ? " closed" : "") + ">";
      });
}

}  // namespace shmarray::python
