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

#include "catalogue_record.hpp"
#include "shmarray/segment_layout.hpp"

namespace shmarray::server {
namespace {

constexpr std::uint64_t kSlotBytes = Catalogue::kSlotBytes;
constexpr std::uint64_t kSlotsPerPage = 4096 / kSlotBytes;  // a record never crosses a page
static_assert(4096 % kSlotBytes == 0);
static_assert(kCatalogueRecordMaxBytes <= 4096, "a record fits in one page");
static_assert(sizeof(CatalogueRecord::bytes) % kSlotBytes == 0, "whole slots are written");
static_assert(sizeof(SegmentHeader) <= Catalogue::kOldSlotBytes);

constexpr std::size_t kBytesPerRead = 256 * 1024;  // open() reads the file 256 KiB at a time
static_assert(kBytesPerRead % 4096 == 0 && kBytesPerRead % Catalogue::kOldSlotBytes == 0);
constexpr std::uint64_t kMinGrowth = 64;    // slots added when the file is full (at least)
constexpr std::size_t kHoleSearch = 256;    // holes looked at for a multi-slot record

std::uint64_t slots_for(std::size_t bytes) { return (bytes + kSlotBytes - 1) / kSlotBytes; }

// Reads [offset, offset + n) of `fd` into `out`; kInternal if the file is shorter.
Result<void> pread_full(int fd, std::byte* out, std::size_t n, std::uint64_t offset,
                        const std::string& path) {
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd, out + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return std::unexpected(sys_error("cannot read " + path, errno));
    if (r == 0) return fail(ErrorCode::kInternal, path + " shrank while being read");
    got += static_cast<std::size_t>(r);
  }
  return {};
}

std::string octal(unsigned mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0%o", mode & 07777);
  return buf;
}

bool all_zero(const std::byte* p, std::size_t n) {
  return std::all_of(p, p + n, [](std::byte b) { return b == std::byte{0}; });
}

// The slot size of an old layout's file: 1 KiB iff its first record (in 1 KiB steps) is a layout
// 1/2 header, else 2 KiB (a 2 KiB slot's second KiB lies inside its NUL-padded dtype text, never
// a header start).
Result<std::size_t> old_slot_bytes(int fd, std::uint64_t file_bytes, const std::string& path) {
  constexpr std::size_t kStep = Catalogue::kLegacySlotBytes;
  std::vector<std::byte> buf(kBytesPerRead);
  for (std::uint64_t at = 0; at + kStep <= file_bytes; at += kBytesPerRead) {
    const auto n = static_cast<std::size_t>(
        std::min<std::uint64_t>(kBytesPerRead, (file_bytes - at) / kStep * kStep));
    if (auto ok = pread_full(fd, buf.data(), n, at, path); !ok) return std::unexpected(ok.error());
    for (std::size_t k = 0; k < n; k += kStep) {
      if (all_zero(buf.data() + k, kStep)) continue;
      const std::uint32_t version = layout_version_of({buf.data() + k, kStep});
      return version != 0 && version < kLayoutVersion ? kStep : Catalogue::kOldSlotBytes;
    }
  }
  return Catalogue::kOldSlotBytes;
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
  const auto file_bytes = static_cast<std::uint64_t>(st.st_size);
  std::array<std::byte, sizeof kFileMagic> magic{};
  if (file_bytes >= magic.size()) {
    if (auto ok = pread_full(catalogue.fd_.get(), magic.data(), magic.size(), 0, catalogue.path_);
        !ok) {
      return std::unexpected(ok.error());
    }
  }
  const bool ours = std::memcmp(magic.data(), kFileMagic, sizeof kFileMagic) == 0;
  if (!ours && std::memcmp(magic.data(), kFileMagic, sizeof kFileMagic - 1) == 0) {
    return fail(ErrorCode::kFailedPrecondition,
                catalogue.path_ + " is in a catalogue layout newer than this shmarrayd reads: "
                                  "run the newer shmarrayd (or move the file away, and its "
                                  "arrays are not recovered)");
  }
  auto ok = file_bytes == 0 ? catalogue.load(0)
            : ours          ? catalogue.load(file_bytes)
                            : catalogue.convert(file_bytes);
  if (!ok) return std::unexpected(ok.error());
  return catalogue;
}

Result<void> Catalogue::load(std::uint64_t file_bytes) {
  if (file_bytes == 0) {  // new: its head, then room made as records come
    std::array<std::byte, kSlotBytes> head{};
    std::memcpy(head.data(), kFileMagic, sizeof kFileMagic);
    if (auto ok = write_at(0, head.data(), head.size(), "cannot start"); !ok) return ok;
    slots_ = 1;
    return {};
  }
  slots_ = file_bytes / kSlotBytes;
  if (file_bytes % kSlotBytes != 0) {
    damaged_.push_back({slots_, "a partial slot of " + std::to_string(file_bytes % kSlotBytes) +
                                    " bytes at the end (dropped)"});
    if (::ftruncate(fd_.get(), static_cast<off_t>(slots_ * kSlotBytes)) != 0) {
      return std::unexpected(sys_error("cannot trim " + path_, errno));
    }
    if (slots_ == 0) return load(0);  // not even the head is whole: write it again
  }
  std::vector<std::byte> buf(kBytesPerRead);
  const std::array<std::byte, 4096> zeros{};
  std::vector<std::uint64_t> free_slots;
  constexpr std::uint64_t kSlotsPerRead = kBytesPerRead / kSlotBytes;
  // Records never cross a page, so never a read's end either.
  for (std::uint64_t first = 0; first < slots_; first += kSlotsPerRead) {
    const std::uint64_t n = std::min<std::uint64_t>(kSlotsPerRead, slots_ - first);
    if (auto ok = pread_full(fd_.get(), buf.data(), n * kSlotBytes, first * kSlotBytes, path_);
        !ok) {
      return ok;
    }
    for (std::uint64_t i = first == 0 ? 1 : 0; i < n;) {  // slot 0: the head
      const std::uint64_t slot = first + i;
      const std::byte* p = buf.data() + i * kSlotBytes;
      if (all_zero(p, kSlotBytes)) {
        free_slots.push_back(slot);
        ++i;
        continue;
      }
      // A damaged record whose length field is sound is cleared whole; otherwise slot by slot.
      std::uint64_t count = slots_for(catalogue_record_size({p, kSlotBytes}));
      if (count == 0 || slot % kSlotsPerPage + count > kSlotsPerPage || i + count > n) count = 1;
      auto info = decode_catalogue_record({p, count * kSlotBytes});
      std::string problem;
      if (!info) {
        problem = info.error().message();
      } else if (auto [it, inserted] = place_of_.emplace(info->id, Place{slot, count});
                 !inserted) {
        problem = "a second record of array id " + info->id + " (the first is in slot " +
                  std::to_string(it->second.first) + ")";
      }
      if (problem.empty()) {
        tail_ = slot + count;
      } else {
        damaged_.push_back({slot, problem + " (dropped)"});
        (void)write_at(slot, zeros.data(), count * kSlotBytes, "cannot clear a damaged record");
        for (std::uint64_t k = 0; k < count; ++k) free_slots.push_back(slot + k);
      }
      i += count;
    }
  }
  for (std::uint64_t slot : free_slots) {
    if (slot < tail_) holes_.insert(holes_.end(), slot);
  }
  return {};
}

Result<void> Catalogue::convert(std::uint64_t file_bytes) {
  auto slot_bytes = old_slot_bytes(fd_.get(), file_bytes, path_);
  if (!slot_bytes) return std::unexpected(slot_bytes.error());
  const std::size_t old_slot = *slot_bytes;
  std::vector<std::byte> buf(kBytesPerRead);
  const std::string tmp = path_ + ".upgrading";
  (void)::unlink(tmp.c_str());  // left by a broker killed while converting
  UniqueFd out(::open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out) return std::unexpected(sys_error("cannot create " + tmp, errno));
  Catalogue next(tmp, std::move(out));
  if (auto ok = next.load(0); !ok) {
    (void)::unlink(tmp.c_str());
    return ok;
  }
  const std::string from = " (dropped while converting a catalogue of " +
                           std::to_string(old_slot) + "-byte slots)";
  const std::uint64_t whole = file_bytes / old_slot * old_slot;  // a partial slot is dropped
  for (std::uint64_t at = 0; at < whole; at += kBytesPerRead) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(kBytesPerRead, whole - at));
    if (auto ok = pread_full(fd_.get(), buf.data(), n, at, path_); !ok) {
      (void)::unlink(tmp.c_str());
      return ok;
    }
    for (std::size_t k = 0; k < n; k += old_slot) {
      const std::span<const std::byte> slot(buf.data() + k, old_slot);
      if (all_zero(slot.data(), slot.size())) continue;
      const std::uint64_t index = (at + k) / old_slot;
      auto info = decode_segment_header_bytes(slot, ~std::uint64_t{0});
      if (!info) {
        damaged_.push_back({index, info.error().message() + from});
      } else if (next.place_of_.contains(info->id)) {
        damaged_.push_back({index, "a second record of array id " + info->id + from});
      } else if (auto put = next.put(*info); !put) {
        if (put.error().code() != ErrorCode::kInternal) {
          (void)::unlink(tmp.c_str());
          return put;
        }
        damaged_.push_back({index, put.error().message() + from});
      }
    }
  }
  if (file_bytes % old_slot != 0) {
    damaged_.push_back({file_bytes / old_slot, "a partial slot of " +
                                                   std::to_string(file_bytes % old_slot) +
                                                   " bytes at the end" + from});
  }
  if (::fsync(next.fd_.get()) != 0 || ::rename(tmp.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    (void)::unlink(tmp.c_str());
    return std::unexpected(sys_error("cannot replace " + path_ + " with its conversion", err));
  }
  fd_ = std::move(next.fd_);
  slots_ = next.slots_;
  tail_ = next.tail_;
  place_of_ = std::move(next.place_of_);
  holes_ = std::move(next.holes_);
  return {};
}

