// The client's mapping of a received segment descriptor (client/src/mapping_cache.cpp): a segment
// whose size is not the metadata's segment_bytes (a writer resized it) is refused with kDataLoss
// before anything is mapped or read, instead of a SIGBUS on the header read.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vector>

#include "mapped_segment.hpp"
#include "shmarray/segment_layout.hpp"
#include "shmarray/unique_fd.hpp"

namespace shmarray {
namespace {

ArrayInfo sample() {
  ArrayInfo i;
  i.name = "sized/array";
  i.dtype = "<f8";
  i.shape = {16};
  i.strides = {8};
  i.itemsize = 8;
  i.nbytes = 128;
  i.data_offset = kHeaderBytes;
  i.segment_bytes = 2 * kHeaderBytes;
  i.id = "00112233445566778899aabbccddeeff";
  i.mode = 0600;
  return i;
}

// A memfd of `bytes` holding a valid header for `info` (when it fits).
UniqueFd segment_of(const ArrayInfo& info, std::uint64_t bytes) {
  UniqueFd fd(::memfd_create("mapping_cache_test", MFD_CLOEXEC));
  EXPECT_TRUE(fd);
  EXPECT_EQ(::ftruncate(fd.get(), static_cast<off_t>(bytes)), 0);
  alignas(4096) static std::byte page[kHeaderBytes];
  EXPECT_TRUE(init_segment_header(page, info));
  if (bytes >= kHeaderBytes) {
    EXPECT_EQ(::pwrite(fd.get(), page, sizeof page, 0), static_cast<ssize_t>(kHeaderBytes));
  }
  return fd;
}

TEST(MappingCache, RefusesADescriptorWhoseSizeIsNotTheRecordedOne) {
  const ArrayInfo info = sample();
  for (std::uint64_t bytes : {std::uint64_t{0}, std::uint64_t{kHeaderBytes},
                              std::uint64_t{64} * kHeaderBytes}) {
    UniqueFd fd = segment_of(info, bytes);
    auto mapped = detail::map_segment(fd.get(), info, Access::kReadOnly, false);
    ASSERT_FALSE(mapped) << bytes;
    EXPECT_EQ(mapped.error().code(), ErrorCode::kDataLoss);
    const std::string& message = mapped.error().message();
    EXPECT_NE(message.find("'sized/array'"), std::string::npos) << message;
    EXPECT_NE(message.find(std::to_string(bytes) + " bytes"), std::string::npos) << message;
    EXPECT_NE(message.find(std::to_string(info.segment_bytes)), std::string::npos) << message;
    EXPECT_NE(message.find("remove and recreate the array"), std::string::npos) << message;
  }
  // The recorded size maps (the same check does not refuse honest segments).
  UniqueFd fd = segment_of(info, info.segment_bytes);
  auto mapped = detail::map_segment(fd.get(), info, Access::kReadOnly, false);
  ASSERT_TRUE(mapped) << mapped.error().message();
}

}  // namespace
}  // namespace shmarray
