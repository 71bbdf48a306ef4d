// UnboundDns (policy/net/unbound_dns.h). Two modes:
// - hermetic (default): configuration errors, built-in local zones, and a
//   loopback UDP socket that never answers, to check deadlines and cancels;
// - live, when MTASTS_DNS_STUB ("test=127.0.1.1") and MTASTS_DNS_TA (trust
//   anchor file) are set by tests/integration/unbound_dns_smoke.sh, which
//   serves secure.test (signed), bogus.test (signed, then tampered) and
//   plain.test (unsigned) from NSD inside a network namespace.
#include "policy/net/unbound_dns.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace mtasts::policy::net {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

std::optional<std::string> env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string{value};
}

bool live() { return env("MTASTS_DNS_STUB") && env("MTASTS_DNS_TA"); }

long long ms_since(Clock::time_point start) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
}

// A UDP socket on 127.0.0.9 that receives queries and never answers.
class BlackHole {
 public:
  BlackHole() : fd_(::socket(AF_INET, SOCK_DGRAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(0x7f000009);
    socklen_t len = sizeof addr;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      throw std::runtime_error("cannot bind the black-hole socket");
    }
    port_ = ntohs(addr.sin_port);
  }
  BlackHole(const BlackHole&) = delete;
  BlackHole& operator=(const BlackHole&) = delete;
  ~BlackHole() { ::close(fd_); }
  std::string stub(const std::string& zone) const {
    return zone + "=127.0.0.9@" + std::to_string(port_);
  }

 private:
  int fd_;
  int port_ = 0;
};

UnboundConfig hermetic_config(std::vector<std::string> stubs = {}) {
  UnboundConfig config;
  config.use_resolv_conf = false;
  config.stub_zones = std::move(stubs);
  return config;
}

// ---------------------------------------------------------------- hermetic

TEST(UnboundDnsConfig, BadConfigurationThrows) {
  const std::string garbage = ::testing::TempDir() + "/garbage.key";
  std::ofstream{garbage} << "this is not a trust anchor\n";
  struct Case {
    const char* what;
    UnboundConfig config;
  };
  const std::vector<Case> cases = {
      {"missing anchor file", [] {
         auto c = hermetic_config();
         c.trust_anchor_files = {"/nonexistent/ta.key"};
         return c;
       }()},
      {"garbage anchor file", [&] {
         auto c = hermetic_config();
         c.trust_anchor_files = {garbage};
         return c;
       }()},
      {"stub without '='", hermetic_config({"test"})},
      {"stub without zone", hermetic_config({"=127.0.0.1"})},
      {"stub without address", hermetic_config({"test="})},
      {"stub with bad address", hermetic_config({"test=not-an-address"})},
      {"bad forwarder", [] {
         auto c = hermetic_config();
         c.forwarders = {"300.1.2.3"};
         return c;
       }()},
  };
  for (const auto& c : cases) {
    EXPECT_THROW(UnboundDns{c.config}, std::runtime_error) << c.what;
  }
  std::remove(garbage.c_str());
}

TEST(UnboundDnsConfig, GoodConfigurationsStart) {
  const std::vector<UnboundConfig> cases = {
      hermetic_config(),
      hermetic_config({"test=127.0.0.9@1", "example=127.0.0.10"}),
      [] {
        auto c = hermetic_config();
        c.forwarders = {"127.0.0.9", "127.0.0.9@5353"};
        return c;
      }(),
  };
  for (const auto& config : cases) {
    EXPECT_NO_THROW(UnboundDns{config});
  }
}

// libunbound's built-in local zones answer without any traffic.
TEST(UnboundDnsHermetic, BuiltInZones) {
  UnboundDns dns{hermetic_config()};
  const auto deadline = [] { return Clock::now() + milliseconds(2000); };

  const DnsAnswer addresses = dns.lookup_addresses("localhost", deadline());
  EXPECT_EQ(addresses.status, DnsStatus::Ok);
  EXPECT_EQ(addresses.records, (std::vector<std::string>{"127.0.0.1", "::1"}));  // IPv4 first

  struct Case {
    const char* name;
    DnsStatus status;
  };
  const std::vector<Case> cases = {
      {"localhost", DnsStatus::NoData},            // no TXT at localhost
      {"nothing.invalid", DnsStatus::NxDomain},    // RFC 6761 §6.4
  };
  for (const auto& c : cases) {
    EXPECT_EQ(dns.lookup_txt(c.name, deadline()).status, c.status) << c.name;
  }
  EXPECT_TRUE(dns.dnssec_self_test(deadline()));  // empty name: skipped
}

