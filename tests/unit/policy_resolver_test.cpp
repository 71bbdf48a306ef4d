// The resolution engine against scripted sources: RFC 8461 §3.3, §5.1, §8.1.
#include "policy/engine/refresher.h"
#include "policy/engine/resolver.h"
#include "policy/engine/tlsrpt_buffer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <mutex>
#include <thread>
#include <tuple>

#include "fakes/fake_sources.h"
#include "fakes/log_capture.h"
#include "fakes/recording_sink.h"

namespace mtasts::testing {
namespace {

constexpr const char* kEnforce = "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 86400\n";
constexpr const char* kTesting = "version: STSv1\nmode: testing\nmx: mx.example.com\nmax_age: 86400\n";
constexpr const char* kNone = "version: STSv1\nmode: none\nmax_age: 86400\n";

Deadline soon(int ms = 2000) { return std::chrono::steady_clock::now() + std::chrono::milliseconds(ms); }

struct World {
  FakeDns dns;
  FakeFetcher fetcher;
  MemoryStore store;
  FakeClock clock;
  ResolverConfig config;
  std::unique_ptr<Resolver> resolver;

  World() {
    dns.set("mta-sts.example.com", txt_answer({"127.0.0.1"}));
    config.fetch_backoff = 300;
    config.txt_recheck_interval = 60;
    restart();
  }
  void restart() {
    resolver.reset();
    resolver = std::make_unique<Resolver>(dns, fetcher, store, clock, config);
  }
  void publish(const std::string& id, const char* body, DnsSecurity sec = DnsSecurity::Insecure) {
    dns.set("_mta-sts.example.com", txt_answer({"v=STSv1; id=" + id + ";"}, sec));
    fetcher.set("example.com", FetchedBody{body});
  }
  Resolution resolve(int deadline_ms = 2000) { return resolver->resolve("example.com", soon(deadline_ms)); }
};

// One resolve from a scripted world, no cache.
struct FirstContactCase {
  std::string name;
  DnsAnswer txt;
  Result<FetchedBody, FetchError> fetch;
  PolicySource source;
  std::optional<ResultType> result_type;
  std::string reason;
  bool temporary;
  int fetches;
};

TEST(Resolver, FirstContactTable) {
  const FetchError e404{ResultType::StsPolicyFetchError, "http-404", "", false};
  const FetchError e503{ResultType::StsPolicyFetchError, "http-503", "", true};
  const FetchError timeout{ResultType::StsPolicyFetchError, "timeout", "", true};
  const FetchError expired{ResultType::StsWebpkiInvalid, "cert-expired", "", false};
  // A reset or a plain-HTTP answer at the policy host: the fetcher's own
  // `temporary`, not the spelling of its reason, decides.
  const FetchError handshake{ResultType::StsPolicyFetchError, "tls-handshake", "", true};
  const FetchError odd_permanent{ResultType::StsPolicyFetchError, "timeout", "", false};
  const std::vector<FirstContactCase> cases{
      {"enforce",
       txt_answer({"v=STSv1; id=1;"}),
       FetchedBody{kEnforce},
       PolicySource::Fetched,
       {},
       "",
       false,
       1},
      {"no txt",
       status_answer(DnsStatus::NxDomain),
       FetchedBody{kEnforce},
       PolicySource::None,
       {},
       "",
       false,
       0},
      {"nodata",
       status_answer(DnsStatus::NoData),
       FetchedBody{kEnforce},
       PolicySource::None,
       {},
       "",
       false,
       0},
      {"unrelated txt",
       txt_answer({"v=spf1 -all"}),
       FetchedBody{kEnforce},
       PolicySource::None,
       {},
       "",
       false,
       0},
      {"two records",
       txt_answer({"v=STSv1; id=1;", "v=STSv1; id=2;"}),
       FetchedBody{kEnforce},
       PolicySource::None,
       {},
       "txt-multiple-records",
       false,
       0},
      {"bad txt",
       txt_answer({"v=STSv1; id=;"}),
       FetchedBody{kEnforce},
       PolicySource::None,
       {},
       "txt-syntax",
       false,
       0},
      {"bogus", status_answer(DnsStatus::ServFail, DnsSecurity::Bogus), FetchedBody{kEnforce},
       PolicySource::None, ResultType::StsPolicyFetchError, "dnssec-bogus", true, 0},
      {"servfail", status_answer(DnsStatus::ServFail), FetchedBody{kEnforce}, PolicySource::None,
       ResultType::StsPolicyFetchError, "dns-servfail", true, 0},
      {"dns timeout", status_answer(DnsStatus::Timeout), FetchedBody{kEnforce}, PolicySource::None,
       ResultType::StsPolicyFetchError, "dns-timeout", true, 0},
      {"404", txt_answer({"v=STSv1; id=1;"}), e404, PolicySource::None, ResultType::StsPolicyFetchError,
       "http-404", false, 1},
      {"503", txt_answer({"v=STSv1; id=1;"}), e503, PolicySource::None, ResultType::StsPolicyFetchError,
       "http-503", true, 1},
      {"timeout", txt_answer({"v=STSv1; id=1;"}), timeout, PolicySource::None,
       ResultType::StsPolicyFetchError, "timeout", true, 1},
      {"tls handshake", txt_answer({"v=STSv1; id=1;"}), handshake, PolicySource::None,
       ResultType::StsPolicyFetchError, "tls-handshake", true, 1},
      {"fetcher says permanent", txt_answer({"v=STSv1; id=1;"}), odd_permanent, PolicySource::None,
       ResultType::StsPolicyFetchError, "timeout", false, 1},
      {"expired cert", txt_answer({"v=STSv1; id=1;"}), expired, PolicySource::None,
       ResultType::StsWebpkiInvalid, "cert-expired", false, 1},
      {"bad policy", txt_answer({"v=STSv1; id=1;"}), FetchedBody{"version: STSv1\nmode: enforce\n"},
       PolicySource::None, ResultType::StsPolicyInvalid, "policy-syntax", false, 1},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    World w;
    w.dns.set("_mta-sts.example.com", c.txt);
    w.fetcher.set("example.com", c.fetch);
    const auto r = w.resolve();
    EXPECT_EQ(r.source, c.source);
    EXPECT_EQ(r.result_type, c.result_type);
    EXPECT_EQ(r.reason, c.reason);
    EXPECT_EQ(r.temporary, c.temporary);
    EXPECT_EQ(w.fetcher.calls("example.com"), c.fetches);
    EXPECT_EQ(r.policy.has_value(), c.source == PolicySource::Fetched);
  }
}

TEST(Resolver, PolicyHostWithoutAddressIsDefinitelyNoPolicy) {
  World w;
  w.dns.set("_mta-sts.example.com", txt_answer({"v=STSv1; id=1;"}));
  w.dns.set("mta-sts.example.com", status_answer(DnsStatus::NxDomain));
  const auto r = w.resolve();
  EXPECT_EQ(r.source, PolicySource::None);
  EXPECT_EQ(r.reason, "dns-no-address");
  EXPECT_FALSE(r.temporary);
  w.dns.set("mta-sts.example.com", status_answer(DnsStatus::ServFail));
  w.store.clear_failure("example.com");
  w.restart();
  const auto servfail = w.resolve();
  EXPECT_EQ(servfail.reason, "dns-servfail");
  EXPECT_TRUE(servfail.temporary);
}

// The back-off replays a failure as it was found: a temporary one stays
// "unknown" across the 5 minutes and across a restart (read from the store).
TEST(Resolver, BackoffReplaysWhetherTheFailureWasTemporary) {
  World w;
  w.dns.set("_mta-sts.example.com", txt_answer({"v=STSv1; id=1;"}));
  w.fetcher.set("example.com", FetchError{ResultType::StsPolicyFetchError, "tls-handshake", "", true});
  ASSERT_TRUE(w.resolve().temporary);
  w.clock.advance(61);
  w.restart();
  const auto replayed = w.resolve();
  EXPECT_EQ(w.fetcher.calls("example.com"), 1) << "within the back-off: no fetch";
  EXPECT_EQ(replayed.reason, "tls-handshake");
  EXPECT_TRUE(replayed.temporary);
  const auto failure = w.store.load_failure("example.com");
  ASSERT_TRUE(failure);
  EXPECT_TRUE(failure->temporary);

  w.clock.advance(300);
  w.fetcher.set("example.com", FetchError{ResultType::StsWebpkiInvalid, "cert-expired", "", false});
  ASSERT_FALSE(w.resolve().temporary);
  w.clock.advance(61);
  w.restart();
  const auto permanent = w.resolve();
  EXPECT_EQ(w.fetcher.calls("example.com"), 2);
  EXPECT_EQ(permanent.reason, "cert-expired");
  EXPECT_FALSE(permanent.temporary);
}

// The RCPT path never waits on the store: a stored policy is read inside
// the discovery job, so a store stuck behind a writer (a flush, an
// operator's import) costs the caller its deadline at most.
TEST(Resolver, SlowStoreNeverHoldsTheCallerPastItsDeadline) {
  World w;
  w.publish("1", kEnforce);
  w.resolve();
  w.clock.advance(30);
  w.restart();  // memory empty: the policy must come from the store
  w.store.set_load_delay(std::chrono::milliseconds(1500));
  const auto started = std::chrono::steady_clock::now();
  const auto r = w.resolve(200);
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_LT(took, std::chrono::milliseconds(800)) << "the caller waited on the store";
  EXPECT_EQ(r.reason, "deadline");
  EXPECT_TRUE(r.temporary);
  w.resolver->wait_idle();
  w.store.set_load_delay(std::chrono::milliseconds(0));
  const auto later = w.resolve();
  EXPECT_EQ(later.source, PolicySource::Cache) << "the job warmed the cache for the retry";
  EXPECT_EQ(w.fetcher.calls("example.com"), 1);
}

TEST(Resolver, FetchedPolicyIsStoredAndServedFromMemory) {
  World w;
  w.publish("1", kEnforce, DnsSecurity::Secure);
  auto r = w.resolve();
  ASSERT_EQ(r.source, PolicySource::Fetched);
  EXPECT_EQ(r.dnssec, DnsSecurity::Secure);
  EXPECT_EQ(r.policy->policy.mode, Mode::Enforce);
  EXPECT_EQ(r.policy->expires_at, w.clock.now() + 86400);
  ASSERT_TRUE(w.store.load("example.com"));
  const int dns_calls = w.dns.calls("_mta-sts.example.com");
  w.clock.advance(30);
  r = w.resolve();
  EXPECT_EQ(r.source, PolicySource::Cache);
  EXPECT_EQ(w.dns.calls("_mta-sts.example.com"), dns_calls) << "within the recheck interval: no DNS";
  EXPECT_EQ(w.fetcher.calls("example.com"), 1);
}

TEST(Resolver, SameIdAfterRecheckIntervalKeepsCacheWithoutFetch) {
  World w;
  w.publish("1", kEnforce);
  w.resolve();
  w.clock.advance(61);
  const auto r = w.resolve();
  EXPECT_EQ(r.source, PolicySource::Cache);
  EXPECT_EQ(w.dns.calls("_mta-sts.example.com"), 2);
  EXPECT_EQ(w.fetcher.calls("example.com"), 1);
  EXPECT_EQ(w.store.load("example.com")->last_checked, w.clock.now());
}

TEST(Resolver, NewIdRefetchesAndReplacesCache) {
  World w;
  w.publish("1", kEnforce);
  w.resolve();
  w.clock.advance(61);
  w.publish("2", kTesting);
  const auto r = w.resolve();
  EXPECT_EQ(r.source, PolicySource::Fetched);
  EXPECT_EQ(r.policy->policy.mode, Mode::Testing);
  EXPECT_EQ(w.store.load("example.com")->txt_id, "2");
}

TEST(Resolver, NewIdWithFailingFetchKeepsCacheAndBacksOff) {
  World w;
  w.publish("1", kEnforce);
  w.resolve();
  w.clock.advance(61);
  w.dns.set("_mta-sts.example.com", txt_answer({"v=STSv1; id=2;"}));
  w.fetcher.set("example.com", FetchError{ResultType::StsPolicyFetchError, "http-500", "", true});
  auto r = w.resolve();
  EXPECT_EQ(r.source, PolicySource::Stale);
  EXPECT_EQ(r.policy->policy.mode, Mode::Enforce);
  EXPECT_EQ(r.reason, "http-500");
  EXPECT_EQ(w.store.load("example.com")->txt_id, "1") << "cache replaced only after a successful fetch";
  EXPECT_EQ(w.fetcher.calls("example.com"), 2);

  w.clock.advance(120);  // past the recheck interval, inside the back-off
  r = w.resolve();
  EXPECT_EQ(r.source, PolicySource::Stale);
  EXPECT_EQ(r.reason, "http-500");
  EXPECT_EQ(w.fetcher.calls("example.com"), 2) << "no retry within the back-off";

  w.clock.advance(300);
  w.fetcher.set("example.com", FetchedBody{kTesting});
  r = w.resolve();
  EXPECT_EQ(r.source, PolicySource::Fetched);
  EXPECT_EQ(w.fetcher.calls("example.com"), 3);
}

TEST(Resolver, BackOffAlsoHoldsAcrossRestart) {
  World w;
  w.dns.set("_mta-sts.example.com", txt_answer({"v=STSv1; id=1;"}));
  w.fetcher.set("example.com", FetchError{ResultType::StsPolicyFetchError, "http-404", "", false});
  w.resolve();
  w.restart();
  w.clock.advance(100);
  const auto r = w.resolve();
  EXPECT_EQ(r.reason, "http-404");
  EXPECT_EQ(w.fetcher.calls("example.com"), 1);
}

// Issue #10: the back-off is kept in memory too. With a store that can
// neither write nor read it (read-only, full, corrupt), a broken policy host
// is fetched once per back-off, not once per message, and each fetch is one
// TLSRPT failure, not one per message.
TEST(Resolver, BackOffHoldsInMemoryWhenTheStoreCannotKeepIt) {
  World w;
  RecordingSink sink;
  w.resolver->set_tlsrpt_sink(&sink);
  w.store.set_failures_broken(true);
  w.dns.set("_mta-sts.example.com", txt_answer({"v=STSv1; id=1;"}));
  w.fetcher.set("example.com", FetchError{ResultType::StsPolicyFetchError, "http-500", "", true});
  for (int message = 0; message < 50; ++message) {
    const auto r = w.resolve();
    EXPECT_EQ(r.reason, "http-500");
    EXPECT_TRUE(r.temporary);
    w.clock.advance(1);
  }
  w.resolver->wait_idle();
  EXPECT_EQ(w.fetcher.calls("example.com"), 1) << "50 messages within the back-off";
  EXPECT_EQ(sink.sessions().size(), 1U);

  w.clock.advance(300);  // the back-off is over: one new attempt
  w.resolve();
  EXPECT_EQ(w.fetcher.calls("example.com"), 2);
  w.publish("2", kEnforce);  // a new id is not held back by the old one's back-off
  EXPECT_EQ(w.resolve().source, PolicySource::Fetched);
}

struct CachedCase {
  std::string name;
  DnsAnswer txt;
  PolicySource source;
  std::optional<ResultType> result_type;
  std::string reason;
};

TEST(Resolver, CachedPolicySurvivesDiscoveryFailures) {
  const std::vector<CachedCase> cases{
      {"txt removed", status_answer(DnsStatus::NxDomain), PolicySource::Stale, {}, "txt-missing"},
      {"txt broken", txt_answer({"v=STSv1; id=#;"}), PolicySource::Stale, {}, "txt-syntax"},
      {"bogus", status_answer(DnsStatus::ServFail, DnsSecurity::Bogus), PolicySource::Stale,
       ResultType::StsPolicyFetchError, "dnssec-bogus"},
      {"servfail", status_answer(DnsStatus::ServFail), PolicySource::Stale, ResultType::StsPolicyFetchError,
       "dns-servfail"},
      {"same id", txt_answer({"v=STSv1; id=1;"}), PolicySource::Cache, {}, ""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    World w;
    w.publish("1", kEnforce);
    w.resolve();
    w.clock.advance(61);
    w.dns.set("_mta-sts.example.com", c.txt);
    auto r = w.resolve();
    EXPECT_EQ(r.source, c.source);
    EXPECT_EQ(r.result_type, c.result_type);
    EXPECT_EQ(r.reason, c.reason);
    EXPECT_FALSE(r.temporary);
    ASSERT_TRUE(r.policy);
    EXPECT_EQ(r.policy->policy.mode, Mode::Enforce);
    // The answer from memory before the next check says the same.
    w.clock.advance(10);
    r = w.resolve();
    EXPECT_EQ(r.source, c.source);
    EXPECT_EQ(r.reason, c.reason);
  }
}

TEST(Resolver, ExpiredCacheNoLongerApplies) {
  World w;
  w.publish("1", "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 100\n");
  w.resolve();
  w.clock.advance(101);
  w.dns.set("_mta-sts.example.com", status_answer(DnsStatus::NxDomain));
  const auto r = w.resolve();
  EXPECT_EQ(r.source, PolicySource::None);
  EXPECT_FALSE(r.policy);
}

TEST(Resolver, FetchedModeNoneReplacesEnforceAtOnce) {
  World w;
  w.publish("1", kEnforce);
  w.resolve();
  w.clock.advance(61);
  w.publish("2", kNone);
  const auto r = w.resolve();
  EXPECT_EQ(r.policy->policy.mode, Mode::None);
  EXPECT_EQ(w.store.load("example.com")->policy.mode, Mode::None);
}

TEST(Resolver, RestartServesStoredPolicyWithoutFetch) {
  World w;
  w.publish("1", kEnforce);
  w.resolve();
  w.restart();
  w.clock.advance(10);
  auto r = w.resolve();
  EXPECT_EQ(r.source, PolicySource::Cache);
  w.clock.advance(100);
  r = w.resolve();
  EXPECT_EQ(r.source, PolicySource::Cache);
  EXPECT_EQ(w.fetcher.calls("example.com"), 1);
}

TEST(Resolver, ConcurrentCallersShareOneFetch) {
  World w;
  w.publish("1", kEnforce);
  w.fetcher.set_delay(std::chrono::milliseconds(200));
  std::vector<std::thread> callers;
  std::atomic<int> fetched_or_cached{0};
  for (int i = 0; i < 16; ++i)
    callers.emplace_back([&] {
      const auto r = w.resolve(5000);
      if (r.policy && r.policy->policy.mode == Mode::Enforce) ++fetched_or_cached;
    });
  for (auto& t : callers) t.join();
  EXPECT_EQ(fetched_or_cached.load(), 16);
  EXPECT_EQ(w.fetcher.calls("example.com"), 1);
}

TEST(Resolver, DeadlineAnswersUnknownAndJobFillsCache) {
  World w;
  w.publish("1", kEnforce);
  w.fetcher.set_delay(std::chrono::milliseconds(300));
  auto r = w.resolve(20);
  EXPECT_EQ(r.source, PolicySource::None);
  EXPECT_TRUE(r.temporary);
  EXPECT_EQ(r.reason, "deadline");
  w.resolver->wait_idle();
  r = w.resolve(20);
  EXPECT_EQ(r.source, PolicySource::Cache);
  EXPECT_EQ(w.fetcher.calls("example.com"), 1);
}

TEST(Resolver, DeadlineWithCachedPolicyKeepsIt) {
  World w;
  w.publish("1", kEnforce);
  w.resolve();
  w.clock.advance(61);
  w.publish("2", kTesting);
  w.fetcher.set_delay(std::chrono::milliseconds(300));
  const auto r = w.resolve(20);
  EXPECT_EQ(r.source, PolicySource::Stale);
  EXPECT_EQ(r.policy->policy.mode, Mode::Enforce);
  EXPECT_FALSE(r.temporary);
  w.resolver->wait_idle();
}

TEST(Resolver, RefresherRefetchesDuePoliciesRegardlessOfId) {
  World w;
  w.publish("1", kEnforce);
  w.resolve();
  EXPECT_EQ(w.resolver->refresh_due(false), 0) << "not due yet";
  EXPECT_EQ(w.fetcher.calls("example.com"), 1);
  w.clock.advance(86400 / 2);  // half of max_age: due
  EXPECT_EQ(w.resolver->refresh_due(false), 1);
  EXPECT_EQ(w.fetcher.calls("example.com"), 2);
  EXPECT_EQ(w.resolver->refresh_due(true), 1) << "--force refetches even when not due";
  EXPECT_EQ(w.fetcher.calls("example.com"), 3);
}

// RFC 8461 §5.1: a policy past its expiry is not used, and a refresh must not
// bring it back; the refresher drops it from the store instead.
TEST(Resolver, RefresherNeverRevivesAnExpiredPolicy) {
  World w;
  w.publish("1", kEnforce);
  w.resolve();
  w.dns.set("_mta-sts.example.com", status_answer(DnsStatus::NxDomain));
  w.clock.advance(86400 + 1);
  EXPECT_EQ(w.resolve().source, PolicySource::None);
  EXPECT_EQ(w.resolver->refresh_due(true), 0) << "even --force does not refetch an expired policy";
  EXPECT_EQ(w.fetcher.calls("example.com"), 1);
  EXPECT_FALSE(w.store.load("example.com")) << "the expired policy is purged";
  EXPECT_EQ(w.resolve().source, PolicySource::None) << "and stays gone";
}

// §5.1, §8.3: with the TXT record removed the cached policy applies until it
// expires, and is not refreshed (refetching under the old id would extend
// it for ever).
TEST(Resolver, RefresherLeavesAPolicyWhoseTxtRecordIsGone) {
  World w;
  w.publish("1", kEnforce);
  w.resolve();
  const auto expires_at = w.store.load("example.com")->expires_at;
  w.dns.set("_mta-sts.example.com", status_answer(DnsStatus::NxDomain));
  w.clock.advance(86400 / 2);  // due
  EXPECT_EQ(w.resolver->refresh_due(false), 0);
  EXPECT_EQ(w.fetcher.calls("example.com"), 1);
  ASSERT_TRUE(w.store.load("example.com"));
  EXPECT_EQ(w.store.load("example.com")->expires_at, expires_at) << "not extended";
  EXPECT_EQ(w.resolve().source, PolicySource::Stale) << "still applies until it expires";
}

// Refreshing keeps protection for domains still mailed, not for every domain
// ever mailed: a policy unused for refresh_unused_for seconds lapses at its
// own expiry.
TEST(Resolver, RefresherSkipsPoliciesNoLongerUsed) {
  World w;
  w.config.refresh_unused_for = 3600;
  w.restart();
  w.publish("1", kEnforce);
  w.resolve();
  w.resolver->flush();
  w.clock.advance(86400 / 2);  // due, unused for 12 h
  EXPECT_EQ(w.resolver->refresh_due(false), 0);
  EXPECT_EQ(w.fetcher.calls("example.com"), 1);
  w.resolve();  // used again
  w.resolver->flush();
  EXPECT_EQ(w.resolver->refresh_due(false), 1);
  EXPECT_EQ(w.fetcher.calls("example.com"), 2);
}

// A shutdown during a refresh pass: the pass ends after the domain it is on.
// A pass runs on the worker pool four policies at a time and asks `stop`
// before each batch.
TEST(Resolver, RefreshPassStopsWhenAsked) {
  World w;
  const std::vector<std::string> domains{"a.example", "b.example", "c.example",
                                         "d.example", "e.example", "f.example"};
  for (const std::string& domain : domains) {
    w.dns.set("_mta-sts." + domain, txt_answer({"v=STSv1; id=1;"}));
    w.dns.set("mta-sts." + domain, txt_answer({"127.0.0.1"}));
    w.fetcher.set(domain, FetchedBody{kEnforce});
    w.resolver->resolve(domain, soon());
  }
  int asked = 0;
  EXPECT_EQ(w.resolver->refresh_due(true, [&asked] { return ++asked > 1; }), 4);
  EXPECT_EQ(asked, 2) << "asked before each batch, stopped before the second";
  EXPECT_EQ(w.resolver->refresh_due(true), 6) << "no stop: every due policy";
}

// Refreshes run side by side on the pool, not one domain after another.
TEST(Resolver, RefreshPassFetchesInParallel) {
  World w;
  w.fetcher.set_delay(std::chrono::milliseconds(0));
  const std::vector<std::string> domains{"a.example", "b.example", "c.example", "d.example"};
  for (const std::string& domain : domains) {
    w.dns.set("_mta-sts." + domain, txt_answer({"v=STSv1; id=1;"}));
    w.dns.set("mta-sts." + domain, txt_answer({"127.0.0.1"}));
    w.fetcher.set(domain, FetchedBody{kEnforce});
    w.resolver->resolve(domain, soon());
  }
  w.fetcher.set_delay(std::chrono::milliseconds(300));
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(w.resolver->refresh_due(true), 4);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(1000))
      << "four 300 ms fetches one after another would take 1.2 s";
}

TEST(Resolver, FlushWritesEveryUsedPolicyInOneTransaction) {
  World w;
  w.publish("1", kEnforce);
  w.resolve();
  w.clock.advance(5);
  w.resolve();  // a use from memory: last_used changes there only
  w.resolver->flush();
  EXPECT_EQ(w.store.touch_alls(), 1);
  const auto stored = w.store.load("example.com");
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->last_used, w.clock.now());
  w.resolver->flush();
  EXPECT_EQ(w.store.touch_alls(), 1) << "nothing dirty: no write";
}

TEST(Resolver, AFailedFlushKeepsTheMarksForTheNextOne) {
  World w;
  w.publish("1", kEnforce);
  w.resolve();
  w.clock.advance(5);
  w.resolve();
  w.store.set_full(true);
  w.resolver->flush();
  EXPECT_EQ(w.store.touch_alls(), 0);
  w.store.set_full(false);
  w.resolver->flush();
  EXPECT_EQ(w.store.touch_alls(), 1);
  EXPECT_EQ(w.store.load("example.com")->last_used, w.clock.now());
}

// A flood of new domains must not pile up one thread each: beyond max_jobs
// discoveries the answer is a temporary error at once (RFC 8461 §5: no
// policy known, so delivery goes on), or the cached policy when there is one.
TEST(Resolver, DiscoveriesBeyondMaxJobsAnswerOverloadedAtOnce) {
  World w;
  w.config.max_jobs = 2;
  w.restart();
  w.publish("1", kEnforce);
  w.resolve();  // example.com cached
  for (const std::string d : {"a.example", "b.example", "c.example"}) {
    w.dns.set("_mta-sts." + d, txt_answer({"v=STSv1; id=1;"}));
    w.dns.set("mta-sts." + d, txt_answer({"127.0.0.1"}));  // the policy host's address
    w.fetcher.set(d, FetchedBody{kEnforce});
  }
  w.fetcher.set_delay(std::chrono::milliseconds(400));
  EXPECT_EQ(w.resolver->resolve("a.example", soon(10)).reason, "deadline");
  EXPECT_EQ(w.resolver->resolve("b.example", soon(10)).reason, "deadline");
  const auto before = std::chrono::steady_clock::now();
  const auto refused = w.resolver->resolve("c.example", soon(2000));
  EXPECT_LT(std::chrono::steady_clock::now() - before, std::chrono::milliseconds(100)) << "no wait";
  EXPECT_EQ(refused.reason, "overloaded");
  EXPECT_TRUE(refused.temporary);
  EXPECT_EQ(refused.source, PolicySource::None);
  EXPECT_EQ(w.dns.calls("_mta-sts.c.example"), 0) << "no discovery started";
  w.clock.advance(61);  // example.com's TXT id is due for a re-check: no room either
  const auto cached = w.resolve();
  EXPECT_EQ(cached.source, PolicySource::Stale);
  EXPECT_EQ(cached.reason, "overloaded");
  ASSERT_TRUE(cached.policy);
  EXPECT_EQ(cached.policy->policy.mode, Mode::Enforce);
  w.resolver->wait_idle();
  w.fetcher.set_delay(std::chrono::milliseconds(0));
  EXPECT_EQ(w.resolver->resolve("c.example", soon(2000)).source, PolicySource::Fetched) << "room again";
}

TEST(Resolver, RefresherKeepsCacheWhenFetchFails) {
  World w;
  w.publish("1", kEnforce);
  w.resolve();
  w.fetcher.set("example.com", FetchError{ResultType::StsPolicyFetchError, "timeout", "", true});
  EXPECT_EQ(w.resolver->refresh_due(true), 0);
  const auto stored = w.store.load("example.com");
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->policy.mode, Mode::Enforce);
  EXPECT_EQ(stored->last_error, "sts-policy-fetch-error:timeout");
}

