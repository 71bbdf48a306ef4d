// SqliteTlsrptStore: RFC 8460 §4.4 daily counts in schema v2; upserts add,
// a batch is all or nothing, a v1 database migrates and keeps its policies,
// and the tables read with plain SQL.
#include "store/tlsrpt_store.h"

#include <gtest/gtest.h>

#include <sqlite3.h>
#include <unistd.h>
#include "store/schema.h"
#include "store_test_support.h"

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "store/sqlite_store.h"

namespace mtasts::store {
namespace {

using mtasts::testing::RawDb;
using mtasts::testing::TempDir;

using policy::ResultType;
using policy::TlsrptAggregate;

TlsrptAggregate success(const std::string& day, std::int64_t sessions,
                        const std::string& domain = "a.example") {
  TlsrptAggregate a;
  a.day = day;
  a.policy_type = "sts";
  a.policy_domain = domain;
  a.policy_string = "version: STSv1\nmode: enforce\nmx: mx.a.example\nmax_age: 86400\n";
  a.mx_patterns = "mx.a.example";
  a.success = true;
  a.sessions = sessions;
  return a;
}

TlsrptAggregate failure(const std::string& day, std::int64_t sessions, const std::string& ip = "192.0.2.1") {
  TlsrptAggregate a = success(day, sessions);
  a.success = false;
  a.result_type = ResultType::CertificateExpired;
  a.failure_reason_code = "cert-expired";
  a.sending_mta_ip = "192.0.2.100";
  a.receiving_mx_hostname = "mx.a.example";
  a.receiving_ip = ip;
  return a;
}

TEST(SqliteTlsrptStore, UpsertsAddCountsPerKeyAndDay) {
  TempDir dir;
  SqliteTlsrptStore store(dir.file("cache.db"));
  struct Step {
    std::vector<TlsrptAggregate> batch;
  };
  const std::vector<Step> steps{
      {{success("2023-11-15", 2), failure("2023-11-15", 1)}},
      {{success("2023-11-15", 3), failure("2023-11-15", 4), failure("2023-11-15", 1, "192.0.2.2")}},
      {{success("2023-11-16", 1)}},
  };
  for (const auto& step : steps) ASSERT_TRUE(store.add(step.batch));

  const auto rows = store.read("2023-11-15", "2023-11-15");
  ASSERT_EQ(rows.size(), 3U);
  EXPECT_EQ(rows[0], failure("2023-11-15", 5));
  EXPECT_EQ(rows[1], failure("2023-11-15", 1, "192.0.2.2"));
  EXPECT_EQ(rows[2], success("2023-11-15", 5));
  EXPECT_EQ(store.read("2023-11-16", "2023-11-30"), std::vector<TlsrptAggregate>{success("2023-11-16", 1)});
  EXPECT_TRUE(store.read("2023-12-01", "2023-12-31").empty());
}

TEST(SqliteTlsrptStore, BatchIsAllOrNothing) {
  TempDir dir;
  SqliteTlsrptStore store(dir.file("cache.db"));
  TlsrptAggregate bad = success("2023-11-15", 1);
  bad.policy_type = "dmarc";  // refused by the CHECK constraint
  const auto result = store.add({success("2023-11-15", 2), bad});
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, "store-error");
  EXPECT_TRUE(store.read("2023-11-01", "2023-11-30").empty());
  EXPECT_TRUE(store.add({success("2023-11-15", 2)})) << "the connection is usable after the rollback";
  EXPECT_EQ(store.read("2023-11-01", "2023-11-30").size(), 1U);
}

// Issue #9: the policy store and the TLSRPT store write the same file. With
// one writer per process they take turns on its mutex; as two connections
// they collided on SQLite's lock and, with no busy timeout to hide it,
// failed with store-busy.
TEST(SqliteTlsrptStore, PolicyAndTlsrptWritesTakeTurnsOnOneWriter) {
  TempDir dir;
  const auto database = Database::open(dir.file("cache.db"),
                                       DatabaseOptions{.write_busy_timeout = std::chrono::milliseconds{0}});
  SqliteStore policies(database);
  SqliteTlsrptStore counts(database);
  constexpr int kRounds = 300;
  std::atomic<int> failed{0};
  std::thread saver([&] {
    for (int i = 0; i < kRounds; ++i) {
      policy::StoredPolicy stored;
      stored.domain = "d" + std::to_string(i) + ".example";
      stored.txt_id = "id";
      stored.raw = "version: STSv1\nmode: testing\nmx: mx.example\nmax_age: 86400\n";
      stored.policy = policy::Policy{policy::Mode::Testing, 86400, {"mx.example"}};
      stored.expires_at = 86400;
      if (!policies.save(stored)) ++failed;
    }
  });
  std::thread adder([&] {
    std::vector<TlsrptAggregate> batch;
    for (int k = 0; k < 20; ++k)
      batch.push_back(success("2023-11-15", 1, "d" + std::to_string(k) + ".example"));
    for (int i = 0; i < kRounds; ++i)
      if (!counts.add(batch)) ++failed;
  });
  saver.join();
  adder.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(policies.list().size(), static_cast<std::size_t>(kRounds));
  const auto rows = counts.read("2023-11-15", "2023-11-15");
  ASSERT_EQ(rows.size(), 20U);
  EXPECT_EQ(rows.front().sessions, kRounds);
}

// A database written by a v1 build: the v1 tables by hand, one policy row.
void write_v1_database(const std::string& path) {
  RawDb raw(path);
  raw.exec(
      "CREATE TABLE policies (domain TEXT PRIMARY KEY NOT NULL, txt_id TEXT NOT NULL, mode TEXT NOT NULL, "
      "max_age INTEGER NOT NULL, mx TEXT NOT NULL, raw TEXT NOT NULL, fetched_at INTEGER NOT NULL, "
      "expires_at INTEGER NOT NULL, last_checked INTEGER NOT NULL, last_used INTEGER NOT NULL, "
      "dnssec TEXT NOT NULL, last_error TEXT NOT NULL DEFAULT '');"
      "CREATE TABLE fetch_failures (domain TEXT PRIMARY KEY NOT NULL, txt_id TEXT NOT NULL, "
      "failed_at INTEGER NOT NULL, retry_at INTEGER NOT NULL, result_type TEXT NOT NULL, reason TEXT NOT "
      "NULL);"
      "INSERT INTO policies VALUES ('a.example', 'id1', 'enforce', 86400, 'mx.a.example', "
      "'version: STSv1\nmode: enforce\nmx: mx.a.example\nmax_age: 86400\n', 1, 86401, 1, 1, 'insecure', '');"
      "PRAGMA user_version = 1;");
}

TEST(SqliteTlsrptStore, V1DatabaseMigratesAndKeepsPolicies) {
  struct Case {
    std::string name;
    bool tlsrpt_store_first;  // either store may be the first to open the old file
  };
  for (const Case& c : std::vector<Case>{{"policy store first", false}, {"tlsrpt store first", true}}) {
    SCOPED_TRACE(c.name);
    TempDir dir;
    const std::string path = dir.file("cache.db");
    write_v1_database(path);
    std::unique_ptr<SqliteTlsrptStore> tlsrpt;
    if (c.tlsrpt_store_first) tlsrpt = std::make_unique<SqliteTlsrptStore>(path);
    SqliteStore policies(path);
    if (!tlsrpt) tlsrpt = std::make_unique<SqliteTlsrptStore>(path);

    EXPECT_EQ(RawDb(path).all("PRAGMA user_version"), std::to_string(store::kSchemaVersion));
    const auto kept = policies.load("a.example");
    ASSERT_TRUE(kept.has_value());
    EXPECT_EQ(kept->txt_id, "id1");
    EXPECT_EQ(kept->policy.mx, std::vector<std::string>{"mx.a.example"});
    EXPECT_TRUE(tlsrpt->add({success("2023-11-15", 1)}));
    EXPECT_EQ(RawDb(path).all("SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_schema "
                              "WHERE name LIKE 'tlsrpt%' ORDER BY name)"),
              "tlsrpt_deliveries,tlsrpt_deliveries_state,tlsrpt_failures,tlsrpt_failures_domain_day,"
              "tlsrpt_reports,tlsrpt_reports_day,tlsrpt_successes,tlsrpt_successes_domain_day");
  }
}

TEST(SqliteTlsrptStore, TablesReadWithPlainSql) {
  TempDir dir;
  const std::string path = dir.file("cache.db");
  SqliteTlsrptStore store(path);
  TlsrptAggregate tlsa = failure("2023-11-15", 2);
  tlsa.policy_type = "tlsa";
  tlsa.result_type = ResultType::TlsaInvalid;
  tlsa.failure_reason_code = "tlsa-mismatch";
  tlsa.policy_string = "3 1 1 ABCD";
  tlsa.mx_patterns = "mx.a.example";
  ASSERT_TRUE(store.add({tlsa, success("2023-11-15", 7)}));
  RawDb raw(path);
  EXPECT_EQ(
      raw.all("SELECT day, policy_type, policy_domain, result_type, failure_reason_code, sending_mta_ip, "
              "receiving_mx_hostname, receiving_ip, additional_information, failed_session_count "
              "FROM tlsrpt_failures"),
      "2023-11-15|tlsa|a.example|tlsa-invalid|tlsa-mismatch|192.0.2.100|mx.a.example|192.0.2.1||2");
  EXPECT_EQ(raw.all("SELECT day, policy_type, policy_domain, mx_patterns, successful_session_count "
                    "FROM tlsrpt_successes"),
            "2023-11-15|sts|a.example|mx.a.example|7");
}

TEST(SqliteTlsrptStore, UnopenablePathThrowsNamingIt) {
  TempDir dir;
  const std::string path = dir.file("no/such/dir/cache.db");
  try {
    SqliteTlsrptStore store(path);
    ADD_FAILURE() << "constructor did not throw";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mtasts::store
