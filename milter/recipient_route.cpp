#include "milter/recipient_route.h"

#include <charconv>
#include <optional>

#include "policy/ascii.h"
#include "policy/domain.h"

namespace mtasts::milter {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

RecipientRoute out_of_scope(std::string domain, std::string reason) {
  RecipientRoute r;
  r.kind = RouteKind::OutOfScope;
  r.domain = std::move(domain);
  r.reason = std::move(reason);
  return r;
}

// A port as Postfix writes it: a number or a service name (the usual mail
// ones; nothing else is a mail relay's port).
std::optional<std::uint16_t> parse_port(std::string_view text) {
  const std::string name = policy::ascii_lowercase(text);
  if (name == "smtp") return 25;
  if (name == "submission") return 587;
  if (name == "submissions" || name == "smtps") return 465;
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value == 0 || value > 65535)
    return std::nullopt;
  return static_cast<std::uint16_t>(value);
}

// "[host]:port", "[host]", "host:port", "host." -> host text and port.
// Lists name the first hop first, and the rest share its transport, so the
// first decides: Postfix 3.5+ separates with commas or spaces ("[a]:587,
// [b]:587"), Sendmail with colons ("mx1.example:mx2.example", "[a]:[b]").
bool split_next_hop(std::string_view text, std::string_view& host, bool& bracketed, std::uint16_t& port) {
  text = trim(text);
  text = text.substr(0, text.find_first_of(", \t"));
  bracketed = text.starts_with('[');
  if (bracketed) {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return false;
    host = text.substr(1, close - 1);
    text.remove_prefix(close + 1);
    if (text.starts_with(":[")) text = {};  // Sendmail: "[a]:[b]"
  } else {
    const auto colon = text.find(':');
    host = text.substr(0, colon);
    text = colon == std::string_view::npos ? std::string_view{} : text.substr(colon);
    // "host:port", or Sendmail's "mx1.example:mx2.example"
    if (text.size() > 1 && !parse_port(text.substr(1))) text = {};
  }
  if (text.starts_with(':')) {
    const auto parsed = parse_port(text.substr(1));
    if (!parsed) return false;
    port = *parsed;
  } else if (!text.empty()) {
    return false;
  }
  return !host.empty();
}

RecipientRoute unreadable_next_hop(std::string domain) {
  RecipientRoute r;  // kind Unknown
  r.domain = std::move(domain);
  r.reason = "bad-next-hop";
  return r;
}

bool looks_like_ip(std::string_view host) {
  if (host.starts_with("IPv6:") || host.starts_with("ipv6:")) return true;
  return host.find(':') != std::string_view::npos ||
         host.find_first_not_of("0123456789.") == std::string_view::npos;
}

// The MTA looks up the recipient domain's MX (`own_domain`), or hands the
// mail to a relay, whose host is then the policy domain (RFC 8461 §3.4).
RecipientRoute routed_to(RecipientRoute route, const std::string& hop_name, bool bracketed, bool own_domain) {
  if (own_domain) {
    route.kind = RouteKind::RecipientDomain;
    return route;
  }
  route.kind = RouteKind::SmartHost;
  route.relay_host = hop_name;
  route.relay_mx_lookup = !bracketed;
  return route;
}

}  // namespace

RecipientRoute route_recipient(std::string_view address, std::optional<std::string_view> mailer,
                               std::optional<std::string_view> host, const RouteRules& rules) {
  address = trim(address);
  if (address.starts_with('<') && address.ends_with('>')) address = address.substr(1, address.size() - 2);
  const auto raw_domain = policy::address_domain(address);
  if (raw_domain.starts_with('[')) return out_of_scope("", "address-literal");
  const auto domain = policy::normalize_domain(raw_domain);
  if (!domain)
    return out_of_scope("", domain.error().code == "address-literal" ? "address-literal" : "bad-domain");
  if (rules.excluded_domains.contains(*domain)) return out_of_scope(*domain, "excluded");

  RecipientRoute route;
  route.domain = *domain;
  if (!mailer || !host) return route;  // Unknown: no macros (non-SMTP submission)
  if (!rules.smtp_transports.contains(policy::ascii_lowercase(trim(*mailer))))
    return out_of_scope(*domain, "transport");

  std::string_view hop;
  bool bracketed = false;
  // A next hop we cannot read is not a reason to skip the recipient: it is
  // decided like mail without macros, at end of message, and logged.
  if (!split_next_hop(*host, hop, bracketed, route.port)) return unreadable_next_hop(*domain);
  if (bracketed && looks_like_ip(hop)) {
    route.kind = RouteKind::SmartHost;
    route.relay_address = std::string(hop);
    return route;
  }
  const auto hop_name = policy::normalize_domain(hop);
  if (!hop_name) return unreadable_next_hop(*domain);
  return routed_to(std::move(route), *hop_name, bracketed, !bracketed && *hop_name == *domain);
}

RecipientRoute route_next_hop(std::string_view next_hop, const RouteRules& rules) {
  next_hop = trim(next_hop);
  if (next_hop.starts_with('.')) return out_of_scope("", "parent-domain");
  std::string_view hop;
  bool bracketed = false;
  std::uint16_t port = 25;
  if (!split_next_hop(next_hop, hop, bracketed, port)) return out_of_scope("", "bad-next-hop");
  if (bracketed && looks_like_ip(hop)) return out_of_scope("", "address-literal");
  const auto name = policy::normalize_domain(hop);
  if (!name)
    return out_of_scope("", name.error().code == "address-literal" ? "address-literal" : "bad-next-hop");
  if (rules.excluded_domains.contains(*name)) return out_of_scope(*name, "excluded");
  RecipientRoute route;
  route.domain = *name;
  route.port = port;
  return routed_to(std::move(route), *name, bracketed, !bracketed && port == 25);
}

}  // namespace mtasts::milter
