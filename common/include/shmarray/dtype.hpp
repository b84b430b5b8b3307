#pragma once
// Element types: everything NumPy can put in an array without Python objects, in either byte
// order, and structured (record) types built from them.
//
// One canonical text form travels on the wire, in segment headers and in the broker's catalogue
// (DType::str()); DType::parse() decodes it, validates it as untrusted input and also accepts the
// spellings users type:
//   simple      NumPy's typestr (dtype.str): byte order, kind, size, datetime unit:
//                 |b1  |i1 <i2 >i4 <i8  |u1 .. <u8  <f2 <f4 >f8 <f16 (long double)
//                 <c8 <c16 <c32  <M8[ns] >m8[25s] <M8 (generic)  |S10  <U3 (3 characters)  |V16
//               plus the order-less forms NumPy accepts ("f8", "=i4", "<i1") and plain names
//               (float64, int8, uint16, bool, complex128, longdouble, ...), normalised to the
//               typestr ('|' for one-byte and byte-string types, '<' for this host's order).
//   structured  '{' field (',' field)* '}' itemsize        e.g. {'x':<f4@0,'rgb':|u1(3)@4}8
//               field: 'name' ':' dtype ['(' dim (',' dim)* ')'] '@' offset
//               Fields keep their order; offsets are explicit, so padding, out-of-order and
//               nested layouts round-trip exactly (np.dtype-equal; NumPy's 'aligned' display
//               flag is not kept). Names: 1-64 bytes of printable ASCII other than ' and \.
// Object dtype ('O') and Python-only kinds are refused: their elements are pointers into one
// process's heap, meaningless in another.
#include <complex>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shmarray/error.hpp"

namespace shmarray {

// Limits applied to every dtype decoded, from any source (they bound the decoder's work and the
// space the text needs in a segment header).
inline constexpr std::size_t kMaxDTypeTextBytes = 1023;   // canonical text, fits the header
inline constexpr std::size_t kMaxDTypeDepth = 8;          // structs nested in structs
inline constexpr std::size_t kMaxDTypeFields = 256;       // fields in the whole tree
inline constexpr std::size_t kMaxFieldNameBytes = 64;
inline constexpr std::size_t kMaxSubarrayNdim = 8;
inline constexpr std::uint64_t kMaxItemsize = std::uint64_t{1} << 40;  // any (sub)type, bytes

struct DTypeField;

class DType {
 public:
  // Decodes and validates `text` (see the top of this file). kInvalidArgument saying what is
  // wrong (and, for a simple type, what is accepted) otherwise.
  [[nodiscard]] static Result<DType> parse(std::string_view text);
  // A structured dtype from its parts, validated as parse() would (limits, names unique, each
  // field inside `itemsize`, no two fields overlapping). kInvalidArgument naming the field.
  [[nodiscard]] static Result<DType> structured(std::vector<DTypeField> fields,
                                                std::uint64_t itemsize);

  // NumPy's kind: 'b','i','u','f','c','M','m','S','U','V' ('V' for structured too).
  [[nodiscard]] char kind() const noexcept { return kind_; }
  // '<' little, '>' big, '|' not applicable (one-byte numbers, S, V, structured).
  [[nodiscard]] char byteorder() const noexcept { return byteorder_; }
  [[nodiscard]] std::size_t itemsize() const noexcept { return itemsize_; }
  // Canonical text: the typestr ("<f8", "|u1", "<M8[ns]") or the structured form.
  [[nodiscard]] std::string str() const;
  // What Python's str(numpy.dtype(...)) prints: "float64", ">f8", "datetime64[ns]", "|S3",
  // "[('x', '<f4'), ('y', '<f4')]", "{'names': [...], 'offsets': [...], ...}".
  [[nodiscard]] std::string numpy_str() const;
  // NumPy's dtype.name: "float64", "bool", "datetime64[ns]", "bytes24", "str96", "void64".
  [[nodiscard]] std::string name() const;

  // Datetime / timedelta unit as NumPy writes it ("ns", "25s"); "" for generic and other kinds.
  [[nodiscard]] const std::string& datetime_unit() const noexcept { return unit_; }
  // True when the elements are in this host's byte order (all fields, for a structured type).
  [[nodiscard]] bool is_native() const noexcept;
  [[nodiscard]] bool is_structured() const noexcept { return fields_ != nullptr; }
  // The fields in declaration order (empty for a simple type).
  [[nodiscard]] std::span<const DTypeField> fields() const noexcept;
  // The field called `name`, or nullptr.
  [[nodiscard]] const DTypeField* field(std::string_view name) const noexcept;

