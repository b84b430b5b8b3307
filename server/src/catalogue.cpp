#include "catalogue.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <span>

#include "shmarray/segment_layout.hpp"

namespace shmarray::server {
namespace {

static_assert(sizeof(SegmentHeader) <= Catalogue::kSlotBytes);
static_assert(4096 % Catalogue::kSlotBytes == 0, "a slot never spans two pages");

constexpr std::size_t kSlotsPerRead = 256;  // open() reads the file 256 KiB at a time
constexpr std::uint64_t kMinGrowth = 64;    // slots added when the file is full (at least)

std::string octal(unsigned mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0%o", mode & 07777);
  return buf;
}

bool all_zero(const std::byte* p, std::size_t n) {
  return std::all_of(p, p + n, [](std::byte b) { return b == std::byte{0}; });
}

}  // namespace

std::string catalogue_path_for(const std::string& socket_path) {
  return socket_path + ".catalogue";
}

Result<Catalogue> Catalogue::open(std::string path) {
  // O_NOFOLLOW: a symbolic link planted in its place is refused, not followed.
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) {
    if (errno == ELOOP) {
      return fail(ErrorCode::kFailedPrecondition,
                  path + " is a symbolic link; the broker's catalogue must be a regular file. "
                         "Remove the link");
    }
    return std::unexpected(sys_error("cannot open the broker's catalogue " + path, errno));
  }
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) return std::unexpected(sys_error("cannot inspect " + path, errno));
  // One link only: a hard link planted under this name could point at another file of ours.
  if (!S_ISREG(st.st_mode) || st.st_uid != ::geteuid() || (st.st_mode & 0077) != 0 ||
      st.st_nlink != 1) {
    return fail(ErrorCode::kFailedPrecondition,
                path + " holds the broker's trusted array records, so it must be a regular file "
                       "owned by uid " + std::to_string(::geteuid()) + " with mode 0600 and one link; it is " +
                    (S_ISREG(st.st_mode) ? "a file" : "not a regular file") + " owned by uid " +
                    std::to_string(st.st_uid) + " with mode " + octal(st.st_mode) + " and " +
                    std::to_string(st.st_nlink) + " link(s)" +
                    ". Remove it (arrays are then not recovered) or fix its owner and mode");
  }
  Catalogue catalogue(std::move(path), std::move(fd));
  auto file_bytes = catalogue.upgrade_legacy(static_cast<std::uint64_t>(st.st_size));
  if (!file_bytes) return std::unexpected(file_bytes.error());
  if (auto ok = catalogue.load(*file_bytes); !ok) {
    return std::unexpected(ok.error());
  }
  return catalogue;
}

