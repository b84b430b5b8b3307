#pragma once
// Commands of shmarray_test_helper for tests/integration/security_test.cpp, which runs them as
// unprivileged users. Each prints what it observed, one fact a line, and the test asserts on it:
//   try SOCK NAME OP [ARG...]  OP: open-ro, open-rw, stat, remove, chmod OCTAL,
//                              create OCTAL [ELEMENTS] (float64), create-stream OCTAL, subscribe,
//                              open-publisher, mirror-add HOST:PORT (NAME: the prefix),
//                              mirror-rm; prints "ok" or "error <Code>"
//                              ("connect-error <Code>" and exit 1 if it cannot connect)
//   list SOCK PREFIX           the names this user sees, one a line, then "end"
//   watch SOCK PREFIX          "watching", then the name of each array a watcher of PREFIX is
//                              told was created, until PREFIX + "end" (exit 1: none in 20 s)
//   ro-grant SOCK NAME         over the raw protocol: open NAME read-only, then try every way to
//                              write through or upgrade what arrived; "PASS ..."/"FAIL ..." lines,
//                              exit 0 only when every attempt was refused
//   forge-header SOCK NAME     a writer's attack on the metadata: open NAME read-write over the raw
//                              protocol, rewrite the header page to claim this uid/gid as owner
//                              and mode 0666, with a valid checksum; prints "forged" or "FAIL ..."
//   resize SOCK NAME BYTES     a writer's attack on the size: open NAME read-write over the raw
//                              protocol and ftruncate the segment to BYTES; prints "resized" or
//                              "FAIL ..."
// Header-only so that the helper stays one source file in tests/CMakeLists.txt.
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "../support/raw_client.hpp"
#include "shmarray/segment_layout.hpp"
#include "shmarray/shmarray.hpp"

