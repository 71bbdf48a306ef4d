// cert_name_matches / cert_names_match: RFC 8461 §4.2, RFC 6125 §6.4 subset.
#include "policy/cert_name.h"

#include <gtest/gtest.h>

#include "printable.h"

#include <string>
#include <vector>

namespace mtasts::policy {
namespace {

using namespace std::string_literals;

std::string show(const std::string& s) { return mtasts::testing::printable(s); }

struct NameCase {
  std::string san;
  std::string host;
  bool want;
};

const std::vector<NameCase>& name_cases() {
  static const std::vector<NameCase> cases = {
      // Exact names: case and one trailing dot on either side.
      {"mx.example.com", "mx.example.com", true},
      {"MX.Example.COM", "mx.example.com", true},
      {"mx.example.com", "MX.EXAMPLE.COM", true},
      {"mx.example.com.", "mx.example.com", true},
      {"mx.example.com", "mx.example.com.", true},
      {"mx.example.com.", "mx.example.com.", true},
      {"mx.example.com..", "mx.example.com", false},
      {"mx.example.com", "mx.example.com..", false},
      {"mx.example.com", "mx.example.org", false},
      {"mx.example.com", "example.com", false},
      {"example.com", "mx.example.com", false},
      {"mx.example.com", "mx.example.co", false},
      {"mta-sts.example.com", "mta-sts.example.com", true},  // §3.3 policy host
      {"mta-sts.example.com", "mta-sts.example.org", false},
      {"", "mx.example.com", false},
      {"mx.example.com", "", false},
      {"", "", false},
      {".", ".", false},
      {".", "", false},
      // Wildcards: whole leftmost label, exactly one host label.
      {"*.example.com", "mx.example.com", true},
      {"*.EXAMPLE.com", "MX.example.COM.", true},
      {"*.example.com.", "mx.example.com", true},
      {"*.example.com", "a.b.example.com", false},
      {"*.example.com", "example.com", false},
      {"*.example.com", ".example.com", false},
      {"*.example.com", "xexample.com", false},
      {"*.example.com", "mx.example.com.evil.test", false},
      {"*.example.com", "*.example.com", false},
      {"*.example.com", "xn--bcher-kva.example.com", true},
      {"*.example.com", "bücher.example.com", true},
      {"*.xn--bcher-kva.example", "mx.bücher.example", true},
      {"mx.xn--bcher-kva.example", "mx.bücher.example", true},
      {"mx.xn--bcher-kva.example", "MX.BÜCHER.EXAMPLE.", true},
      {"mx.bücher.example", "mx.bücher.example", false},  // SANs are IA5String A-labels
      {"mx.bücher.example", "mx.xn--bcher-kva.example", false},
      // Decided: no wildcard directly under one label, no bare "*".
      {"*.com", "example.com", false},
      {"*.com.", "example.com", false},
      {"*", "example", false},
      {"*", "*", false},
      {"*.", "example", false},
      {"*..com", "a..com", false},
      {"*.example.", "mx.example", false},
      // Partial, inner and multiple wildcards never match.
      {"mx*.example.com", "mx1.example.com", false},
      {"*mx.example.com", "amx.example.com", false},
      {"m*x.example.com", "max.example.com", false},
      {"*x.example.com", "x.example.com", false},
      {"xn--*.example.com", "xn--bcher-kva.example.com", false},
      {"**.example.com", "mx.example.com", false},
      {"*.*.example.com", "a.b.example.com", false},
      {"mx.*.example.com", "mx.a.example.com", false},
      {"mx.example.*", "mx.example.com", false},
      {"*.example.*", "mx.example.com", false},
      // Embedded NUL and other bytes in the SAN (the NUL-in-certificate attack).
      {"mx.example.com\0.evil.test"s, "mx.example.com", false},
      {"mx.example.com\0"s, "mx.example.com", false},
      {"\0mx.example.com"s, "mx.example.com", false},
      {"*.example.com\0"s, "mx.example.com", false},
      {"mx.example.com ", "mx.example.com", false},
      {" mx.example.com", "mx.example.com", false},
      {"mx.example.com\n", "mx.example.com", false},
      {"mx.example.com\x7f", "mx.example.com", false},
      {"mx.example.com\xff", "mx.example.com", false},
      // Hostile hosts.
      {"mx.example.com", "mx.example.com\0"s, false},
      {"*.example.com", "a\0.example.com"s, false},
      {"*.example.com", "a b.example.com", false},
      {"*.example.com", "a_b.example.com", false},
      {"a_b.example.com", "a_b.example.com", false},
      {"*.example.com", std::string(64, 'a') + ".example.com", false},
      {"*.example.com", std::string(63, 'a') + ".example.com", true},
      // IP addresses never match a dNSName.
      {"192.0.2.1", "192.0.2.1", false},
      {"*.0.2.1", "192.0.2.1", false},
      {"[192.0.2.1]", "[192.0.2.1]", false},
      {"2001:db8::1", "2001:db8::1", false},
      {"*.example.com", "[192.0.2.1]", false},
  };
  return cases;
}

TEST(PolicyCertName, NameTable) {
  for (const NameCase& c : name_cases()) {
    SCOPED_TRACE("san: " + show(c.san) + " host: " + show(c.host));
    EXPECT_EQ(cert_name_matches(c.san, c.host), c.want);
  }
}

TEST(PolicyCertName, SingleSanListAgrees) {
  for (const NameCase& c : name_cases()) {
    SCOPED_TRACE("san: " + show(c.san) + " host: " + show(c.host));
    const std::vector<std::string> sans{c.san};
    EXPECT_EQ(cert_names_match(sans, c.host), c.want);
  }
}

TEST(PolicyCertName, ListTable) {
  struct Case {
    std::vector<std::string> sans;
    std::string host;
    bool want;
  };
  const std::vector<Case> cases = {
      {{}, "mx.example.com", false},
      {{""}, "mx.example.com", false},
      {{"a.example.com", "mx.example.com"}, "mx.example.com", true},
      {{"mx.example.com", "a.example.com"}, "mx.example.com", true},
      {{"a.example.com", "b.example.com"}, "mx.example.com", false},
      {{"*.com", "*", "mx*.example.com", "mx.example.com\0"s}, "mx.example.com", false},
      {{"*.com", "*.example.com"}, "mx.example.com", true},
      {{"*.example.com"}, "a.mx.example.com", false},
      {{"example.com", "*.example.com"}, "example.com", true},
      {{"mx.example.com"}, "[192.0.2.1]", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE("host: " + show(c.host));
    EXPECT_EQ(cert_names_match(c.sans, c.host), c.want);
  }
}

// policy/net passes these flags to X509_check_host; their values are
// OpenSSL's X509_CHECK_FLAG_NEVER_CHECK_SUBJECT and _NO_PARTIAL_WILDCARDS.
TEST(PolicyCertName, OpenSslFlags) { EXPECT_EQ(kOpenSslHostCheckFlags, 0x24u); }

}  // namespace
}  // namespace mtasts::policy
