#pragma once
// The broker's private record of every array: the copy of each array's metadata that a restarted
// broker trusts. The header page inside a segment cannot be trusted for that: every client granted
// write access maps it read-write and could rewrite the owner, mode or name (and recompute its
// checksum). This file, `<socket>.catalogue`, is mode 0600 and owned by the broker's user, so no
// client can touch it.
//
// The file is an array of 256-byte slots. Slot 0 is the file's head (kFileMagic: this layout);
// each array's record (catalogue_record.hpp: ~170 bytes for a plain array, at most ~1.9 KiB for
// a 255-byte name with a long structured dtype) takes one slot or a few consecutive ones, never
// crossing a 4 KiB page; free slots are zeros. So a plain array costs 256 bytes of the file
// system the socket is on, often a small tmpfs ($XDG_RUNTIME_DIR): 1,000,000 arrays ~245 MiB.
// Every change is one pwrite of one record into a file that already has room: no file is created,
// renamed or unlinked per array, which costs ~0.4 ms on a journaling file system (ext4 on the dev
// VM) against ~3 us for the pwrite. A record never spans two pages and a single write() of it is
// not torn by the broker being killed (the kernel checks for a fatal signal between pages only);
// the checksum catches anything else. The file only has to outlive the broker process: after a
// reboot the segments in /dev/shm are gone anyway.
//
// Older brokers wrote a slot per array holding the whole SegmentHeader: 2 KiB slots (layout 3)
// or 1 KiB slots (layouts 1 and 2). A file that does not start with kFileMagic is such a file: it
// is converted when opened, rewritten in this layout beside the old one
// (`<catalogue>.upgrading`) and renamed over it, so a crash meanwhile leaves one or the other
// whole and the next start converts again.
#include <cstdint>
#include <set>
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
  static constexpr std::size_t kSlotBytes = 256;
  static constexpr std::size_t kOldSlotBytes = 2048;     // brokers of layout 3 before this one
  static constexpr std::size_t kLegacySlotBytes = 1024;  // layouts 1 and 2
  static constexpr char kFileMagic[8] = {'S', 'H', 'M', 'A', 'C', 'A', 'T', '1'};

  // What open() found in the file.
  struct Damage {
    std::uint64_t slot;
    std::string reason;
  };

  // Opens (creating it, mode 0600, if missing) and reads the catalogue at `path`, converting a
  // file of an older layout (above). Damaged records (a bad checksum, a duplicate id, a partial
  // slot at the end) are reported in damaged(), cleared and reused as free slots.
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
  [[nodiscard]] std::size_t size() const noexcept { return place_of_.size(); }
  [[nodiscard]] const std::vector<Damage>& damaged() const noexcept { return damaged_; }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

 private:
  // Where a record lies: `count` slots from `first`.
  struct Place {
    std::uint64_t first;
    std::uint64_t count;
  };

  Catalogue(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  [[nodiscard]] Result<void> load(std::uint64_t file_bytes);
  // Rewrites a file of an older layout in this one (see above) and takes its place.
  [[nodiscard]] Result<void> convert(std::uint64_t file_bytes);
  [[nodiscard]] Result<Place> take_slots(std::uint64_t count);
  void release(Place place);
  [[nodiscard]] Result<void> write_at(std::uint64_t slot, const void* bytes, std::size_t n,
                                      const std::string& what);

  std::string path_;
  UniqueFd fd_;
  std::uint64_t slots_ = 0;  // the file holds this many slots (the head included)
  std::uint64_t tail_ = 1;   // every slot from here on is free
  std::unordered_map<std::string, Place> place_of_;  // id -> its record
  std::set<std::uint64_t> holes_;                    // free slots below tail_
  std::vector<Damage> damaged_;
};

}  // namespace shmarray::server
