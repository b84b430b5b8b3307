#include "recovery.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "shmarray/mapping.hpp"
#include "shmarray/segment_layout.hpp"
#include "shmarray/unique_fd.hpp"

namespace shmarray::server {
namespace {

Result<ArrayInfo> inspect(const std::string& shm_name, const std::string& expected_id) {
  UniqueFd fd(::shm_open(shm_name.c_str(), O_RDONLY | O_CLOEXEC, 0));
  if (!fd) return std::unexpected(sys_error("cannot open", errno));
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) return std::unexpected(sys_error("fstat", errno));
  if (st.st_uid != ::geteuid()) {
    return fail(ErrorCode::kPermissionDenied, "owned by uid " + std::to_string(st.st_uid));
  }
  if (static_cast<std::uint64_t>(st.st_size) < kHeaderBytes) {
    return fail(ErrorCode::kProtocolError, "smaller than a header page");
  }
  // Mapping the whole segment costs address space only: just the header page is read.
  auto mapping = Mapping::map(fd.get(), static_cast<std::size_t>(st.st_size),
                              Mapping::Protection::kRead);
  if (!mapping) return std::unexpected(mapping.error());
  auto info = read_segment_header(mapping->bytes());
  if (!info) return info;
  if (info->id != expected_id) {
    return fail(ErrorCode::kProtocolError, "header id does not match the segment name");
  }
  if (auto ok = validate_name(info->name); !ok) return std::unexpected(ok.error());
  return info;
}

}  // namespace

RecoveryReport recover_segments(const std::string& shm_dir, const std::string& prefix) {
  RecoveryReport report;
  const std::string file_prefix = prefix.substr(1);
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(shm_dir.c_str()), ::closedir);
  if (!dir) {
    report.skipped.push_back(shm_dir + ": " + std::strerror(errno));
    return report;
  }
  while (const dirent* entry = ::readdir(dir.get())) {
    const std::string file = entry->d_name;
    if (file.compare(0, file_prefix.size(), file_prefix) != 0) continue;
    const std::string id = file.substr(file_prefix.size());
    auto info = inspect("/" + file, id);
    if (!info) {
      report.skipped.push_back(shm_dir + "/" + file + ": " + info.error().message());
      const ErrorCode code = info.error().code();
      report.rejected.push_back(RejectedSegment{
          "/" + file, info.error().message(),
          code == ErrorCode::kProtocolError || code == ErrorCode::kInvalidArgument});
      continue;
    }
    report.arrays.push_back(RecoveredArray{std::move(*info), Segment::adopt("/" + file)});
  }
  std::sort(report.arrays.begin(), report.arrays.end(), [](const auto& a, const auto& b) {
    return a.info.created_unix_ns < b.info.created_unix_ns;
  });
  return report;
}

}  // namespace shmarray::server