Result<void> Catalogue::write_at(std::uint64_t slot, const void* bytes, std::size_t n,
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

Result<Catalogue::Place> Catalogue::take_slots(std::uint64_t count) {
  // A hole first: the lowest for one slot; for more, a run of free slots inside one page among
  // the first kHoleSearch holes (a bounded look, so a create never walks a long list).
  if (count == 1 && !holes_.empty()) {
    const std::uint64_t slot = *holes_.begin();
    holes_.erase(holes_.begin());
    return Place{slot, 1};
  }
  if (count > 1) {
    std::uint64_t run_start = 0, run = 0;
    std::size_t looked = 0;
    for (auto it = holes_.begin(); it != holes_.end() && looked < kHoleSearch; ++it, ++looked) {
      const bool continues = run > 0 && *it == run_start + run && *it % kSlotsPerPage != 0;
      run_start = continues ? run_start : *it;
      run = continues ? run + 1 : 1;
      if (run == count) {
        for (std::uint64_t k = 0; k < count; ++k) holes_.erase(run_start + k);
        return Place{run_start, count};
      }
    }
  }
  std::uint64_t first = tail_;
  if (first % kSlotsPerPage + count > kSlotsPerPage) {  // to the next page
    first = (first / kSlotsPerPage + 1) * kSlotsPerPage;
    for (std::uint64_t s = tail_; s < first; ++s) holes_.insert(holes_.end(), s);
  }
  if (first + count > slots_) {
    const std::uint64_t want = std::max({first + count, 2 * slots_, slots_ + kMinGrowth});
    if (::ftruncate(fd_.get(), static_cast<off_t>(want * kSlotBytes)) != 0) {
      const int err = errno;
      for (std::uint64_t s = tail_; s < first; ++s) holes_.erase(s);
      return std::unexpected(sys_error("cannot grow " + path_, err));
    }
    slots_ = want;
  }
  tail_ = first + count;
  return Place{first, count};
}

void Catalogue::release(Place place) {
  for (std::uint64_t k = 0; k < place.count; ++k) holes_.insert(place.first + k);
  // Free slots at the end go back to the tail: the set of holes stays as small as the gaps.
  while (!holes_.empty() && *holes_.rbegin() == tail_ - 1) {
    holes_.erase(std::prev(holes_.end()));
    --tail_;
  }
}

Result<void> Catalogue::put(const ArrayInfo& info) {
  auto record = encode_catalogue_record(info);
  if (!record) return std::unexpected(record.error());
  const std::uint64_t count = slots_for(record->size);
  const std::string what = "cannot record array '" + info.name + "'";
  auto it = place_of_.find(info.id);
  if (it != place_of_.end() && it->second.count == count) {  // in place: one write, not torn
    return write_at(it->second.first, record->bytes.data(), count * kSlotBytes, what);
  }
  auto place = take_slots(count);
  if (!place) return std::unexpected(place.error());
  if (auto ok = write_at(place->first, record->bytes.data(), count * kSlotBytes, what); !ok) {
    release(*place);
    return ok;
  }
  if (it != place_of_.end()) {  // another size: the new record is written, then the old cleared
    const Place old = it->second;
    it->second = *place;
    const std::array<std::byte, 4096> zeros{};
    (void)write_at(old.first, zeros.data(), old.count * kSlotBytes, "cannot erase a record");
    release(old);
    return {};
  }
  place_of_.emplace(info.id, *place);
  return {};
}

void Catalogue::erase(const std::string& id) noexcept {
  auto it = place_of_.find(id);
  if (it == place_of_.end()) return;
  const std::array<std::byte, 4096> zeros{};
  // A failure leaves the record behind; the next start then finds no segment and forgets it.
  (void)write_at(it->second.first, zeros.data(), it->second.count * kSlotBytes,
                 "cannot erase a record");
  release(it->second);
  place_of_.erase(it);
}

Result<ArrayInfo> Catalogue::get(const std::string& id) const {
  auto it = place_of_.find(id);
  if (it == place_of_.end()) return fail(ErrorCode::kNotFound, "no catalogue record");
  std::array<std::byte, 4096> bytes;
  const std::size_t n = it->second.count * kSlotBytes;
  const ssize_t r = ::pread(fd_.get(), bytes.data(), n,
                            static_cast<off_t>(it->second.first * kSlotBytes));
  if (r != static_cast<ssize_t>(n)) {
    return std::unexpected(sys_error("cannot read " + path_, r < 0 ? errno : EIO));
  }
  auto info = decode_catalogue_record({bytes.data(), n});
  if (!info) {
    return fail(ErrorCode::kProtocolError, path_ + " slot " + std::to_string(it->second.first) +
                                               ": " + info.error().message());
  }
  return info;
}

std::vector<std::string> Catalogue::ids() const {
  std::vector<std::string> out;
  out.reserve(place_of_.size());
  for (const auto& [id, place] : place_of_) out.push_back(id);
  return out;
}

}  // namespace shmarray::server