Result<void> Catalogue::load(std::uint64_t file_bytes) {
  slots_ = file_bytes / kSlotBytes;
  if (file_bytes % kSlotBytes != 0) {
    damaged_.push_back({slots_, "a partial slot of " + std::to_string(file_bytes % kSlotBytes) +
                                    " bytes at the end (dropped)"});
    if (::ftruncate(fd_.get(), static_cast<off_t>(slots_ * kSlotBytes)) != 0) {
      return std::unexpected(sys_error("cannot trim " + path_, errno));
    }
  }
  std::vector<std::byte> buf(kSlotsPerRead * kSlotBytes);
  const std::array<std::byte, kSlotBytes> zeros{};
  std::vector<std::uint64_t> free_slots;
  for (std::uint64_t first = 0; first < slots_; first += kSlotsPerRead) {
    const std::uint64_t n = std::min<std::uint64_t>(kSlotsPerRead, slots_ - first);
    std::size_t got = 0;
    while (got < n * kSlotBytes) {
      const ssize_t r = ::pread(fd_.get(), buf.data() + got, n * kSlotBytes - got,
                                static_cast<off_t>(first * kSlotBytes + got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return std::unexpected(sys_error("cannot read " + path_, errno));
      if (r == 0) return fail(ErrorCode::kInternal, path_ + " shrank while being read");
      got += static_cast<std::size_t>(r);
    }
    for (std::uint64_t i = 0; i < n; ++i) {
      const std::uint64_t slot = first + i;
      const std::byte* p = buf.data() + i * kSlotBytes;
      if (all_zero(p, kSlotBytes)) {
        free_slots.push_back(slot);
        continue;
      }
      SegmentHeader header;
      std::memcpy(&header, p, sizeof header);
      auto info = decode_segment_header(header, header.segment_bytes);
      std::string problem;
      if (!info) {
        problem = info.error().message();
      } else if (!all_zero(p + sizeof header, kSlotBytes - sizeof header)) {
        problem = "bytes after the record are not zero";
      } else if (auto [it, inserted] = slot_of_.emplace(info->id, slot); !inserted) {
        problem = "a second record of array id " + info->id + " (the first is in slot " +
                  std::to_string(it->second) + ")";
      }
      if (problem.empty()) continue;
      damaged_.push_back({slot, problem + " (dropped)"});
      (void)write_slot(slot, zeros.data(), zeros.size(), "cannot clear a damaged slot");
      free_slots.push_back(slot);
    }
  }
  free_.assign(free_slots.rbegin(), free_slots.rend());  // lowest last: taken first
  return {};
}

Result<std::uint64_t> Catalogue::upgrade_legacy(std::uint64_t file_bytes) {
  // Legacy iff the first record (in 1 KiB steps) is a layout 1/2 header: new records start every
  // 2 KiB and the second KiB of one lies inside its NUL-padded dtype text, never a header start.
  std::vector<std::byte> old(file_bytes - file_bytes % kLegacySlotBytes);
  std::size_t got = 0;
  while (got < old.size()) {
    const ssize_t r = ::pread(fd_.get(), old.data() + got, old.size() - got, static_cast<off_t>(got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return std::unexpected(sys_error("cannot read " + path_, errno));
    if (r == 0) return fail(ErrorCode::kInternal, path_ + " shrank while being read");
    got += static_cast<std::size_t>(r);
  }
  std::uint32_t first_version = 0;
  for (std::size_t at = 0; at < old.size() && first_version == 0; at += kLegacySlotBytes) {
    if (!all_zero(old.data() + at, kLegacySlotBytes)) {
      first_version = layout_version_of({old.data() + at, kLegacySlotBytes});
    }
  }
  if (first_version == 0 || first_version >= kLayoutVersion) return file_bytes;

  const std::string tmp = path_ + ".upgrading";
  (void)::unlink(tmp.c_str());  // left by a broker killed while upgrading
  UniqueFd out(::open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out) return std::unexpected(sys_error("cannot create " + tmp, errno));
  std::uint64_t written = 0;
  for (std::size_t at = 0; at < old.size(); at += kLegacySlotBytes) {
    const std::span<const std::byte> slot(old.data() + at, kLegacySlotBytes);
    if (all_zero(slot.data(), slot.size())) continue;
    auto info = decode_segment_header_bytes(slot, ~std::uint64_t{0});
    std::optional<SegmentHeader> header;
    if (info) {
      auto encoded = encode_segment_header(*info);
      if (encoded) header = *encoded;
    }
    if (!header) {
      damaged_.push_back({at / kLegacySlotBytes,
                          (info ? std::string("cannot re-encode") : info.error().message()) +
                              " (dropped while upgrading a layout " +
                              std::to_string(first_version) + " catalogue)"});
      continue;
    }
    std::array<std::byte, kSlotBytes> record{};
    std::memcpy(record.data(), &*header, sizeof *header);
    if (::pwrite(out.get(), record.data(), record.size(),
                 static_cast<off_t>(written * kSlotBytes)) != static_cast<ssize_t>(record.size())) {
      (void)::unlink(tmp.c_str());
      return std::unexpected(sys_error("cannot write " + tmp, errno));
    }
    ++written;
  }
  if (::fsync(out.get()) != 0 || ::rename(tmp.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    (void)::unlink(tmp.c_str());
    return std::unexpected(sys_error("cannot replace " + path_ + " with its upgrade", err));
  }
  fd_ = std::move(out);
  return written * kSlotBytes;
}

Result<void> Catalogue::write_slot(std::uint64_t slot, const void* bytes, std::size_t n,
                                   const std::string& what) {
  const auto* p = static_cast<const char*>(bytes);
  std::size_t done = 0;
  while (done < n) {
    const ssize_t w = ::pwrite(fd_.get(), p + done, n - done,
                               static_cast<off_t>(slot * kSlotBytes + done));
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return std::unexpected(sys_error(what + " in " + path_, errno));
    done += static_cast<std::size_t>(w);
  }
  return {};
}

Result<std::uint64_t> Catalogue::take_free_slot() {
  if (free_.empty()) {
    const std::uint64_t grow = std::max(kMinGrowth, slots_);  // doubling: O(1) amortised
    if (::ftruncate(fd_.get(), static_cast<off_t>((slots_ + grow) * kSlotBytes)) != 0) {
      return std::unexpected(sys_error("cannot grow " + path_, errno));
    }
    for (std::uint64_t s = slots_ + grow; s-- > slots_;) free_.push_back(s);
    slots_ += grow;
  }
  const std::uint64_t slot = free_.back();
  free_.pop_back();
  return slot;
}

Result<void> Catalogue::put(const ArrayInfo& info) {
  auto header = encode_segment_header(info);
  if (!header) return std::unexpected(header.error());
  std::array<std::byte, kSlotBytes> record{};
  std::memcpy(record.data(), &*header, sizeof *header);
  const std::string what = "cannot record array '" + info.name + "'";
  if (auto it = slot_of_.find(info.id); it != slot_of_.end()) {
    return write_slot(it->second, record.data(), record.size(), what);
  }
  auto slot = take_free_slot();
  if (!slot) return std::unexpected(slot.error());
  if (auto ok = write_slot(*slot, record.data(), record.size(), what); !ok) {
    free_.push_back(*slot);
    return ok;
  }
  slot_of_.emplace(info.id, *slot);
  return {};
}

void Catalogue::erase(const std::string& id) noexcept {
  auto it = slot_of_.find(id);
  if (it == slot_of_.end()) return;
  const std::array<std::byte, kSlotBytes> zeros{};
  // A failure leaves the record behind; the next start then finds no segment and forgets it.
  (void)write_slot(it->second, zeros.data(), zeros.size(), "cannot erase a record");
  free_.push_back(it->second);
  slot_of_.erase(it);
}

Result<ArrayInfo> Catalogue::get(const std::string& id) const {
  auto it = slot_of_.find(id);
  if (it == slot_of_.end()) return fail(ErrorCode::kNotFound, "no catalogue record");
  SegmentHeader header;
  const ssize_t r = ::pread(fd_.get(), &header, sizeof header,
                            static_cast<off_t>(it->second * kSlotBytes));
  if (r != static_cast<ssize_t>(sizeof header)) {
    return std::unexpected(sys_error("cannot read " + path_, r < 0 ? errno : EIO));
  }
  auto info = decode_segment_header(header, header.segment_bytes);
  if (!info) {
    return fail(ErrorCode::kProtocolError, path_ + " slot " + std::to_string(it->second) + ": " +
                                               info.error().message());
  }
  return info;
}

std::vector<std::string> Catalogue::ids() const {
  std::vector<std::string> out;
  out.reserve(slot_of_.size());
  for (const auto& [id, slot] : slot_of_) out.push_back(id);
  return out;
}

}  // namespace shmarray::server
