#include "recovery.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <set>
#include <vector>

#include "shmarray/segment_layout.hpp"
#include "segment_check.hpp"
#include "shmarray/unique_fd.hpp"

namespace shmarray::server {
namespace {

// What inspecting one segment found.
struct Inspection {
  ArrayInfo info;                // info.damaged set when a writer truncated the segment
  std::string header_restored;   // why the header page was rewritten ("" if it was not)
  std::uint64_t grown_from = 0;  // the size a writer had grown it to (0 if it had not)
};

// Matches segment `shm_name` with its catalogue record `recorded`: same owner (us), a size checked
// with fstat (grown: truncated back; shrunk: adopted as damaged), and a header page equal to the
// record's; a differing header is rewritten. pread/pwrite only: the broker never maps a segment.
Result<Inspection> inspect(const std::string& shm_name, const ArrayInfo& recorded) {
  UniqueFd fd(::shm_open(shm_name.c_str(), O_RDWR | O_CLOEXEC, 0));
  if (!fd) return std::unexpected(sys_error("cannot open", errno));
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) return std::unexpected(sys_error("fstat", errno));
  if (st.st_uid != ::geteuid()) {
    return fail(ErrorCode::kPermissionDenied, "owned by uid " + std::to_string(st.st_uid));
  }
  auto expected = encode_segment_header(recorded);
  if (!expected) return std::unexpected(expected.error());
  std::vector<std::byte> page(kHeaderBytes);
  auto got = pread_full(fd.get(), page.data(), page.size(), 0);
  if (!got) return std::unexpected(got.error());
  page.resize(*got);
  const auto found_bytes = static_cast<std::uint64_t>(st.st_size);
  const RecoveryDecision decision = decide_recovery(recorded, *expected, page, found_bytes);
  Inspection found{recorded, {}, 0};
  found.info.damaged = decision.damaged;
  if (decision.size == SizeState::kShrunk) return found;
  if (decision.size == SizeState::kGrown) {
    if (::ftruncate(fd.get(), static_cast<off_t>(recorded.segment_bytes)) != 0) {
      return std::unexpected(sys_error("cannot truncate it back to its recorded " +
                                           std::to_string(recorded.segment_bytes) + " bytes",
                                       errno));
    }
    found.grown_from = found_bytes;
  }
  if (decision.restore_header) {
    if (auto ok = pwrite_full(fd.get(), &*expected, sizeof *expected, 0); !ok) {
      return std::unexpected(ok.error());
    }
    found.header_restored = decision.why_restored;
  }
  found.info.version = decision.version;
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
    if (!found->header_restored.empty()) {
      report.restored.push_back("'" + found->info.name + "' (" + shm_dir + "/" + file +
                                "): " + found->header_restored);
    }
    if (found->grown_from != 0) {
      report.problems.push_back("array '" + found->info.name + "': a writer grew its segment " +
                                shm_dir + "/" + file + " to " + std::to_string(found->grown_from) +
                                " bytes; truncated back to the recorded " +
                                std::to_string(found->info.segment_bytes));
    }
    if (!found->info.damaged.empty()) {
      report.problems.push_back("array '" + found->info.name + "' is damaged: " +
                                found->info.damaged);
    }
    report.arrays.push_back(RecoveredArray{std::move(found->info), Segment::adopt(shm_name)});
  }
  report.orphans.assign(unmatched_records.begin(), unmatched_records.end());
  std::sort(report.arrays.begin(), report.arrays.end(), [](const auto& a, const auto& b) {
    return a.info.created_unix_ns < b.info.created_unix_ns;
  });
  std::set<std::string> names;  // oldest first: the oldest segment of a name keeps it
  for (auto& found : report.arrays) {
    if (found.info.ephemeral) {
      found.fate = Fate::kEphemeral;
    } else if (!names.insert(found.info.name).second) {
      found.fate = Fate::kDuplicate;
    }
  }
  return report;
}

}  // namespace shmarray::server
