// normalize_domain / address_domain: RFC 8461 §3.4, RFC 5890, UTS #46.
#include "policy/domain.h"

#include <gtest/gtest.h>

#include "printable.h"

#include <string>
#include <vector>

namespace mtasts::policy {
namespace {

using namespace std::string_literals;

// Printable form of a test input for failure messages.
std::string show(const std::string& s) { return mtasts::testing::printable(s); }

struct DomainCase {
  std::string input;
  std::string want;  // normalised name when `code` is empty
  std::string code;  // expected error code, "" for success
};

std::string labels(std::size_t count, std::size_t length) {
  std::string out;
  for (std::size_t i = 0; i < count; ++i) {
    if (i != 0) out += '.';
    out += std::string(length, static_cast<char>('a' + i % 26));
  }
  return out;
}

const std::string k63 = std::string(63, 'a');
const std::string k64 = std::string(64, 'a');
// 4 * 63 + 3 dots = 255 > 253; 3 * 63 + 61 + 3 dots = 253.
const std::string kName253 = labels(3, 63) + "." + std::string(61, 'z');
const std::string kName254 = labels(3, 63) + "." + std::string(62, 'z');

std::vector<DomainCase> domain_cases() {
  return {
      // Ordinary names, case and the root dot.
      {"example.com", "example.com", ""},
      {"Example.COM", "example.com", ""},
      {"EXAMPLE.COM.", "example.com", ""},
      {"mail.example.co.uk", "mail.example.co.uk", ""},
      {"com", "com", ""},
      {"localhost", "localhost", ""},
      {"a.b.c.d.e.f.example", "a.b.c.d.e.f.example", ""},
      {"123.example.com", "123.example.com", ""},
      {"a-b.example.com", "a-b.example.com", ""},
      {"r3--sn-abc.example.com", "r3--sn-abc.example.com", ""},  // reserved-LDH host name
      {"example.com..", "", "invalid-name"},
      {"", "", "empty"},
      {".", "", "invalid-name"},
      {"..", "", "invalid-name"},
      {".example.com", "", "invalid-name"},
      {"a..b.com", "", "invalid-name"},
      {"-", "", "invalid-name"},
      // U-labels and A-labels (UTS #46 non-transitional).
      {"mx.bücher.example", "mx.xn--bcher-kva.example", ""},
      {"BÜCHER.example", "xn--bcher-kva.example", ""},
      {"bücher.example.", "xn--bcher-kva.example", ""},
      {"XN--BCHER-KVA.example", "xn--bcher-kva.example", ""},
      {"xn--bcher-kva.xn--bcher-kva", "xn--bcher-kva.xn--bcher-kva", ""},
      {"faß.de", "xn--fa-hia.de", ""},  // non-transitional: ß kept, not "ss"
      {"ＥＸＡＭＰＬＥ．ｃｏｍ", "example.com", ""},
      {"example。com", "example.com", ""},
      {"example。com。", "example.com", ""},
      {"ⅰ.com", "i.com", ""},
      {"exam\u00ADple.com", "example.com", ""},  // soft hyphen is ignored by UTS #46
      {"xn--abc.com", "", "idna"},
      {"xn--.com", "", "invalid-name"},  // ends with a hyphen
      {"xn--a.com", "", "idna"},
      {"xn--99999999.com", "", "idna"},  // Punycode overflow
      {"xn--zca.de", "xn--zca.de", ""},  // ß, valid under non-transitional rules
      {"💩.la", "", "idna"},
      {"xn--ls8h.la", "", "idna"},
      {"a\u200Db.com", "", "idna"},           // ZWJ outside its CONTEXTJ rule
      {"١٢٣.com", "", "idna"},                // Bidi rule
      {"\xff\xfe.com", "", "idna"},           // invalid UTF-8
      {"\xc3", "", "idna"},                   // truncated UTF-8
      {"ab--cd.bücher.example", "", "idna"},  // libidn2's hyphen rule on IDNs
      {std::string(40, 'x') + "ü.com", "xn--" + std::string(40, 'x') + "-oge.com", ""},
      {std::string(63, 'u') + "\u00FC.com", "", "idna"},  // A-label > 63
      // Address literals and bare addresses.
      {"[192.0.2.1]", "", "address-literal"},
      {"[IPv6:2001:db8::1]", "", "address-literal"},
      {"[", "", "address-literal"},
      {"]", "", "address-literal"},
      {"[example.com]", "", "address-literal"},
      {"192.0.2.1", "", "address-literal"},
      {"192.0.2.1.", "", "address-literal"},
      {"0.0.0.0", "", "address-literal"},
      {"127.1", "", "address-literal"},
      {"2130706433", "", "address-literal"},
      {"2001:db8::1", "", "address-literal"},
      {"::1", "", "address-literal"},
      {"::ffff:192.0.2.1", "", "address-literal"},
      {"IPv6:2001:db8::1", "", "address-literal"},
      {"１９２．０．２．１", "", "address-literal"},
      {"example.123", "", "invalid-name"},
      // NULs, control characters and whitespace.
      {"example.com\0evil.com"s, "", "invalid-name"},
      {"\0"s, "", "invalid-name"},
      {"example.com\0"s, "", "invalid-name"},
      {"bücher.example\0"s, "", "invalid-name"},
      {"exa mple.com", "", "invalid-name"},
      {"example.com ", "", "invalid-name"},
      {" example.com", "", "invalid-name"},
      {"example.com\n", "", "invalid-name"},
      {"example.com\r\n", "", "invalid-name"},
      {"exa\tmple.com", "", "invalid-name"},
      {"\x7f.com", "", "invalid-name"},
      {"\x1b[31m.com", "", "invalid-name"},
      {"exa\u00A0mple.com", "", "invalid-name"},  // UTS #46 maps NBSP to a space: not LDH
      // Characters outside LDH.
      {"a_b.example.com", "", "invalid-name"},
      {"*.example.com", "", "invalid-name"},
      {"example.com:25", "", "invalid-name"},
      {"user@example.com", "", "invalid-name"},
      {"exa%mple.com", "", "invalid-name"},
      {"exa/mple.com", "", "invalid-name"},
      {"-a.example.com", "", "invalid-name"},
      {"a-.example.com", "", "invalid-name"},
      {"example.-com", "", "invalid-name"},
      // Length limits.
      {k63 + ".com", k63 + ".com", ""},
      {k64 + ".com", "", "invalid-name"},
      {kName253, kName253, ""},
      {kName253 + ".", kName253, ""},
      {kName254, "", "invalid-name"},
      {std::string(2000, 'a'), "", "invalid-name"},
      {labels(200, 1), "", "invalid-name"},  // 399 octets of one-letter labels
  };
}

TEST(PolicyDomain, NormalizeTable) {
  for (const DomainCase& c : domain_cases()) {
    SCOPED_TRACE("input: " + show(c.input));
    const Result<std::string> got = normalize_domain(c.input);
    if (c.code.empty()) {
      ASSERT_TRUE(got.has_value()) << got.error().code << ": " << got.error().detail;
      EXPECT_EQ(got.value(), c.want);
    } else {
      ASSERT_FALSE(got.has_value()) << "got " << show(got.value());
      EXPECT_EQ(got.error().code, c.code) << got.error().detail;
      EXPECT_FALSE(got.error().detail.empty());
    }
  }
}

// A normalised name is a fixed point: normalising it again changes nothing.
TEST(PolicyDomain, NormalizeIsIdempotent) {
  for (const DomainCase& c : domain_cases()) {
    if (!c.code.empty()) continue;
    SCOPED_TRACE("input: " + show(c.input));
    const Result<std::string> again = normalize_domain(c.want);
    ASSERT_TRUE(again.has_value()) << again.error().code;
    EXPECT_EQ(again.value(), c.want);
  }
}

TEST(PolicyDomain, AddressDomainTable) {
  struct Case {
    std::string address;
    std::string want;
  };
  const std::vector<Case> cases = {
      {"user@Example.COM", "Example.COM"},
      {"<user@x>", "x"},
      {"<user@example.com>", "example.com"},
      {"user", ""},
      {"", ""},
      {"<>", ""},
      {"user@", ""},
      {"@example.com", "example.com"},
      {"\"a@b\"@example.com", "example.com"},
      {"<@relay.example,@b.example:user@c.example>", "c.example"},
      {"user@[192.0.2.1]", "[192.0.2.1]"},
      {"user@bücher.example", "bücher.example"},
      {"<user@example.com", "example.com"},
      {"user@example.com>", "example.com"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE("address: " + show(c.address));
    EXPECT_EQ(address_domain(c.address), c.want);
  }
}

}  // namespace
}  // namespace mtasts::policy