// A stub that never answers: every lookup ends at its deadline as Timeout.
TEST(UnboundDnsHermetic, DeadlineIsRespected) {
  const BlackHole hole;
  UnboundDns dns{hermetic_config({hole.stub("test")})};
  constexpr long long kSlackMs = 1000;  // generous: shared 2-core machines
  const std::vector<int> deadlines_ms = {0, 50, 200, 600};
  for (const int deadline_ms : deadlines_ms) {
    for (const bool addresses : {false, true}) {
      const auto start = Clock::now();
      const auto deadline = start + milliseconds(deadline_ms);
      const DnsAnswer answer = addresses ? dns.lookup_addresses("x.test", deadline)
                                         : dns.lookup_txt("mta.x.test", deadline);
      const long long elapsed = ms_since(start);
      std::printf("measure deadline_ms=%d addresses=%d elapsed_ms=%lld\n", deadline_ms,
                  addresses ? 1 : 0, elapsed);
      EXPECT_EQ(answer.status, DnsStatus::Timeout) << deadline_ms;
      EXPECT_TRUE(answer.records.empty());
      EXPECT_GE(elapsed, deadline_ms);
      EXPECT_LT(elapsed, deadline_ms + kSlackMs);
    }
  }
}

// 127.0.0.9 port 1: nothing listens; the lookup fails or times out by its
// deadline, never later.
TEST(UnboundDnsHermetic, UnreachableStubEndsByDeadline) {
  UnboundDns dns{hermetic_config({"test=127.0.0.9@1"})};
  const auto start = Clock::now();
  const DnsAnswer answer = dns.lookup_txt("_mta-sts.x.test", start + milliseconds(800));
  const long long elapsed = ms_since(start);
  std::printf("measure unreachable elapsed_ms=%lld status=%d\n", elapsed,
              static_cast<int>(answer.status));
  EXPECT_TRUE(answer.status == DnsStatus::Timeout || answer.status == DnsStatus::ServFail);
  EXPECT_LT(elapsed, 800 + 1000);
}

// Many threads time out at once, racing their cancels against libunbound;
// then the object is destroyed with cancelled queries still in flight.
TEST(UnboundDnsHermetic, ConcurrentTimeoutsAndShutdown) {
  const BlackHole hole;
  std::atomic<int> timeouts{0};
  std::atomic<int> others{0};
  const auto start = Clock::now();
  {
    UnboundDns dns{hermetic_config({hole.stub("test")})};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 20; ++i) {
          const auto deadline = Clock::now() + milliseconds((t * 20 + i) % 25);
          const std::string name = "n" + std::to_string(i) + ".t" + std::to_string(t) + ".test";
          const auto answer = (i % 2 == 0) ? dns.lookup_txt(name, deadline)
                                           : dns.lookup_addresses(name, deadline);
          (answer.status == DnsStatus::Timeout ? timeouts : others)++;
        }
      });
    }
    for (auto& thread : threads) thread.join();
  }
  const long long elapsed = ms_since(start);
  std::printf("measure concurrent lookups=160 elapsed_ms_incl_shutdown=%lld\n", elapsed);
  EXPECT_EQ(timeouts.load(), 160);
  EXPECT_EQ(others.load(), 0);
  EXPECT_LT(elapsed, 8 * 20 * 25 + 2000);  // far below: they run in parallel
}

// -------------------------------------------------------------------- live
// Instantiated only when the smoke script provides the servers; without
// them the suites have no parameters and do not exist.

UnboundConfig live_config(std::string self_test = "") {
  UnboundConfig config;
  config.use_resolv_conf = false;
  config.stub_zones = {env("MTASTS_DNS_STUB").value_or("")};
  config.trust_anchor_files = {env("MTASTS_DNS_TA").value_or("")};
  config.self_test_name = std::move(self_test);
  return config;
}

Clock::time_point live_deadline() { return Clock::now() + milliseconds(5000); }

struct LiveCase {
  const char* name;
  bool addresses;  // lookup_addresses instead of lookup_txt
  DnsStatus status;
  DnsSecurity security;
  std::vector<std::string> records;
};

void PrintTo(const LiveCase& c, std::ostream* out) {
  *out << c.name << (c.addresses ? " A+AAAA" : " TXT");
}

