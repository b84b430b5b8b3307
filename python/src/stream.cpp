// Streams in Python (docs/streams.md, docs/python.md "Streams"): Client.create_stream /
// open_publisher / subscribe, Publisher.loan (a context manager yielding a writable ndarray in
// the slot: published when the block exits cleanly, abandoned if it raises), Subscriber.take and
// iteration (read-only ndarrays over the slot, zero copy; the slot is held while the ndarray or
// any view of it lives).
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>

#include "bindings.hpp"
#include "interruptible.hpp"
#include "shmarray/stream.hpp"

namespace shmarray::python {
namespace {

std::chrono::nanoseconds forever() { return std::chrono::hours(24 * 365 * 100); }

// A Publisher or Subscriber as the Python objects that use it share it. Like the C++ object, it
// serves one thread at a time (docs/streams.md); `busy` turns a second thread's call during
// one in progress into a RuntimeError instead of two threads in its state at once.
template <class T>
struct Shared {
  explicit Shared(T v) : value(std::move(v)) {}
  T value;
  std::atomic<bool> busy{false};
};

// Holds `shared.busy` for one call; RuntimeError naming `what` if another thread holds it.
class InUse {
 public:
  template <class T>
  InUse(Shared<T>& shared, const char* what) : busy_(shared.busy) {
    if (busy_.exchange(true, std::memory_order_acquire)) {
      throw std::runtime_error(
          std::string("this ") + what + " is in use by another thread: use one from one thread "
          "at a time, or give each thread its own (Client.subscribe / Client.open_publisher)");
    }
  }
  ~InUse() { busy_.store(false, std::memory_order_release); }
  InUse(const InUse&) = delete;
  InUse& operator=(const InUse&) = delete;

 private:
  std::atomic<bool>& busy_;
};

Overflow overflow_of(const std::string& text) {
  if (text == "block") return Overflow::kBlock;
  if (text == "drop_oldest") return Overflow::kDropOldest;
  throw py::value_error("overflow must be 'block' or 'drop_oldest', not '" + text + "'");
}

// Owner of one open Loan: the base of the writable ndarray that Publisher.loan yields.
class LoanHandle {
 public:
  LoanHandle(std::shared_ptr<Shared<Publisher>> publisher, Loan loan)
      : publisher_(std::move(publisher)), loan_(std::move(loan)) {}
  [[nodiscard]] std::byte* data() const { return loan_ ? loan_->bytes().data() : nullptr; }
  [[nodiscard]] std::size_t size() const { return loan_ ? loan_->bytes().size() : 0; }
  [[nodiscard]] bool open() const { return loan_.has_value(); }
  [[nodiscard]] std::uint64_t seq() const { return seq_; }
  std::uint64_t publish() {
    if (!loan_) {
      raise_error(Error(ErrorCode::kFailedPrecondition, "this loan was already published or "
                                                        "abandoned"));
    }
    Result<std::uint64_t> published = [&] {
      InUse in_use(*publisher_, "Publisher");
      Loan loan = std::move(*loan_);
      loan_.reset();
      seq_ = loan.seq();
      return publisher_->value.publish(std::move(loan));
    }();
    return unwrap(std::move(published));
  }
  void abandon() {
    InUse in_use(*publisher_, "Publisher");
    loan_.reset();
  }

 private:
  std::shared_ptr<Shared<Publisher>> publisher_;
  std::optional<Loan> loan_;
  std::uint64_t seq_ = 0;
};

// What Publisher.loan returns: loans on __enter__, publishes or abandons on __exit__.
class LoanContext {
 public:
  LoanContext(std::shared_ptr<Shared<Publisher>> publisher, std::vector<std::uint64_t> shape,
              std::string dtype, std::chrono::nanoseconds timeout, Order order)
      : publisher_(std::move(publisher)), shape_(std::move(shape)), dtype_(std::move(dtype)),
        timeout_(timeout), order_(order) {}

