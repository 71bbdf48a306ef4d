// NextHopChecker against a real Resolver over scripted sources: RFC 8461
// §3.4 (smart hosts), §4.1 (MX matching), §4.2 (probing), RFC 7672 (DANE),
// RFC 7505 (null MX), RFC 5321 §5.1 (implicit MX); probe cache expiry,
// single-flight and deadlines.
#include "policy/engine/next_hop_checker.h"

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "fakes/fake_next_hop.h"
#include "fakes/fake_sources.h"
#include "fakes/recording_sink.h"
#include "policy/engine/probe_cache.h"

namespace mtasts::testing {
namespace {

constexpr const char* kEnforce =
    "version: STSv1\nmode: enforce\nmx: mx1.example.com\nmx: mx2.example.com\nmx: example.com\nmax_age: "
    "86400\n";
constexpr const char* kNone = "version: STSv1\nmode: none\nmax_age: 86400\n";
constexpr const char* kRelay =
    "version: STSv1\nmode: enforce\nmx: relay.example.net\nmx: *.relay.example.net\nmax_age: 86400\n";

const MxRecord kMx1{10, "mx1.example.com"};
const MxRecord kMx2{20, "mx2.example.com"};

Deadline soon(int ms = 2000) { return std::chrono::steady_clock::now() + std::chrono::milliseconds(ms); }

ProbeResult verified() { return probe_result(ProbeOutcome::Verified); }
ProbeResult dane_verified() { return probe_result(ProbeOutcome::DaneVerified); }
ProbeResult expired() {
  return probe_result(ProbeOutcome::TlsFailure, ResultType::CertificateExpired, "cert-expired");
}
TlsaRecord tlsa_record() { return TlsaRecord{3, 1, 1, std::vector<std::uint8_t>(32, 0xab)}; }

NextHop recipient() { return NextHop{"example.com", NextHopKind::RecipientDomain, "", "", false, 25}; }
NextHop relay(const std::string& host, bool mx_lookup, std::uint16_t port = 25) {
  return NextHop{"example.com", NextHopKind::SmartHost, host, "", mx_lookup, port};
}
NextHop ip_literal_relay() {
  return NextHop{"example.com", NextHopKind::SmartHost, "", "192.0.2.7", false, 25};
}

struct World {
  FakeDns dns;
  FakeFetcher fetcher;
  MemoryStore store;
  FakeClock clock;
  FakeMxDns mx;
  FakeMxDns known_mx;  // used when split_dns: next hops of known-policy domains
  bool split_dns = false;
  FakeTlsProber prober;
  NextHopCheckerConfig config;
  // Declared after the fakes: destroyed (and drained) first.
  std::unique_ptr<Resolver> resolver;
  std::unique_ptr<NextHopChecker> checker;

