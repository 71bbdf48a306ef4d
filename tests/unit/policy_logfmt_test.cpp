// Untrusted text in logfmt lines: one helper, one rule (policy/logfmt.h).
#include "policy/ascii.h"
#include "policy/logfmt.h"

#include <gtest/gtest.h>

#include <string>

namespace mtasts::policy {
namespace {

struct Case {
  std::string in;
  std::string out;
};

TEST(Logfmt, ValueTable) {
  const std::vector<Case> cases{
      {"4XyZ12", "4XyZ12"},
      {"", "-"},
      {"mx.example.com", "mx.example.com"},
      {"Q1 action=continue", "\"Q1 action=continue\""},
      {"a=b", "\"a=b\""},
      {"line\nnext", "\"line\\x0Anext\""},
      {"cr\rlf", "\"cr\\x0Dlf\""},
      {"say \"hi\"", "\"say \\\"hi\\\"\""},
      {"back\\slash", "\"back\\\\slash\""},
      {"tab\there", "\"tab\\x09here\""},
      {"b\xC3\xBC"
       "cher",
       "\"b\\xC3\\xBCcher\""},
      {"esc\x1b[31m", "\"esc\\x1B[31m\""},
      {std::string("nul\0x", 5), "\"nul\\x00x\""},
  };
  for (const auto& c : cases) EXPECT_EQ(logfmt_value(c.in), c.out) << c.in;
}

TEST(Logfmt, LongTextIsCutAndMarked) {
  const std::string long_text(1000, 'a');
  const std::string out = logfmt_value(long_text, 10);
  EXPECT_EQ(out, "\"aaaaaaaaaa...\"");
}

// Whatever the input, the value is one token: no space or newline outside
// quotes, quotes balanced, no raw control byte.
TEST(Logfmt, EveryByteYieldsOneSafeToken) {
  for (int b = 0; b < 256; ++b) {
    const std::string in = std::string("k") + static_cast<char>(b) + "v";
    const std::string out = logfmt_value(in);
    for (const char c : out) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << "byte " << b << ": " << out;
    if (out.front() != '"') {
      EXPECT_EQ(out.find_first_of(" =\"\\"), std::string::npos) << b;
    }
  }
}

TEST(Ascii, PrintableAndLowercase) {
  EXPECT_EQ(printable_ascii("ok\r\n\x80"), "ok???");
  EXPECT_EQ(printable_ascii("abcdef", 3), "abc...");
  EXPECT_EQ(ascii_lowercase("MX.Example.COM"), "mx.example.com");
  EXPECT_EQ(ascii_lowercase("\xC3\x84"), "\xC3\x84") << "bytes above ASCII untouched";
}

}  // namespace
}  // namespace mtasts::policy