  py::array enter() {
    if (handle_) throw py::value_error("this loan context was already entered");
    Result<Loan> loan = [&] {
      InUse in_use(*publisher_, "Publisher");
      return in_slices<Loan>(timeout_, [&](std::chrono::nanoseconds slice) {
        return publisher_->value.loan(dtype_, shape_, slice, order_);
      });
    }();
    Loan taken = unwrap(std::move(loan));
    const MessageInfo info = taken.info();
    handle_ = py::cast(LoanHandle(publisher_, std::move(taken)), py::return_value_policy::move);
    const LoanHandle& owner = handle_.cast<const LoanHandle&>();
    std::vector<py::ssize_t> shape(info.shape.begin(), info.shape.end());
    std::vector<py::ssize_t> strides(info.strides.begin(), info.strides.end());
    array_ = py::array(py::reinterpret_borrow<py::dtype>(numpy_dtype(info.dtype)),
                       std::move(shape), std::move(strides), owner.data(), handle_);
    return array_;
  }

  bool exit(const py::object& exc_type) {
    if (!handle_) return false;
    auto& owner = handle_.cast<LoanHandle&>();
    // The slot belongs to subscribers from now on: this ndarray must not write to it any more.
    if (array_) array_.attr("setflags")(py::arg("write") = false);
    if (exc_type.is_none()) {
      seq_ = owner.publish();
    } else {
      owner.abandon();
    }
    return false;
  }

  [[nodiscard]] std::optional<std::uint64_t> seq() const {
    if (seq_ == 0) return std::nullopt;
    return seq_;
  }

 private:
  std::shared_ptr<Shared<Publisher>> publisher_;
  std::vector<std::uint64_t> shape_;
  std::string dtype_;
  std::chrono::nanoseconds timeout_;
  Order order_;
  py::object handle_;
  py::array array_;
  std::uint64_t seq_ = 0;
};

class PyPublisher {
 public:
  explicit PyPublisher(Publisher p)
      : publisher_(std::make_shared<Shared<Publisher>>(std::move(p))) {}
  LoanContext loan(py::handle shape, py::handle dtype, std::optional<double> timeout,
                   const std::string& order) {
    return LoanContext(publisher_, shape_of(shape), typestr_of(dtype),
                       timeout_of(timeout).value_or(forever()), order_of(order));
  }
  // Copies `array` into a new message and publishes it (a convenience; loan() avoids the copy).
  std::uint64_t send(const py::array& array, std::optional<double> timeout) {
    py::array c = py::array::ensure(array, py::array::c_style);
    if (!c) throw py::value_error("send() needs an array-like value");
    const std::string typestr = typestr_of(c.dtype());
    std::vector<std::uint64_t> shape(c.shape(), c.shape() + c.ndim());
    const auto wait = timeout_of(timeout).value_or(forever());
    InUse in_use(*publisher_, "Publisher");
    Result<Loan> loan = in_slices<Loan>(wait, [&](std::chrono::nanoseconds slice) {
      return publisher_->value.loan(typestr, shape, slice);
    });
    Result<std::uint64_t> seq = [&]() -> Result<std::uint64_t> {
      if (!loan) return std::unexpected(loan.error());
      py::gil_scoped_release nogil;
      std::memcpy(loan->bytes().data(), c.data(), loan->bytes().size());
      return publisher_->value.publish(std::move(*loan));
    }();
    return unwrap(std::move(seq));
  }
  [[nodiscard]] std::uint64_t last_seq() const { return publisher_->value.last_seq(); }
  [[nodiscard]] const ArrayInfo& info() const { return publisher_->value.info(); }

 private:
  std::shared_ptr<Shared<Publisher>> publisher_;
};

// Owner of one Sample: the base of the read-only ndarray that take() returns.
class SampleHandle {
 public:
  explicit SampleHandle(Sample s) : sample_(std::move(s)) {}
  [[nodiscard]] const Sample& sample() const { return sample_; }

 private:
  Sample sample_;
};

class PySubscriber {
 public:
  explicit PySubscriber(Subscriber s)
      : subscriber_(std::make_shared<Shared<Subscriber>>(std::move(s))) {}

