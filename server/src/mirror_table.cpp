#include "mirror_table.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <sstream>

#include "shmarray/unique_fd.hpp"

namespace shmarray::server {

Result<MirrorTable> MirrorTable::load(std::string path) {
  MirrorTable table(path);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return table;
    if (errno == ELOOP) {
      return fail(ErrorCode::kPermissionDenied,
                  "the mirror configuration " + path + " is a symbolic link: remove it");
    }
    return std::unexpected(sys_error("cannot read the mirror configuration " + path, errno));
  }
  std::string text;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::unexpected(sys_error("cannot read " + path, errno));
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > (1u << 20)) {
      return fail(ErrorCode::kDataLoss, "the mirror configuration " + path + " is over 1 MiB");
    }
  }
  std::istringstream lines(text);
  std::string line;
  int number = 0;
  while (std::getline(lines, line)) {
    ++number;
    if (line.empty()) continue;
    const auto tab = line.find('\t');
    if (tab == std::string::npos) {
      return fail(ErrorCode::kDataLoss, path + " line " + std::to_string(number) +
                                            " is not PREFIX<TAB>HOST:PORT: fix or remove it");
    }
    if (auto ok = table.add(line.substr(0, tab), line.substr(tab + 1), false); !ok) {
      return fail(ErrorCode::kDataLoss,
                  path + " line " + std::to_string(number) + ": " + ok.error().message());
    }
  }
  return table;
}

Result<void> MirrorTable::add(const std::string& prefix, const std::string& peer, bool persist) {
  for (const auto& [p, m] : mirrors_) {
    if (p == prefix) {
      return fail(ErrorCode::kAlreadyExists,
                  "prefix '" + prefix + "' is already mirrored from " + m.peer +
                      ": remove it first ('shmarray mirror rm " + prefix + "')");
    }
    if (p.compare(0, prefix.size(), prefix) == 0 || prefix.compare(0, p.size(), p) == 0) {
      return fail(ErrorCode::kAlreadyExists, "prefix '" + prefix + "' overlaps '" + p +
                                                 "', already mirrored from " + m.peer);
    }
  }
  mirrors_.emplace(prefix, MirrorInfo{prefix, peer, "configured", {}});
  if (!persist) return {};
  if (auto ok = save(); !ok) {
    mirrors_.erase(prefix);
    return ok;
  }
  return {};
}

Result<void> MirrorTable::remove(const std::string& prefix) {
  const auto it = mirrors_.find(prefix);
  if (it == mirrors_.end()) {
    return fail(ErrorCode::kNotFound,
                "prefix '" + prefix + "' is not mirrored ('shmarray mirror ls' lists mirrors)");
  }
  auto kept = std::move(it->second);
  mirrors_.erase(it);
  if (auto ok = save(); !ok) {
    mirrors_.emplace(prefix, std::move(kept));
    return ok;
  }
  return {};
}

const MirrorInfo* MirrorTable::mirror_of(const std::string& name) const {
  // Prefixes do not overlap (add refuses it), so at most one can match: the greatest key <= name.
  auto it = mirrors_.upper_bound(name);
  if (it == mirrors_.begin()) return nullptr;
  --it;
  return name.compare(0, it->first.size(), it->first) == 0 ? &it->second : nullptr;
}

std::vector<MirrorInfo> MirrorTable::list() const {
  std::vector<MirrorInfo> out;
  for (const auto& [p, m] : mirrors_) out.push_back(m);
  return out;
}

void MirrorTable::apply_report(const std::vector<MirrorInfo>& report) {
  for (const auto& r : report) {
    const auto it = mirrors_.find(r.prefix);
    if (it == mirrors_.end() || it->second.peer != r.peer) continue;
    it->second.link = r.link.substr(0, 512);
    it->second.arrays.clear();
    for (const auto& a : r.arrays) {
      if (a.name.compare(0, r.prefix.size(), r.prefix) == 0) it->second.arrays.push_back(a);
    }
  }
}

const MirroredArray* MirrorTable::array_status(const std::string& name) const {
  const MirrorInfo* m = mirror_of(name);
  if (m == nullptr) return nullptr;
  for (const auto& a : m->arrays) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

std::vector<std::string> MirrorTable::bridge_arguments() const {
  std::vector<std::string> out;
  for (const auto& [p, m] : mirrors_) out.push_back(p + "=" + m.peer);
  return out;
}

Result<void> MirrorTable::save() const {
  std::string text;
  for (const auto& [p, m] : mirrors_) text += p + "\t" + m.peer + "\n";
  const std::string tmp = path_ + ".tmp";
  ::unlink(tmp.c_str());
  UniqueFd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out) return std::unexpected(sys_error("cannot write the mirror configuration " + tmp, errno));
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(out.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::unexpected(sys_error("cannot write " + tmp, errno));
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(out.get()) != 0 || ::rename(tmp.c_str(), path_.c_str()) != 0) {
    return std::unexpected(sys_error("cannot replace " + path_, errno));
  }
  return {};
}

}  // namespace shmarray::server