std::vector<LiveCase> live_cases() {
  if (!live()) return {};
  return {
      {"_mta-sts.secure.test", false, DnsStatus::Ok, DnsSecurity::Secure,
       {"v=STSv1; id=20240101T000000;"}},
      {"multi.secure.test", false, DnsStatus::Ok, DnsSecurity::Secure, {"v=STSv1; id=split;"}},
      {"nothere.secure.test", false, DnsStatus::NxDomain, DnsSecurity::Secure, {}},
      {"www.secure.test", false, DnsStatus::NoData, DnsSecurity::Secure, {}},
      {"www.secure.test", true, DnsStatus::Ok, DnsSecurity::Secure, {"127.1.0.1", "2001:db8::1"}},
      {"v4only.secure.test", true, DnsStatus::Ok, DnsSecurity::Secure, {"127.1.0.2"}},
      {"v6only.secure.test", true, DnsStatus::Ok, DnsSecurity::Secure, {"2001:db8::2"}},
      {"nothere.secure.test", true, DnsStatus::NxDomain, DnsSecurity::Secure, {}},
      {"_mta-sts.bogus.test", false, DnsStatus::ServFail, DnsSecurity::Bogus, {}},
      {"www.bogus.test", true, DnsStatus::Ok, DnsSecurity::Secure,  // untouched
       {"127.1.0.4", "2001:db8::4"}},
      {"_mta-sts.plain.test", false, DnsStatus::Ok, DnsSecurity::Insecure,
       {"v=STSv1; id=plain1;"}},
      {"nothere.plain.test", false, DnsStatus::NxDomain, DnsSecurity::Insecure, {}},
      {"www.plain.test", false, DnsStatus::NoData, DnsSecurity::Insecure, {}},
      {"www.plain.test", true, DnsStatus::Ok, DnsSecurity::Insecure, {"127.1.0.3", "2001:db8::3"}},
  };
}

void expect_case(UnboundDns& dns, const LiveCase& c) {
  const DnsAnswer answer = c.addresses ? dns.lookup_addresses(c.name, live_deadline())
                                       : dns.lookup_txt(c.name, live_deadline());
  const std::string where = std::string{c.name} + (c.addresses ? " A+AAAA" : " TXT");
  EXPECT_EQ(to_string(answer.status), to_string(c.status)) << where;
  EXPECT_EQ(to_string(answer.security), to_string(c.security)) << where;
  EXPECT_EQ(answer.records, c.records) << where;
  EXPECT_EQ(answer.why_bogus.empty(), c.security != DnsSecurity::Bogus)
      << where << " why_bogus=" << answer.why_bogus;
  if (!answer.why_bogus.empty()) {
    std::printf("why_bogus %s: %s\n", where.c_str(), answer.why_bogus.c_str());
  }
}

class UnboundDnsLive : public ::testing::TestWithParam<LiveCase> {};
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(UnboundDnsLive);

TEST_P(UnboundDnsLive, AnswerKeepsSecurityApart) {
  UnboundDns dns{live_config()};
  expect_case(dns, GetParam());
}
INSTANTIATE_TEST_SUITE_P(Zones, UnboundDnsLive, ::testing::ValuesIn(live_cases()));

// The whole table from many threads at once on one resolver, cold cache.
class UnboundDnsLiveConcurrent : public ::testing::TestWithParam<int> {};
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(UnboundDnsLiveConcurrent);

TEST_P(UnboundDnsLiveConcurrent, SameAnswersFromManyThreads) {
  UnboundDns dns{live_config()};
  const auto cases = live_cases();
  std::vector<std::thread> threads;
  for (int t = 0; t < GetParam(); ++t) {
    threads.emplace_back([&] {
      for (const auto& c : cases) expect_case(dns, c);
    });
  }
  for (auto& thread : threads) thread.join();
}
INSTANTIATE_TEST_SUITE_P(Threads, UnboundDnsLiveConcurrent,
                         ::testing::ValuesIn(live() ? std::vector<int>{2, 8}
                                                    : std::vector<int>{}));

struct SelfTestCase {
  const char* name;
  bool secure;
};

void PrintTo(const SelfTestCase& c, std::ostream* out) { *out << '"' << c.name << '"'; }

std::vector<SelfTestCase> self_test_cases() {
  if (!live()) return {};
  return {
      {"secure.test", true},           // zone apex: DNSKEY
      {"www.secure.test", true},       // not an apex: signed NODATA, then A
      {"bogus.test", true},            // its keys are fine; only a TXT is tampered
      {"plain.test", false},           // unsigned
      {"nothere.secure.test", false},  // does not exist
      {"", true},                      // skipped
  };
}

class UnboundDnsLiveSelfTest : public ::testing::TestWithParam<SelfTestCase> {};
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(UnboundDnsLiveSelfTest);

TEST_P(UnboundDnsLiveSelfTest, ReportsWhetherDnssecWorks) {
  UnboundDns dns{live_config(GetParam().name)};
  EXPECT_EQ(dns.dnssec_self_test(live_deadline()), GetParam().secure);
}
INSTANTIATE_TEST_SUITE_P(Names, UnboundDnsLiveSelfTest, ::testing::ValuesIn(self_test_cases()));

}  // namespace
}  // namespace mtasts::policy::net