  py::array take(std::optional<double> timeout) {
    const auto wait = timeout_of(timeout).value_or(forever());
    std::shared_ptr<Shared<Subscriber>> sub = subscriber_;
    Result<Sample> taken = [&] {
      InUse in_use(*sub, "Subscriber");
      return in_slices<Sample>(
          wait, [&](std::chrono::nanoseconds slice) { return sub->value.take(slice); });
    }();
    Sample sample = unwrap(std::move(taken));
    const MessageInfo info = sample.info();
    py::object handle = py::cast(SampleHandle(std::move(sample)), py::return_value_policy::move);
    const auto& owner = handle.cast<const SampleHandle&>();
    std::vector<py::ssize_t> shape(info.shape.begin(), info.shape.end());
    std::vector<py::ssize_t> strides(info.strides.begin(), info.strides.end());
    py::array result(py::reinterpret_borrow<py::dtype>(numpy_dtype(info.dtype)),
                     std::move(shape), std::move(strides),
                     const_cast<std::byte*>(owner.sample().bytes().data()), handle);
    result.attr("setflags")(py::arg("write") = false);
    return result;
  }
  [[nodiscard]] std::uint64_t missed() const { return subscriber_->value.missed(); }
  [[nodiscard]] std::uint64_t position() const { return subscriber_->value.position(); }
  [[nodiscard]] std::uint32_t held() const { return subscriber_->value.held(); }
  [[nodiscard]] const ArrayInfo& info() const { return subscriber_->value.info(); }

 private:
  std::shared_ptr<Shared<Subscriber>> subscriber_;
};

template <class Fn>
auto without_gil(Fn&& fn) {
  py::gil_scoped_release nogil;
  return fn();
}

}  // namespace

void bind_streams(py::module_& m) {
  py::class_<LoanHandle>(m, "LoanHandle", py::buffer_protocol(),
                         "Owner of an open loan: the base of the ndarray Publisher.loan yields.")
      .def_property_readonly("open", &LoanHandle::open)
      .def_buffer([](const LoanHandle& h) {
        return py::buffer_info(h.data(), 1, "B", static_cast<py::ssize_t>(h.size()), false);
      });
  py::class_<LoanContext>(m, "LoanContext", R"doc(
Returned by Publisher.loan: `with pub.loan(shape, dtype) as frame:` yields a writable ndarray in a
slot of the ring; the message is published when the block exits cleanly and abandoned (never seen
by anyone) if it raises. Do not keep the ndarray past the block: it is made read-only there.
)doc")
      .def("__enter__", &LoanContext::enter)
      .def("__exit__",
           [](LoanContext& self, const py::object& type, const py::object&, const py::object&) {
             return self.exit(type);
           })
      .def_property_readonly("seq", &LoanContext::seq,
                             "The message's sequence number once published, else None.");
  py::class_<SampleHandle>(m, "SampleHandle", py::buffer_protocol(), R"doc(
Owner of a taken message: the base of the ndarray Subscriber.take returns. The slot stays held
(not reused by the publisher) until this object, the ndarray and every view of it are gone.
)doc")
      .def_property_readonly("seq", [](const SampleHandle& h) { return h.sample().seq(); },
                             "The message's sequence number (1, 2, 3, ... per stream).")
      .def_property_readonly(
          "published_ns", [](const SampleHandle& h) { return h.sample().published_unix_ns(); },
          "When it was published (Unix time, ns).")
      .def_buffer([](const SampleHandle& h) {
        const auto bytes = h.sample().bytes();
        return py::buffer_info(const_cast<std::byte*>(bytes.data()), 1, "B",
                               static_cast<py::ssize_t>(bytes.size()), true);
      });
  py::class_<PyPublisher>(m, "Publisher", R"doc(
The one writer of a stream (Client.create_stream / Client.open_publisher). Use from one thread.
)doc")
      .def("loan", &PyPublisher::loan, py::arg("shape"), py::arg("dtype") = "float64",
           py::kw_only(), py::arg("timeout") = py::none(), py::arg("order") = "C", R"doc(
A context manager yielding a writable ndarray of `shape` and `dtype` in the next slot.
overflow='block' streams wait (up to timeout seconds; None: no limit) for the slowest subscriber:
DeadlineExceeded names it. InvalidArgument if the message does not fit slot_bytes.
)doc")
      .def("send", &PyPublisher::send, py::arg("array"), py::kw_only(),
           py::arg("timeout") = py::none(),
           "Copies an array into a new message and publishes it; returns its sequence number.")
      .def_property_readonly("last_seq", &PyPublisher::last_seq,
                             "Sequence number of the last published message (0: none).")
      .def_property_readonly("info", &PyPublisher::info);
  py::class_<PySubscriber>(m, "Subscriber", R"doc(
A reader of a stream (Client.subscribe). take() returns read-only ndarrays over the slot itself;
iterating takes forever. Use from one thread; samples may be dropped on any thread.
)doc")
      .def("take", &PySubscriber::take, py::arg("timeout") = py::none(), R"doc(
The next message as a read-only ndarray (zero copy; .base.seq, .base.published_ns). Waits up to
timeout seconds (None: no limit): DeadlineExceeded (TimeoutError). ResourceExhausted when
max_held messages are held: drop one (del it and its views) first.
)doc")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__", [](PySubscriber& self) { return self.take(std::nullopt); })
      .def_property_readonly("missed", &PySubscriber::missed,
                             "Messages dropped (overflow='drop_oldest') before this subscriber "
                             "took them.")
      .def_property_readonly("position", &PySubscriber::position,
                             "The sequence number the next take() returns at the earliest.")
      .def_property_readonly("held", &PySubscriber::held, "Messages held now.")
      .def_property_readonly("info", &PySubscriber::info);

