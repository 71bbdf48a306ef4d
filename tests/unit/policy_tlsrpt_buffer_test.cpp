// TlsrptBuffer: RFC 8460 §4.1 (UTC days) and §4.4 (counts per policy and per
// failure-details entry), flushing on an interval and at destruction, and
// keeping a batch the store refused.
#include "policy/engine/tlsrpt_buffer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "fakes/log_capture.h"

namespace mtasts::policy {
namespace {

constexpr std::int64_t kNoon = 1'700'049'600;  // 2023-11-15T12:00:00Z

TlsrptSession success(std::int64_t at, std::string domain = "example.com") {
  TlsrptSession s;
  s.at = at;
  s.policy_type = "sts";
  s.policy_domain = std::move(domain);
  s.policy_string = "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 86400\n";
  s.mx_patterns = "mx.example.com";
  s.success = true;
  s.sending_mta_ip = "192.0.2.100";
  s.receiving_ip = "192.0.2.1";  // ignored for successes
  return s;
}

TlsrptSession failure(std::int64_t at, ResultType type = ResultType::CertificateExpired,
                      std::string receiving_ip = "192.0.2.1") {
  TlsrptSession s = success(at);
  s.success = false;
  s.result_type = type;
  s.failure_reason_code = "cert-expired";
  s.receiving_mx_hostname = "mx.example.com";
  s.receiving_ip = std::move(receiving_ip);
  return s;
}

// A store that can be told to fail, and keeps every accepted batch.
class FakeStore final : public TlsrptStore {
 public:
  Result<bool> add(const std::vector<TlsrptAggregate>& batch) override {
    std::lock_guard lock(mu_);
    ++calls_;
    largest_ = std::max(largest_, batch.size());
    if (failing_ || batch.size() > max_batch_) return Error{"store-full", "disk full"};
    if (fail_after_ > 0 && --fail_after_ == 0) failing_ = true;
    for (const auto& a : batch) rows_.push_back(a);
    return true;
  }
  void set_failing(bool failing) {
    std::lock_guard lock(mu_);
    failing_ = failing;
  }
  // Batches larger than this fail with store-full: a disk with room for
  // only so much in one transaction.
  void set_max_batch(std::size_t max) {
    std::lock_guard lock(mu_);
    max_batch_ = max;
  }
  // The store fails from the call after the next `calls` accepted ones.
  void fail_after(int calls) {
    std::lock_guard lock(mu_);
    fail_after_ = calls;
  }
  std::size_t largest_batch() {
    std::lock_guard lock(mu_);
    return largest_;
  }
  std::vector<TlsrptAggregate> rows() {
    std::lock_guard lock(mu_);
    return rows_;
  }
  int calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }

