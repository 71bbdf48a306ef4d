#include "policy/engine/mx_dns_cache.h"

#include <algorithm>

namespace mtasts::policy {
namespace {

template <class Answer>
bool definite(const Answer& answer) {
  if (answer.security == DnsSecurity::Bogus) return false;
  return answer.status == DnsStatus::Ok || answer.status == DnsStatus::NxDomain ||
         answer.status == DnsStatus::NoData;
}

}  // namespace

MxDnsCache::MxDnsCache(MxDns& upstream, const Clock& clock, std::uint32_t max_ttl, std::size_t max_entries)
    : upstream_(upstream),
      clock_(clock),
      max_ttl_(max_ttl),
      max_entries_(max_entries == 0 ? 1 : max_entries) {}

template <class Answer, class Lookup>
Answer MxDnsCache::cached(std::unordered_map<std::string, Slot<Answer>>& table, const std::string& key,
                          Lookup lookup) {
  const std::int64_t now = clock_.now();
  {
    std::lock_guard lock(mu_);
    if (const auto it = table.find(key);
        it != table.end() && it->second.expires_at > now &&
        it->second.expires_at - now <= max_ttl_)  // a clock stepped back does not stretch a TTL
      return it->second.answer;
  }
  Answer answer = lookup();  // I/O outside the lock
  const std::uint32_t keep = std::min(answer.ttl, max_ttl_);
  if (keep == 0 || !definite(answer)) return answer;
  std::lock_guard lock(mu_);
  // A full table is simply emptied: refilling costs one lookup per name.
  if (table.size() >= max_entries_) table.clear();
  table[key] = Slot<Answer>{answer, now + keep};
  return answer;
}

MxAnswer MxDnsCache::lookup_mx(const std::string& domain, Deadline deadline) {
  return cached(mx_, domain, [&] { return upstream_.lookup_mx(domain, deadline); });
}

TlsaAnswer MxDnsCache::lookup_tlsa(const std::string& host, std::uint16_t port, Deadline deadline) {
  return cached(tlsa_, std::to_string(port) + "/" + host,
                [&] { return upstream_.lookup_tlsa(host, port, deadline); });
}

DnsAnswer MxDnsCache::lookup_host_addresses(const std::string& host, Deadline deadline) {
  return cached(addresses_, host, [&] { return upstream_.lookup_host_addresses(host, deadline); });
}

}  // namespace mtasts::policy
