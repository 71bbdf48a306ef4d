// _smtp._tls lookups; see the header.
#include "milter/tlsrpt_lookup.h"

#include <chrono>

#include "policy/tlsrpt_record.h"

namespace mtasts::milter {
namespace {

constexpr auto kLookupTimeout = std::chrono::seconds(10);

policy::DnsAnswer lookup_tlsrpt_txt(policy::Dns& dns, const std::string& domain) {
  return dns.lookup_txt("_smtp._tls." + domain, std::chrono::steady_clock::now() + kLookupTimeout);
}

}  // namespace

DestinationAnswer DnsDestinationLookup::lookup(const std::string& policy_domain) {
  const policy::DnsAnswer answer = lookup_tlsrpt_txt(dns_, policy_domain);
  using Kind = DestinationAnswer::Kind;
  if (answer.security == policy::DnsSecurity::Bogus) return {Kind::Temporary, {}, "dnssec-bogus"};
  if (answer.status == policy::DnsStatus::NxDomain || answer.status == policy::DnsStatus::NoData)
    return {Kind::None, {}, std::string(policy::to_string(answer.status))};
  if (answer.status != policy::DnsStatus::Ok)
    return {Kind::Temporary, {}, std::string(policy::to_string(answer.status))};
  auto record = policy::select_tlsrpt_record(answer.records);
  if (!record) return {Kind::None, {}, record.error().code + ": " + record.error().detail};
  return {Kind::Found, *record, ""};
}

std::optional<std::string> tlsrpt_record_text(policy::Dns& dns, const std::string& domain) {
  const policy::DnsAnswer answer = lookup_tlsrpt_txt(dns, domain);
  if (answer.security == policy::DnsSecurity::Bogus || answer.status != policy::DnsStatus::Ok)
    return std::nullopt;
  if (!policy::select_tlsrpt_record(answer.records)) return std::nullopt;
  // Exactly one candidate is valid (select_tlsrpt_record): that one.
  for (const std::string& text : answer.records) {
    if (policy::parse_tlsrpt_record(text)) return text;
  }
  return std::nullopt;
}

}  // namespace mtasts::milter