  friend bool operator==(const DType& a, const DType& b) noexcept;

 private:
  friend class DTypeParser;
  DType(char kind, char byteorder, std::size_t itemsize, std::string unit = {})
      : kind_(kind), byteorder_(byteorder), itemsize_(itemsize), unit_(std::move(unit)) {}
  char kind_;
  char byteorder_;
  std::size_t itemsize_;
  std::string unit_;
  std::shared_ptr<const std::vector<DTypeField>> fields_;  // immutable; shared by copies
};

// One field of a structured dtype: `dtype` (or a C-order sub-array of `shape` of it) at byte
// `offset` of each element.
struct DTypeField {
  std::string name;
  std::uint64_t offset = 0;
  DType dtype;
  std::vector<std::uint64_t> shape;  // empty: a scalar field

  // dtype.itemsize() x the product of shape.
  [[nodiscard]] std::uint64_t nbytes() const noexcept;
  friend bool operator==(const DTypeField&, const DTypeField&) = default;
};

// The canonical typestr of a C++ element type, used by Array::as<T>() to check access.
template <class T>
struct dtype_of;
template <> struct dtype_of<float> { static constexpr std::string_view value = "<f4"; };
template <> struct dtype_of<double> { static constexpr std::string_view value = "<f8"; };
template <> struct dtype_of<long double> { static constexpr std::string_view value = "<f16"; };
template <> struct dtype_of<std::int8_t> { static constexpr std::string_view value = "|i1"; };
template <> struct dtype_of<std::int16_t> { static constexpr std::string_view value = "<i2"; };
template <> struct dtype_of<std::int32_t> { static constexpr std::string_view value = "<i4"; };
template <> struct dtype_of<std::int64_t> { static constexpr std::string_view value = "<i8"; };
template <> struct dtype_of<std::uint8_t> { static constexpr std::string_view value = "|u1"; };
template <> struct dtype_of<std::uint16_t> { static constexpr std::string_view value = "<u2"; };
template <> struct dtype_of<std::uint32_t> { static constexpr std::string_view value = "<u4"; };
template <> struct dtype_of<std::uint64_t> { static constexpr std::string_view value = "<u8"; };
template <> struct dtype_of<bool> { static constexpr std::string_view value = "|b1"; };
template <> struct dtype_of<std::complex<float>> { static constexpr std::string_view value = "<c8"; };
template <> struct dtype_of<std::complex<double>> { static constexpr std::string_view value = "<c16"; };
template <class T> struct dtype_of<const T> : dtype_of<T> {};

// True when dtype_of<T> names a typestr (arithmetic element types); false for user structs.
template <class T>
concept HasTypestr = requires { dtype_of<T>::value; };

// A field a user struct declares, for Array::as<T>() to check against a structured dtype:
//   template <> struct shmarray::struct_fields<Point> {
//     static constexpr shmarray::FieldDecl value[] = {SHMARRAY_FIELD(Point, x), ...};
//   };
// `typestr` may be empty (then only the offset and size are checked).
struct FieldDecl {
  std::string_view name;
  std::size_t offset;
  std::size_t size;
  std::string_view typestr;
};
template <class T>
struct struct_fields;  // specialise to declare T's fields
template <class T>
concept HasStructFields = requires { struct_fields<T>::value; };

namespace detail {
template <class M>
constexpr std::string_view typestr_of_member() {
  if constexpr (HasTypestr<M>) return dtype_of<M>::value;
  return {};
}
}  // namespace detail

// The FieldDecl of member `member` of struct `Type`, typestr included for arithmetic members.
#define SHMARRAY_FIELD(Type, member)                                            \
  ::shmarray::FieldDecl {                                                       \
    #member, offsetof(Type, member), sizeof(Type::member),                      \
        ::shmarray::detail::typestr_of_member<decltype(Type::member)>()         \
  }

// Checks that a C++ type of `size` bytes (with `declared` fields, possibly none) can view the
// elements of `dtype`: same itemsize, and each declared field present in dtype at the same offset
// with the same size (and typestr, if given). kInvalidArgument naming the field otherwise;
// `what` names the array in the message.
[[nodiscard]] Result<void> check_struct_view(const DType& dtype, std::size_t size,
                                             std::span<const FieldDecl> declared,
                                             std::string_view what);

}  // namespace shmarray
