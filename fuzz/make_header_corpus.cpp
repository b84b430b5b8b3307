// Writes the seed corpus for fuzz_header: 8 bytes of st_size then header-page bytes, for intact,
// grown, shrunk, scribbled, empty and catalogue-like (duplicate record) pages, and catalogue
// records of the current layout (256-byte slots: a record, a duplicate, a record of 2 slots).
// Usage: make_header_corpus OUT_DIR. Build from the repository root after a main build:
//   g++ -std=c++2b -Icommon/include -Icommon/private -Iserver/src fuzz/make_header_corpus.cpp
//     server/src/catalogue_record.cpp build/common/libshmarray_common.a
//     -o /tmp/make_header_corpus && /tmp/make_header_corpus fuzz/corpus_header
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "catalogue_record.hpp"
#include "shmarray/segment_layout.hpp"

namespace {

shmarray::ArrayInfo sample_info() {
  shmarray::ArrayInfo i;
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

bool write_seed(const std::string& path, std::uint64_t st_size, const std::byte* page,
                std::size_t n) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  const bool ok = std::fwrite(&st_size, 8, 1, f) == 1 && std::fwrite(page, 1, n, f) == n;
  return std::fclose(f) == 0 && ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_header_corpus OUT_DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  alignas(4096) static std::byte page[shmarray::kHeaderBytes];
  if (!shmarray::init_segment_header(page, sample_info())) return 1;
  const std::uint64_t size = 2 * shmarray::kHeaderBytes;
  bool ok = write_seed(dir + "/intact.bin", size, page, sizeof page) &&
            write_seed(dir + "/grown.bin", 1 << 20, page, sizeof page) &&
            write_seed(dir + "/shrunk_to_one_page.bin", shmarray::kHeaderBytes, page,
                       sizeof page) &&
            write_seed(dir + "/truncated_to_zero.bin", 0, page, 0);
  // A writer scribbled the mode without fixing the checksum.
  static std::byte scribbled[shmarray::kHeaderBytes];
  std::memcpy(scribbled, page, sizeof page);
  reinterpret_cast<shmarray::SegmentHeader*>(scribbled)->mode = 0666;
  ok = ok && write_seed(dir + "/scribbled_mode.bin", size, scribbled, sizeof scribbled);
  // Catalogue-like: the same record in slots 0 and 1 (a duplicate id), the rest free.
  static std::byte slots[4096];
  std::memcpy(slots, page, sizeof(shmarray::SegmentHeader));
  std::memcpy(slots + 2048, page, sizeof(shmarray::SegmentHeader));  // Catalogue::kSlotBytes
  ok = ok && write_seed(dir + "/catalogue_duplicate.bin", size, slots, sizeof slots);
  // Compact records (Catalogue::kSlotBytes = 256): slot 0 a record, slot 1 the same one (a
  // duplicate), slots 2-3 a record of a long name.
  static std::byte records[1024];
  auto one = shmarray::server::encode_catalogue_record(sample_info());
  shmarray::ArrayInfo long_named = sample_info();
  long_named.name = std::string(200, 'n');
  long_named.id = "fedcba9876543210fedcba9876543210";
  auto two = shmarray::server::encode_catalogue_record(long_named);
  ok = ok && one && two;
  if (ok) {
    std::memcpy(records, one->bytes.data(), one->size);
    std::memcpy(records + 256, one->bytes.data(), one->size);
    std::memcpy(records + 512, two->bytes.data(), two->size);
    ok = write_seed(dir + "/catalogue_records.bin", size, records, sizeof records) &&
         write_seed(dir + "/catalogue_record_alone.bin", size, records, 256);
  }
  return ok ? 0 : 1;
}