namespace shmarray::test_helper {

inline int try_op(const std::vector<std::string>& a) {
  auto client = Client::connect({.socket_path = a[0]});
  if (!client) {
    std::printf("connect-error %s\n", std::string(to_string(client.error().code())).c_str());
    return 1;
  }
  const std::string& name = a[1];
  const std::string& op = a[2];
  const auto octal = [&] { return static_cast<std::uint32_t>(std::stoul(a.at(3), nullptr, 8)); };
  Result<void> r;
  if (op == "open-ro" || op == "open-rw") {
    auto opened = client->open(name, op == "open-ro" ? Access::kReadOnly : Access::kReadWrite);
    if (!opened) r = std::unexpected(opened.error());
  } else if (op == "stat") {
    auto info = client->stat(name);
    if (!info) r = std::unexpected(info.error());
  } else if (op == "remove") {
    r = client->remove(name);
  } else if (op == "chmod") {
    r = client->chmod(name, octal());
  } else if (op == "create") {
    const std::uint64_t n = a.size() > 4 ? std::stoull(a[4]) : 8;
    auto created = client->create(name, ArraySpec{.dtype = "<f8", .shape = {n}, .mode = octal()});
    if (!created) r = std::unexpected(created.error());
  } else if (op == "create-stream") {
    StreamSpec spec;
    spec.slots = 4;
    spec.slot_bytes = 64;
    spec.mode = octal();
    auto created = client->create_stream(name, spec);
    if (!created) r = std::unexpected(created.error());
  } else if (op == "subscribe") {
    auto sub = client->subscribe(name, {.max_held = 1});
    if (!sub) r = std::unexpected(sub.error());
  } else if (op == "open-publisher") {
    auto pub = client->open_publisher(name);
    if (!pub) r = std::unexpected(pub.error());
  } else if (op == "mirror-add") {  // NAME is the prefix, ARG the source's HOST:PORT
    auto added = client->mirror_add(name, a.at(3));
    if (!added) r = std::unexpected(added.error());
  } else if (op == "mirror-rm") {
    auto removed = client->mirror_remove(name);
    if (!removed) r = std::unexpected(removed.error());
  } else {
    std::fprintf(stderr, "try: unknown operation %s\n", op.c_str());
    return 2;
  }
  std::printf("%s\n",
              r ? "ok" : ("error " + std::string(to_string(r.error().code()))).c_str());
  if (!r) std::fprintf(stderr, "try %s %s: %s\n", op.c_str(), name.c_str(),
                       r.error().message().c_str());
  return 0;
}

inline int list_names(const std::vector<std::string>& a) {
  auto client = Client::connect({.socket_path = a[0]});
  if (!client) return 1;
  auto infos = client->list(a[1]);
  if (!infos) return 1;
  for (const auto& info : *infos) std::printf("%s\n", info.name.c_str());
  std::printf("end\n");
  return 0;
}

// One line per attempt; `refused` says whether the attempt failed as it must.
inline bool expect_refused(bool refused, const std::string& what) {
  std::printf("%s %s\n", refused ? "PASS" : "FAIL", what.c_str());
  return refused;
}

// The segment file of array `id` in /dev/shm (whatever the broker's prefix), or "".
inline std::string segment_file_of(const std::string& id) {
  std::string found;
  if (DIR* d = ::opendir("/dev/shm")) {
    while (const dirent* e = ::readdir(d)) {
      const std::string n = e->d_name;
      if (n.size() > id.size() && n.rfind("shmarray.", 0) == 0 &&
          n.compare(n.size() - id.size(), id.size(), id) == 0) {
        found = "/dev/shm/" + n;
      }
    }
    ::closedir(d);
  }
  return found;
}

// What a client can do with the descriptor of a read-only grant: nothing that writes.
inline bool probe_read_only_fd(int fd, const std::string& id) {
  bool ok = expect_refused((::fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDONLY,
                           "descriptor arrived O_RDONLY");
  void* w = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ok &= expect_refused(w == MAP_FAILED && errno == EACCES, "mmap PROT_WRITE MAP_SHARED: EACCES");
  void* r = ::mmap(nullptr, 4096, PROT_READ, MAP_SHARED, fd, 0);
  ok &= expect_refused(r != MAP_FAILED && ::mprotect(r, 4096, PROT_READ | PROT_WRITE) != 0 &&
                           errno == EACCES,
                       "mprotect of the read-only mapping to PROT_WRITE: EACCES");
  if (r != MAP_FAILED) ::munmap(r, 4096);
  const char byte = 1;
  ok &= expect_refused(::pwrite(fd, &byte, 1, 4096) < 0, "pwrite refused");
  ok &= expect_refused(::ftruncate(fd, 0) != 0, "ftruncate refused");
  ok &= expect_refused(::fchmod(fd, 0666) != 0 && errno == EPERM, "fchmod 0666: EPERM");
  const std::string proc = "/proc/self/fd/" + std::to_string(fd);
  const int reopened = ::open(proc.c_str(), O_RDWR | O_CLOEXEC);
  ok &= expect_refused(reopened < 0 && errno == EACCES, "reopen via /proc/self/fd O_RDWR: EACCES");
  if (reopened >= 0) ::close(reopened);
  const std::string file = segment_file_of(id);
  ok &= expect_refused(!file.empty(), "segment file found in /dev/shm");
  for (const int flags : {O_RDWR, O_RDONLY}) {
    const int direct = ::open(file.c_str(), flags | O_CLOEXEC);
    ok &= expect_refused(direct < 0 && errno == EACCES,
                         std::string("open of the segment file ") +
                             (flags == O_RDWR ? "O_RDWR" : "O_RDONLY") + ": EACCES");
    if (direct >= 0) ::close(direct);
  }
  return ok;
}

inline int read_only_grant(const std::vector<std::string>& a) {
  using test::RawClient;
  auto raw = RawClient::connect(a[0]);
  if (!raw) return 1;
  const std::string& name = a[1];
  auto granted = raw->call(wire::OpenRequest{name, Access::kReadOnly, 0});
  if (!granted || granted->code() != ErrorCode::kOk || granted->fds.size() != 1) {
    std::printf("FAIL read-only open was not granted with one descriptor\n");
    return 1;
  }
  auto info = wire::decode<wire::OpenReply>(granted->body);
  if (!info) return 1;
  bool ok = probe_read_only_fd(granted->fds[0].get(), info->info.id);
  // Message sequences that might upgrade the grant: each refused, none carries a descriptor.
  const auto refused = [&](const std::optional<RawClient::Reply>& reply, ErrorCode code,
                           const std::string& what) {
    ok &= expect_refused(reply && reply->code() == code && reply->fds.empty(),
                         what + ": " + std::string(to_string(code)) + ", no descriptor");
  };
  refused(raw->call(wire::OpenRequest{name, Access::kReadWrite, 0}), ErrorCode::kPermissionDenied,
          "open read-write after a read-only grant");
  refused(raw->call(wire::OpenRequest{name, Access::kReadWrite, 100}),
          ErrorCode::kPermissionDenied, "open read-write with a wait");
  refused(raw->call(wire::ChmodRequest{name, 0666}), ErrorCode::kPermissionDenied, "chmod 0666");
  refused(raw->call(wire::CreateRequest{name, ArraySpec{.shape = {1}, .mode = 0666}}),
          ErrorCode::kAlreadyExists, "create over the name");
  refused(raw->call(wire::RemoveRequest{name}), ErrorCode::kPermissionDenied, "remove");
  refused(raw->call(wire::OpenRequest{name, static_cast<Access>(2), 0}),
          ErrorCode::kProtocolError, "open with access value 2");
  return ok ? 0 : 1;
}

inline int forge_header(const std::vector<std::string>& a) {
  using test::RawClient;
  auto raw = RawClient::connect(a[0]);
  if (!raw) return 1;
  auto granted = raw->call(wire::OpenRequest{a[1], Access::kReadWrite, 0});
  if (!granted || granted->code() != ErrorCode::kOk || granted->fds.size() != 1) {
    std::printf("FAIL read-write open was not granted\n");
    return 1;
  }
  void* p = ::mmap(nullptr, kHeaderBytes, PROT_READ | PROT_WRITE, MAP_SHARED,
                   granted->fds[0].get(), 0);
  if (p == MAP_FAILED) {
    std::printf("FAIL mmap: %s\n", std::strerror(errno));
    return 1;
  }
  auto* header = static_cast<SegmentHeader*>(p);
  header->owner_uid = ::getuid();
  header->owner_gid = ::getgid();
  header->mode = 0666;
  header->checksum = segment_header_checksum(*header);
  SegmentHeader copy;
  std::memcpy(&copy, p, sizeof copy);
  ::munmap(p, kHeaderBytes);
  // A header anyone would accept: it validates, and it names this user as owner.
  auto forged = decode_segment_header(copy, copy.segment_bytes);
  if (!forged || forged->owner_uid != ::getuid() || forged->mode != 0666) {
    std::printf("FAIL the forged header does not validate\n");
    return 1;
  }
  std::printf("forged\n");
  return 0;
}

inline int resize_segment(const std::vector<std::string>& a) {
  auto raw = test::RawClient::connect(a[0]);
  if (!raw) return 1;
  auto granted = raw->call(wire::OpenRequest{a[1], Access::kReadWrite, 0});
  if (!granted || granted->code() != ErrorCode::kOk || granted->fds.size() != 1) {
    std::printf("FAIL read-write open was not granted\n");
    return 1;
  }
  if (::ftruncate(granted->fds[0].get(), static_cast<off_t>(std::stoull(a[2]))) != 0) {
    std::printf("FAIL ftruncate: %s\n", std::strerror(errno));
    return 1;
  }
  std::printf("resized\n");
  return 0;
}

// Returns the exit status, or -1 if `cmd` is not one of these commands.
// watch SOCK PREFIX: what a watcher of PREFIX is told is created, until PREFIX + "end" is.
inline int watch_names(const std::vector<std::string>& a) {
  auto watcher = Watcher::start(a[0], a[1]);
  if (!watcher) {
    std::printf("error %s\n", std::string(to_string(watcher.error().code())).c_str());
    return 1;
  }
  std::printf("watching\n");
  std::fflush(stdout);
  for (;;) {
    auto event = watcher->next(std::chrono::seconds(20));
    if (!event || !*event) {
      std::printf("no end\n");
      return 1;
    }
    if ((*event)->kind != WatchEvent::Kind::kCreated) continue;
    std::printf("%s\n", (*event)->name.c_str());
    std::fflush(stdout);
    if ((*event)->name == a[1] + "end") return 0;
  }
}

inline int run_security_command(const std::string& cmd, const std::vector<std::string>& a) {
  if (cmd == "try" && a.size() >= 3) return try_op(a);
  if (cmd == "list" && a.size() >= 2) return list_names(a);
  if (cmd == "watch" && a.size() >= 2) return watch_names(a);
  if (cmd == "ro-grant" && a.size() >= 2) return read_only_grant(a);
  if (cmd == "resize" && a.size() >= 3) return resize_segment(a);
  if (cmd == "forge-header" && a.size() >= 2) return forge_header(a);
  return -1;
}

}  // namespace shmarray::test_helper
