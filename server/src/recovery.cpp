#include "recovery.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <set>

#include "shmarray/mapping.hpp"
#include "shmarray/segment_layout.hpp"
#include "shmarray/unique_fd.hpp"

namespace shmarray::server {
namespace {

// What inspecting one segment found.
struct Inspection {
  ArrayInfo info;
  bool header_restored = false;
};

// Matches segment `shm_name` with its catalogue record `recorded`: same owner (us), a size that
// fits the record, and a header page equal to the record's; a differing header is rewritten.
Result<Inspection> inspect(const std::string& shm_name, const ArrayInfo& recorded) {
  UniqueFd fd(::shm_open(shm_name.c_str(), O_RDWR | O_CLOEXEC, 0));
  if (!fd) return std::unexpected(sys_error("cannot open", errno));
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) return std::unexpected(sys_error("fstat", errno));
  if (st.st_uid != ::geteuid()) {
    return fail(ErrorCode::kPermissionDenied, "owned by uid " + std::to_string(st.st_uid));
  }
  if (static_cast<std::uint64_t>(st.st_size) != recorded.segment_bytes) {
    return fail(ErrorCode::kProtocolError,
                "is " + std::to_string(st.st_size) + " bytes but its catalogue record says " +
                    std::to_string(recorded.segment_bytes) + " (resized by a writer?)");
  }
  auto expected = encode_segment_header(recorded);
  if (!expected) return std::unexpected(expected.error());
  auto header = Mapping::map(fd.get(), kHeaderBytes, Mapping::Protection::kReadWrite);
  if (!header) return std::unexpected(header.error());
  Inspection found{recorded, false};
  std::byte* base = header->bytes().data();
  if (std::memcmp(base, &*expected, sizeof *expected) != 0) {
    std::memcpy(base, &*expected, sizeof *expected);
    found.header_restored = true;
  }
  found.info.version =
      live_fields_of(base)->version.load(std::memory_order_acquire);
  return found;
}

}  // namespace

RecoveryReport recover_segments(const std::string& shm_dir, const std::string& prefix,
                                const Catalogue& catalogue) {
  RecoveryReport report;
  const std::string file_prefix = prefix.substr(1);
  std::set<std::string> unmatched_records;
  for (auto& id : catalogue.ids()) unmatched_records.insert(std::move(id));

  std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(shm_dir.c_str()), ::closedir);
  if (!dir) {
    report.problems.push_back(shm_dir + ": " + std::strerror(errno));
    return report;  // no record is called an orphan when the segments could not be listed
  }
  while (const dirent* entry = ::readdir(dir.get())) {
    const std::string file = entry->d_name;
    if (file.compare(0, file_prefix.size(), file_prefix) != 0) continue;
    const std::string id = file.substr(file_prefix.size());
    const std::string shm_name = "/" + file;
    unmatched_records.erase(id);
    auto recorded = catalogue.get(id);
    if (!recorded) {
      const std::string why =
          recorded.error().code() == ErrorCode::kNotFound
              ? "no record in " + catalogue.path() +
                    " (not made by this broker, or it crashed between making and recording it)"
              : recorded.error().message();
      report.rejected.push_back(RejectedSegment{shm_name, why, true});
      continue;
    }
    auto found = inspect(shm_name, *recorded);
    if (!found) {
      const ErrorCode code = found.error().code();
      report.rejected.push_back(RejectedSegment{
          shm_name, found.error().message(),
          code == ErrorCode::kProtocolError || code == ErrorCode::kInvalidArgument});
      continue;
    }
    if (found->header_restored) {
      report.restored.push_back("'" + found->info.name + "' (" + shm_dir + "/" + file + ")");
    }
    report.arrays.push_back(RecoveredArray{std::move(found->info), Segment::adopt(shm_name)});
  }
  report.orphans.assign(unmatched_records.begin(), unmatched_records.end());
  std::sort(report.arrays.begin(), report.arrays.end(), [](const auto& a, const auto& b) {
    return a.info.created_unix_ns < b.info.created_unix_ns;
  });
  return report;
}

}  // namespace shmarray::server
