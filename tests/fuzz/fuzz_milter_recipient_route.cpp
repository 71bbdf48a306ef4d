// libFuzzer target: route_recipient (milter/recipient_route.h) on the RCPT
// argument and the {rcpt_mailer} / {rcpt_host} macros an MTA sends.
// Input: fields separated by NUL (macros are C strings, so NUL never occurs
// inside one): address, mailer, host, then excluded domains. A field that is
// exactly "\x01" (or missing) stands for a macro the MTA did not send.
// Checks the header contract of every route, and that a route rendered back
// into the macros (and the recipient domain into the address) routes the same.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "milter/recipient_route.h"
#include "policy/domain.h"

namespace {

using mtasts::milter::RecipientRoute;
using mtasts::milter::RouteKind;
using mtasts::milter::RouteRules;

void require(bool condition) {
  if (!condition) std::abort();
}

std::vector<std::string_view> split_fields(std::string_view input) {
  std::vector<std::string_view> fields;
  for (;;) {
    const auto nul = input.find('\0');
    fields.push_back(input.substr(0, nul));
    if (nul == std::string_view::npos) return fields;
    input.remove_prefix(nul + 1);
  }
}

std::optional<std::string_view> macro(const std::vector<std::string_view>& fields, std::size_t i) {
  if (i >= fields.size() || fields[i] == "\x01") return std::nullopt;
  return fields[i];
}

bool normalised(const std::string& name) {
  const auto again = mtasts::policy::normalize_domain(name);
  return !name.empty() && again && *again == name;
}

std::string mailer_key(std::string_view mailer) {
  while (!mailer.empty() && (mailer.front() == ' ' || mailer.front() == '\t')) mailer.remove_prefix(1);
  while (!mailer.empty() && (mailer.back() == ' ' || mailer.back() == '\t')) mailer.remove_suffix(1);
  std::string key(mailer);
  for (char& c : key) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return key;
}

bool same(const RecipientRoute& a, const RecipientRoute& b) {
  return a.kind == b.kind && a.domain == b.domain && a.relay_host == b.relay_host &&
         a.relay_address == b.relay_address && a.relay_mx_lookup == b.relay_mx_lookup && a.port == b.port &&
         a.reason == b.reason;
}

void check_contract(const RecipientRoute& r, std::optional<std::string_view> mailer,
                    std::optional<std::string_view> host, const RouteRules& rules) {
  require(r.port >= 1);
  const bool relay_empty = r.relay_host.empty() && r.relay_address.empty() && !r.relay_mx_lookup;
  switch (r.kind) {
    case RouteKind::OutOfScope: {
      static const std::set<std::string> kReasons{"transport", "excluded", "address-literal", "bad-domain"};
      require(kReasons.contains(r.reason) && relay_empty && r.port == 25);
      const bool has_domain = r.reason == "transport" || r.reason == "excluded";
      require(has_domain ? normalised(r.domain) : r.domain.empty());
      require((r.reason == "excluded") == rules.excluded_domains.contains(r.domain));
      if (r.reason == "transport")
        require(mailer && host && !rules.smtp_transports.contains(mailer_key(*mailer)));
      return;
    }
    case RouteKind::Unknown:
      require(normalised(r.domain) && !rules.excluded_domains.contains(r.domain));
      require(relay_empty && r.port == 25);
      require(r.reason == ((mailer && host) ? "bad-next-hop" : ""));
      return;
    case RouteKind::RecipientDomain:
    case RouteKind::SmartHost:
      break;
  }
  require(normalised(r.domain) && !rules.excluded_domains.contains(r.domain) && r.reason.empty());
  require(mailer && host && rules.smtp_transports.contains(mailer_key(*mailer)));
  if (r.kind == RouteKind::RecipientDomain) {
    require(relay_empty);
    return;
  }
  require(r.relay_host.empty() != r.relay_address.empty());
  if (!r.relay_host.empty()) require(normalised(r.relay_host));
  if (r.relay_mx_lookup) require(!r.relay_host.empty() && r.relay_host != r.domain);
}

// {rcpt_host} as Postfix would write this route's next hop.
std::string next_hop_text(const RecipientRoute& r) {
  const std::string port = ":" + std::to_string(r.port);
  if (r.kind == RouteKind::RecipientDomain) return r.domain + port;
  if (!r.relay_address.empty()) return "[" + r.relay_address + "]" + port;
  if (r.relay_mx_lookup) return r.relay_host + port;
  return "[" + r.relay_host + "]" + port;
}

void check_round_trip(const RecipientRoute& r, std::string_view address,
                      std::optional<std::string_view> mailer, std::optional<std::string_view> host,
                      const RouteRules& rules) {
  using mtasts::milter::route_recipient;
  if (r.domain.empty()) return;
  // The normalised domain is a fixed point: it routes as the original did.
  const std::string plain = "<postmaster@" + r.domain + ">";
  require(same(route_recipient(plain, mailer, host, rules), r));
  if (r.kind == RouteKind::RecipientDomain || r.kind == RouteKind::SmartHost) {
    const std::string hop = next_hop_text(r);
    require(same(route_recipient(address, mailer, std::string_view(hop), rules), r));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using mtasts::milter::route_recipient;
  const std::vector<std::string_view> fields =
      split_fields(std::string_view(reinterpret_cast<const char*>(data), size));
  RouteRules rules;
  for (std::size_t i = 3; i < fields.size(); ++i) {
    // Configured exclusions are normalised at config load (milter/config.h).
    if (const auto name = mtasts::policy::normalize_domain(fields[i])) rules.excluded_domains.insert(*name);
  }
  const std::string_view address = fields[0];
  const auto mailer = macro(fields, 1);
  const auto host = macro(fields, 2);
  const RecipientRoute route = route_recipient(address, mailer, host, rules);
  check_contract(route, mailer, host, rules);
  check_round_trip(route, address, mailer, host, rules);
  return 0;
}
