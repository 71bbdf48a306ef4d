// gzip_compress / gzip_decompress / looks_gzipped: RFC 1952 in memory.
#include "policy/gzip.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "printable.h"

namespace mtasts::policy {
namespace {

using namespace std::string_literals;

constexpr std::size_t kMiB = std::size_t{1024} * 1024;

std::string show(const std::string& s) { return mtasts::testing::printable(s.substr(0, 40)); }

// `printf 'hello\n' | gzip -n -9` (gzip 1.12): what `gzip -d` reads.
const std::string kHelloGz =
    "\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03\xcb\x48\xcd\xc9\xc9\xe7\x02\x00\x20\x30\x3a\x36\x06\x00\x00\x00"s;

std::string random_bytes(std::size_t n) {
  std::mt19937 rng(20260314);
  std::uniform_int_distribution<int> byte(0, 255);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(byte(rng));
  return out;
}

std::string all_bytes() {
  std::string out;
  for (int i = 0; i < 256; ++i) out += static_cast<char>(i);
  return out;
}

TEST(GzipTest, RoundTrips) {
  const std::vector<std::string> inputs = {
      "",
      "x",
      "hello\n",
      all_bytes(),
      R"({"organization-name":"Company-X","policies":[]})",
      std::string(100000, 'a'),
      random_bytes(kMiB),
  };
  for (const auto& input : inputs) {
    const std::string gz = gzip_compress(input);
    EXPECT_TRUE(looks_gzipped(gz)) << show(input);
    const auto back = gzip_decompress(gz, input.size());
    ASSERT_TRUE(back.has_value()) << show(input) << ": " << back.error().code << " " << back.error().detail;
    EXPECT_EQ(*back, input) << show(input);
  }
}

TEST(GzipTest, IsDeterministicWithAFixedHeader) {
  const std::string text = "version: STSv1\nmode: enforce\nmx: mx1.example.com\nmax_age: 604800\n";
  const std::string gz = gzip_compress(text);
  EXPECT_EQ(gz, gzip_compress(text));
  EXPECT_EQ(gzip_compress(random_bytes(70000)), gzip_compress(random_bytes(70000)));
  // ID1 ID2 CM=8 FLG=0 MTIME=0 XFL=2 (level 9) OS=3 (Unix).
  EXPECT_EQ(show(gz.substr(0, 10)), show("\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03"s));
}

TEST(GzipTest, ReadsWhatGzipWrites) {
  const auto hello = gzip_decompress(kHelloGz, 100);
  ASSERT_TRUE(hello.has_value()) << hello.error().detail;
  EXPECT_EQ(*hello, "hello\n");
  // The data part of ours is what gzip -9 wrote: same deflate, same trailer.
  EXPECT_EQ(show(gzip_compress("hello\n").substr(10)), show(kHelloGz.substr(10)));
}

TEST(GzipTest, ReadsEveryMemberOfAMultiMemberFile) {
  const auto both = gzip_decompress(kHelloGz + gzip_compress("world\n") + kHelloGz, 100);
  ASSERT_TRUE(both.has_value()) << both.error().detail;
  EXPECT_EQ(*both, "hello\nworld\nhello\n");
}

std::string with_byte(std::string s, std::size_t pos, char c) {
  s.at(pos) = c;
  return s;
}

struct BadCase {
  std::string name;
  std::string gz;
  std::string detail;  // a substring of the error detail
};

TEST(GzipTest, RefusesWhatIsNotValidGzip) {
  const std::size_t crc = kHelloGz.size() - 8;
  const std::size_t isize = kHelloGz.size() - 4;
  const std::vector<BadCase> cases = {
      {"empty", "", "not gzip"},
      {"one byte", "\x1f", "not gzip"},
      {"plain text", "hello\n", "not gzip"},
      {"zlib stream", "\x78\xda\xcb\x48\xcd\xc9\xc9\xe7\x02\x00\x08\x4b\x02\x1f"s, "not gzip"},
      {"magic only", "\x1f\x8b"s, "truncated"},
      {"method not deflate", with_byte(kHelloGz, 2, '\x07'), "unknown compression method"},
      {"reserved flag", with_byte(kHelloGz, 3, '\x20'), "unknown header flags"},
      {"corrupt crc", with_byte(kHelloGz, crc, static_cast<char>(kHelloGz[crc] ^ 1)), "incorrect data check"},
      {"corrupt isize", with_byte(kHelloGz, isize, '\x07'), "incorrect length check"},
      {"corrupt data", with_byte(kHelloGz, 10, '\xff'), "invalid"},
      {"no trailer", kHelloGz.substr(0, crc), "truncated"},
      {"half a trailer", kHelloGz.substr(0, isize), "truncated"},
      {"trailing text", kHelloGz + "x", "trailing garbage at byte 26"},
      {"trailing zeros", kHelloGz + std::string(4, '\0'), "trailing garbage"},
      {"trailing half magic", kHelloGz + "\x1f", "trailing garbage"},
      {"truncated second member", kHelloGz + kHelloGz.substr(0, 12), "truncated"},
  };
  for (const auto& c : cases) {
    const auto result = gzip_decompress(c.gz, kMiB);
    ASSERT_FALSE(result.has_value()) << c.name;
    EXPECT_EQ(result.error().code, "gzip-invalid") << c.name;
    EXPECT_NE(result.error().detail.find(c.detail), std::string::npos)
        << c.name << ": " << result.error().detail;
  }
}

TEST(GzipTest, EveryTruncationIsInvalid) {
  const std::string gz = gzip_compress(random_bytes(5000));
  for (std::size_t n = 0; n < gz.size(); ++n) {
    const auto result = gzip_decompress(gz.substr(0, n), kMiB);
    ASSERT_FALSE(result.has_value()) << n;
    EXPECT_EQ(result.error().code, "gzip-invalid") << n;
  }
}

TEST(GzipTest, StopsADecompressionBombAtTheCap) {
  const std::string gz = gzip_compress(std::string(10 * kMiB, '\0'));
  EXPECT_LT(gz.size(), 20000u);
  const auto capped = gzip_decompress(gz, kMiB);
  ASSERT_FALSE(capped.has_value());
  EXPECT_EQ(capped.error().code, "gzip-too-large");
  EXPECT_EQ(gzip_decompress(gz, 10 * kMiB - 1).error().code, "gzip-too-large");
  const auto exact = gzip_decompress(gz, 10 * kMiB);
  ASSERT_TRUE(exact.has_value());
  EXPECT_EQ(exact->size(), 10 * kMiB);
  EXPECT_LE(exact->capacity(), 10 * kMiB);  // grown to the cap, never past it
}

TEST(GzipTest, TheCapCountsEveryMember) {
  const std::string two = kHelloGz + kHelloGz;
  EXPECT_TRUE(gzip_decompress(two, 12).has_value());
  EXPECT_EQ(gzip_decompress(two, 11).error().code, "gzip-too-large");
  EXPECT_EQ(gzip_decompress(kHelloGz, 0).error().code, "gzip-too-large");
  EXPECT_TRUE(gzip_decompress(gzip_compress(""), 0).has_value());
}

TEST(GzipTest, LooksGzippedChecksTheMagicOnly) {
  const std::vector<std::pair<std::string, bool>> cases = {
      {"", false},          {"\x1f", false},      {"\x1f\x8b"s, true},  {kHelloGz, true},
      {"\x8b\x1f"s, false}, {"{\"a\":1}", false}, {"\x1f\x8c"s, false},
  };
  for (const auto& [bytes, expected] : cases) EXPECT_EQ(looks_gzipped(bytes), expected) << show(bytes);
}

}  // namespace
}  // namespace mtasts::policy
