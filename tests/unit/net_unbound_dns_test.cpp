// UnboundDns (policy/net/unbound_dns.h). Two modes:
// - hermetic (default): configuration errors, built-in local zones, a
//   loopback UDP socket that never answers, to check deadlines and cancels,
//   and a loopback fake authority that serves crafted MX / TLSA rdata
//   (compression pointers, empty and truncated rdata) that no real server
//   would, to see what reaches the parser through libunbound;
// - live (every suite named *Live*), when MTASTS_DNS_STUB ("test=127.0.1.1")
//   and MTASTS_DNS_TA (trust anchor file) are set by
//   tests/integration/unbound_dns_smoke.sh, which serves secure.test (signed),
//   bogus.test (signed, then tampered) and plain.test (unsigned) from NSD
//   inside a network namespace and runs only these suites. Without the
//   variables every live test is skipped, never passed; ctest leaves them out
//   (tests/CMakeLists.txt).
#include "policy/net/unbound_dns.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <poll.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <utility>
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
  std::string stub(const std::string& zone) const { return zone + "=127.0.0.9@" + std::to_string(port_); }

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

// Comparable views of the answer types.
using MxView = std::vector<std::pair<int, std::string>>;
using TlsaView = std::vector<std::tuple<int, int, int, std::vector<std::uint8_t>>>;

MxView view(const std::vector<MxRecord>& records) {
  MxView out;
  for (const auto& r : records) out.emplace_back(r.preference, r.host);
  return out;
}

TlsaView view(const std::vector<TlsaRecord>& records) {
  TlsaView out;
  for (const auto& r : records) out.emplace_back(r.usage, r.selector, r.matching_type, r.data);
  std::sort(out.begin(), out.end());  // RRset order is not defined
  return out;
}

// One resource record of the fake authority: rdata as raw bytes.
struct FakeRr {
  std::string owner;  // lower case, no trailing dot
  std::uint16_t type;
  std::string rdata;
};

std::string u16(unsigned value) {
  return {static_cast<char>((value >> 8) & 0xff), static_cast<char>(value & 0xff)};
}

// "a.example" -> "\1a\7example\0"
std::string wire(std::string_view name) {
  std::string out;
  while (!name.empty()) {
    const auto dot = std::min(name.find('.'), name.size());
    out += static_cast<char>(dot);
    out += name.substr(0, dot);
    name.remove_prefix(std::min(dot + 1, name.size()));
  }
  return out + '\0';
}

// The question of a query: lower-case name, type, end offset.
struct Question {
  std::string name;
  std::uint16_t type = 0;
  std::size_t end = 0;
};