TEST(Resolver, FullStoreStillAnswersFromTheFetch) {
  World w;
  w.store.set_full(true);
  w.publish("1", kEnforce);
  const auto r = w.resolve();
  EXPECT_EQ(r.source, PolicySource::Fetched);
  EXPECT_EQ(r.policy->policy.mode, Mode::Enforce);
  w.clock.advance(10);
  EXPECT_EQ(w.resolve().source, PolicySource::Cache) << "memory still holds it";
}

// Issue #10: a failed store write is logged once, by the store; the
// resolver used to add a second line for each (save, touch, flush).
TEST(Resolver, FailedStoreWritesAreNotLoggedTwice) {
  World w;
  w.publish("1", kEnforce);
  ASSERT_EQ(w.resolve().source, PolicySource::Fetched);
  w.store.set_full(true);  // the fake store fails without logging, as if the line were rate-limited
  const LogCapture log;
  w.clock.advance(61);
  w.publish("2", kTesting);
  ASSERT_EQ(w.resolve().source, PolicySource::Fetched);  // save fails
  w.clock.advance(61);
  ASSERT_EQ(w.resolve().source, PolicySource::Cache);  // touch fails
  w.resolver->flush();
  w.clock.advance(3600);
  ASSERT_EQ(w.resolver->refresh_due(true), 1);  // save fails
  w.resolver->wait_idle();
  EXPECT_EQ(log.lines_with("store event="), 0) << log.text();
}