  py::object client = m.attr("Client");
  client.attr("create_stream") = py::cpp_function(
      [](py::object self, const std::string& name, std::uint32_t slots, std::uint64_t slot_bytes,
         const std::string& overflow, std::uint32_t history, std::uint32_t max_subscribers,
         std::uint32_t mode, bool ephemeral) {
        StreamSpec spec;
        spec.slots = slots;
        spec.slot_bytes = slot_bytes;
        spec.overflow = overflow_of(overflow);
        spec.history = history;
        spec.max_subscribers = max_subscribers;
        spec.mode = mode;
        spec.ephemeral = ephemeral;
        auto c = client_of(self);
        auto pub = without_gil([&] { return c->create_stream(name, spec); });
        return PyPublisher(unwrap(std::move(pub)));
      },
      py::is_method(client), py::arg("name"), py::kw_only(), py::arg("slots") = 8,
      py::arg("slot_bytes"), py::arg("overflow") = "block", py::arg("history") = 0,
      py::arg("max_subscribers") = 16, py::arg("mode") = 0600, py::arg("ephemeral") = false,
      R"doc(
Creates a stream and returns its Publisher. slots: ring capacity; slot_bytes: the largest message
in bytes; overflow: 'block' (every subscriber gets every message; the publisher waits for the
slowest) or 'drop_oldest' (the publisher never waits; slow subscribers count drops in .missed);
history: messages a late subscriber may still take (subscribe(from_history=True)).
Raises AlreadyExists, InvalidArgument, ResourceExhausted.
)doc");
  client.attr("open_publisher") = py::cpp_function(
      [](py::object self, const std::string& name) {
        auto c = client_of(self);
        auto pub = without_gil([&] { return c->open_publisher(name); });
        return PyPublisher(unwrap(std::move(pub)));
      },
      py::is_method(client), py::arg("name"),
      "Takes over a stream whose publisher is gone; the sequence continues. FailedPrecondition "
      "while its publisher lives.");
  client.attr("subscribe") = py::cpp_function(
      [](py::object self, const std::string& name, std::optional<double> wait, bool from_history,
         std::uint32_t max_held) {
        SubscribeOptions options;
        options.wait = std::chrono::ceil<std::chrono::milliseconds>(
            timeout_of(wait.value_or(0.0)).value_or(std::chrono::milliseconds(UINT32_MAX)));
        options.from_history = from_history;
        options.max_held = max_held;
        auto c = client_of(self);
        auto sub = without_gil([&] { return c->subscribe(name, options); });
        return PySubscriber(unwrap(std::move(sub)));
      },
      py::is_method(client), py::arg("name"), py::kw_only(), py::arg("wait") = py::none(),
      py::arg("from_history") = false, py::arg("max_held") = 2, R"doc(
Joins a stream. wait: seconds to wait for it to be created (None or 0: do not wait);
from_history: start at the oldest retained message; max_held: messages this subscriber may hold
at once. Raises NotFound, PermissionDenied, ResourceExhausted (the ring cannot serve max_held).
)doc");
}

}  // namespace shmarray::python
