// mx_pattern_matches / policy_allows_mx: RFC 8461 §4.1 (patterns from §3.2).
#include "policy/mx_match.h"

#include <gtest/gtest.h>

#include "printable.h"

#include <string>
#include <vector>

namespace mtasts::policy {
namespace {

using namespace std::string_literals;

std::string show(const std::string& s) { return mtasts::testing::printable(s); }

struct MxCase {
  std::string pattern;
  std::string host;
  bool want;
};

const std::vector<MxCase>& mx_cases() {
  static const std::vector<MxCase> cases = {
      // The §3.2 example policy's patterns.
      {"mail.example.com", "mail.example.com", true},
      {"*.example.net", "mx1.example.net", true},
      {"*.example.net", "example.net", false},
      {"*.example.net", "mx1.sub.example.net", false},
      {"backupmx.example.com", "backupmx.example.com", true},
      {"mail.example.com", "backupmx.example.com", false},
      // Exact patterns: case, trailing dot, U-labels on the host side.
      {"mail.example.com", "MAIL.EXAMPLE.COM", true},
      {"mail.example.com", "Mail.Example.Com.", true},
      {"mail.example.com", "mail.example.com.", true},
      {"mail.example.com", "mail.example.com..", false},
      {"mail.example.com", "mail.example.co", false},
      {"mail.example.com", "mail.example.comm", false},
      {"mail.example.com", "xmail.example.com", false},
      {"mail.example.com", "mx.mail.example.com", false},
      {"mail.example.com", "example.com", false},
      {"mail.example.com", "mail.example.com ", false},
      {"mail.example.com", " mail.example.com", false},
      {"mail.example.com", "mail.example.com\0"s, false},
      {"mail.example.com", "mail.example.com\0.evil"s, false},
      {"mail.example.com", "mail\0.example.com"s, false},
      {"mail.example.com", "mail.example.com\n", false},
      {"mail.example.com", "", false},
      {"MAIL.EXAMPLE.COM", "mail.example.com", true},  // defensive: pattern case ignored
      {"mx.xn--bcher-kva.example", "mx.bücher.example", true},
      {"mx.xn--bcher-kva.example", "MX.BÜCHER.EXAMPLE.", true},
      {"mx.xn--bcher-kva.example", "mx.xn--bcher-kva.example", true},
      {"mx.xn--bcher-kva.example", "mx.bucher.example", false},
      {"mx.bücher.example", "mx.bücher.example", false},  // patterns are A-labels only
      {"mx.xn--fa-hia.de", "mx.faß.de", true},            // non-transitional ß
      {"mx.fass.de", "mx.faß.de", false},
      // Wildcards: exactly one non-empty leftmost label.
      {"*.example.com", "mx.example.com", true},
      {"*.example.com", "MX1.EXAMPLE.COM.", true},
      {"*.example.com", "a.b.example.com", false},
      {"*.example.com", "example.com", false},
      {"*.example.com", ".example.com", false},
      {"*.example.com", "..example.com", false},
      {"*.example.com", "xexample.com", false},
      {"*.example.com", "mx.example.com.evil", false},
      {"*.example.com", "mx.example.org", false},
      {"*.example.com", "*.example.com", false},
      {"*.example.com", "mx-1.example.com", true},
      {"*.example.com", "xn--bcher-kva.example.com", true},
      {"*.example.com", "bücher.example.com", true},
      {"*.example.com", "mx.bücher.example.com", false},
      {"*.xn--bcher-kva.example", "mx.bücher.example", true},
      {"*.com", "example.com", true},  // the policy owner's choice; certificates still checked
      {"*.com", "mx.example.com", false},
      {"*", "example", false},
      {"*", "*", false},
      {"*.", "example", false},
      {"*", "", false},
      {"", "", false},
      {"", "example.com", false},
      {"**.example.com", "mx.example.com", false},
      {"mx*.example.com", "mx1.example.com", false},
      {"*mx.example.com", "amx.example.com", false},
      {"m*x.example.com", "max.example.com", false},
      {"mx.*.example.com", "mx.a.example.com", false},
      {"*.*.example.com", "a.b.example.com", false},
      {"example.*", "example.com", false},
      // IP literals, bare addresses and the null MX never match.
      {"192.0.2.1", "192.0.2.1", false},
      {"[192.0.2.1]", "[192.0.2.1]", false},
      {"*.0.2.1", "192.0.2.1", false},
      {"*.example.com", "[192.0.2.1]", false},
      {"2001:db8::1", "2001:db8::1", false},
      {"*.example.com", "[IPv6:2001:db8::1]", false},
      {".", ".", false},
      {"*.example.com", ".", false},
      {"", ".", false},
      // Hostile host text.
      {"*.example.com", "a_b.example.com", false},
      {"*.example.com", "a b.example.com", false},
      {"*.example.com", "a\tb.example.com", false},
      {"*.example.com", "a\0.example.com"s, false},
      {"*.example.com", "\xff.example.com", false},
      {"*.example.com", std::string(64, 'a') + ".example.com", false},
      {"*.example.com", std::string(63, 'a') + ".example.com", true},
      {"*.example.com", std::string(300, 'a') + ".example.com", false},
      {"*.example.com", "-mx.example.com", false},
      {"*.example.com", "mx-.example.com", false},
      {"*.example.com", "💩.example.com", false},
  };
  return cases;
}

TEST(PolicyMxMatch, PatternTable) {
  for (const MxCase& c : mx_cases()) {
    SCOPED_TRACE("pattern: " + show(c.pattern) + " host: " + show(c.host));
    EXPECT_EQ(mx_pattern_matches(c.pattern, c.host), c.want);
  }
}

// policy_allows_mx agrees with mx_pattern_matches for single-pattern policies.
TEST(PolicyMxMatch, SinglePatternPolicyAgrees) {
  for (const MxCase& c : mx_cases()) {
    SCOPED_TRACE("pattern: " + show(c.pattern) + " host: " + show(c.host));
    Policy policy;
    policy.mode = Mode::Enforce;
    policy.mx = {c.pattern};
    EXPECT_EQ(policy_allows_mx(policy, c.host), c.want);
  }
}

TEST(PolicyMxMatch, PolicyTable) {
  Policy rfc_example;  // RFC 8461 §3.2 example policy
  rfc_example.mode = Mode::Enforce;
  rfc_example.max_age = 604800;
  rfc_example.mx = {"mail.example.com", "*.example.net", "backupmx.example.com"};
  Policy empty;
  empty.mode = Mode::None;

  struct Case {
    const Policy* policy;
    std::string host;
    bool want;
  };
  const std::vector<Case> cases = {
      {&rfc_example, "mail.example.com", true},
      {&rfc_example, "backupmx.example.com.", true},
      {&rfc_example, "anything.example.net", true},
      {&rfc_example, "MX.EXAMPLE.NET", true},
      {&rfc_example, "example.net", false},
      {&rfc_example, "a.b.example.net", false},
      {&rfc_example, "mx.example.com", false},
      {&rfc_example, "evil.example", false},
      {&rfc_example, "", false},
      {&rfc_example, ".", false},
      {&rfc_example, "[192.0.2.1]", false},
      {&empty, "mail.example.com", false},
      {&empty, "", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE("host: " + show(c.host));
    EXPECT_EQ(policy_allows_mx(*c.policy, c.host), c.want);
  }
}

}  // namespace
}  // namespace mtasts::policy