TEST(Resolver, NoPolicyIsRememberedForTheRecheckInterval) {
  World w;
  w.dns.set("_mta-sts.example.com", status_answer(DnsStatus::NxDomain));
  w.resolve();
  w.clock.advance(30);
  EXPECT_EQ(w.resolve().source, PolicySource::None);
  EXPECT_EQ(w.dns.calls("_mta-sts.example.com"), 1);
  w.clock.advance(31);
  w.resolve();
  EXPECT_EQ(w.dns.calls("_mta-sts.example.com"), 2);
}

}  // namespace
}  // namespace mtasts::testing

namespace mtasts::testing {
namespace {

TEST(BackgroundRefresher, RefreshesDuePoliciesOnItsOwnAndStopsCleanly) {
  World w;
  w.publish("1", kEnforce);
  w.resolve();
  w.clock.advance(86400 / 2);  // due
  {
    BackgroundRefresher refresher(*w.resolver, std::chrono::milliseconds(10));
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    // A pass counts once it has finished, just after its fetch: wait for both.
    while ((w.fetcher.calls("example.com") < 2 || refresher.passes() < 1) &&
           std::chrono::steady_clock::now() < give_up)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_GE(refresher.passes(), 1);
  }
  EXPECT_EQ(w.fetcher.calls("example.com"), 2) << "one refresh: the refetched policy is not due again";
}

// A stop is asked for without waiting, then waited for with a limit.
TEST(BackgroundRefresher, StopIsRequestedThenAwaited) {
  World w;
  BackgroundRefresher refresher(*w.resolver, std::chrono::hours(1));
  EXPECT_FALSE(refresher.wait_stopped_until(std::chrono::steady_clock::now() + std::chrono::milliseconds(20)))
      << "running until asked";
  refresher.request_stop();
  EXPECT_TRUE(refresher.wait_stopped_until(std::chrono::steady_clock::now() + std::chrono::seconds(10)));
}

TEST(BackgroundRefresher, EachPassWritesLastUsedToTheStore) {
  World w;
  w.publish("1", kEnforce);
  w.resolve();
  w.clock.advance(5);
  w.resolve();  // used from memory: last_used is dirty there, the policy is not due
  {
    BackgroundRefresher refresher(*w.resolver, std::chrono::milliseconds(10));
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (refresher.passes() < 1 && std::chrono::steady_clock::now() < give_up)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_GE(refresher.passes(), 1);
  }
  EXPECT_EQ(w.fetcher.calls("example.com"), 1) << "not due: no refetch";
  EXPECT_EQ(w.store.touch_alls(), 1);
  EXPECT_EQ(w.store.load("example.com")->last_used, w.clock.now());
}

// ---------------------------------------------------------------- TLSRPT
// RFC 8460 §4.3.2.2 / §4.4 (resolver.h, Readings): a TXT lookup or a policy
// fetch that actually ran and failed is one failed session; its policy type
// is that of the policy in force ("sts" with its text), else "sts" without
// text when a valid TXT record announced the policy, else "no-policy-found".
// A back-off replay, an answer from memory, a missing TXT record and a
// success are none.

struct DiscoveryReportCase {
  std::string name;
  const char* cached;  // published as id 1 and fetched first; nullptr: nothing cached
  DnsAnswer txt;
  Result<FetchedBody, FetchError> fetch;
  std::vector<std::int64_t> resolves_after;  // clock advance before each resolve
  // "policy-type result-type reason policy" per session; policy is
  // "enforce" (the cached enforce policy's text and mx) or "-" (none).
  std::vector<std::string> expected;
};

std::string describe(const TlsrptSession& s) {
  const std::string policy = s.policy_string.empty()       ? "-"
                             : s.policy_string == kEnforce ? "enforce"
                                                           : "other";
  return s.policy_type + " " + std::string(to_string(*s.result_type)) + " " + s.failure_reason_code + " " +
         policy;
}

std::vector<DiscoveryReportCase> discovery_report_cases() {
  const FetchError e404{ResultType::StsPolicyFetchError, "http-404", "", false};
  const FetchError e503{ResultType::StsPolicyFetchError, "http-503", "", true};
  const FetchError expired{ResultType::StsWebpkiInvalid, "cert-expired", "", false};
  const DnsAnswer id1 = txt_answer({"v=STSv1; id=1;"});
  const DnsAnswer id2 = txt_answer({"v=STSv1; id=2;"});
  const DnsAnswer servfail = status_answer(DnsStatus::ServFail);
  const DnsAnswer timeout = status_answer(DnsStatus::Timeout);
  const DnsAnswer bogus = status_answer(DnsStatus::ServFail, DnsSecurity::Bogus);
  const DnsAnswer two = txt_answer({"v=STSv1; id=1;", "v=STSv1; id=2;"});
  const DnsAnswer bad = txt_answer({"v=STSv1; id=;"});
  const DnsAnswer gone = status_answer(DnsStatus::NxDomain);
  const FetchedBody good{kEnforce};
  return {
      // Nothing cached, the TXT record valid: the fetch of the announced policy.
      {"404 once, then back-off replays",
       nullptr,
       id1,
       e404,
       {0, 61, 100},
       {"sts sts-policy-fetch-error http-404 -"}},
      {"back-off over: fetched and recorded again",
       nullptr,
       id1,
       e404,
       {0, 61, 300},
       {"sts sts-policy-fetch-error http-404 -", "sts sts-policy-fetch-error http-404 -"}},
      {"webpki", nullptr, id1, expired, {0}, {"sts sts-webpki-invalid cert-expired -"}},
      {"invalid policy",
       nullptr,
       id1,
       FetchedBody{"version: STSv1\nmode: enforce\n"},
       {0},
       {"sts sts-policy-invalid policy-syntax -"}},
      {"success: nothing", nullptr, id1, good, {0, 61}, {}},
      // Nothing cached, the TXT lookup failed: not recorded. A SERVFAIL, a
      // timeout or a bogus answer is as often our own resolver's outage or
      // trust anchor as the domain's; with no policy in force it would tell
      // every domain we mail that all its sessions failed.
      {"txt servfail, no policy: nothing", nullptr, servfail, e404, {0, 61}, {}},
      {"txt timeout, no policy: nothing", nullptr, timeout, e404, {0}, {}},
      {"txt dnssec-bogus, no policy: nothing", nullptr, bogus, e404, {0}, {}},
      // Nothing cached, the published record itself is wrong: no policy was found.
      {"two v=STSv1 records: again after the recheck interval",
       nullptr,
       two,
       good,
       {0, 30, 31},
       {"no-policy-found sts-policy-invalid txt-multiple-records -",
        "no-policy-found sts-policy-invalid txt-multiple-records -"}},
      {"txt syntax", nullptr, bad, good, {0}, {"no-policy-found sts-policy-invalid txt-syntax -"}},
      {"no txt record: nothing", nullptr, gone, good, {0, 61}, {}},
      {"unrelated txt: nothing", nullptr, txt_answer({"v=spf1 -all"}), good, {0}, {}},
      // A cached enforce policy stays in force: the failures are its own.
      {"enforce cached, txt servfail",
       kEnforce,
       servfail,
       good,
       {61, 61},
       {"sts sts-policy-fetch-error txt-servfail enforce",
        "sts sts-policy-fetch-error txt-servfail enforce"}},
      {"enforce cached, txt dnssec-bogus",
       kEnforce,
       bogus,
       good,
       {61},
       {"sts sts-policy-fetch-error txt-dnssec-bogus enforce"}},
      {"enforce cached, two records",
       kEnforce,
       two,
       good,
       {61},
       {"sts sts-policy-invalid txt-multiple-records enforce"}},
      {"enforce cached, answer from memory: nothing more",
       kEnforce,
       servfail,
       good,
       {61, 10, 10},
       {"sts sts-policy-fetch-error txt-servfail enforce"}},
      {"enforce cached, new id fails",
       kEnforce,
       id2,
       e503,
       {61},
       {"sts sts-policy-fetch-error http-503 enforce"}},
      {"enforce cached, txt removed: nothing (RFC 8461 §8.3)", kEnforce, gone, good, {61}, {}},
      // A cached mode none policy is no policy in force (RFC 8461 §5).
      {"none cached, txt servfail: nothing (no policy in force)", kNone, servfail, good, {61}, {}},
      {"none cached, two records",
       kNone,
       two,
       good,
       {61},
       {"no-policy-found sts-policy-invalid txt-multiple-records -"}},
      {"none cached, new id fails: the announced policy",
       kNone,
       id2,
       e404,
       {61},
       {"sts sts-policy-fetch-error http-404 -"}},
  };
}

TEST(Resolver, TlsrptDiscoveryFailureTable) {
  for (const auto& c : discovery_report_cases()) {
    SCOPED_TRACE(c.name);
    World w;
    RecordingSink sink;
    if (c.cached != nullptr) {
      w.publish("1", c.cached);
      ASSERT_EQ(w.resolve().source, PolicySource::Fetched);
    }
    w.resolver->set_tlsrpt_sink(&sink);
    w.dns.set("_mta-sts.example.com", c.txt);
    w.fetcher.set("example.com", c.fetch);
    std::vector<std::int64_t> times;
    for (const std::int64_t advance : c.resolves_after) {
      w.clock.advance(advance);
      w.resolve();
      times.push_back(w.clock.now());
    }
    w.resolver->wait_idle();
    std::vector<std::string> got;
    for (const auto& s : sink.sessions()) {
      got.push_back(describe(s));
      EXPECT_EQ(s.policy_domain, "example.com");
      EXPECT_FALSE(s.success);
      EXPECT_EQ(s.receiving_mx_hostname, "");
      EXPECT_EQ(s.receiving_ip, "");
      EXPECT_EQ(s.mx_patterns, s.policy_string.empty() ? "" : "mx.example.com");
      EXPECT_NE(std::find(times.begin(), times.end(), s.at), times.end()) << s.at;
    }
    EXPECT_EQ(got, c.expected);
  }
}

// Flooding: a domain whose TXT lookup fails on every message is one
// aggregate a day with the count of the lookups, in the real buffer.
TEST(Resolver, TlsrptTxtFailuresAggregatePerDomainDayAndReason) {
  World w;
  w.publish("1", kEnforce);  // a policy in force: its TXT failures are its own
  ASSERT_EQ(w.resolve().source, PolicySource::Fetched);
  TlsrptBufferConfig manual;
  manual.flush_interval = std::chrono::milliseconds(0);
  TlsrptBuffer buffer(nullptr, manual);
  w.resolver->set_tlsrpt_sink(&buffer);
  w.dns.set("_mta-sts.example.com", status_answer(DnsStatus::ServFail));
  for (int message = 0; message < 50; ++message) {
    w.clock.advance(61);  // past the TXT recheck interval: each resolve looks it up
    w.resolve();
  }
  w.dns.set("_mta-sts.example.com", status_answer(DnsStatus::Timeout));
  w.clock.advance(61);
  w.resolve();
  w.resolver->wait_idle();
  const auto rows = buffer.take();
  ASSERT_EQ(rows.size(), 2U);
  EXPECT_EQ(rows[0].policy_type, "sts");
  EXPECT_EQ(rows[0].failure_reason_code, "txt-servfail");
  EXPECT_EQ(rows[0].sessions, 50);
  EXPECT_EQ(rows[1].failure_reason_code, "txt-timeout");
  EXPECT_EQ(rows[1].sessions, 1);
}

// A failed fetch of a new id with a policy cached: the session names the
// policy still in force.
TEST(Resolver, TlsrptFetchFailureWithCachedPolicyNamesIt) {
  World w;
  RecordingSink sink;
  w.resolver->set_tlsrpt_sink(&sink);
  w.publish("1", kEnforce);
  ASSERT_EQ(w.resolve().source, PolicySource::Fetched);
  w.dns.set("_mta-sts.example.com", txt_answer({"v=STSv1; id=2;"}));
  w.fetcher.set("example.com", FetchError{ResultType::StsPolicyFetchError, "http-503", "", true});
  w.clock.advance(61);
  EXPECT_EQ(w.resolve().source, PolicySource::Stale);
  const auto sessions = sink.sessions();
  ASSERT_EQ(sessions.size(), 1U);
  EXPECT_EQ(sessions[0].policy_string, kEnforce);
  EXPECT_EQ(sessions[0].mx_patterns, "mx.example.com");
  EXPECT_EQ(sessions[0].failure_reason_code, "http-503");
  EXPECT_EQ(sessions[0].at, w.clock.now());
}

// The background refresh actually fetches: its failure is a session of the
// policy in force; under mode none (an opt-out, RFC 8461 §8.3) none.
TEST(Resolver, TlsrptFailedRefreshTable) {
  const std::vector<std::tuple<std::string, const char*, std::vector<std::string>>> cases{
      {"enforce", kEnforce, {"sts sts-webpki-invalid cert-expired enforce"}},
      {"testing", kTesting, {"sts sts-webpki-invalid cert-expired other"}},
      {"none: nothing", kNone, {}},
  };
  for (const auto& [name, body, expected] : cases) {
    SCOPED_TRACE(name);
    World w;
    RecordingSink sink;
    w.resolver->set_tlsrpt_sink(&sink);
    w.publish("1", body);
    ASSERT_EQ(w.resolve().source, PolicySource::Fetched);
    w.fetcher.set("example.com", FetchError{ResultType::StsWebpkiInvalid, "cert-expired", "", false});
    EXPECT_EQ(w.resolver->refresh_due(true), 0);
    std::vector<std::string> got;
    for (const auto& s : sink.sessions()) got.push_back(describe(s));
    EXPECT_EQ(got, expected);
  }
}

}  // namespace
}  // namespace mtasts::testing
