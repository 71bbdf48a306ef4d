// MxDnsCache: definite answers kept for min(TTL, cap); failures never kept.
#include "policy/engine/mx_dns_cache.h"

#include <gtest/gtest.h>

#include "fakes/fake_next_hop.h"
#include "fakes/fake_sources.h"

namespace mtasts::testing {
namespace {

Deadline later() { return std::chrono::steady_clock::now() + std::chrono::seconds(1); }

MxAnswer mx_with(DnsStatus status, DnsSecurity security, std::uint32_t ttl) {
  MxAnswer a;
  a.status = status;
  a.security = security;
  if (status == DnsStatus::Ok) a.records = {{10, "mx.example.com"}};
  a.ttl = ttl;
  return a;
}

struct CacheCase {
  std::string name;
  MxAnswer answer;
  std::int64_t advance;  // seconds between the two lookups
  int upstream_calls;    // after both lookups
};

TEST(MxDnsCache, KeepsDefiniteAnswersForTheirTtl) {
  const std::vector<CacheCase> cases{
      {"ok within ttl", mx_with(DnsStatus::Ok, DnsSecurity::Secure, 30), 29, 1},
      {"ok after ttl", mx_with(DnsStatus::Ok, DnsSecurity::Secure, 30), 30, 2},
      {"ttl cap kept", mx_with(DnsStatus::Ok, DnsSecurity::Secure, 3600), 59, 1},
      {"ttl capped at 60", mx_with(DnsStatus::Ok, DnsSecurity::Insecure, 3600), 61, 2},
      {"nxdomain kept", mx_with(DnsStatus::NxDomain, DnsSecurity::Insecure, 30), 10, 1},
      {"nodata kept", mx_with(DnsStatus::NoData, DnsSecurity::Secure, 30), 10, 1},
      {"ttl zero not kept", mx_with(DnsStatus::Ok, DnsSecurity::Insecure, 0), 0, 2},
      {"servfail not kept", mx_with(DnsStatus::ServFail, DnsSecurity::Insecure, 300), 0, 2},
      {"timeout not kept", mx_with(DnsStatus::Timeout, DnsSecurity::Insecure, 300), 0, 2},
      {"bogus not kept", mx_with(DnsStatus::ServFail, DnsSecurity::Bogus, 300), 0, 2},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    FakeMxDns upstream;
    FakeClock clock;
    MxDnsCache cache(upstream, clock, 60);
    upstream.set_mx("example.com", c.answer);
    const auto first = cache.lookup_mx("example.com", later());
    clock.advance(c.advance);
    const auto second = cache.lookup_mx("example.com", later());
    EXPECT_EQ(upstream.mx_calls(), c.upstream_calls);
    EXPECT_EQ(second.status, first.status);
    EXPECT_EQ(second.records.size(), first.records.size());
  }
}

TEST(MxDnsCache, TlsaIsKeyedByPortAndAddressesByHost) {
  FakeMxDns upstream;
  FakeClock clock;
  MxDnsCache cache(upstream, clock, 60);
  TlsaAnswer tlsa{DnsStatus::Ok, DnsSecurity::Secure, {TlsaRecord{3, 1, 1, {1, 2, 3}}}};
  tlsa.ttl = 120;
  upstream.set_tlsa("mx.example.com", tlsa);
  cache.lookup_tlsa("mx.example.com", 25, later());
  cache.lookup_tlsa("mx.example.com", 25, later());
  cache.lookup_tlsa("mx.example.com", 587, later());
  EXPECT_EQ(upstream.tlsa_calls(), 2);

  upstream.set_addresses("mx.example.com", {"192.0.2.1"});  // the fake's answers carry ttl 0
  cache.lookup_host_addresses("mx.example.com", later());
  cache.lookup_host_addresses("mx.example.com", later());
  EXPECT_EQ(upstream.address_calls(), 2) << "ttl 0: never kept";
}

TEST(MxDnsCache, FullTableStartsOver) {
  FakeMxDns upstream;
  FakeClock clock;
  MxDnsCache cache(upstream, clock, 60, 2);
  for (const char* d : {"a.example", "b.example"})
    upstream.set_mx(d, mx_with(DnsStatus::Ok, DnsSecurity::Insecure, 60));
  upstream.set_mx("c.example", mx_with(DnsStatus::Ok, DnsSecurity::Insecure, 60));
  for (const char* d : {"a.example", "b.example", "c.example", "c.example"}) cache.lookup_mx(d, later());
  EXPECT_EQ(upstream.mx_calls(), 3);
  cache.lookup_mx("a.example", later());
  EXPECT_EQ(upstream.mx_calls(), 4) << "the table was emptied when c.example arrived";
}

}  // namespace
}  // namespace mtasts::testing
