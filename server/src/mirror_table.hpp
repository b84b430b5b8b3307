#pragma once
// The broker's mirrors across hosts (docs/across-hosts.md): prefix -> source HOST:PORT, from
// --mirror and `shmarray mirror add`, persisted in <socket>.mirrors next to the catalogue (one
// "PREFIX<TAB>HOST:PORT" line each; written to a temporary file and renamed, opened with
// O_NOFOLLOW like the catalogue), plus the status the bridge last reported for each.
//
// An array is a mirror exactly when its name lies under a configured prefix: only the bridge
// may create names there, so the broker needs no per-array record of it (and a restart recovers
// it from the table).
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "shmarray/error.hpp"
#include "shmarray/mirror_types.hpp"

namespace shmarray::server {

class MirrorTable {
 public:
  // Loads `path` if it exists (a missing file is an empty table). kDataLoss naming the line for
  // a corrupt file; kPermissionDenied for a symbolic link.
  [[nodiscard]] static Result<MirrorTable> load(std::string path);

  // Adds (kAlreadyExists if the prefix is mirrored, or overlaps one) and persists when `persist`.
  [[nodiscard]] Result<void> add(const std::string& prefix, const std::string& peer,
                                 bool persist = true);
  // kNotFound if not mirrored.
  [[nodiscard]] Result<void> remove(const std::string& prefix);
  // The mirror a name belongs to: its prefix's entry, or nullptr.
  [[nodiscard]] const MirrorInfo* mirror_of(const std::string& name) const;
  [[nodiscard]] bool empty() const noexcept { return mirrors_.empty(); }
  // Configured mirrors with the last reported status.
  [[nodiscard]] std::vector<MirrorInfo> list() const;
  // The bridge's report: link states and per-array lags of configured prefixes.
  void apply_report(const std::vector<MirrorInfo>& report);
  // The status of array `name`, if the bridge reported one.
  [[nodiscard]] const MirroredArray* array_status(const std::string& name) const;
  // "PREFIX=HOST:PORT" of every mirror, for the bridge's command line.
  [[nodiscard]] std::vector<std::string> bridge_arguments() const;

 private:
  explicit MirrorTable(std::string path) : path_(std::move(path)) {}
  [[nodiscard]] Result<void> save() const;
  std::string path_;
  std::map<std::string, MirrorInfo> mirrors_;  // by prefix
};

}  // namespace shmarray::server
