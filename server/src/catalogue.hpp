#pragma once
// The broker's private record of every array: the copy of each array's metadata that a restarted
// broker trusts. The header page inside a segment cannot be trusted for that: every client granted
// write access maps it read-write and could rewrite the owner, mode or name (and recompute its
// checksum). This file, `<socket>.catalogue`, is mode 0600 and owned by the broker's user, so no
// client can touch it.
//
// The file is an array of 2 KiB slots, one per array, each holding the array's SegmentHeader bytes
// (the layout the header page uses, checksummed) or zeros when free. A file of 1 KiB slots holding
// layout 1/2 headers (brokers before layout 3) is upgraded when opened: rewritten beside the old
// one and renamed over it, so a crash meanwhile leaves one or the other whole. Every change is one pwrite of
// one slot into a file that already has room: no file is created, renamed or unlinked per array,
// which costs ~0.4 ms on a journaling file system (ext4 on the dev VM) against ~3 us for the
// pwrite. A slot never spans two pages and a single write() of it is not torn by the broker being
// killed; the checksum catches anything else. The file only has to outlive the broker process:
// after a reboot the segments in /dev/shm are gone anyway.
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "shmarray/error.hpp"
#include "shmarray/types.hpp"
#include "shmarray/unique_fd.hpp"

namespace shmarray::server {

// `<socket>.catalogue`, beside `<socket>.lock`.
[[nodiscard]] std::string catalogue_path_for(const std::string& socket_path);

class Catalogue {
 public:
  static constexpr std::size_t kSlotBytes = 2048;
  static constexpr std::size_t kLegacySlotBytes = 1024;  // layouts 1 and 2

  // What open() found in the file.
  struct Damage {
    std::uint64_t slot;
    std::string reason;
  };

  // Opens (creating it, mode 0600, if missing) and reads the catalogue at `path`. Damaged slots
  // (a bad checksum, a duplicate id) are reported in damaged() and reused as free ones.
  // kFailedPrecondition, saying what to fix, if `path` is not a regular file owned by this
  // process's effective uid without group or other access (a symbolic link included): a
  // catalogue others could write would be worth nothing.
  [[nodiscard]] static Result<Catalogue> open(std::string path);

  Catalogue(Catalogue&&) noexcept = default;
  Catalogue& operator=(Catalogue&&) noexcept = default;

  // Records `info` (all its metadata; not its version, which lives in the segment), replacing
  // the earlier record of the same id. kResourceExhausted if the file system is full.
  [[nodiscard]] Result<void> put(const ArrayInfo& info);
  // Forgets array `id`; an unknown id is not an error.
  void erase(const std::string& id) noexcept;
  // The record of `id` as read at open() or written since. kNotFound if there is none.
  [[nodiscard]] Result<ArrayInfo> get(const std::string& id) const;
  // Ids of every record, in no particular order.
  [[nodiscard]] std::vector<std::string> ids() const;
  [[nodiscard]] std::size_t size() const noexcept { return slot_of_.size(); }
  [[nodiscard]] const std::vector<Damage>& damaged() const noexcept { return damaged_; }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

 private:
  Catalogue(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  [[nodiscard]] Result<void> load(std::uint64_t file_bytes);
  // Rewrites a file of legacy slots in this layout (see above); returns the new file's size.
  [[nodiscard]] Result<std::uint64_t> upgrade_legacy(std::uint64_t file_bytes);
  [[nodiscard]] Result<std::uint64_t> take_free_slot();
  [[nodiscard]] Result<void> write_slot(std::uint64_t slot, const void* bytes, std::size_t n,
                                        const std::string& what);

  std::string path_;
  UniqueFd fd_;
  std::uint64_t slots_ = 0;                               // the file holds this many slots
  std::unordered_map<std::string, std::uint64_t> slot_of_;  // id -> slot
  std::vector<std::uint64_t> free_;                       // free slots, lowest last
  std::vector<Damage> damaged_;
};

}  // namespace shmarray::server