std::optional<Question> parse_question(std::string_view query) {
  constexpr std::size_t kHeader = 12;
  Question q;
  std::size_t pos = kHeader;
  while (pos < query.size() && query[pos] != '\0') {
    const std::size_t len = static_cast<unsigned char>(query[pos++]);
    if (len > 63 || len > query.size() - pos) return std::nullopt;
    if (!q.name.empty()) q.name += '.';
    for (const char c : query.substr(pos, len)) {
      q.name += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    pos += len;
  }
  if (query.size() < kHeader || query.size() - pos < 5) return std::nullopt;
  q.type = static_cast<std::uint16_t>((static_cast<unsigned char>(query[pos + 1]) << 8) |
                                      static_cast<unsigned char>(query[pos + 2]));
  q.end = pos + 5;
  return q;
}

// A UDP authority on 127.0.0.10 answering from a table (AA, answers owned by
// the question name via pointer 0xC00C) and NODATA for anything else.
class FakeAuthority {
 public:
  explicit FakeAuthority(std::vector<FakeRr> rrs)
      : rrs_(std::move(rrs)), fd_(::socket(AF_INET, SOCK_DGRAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(0x7f00000a);
    socklen_t len = sizeof addr;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      throw std::runtime_error("cannot bind the fake authority");
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread{[this] { serve(); }};
  }
  FakeAuthority(const FakeAuthority&) = delete;
  FakeAuthority& operator=(const FakeAuthority&) = delete;
  ~FakeAuthority() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  std::string stub(const std::string& zone) const { return zone + "=127.0.0.10@" + std::to_string(port_); }

 private:
  void serve() {
    pollfd pfd{fd_, POLLIN, 0};
    while (!stop_) {
      if (::poll(&pfd, 1, 20) <= 0) continue;
      std::string buffer(4096, '\0');
      sockaddr_in peer{};
      socklen_t peer_len = sizeof peer;
      const ssize_t n =
          ::recvfrom(fd_, buffer.data(), buffer.size(), 0, reinterpret_cast<sockaddr*>(&peer), &peer_len);
      if (n <= 0) continue;
      buffer.resize(static_cast<std::size_t>(n));
      const std::string reply = answer(buffer);
      if (reply.empty()) continue;
      ::sendto(fd_, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&peer), peer_len);
    }
  }

  std::string answer(std::string_view query) const {
    const auto q = parse_question(query);
    if (!q) return {};
    std::string rrs;
    unsigned count = 0;
    for (const auto& rr : rrs_) {
      if (rr.owner != q->name || rr.type != q->type) continue;
      const std::string ttl = u16(0) + u16(300);
      rrs +=
          "\xc0\x0c" + u16(rr.type) + u16(1) + ttl + u16(static_cast<unsigned>(rr.rdata.size())) + rr.rdata;
      ++count;
    }
    const char flags = static_cast<char>(0x84 | (query[2] & 0x01));  // QR AA, RD echoed
    return std::string{query.substr(0, 2)} + flags + '\0' + u16(1) + u16(count) + u16(0) + u16(0) +
           std::string{query.substr(12, q->end - 12)} + rrs;
  }

  const std::vector<FakeRr> rrs_;
  int fd_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// The fake zone is not under any anchor (insecure); the anchor file only
// replaces the unreachable root anchor.
UnboundConfig fake_config(const FakeAuthority& fake) {
  const std::string anchor = ::testing::TempDir() + "/unrelated-anchor.ds";
  std::ofstream{anchor} << "unrelated.example. 3600 IN DS 12345 13 2 " << std::string(64, 'a') << "\n";
  auto config = hermetic_config({fake.stub("test")});
  config.trust_anchor_files = {anchor};
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
      {"missing anchor file",
       [] {
         auto c = hermetic_config();
         c.trust_anchor_files = {"/nonexistent/ta.key"};
         return c;
       }()},
      {"garbage anchor file",
       [&] {
         auto c = hermetic_config();
         c.trust_anchor_files = {garbage};
         return c;
       }()},
      {"stub without '='", hermetic_config({"test"})},
      {"stub without zone", hermetic_config({"=127.0.0.1"})},
      {"stub without address", hermetic_config({"test="})},
      {"stub with bad address", hermetic_config({"test=not-an-address"})},
      {"bad forwarder",
       [] {
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
      {"localhost", DnsStatus::NoData},          // no TXT at localhost
      {"nothing.invalid", DnsStatus::NxDomain},  // RFC 6761 §6.4
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
      const DnsAnswer answer =
          addresses ? dns.lookup_addresses("x.test", deadline) : dns.lookup_txt("mta.x.test", deadline);
      const long long elapsed = ms_since(start);
      std::printf("measure deadline_ms=%d addresses=%d elapsed_ms=%lld\n", deadline_ms, addresses ? 1 : 0,
                  elapsed);
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
  std::printf("measure unreachable elapsed_ms=%lld status=%d\n", elapsed, static_cast<int>(answer.status));
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
          const auto answer =
              (i % 2 == 0) ? dns.lookup_txt(name, deadline) : dns.lookup_addresses(name, deadline);
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

std::string tlsa_rdata(int usage, int selector, int mtype, std::string_view data) {
  return std::string{static_cast<char>(usage), static_cast<char>(selector), static_cast<char>(mtype)} +
         std::string{data};
}

std::vector<FakeRr> crafted_records() {
  constexpr std::uint16_t kMx = 15;
  constexpr std::uint16_t kTlsa = 52;
  const std::string digest(32, '\xab');
  const std::string nul(1, '\0');
  return {
      // 0xC00C points at the question name: libunbound must expand it.
      {"mx.fake.test", kMx, u16(20) + wire("MX2.Fake.TEST")},
      {"mx.fake.test", kMx, u16(10) + "\xc0\x0c"},
      {"mx.fake.test", kMx, u16(10) + wire("a.example")},
      {"empty.fake.test", kMx, ""},  // no preference, no name
      {"empty.fake.test", kMx, u16(7) + wire("good.example")},
      {"trailing.fake.test", kMx, u16(5) + wire("junk.example") + "x"},  // bytes after the name
      {"trailing.fake.test", kMx, u16(7) + wire("good.example")},
      {"underscore.fake.test", kMx, u16(6) + wire("under_score.example")},  // not LDH
      {"underscore.fake.test", kMx, u16(7) + wire("good.example")},
      {"junk.fake.test", kMx,
       u16(1) +
           "\x03"
           "a.b" +
           nul},                                                   // a dot inside a label
      {"junk.fake.test", kMx, u16(2) + wire("ok.example") + nul},  // a second root label
      {"null.fake.test", kMx, u16(0) + wire("")},
      {"nullmixed.fake.test", kMx, u16(0) + wire("")},
      {"nullmixed.fake.test", kMx, u16(10) + wire("mx.example")},
      {"rootpref.fake.test", kMx, u16(10) + wire("")},
      {"_25._tcp.mx.fake.test", kTlsa, tlsa_rdata(3, 1, 1, digest)},
      {"_25._tcp.mx.fake.test", kTlsa, tlsa_rdata(3, 1, 1, "")},  // no data
      {"_25._tcp.mx.fake.test", kTlsa, "\x03\x01"},               // truncated
      {"_25._tcp.short.fake.test", kTlsa, "\x02"},
      {"_443._tcp.mx.fake.test", kTlsa, tlsa_rdata(2, 0, 2, "\x01\x02")},
  };
}

Clock::time_point hermetic_deadline() { return Clock::now() + milliseconds(3000); }

// What survives libunbound and our parser: names expanded and lower-cased,
// malformed records dropped one by one, all-malformed answers a ServFail.
TEST(UnboundDnsHermetic, CraftedMxRdata) {
  const FakeAuthority fake{crafted_records()};
  UnboundDns dns{fake_config(fake)};
  struct Case {
    const char* domain;
    DnsStatus status;
    MxView records;
    bool null_mx;
  };
  const std::vector<Case> cases = {
      {"mx.fake.test",
       DnsStatus::Ok,
       {{10, "a.example"}, {10, "mx.fake.test"}, {20, "mx2.fake.test"}},
       false},
      // libunbound 1.17 refuses the whole message: it never reaches us.
      {"empty.fake.test", DnsStatus::ServFail, {}, false},
      {"trailing.fake.test", DnsStatus::Ok, {{7, "good.example"}}, false},
      {"underscore.fake.test", DnsStatus::Ok, {{7, "good.example"}}, false},
      {"junk.fake.test", DnsStatus::ServFail, {}, false},
      {"null.fake.test", DnsStatus::Ok, {}, true},
      {"nullmixed.fake.test", DnsStatus::Ok, {{0, ""}, {10, "mx.example"}}, false},
      {"rootpref.fake.test", DnsStatus::Ok, {{10, ""}}, false},
      {"nothing.fake.test", DnsStatus::NoData, {}, false},
  };
  for (const auto& c : cases) {
    const MxAnswer answer = dns.lookup_mx(c.domain, hermetic_deadline());
    EXPECT_EQ(to_string(answer.status), to_string(c.status)) << c.domain;
    EXPECT_EQ(to_string(answer.security), "insecure") << c.domain;
    EXPECT_EQ(view(answer.records), c.records) << c.domain;
    EXPECT_EQ(answer.null_mx, c.null_mx) << c.domain;
  }
}

TEST(UnboundDnsHermetic, CraftedTlsaRdata) {
  const FakeAuthority fake{crafted_records()};
  UnboundDns dns{fake_config(fake)};
  struct Case {
    const char* host;
    std::uint16_t port;
    DnsStatus status;
    TlsaView records;
  };
  const std::vector<Case> cases = {
      {"mx.fake.test", 25, DnsStatus::Ok, {{3, 1, 1, std::vector<std::uint8_t>(32, 0xab)}}},
      {"mx.fake.test", 443, DnsStatus::Ok, {{2, 0, 2, {1, 2}}}},
      {"short.fake.test", 25, DnsStatus::ServFail, {}},
      {"nothing.fake.test", 25, DnsStatus::NoData, {}},
  };
  for (const auto& c : cases) {
    const TlsaAnswer answer = dns.lookup_tlsa(c.host, c.port, hermetic_deadline());
    const std::string where = std::string{c.host} + ":" + std::to_string(c.port);
    EXPECT_EQ(to_string(answer.status), to_string(c.status)) << where;
    EXPECT_EQ(to_string(answer.security), "insecure") << where;
    EXPECT_EQ(view(answer.records), c.records) << where;
  }
}

// A stub that never answers: MX, TLSA and host addresses end at the deadline.
TEST(UnboundDnsHermetic, MxDnsRespectsDeadline) {
  const BlackHole hole;
  UnboundDns dns{hermetic_config({hole.stub("test")})};
  MxDns& mx_dns = dns;
  for (const int deadline_ms : {0, 150}) {
    const auto start = Clock::now();
    const auto deadline = start + milliseconds(deadline_ms);
    const std::vector<DnsStatus> statuses = {
        mx_dns.lookup_mx("x.test", deadline).status,
        mx_dns.lookup_tlsa("mx.x.test", 25, deadline).status,
        mx_dns.lookup_host_addresses("mx.x.test", deadline).status,
    };
    const long long elapsed = ms_since(start);
    std::printf("measure mxdns deadline_ms=%d elapsed_ms=%lld\n", deadline_ms, elapsed);
    for (const auto status : statuses) EXPECT_EQ(to_string(status), "timeout") << deadline_ms;
    EXPECT_LT(elapsed, deadline_ms + 1000);
  }
}

// -------------------------------------------------------------------- live
// Always instantiated; each test skips, naming the variables, unless the smoke
// script provides the servers.

// The live variables that are unset, space separated ("" when all are set).
std::string missing_live_variables() {
  std::string missing;
  for (const char* name : {"MTASTS_DNS_STUB", "MTASTS_DNS_TA"}) {
    if (!env(name)) missing += missing.empty() ? name : std::string{" "} + name;
  }
  return missing;
}

template <typename Param>
class LiveTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    const std::string missing = missing_live_variables();
    if (!missing.empty()) {
      // Never a silent pass nor a skip: the only runner of these suites
      // (unbound_dns_smoke.sh) sets the variables, ctest leaves them out.
      GTEST_FAIL() << "not set: " << missing << " (tests/integration/unbound_dns_smoke.sh sets them)";
    }
  }
};

UnboundConfig live_config(std::string self_test = "") {
  UnboundConfig config;
  config.use_resolv_conf = false;
  config.stub_zones = {env("MTASTS_DNS_STUB").value_or("")};
  config.trust_anchor_files = {env("MTASTS_DNS_TA").value_or("")};
  config.self_test_name = std::move(self_test);
  return config;
}

Clock::time_point live_deadline() { return Clock::now() + milliseconds(5000); }

enum class Lookup { Txt, Addresses, HostAddresses };

struct LiveCase {
  const char* name;
  Lookup lookup;
  DnsStatus status;
  DnsSecurity security;
  std::vector<std::string> records;
};

const char* lookup_name(Lookup lookup) {
  switch (lookup) {
    case Lookup::Txt:
      return " TXT";
    case Lookup::Addresses:
      return " A+AAAA";
    case Lookup::HostAddresses:
      return " host A+AAAA";
  }
  return "";
}

void PrintTo(const LiveCase& c, std::ostream* out) { *out << c.name << lookup_name(c.lookup); }

std::vector<LiveCase> live_cases() {
  using enum Lookup;
  return {
      {"_mta-sts.secure.test", Txt, DnsStatus::Ok, DnsSecurity::Secure, {"v=STSv1; id=20240101T000000;"}},
      {"multi.secure.test", Txt, DnsStatus::Ok, DnsSecurity::Secure, {"v=STSv1; id=split;"}},
      {"nothere.secure.test", Txt, DnsStatus::NxDomain, DnsSecurity::Secure, {}},
      {"www.secure.test", Txt, DnsStatus::NoData, DnsSecurity::Secure, {}},
      {"www.secure.test", Addresses, DnsStatus::Ok, DnsSecurity::Secure, {"127.1.0.1", "2001:db8::1"}},
      {"v4only.secure.test", Addresses, DnsStatus::Ok, DnsSecurity::Secure, {"127.1.0.2"}},
      {"v6only.secure.test", Addresses, DnsStatus::Ok, DnsSecurity::Secure, {"2001:db8::2"}},
      {"nothere.secure.test", Addresses, DnsStatus::NxDomain, DnsSecurity::Secure, {}},
      {"_mta-sts.bogus.test", Txt, DnsStatus::ServFail, DnsSecurity::Bogus, {}},
      {"www.bogus.test",
       Addresses,
       DnsStatus::Ok,
       DnsSecurity::Secure,  // untouched
       {"127.1.0.4", "2001:db8::4"}},
      {"_mta-sts.plain.test", Txt, DnsStatus::Ok, DnsSecurity::Insecure, {"v=STSv1; id=plain1;"}},
      {"nothere.plain.test", Txt, DnsStatus::NxDomain, DnsSecurity::Insecure, {}},
      {"www.plain.test", Txt, DnsStatus::NoData, DnsSecurity::Insecure, {}},
      {"www.plain.test", Addresses, DnsStatus::Ok, DnsSecurity::Insecure, {"127.1.0.3", "2001:db8::3"}},
      {"mx.secure.test", HostAddresses, DnsStatus::Ok, DnsSecurity::Secure, {"127.25.0.1"}},
      {"mx.plain.test", HostAddresses, DnsStatus::Ok, DnsSecurity::Insecure, {"127.25.0.3"}},
      {"nothere.plain.test", HostAddresses, DnsStatus::NxDomain, DnsSecurity::Insecure, {}},
  };
}

DnsAnswer run_lookup(UnboundDns& dns, const LiveCase& c) {
  switch (c.lookup) {
    case Lookup::Txt:
      return dns.lookup_txt(c.name, live_deadline());
    case Lookup::Addresses:
      return dns.lookup_addresses(c.name, live_deadline());
    case Lookup::HostAddresses:
      return dns.lookup_host_addresses(c.name, live_deadline());
  }
  return {};
}

void expect_case(UnboundDns& dns, const LiveCase& c) {
  const DnsAnswer answer = run_lookup(dns, c);
  const std::string where = std::string{c.name} + lookup_name(c.lookup);
  EXPECT_EQ(to_string(answer.status), to_string(c.status)) << where;
  EXPECT_EQ(to_string(answer.security), to_string(c.security)) << where;
  EXPECT_EQ(answer.records, c.records) << where;
  EXPECT_EQ(answer.why_bogus.empty(), c.security != DnsSecurity::Bogus)
      << where << " why_bogus=" << answer.why_bogus;
  if (!answer.why_bogus.empty()) {
    std::printf("why_bogus %s: %s\n", where.c_str(), answer.why_bogus.c_str());
  }
}

// MX: the smoke script's zones hold "MX 20 mx2" and "MX 10 MX" (upper
// case), plain.test also "MX 10 backup.example.net.", and every zone
// "nullmx MX 0 .".
struct MxLiveCase {
  const char* domain;
  DnsStatus status;
  DnsSecurity security;
  MxView records;
  bool null_mx;
};

void PrintTo(const MxLiveCase& c, std::ostream* out) { *out << c.domain << " MX"; }

std::vector<MxLiveCase> mx_live_cases() {
  using S = DnsStatus;
  using D = DnsSecurity;
  return {
      {"secure.test", S::Ok, D::Secure, {{10, "mx.secure.test"}, {20, "mx2.secure.test"}}, false},
      {"bogus.test", S::Ok, D::Secure, {{10, "mx.bogus.test"}, {20, "mx2.bogus.test"}}, false},
      {"plain.test",
       S::Ok,
       D::Insecure,
       {{10, "backup.example.net"}, {10, "mx.plain.test"}, {20, "mx2.plain.test"}},
       false},
      {"nullmx.plain.test", S::Ok, D::Insecure, {}, true},
      {"nullmx.secure.test", S::Ok, D::Secure, {}, true},
      {"www.secure.test", S::NoData, D::Secure, {}, false},
      {"nothere.secure.test", S::NxDomain, D::Secure, {}, false},
      {"nothere.plain.test", S::NxDomain, D::Insecure, {}, false},
  };
}

void expect_mx_case(MxDns& dns, const MxLiveCase& c) {
  const MxAnswer answer = dns.lookup_mx(c.domain, live_deadline());
  EXPECT_EQ(to_string(answer.status), to_string(c.status)) << c.domain;
  EXPECT_EQ(to_string(answer.security), to_string(c.security)) << c.domain;
  EXPECT_EQ(view(answer.records), c.records) << c.domain;
  EXPECT_EQ(answer.null_mx, c.null_mx) << c.domain;
}

// TLSA: every zone holds "_25._tcp.mx TLSA 3 1 1" with 32 octets of one
// value per zone (secure a1, bogus b2 then tampered, plain c3); secure.test
// also "TLSA 2 0 2" with 64 octets a1.
struct TlsaLiveCase {
  const char* host;
  std::uint16_t port;
  DnsStatus status;
  DnsSecurity security;
  TlsaView records;
};

void PrintTo(const TlsaLiveCase& c, std::ostream* out) { *out << c.host << ":" << c.port << " TLSA"; }

std::vector<std::uint8_t> octets(std::size_t count, std::uint8_t value) {
  return std::vector<std::uint8_t>(count, value);
}

std::vector<TlsaLiveCase> tlsa_live_cases() {
  using S = DnsStatus;
  using D = DnsSecurity;
  return {
      {"mx.secure.test", 25, S::Ok, D::Secure, {{2, 0, 2, octets(64, 0xa1)}, {3, 1, 1, octets(32, 0xa1)}}},
      {"mx.secure.test", 465, S::NxDomain, D::Secure, {}},
      {"mx2.secure.test", 25, S::NxDomain, D::Secure, {}},
      {"mx.bogus.test", 25, S::ServFail, D::Bogus, {}},
      {"mx.plain.test", 25, S::Ok, D::Insecure, {{3, 1, 1, octets(32, 0xc3)}}},
      {"mx2.plain.test", 25, S::NxDomain, D::Insecure, {}},
  };
}

void expect_tlsa_case(MxDns& dns, const TlsaLiveCase& c) {
  const TlsaAnswer answer = dns.lookup_tlsa(c.host, c.port, live_deadline());
  const std::string where = std::string{c.host} + ":" + std::to_string(c.port);
  EXPECT_EQ(to_string(answer.status), to_string(c.status)) << where;
  EXPECT_EQ(to_string(answer.security), to_string(c.security)) << where;
  EXPECT_EQ(view(answer.records), c.records) << where;
}

class UnboundDnsLive : public LiveTest<LiveCase> {};

TEST_P(UnboundDnsLive, AnswerKeepsSecurityApart) {
  UnboundDns dns{live_config()};
  expect_case(dns, GetParam());
}
INSTANTIATE_TEST_SUITE_P(Zones, UnboundDnsLive, ::testing::ValuesIn(live_cases()));

class UnboundDnsLiveMx : public LiveTest<MxLiveCase> {};

TEST_P(UnboundDnsLiveMx, ParsesSortsAndKeepsSecurityApart) {
  UnboundDns dns{live_config()};
  expect_mx_case(dns, GetParam());
}
INSTANTIATE_TEST_SUITE_P(Zones, UnboundDnsLiveMx, ::testing::ValuesIn(mx_live_cases()));

class UnboundDnsLiveTlsa : public LiveTest<TlsaLiveCase> {};

TEST_P(UnboundDnsLiveTlsa, ParsesAndKeepsSecurityApart) {
  UnboundDns dns{live_config()};
  expect_tlsa_case(dns, GetParam());
}
INSTANTIATE_TEST_SUITE_P(Zones, UnboundDnsLiveTlsa, ::testing::ValuesIn(tlsa_live_cases()));

// All tables from many threads at once on one resolver, cold cache.
class UnboundDnsLiveConcurrent : public LiveTest<int> {};

TEST_P(UnboundDnsLiveConcurrent, SameAnswersFromManyThreads) {
  UnboundDns dns{live_config()};
  const auto cases = live_cases();
  const auto mx_cases = mx_live_cases();
  const auto tlsa_cases = tlsa_live_cases();
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < GetParam(); ++t) {
    threads.emplace_back([&] {
      for (const auto& c : cases) expect_case(dns, c);
      for (const auto& c : mx_cases) expect_mx_case(dns, c);
      for (const auto& c : tlsa_cases) expect_tlsa_case(dns, c);
    });
  }
  for (auto& thread : threads) thread.join();
  std::printf("measure live threads=%d lookups_per_thread=%zu elapsed_ms=%lld\n", GetParam(),
              cases.size() + mx_cases.size() + tlsa_cases.size(), ms_since(start));
}
INSTANTIATE_TEST_SUITE_P(Threads, UnboundDnsLiveConcurrent, ::testing::Values(2, 8));

struct SelfTestCase {
  const char* name;
  bool secure;
};

void PrintTo(const SelfTestCase& c, std::ostream* out) { *out << '"' << c.name << '"'; }

std::vector<SelfTestCase> self_test_cases() {
  return {
      {"secure.test", true},           // zone apex: DNSKEY
      {"www.secure.test", true},       // not an apex: signed NODATA, then A
      {"bogus.test", true},            // its keys are fine; only a TXT is tampered
      {"plain.test", false},           // unsigned
      {"nothere.secure.test", false},  // does not exist
      {"", true},                      // skipped
  };
}

class UnboundDnsLiveSelfTest : public LiveTest<SelfTestCase> {};

TEST_P(UnboundDnsLiveSelfTest, ReportsWhetherDnssecWorks) {
  UnboundDns dns{live_config(GetParam().name)};
  EXPECT_EQ(dns.dnssec_self_test(live_deadline()), GetParam().secure);
}
INSTANTIATE_TEST_SUITE_P(Names, UnboundDnsLiveSelfTest, ::testing::ValuesIn(self_test_cases()));

}  // namespace
}  // namespace mtasts::policy::net
