// Where the MTA will send one recipient, from the RCPT-stage macros.
// Postfix sends {rcpt_mailer} = smtp | relay | local ..., {rcpt_host} = the
// next hop without a trailing dot ("example.com", "[relay.example]:587", and
// from 3.5 on possibly a list "[a]:587, [b]:587"). Sendmail sends esmtp |
// smtp | relay, "example.com." with a trailing dot, or "[relay.example]" with
// a smart host. RFC 8461 §3.4: with a smart host, the policy that applies is
// the smart host's own domain's ("next_hop=relay" in the log).
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>

namespace mtasts::milter {

enum class RouteKind {
  RecipientDomain,  // MX lookup of the recipient domain
  SmartHost,        // a relay; `relay_host` says which
  Unknown,          // no macros: decide at end of message
  OutOfScope,       // not an SMTP transport, excluded, address literal ...
};

struct RecipientRoute {
  RouteKind kind = RouteKind::Unknown;
  std::string domain;            // normalised recipient domain ("" when none)
  std::string relay_host;        // SmartHost: normalised host name ("" for an IP literal)
  std::string relay_address;     // SmartHost given as an IP literal ("[192.0.2.1]")
  bool relay_mx_lookup = false;  // SmartHost not in brackets: the MTA looks up its MX
  std::uint16_t port = 25;
  std::string reason;  // why OutOfScope: "transport", "excluded", "address-literal", "bad-domain", ...
};

struct RouteRules {
  std::set<std::string> smtp_transports{"smtp", "relay", "esmtp", "smtp8", "dsmtp"};
  std::set<std::string> excluded_domains;  // normalised; exact match
};

// `address` is {rcpt_addr} or the RCPT argument ("<user@example.com>");
// `mailer` and `host` are nullopt when the MTA sent no such macro.
RecipientRoute route_recipient(std::string_view address, std::optional<std::string_view> mailer,
                               std::optional<std::string_view> host, const RouteRules& rules);

// A next hop on its own, as Postfix passes it to smtp_tls_policy_maps (and
// Sendmail to its sts map): "example.com" (MX lookup; RecipientDomain),
// "example.com:2525" or "relay.example:587" (MX lookup, another port),
// "[relay.example]" or "[relay.example]:587" (the host itself); SmartHost
// for all but the first, with relay_host as the policy domain (RFC 8461
// §3.4). A trailing dot is dropped (Sendmail). OutOfScope: an IP literal
// ("address-literal"), an excluded domain, a parent-domain lookup
// (".example.com", which Postfix tries after the domain: RFC 8461 §3.1
// never walks the tree; "parent-domain"), or unreadable ("bad-next-hop").
RecipientRoute route_next_hop(std::string_view next_hop, const RouteRules& rules);

}  // namespace mtasts::milter
