// Keeps MX, TLSA and address answers for their DNS TTL (capped), in front of
// an MxDns, so a warm next-hop check asks no resolver at all: each lookup
// through libunbound costs thread hand-offs even when libunbound answers
// from its own cache. Only definite answers (records, NXDOMAIN, NODATA) are
// kept; SERVFAIL, timeouts and bogus answers are asked again every time.
// Thread-safe; no I/O under its lock.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "policy/sources.h"

namespace mtasts::policy {

class MxDnsCache final : public MxDns {
 public:
  // `max_ttl`: seconds an answer is kept at most (also with a longer DNS TTL).
  MxDnsCache(MxDns& upstream, const Clock& clock, std::uint32_t max_ttl, std::size_t max_entries = 50000);

  MxAnswer lookup_mx(const std::string& domain, Deadline deadline) override;
  TlsaAnswer lookup_tlsa(const std::string& host, std::uint16_t port, Deadline deadline) override;
  DnsAnswer lookup_host_addresses(const std::string& host, Deadline deadline) override;

 private:
  template <class Answer>
  struct Slot {
    Answer answer;
    std::int64_t expires_at = 0;
  };
  template <class Answer, class Lookup>
  Answer cached(std::unordered_map<std::string, Slot<Answer>>& table, const std::string& key, Lookup lookup);

  MxDns& upstream_;
  const Clock& clock_;
  const std::uint32_t max_ttl_;
  const std::size_t max_entries_;
  std::mutex mu_;
  std::unordered_map<std::string, Slot<MxAnswer>> mx_;
  std::unordered_map<std::string, Slot<TlsaAnswer>> tlsa_;
  std::unordered_map<std::string, Slot<DnsAnswer>> addresses_;
};

}  // namespace mtasts::policy
