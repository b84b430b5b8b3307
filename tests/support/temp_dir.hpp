#pragma once
// A temporary directory under /tmp with the given mode, removed with everything in it when the
// object goes away.
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

namespace shmarray::test {

class TempDir {
 public:
  // `prefix` names the test that made it (/tmp/<prefix>-XXXXXX), so a leftover says whose it is.
  explicit TempDir(mode_t mode = 0700, const std::string& prefix = "shmarray-test") {
    std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + tmpl);
    path_ = tmpl;
    ::chmod(path_.c_str(), mode);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace shmarray::test
