#include "user_names.hpp"

#include <grp.h>
#include <pwd.h>

#include <cerrno>
#include <vector>

namespace shmarray::cli {

namespace {

// Entries with long member lists need more than the usual buffer: grow on ERANGE.
template <class Entry, class Lookup>
std::string lookup_name(std::uint32_t id, Lookup lookup, char* Entry::*name_field) {
  std::vector<char> buffer(1024);
  while (buffer.size() <= (1U << 20)) {
    Entry entry{};
    Entry* found = nullptr;
    const int rc = lookup(id, &entry, buffer.data(), buffer.size(), &found);
    if (rc == ERANGE) {
      buffer.resize(buffer.size() * 4);
      continue;
    }
    return rc == 0 && found != nullptr ? std::string(found->*name_field) : std::string();
  }
  return {};
}

}  // namespace

std::string user_name(std::uint32_t uid) {
  return lookup_name<passwd>(uid, getpwuid_r, &passwd::pw_name);
}

std::string group_name(std::uint32_t gid) {
  return lookup_name<group>(gid, getgrgid_r, &group::gr_name);
}

}  // namespace shmarray::cli
