// Client-supplied text in broker logs (server/src/log_text.hpp): escaped and capped, so a hostile
// name can neither forge log lines nor flood the log.
#include <gtest/gtest.h>

#include <string>

#include "log_text.hpp"

namespace shmarray::server {
namespace {

TEST(LogText, PrintableAsciiIsUnchanged) {
  EXPECT_EQ(log_text("cam/0/frame_1.f8:x-y"), "cam/0/frame_1.f8:x-y");
  EXPECT_EQ(log_text(""), "");
}

TEST(LogText, ControlBytesDelAndHighBytesAreEscaped) {
  EXPECT_EQ(log_text(std::string("a\nb\rc\x1b[31m\x7f", 11)), "a\\x0ab\\x0dc\\x1b[31m\\x7f");
  EXPECT_EQ(log_text(std::string("nul\0x", 5)), "nul\\x00x");
  EXPECT_EQ(log_text("\xc2\x9b" "2J"), "\\xc2\\x9b2J");  // U+009B, a C1 control (CSI)
  EXPECT_EQ(log_text("back\\slash"), "back\\\\slash");   // so "\x0a" in a name is not a newline
}

TEST(LogText, LongTextIsCutAndSaysItsLength) {
  const std::string name(64 * 1024, '\n');
  const std::string logged = log_text(name);
  EXPECT_EQ(logged, [] {
    std::string expected;
    for (std::size_t i = 0; i < kMaxLoggedBytes; ++i) expected += "\\x0a";
    return expected + "...(65536 bytes)";
  }());
  EXPECT_EQ(logged.find('\n'), std::string::npos);
  EXPECT_EQ(log_text("abcdef", 3), "abc...(6 bytes)");
  EXPECT_EQ(log_text("abc", 3), "abc");
}

}  // namespace
}  // namespace shmarray::server
