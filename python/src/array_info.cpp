// shmarray.ArrayInfo: what the broker knows about an array (list(), stat(), ArrayHandle.info).
#include <pybind11/stl.h>

#include <cstdio>

#include "bindings.hpp"

namespace shmarray::python {
namespace {

py::tuple to_tuple(const auto& values) {
  py::tuple result(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) result[i] = py::int_(values[i]);
  return result;
}

std::string repr(const ArrayInfo& info) {
  std::string shape = py::repr(to_tuple(info.shape)).cast<std::string>();
  char mode[8];
  std::snprintf(mode, sizeof mode, "0o%03o", info.mode);
  return "ArrayInfo(name='" + info.name + "', dtype='" + info.dtype + "', shape=" + shape +
         ", order='" + std::string(to_string(info.order)) + "', nbytes=" +
         std::to_string(info.nbytes) + ", version=" + std::to_string(info.version) +
         ", owner_uid=" + std::to_string(info.owner_uid) + ", mode=" + mode +
         ", open_handles=" + std::to_string(info.open_handles) + ", id='" + info.id + "'" +
         (info.damaged.empty() ? "" : ", damaged=True") + ")";
}

}  // namespace

void bind_array_info(py::module_& m) {
  using I = ArrayInfo;
  py::class_<I>(m, "ArrayInfo", R"doc(
Metadata of one array, as the broker reported it (Client.list/stat) or as mapped
(ArrayHandle.info). A snapshot: version and open_handles are those of the moment it was made.
)doc")
      .def_property_readonly("name", [](const I& i) { return i.name; })
      .def_property_readonly(
          "dtype", [](const I& i) { return numpy_dtype(i.dtype); }, "numpy.dtype of the elements.")
      .def_property_readonly(
          "typestr", [](const I& i) { return i.dtype; }, "Canonical NumPy typestr, e.g. '<f8'.")
      .def_property_readonly(
          "shape", [](const I& i) { return to_tuple(i.shape); }, "tuple of ints.")
      .def_property_readonly(
          "strides", [](const I& i) { return to_tuple(i.strides); }, "tuple of ints, in bytes.")
      .def_property_readonly(
          "order", [](const I& i) { return std::string(to_string(i.order)); }, "'C' or 'F'.")
      .def_property_readonly("ndim", [](const I& i) { return i.shape.size(); })
      .def_property_readonly("itemsize", [](const I& i) { return i.itemsize; })
      .def_property_readonly("nbytes", [](const I& i) { return i.nbytes; },
                             "Data bytes: product of shape x itemsize.")
      .def_property_readonly("data_offset", [](const I& i) { return i.data_offset; },
                             "Offset of the first element in the segment.")
      .def_property_readonly("segment_bytes", [](const I& i) { return i.segment_bytes; },
                             "Whole segment (header page + data, page-rounded).")
      .def_property_readonly("id", [](const I& i) { return i.id; },
                             "32 hex digits, new for every create.")
      .def_property_readonly("owner_uid", [](const I& i) { return i.owner_uid; })
      .def_property_readonly("owner_gid", [](const I& i) { return i.owner_gid; })
      .def_property_readonly("mode", [](const I& i) { return i.mode; },
                             "Permission bits (e.g. 0o600).")
      .def_property_readonly("created_unix_ns", [](const I& i) { return i.created_unix_ns; })
      .def_property_readonly("open_handles", [](const I& i) { return i.open_handles; },
                             "Connections that have the array open (broker's count).")
      .def_property_readonly("version", [](const I& i) { return i.version; },
                             "Publish counter when this info was made.")
      .def_property_readonly("ephemeral", [](const I& i) { return i.ephemeral; },
                             "Removed when the creating connection closes.")
      .def_property_readonly(
          "damaged",
          [](const I& i) { return i.damaged.empty() ? py::none() : py::cast(i.damaged); },
          "None while intact; otherwise why opens fail with DataLoss (a writer truncated the "
          "segment) and the remedy.")
      .def_property_readonly(
          "mirror_of",
          [](const I& i) { return i.mirror_of.empty() ? py::none() : py::cast(i.mirror_of); },
          "None, or HOST:PORT of the broker this array is a read-only mirror of "
          "(docs/across-hosts.md).")
      .def_property_readonly(
          "mirror",
          [](const I& i) -> py::object {
            if (i.mirror_of.empty()) return py::none();
            py::dict d;
            d["source_version"] = i.mirror_source_version;
            d["lag_versions"] = i.mirror_lag_versions;
            d["lag_ms"] = i.mirror_lag_ms;
            d["link"] = i.mirror_link;
            return d;
          },
          "For a mirror: {'source_version', 'lag_versions', 'lag_ms', 'link'}; else None.")
      .def_property_readonly(
          "kind", [](const I& i) { return std::string(to_string(i.kind)); },
          "'array' or 'stream' (docs/streams.md).")
      .def_property_readonly(
          "stream",
          [](const I& i) -> py::object {
            if (i.kind != ObjectKind::kStream) return py::none();
            py::list subs;
            for (const auto& s : i.stream.subscribers) {
              py::dict d;
              d["pid"] = s.pid;
              d["position"] = s.position;
              d["held"] = s.held;
              d["max_held"] = s.max_held;
              d["missed"] = s.missed;
              subs.append(d);
            }
            py::dict out;
            out["slots"] = i.stream.slots;
            out["slot_bytes"] = i.stream.slot_bytes;
            out["history"] = i.stream.history;
            out["overflow"] = std::string(to_string(i.stream.overflow));
            out["max_subscribers"] = i.stream.max_subscribers;
            out["last_seq"] = i.stream.last_seq;
            out["publisher_pid"] = i.stream.publisher_pid;
            out["subscribers"] = subs;
            return out;
          },
          "For a stream: dict of slots, slot_bytes, history, overflow, max_subscribers, last_seq, "
          "publisher_pid (0: none) and subscribers (pid, position, held, max_held, missed); "
          "None for an array.")
      .def("__repr__", &repr);
}

}  // namespace shmarray::python