  World() {
    publish("example.com", kEnforce);
    mx.set_addresses("mx1.example.com", {"192.0.2.1"});
    mx.set_addresses("mx2.example.com", {"192.0.2.2"});
  }
  void publish(const std::string& domain, const char* body) {
    dns.set("_mta-sts." + domain, txt_answer({"v=STSv1; id=1;"}));
    dns.set("mta-sts." + domain, txt_answer({"127.0.0.1"}));
    fetcher.set(domain, FetchedBody{body});
  }
  void start() {
    if (checker) return;
    resolver = std::make_unique<Resolver>(dns, fetcher, store, clock, ResolverConfig{});
    checker = std::make_unique<NextHopChecker>(*resolver, mx, prober, clock, config, nullptr,
                                               split_dns ? &known_mx : nullptr);
  }
  CheckResult check(const NextHop& hop = recipient(), int deadline_ms = 2000) {
    start();
    return checker->check(hop, soon(deadline_ms));
  }
};

struct Case {
  std::string name;
  std::function<void(World&)> setup;
  NextHop hop;
  Outcome outcome;
  std::string reason;
  TlsStatus tls;
  std::string mx;
  int probes;
  int mx_lookups;
  std::function<void(World&, const CheckResult&)> more = nullptr;
};

// The host was probed once, by WebPKI (no TLSA records sent with the probe).
void expect_one_webpki_probe(World& w, const CheckResult&) {
  const auto requests = w.prober.requests();
  ASSERT_EQ(requests.size(), 1U);
  EXPECT_FALSE(requests[0].tlsa.has_value());
}

std::vector<Case> cases() {
  return {
      {"enforce, matching mx verified",
       [](World& w) {
         w.mx.set_mx("example.com", mx_answer({kMx1}));
         w.prober.set("192.0.2.1", verified());
       },
       recipient(), Outcome::Pass, "verified", TlsStatus::Verified, "mx1.example.com", 1, 1,
       [](World&, const CheckResult& r) {
         EXPECT_EQ(r.policy_domain, "example.com");
         ASSERT_EQ(r.facts.candidates.size(), 1U);
         EXPECT_TRUE(r.facts.candidates[0].matches_policy);
         ASSERT_EQ(r.facts.candidates[0].probes.size(), 1U);
         EXPECT_EQ(r.facts.candidates[0].probes[0].address, "192.0.2.1");
         EXPECT_EQ(r.verdict.mode, Mode::Enforce);
       }},
      {"mx not in policy: no probe",
       [](World& w) {
         w.mx.set_mx("example.com", mx_answer({{10, "mail.other.net"}}));
         w.mx.set_addresses("mail.other.net", {"192.0.2.3"});
         w.prober.set("192.0.2.3", verified());
       },
       recipient(), Outcome::Fail, "mx-not-in-policy", TlsStatus::Unverified, "mail.other.net", 0, 1,
       [](World& w, const CheckResult& r) {
         EXPECT_EQ(r.verdict.result_type, ResultType::ValidationFailure);
         EXPECT_EQ(r.verdict.mx_not_in_policy, std::vector<std::string>{"mail.other.net"});
         EXPECT_EQ(w.mx.tlsa_calls(), 0);
       }},
      {"first mx fails tls, second verifies",
       [](World& w) {
         w.mx.set_mx("example.com", mx_answer({kMx1, kMx2}));
         w.prober.set("192.0.2.1", expired());
         w.prober.set("192.0.2.2", verified());
       },
       recipient(), Outcome::Pass, "verified", TlsStatus::Verified, "mx2.example.com", 2, 1},
      {"first mx verifies: second not probed",
       [](World& w) {
         w.mx.set_mx("example.com", mx_answer({kMx1, kMx2}));
         w.prober.set("192.0.2.1", verified());
         w.prober.set("192.0.2.2", verified());
       },
       recipient(), Outcome::Pass, "verified", TlsStatus::Verified, "mx1.example.com", 1, 1},
      {"all unreachable",
       [](World& w) {
         w.mx.set_mx("example.com", mx_answer({kMx1, kMx2}));
       },
       recipient(), Outcome::Unknown, "mx-unreachable", TlsStatus::Unverified, "", 2, 1},
      {"only failures: the most preferred one",
       [](World& w) {
         w.mx.set_mx("example.com", mx_answer({kMx1, kMx2}));
         w.prober.set("192.0.2.1", expired());
         w.prober.set("192.0.2.2", probe_result(ProbeOutcome::TlsFailure, ResultType::StartTlsNotSupported,
                                                "starttls-not-offered"));
       },
       recipient(), Outcome::Fail, "cert-expired", TlsStatus::Failed, "mx1.example.com", 2, 1},
      {"no mx (nxdomain): the domain itself",
       [](World& w) {
         w.mx.set_addresses("example.com", {"192.0.2.9"});
         w.prober.set("192.0.2.9", verified());
       },
       recipient(), Outcome::Pass, "verified", TlsStatus::Verified, "example.com", 1, 1,
       [](World&, const CheckResult& r) {
         ASSERT_EQ(r.facts.candidates.size(), 1U);
         EXPECT_EQ(r.facts.candidates[0].preference, 0);
       }},
      {"no mx (nodata): the domain itself",
       [](World& w) {
         w.mx.set_mx("example.com", mx_status(DnsStatus::NoData));
         w.mx.set_addresses("example.com", {"192.0.2.9"});
         w.prober.set("192.0.2.9", verified());
       },
       recipient(), Outcome::Pass, "verified", TlsStatus::Verified, "example.com", 1, 1},
      {"null mx", [](World& w) { w.mx.set_mx("example.com", null_mx_answer()); }, recipient(), Outcome::Pass,
       "null-mx", TlsStatus::Unverified, "", 0, 1,
       [](World&, const CheckResult& r) {
         EXPECT_TRUE(r.facts.null_mx);
         EXPECT_TRUE(r.facts.candidates.empty());
       }},
      {"mx servfail", [](World& w) { w.mx.set_mx("example.com", mx_status(DnsStatus::ServFail)); },
       recipient(), Outcome::Unknown, "mx-lookup-servfail", TlsStatus::Unverified, "", 0, 1},
      {"mx timeout", [](World& w) { w.mx.set_mx("example.com", mx_status(DnsStatus::Timeout)); }, recipient(),
       Outcome::Unknown, "mx-lookup-timeout", TlsStatus::Unverified, "", 0, 1},
      {"mx bogus", [](World& w) { w.mx.set_mx("example.com", mx_answer({kMx1}, DnsSecurity::Bogus)); },
       recipient(), Outcome::Unknown, "mx-lookup-bogus", TlsStatus::Unverified, "", 0, 1},
      {"dane: secure tlsa goes with the probe",
       [](World& w) {
         w.mx.set_mx("example.com", mx_answer({kMx1}));
         w.mx.set_tlsa("mx1.example.com", tlsa_answer({tlsa_record()}, DnsSecurity::Secure));
         w.prober.set("192.0.2.1", dane_verified());
       },
       recipient(), Outcome::Pass, "dane-verified", TlsStatus::Dane, "mx1.example.com", 1, 1,
       [](World& w, const CheckResult&) {
         const auto requests = w.prober.requests();
         ASSERT_EQ(requests.size(), 1U);
         ASSERT_TRUE(requests[0].tlsa.has_value());
         EXPECT_EQ(requests[0].tlsa->size(), 1U);
         EXPECT_EQ(requests[0].tlsa->at(0).usage, 3);
         EXPECT_EQ(w.mx.last_tlsa_port(), 25);
       }},
      {"insecure tlsa: webpki",
       [](World& w) {
         w.mx.set_mx("example.com", mx_answer({kMx1}));
         w.mx.set_tlsa("mx1.example.com", tlsa_answer({tlsa_record()}, DnsSecurity::Insecure));
         w.prober.set("192.0.2.1", verified());
       },
       recipient(), Outcome::Pass, "verified", TlsStatus::Verified, "mx1.example.com", 1, 1,
       [](World& w, const CheckResult&) {
         const auto requests = w.prober.requests();
         ASSERT_EQ(requests.size(), 1U);
         EXPECT_FALSE(requests[0].tlsa.has_value());
         EXPECT_EQ(requests[0].ehlo_name, "localhost");
       }},
      {"secure tlsa, none usable (PKIX-EE, bad selector): webpki",
       [](World& w) {
         w.mx.set_mx("example.com", mx_answer({kMx1}));
         w.mx.set_tlsa("mx1.example.com",
                       tlsa_answer({TlsaRecord{1, 1, 1, std::vector<std::uint8_t>(32, 0xab)},
                                    TlsaRecord{3, 7, 1, std::vector<std::uint8_t>(32, 0xab)}},
                                   DnsSecurity::Secure));
         w.prober.set("192.0.2.1", verified());
       },
       recipient(), Outcome::Pass, "verified", TlsStatus::Verified, "mx1.example.com", 1, 1,
       expect_one_webpki_probe},
      {"secure tlsa, usable kept, unusable dropped",
       [](World& w) {
         w.mx.set_mx("example.com", mx_answer({kMx1}));
         w.mx.set_tlsa("mx1.example.com",
                       tlsa_answer({TlsaRecord{0, 0, 1, std::vector<std::uint8_t>(32, 0xab)}, tlsa_record()},
                                   DnsSecurity::Secure));
         w.prober.set("192.0.2.1", dane_verified());
       },
       recipient(), Outcome::Pass, "dane-verified", TlsStatus::Dane, "mx1.example.com", 1, 1,
       [](World& w, const CheckResult&) {
         const auto requests = w.prober.requests();
         ASSERT_EQ(requests.size(), 1U);
         ASSERT_TRUE(requests[0].tlsa.has_value());
         ASSERT_EQ(requests[0].tlsa->size(), 1U);
         EXPECT_EQ(requests[0].tlsa->at(0).usage, 3);
       }},
      {"bogus tlsa: host unusable, not probed",
       [](World& w) {
         w.mx.set_mx("example.com", mx_answer({kMx1}));
         w.mx.set_tlsa("mx1.example.com", TlsaAnswer{DnsStatus::ServFail, DnsSecurity::Bogus, {}});
         w.prober.set("192.0.2.1", verified());
       },
       recipient(), Outcome::Fail, "tlsa-bogus", TlsStatus::Failed, "mx1.example.com", 0, 1,
       [](World&, const CheckResult& r) {
         ASSERT_EQ(r.facts.candidates.size(), 1U);
         EXPECT_TRUE(r.facts.candidates[0].tlsa_bogus);
         EXPECT_EQ(r.verdict.result_type, ResultType::DnssecInvalid);
       }},
      {"secure tlsa with a digest of the wrong length: unusable, webpki",
       [](World& w) {
         w.mx.set_mx("example.com", mx_answer({kMx1}));
         w.mx.set_tlsa("mx1.example.com",
                       tlsa_answer({TlsaRecord{3, 1, 1, std::vector<std::uint8_t>(20, 0xab)},
                                    TlsaRecord{3, 1, 2, std::vector<std::uint8_t>(32, 0xab)}},
                                   DnsSecurity::Secure));
         w.prober.set("192.0.2.1", verified());
       },
       recipient(), Outcome::Pass, "verified", TlsStatus::Verified, "mx1.example.com", 1, 1,
       expect_one_webpki_probe},
      // RFC 7672 §2.2: a signed zone whose TLSA lookup fails leaves DANE
      // undecided; WebPKI does not stand in, the host stays unverified.
      {"tlsa servfail in a signed zone: unverified, not probed",
       [](World& w) {
         w.mx.set_mx("example.com", mx_answer({kMx1}, DnsSecurity::Secure));
         w.mx.set_addresses("mx1.example.com", {"192.0.2.1"}, DnsSecurity::Secure);
         w.mx.set_tlsa("mx1.example.com", TlsaAnswer{DnsStatus::ServFail, DnsSecurity::Insecure, {}});
         w.prober.set("192.0.2.1", verified());
       },
       recipient(), Outcome::Unknown, "tlsa-lookup-failed", TlsStatus::Unverified, "", 0, 1},
      {"tlsa timeout in a signed zone: unverified, not probed",
       [](World& w) {
         w.mx.set_mx("example.com", mx_answer({kMx1}, DnsSecurity::Secure));
         w.mx.set_addresses("mx1.example.com", {"192.0.2.1"}, DnsSecurity::Secure);
         w.mx.set_tlsa("mx1.example.com", TlsaAnswer{DnsStatus::Timeout, DnsSecurity::Insecure, {}});
         w.prober.set("192.0.2.1", verified());
       },
       recipient(), Outcome::Unknown, "tlsa-lookup-failed", TlsStatus::Unverified, "", 0, 1},
      {"tlsa servfail in an unsigned zone: webpki",
       [](World& w) {
         w.mx.set_mx("example.com", mx_answer({kMx1}));
         w.mx.set_tlsa("mx1.example.com", TlsaAnswer{DnsStatus::ServFail, DnsSecurity::Insecure, {}});
         w.prober.set("192.0.2.1", verified());
       },
       recipient(), Outcome::Pass, "verified", TlsStatus::Verified, "mx1.example.com", 1, 1},
      {"smart host [relay]: relay's policy, no mx lookup",
       [](World& w) {
         w.publish("relay.example.net", kRelay);
         w.mx.set_addresses("relay.example.net", {"192.0.2.50"});
         w.prober.set("192.0.2.50", verified());
       },
       relay("relay.example.net", false, 587), Outcome::Pass, "verified", TlsStatus::Verified,
       "relay.example.net", 1, 0,
       [](World& w, const CheckResult& r) {
         EXPECT_EQ(r.policy_domain, "relay.example.net");
         EXPECT_EQ(r.facts.next_hop, NextHopKind::SmartHost);
         EXPECT_EQ(w.dns.calls("_mta-sts.relay.example.net"), 1);
         EXPECT_EQ(w.dns.calls("_mta-sts.example.com"), 0);
         const auto requests = w.prober.requests();
         ASSERT_EQ(requests.size(), 1U);
         EXPECT_EQ(requests[0].port, 587);
         EXPECT_FALSE(requests[0].implicit_tls);
         EXPECT_EQ(w.mx.last_tlsa_port(), 587);
       }},
      {"smart host on port 465: implicit tls",
       [](World& w) {
         w.publish("relay.example.net", kRelay);
         w.mx.set_addresses("relay.example.net", {"192.0.2.50"});
         w.prober.set("192.0.2.50", verified());
       },
       relay("relay.example.net", false, 465), Outcome::Pass, "verified", TlsStatus::Verified,
       "relay.example.net", 1, 0,
       [](World& w, const CheckResult&) {
         const auto requests = w.prober.requests();
         ASSERT_EQ(requests.size(), 1U);
         EXPECT_TRUE(requests[0].implicit_tls);
       }},
      {"smart host outside its own policy",
       [](World& w) {
         w.publish("smtp.example.org", kEnforce);  // patterns name example.com hosts only
         w.mx.set_addresses("smtp.example.org", {"192.0.2.60"});
         w.prober.set("192.0.2.60", verified());
       },
       relay("smtp.example.org", false), Outcome::Fail, "mx-not-in-policy", TlsStatus::Unverified,
       "smtp.example.org", 0, 0},
      {"smart host without policy: recipient's policy ignored",
       [](World& w) { w.mx.set_addresses("plain.example.org", {"192.0.2.61"}); },
       relay("plain.example.org", false), Outcome::Pass, "no-policy", TlsStatus::None, "", 0, 0,
       [](World& w, const CheckResult& r) {
         EXPECT_EQ(r.facts.resolution.source, PolicySource::None);
         EXPECT_EQ(w.dns.calls("_mta-sts.example.com"), 0);
       }},
      {"smart host with mx lookup",
       [](World& w) {
         w.publish("relay.example.net", kRelay);
         w.mx.set_mx("relay.example.net", mx_answer({{10, "a.relay.example.net"}}));
         w.mx.set_addresses("a.relay.example.net", {"192.0.2.51"});
         w.prober.set("192.0.2.51", verified());
       },
       relay("relay.example.net", true), Outcome::Pass, "verified", TlsStatus::Verified,
       "a.relay.example.net", 1, 1,
       [](World& w, const CheckResult& r) {
         EXPECT_EQ(r.policy_domain, "relay.example.net");
         EXPECT_EQ(w.dns.calls("_mta-sts.example.com"), 0);
       }},
      {"ip-literal smart host: no policy", [](World& w) { w.prober.set("192.0.2.7", verified()); },
       ip_literal_relay(), Outcome::Pass, "no-policy", TlsStatus::None, "", 0, 0,
       [](World& w, const CheckResult& r) {
         EXPECT_EQ(r.policy_domain, "");
         EXPECT_EQ(r.facts.resolution.source, PolicySource::None);
         EXPECT_EQ(w.dns.calls("_mta-sts.example.com"), 0);
         EXPECT_EQ(w.fetcher.calls("example.com"), 0);
       }},
      {"probing disabled",
       [](World& w) {
         w.config.probing_enabled = false;
         w.mx.set_mx("example.com", mx_answer({kMx1}));
         w.prober.set("192.0.2.1", verified());
       },
       recipient(), Outcome::Pass, "not-probed", TlsStatus::NotProbed, "mx1.example.com", 0, 1,
       [](World& w, const CheckResult& r) {
         EXPECT_FALSE(r.facts.probing_enabled);
         EXPECT_EQ(w.mx.tlsa_calls(), 0);
       }},
      {"no policy: one mx lookup, for DANE only",
       [](World& w) {
         w.dns.set("_mta-sts.example.com", status_answer(DnsStatus::NxDomain));
         w.mx.set_mx("example.com", mx_answer({kMx1}));
       },
       recipient(), Outcome::Pass, "no-policy", TlsStatus::None, "", 0, 1},
      {"mode none: one mx lookup, for DANE only",
       [](World& w) {
         w.publish("example.com", kNone);
         w.mx.set_mx("example.com", mx_answer({kMx1}));
       },
       recipient(), Outcome::Pass, "mode-none", TlsStatus::None, "", 0, 1},
      {"policy discovery servfail: unknown, one mx lookup, for DANE only",
       [](World& w) { w.dns.set("_mta-sts.example.com", status_answer(DnsStatus::ServFail)); }, recipient(),
       Outcome::Unknown, "dns-servfail", TlsStatus::None, "", 0, 1},
      {"second address tried when the first is unreachable",
       [](World& w) {
         w.mx.set_mx("example.com", mx_answer({kMx1}));
         w.mx.set_addresses("mx1.example.com", {"192.0.2.1", "192.0.2.11"});
         w.prober.set("192.0.2.11", verified());
       },
       recipient(), Outcome::Pass, "verified", TlsStatus::Verified, "mx1.example.com", 2, 1},
      {"tls failure on the first address ends the host",
       [](World& w) {
         w.mx.set_mx("example.com", mx_answer({kMx1}));
         w.mx.set_addresses("mx1.example.com", {"192.0.2.1", "192.0.2.11"});
         w.prober.set("192.0.2.1", expired());
         w.prober.set("192.0.2.11", verified());
       },
       recipient(), Outcome::Fail, "cert-expired", TlsStatus::Failed, "mx1.example.com", 1, 1,
       [](World& w, const CheckResult& r) {
         EXPECT_EQ(w.prober.calls("192.0.2.11"), 0);
         EXPECT_EQ(r.verdict.result_type, ResultType::CertificateExpired);
       }},
      {"at most max_addresses_per_host",
       [](World& w) {
         w.mx.set_mx("example.com", mx_answer({kMx1}));
         w.mx.set_addresses("mx1.example.com", {"192.0.2.1", "192.0.2.11", "192.0.2.21"});
       },
       recipient(), Outcome::Unknown, "mx-unreachable", TlsStatus::Unverified, "", 2, 1,
       [](World& w, const CheckResult&) { EXPECT_EQ(w.prober.calls("192.0.2.21"), 0); }},
      {"at most max_hosts",
       [](World& w) {
         w.config.max_hosts = 1;
         w.mx.set_mx("example.com", mx_answer({kMx1, kMx2}));
         w.prober.set("192.0.2.2", verified());
       },
       recipient(), Outcome::Unknown, "mx-unreachable", TlsStatus::Unverified, "", 1, 1},
      {"non-matching hosts do not count against max_hosts",
       [](World& w) {
         w.config.max_hosts = 1;
         w.mx.set_mx("example.com", mx_answer({{5, "mail.other.net"}, kMx1}));
         w.prober.set("192.0.2.1", verified());
       },
       recipient(), Outcome::Pass, "verified", TlsStatus::Verified, "mx1.example.com", 1, 1,
       [](World&, const CheckResult& r) {
         EXPECT_EQ(r.verdict.mx_not_in_policy, std::vector<std::string>{"mail.other.net"});
       }},
  };
}

TEST(NextHopChecker, ScenarioTable) {
  for (const auto& c : cases()) {
    SCOPED_TRACE(c.name);
    World w;
    c.setup(w);
    const CheckResult r = w.check(c.hop);
    EXPECT_EQ(r.verdict.outcome, c.outcome);
    EXPECT_EQ(r.verdict.reason, c.reason);
    EXPECT_EQ(r.verdict.tls, c.tls);
    EXPECT_EQ(r.verdict.mx, c.mx);
    EXPECT_EQ(w.prober.calls(), c.probes);
    EXPECT_EQ(w.mx.mx_calls(), c.mx_lookups);
    EXPECT_FALSE(r.facts.deadline_passed);
    if (c.more) c.more(w, r);
  }
}

// Probe results are reused while fresh: failures for probe_failure_ttl,
// successes for probe_success_ttl (FakeClock seconds).
struct TtlCase {
  std::string name;
  ProbeResult result;
  std::vector<std::pair<std::int64_t, int>> steps;  // {advance before the check, probes after it}
};

// RFC 7672 on its own, where no enforce policy binds: the MX hosts in
// preference order until one is deliverable (DaneFacts, decide_dane()).
constexpr const char* kTesting =
    "version: STSv1\nmode: testing\nmx: mx1.example.com\nmx: mx2.example.com\nmax_age: 86400\n";

ProbeResult tlsa_mismatch() {
  return probe_result(ProbeOutcome::TlsFailure, ResultType::TlsaInvalid, "tlsa-invalid");
}

struct DaneCase {
  std::string name;
  std::function<void(World&)> setup;
  Outcome dane_outcome;
  std::string dane_reason;
  std::string dane_mx;
  int probes;
  int tlsa_lookups;
};

// No policy: the world's example.com publishes none.
void no_policy(World& w) { w.dns.set("_mta-sts.example.com", status_answer(DnsStatus::NxDomain)); }
void secure_mx(World& w, std::vector<MxRecord> records) {
  w.mx.set_mx("example.com", mx_answer(std::move(records), DnsSecurity::Secure));
}
void secure_tlsa(World& w, const std::string& host) {
  w.mx.set_tlsa(host, tlsa_answer({tlsa_record()}, DnsSecurity::Secure));
}

std::vector<DaneCase> dane_cases() {
  return {
      {"no policy, insecure mx: dane does not apply, no tlsa lookup",
       [](World& w) {
         no_policy(w);
         w.mx.set_mx("example.com", mx_answer({kMx1}));
         secure_tlsa(w, "mx1.example.com");
       },
       Outcome::Pass, "mx-insecure", "", 0, 0},
      {"no policy, secure mx, first host without tlsa: opportunistic, not probed",
       [](World& w) {
         no_policy(w);
         secure_mx(w, {kMx1, kMx2});
         secure_tlsa(w, "mx2.example.com");
       },
       Outcome::Pass, "no-tlsa", "mx1.example.com", 0, 1},
      {"no policy, dane host verified",
       [](World& w) {
         no_policy(w);
         secure_mx(w, {kMx1});
         secure_tlsa(w, "mx1.example.com");
         w.prober.set("192.0.2.1", dane_verified());
       },
       Outcome::Pass, "dane-verified", "mx1.example.com", 1, 1},
      {"no policy, only mx fails dane: fail",
       [](World& w) {
         no_policy(w);
         secure_mx(w, {kMx1});
         secure_tlsa(w, "mx1.example.com");
         w.prober.set("192.0.2.1", tlsa_mismatch());
       },
       Outcome::Fail, "tlsa-invalid", "mx1.example.com", 1, 1},
      {"no policy, first fails dane, second without tlsa: the MTA delivers there",
       [](World& w) {
         no_policy(w);
         secure_mx(w, {kMx1, kMx2});
         secure_tlsa(w, "mx1.example.com");
         w.prober.set("192.0.2.1", tlsa_mismatch());
       },
       Outcome::Pass, "no-tlsa", "mx2.example.com", 1, 2},
      {"no policy, bogus tlsa on the only mx: fail without a probe",
       [](World& w) {
         no_policy(w);
         secure_mx(w, {kMx1});
         w.mx.set_tlsa("mx1.example.com", TlsaAnswer{DnsStatus::ServFail, DnsSecurity::Bogus, {}});
       },
       Outcome::Fail, "tlsa-bogus", "mx1.example.com", 0, 1},
      {"no policy, dane host unreachable: unknown",
       [](World& w) {
         no_policy(w);
         secure_mx(w, {kMx1});
         secure_tlsa(w, "mx1.example.com");
         w.prober.set("192.0.2.1", probe_result(ProbeOutcome::Unreachable, std::nullopt, "connect"));
       },
       Outcome::Unknown, "mx-unreachable", "", 1, 1},
      {"no policy, secure implicit mx (no MX records) with tlsa",
       [](World& w) {
         no_policy(w);
         w.mx.set_mx("example.com", mx_status(DnsStatus::NoData, DnsSecurity::Secure));
         w.mx.set_addresses("example.com", {"192.0.2.9"});
         secure_tlsa(w, "example.com");
         w.prober.set("192.0.2.9", tlsa_mismatch());
       },
       Outcome::Fail, "tlsa-invalid", "example.com", 1, 1},
      {"mode none: dane still applies",
       [](World& w) {
         w.publish("example.com", kNone);
         secure_mx(w, {kMx1});
         secure_tlsa(w, "mx1.example.com");
         w.prober.set("192.0.2.1", tlsa_mismatch());
       },
       Outcome::Fail, "tlsa-invalid", "mx1.example.com", 1, 1},
      {"testing policy: the probe of the policy path is reused",
       [](World& w) {
         w.publish("example.com", kTesting);
         secure_mx(w, {kMx1});
         secure_tlsa(w, "mx1.example.com");
         w.prober.set("192.0.2.1", tlsa_mismatch());
       },
       Outcome::Fail, "tlsa-invalid", "mx1.example.com", 1, 2},
  };
}

TEST(NextHopChecker, DaneOnItsOwnTable) {
  for (const auto& c : dane_cases()) {
    SCOPED_TRACE(c.name);
    World w;
    w.mx.set_addresses("mx2.example.com", {"192.0.2.2"});
    c.setup(w);
    const CheckResult r = w.check();
    ASSERT_TRUE(r.verdict.dane.has_value());
    EXPECT_EQ(r.verdict.dane->outcome, c.dane_outcome);
    EXPECT_EQ(r.verdict.dane->reason, c.dane_reason);
    EXPECT_EQ(r.verdict.dane->mx, c.dane_mx);
    EXPECT_EQ(w.prober.calls(), c.probes);
    EXPECT_EQ(w.mx.tlsa_calls(), c.tlsa_lookups);
    if (c.dane_outcome == Outcome::Fail && c.dane_reason == "tlsa-invalid") {
      EXPECT_EQ(r.verdict.dane->result_type, ResultType::TlsaInvalid);
    }
    for (const auto& request : w.prober.requests()) EXPECT_TRUE(request.tlsa.has_value()) << request.host;
  }
}

TEST(NextHopChecker, EnforcePolicyCoversDaneItself) {
  World w;
  secure_mx(w, {kMx1});
  secure_tlsa(w, "mx1.example.com");
  w.prober.set("192.0.2.1", tlsa_mismatch());
  const CheckResult r = w.check();
  EXPECT_FALSE(r.verdict.dane.has_value());
  EXPECT_EQ(r.verdict.outcome, Outcome::Fail);
  EXPECT_EQ(r.verdict.reason, "tlsa-invalid");
  EXPECT_EQ(w.mx.mx_calls(), 1);
}

TEST(NextHopChecker, DaneOutsidePolicyOffLooksNothingUp) {
  World w;
  w.config.dane_outside_policy = false;
  no_policy(w);
  secure_mx(w, {kMx1});
  secure_tlsa(w, "mx1.example.com");
  const CheckResult r = w.check();
  EXPECT_FALSE(r.verdict.dane.has_value());
  EXPECT_EQ(w.mx.mx_calls(), 0);
  EXPECT_EQ(w.mx.tlsa_calls(), 0);
  EXPECT_EQ(r.verdict.outcome, Outcome::Pass);
}

TEST(NextHopChecker, DaneWalkNeverFailsWithHostsLeft) {
  World w;
  w.config.max_hosts = 1;
  no_policy(w);
  secure_mx(w, {kMx1, kMx2});
  secure_tlsa(w, "mx1.example.com");
  w.prober.set("192.0.2.1", tlsa_mismatch());
  const CheckResult r = w.check();
  ASSERT_TRUE(r.verdict.dane.has_value());
  EXPECT_EQ(r.verdict.dane->outcome, Outcome::Unknown);
  EXPECT_EQ(w.mx.tlsa_calls(), 1);
}

// Issue #10 item 1: a burst of slow lookups at arbitrary domains made the
// forwarder look down in libunbound for every name. Domains with a known
// policy look up their next hops (MX, TLSA, addresses) in a DNS of their
// own; domains without one (DANE on its own) never touch it.
TEST(NextHopChecker, KnownPolicyNextHopsUseTheirOwnDns) {
  World w;
  w.split_dns = true;
  w.known_mx.set_mx("example.com", mx_answer({kMx1}));
  w.known_mx.set_addresses("mx1.example.com", {"192.0.2.1"});
  w.prober.set("192.0.2.1", verified());
  const CheckResult known = w.check();
  EXPECT_EQ(known.verdict.outcome, Outcome::Pass);
  EXPECT_EQ(w.known_mx.mx_calls(), 1);
  EXPECT_EQ(w.known_mx.tlsa_calls(), 1);
  EXPECT_EQ(w.known_mx.address_calls(), 1);
  EXPECT_EQ(w.mx.mx_calls() + w.mx.tlsa_calls() + w.mx.address_calls(), 0);

  World other;
  other.split_dns = true;
  no_policy(other);
  secure_mx(other, {kMx1});
  secure_tlsa(other, "mx1.example.com");
  other.prober.set("192.0.2.1", dane_verified());
  const CheckResult unknown = other.check();
  ASSERT_TRUE(unknown.verdict.dane.has_value());
  EXPECT_EQ(unknown.verdict.dane->outcome, Outcome::Pass);
  EXPECT_EQ(other.mx.mx_calls(), 1);
  EXPECT_EQ(other.mx.tlsa_calls(), 1);
  EXPECT_EQ(other.known_mx.mx_calls() + other.known_mx.tlsa_calls() + other.known_mx.address_calls(), 0);
}

TEST(NextHopChecker, BracketedRelayLeftToTheMta) {
  World w;
  no_policy(w);
  w.publish("relay.example.net", kNone);
  const CheckResult r = w.check(relay("relay.example.net", false));
  EXPECT_FALSE(r.verdict.dane.has_value());
  EXPECT_EQ(w.mx.tlsa_calls(), 0);
}

TEST(NextHopChecker, ProbeCacheHitAndExpiry) {
  const std::vector<TtlCase> cases{
      {"failure", expired(), {{0, 1}, {0, 1}, {299, 1}, {1, 2}, {0, 2}}},
      {"unreachable", probe_result(ProbeOutcome::Unreachable), {{0, 1}, {299, 1}, {1, 2}}},
      {"success", verified(), {{0, 1}, {0, 1}, {301, 1}, {3000, 1}, {299, 2}, {0, 2}}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    World w;
    w.mx.set_mx("example.com", mx_answer({kMx1}));
    w.prober.set("192.0.2.1", c.result);
    for (const auto& [advance, probes] : c.steps) {
      w.clock.advance(advance);
      const CheckResult r = w.check();
      EXPECT_EQ(w.prober.calls(), probes) << "after advancing " << advance;
      ASSERT_EQ(r.facts.candidates.size(), 1U);
      ASSERT_EQ(r.facts.candidates[0].probes.size(), 1U);
      EXPECT_EQ(r.facts.candidates[0].probes[0].outcome, c.result.outcome);
    }
  }
}

// Beyond max_jobs running probes a host is left unverified at once (never
// approved unchecked), the answer is not cached and no TLSRPT session is
// reported, since no probe ran.
TEST(ProbeCache, ProbesBeyondMaxJobsLeaveTheHostUnverified) {
  FakeTlsProber prober;
  FakeClock clock;
  prober.set("192.0.2.1", verified());
  prober.set("192.0.2.2", verified());
  prober.set_delay(std::chrono::milliseconds(300));
  ProbeCache cache(prober, clock, ProbeCacheConfig{3600, 300, 100, 1});
  const auto request = [](const std::string& host, const std::string& address) {
    ProbeRequest r;
    r.host = host;
    r.address = address;
    return r;
  };
  int reported = 0;
  const auto count = [&reported](const ProbeRequest&, const ProbeResult&) { ++reported; };
  const auto in_10ms = [] { return std::chrono::steady_clock::now() + std::chrono::milliseconds(10); };
  EXPECT_FALSE(cache.probe(request("mx1.example.com", "192.0.2.1"), in_10ms(), count)) << "still running";
  const auto refused = cache.probe(request("mx2.example.com", "192.0.2.2"), in_10ms(), count);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->outcome, ProbeOutcome::Unreachable);
  EXPECT_EQ(refused->reason, "overloaded");
  cache.wait_idle();
  EXPECT_EQ(prober.calls(), 1);
  EXPECT_EQ(reported, 1) << "only the probe that ran";
  prober.set_delay(std::chrono::milliseconds(0));
  const auto later =
      cache.probe(request("mx2.example.com", "192.0.2.2"), in_10ms() + std::chrono::seconds(2), count);
  ASSERT_TRUE(later);
  EXPECT_EQ(later->outcome, ProbeOutcome::Verified) << "the refusal was not cached";
  EXPECT_EQ(prober.calls(), 2);
}

// A WebPKI result says nothing about DANE: when the host's TLSA RRset turns
// secure, it is probed again, with the records.
TEST(NextHopChecker, DaneAndWebpkiResultsCachedApart) {
  World w;
  w.mx.set_mx("example.com", mx_answer({kMx1}));
  w.prober.set("192.0.2.1", verified());
  EXPECT_EQ(w.check().verdict.tls, TlsStatus::Verified);
  w.mx.set_tlsa("mx1.example.com", tlsa_answer({tlsa_record()}, DnsSecurity::Secure));
  w.prober.set("192.0.2.1", dane_verified());
  EXPECT_EQ(w.check().verdict.tls, TlsStatus::Dane);
  const auto requests = w.prober.requests();
  ASSERT_EQ(requests.size(), 2U);
  EXPECT_FALSE(requests[0].tlsa.has_value());
  EXPECT_TRUE(requests[1].tlsa.has_value());
}

// A DANE result holds for the records it was checked against: after a TLSA
// change (a withdrawn key) the host is probed again with the new records.
TEST(NextHopChecker, DaneResultsCachedPerTlsaRecords) {
  World w;
  w.mx.set_mx("example.com", mx_answer({kMx1}));
  w.mx.set_tlsa("mx1.example.com", tlsa_answer({tlsa_record()}, DnsSecurity::Secure));
  w.prober.set("192.0.2.1", dane_verified());
  EXPECT_EQ(w.check().verdict.tls, TlsStatus::Dane);
  EXPECT_EQ(w.check().verdict.tls, TlsStatus::Dane);
  EXPECT_EQ(w.prober.requests().size(), 1U) << "same records: cached";
  w.mx.set_tlsa("mx1.example.com",
                tlsa_answer({TlsaRecord{3, 1, 1, std::vector<std::uint8_t>(32, 0xcd)}}, DnsSecurity::Secure));
  w.prober.set("192.0.2.1", probe_result(ProbeOutcome::TlsFailure, ResultType::TlsaInvalid, "tlsa-mismatch"));
  const auto after_change = w.check();
  EXPECT_EQ(after_change.verdict.outcome, Outcome::Fail);
  EXPECT_EQ(after_change.verdict.reason, "tlsa-mismatch");
  const auto requests = w.prober.requests();
  ASSERT_EQ(requests.size(), 2U);
  EXPECT_EQ(requests[1].tlsa->at(0).data[0], 0xcd);
}

TEST(NextHopChecker, ConcurrentChecksShareOneProbe) {
  World w;
  w.mx.set_mx("example.com", mx_answer({kMx1}));
  w.prober.set("192.0.2.1", verified());
  w.prober.set_delay(std::chrono::milliseconds(300));
  w.start();
  std::vector<CheckResult> results(8);
  std::vector<std::thread> threads;
  for (auto& result : results) threads.emplace_back([&w, &result] { result = w.check(recipient(), 5000); });
  for (auto& t : threads) t.join();
  EXPECT_EQ(w.prober.calls(), 1);
  for (const auto& r : results) {
    EXPECT_EQ(r.verdict.outcome, Outcome::Pass);
    EXPECT_EQ(r.verdict.mx, "mx1.example.com");
  }
}

// The check answers at its deadline; the probe goes on and fills the cache,
// so the retry passes without probing again.
TEST(NextHopChecker, DeadlineLeavesProbeRunningForTheRetry) {
  World w;
  w.mx.set_mx("example.com", mx_answer({kMx1}));
  w.prober.set("192.0.2.1", verified());
  w.prober.set_delay(std::chrono::milliseconds(600));
  w.start();
  ASSERT_TRUE(w.resolver->resolve("example.com", soon()).policy.has_value());  // policy cached

  const auto started = std::chrono::steady_clock::now();
  const CheckResult first = w.check(recipient(), 100);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(450));
  EXPECT_TRUE(first.facts.deadline_passed);
  EXPECT_EQ(first.verdict.outcome, Outcome::Unknown);
  EXPECT_EQ(first.verdict.reason, "deadline");
  EXPECT_EQ(first.verdict.tls, TlsStatus::Unverified);

