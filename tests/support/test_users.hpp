#pragma once
// Real unprivileged users for security tests: creates (or reuses) shmarray-test-a and
// shmarray-test-b, members of group shmarray-test-g, and runs the test helper as one of them
// (fork, setgroups/setgid/setuid, exec). Needs root; ensure_test_users says why not otherwise.
// The users and the group stay on the machine and are reused by later runs.
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "process.hpp"

extern char** environ;

namespace shmarray::test {

inline constexpr const char* kUserA = "shmarray-test-a";
inline constexpr const char* kUserB = "shmarray-test-b";
inline constexpr const char* kGroup = "shmarray-test-g";

// Credentials a helper runs with: as after login (primary group, supplementary groups), or as
// after `sg shmarray-test-g` (gid = the shared group).
struct Identity {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
};

struct TestUsers {
  Identity a;
  Identity b;
  gid_t group = 0;
  [[nodiscard]] Identity in_group(Identity who) const {
    who.gid = group;
    return who;
  }
  [[nodiscard]] static Identity outsider(Identity who) {  // not a member of the shared group
    who.groups = {who.gid};
    return who;
  }
};

// Runs `argv` (useradd & co.), retrying while another test process holds /etc/passwd's lock.
inline bool run_admin(const std::vector<std::string>& argv) {
  for (int attempt = 0; attempt < 10; ++attempt) {
    if (run(argv, std::chrono::seconds(20)).status.ok()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

inline bool group_has_member(const char* group, const char* user) {
  const struct group* g = ::getgrnam(group);
  for (char** m = g != nullptr ? g->gr_mem : nullptr; m != nullptr && *m != nullptr; ++m) {
    if (std::string(*m) == user) return true;
  }
  return false;
}

// Creates the shared group and both users once (they stay, and are reused by later runs).
// std::nullopt with `why` set when that is not possible.
inline std::optional<TestUsers> ensure_test_users(std::string& why) {
  if (::geteuid() != 0) {
    why = "needs root: it creates users shmarray-test-a/-b and runs clients as them";
    return std::nullopt;
  }
  if (::getgrnam(kGroup) == nullptr) run_admin({"/usr/sbin/groupadd", "--system", kGroup});
  TestUsers users;
  const struct group* shared = ::getgrnam(kGroup);
  if (shared == nullptr) {
    why = std::string("cannot create group ") + kGroup + " (groupadd failed)";
    return std::nullopt;
  }
  users.group = shared->gr_gid;
  for (const char* name : {kUserA, kUserB}) {
    if (::getpwnam(name) == nullptr) {
      run_admin({"/usr/sbin/useradd", "--system", "--no-create-home", "--user-group", "--shell",
                 "/usr/sbin/nologin", "--groups", kGroup, name});
    } else if (!group_has_member(kGroup, name)) {
      run_admin({"/usr/sbin/usermod", "-aG", kGroup, name});
    }
    const struct passwd* pw = ::getpwnam(name);
    if (pw == nullptr) {
      why = std::string("cannot create user ") + name + " (useradd failed)";
      return std::nullopt;
    }
    Identity& who = name == kUserA ? users.a : users.b;
    who = Identity{pw->pw_uid, pw->pw_gid, {pw->pw_gid, users.group}};
  }
  return users;
}

// argv run as `who` with no supplementary groups, for ChildProcess::spawn (setpriv execs in the
// same process, so pid and signals reach the program). Needs /usr/bin/setpriv (util-linux).
inline std::vector<std::string> as_user(const Identity& who, std::vector<std::string> argv) {
  std::vector<std::string> out{"/usr/bin/setpriv", "--reuid=" + std::to_string(who.uid),
                               "--regid=" + std::to_string(who.gid), "--clear-groups"};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

// Runs the helper as `who` (setgroups, setgid, setuid, then exec); stdout captured.
// The helper program, copied once per test process into a fresh 0755 directory (removed at exit),
// so that the test users can run it even when the build lives under a directory they cannot
// traverse (a 0700 home, a `mktemp -d` checkout). The helper links the client statically.
inline const std::string& helper_for_other_users() {
  struct Copy {
    std::string dir;
    std::string path;
    Copy() {
      char tmpl[] = "/tmp/shmarray-helper-XXXXXX";
      if (::mkdtemp(tmpl) == nullptr) {
        path = SHMARRAY_HELPER_PATH;  // cannot copy: run it in place (works if traversable)
        return;
      }
      dir = tmpl;
      ::chmod(dir.c_str(), 0755);
      path = dir + "/shmarray_test_helper";
      std::error_code ec;
      std::filesystem::copy_file(SHMARRAY_HELPER_PATH, path, ec);
      if (ec) {
        path = SHMARRAY_HELPER_PATH;
        return;
      }
      ::chmod(path.c_str(), 0755);
    }
    ~Copy() {
      if (dir.empty()) return;
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  };
  static const Copy copy;
  return copy.path;
}

inline RunResult run_helper_as(const Identity& who, const std::vector<std::string>& args,
                        std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  std::vector<std::string> argv{helper_for_other_users()};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  // Under a sanitizer a write to a read-only mapping must still die of SIGSEGV.
  std::vector<std::string> env = segv_passthrough_env();
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view v(*e);
    if (!v.starts_with("ASAN_OPTIONS=") && !v.starts_with("TSAN_OPTIONS=")) env.emplace_back(*e);
  }
  std::vector<char*> cenv;
  for (auto& e : env) cenv.push_back(e.data());
  cenv.push_back(nullptr);
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return {};
  const pid_t pid = ::fork();
  if (pid == 0) {  // only async-signal-safe calls from here to exec
    ::dup2(out[1], STDOUT_FILENO);
    if (::setgroups(who.groups.size(), who.groups.data()) != 0 || ::setgid(who.gid) != 0 ||
        ::setuid(who.uid) != 0) {
      ::_exit(126);
    }
    ::execve(cargv[0], cargv.data(), cenv.data());
    ::_exit(127);  // e.g. the build directory is not traversable by that user
  }
  ::close(out[1]);
  UniqueFd read_end(out[0]);
  RunResult result;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{read_end.get(), POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    char buf[4096];
    const ssize_t n = ::read(read_end.get(), buf, sizeof buf);
    if (n <= 0) break;
    result.out.append(buf, static_cast<std::size_t>(n));
  }
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      result.status.timed_out = true;
      return result;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (WIFEXITED(status)) result.status.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.status.signal = WTERMSIG(status);
  return result;
}

}  // namespace shmarray::test
