// DType's accessors and its two printed forms: the canonical text (str) and NumPy's str(dtype)
// (numpy_str, what `shmarray stat` shows). The decoder is dtype_parse.cpp.
#include <algorithm>
#include <string>

#include "shmarray/dtype.hpp"

namespace shmarray {
namespace {

std::string bits(std::size_t itemsize) { return std::to_string(itemsize * 8); }

std::string shape_tuple(const std::vector<std::uint64_t>& shape) {  // Python's repr of a tuple
  std::string out = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + (shape.size() == 1 ? ",)" : ")");
}

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

bool is_packed(const DType& d) {  // numpy/core/_dtype.py _is_packed, align=False
  std::uint64_t total = 0;
  for (const auto& f : d.fields()) {
    if (f.offset != total) return false;
    total += f.nbytes();
  }
  return total == d.itemsize();
}

std::string construction_repr(const DType& d);

// A field's format in the list form: "'<f4'", "'u1', (3,)" or a nested list/dict.
std::string list_item_format(const DTypeField& f) {
  std::string out = construction_repr(f.dtype);
  if (!f.shape.empty()) out += ", " + shape_tuple(f.shape);
  return out;
}

std::string struct_str(const DType& d) {
  std::string out;
  if (is_packed(d)) {
    out = "[";
    bool first = true;
    for (const auto& f : d.fields()) {
      if (!first) out += ", ";
      first = false;
      out += "(" + quoted(f.name) + ", " + list_item_format(f) + ")";
    }
    return out + "]";
  }
  std::string names, formats, offsets;
  for (const auto& f : d.fields()) {
    const bool first = names.empty();
    if (!first) names += ", ", formats += ", ", offsets += ", ";
    names += quoted(f.name);
    formats += f.shape.empty() ? construction_repr(f.dtype)
                               : "(" + construction_repr(f.dtype) + ", " + shape_tuple(f.shape) + ")";
    offsets += std::to_string(f.offset);
  }
  return "{'names': [" + names + "], 'formats': [" + formats + "], 'offsets': [" + offsets +
         "], 'itemsize': " + std::to_string(d.itemsize()) + "}";
}

// numpy/core/_dtype.py _construction_repr(dtype, short=True).
std::string construction_repr(const DType& d) {
  if (d.is_structured()) return struct_str(d);
  const std::string order = d.byteorder() == '|' ? "" : std::string(1, d.byteorder());
  const std::string unit = d.datetime_unit().empty() ? "" : "[" + d.datetime_unit() + "]";
  switch (d.kind()) {
    case 'b': return "'?'";
    case 'S': return "'S" + std::to_string(d.itemsize()) + "'";
    case 'U': return "'" + order + "U" + std::to_string(d.itemsize() / 4) + "'";
    case 'V': return "'V" + std::to_string(d.itemsize()) + "'";
    case 'M': return "'" + order + "M8" + unit + "'";
    case 'm': return "'" + order + "m8" + unit + "'";
    default: return "'" + order + d.kind() + std::to_string(d.itemsize()) + "'";
  }
}

}  // namespace

std::uint64_t DTypeField::nbytes() const noexcept {
  std::uint64_t n = dtype.itemsize();
  for (std::uint64_t d : shape) n *= d;  // bounded by kMaxItemsize when validated
  return n;
}

std::string DType::str() const {
  if (fields_) {
    std::string out = "{";
    for (const auto& f : *fields_) {
      if (out.size() > 1) out += ',';
      out += "'" + f.name + "':" + f.dtype.str();
      if (!f.shape.empty()) {
        out += '(';
        for (std::size_t i = 0; i < f.shape.size(); ++i) {
          if (i > 0) out += ',';
          out += std::to_string(f.shape[i]);
        }
        out += ')';
      }
      out += "@" + std::to_string(f.offset);
    }
    return out + "}" + std::to_string(itemsize_);
  }
  std::string out(1, byteorder_);
  out += kind_;
  out += std::to_string(kind_ == 'U' ? itemsize_ / 4 : itemsize_);
  if (!unit_.empty()) out += "[" + unit_ + "]";
  return out;
}

std::string DType::name() const {
  const std::string unit = unit_.empty() ? "" : "[" + unit_ + "]";
  switch (kind_) {
    case 'b': return "bool";
    case 'i': return "int" + bits(itemsize_);
    case 'u': return "uint" + bits(itemsize_);
    case 'f': return "float" + bits(itemsize_);
    case 'c': return "complex" + bits(itemsize_);
    case 'M': return "datetime64" + unit;
    case 'm': return "timedelta64" + unit;
    case 'S': return "bytes" + bits(itemsize_);
    case 'U': return "str" + bits(itemsize_);
    default: return "void" + bits(itemsize_);
  }
}

std::string DType::numpy_str() const {
  if (fields_) return struct_str(*this);
  if (kind_ == 'S' || kind_ == 'U' || kind_ == 'V' || !is_native()) return str();
  return name();
}

bool DType::is_native() const noexcept {
  if (!fields_) return byteorder_ != '>';
  return std::all_of(fields_->begin(), fields_->end(),
                     [](const DTypeField& f) { return f.dtype.is_native(); });
}

std::span<const DTypeField> DType::fields() const noexcept {
  if (!fields_) return {};
  return *fields_;
}

const DTypeField* DType::field(std::string_view name) const noexcept {
  for (const auto& f : fields()) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

bool operator==(const DType& a, const DType& b) noexcept {
  if (a.kind_ != b.kind_ || a.byteorder_ != b.byteorder_ || a.itemsize_ != b.itemsize_ ||
      a.unit_ != b.unit_ || a.is_structured() != b.is_structured()) {
    return false;
  }
  if (!a.fields_ || a.fields_ == b.fields_) return true;
  return *a.fields_ == *b.fields_;
}

Result<void> check_struct_view(const DType& dtype, std::size_t size,
                               std::span<const FieldDecl> declared, std::string_view what) {
  const std::string array = "array '" + std::string(what) + "'";
  if (dtype.itemsize() != size) {
    return fail(ErrorCode::kInvalidArgument,
                array + " holds " + std::to_string(dtype.itemsize()) + "-byte elements (" +
                    dtype.numpy_str() + "), but the C++ type is " + std::to_string(size) +
                    " bytes");
  }
  for (const FieldDecl& decl : declared) {
    const std::string field = "field '" + std::string(decl.name) + "'";
    const DTypeField* f = dtype.field(decl.name);
    if (f == nullptr) {
      return fail(ErrorCode::kInvalidArgument,
                  array + " has no " + field + " (its dtype is " + dtype.numpy_str() + ")");
    }
    if (f->offset != decl.offset) {
      return fail(ErrorCode::kInvalidArgument,
                  field + " is at offset " + std::to_string(f->offset) + " in " + array +
                      " but at offset " + std::to_string(decl.offset) + " in the C++ struct");
    }
    if (f->nbytes() != decl.size) {
      return fail(ErrorCode::kInvalidArgument,
                  field + " is " + std::to_string(f->nbytes()) + " bytes in " + array +
                      " but " + std::to_string(decl.size) + " bytes in the C++ struct");
    }
    if (!decl.typestr.empty() && (!f->shape.empty() || f->dtype.str() != decl.typestr)) {
      return fail(ErrorCode::kInvalidArgument,
                  field + " of " + array + " holds " + f->dtype.str() + ", not " +
                      std::string(decl.typestr));
    }
  }
  return {};
}

}  // namespace shmarray
