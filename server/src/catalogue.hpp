#pragma once
// The broker's private record of every array: the copy of each array's metadata that a restarted
// broker trusts. The header page inside a segment cannot be trusted for that: every client granted
// write access maps it read-write and could rewrite the owner, mode or name (and recompute its
// checksum). This directory, `<socket>.catalogue/`, is mode 0700 and owned by the broker's user,
// so no client can touch it.
//
// One file per array, named by its id and holding its SegmentHeader bytes (the layout that the
// header page uses, checksummed against torn writes). Files are replaced atomically (write a
// temporary, then rename), so a crash leaves either the old record or the new one.
#include <string>
#include <vector>

#include "shmarray/error.hpp"
#include "shmarray/types.hpp"
#include "shmarray/unique_fd.hpp"

namespace shmarray::server {

// `<socket>.catalogue`, beside `<socket>.lock`.
[[nodiscard]] std::string catalogue_dir_for(const std::string& socket_path);

class Catalogue {
 public:
  // Opens `dir`, creating it mode 0700 if missing. kFailedPrecondition, saying what to fix, if it
  // is not a directory owned by this process's effective uid with no group or other access (a
  // symbolic link included): a catalogue others could write would be worth nothing.
  [[nodiscard]] static Result<Catalogue> open(std::string dir);

  // Records `info` (all its metadata; not its version, which lives in the segment), replacing any
  // earlier record of the same id. kResourceExhausted if the file system is full.
  [[nodiscard]] Result<void> put(const ArrayInfo& info) const;
  // Forgets array `id`; a missing record is not an error.
  void erase(const std::string& id) const noexcept;
  // The record of `id`. kNotFound if there is none; kProtocolError if it is damaged.
  [[nodiscard]] Result<ArrayInfo> get(const std::string& id) const;
  // Ids of every record (temporaries of an interrupted put excluded), in no particular order.
  [[nodiscard]] std::vector<std::string> ids() const;
  // Removes temporaries an interrupted put left behind; returns how many.
  std::size_t remove_temporaries() const;

  [[nodiscard]] const std::string& dir() const noexcept { return dir_; }

 private:
  [[nodiscard]] std::vector<std::string> entries() const;  // every name in the directory
  Catalogue(std::string dir, UniqueFd dir_fd) : dir_(std::move(dir)), dir_fd_(std::move(dir_fd)) {}
  std::string dir_;
  UniqueFd dir_fd_;  // every file operation is relative to it (openat), never to the path again
};

}  // namespace shmarray::server
