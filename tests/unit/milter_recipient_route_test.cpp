// RCPT macros from Postfix and Sendmail -> where the recipient goes.
#include "milter/recipient_route.h"

#include <gtest/gtest.h>

namespace mtasts::milter {
namespace {

struct RouteCase {
  std::string name;
  std::string address;
  std::optional<std::string> mailer;
  std::optional<std::string> host;
  RouteKind kind;
  std::string domain;
  std::string relay_host;
  std::string relay_address;
  bool relay_mx_lookup;
  std::uint16_t port;
  std::string reason;
};

TEST(RecipientRoute, PostfixAndSendmailMacros) {
  using K = RouteKind;
  const std::vector<RouteCase> cases{
      // Postfix: transport smtp, next hop = domain, no trailing dot.
      {"postfix domain", "user@Example.COM", "smtp", "example.com", K::RecipientDomain, "example.com", "", "",
       false, 25, ""},
      {"postfix angle", "<user@example.com>", "smtp", "example.com", K::RecipientDomain, "example.com", "",
       "", false, 25, ""},
      {"postfix relay transport", "u@example.com", "relay", "example.com", K::RecipientDomain, "example.com",
       "", "", false, 25, ""},
      {"postfix smart host", "u@example.com", "smtp", "[relay.example.net]:587", K::SmartHost, "example.com",
       "relay.example.net", "", false, 587, ""},
      {"postfix smart host list", "u@example.com", "smtp", "[a.example.net]:587, [b.example.net]:587",
       K::SmartHost, "example.com", "a.example.net", "", false, 587, ""},
      {"postfix relay via mx", "u@example.com", "smtp", "relay.example.net", K::SmartHost, "example.com",
       "relay.example.net", "", true, 25, ""},
      {"postfix relay via mx port", "u@example.com", "smtp", "relay.example.net:2525", K::SmartHost,
       "example.com", "relay.example.net", "", true, 2525, ""},
      {"postfix ip smart host", "u@example.com", "smtp", "[192.0.2.7]:25", K::SmartHost, "example.com", "",
       "192.0.2.7", false, 25, ""},
      {"postfix ipv6 smart host", "u@example.com", "smtp", "[ipv6:2001:db8::1]", K::SmartHost, "example.com",
       "", "ipv6:2001:db8::1", false, 25, ""},
      {"postfix local", "u@example.com", "local", "example.com", K::OutOfScope, "example.com", "", "", false,
       25, "transport"},
      {"postfix virtual", "u@example.com", "virtual", "example.com", K::OutOfScope, "example.com", "", "",
       false, 25, "transport"},
      {"postfix lmtp", "u@example.com", "lmtp", "unix:private/dovecot", K::OutOfScope, "example.com", "", "",
       false, 25, "transport"},
      {"postfix discard", "u@example.com", "discard", "example.com", K::OutOfScope, "example.com", "", "",
       false, 25, "transport"},
      // Sendmail: esmtp, trailing dot; [relay] with SMART_HOST, mailer relay.
      {"sendmail domain", "u@example.com", "esmtp", "example.com.", K::RecipientDomain, "example.com", "", "",
       false, 25, ""},
      {"sendmail smtp", "u@example.com", "smtp", "example.com.", K::RecipientDomain, "example.com", "", "",
       false, 25, ""},
      {"sendmail smtp8", "u@example.com", "smtp8", "example.com.", K::RecipientDomain, "example.com", "", "",
       false, 25, ""},
      {"sendmail dsmtp", "u@example.com", "dsmtp", "example.com.", K::RecipientDomain, "example.com", "", "",
       false, 25, ""},
      {"sendmail smart host", "u@example.com", "relay", "[relay.example.net]", K::SmartHost, "example.com",
       "relay.example.net", "", false, 25, ""},
      {"sendmail upper mailer", "u@example.com", "ESMTP", "Example.COM.", K::RecipientDomain, "example.com",
       "", "", false, 25, ""},
      {"sendmail local", "u@example.com", "local", "", K::OutOfScope, "example.com", "", "", false, 25,
       "transport"},
      // No macros: non-SMTP submission (Postfix non_smtpd_milters).
      {"no macros", "u@example.com", std::nullopt, std::nullopt, K::Unknown, "example.com", "", "", false, 25,
       ""},
      {"mailer only", "u@example.com", "smtp", std::nullopt, K::Unknown, "example.com", "", "", false, 25,
       ""},
      // Recipient domains.
      {"idn domain", "u@bücher.example", "smtp", "xn--bcher-kva.example", K::RecipientDomain,
       "xn--bcher-kva.example", "", "", false, 25, ""},
      {"address literal", "u@[192.0.2.1]", "smtp", "[192.0.2.1]", K::OutOfScope, "", "", "", false, 25,
       "address-literal"},
      {"no at", "postmaster", "smtp", "example.com", K::OutOfScope, "", "", "", false, 25, "bad-domain"},
      {"empty domain", "u@", "smtp", "example.com", K::OutOfScope, "", "", "", false, 25, "bad-domain"},
      {"bad domain", "u@exa mple.com", "smtp", "example.com", K::OutOfScope, "", "", "", false, 25,
       "bad-domain"},
      {"excluded", "u@internal.example", "smtp", "internal.example", K::OutOfScope, "internal.example", "",
       "", false, 25, "excluded"},
      // Hostile next hops.
      // Postfix relayhost lists with spaces, service-name ports; Sendmail
      // colon lists (the first host is tried first).
      {"postfix list with spaces", "u@example.com", "smtp", "[a.example.net]:587 [b.example.net]:587",
       K::SmartHost, "example.com", "a.example.net", "", false, 587, ""},
      {"postfix service port", "u@example.com", "smtp", "[relay.example.net]:submission", K::SmartHost,
       "example.com", "relay.example.net", "", false, 587, ""},
      {"postfix service port smtp", "u@example.com", "smtp", "relay.example.net:smtp", K::SmartHost,
       "example.com", "relay.example.net", "", true, 25, ""},
      {"sendmail colon list", "u@example.com", "esmtp", "mx1.example.net.:mx2.example.net.", K::SmartHost,
       "example.com", "mx1.example.net", "", true, 25, ""},
      {"sendmail bracket list", "u@example.com", "relay", "[a.example.net]:[b.example.net]", K::SmartHost,
       "example.com", "a.example.net", "", false, 25, ""},
      // Unreadable next hops are decided at end of message (Unknown), never skipped.
      {"unclosed bracket", "u@example.com", "smtp", "[relay.example.net", K::Unknown, "example.com", "", "",
       false, 25, "bad-next-hop"},
      {"bad port", "u@example.com", "smtp", "[relay.example.net]:99999", K::Unknown, "example.com", "", "",
       false, 25, "bad-next-hop"},
      {"port zero", "u@example.com", "smtp", "[relay.example.net]:0", K::Unknown, "example.com", "", "",
       false, 25, "bad-next-hop"},
      {"junk after bracket", "u@example.com", "smtp", "[relay.example.net]x", K::Unknown, "example.com", "",
       "", false, 25, "bad-next-hop"},
      {"empty host", "u@example.com", "smtp", "", K::Unknown, "example.com", "", "", false, 25,
       "bad-next-hop"},
      {"empty brackets", "u@example.com", "smtp", "[]", K::Unknown, "example.com", "", "", false, 25,
       "bad-next-hop"},
      {"bad host name", "u@example.com", "smtp", "[re lay]", K::Unknown, "example.com", "", "", false, 25,
       "bad-next-hop"},
  };
  RouteRules rules;
  rules.excluded_domains = {"internal.example"};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const auto r =
        route_recipient(c.address, c.mailer ? std::optional<std::string_view>(*c.mailer) : std::nullopt,
                        c.host ? std::optional<std::string_view>(*c.host) : std::nullopt, rules);
    EXPECT_EQ(r.kind, c.kind);
    EXPECT_EQ(r.domain, c.domain);
    EXPECT_EQ(r.relay_host, c.relay_host);
    EXPECT_EQ(r.relay_address, c.relay_address);
    EXPECT_EQ(r.relay_mx_lookup, c.relay_mx_lookup);
    EXPECT_EQ(r.port, c.port);
    EXPECT_EQ(r.reason, c.reason);
  }
}

struct NextHopCase {
  std::string key;
  RouteKind kind;
  std::string domain;
  std::string relay_host;
  bool relay_mx_lookup;
  std::uint16_t port;
  std::string reason;
};

// Socketmap keys as Postfix (smtp_tls_policy_maps) and Sendmail (sts) send them.
TEST(RecipientRoute, NextHopKeys) {
  using K = RouteKind;
  RouteRules rules;
  rules.excluded_domains = {"excluded.example"};
  const std::vector<NextHopCase> cases{
      {"example.com", K::RecipientDomain, "example.com", "", false, 25, ""},
      {"Example.COM.", K::RecipientDomain, "example.com", "", false, 25, ""},
      {"[relay.example]:587", K::SmartHost, "relay.example", "relay.example", false, 587, ""},
      {"[relay.example]", K::SmartHost, "relay.example", "relay.example", false, 25, ""},
      {"relay.example:2525", K::SmartHost, "relay.example", "relay.example", true, 2525, ""},
      {".example.com", K::OutOfScope, "", "", false, 25, "parent-domain"},
      {"[192.0.2.1]:25", K::OutOfScope, "", "", false, 25, "address-literal"},
      {"[ipv6:2001:db8::1]", K::OutOfScope, "", "", false, 25, "address-literal"},
      {"excluded.example", K::OutOfScope, "excluded.example", "", false, 25, "excluded"},
      {"[relay.example", K::OutOfScope, "", "", false, 25, "bad-next-hop"},
      // Sendmail's "mx1:mx2" list form: the first host (as for the milter's macros).
      {"a.example:b.example", K::RecipientDomain, "a.example", "", false, 25, ""},
      {"bad_name!.example", K::OutOfScope, "", "", false, 25, "bad-next-hop"},
  };
  for (const auto& c : cases) {
    const RecipientRoute r = route_next_hop(c.key, rules);
    EXPECT_EQ(r.kind, c.kind) << c.key;
    EXPECT_EQ(r.domain, c.domain) << c.key;
    EXPECT_EQ(r.relay_host, c.relay_host) << c.key;
    EXPECT_EQ(r.relay_mx_lookup, c.relay_mx_lookup) << c.key;
    EXPECT_EQ(r.port, c.port) << c.key;
    EXPECT_EQ(r.reason, c.reason) << c.key;
  }
}

}  // namespace
}  // namespace mtasts::milter
