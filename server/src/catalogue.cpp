#include "catalogue.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "shmarray/segment_layout.hpp"

namespace shmarray::server {
namespace {

constexpr std::string_view kTemporarySuffix = ".tmp";

bool is_array_id(std::string_view s) {
  if (s.size() != 32) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string octal(unsigned mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0%o", mode & 07777);
  return buf;
}

// Writes all of `bytes` to `fd`, retrying short writes and EINTR.
Result<void> write_all(int fd, const void* bytes, std::size_t n, const std::string& what) {
  const auto* p = static_cast<const char*>(bytes);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(sys_error(what, errno));
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return {};
}

}  // namespace

std::string catalogue_dir_for(const std::string& socket_path) {
  return socket_path + ".catalogue";
}

Result<Catalogue> Catalogue::open(std::string dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return std::unexpected(sys_error("cannot create the broker's catalogue directory " + dir, errno));
  }
  // O_NOFOLLOW: a symbolic link planted in its place is refused, not followed.
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    return fail(ErrorCode::kFailedPrecondition,
                "cannot open the broker's catalogue directory " + dir + " (" +
                    std::strerror(errno) + "): it must be a real directory, not a link");
  }
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) {
    return std::unexpected(sys_error("cannot inspect " + dir, errno));
  }
  if (st.st_uid != ::geteuid() || (st.st_mode & 0077) != 0) {
    return fail(ErrorCode::kFailedPrecondition,
                dir + " holds the broker's trusted array records, so it must be owned by uid " +
                    std::to_string(::geteuid()) + " with mode 0700; it is owned by uid " +
                    std::to_string(st.st_uid) + " with mode " + octal(st.st_mode) +
                    ". Remove it (arrays are then not recovered) or fix its owner and mode");
  }
  return Catalogue(std::move(dir), std::move(fd));
}

Result<void> Catalogue::put(const ArrayInfo& info) const {
  if (!is_array_id(info.id)) return fail(ErrorCode::kInternal, "bad array id '" + info.id + "'");
  auto header = encode_segment_header(info);
  if (!header) return std::unexpected(header.error());
  const std::string temporary = info.id + std::string(kTemporarySuffix);
  const std::string what = "cannot record array '" + info.name + "' in " + dir_;
  UniqueFd fd(::openat(dir_fd_.get(), temporary.c_str(),
                       O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) return std::unexpected(sys_error(what, errno));
  auto written = write_all(fd.get(), &*header, sizeof *header, what);
  fd.reset();
  if (written && ::renameat(dir_fd_.get(), temporary.c_str(), dir_fd_.get(), info.id.c_str()) != 0) {
    written = std::unexpected(sys_error(what, errno));
  }
  if (!written) ::unlinkat(dir_fd_.get(), temporary.c_str(), 0);
  return written;
}

void Catalogue::erase(const std::string& id) const noexcept {
  if (is_array_id(id)) ::unlinkat(dir_fd_.get(), id.c_str(), 0);
}

Result<ArrayInfo> Catalogue::get(const std::string& id) const {
  if (!is_array_id(id)) return fail(ErrorCode::kInvalidArgument, "bad array id '" + id + "'");
  UniqueFd fd(::openat(dir_fd_.get(), id.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return fail(ErrorCode::kNotFound, "no catalogue record");
    return std::unexpected(sys_error("cannot read catalogue record " + dir_ + "/" + id, errno));
  }
  SegmentHeader header;
  // One byte more than a record: a longer file is as damaged as a shorter one.
  char buf[sizeof header + 1];
  std::size_t got = 0;
  while (got < sizeof buf) {
    const ssize_t n = ::read(fd.get(), buf + got, sizeof buf - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::unexpected(sys_error("cannot read " + dir_ + "/" + id, errno));
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got != sizeof header) {
    return fail(ErrorCode::kProtocolError, "catalogue record " + dir_ + "/" + id + " is " +
                                               std::to_string(got) + " bytes, expected " +
                                               std::to_string(sizeof header));
  }
  std::memcpy(&header, buf, sizeof header);
  auto info = decode_segment_header(header, header.segment_bytes);
  if (!info) {
    return fail(ErrorCode::kProtocolError,
                "catalogue record " + dir_ + "/" + id + ": " + info.error().message());
  }
  if (info->id != id) {
    return fail(ErrorCode::kProtocolError,
                "catalogue record " + dir_ + "/" + id + " describes array id " + info->id);
  }
  return info;
}

std::vector<std::string> Catalogue::entries() const {
  std::vector<std::string> out;
  // fdopendir takes ownership of a duplicate, so dir_fd_ keeps its own offset.
  const int dup = ::openat(dir_fd_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dup < 0) return out;
  std::unique_ptr<DIR, int (*)(DIR*)> d(::fdopendir(dup), ::closedir);
  if (!d) {
    ::close(dup);
    return out;
  }
  while (const dirent* e = ::readdir(d.get())) out.emplace_back(e->d_name);
  return out;
}

std::vector<std::string> Catalogue::ids() const {
  std::vector<std::string> out;
  for (auto& n : entries()) {
    if (is_array_id(n)) out.push_back(std::move(n));
  }
  return out;
}

std::size_t Catalogue::remove_temporaries() const {
  std::size_t removed = 0;
  for (const auto& n : entries()) {
    const std::string_view name = n;
    if (name.size() == 32 + kTemporarySuffix.size() && name.ends_with(kTemporarySuffix) &&
        is_array_id(name.substr(0, 32)) && ::unlinkat(dir_fd_.get(), n.c_str(), 0) == 0) {
      ++removed;
    }
  }
  return removed;
}

}  // namespace shmarray::server