  w.checker->wait_idle();
  EXPECT_EQ(w.prober.calls(), 1);
  const CheckResult retry = w.check(recipient(), 100);
  EXPECT_FALSE(retry.facts.deadline_passed);
  EXPECT_EQ(retry.verdict.outcome, Outcome::Pass);
  EXPECT_EQ(retry.verdict.mx, "mx1.example.com");
  EXPECT_EQ(w.prober.calls(), 1);
}

// A deadline already past when the check starts: no network at all.
TEST(NextHopChecker, PastDeadlineProbesNothing) {
  World w;
  w.mx.set_mx("example.com", mx_answer({kMx1}));
  w.prober.set("192.0.2.1", verified());
  w.start();
  ASSERT_TRUE(w.resolver->resolve("example.com", soon()).policy.has_value());
  const CheckResult r = w.checker->check(recipient(), std::chrono::steady_clock::now());
  EXPECT_TRUE(r.facts.deadline_passed);
  EXPECT_EQ(r.verdict.outcome, Outcome::Unknown);
  EXPECT_EQ(r.verdict.reason, "deadline");
  EXPECT_EQ(w.mx.mx_calls(), 0);
  EXPECT_EQ(w.prober.calls(), 0);
}

// ---------------------------------------------------------------- TLSRPT
// RFC 8460 §4.1: one session per probe that actually ran.

struct ReportCase {
  std::string name;
  std::function<void(World&)> setup;
  int checks;  // the same recipient checked this often (cache hits after the first)
  // Expected sessions as "type success|result-type reason host ip".
  std::vector<std::string> expected;
};

std::string describe(const TlsrptSession& s) {
  return s.policy_type + " " + (s.success ? "success" : std::string(to_string(*s.result_type))) + " " +
         s.failure_reason_code + " " + s.receiving_mx_hostname + " " + s.receiving_ip;
}

TEST(NextHopChecker, TlsrptSessionTable) {
  const std::vector<ReportCase> cases{
      {"verified probe: one success, cache hits add none",
       [](World& w) {
         w.mx.set_mx("example.com", mx_answer({kMx1}));
         w.prober.set("192.0.2.1", verified());
       },
       3,
       {"sts success   "}},
      {"tls failure: one failure with its host and address",
       [](World& w) {
         w.mx.set_mx("example.com", mx_answer({kMx1}));
         w.prober.set("192.0.2.1", expired());
       },
       2,
       {"sts certificate-expired cert-expired mx1.example.com 192.0.2.1"}},
      {"unreachable: nothing",
       [](World& w) {
         w.mx.set_mx("example.com", mx_answer({kMx1, kMx2}));
       },
       1,
       {}},
      {"dane probe: policy type tlsa",
       [](World& w) {
         w.mx.set_mx("example.com", mx_answer({kMx1}));
         w.mx.set_tlsa("mx1.example.com", tlsa_answer({tlsa_record()}, DnsSecurity::Secure));
         w.prober.set("192.0.2.1", dane_verified());
       },
       2,
       {"tlsa success   "}},
      {"mx not in policy: once within the failure ttl",
       [](World& w) {
         w.mx.set_mx("example.com", mx_answer({{10, "mail.other.net"}}));
       },
       3,
       {"sts validation-failure mx-not-in-policy mail.other.net "}},
      {"bogus tlsa: dnssec-invalid once",
       [](World& w) {
         w.mx.set_mx("example.com", mx_answer({kMx1}));
         w.mx.set_tlsa("mx1.example.com", TlsaAnswer{DnsStatus::ServFail, DnsSecurity::Bogus, {}});
       },
       2,
       {"tlsa dnssec-invalid tlsa-bogus mx1.example.com "}},
      {"first host fails, second verifies: two sessions",
       [](World& w) {
         w.mx.set_mx("example.com", mx_answer({kMx1, kMx2}));
         w.prober.set("192.0.2.1", expired());
         w.prober.set("192.0.2.2", verified());
       },
       1,
       {"sts certificate-expired cert-expired mx1.example.com 192.0.2.1", "sts success   "}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    World w;
    RecordingSink sink;
    c.setup(w);
    w.start();
    w.checker->set_tlsrpt_sink(&sink);
    for (int i = 0; i < c.checks; ++i) w.check();
    w.checker->wait_idle();
    std::vector<std::string> got;
    for (const auto& s : sink.sessions()) {
      got.push_back(describe(s));
      EXPECT_EQ(s.policy_domain, "example.com");
      EXPECT_EQ(s.at, w.clock.now());
    }
    EXPECT_EQ(got, c.expected);
  }
}

// No policy in force (none published, or mode none: RFC 8461 §5): only
// DANE probes are sessions, as "tlsa"; nothing is ever "sts" under mode
// none, and no "no-policy-found" success is made up for hosts nobody
// probed. A discovery failure comes from the resolver, as no-policy-found.
TEST(NextHopChecker, TlsrptNoPolicyInForceTable) {
  const std::vector<ReportCase> cases{
      {"no policy, mx reachable: no probe, nothing",
       [](World& w) {
         no_policy(w);
         w.mx.set_mx("example.com", mx_answer({kMx1}));
         w.prober.set("192.0.2.1", verified());
       },
       2,
       {}},
      {"mode none, mx reachable: nothing",
       [](World& w) {
         w.publish("example.com", kNone);
         w.mx.set_mx("example.com", mx_answer({kMx1}));
         w.prober.set("192.0.2.1", verified());
       },
       2,
       {}},
      {"mode none, mx outside any pattern: no mx-not-in-policy",
       [](World& w) {
         w.publish("example.com", kNone);
         w.mx.set_mx("example.com", mx_answer({{10, "mail.other.net"}}));
       },
       2,
       {}},
      {"no policy, dane verified: tlsa",
       [](World& w) {
         no_policy(w);
         secure_mx(w, {kMx1});
         secure_tlsa(w, "mx1.example.com");
         w.prober.set("192.0.2.1", dane_verified());
       },
       2,
       {"tlsa success   "}},
      {"mode none, dane mismatch: tlsa failure",
       [](World& w) {
         w.publish("example.com", kNone);
         secure_mx(w, {kMx1});
         secure_tlsa(w, "mx1.example.com");
         w.prober.set("192.0.2.1", tlsa_mismatch());
       },
       2,
       {"tlsa tlsa-invalid tlsa-invalid mx1.example.com 192.0.2.1"}},
      {"txt servfail, nothing cached: no probe, nothing (maybe our own resolver)",
       [](World& w) {
         w.dns.set("_mta-sts.example.com", status_answer(DnsStatus::ServFail));
         w.mx.set_mx("example.com", mx_answer({kMx1}));
         w.prober.set("192.0.2.1", verified());
       },
       1,
       {}},
      {"two TXT records, nothing cached: the domain's own error, no probe",
       [](World& w) {
         w.dns.set("_mta-sts.example.com", txt_answer({"v=STSv1; id=1;", "v=STSv1; id=2;"}));
         w.mx.set_mx("example.com", mx_answer({kMx1}));
         w.prober.set("192.0.2.1", verified());
       },
       1,
       {"no-policy-found sts-policy-invalid txt-multiple-records  "}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    World w;
    RecordingSink sink;
    c.setup(w);
    w.start();
    w.resolver->set_tlsrpt_sink(&sink);
    w.checker->set_tlsrpt_sink(&sink);
    for (int i = 0; i < c.checks; ++i) w.check();
    w.checker->wait_idle();
    w.resolver->wait_idle();
    std::vector<std::string> got;
    for (const auto& s : sink.sessions()) {
      got.push_back(describe(s));
      EXPECT_EQ(s.policy_domain, "example.com");
      if (s.policy_type == "tlsa") {
        EXPECT_EQ(s.mx_patterns, "mx1.example.com");
      }
    }
    EXPECT_EQ(got, c.expected);
  }
}

TEST(NextHopChecker, TlsrptSessionCarriesThePolicy) {
  World w;
  RecordingSink sink;
  w.mx.set_mx("example.com", mx_answer({kMx1}));
  ProbeResult failed = expired();
  failed.source_address = "192.0.2.200";
  w.prober.set("192.0.2.1", failed);
  w.start();
  w.checker->set_tlsrpt_sink(&sink);
  w.check();
  w.mx.set_tlsa("mx1.example.com", tlsa_answer({tlsa_record()}, DnsSecurity::Secure));
  w.prober.set("192.0.2.1", dane_verified());
  w.check();
  w.checker->wait_idle();
  const auto sessions = sink.sessions();
  ASSERT_EQ(sessions.size(), 2U);
  EXPECT_EQ(sessions[0].policy_string, kEnforce);
  EXPECT_EQ(sessions[0].mx_patterns, "mx1.example.com mx2.example.com example.com");
  EXPECT_EQ(sessions[0].sending_mta_ip, "192.0.2.200");
  EXPECT_EQ(sessions[1].policy_type, "tlsa");
  EXPECT_EQ(sessions[1].mx_patterns, "mx1.example.com");
  std::string hex;
  for (int i = 0; i < 32; ++i) hex += "AB";
  EXPECT_EQ(sessions[1].policy_string, "3 1 1 " + hex) << "RFC 8460 §4.4: no owner name or class";
}

// A "mx not in policy" failure is recorded again once the failure TTL has
// passed, like the probe it stands for.
TEST(NextHopChecker, TlsrptMxNotInPolicyAgainAfterTtl) {
  World w;
  RecordingSink sink;
  w.mx.set_mx("example.com", mx_answer({{10, "mail.other.net"}}));
  w.start();
  w.checker->set_tlsrpt_sink(&sink);
  const std::vector<std::pair<std::int64_t, std::size_t>> steps{{0, 1}, {299, 1}, {1, 2}, {10, 2}};
  for (const auto& [advance, expected] : steps) {
    w.clock.advance(advance);
    w.check();
    EXPECT_EQ(sink.sessions().size(), expected) << "after advancing " << advance;
  }
}

// A probe made for one domain counts once for every policy domain whose mail
// it decided, per probe lifetime (README "TLSRPT records"): a domain whose MX
// another domain's mail probed first is not left without a session.
TEST(NextHopChecker, TlsrptSharedMxCountsOncePerDomainPerProbeLifetime) {
  World w;
  RecordingSink sink;
  w.publish("other.example", kEnforce);  // its policy lists mx1.example.com too
  w.mx.set_mx("example.com", mx_answer({kMx1}));
  w.mx.set_mx("other.example", mx_answer({kMx1}));
  w.prober.set("192.0.2.1", expired());
  w.start();
  w.checker->set_tlsrpt_sink(&sink);
  const NextHop other{"other.example", NextHopKind::RecipientDomain, "", "", false, 25};
  const auto domains_recorded = [&sink] {
    std::vector<std::string> out;
    for (const auto& s : sink.sessions()) out.push_back(s.policy_domain);
    return out;
  };
  w.check();
  w.check(other);
  w.check();
  w.check(other);
  w.checker->wait_idle();
  EXPECT_EQ(w.prober.calls(), 1) << "one probe";
  EXPECT_EQ(domains_recorded(), (std::vector<std::string>{"example.com", "other.example"}));
  w.clock.advance(300);  // the failure's TTL: probed again, counted again for each
  w.check(other);
  w.check();
  w.checker->wait_idle();
  EXPECT_EQ(w.prober.calls(), 2);
  EXPECT_EQ(domains_recorded(),
            (std::vector<std::string>{"example.com", "other.example", "other.example", "example.com"}));
}

// A domain that joins a probe another domain started counts once too.
TEST(NextHopChecker, TlsrptDomainJoiningAnotherDomainsProbeCountsOnce) {
  World w;
  RecordingSink sink;
  w.publish("other.example", kEnforce);
  w.mx.set_mx("example.com", mx_answer({kMx1}));
  w.mx.set_mx("other.example", mx_answer({kMx1}));
  w.prober.set("192.0.2.1", expired());
  w.prober.set_delay(std::chrono::milliseconds(300));
  w.start();
  w.checker->set_tlsrpt_sink(&sink);
  ASSERT_TRUE(w.resolver->resolve("example.com", soon()).policy.has_value());
  ASSERT_TRUE(w.resolver->resolve("other.example", soon()).policy.has_value());
  const NextHop other{"other.example", NextHopKind::RecipientDomain, "", "", false, 25};
  std::thread first([&w] { w.check(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the probe is running
  w.check(other);
  first.join();
  w.checker->wait_idle();
  EXPECT_EQ(w.prober.calls(), 1);
  std::vector<std::string> domains;
  for (const auto& s : sink.sessions()) domains.push_back(s.policy_domain);
  std::sort(domains.begin(), domains.end());
  EXPECT_EQ(domains, (std::vector<std::string>{"example.com", "other.example"}));
}

// The caller gives up at its deadline; the probe still runs, and is recorded.
TEST(NextHopChecker, TlsrptProbeFinishingAfterTheDeadlineIsRecorded) {
  World w;
  RecordingSink sink;
  w.mx.set_mx("example.com", mx_answer({kMx1}));
  w.prober.set("192.0.2.1", verified());
  w.prober.set_delay(std::chrono::milliseconds(300));
  w.start();
  w.checker->set_tlsrpt_sink(&sink);
  ASSERT_TRUE(w.resolver->resolve("example.com", soon()).policy.has_value());
  EXPECT_TRUE(w.check(recipient(), 50).facts.deadline_passed);
  w.checker->wait_idle();
  ASSERT_EQ(sink.sessions().size(), 1U);
  EXPECT_TRUE(sink.sessions()[0].success);
  w.check();
  EXPECT_EQ(sink.sessions().size(), 1U) << "the retry is a cache hit";
}

}  // namespace
}  // namespace mtasts::testing