 private:
  std::mutex mu_;
  bool failing_ = false;
  std::size_t max_batch_ = SIZE_MAX;
  int fail_after_ = 0;
  std::size_t largest_ = 0;
  int calls_ = 0;
  std::vector<TlsrptAggregate> rows_;
};

TlsrptBufferConfig manual() {
  TlsrptBufferConfig config;
  config.flush_interval = std::chrono::milliseconds(0);
  return config;
}

std::int64_t total(const std::vector<TlsrptAggregate>& rows) {
  std::int64_t sessions = 0;
  for (const auto& a : rows) sessions += a.sessions;
  return sessions;
}

TEST(TlsrptBuffer, UtcDayTable) {
  const std::vector<std::pair<std::int64_t, std::string>> cases{
      {0, "1970-01-01"},
      {kNoon, "2023-11-15"},
      {1'700'006'399, "2023-11-14"},  // 23:59:59Z
      {1'700'006'400, "2023-11-15"},  // 00:00:00Z
      {951'782'400, "2000-02-29"},
      {-1, "1969-12-31"},
  };
  for (const auto& [at, day] : cases) EXPECT_EQ(utc_day(at), day) << at;
}

struct AggregationCase {
  std::string name;
  std::vector<TlsrptSession> sessions;
  std::vector<std::pair<std::string, std::int64_t>> expected;  // {day + kind, sessions}, in take() order
};

TEST(TlsrptBuffer, AggregationTable) {
  const std::vector<AggregationCase> cases{
      {"same key counts up",
       {success(kNoon), success(kNoon + 60), success(kNoon + 3600)},
       {{"2023-11-15 ok", 3}}},
      {"utc midnight splits days",
       {success(1'700'006'399), success(1'700'006'400), success(1'700'006'401)},
       {{"2023-11-14 ok", 1}, {"2023-11-15 ok", 2}}},
      {"success and failure apart",
       {success(kNoon), failure(kNoon), failure(kNoon + 1)},
       {{"2023-11-15 ok", 1}, {"2023-11-15 certificate-expired", 2}}},
      {"failures apart by result type",
       {failure(kNoon), failure(kNoon, ResultType::StartTlsNotSupported)},
       {{"2023-11-15 certificate-expired", 1}, {"2023-11-15 starttls-not-supported", 1}}},
      {"failures apart by receiving ip",
       {failure(kNoon, ResultType::CertificateExpired, "192.0.2.1"),
        failure(kNoon, ResultType::CertificateExpired, "192.0.2.2")},
       {{"2023-11-15 certificate-expired", 1}, {"2023-11-15 certificate-expired", 1}}},
      {"successes ignore failure fields",
       {success(kNoon),
        [] {
          TlsrptSession s = success(kNoon);
          s.receiving_ip = "198.51.100.9";
          s.sending_mta_ip = "198.51.100.10";
          return s;
        }()},
       {{"2023-11-15 ok", 2}}},
      {"domains apart",
       {success(kNoon, "a.example"), success(kNoon, "b.example")},
       {{"2023-11-15 ok", 1}, {"2023-11-15 ok", 1}}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    TlsrptBuffer buffer(nullptr, manual());
    for (const auto& s : c.sessions) buffer.record(s);
    EXPECT_EQ(buffer.pending_sessions(), static_cast<std::int64_t>(c.sessions.size()));
    const auto rows = buffer.take();
    std::vector<std::pair<std::string, std::int64_t>> got;
    for (const auto& a : rows) {
      got.emplace_back(a.day + " " + (a.success ? "ok" : std::string(to_string(*a.result_type))), a.sessions);
      if (a.success) {
        EXPECT_EQ(a.receiving_ip, "");
        EXPECT_EQ(a.sending_mta_ip, "");
      }
    }
    EXPECT_EQ(got, c.expected);
    EXPECT_TRUE(buffer.take().empty());
    EXPECT_EQ(buffer.pending_sessions(), 0);
  }
}

TEST(TlsrptBuffer, ConfiguredSendingAddressReplacesTheProbesOwn) {
  TlsrptBufferConfig config = manual();
  config.sending_mta_ip = "203.0.113.25";
  TlsrptBuffer buffer(nullptr, config);
  buffer.record(failure(kNoon));
  const auto rows = buffer.take();
  ASSERT_EQ(rows.size(), 1U);
  EXPECT_EQ(rows[0].sending_mta_ip, "203.0.113.25");
  EXPECT_EQ(rows[0].receiving_mx_hostname, "mx.example.com");
  EXPECT_EQ(rows[0].failure_reason_code, "cert-expired");
}

TEST(TlsrptBuffer, FlushesOnItsIntervalAndAtDestruction) {
  FakeStore store;
  {
    TlsrptBufferConfig config;
    config.flush_interval = std::chrono::milliseconds(30);
    TlsrptBuffer buffer(&store, config);
    buffer.record(success(kNoon));
    buffer.record(success(kNoon));
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (store.rows().empty() && std::chrono::steady_clock::now() < give_up)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ASSERT_EQ(store.rows().size(), 1U) << "the flusher wrote on its own";
    EXPECT_EQ(store.rows()[0].sessions, 2);
    EXPECT_EQ(buffer.pending_sessions(), 0);
  }
  {
    TlsrptBufferConfig config;
    config.flush_interval = std::chrono::hours(1);  // only the destructor flushes
    TlsrptBuffer buffer(&store, config);
    buffer.record(failure(kNoon));
  }
  EXPECT_EQ(total(store.rows()), 3);
}

TEST(TlsrptBuffer, RefusedBatchIsKeptAndWrittenNextTime) {
  FakeStore store;
  TlsrptBuffer buffer(&store, manual());
  buffer.record(success(kNoon));
  store.set_failing(true);
  EXPECT_FALSE(buffer.flush());
  EXPECT_EQ(buffer.pending_sessions(), 1);
  buffer.record(success(kNoon));  // merges with the kept batch
  buffer.record(failure(kNoon));
  store.set_failing(false);
  EXPECT_TRUE(buffer.flush());
  EXPECT_EQ(store.calls(), 2);
  const auto rows = store.rows();
  ASSERT_EQ(rows.size(), 2U);
  EXPECT_EQ(total(rows), 3);
  EXPECT_EQ(buffer.pending_sessions(), 0);
  EXPECT_TRUE(buffer.flush()) << "nothing left: no write";
  EXPECT_EQ(store.calls(), 2);
}

TEST(TlsrptBuffer, BoundedByMaxPendingKeys) {
  TlsrptBufferConfig config = manual();
  config.max_pending = 2;
  TlsrptBuffer buffer(nullptr, config);
  buffer.record(success(kNoon, "a.example"));
  buffer.record(success(kNoon, "b.example"));
  buffer.record(success(kNoon, "c.example"));  // a new key beyond the bound: dropped
  buffer.record(success(kNoon, "a.example"));  // a known key still counts
  const auto rows = buffer.take();
  ASSERT_EQ(rows.size(), 2U);
  EXPECT_EQ(rows[0].policy_domain, "a.example");
  EXPECT_EQ(rows[0].sessions, 2);
  EXPECT_EQ(rows[1].policy_domain, "b.example");
}

// Issue #10: one transaction of everything may never fit after a full
// disk, and everything was then lost at stop. Bounded batches fit.
TEST(TlsrptBuffer, FlushesInBoundedBatches) {
  FakeStore store;
  store.set_max_batch(500);
  TlsrptBuffer buffer(&store, manual());
  for (int i = 0; i < 1200; ++i)
    buffer.record(failure(kNoon, ResultType::CertificateExpired, "192.0.2." + std::to_string(i)));
  EXPECT_TRUE(buffer.flush());
  EXPECT_EQ(store.calls(), 3);
  EXPECT_LE(store.largest_batch(), 500U);
  EXPECT_EQ(store.rows().size(), 1200U);
  EXPECT_EQ(buffer.pending_sessions(), 0);
}

// A store that fails part-way: the batches written stay written, the rest
// is kept for the next flush, and what cannot be kept at stop is counted
// in one log line.
TEST(TlsrptBuffer, BatchesAfterAFailureAreKeptAndLossIsCounted) {
  FakeStore store;
  TlsrptBufferConfig config = manual();
  config.batch_aggregates = 10;
  const testing::LogCapture log;
  {
    TlsrptBuffer buffer(&store, config);
    for (int i = 0; i < 35; ++i)
      buffer.record(failure(kNoon, ResultType::CertificateExpired, "192.0.2." + std::to_string(i)));
    store.fail_after(2);
    EXPECT_FALSE(buffer.flush());
    EXPECT_EQ(store.rows().size(), 20U) << "two batches written";
    EXPECT_EQ(buffer.pending_sessions(), 15) << "the failed batch and the one not tried are kept";
    store.set_failing(false);
    EXPECT_TRUE(buffer.flush());
    EXPECT_EQ(store.rows().size(), 35U);
    buffer.record(success(kNoon));
    store.set_failing(true);
  }  // the last flush fails
  EXPECT_EQ(store.rows().size(), 35U);
  EXPECT_EQ(log.lines_with("tlsrpt event=lost sessions=1 aggregates=1 "), 1) << log.text();
}

TlsrptSession domain_failure(int i) {
  TlsrptSession s = failure(kNoon);
  s.policy_domain = "d" + std::to_string(i) + ".example";
  return s;
}

// Waits up to 5 s for `done`.
template <typename Done>
bool eventually(Done done) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!done() && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  return done();
}

// Sessions counted in "tlsrpt event=dropped sessions=N" lines.
std::int64_t dropped_in(const std::string& log) {
  std::int64_t dropped = 0;
  const std::string key = "tlsrpt event=dropped sessions=";
  for (auto at = log.find(key); at != std::string::npos; at = log.find(key, at + 1))
    dropped += std::stoll(log.substr(at + key.size()));
  return dropped;
}

// Past flush_at_aggregates the flusher writes at once, not at its interval.
TEST(TlsrptBuffer, FlushesEarlyPastFlushAtAggregates) {
  FakeStore store;
  TlsrptBufferConfig config;
  config.flush_interval = std::chrono::hours(1);
  config.flush_at_aggregates = 100;
  TlsrptBuffer buffer(&store, config);
  for (int i = 0; i < 100; ++i) buffer.record(domain_failure(i));
  buffer.record(domain_failure(0));  // a known key adds no aggregate
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(store.calls(), 0) << "not past the threshold: the interval rules";
  buffer.record(domain_failure(100));
  ASSERT_TRUE(eventually([&] { return store.rows().size() == 101U; })) << store.rows().size();
  EXPECT_EQ(total(store.rows()), 102);
  EXPECT_EQ(buffer.pending_aggregates(), 0U);
}

// 100,000 recipient domains in a burst: the defaults flush every 10,000
// aggregates, so memory never holds more than max_pending (20,000), and
// every session is either written or counted as dropped in the log (a
// tight loop records faster than any flusher writes; probes do not).
TEST(TlsrptBuffer, HundredThousandDomainsNeverWaitInMemory) {
  constexpr int kDomains = 100000;
  FakeStore store;
  TlsrptBufferConfig config;
  config.flush_interval = std::chrono::hours(1);  // only early flushes write
  ASSERT_EQ(config.flush_at_aggregates, 10000U);
  ASSERT_EQ(config.max_pending, 20000U);
  const testing::LogCapture log;
  std::size_t peak = 0;
  std::size_t written_before_stop = 0;
  std::size_t pending_at_stop = 0;
  {
    TlsrptBuffer buffer(&store, config);
    for (int i = 0; i < kDomains; ++i) {
      buffer.record(domain_failure(i));
      peak = std::max(peak, buffer.pending_aggregates());
    }
    EXPECT_TRUE(eventually([&] { return buffer.pending_aggregates() <= config.flush_at_aggregates; }));
    written_before_stop = store.rows().size();
    pending_at_stop = buffer.pending_aggregates();
  }
  EXPECT_LE(peak, config.max_pending);
  EXPECT_GE(written_before_stop, config.flush_at_aggregates) << "written by early flushes, not at the stop";
  EXPECT_LE(pending_at_stop, config.flush_at_aggregates);
  EXPECT_EQ(total(store.rows()) + dropped_in(log.text()), kDomains) << "nothing lost silently";
}

// A store that refuses: one early write, then none until the interval
// (no write per record); new keys beyond max_pending are dropped, counted
// and logged; once the store accepts again, early flushes come back.
TEST(TlsrptBuffer, RefusingStoreIsNotHammeredAndDropsAreLogged) {
  FakeStore store;
  store.set_failing(true);
  TlsrptBufferConfig config;
  config.flush_interval = std::chrono::hours(1);
  config.flush_at_aggregates = 10;
  config.max_pending = 20;
  const testing::LogCapture log;
  {
    TlsrptBuffer buffer(&store, config);
    for (int i = 0; i < 11; ++i) buffer.record(domain_failure(i));
    ASSERT_TRUE(eventually([&] { return store.calls() == 1; }));
    ASSERT_TRUE(eventually([&] { return buffer.pending_aggregates() == 11U; }))
        << "the refused batch is kept";
    for (int i = 11; i < 31; ++i) buffer.record(domain_failure(i));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(store.calls(), 1) << "no early write while the store refuses";
    EXPECT_EQ(buffer.pending_aggregates(), 20U);
    EXPECT_FALSE(buffer.flush());  // the interval's retry, by hand
    store.set_failing(false);
    EXPECT_TRUE(buffer.flush());
    EXPECT_EQ(store.rows().size(), 20U);
    for (int i = 31; i < 42; ++i) buffer.record(domain_failure(i));
    EXPECT_TRUE(eventually([&] { return store.rows().size() == 31U; })) << "early flushes are back";
  }
  EXPECT_EQ(dropped_in(log.text()), 11);
  EXPECT_EQ(log.lines_with("tlsrpt event=dropped sessions=11 reason=buffer-full max_pending=20"), 1)
      << log.text();
}

TEST(TlsrptBuffer, ConcurrentRecordsAllCount) {
  FakeStore store;
  TlsrptBufferConfig config;
  config.flush_interval = std::chrono::milliseconds(1);
  {
    TlsrptBuffer buffer(&store, config);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&buffer] {
        for (int i = 0; i < 500; ++i) buffer.record(success(kNoon));
      });
    for (auto& t : threads) t.join();
  }
  EXPECT_EQ(total(store.rows()), 2000);
}

}  // namespace
}  // namespace mtasts::policy
