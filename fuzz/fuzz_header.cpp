// libFuzzer target for the decoders of bytes that any writer of a segment controls: the header
// page and its size. Input: 8 bytes of st_size (little-endian), then the page (any length).
//   - client side: read_segment_header on the page (as mapped: random bytes, random size), and
//     check_segment_header (an open's check of a granted segment) against a fixed record and
//     against the page's own decoding;
//   - broker side: decode_segment_header with the random size, the recovery decision
//     (decide_recovery) against a fixed catalogue record and against the page's own record, the
//     catalogue record decoder (decode_catalogue_record on the page bytes), and the catalogue
//     file reader twice: on a file of the current layout whose records are the page bytes, and on
//     a file holding the bytes alone (an older layout's file: the conversion path).
// Properties beyond "no crash, no sanitizer report, no hang":
//   - a header that decodes re-encodes to one that decodes to the same array;
//   - check_segment_header accepts only headers that decode to the metadata given, and always a
//     header against its own decoding;
//   - the recovery decision never restores a header into a shrunk segment, always marks it
//     damaged, and restores exactly when the page differs from the record;
//   - a record that decodes re-encodes to one that decodes to the same array;
//   - a catalogue opened from arbitrary bytes holds only records that decode, and survives
//     a reopen unchanged.
// Build and run: fuzz/run_fuzz.sh [SECONDS]. Seeds: fuzz/corpus_header/ (fuzz/make_corpus.cpp).
#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "catalogue.hpp"
#include "catalogue_record.hpp"
#include "segment_check.hpp"
#include "shmarray/segment_layout.hpp"

namespace {

namespace server = shmarray::server;
using shmarray::ArrayInfo;
using shmarray::SegmentHeader;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

// Aligned like a mapping, so the live fields' atomics are aligned as in a real segment.
struct alignas(4096) Page {
  std::byte bytes[2 * shmarray::kHeaderBytes];
};

ArrayInfo sample_record() {
  ArrayInfo i;
  i.name = "frames/cam0";
  i.dtype = "<f4";
  i.shape = {4, 8};
  i.strides = {32, 4};
  i.itemsize = 4;
  i.nbytes = 128;
  i.data_offset = shmarray::kHeaderBytes;
  i.segment_bytes = 2 * shmarray::kHeaderBytes;
  i.id = "0123456789abcdef0123456789abcdef";
  i.owner_uid = 1000;
  i.owner_gid = 1000;
  i.mode = 0640;
  i.created_unix_ns = 1'700'000'000'000'000'000;
  return i;
}

void check_round_trip(const ArrayInfo& info) {
  auto encoded = shmarray::encode_segment_header(info);
  check(encoded.has_value());
  auto again = shmarray::decode_segment_header(*encoded, info.segment_bytes);
  check(again.has_value());
  check(again->name == info.name && again->id == info.id && again->shape == info.shape &&
        again->strides == info.strides && again->dtype == info.dtype &&
        again->segment_bytes == info.segment_bytes && again->mode == info.mode);
}

void check_recovery(const ArrayInfo& recorded, std::span<const std::byte> page,
                    std::uint64_t found_bytes) {
  auto expected = shmarray::encode_segment_header(recorded);
  check(expected.has_value());
  const server::RecoveryDecision d = server::decide_recovery(recorded, *expected, page, found_bytes);
  check(d.size == server::judge_size(recorded.segment_bytes, found_bytes));
  if (d.size == server::SizeState::kShrunk) {
    check(!d.restore_header && !d.damaged.empty());
    return;
  }
  check(d.damaged.empty());
  const bool same = page.size() >= sizeof(SegmentHeader) &&
                    std::memcmp(page.data(), &*expected, sizeof(SegmentHeader)) == 0;
  check(d.restore_header == !same);
}

void check_record(std::span<const std::byte> bytes) {
  auto info = server::decode_catalogue_record(bytes);
  if (!info) return;
  check_round_trip(*info);
  auto again = server::encode_catalogue_record(*info);
  check(again.has_value());
  auto back = server::decode_catalogue_record(again->view());
  check(back.has_value() && back->id == info->id && back->name == info->name &&
        back->dtype == info->dtype && back->shape == info->shape && back->mode == info->mode &&
        back->kind == info->kind && back->stream.slots == info->stream.slots);
}

// `head`: the current layout's file head in front of `bytes`, else `bytes` alone.
void check_catalogue(std::span<const std::byte> bytes, bool head) {
  // On tmpfs: converting an old layout's file fsyncs it, which on a disk would cost the fuzzer
  // most of its executions.
  static const std::string path = "/dev/shm/fuzz_header_catalogue." + std::to_string(::getpid());
  ::unlink(path.c_str());
  {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    check(fd >= 0);
    std::byte first_slot[server::Catalogue::kSlotBytes] = {};
    std::memcpy(first_slot, server::Catalogue::kFileMagic, sizeof server::Catalogue::kFileMagic);
    if (head) check(::write(fd, first_slot, sizeof first_slot) == sizeof first_slot);
    check(::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
    ::close(fd);
  }
  auto first = server::Catalogue::open(path);
  // Refused only as "a newer layout": the bytes alone began with the magic's first 7 bytes.
  if (!head && !first && first.error().code() == shmarray::ErrorCode::kFailedPrecondition) {
    ::unlink(path.c_str());
    return;
  }
  check(first.has_value());
  std::vector<std::string> ids = first->ids();
  for (const std::string& id : ids) {
    auto info = first->get(id);
    check(info.has_value() && info->id == id);
    check_round_trip(*info);
  }
  // Damaged slots were cleared: a reopen finds the same records and no damage.
  auto second = server::Catalogue::open(path);
  check(second.has_value());
  check(second->size() == ids.size() && second->damaged().empty());
  ::unlink(path.c_str());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 8) return 0;
  std::uint64_t found_bytes = 0;
  std::memcpy(&found_bytes, data, 8);
  const std::span<const std::byte> rest(reinterpret_cast<const std::byte*>(data) + 8, size - 8);
  const std::size_t page_bytes = std::min(rest.size(), sizeof(Page::bytes));
  auto page = std::make_unique<Page>();
  std::memcpy(page->bytes, rest.data(), page_bytes);
  const std::span<const std::byte> mapped(page->bytes, page_bytes);

  // Client side: the page as mapped (its size is the mapping's).
  if (auto info = shmarray::read_segment_header(mapped)) check_round_trip(*info);

  // Broker side: a header copy against a random st_size.
  SegmentHeader header{};
  std::memcpy(&header, page->bytes, std::min(page_bytes, sizeof header));
  auto own = shmarray::decode_segment_header(header, found_bytes);
  if (own) check_round_trip(*own);

  // Client side, as an open checks a granted segment's header copy: check_segment_header accepts
  // a header only if it decodes and describes the metadata, and always a header that decodes
  // against its own decoding.
  const ArrayInfo sample = sample_record();
  if (shmarray::check_segment_header(header, sample, found_bytes)) {
    check(own && own->id == sample.id && own->dtype == sample.dtype &&
          own->shape == sample.shape && own->strides == sample.strides &&
          own->nbytes == sample.nbytes && own->segment_bytes == sample.segment_bytes);
  }
  if (own) check(shmarray::check_segment_header(header, *own, found_bytes).has_value());

  check_recovery(sample, mapped, found_bytes);
  if (own) check_recovery(*own, mapped, found_bytes);

  check_record(rest);
  const auto file = rest.first(std::min<std::size_t>(rest.size(), 8 * 1024));
  check_catalogue(file, true);
  check_catalogue(file, false);
  return 0;
}
