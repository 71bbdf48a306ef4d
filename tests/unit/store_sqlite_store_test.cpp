// Tests for store::SqliteStore: field round trips, replacement, the operator
// columns and view, schema versioning, and the failure paths that matter in
// production (read-only file, full disk, busy writer, kill -9 mid-write).
// The tests run as root (see TESTBED-NOTES): the full-disk test mounts a tiny
// tmpfs, the read-only test drops to `nobody` in a forked child.
#include "store/schema.h"
#include "store/sqlite_store.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <sqlite3.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "fakes/log_capture.h"
#include "store_test_support.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace mtasts::store {
namespace {

using mtasts::testing::LogCapture;
using mtasts::testing::RawDb;
using mtasts::testing::TempDir;

using policy::DnsSecurity;
using policy::FetchFailure;
using policy::Mode;
using policy::ResultType;
using policy::StoredPolicy;

// ---------------------------------------------------------------- helpers

std::string mode_text(Mode mode) {
  switch (mode) {
    case Mode::Enforce:
      return "enforce";
    case Mode::Testing:
      return "testing";
    case Mode::None:
      return "none";
  }
  return "?";
}

std::string raw_policy(Mode mode, std::uint32_t max_age, const std::vector<std::string>& mx) {
  std::string raw = "version: STSv1\r\nmode: " + mode_text(mode) + "\r\n";
  for (const auto& pattern : mx) {
    raw += "mx: " + pattern + "\r\n";
  }
  return raw + "max_age: " + std::to_string(max_age) + "\r\n";
}

StoredPolicy make_policy(const std::string& domain, Mode mode, std::uint32_t max_age,
                         std::vector<std::string> mx) {
  StoredPolicy stored;
  stored.domain = domain;
  stored.txt_id = "id" + std::to_string(max_age);
  stored.raw = raw_policy(mode, max_age, mx);
  stored.policy = policy::Policy{mode, max_age, std::move(mx)};
  stored.fetched_at = 1700000000;
  stored.expires_at = stored.fetched_at + max_age;
  stored.last_checked = 1700000100;
  stored.last_used = 1700000200;
  stored.dnssec = DnsSecurity::Insecure;
  return stored;
}

// The n-th policy of the bulk tests: every field is a function of n.
StoredPolicy numbered_policy(int domain_index, std::int64_t n) {
  const Mode modes[] = {Mode::Enforce, Mode::Testing, Mode::None};
  const DnsSecurity securities[] = {DnsSecurity::Secure, DnsSecurity::Insecure, DnsSecurity::Bogus};
  const auto k = static_cast<std::size_t>(n % 3);
  StoredPolicy stored = make_policy("d" + std::to_string(domain_index) + ".example", modes[k],
                                    static_cast<std::uint32_t>(86400 + n),
                                    {"mx" + std::to_string(n) + ".example.net", "*.example.org"});
  stored.txt_id = "t" + std::to_string(n);
  stored.fetched_at = 1600000000 + n;
  stored.expires_at = stored.fetched_at + 86400 + n;
  stored.last_checked = n * 7;
  stored.last_used = n * 11;
  stored.dnssec = securities[k];
  stored.last_error = n % 2 == 0 ? "" : "sts-policy-fetch-error:http-404";
  return stored;
}

// Every field, for readable EXPECT_EQ diffs.
std::string describe(const StoredPolicy& p) {
  std::ostringstream out;
  out << "domain=" << p.domain << " txt_id=" << p.txt_id << " raw=[" << p.raw << "]"
      << " mode=" << mode_text(p.policy.mode) << " max_age=" << p.policy.max_age << " mx=";
  for (const auto& pattern : p.policy.mx) {
    out << pattern << ",";
  }
  out << " fetched_at=" << p.fetched_at << " expires_at=" << p.expires_at
      << " last_checked=" << p.last_checked << " last_used=" << p.last_used
      << " dnssec=" << static_cast<int>(p.dnssec) << " last_error=" << p.last_error;
  return out.str();
}

std::string describe(const std::optional<StoredPolicy>& p) {
  return p ? describe(*p) : std::string("<nullopt>");
}

std::string describe(const FetchFailure& f) {
  std::ostringstream out;
  out << f.domain << " " << f.txt_id << " " << f.failed_at << " " << f.retry_at << " "
      << static_cast<int>(f.type) << " " << f.reason << (f.temporary ? " temporary" : "");
  return out.str();
}

std::string code_of(const policy::Result<bool>& result) {
  return result ? std::string("ok") : result.error().code;
}

class SqliteStoreTest : public ::testing::Test {
 protected:
  std::string db_path() const { return dir_.file("cache.db"); }
  TempDir dir_;
};

// ---------------------------------------------------------------- round trips

TEST_F(SqliteStoreTest, RoundTripsEveryFieldAndFillsOperatorColumns) {
  struct Case {
    StoredPolicy stored;
    std::string operator_columns;  // mode|max_age|mx|dnssec as sqlite3 shows them
  };
  auto secure = make_policy("secure.example", Mode::Enforce, 604800,
                            {"mx1.secure.example", "mx2.secure.example", "*.backup.example"});
  secure.dnssec = DnsSecurity::Secure;
  secure.last_error = "sts-webpki-invalid:cert-expired";
  auto testing = make_policy("testing.example", Mode::Testing, 31557600, {"*.testing.example"});
  testing.fetched_at = 4102444800;  // 2100-01-01: past 2038
  testing.expires_at = 4134002400;
  testing.last_used = 0;
  auto none = make_policy("none.example", Mode::None, 0, {});
  none.dnssec = DnsSecurity::Bogus;
  none.txt_id = "20240101T000000";
  const std::vector<Case> cases = {
      {secure, "enforce|604800|mx1.secure.example mx2.secure.example *.backup.example|secure"},
      {testing, "testing|31557600|*.testing.example|insecure"},
      {none, "none|0||bogus"},
  };
  SqliteStore store(db_path());
  RawDb raw(db_path());
  for (const Case& c : cases) {
    SCOPED_TRACE(c.stored.domain);
    const auto saved = store.save(c.stored);
    ASSERT_TRUE(saved) << saved.error().code;
    EXPECT_EQ(describe(store.load(c.stored.domain)), describe(c.stored));
    EXPECT_EQ(raw.one("SELECT mode, max_age, mx, dnssec FROM policies WHERE domain = ?1", {c.stored.domain}),
              c.operator_columns);
  }
  EXPECT_FALSE(store.load("absent.example").has_value());
}

TEST_F(SqliteStoreTest, SaveReplacesTheRow) {
  SqliteStore store(db_path());
  ASSERT_TRUE(store.save(make_policy("a.example", Mode::Testing, 3600, {"mx.a.example"})));
  auto replacement = make_policy("a.example", Mode::Enforce, 86400, {"new.a.example"});
  replacement.txt_id = "second";
  replacement.dnssec = DnsSecurity::Secure;
  replacement.last_error = "";
  ASSERT_TRUE(store.save(replacement));
  EXPECT_EQ(describe(store.load("a.example")), describe(replacement));
  EXPECT_EQ(RawDb(db_path()).one("SELECT count(*), mode, mx FROM policies"), "1|enforce|new.a.example");
}

TEST_F(SqliteStoreTest, ForgetRemovesOnlyThatDomain) {
  SqliteStore store(db_path());
  ASSERT_TRUE(store.save(make_policy("a.example", Mode::Enforce, 3600, {"mx.a.example"})));
  ASSERT_TRUE(store.save(make_policy("b.example", Mode::Enforce, 3600, {"mx.b.example"})));
  struct Case {
    std::string domain;
    bool expected_changed;
  };
  const std::vector<Case> cases = {{"a.example", true}, {"a.example", false}, {"c.example", false}};
  for (const Case& c : cases) {
    const auto forgotten = store.forget(c.domain);
    ASSERT_TRUE(forgotten) << forgotten.error().code;
    EXPECT_EQ(*forgotten, c.expected_changed) << c.domain;
  }
  EXPECT_FALSE(store.load("a.example").has_value());
  EXPECT_TRUE(store.load("b.example").has_value());
}

TEST_F(SqliteStoreTest, ListIsOrderedByDomainAndSkipsUnparsableRows) {
  SqliteStore store(db_path());
  const std::vector<std::string> inserted = {"m.example", "a.example.net",  "z.example",
                                             "a.example", "broken.example", "0.example"};
  for (const auto& domain : inserted) {
    ASSERT_TRUE(store.save(make_policy(domain, Mode::Testing, 3600, {"mx." + domain})));
  }
  RawDb(db_path()).rows("UPDATE policies SET raw = 'garbage' WHERE domain = 'broken.example'");
  std::vector<std::string> listed;
  for (const auto& stored : store.list()) {
    listed.push_back(stored.domain);
  }
  const std::vector<std::string> expected = {"0.example", "a.example", "a.example.net", "m.example",
                                             "z.example"};
  EXPECT_EQ(listed, expected);
}

TEST_F(SqliteStoreTest, TouchUpdatesOnlyTheThreeColumns) {
  SqliteStore store(db_path());
  auto original = make_policy("a.example", Mode::Enforce, 86400, {"mx.a.example"});
  original.dnssec = DnsSecurity::Secure;
  ASSERT_TRUE(store.save(original));
  struct Case {
    std::int64_t last_checked;
    std::int64_t last_used;
    std::string last_error;
  };
  const std::vector<Case> cases = {{1800000000, 1800000005, "sts-policy-fetch-error:timeout"},
                                   {1800000100, 1800000200, ""}};
  for (const Case& c : cases) {
    const auto touched = store.touch("a.example", c.last_checked, c.last_used, c.last_error);
    ASSERT_TRUE(touched) << touched.error().code;
    EXPECT_TRUE(*touched);
    StoredPolicy expected = original;
    expected.last_checked = c.last_checked;
    expected.last_used = c.last_used;
    expected.last_error = c.last_error;
    EXPECT_EQ(describe(store.load("a.example")), describe(expected));
  }
  const auto absent = store.touch("absent.example", 1, 2, "x");
  ASSERT_TRUE(absent);
  EXPECT_FALSE(*absent);
  EXPECT_FALSE(store.load("absent.example").has_value());
}

// The resolver's flush: many touches in one transaction, all or none.
TEST_F(SqliteStoreTest, TouchAllWritesEveryRowOrNone) {
  SqliteStore store(db_path());
  std::vector<StoredPolicy> expected;
  std::vector<policy::PolicyUse> uses;
  for (const std::string domain : {"a.example", "b.example", "c.example"}) {
    expected.push_back(make_policy(domain, Mode::Enforce, 86400, {"mx." + domain}));
    ASSERT_TRUE(store.save(expected.back()));
    expected.back().last_checked = 1800000001;
    expected.back().last_used = 1800000002;
    expected.back().last_error = "touched";
    uses.push_back({domain, 1800000001, 1800000002, "touched"});
  }
  EXPECT_FALSE(*store.touch_all({})) << "nothing to write";
  // A row that cannot be written (a trigger aborts it) rolls back the others.
  RawDb(db_path()).exec(
      "CREATE TRIGGER refuse_b BEFORE UPDATE ON policies WHEN NEW.domain = 'b.example' "
      "BEGIN SELECT RAISE(ABORT, 'refused'); END");
  const auto refused = store.touch_all(uses);
  ASSERT_FALSE(refused);
  EXPECT_EQ(RawDb(db_path()).one("SELECT count(*) FROM policies WHERE last_used = 1800000002"), "0");
  RawDb(db_path()).exec("DROP TRIGGER refuse_b");
  uses.push_back({"absent.example", 1, 2, ""});
  const auto touched = store.touch_all(uses);
  ASSERT_TRUE(touched) << touched.error().code;
  EXPECT_TRUE(*touched);
  for (const auto& p : expected) EXPECT_EQ(describe(store.load(p.domain)), describe(p));
  EXPECT_FALSE(store.load("absent.example").has_value()) << "touch never inserts";
}

// The resolver takes usage columns from memory and writes them later; a fetch
// saved in between must not be rolled back by the older values.
TEST_F(SqliteStoreTest, TouchAllNeverMovesUsageBackwards) {
  SqliteStore store(db_path());
  StoredPolicy p = make_policy("a.example", Mode::Enforce, 86400, {"mx.a.example"});
  p.last_checked = 2000;
  p.last_used = 2000;
  p.last_error = "";
  ASSERT_TRUE(store.save(p));
  const std::vector<policy::PolicyUse> older{{"a.example", 1500, 1600, "stale-error"}};
  ASSERT_TRUE(store.touch_all(older));
  auto loaded = store.load("a.example");
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->last_checked, 2000);
  EXPECT_EQ(loaded->last_used, 2000);
  EXPECT_EQ(loaded->last_error, "") << "an older check's error does not replace a newer result";
  const std::vector<policy::PolicyUse> newer{{"a.example", 2500, 2600, "txt-timeout"}};
  ASSERT_TRUE(store.touch_all(newer));
  loaded = store.load("a.example");
  EXPECT_EQ(loaded->last_checked, 2500);
  EXPECT_EQ(loaded->last_used, 2600);
  EXPECT_EQ(loaded->last_error, "txt-timeout");
}

// The refresher's pass reads names and schedules only.
TEST_F(SqliteStoreTest, DomainsDueSelectsBySlot) {
  SqliteStore store(db_path());
  ASSERT_TRUE(store.save(make_policy("short.example", Mode::Enforce, 600, {"mx.short.example"})));
  ASSERT_TRUE(store.save(make_policy("long.example", Mode::Enforce, 86400, {"mx.long.example"})));
  std::vector<policy::RefreshSlot> seen;
  const auto due = store.domains_due([&seen](const policy::RefreshSlot& slot) {
    seen.push_back(slot);
    return slot.max_age < 3600;
  });
  EXPECT_EQ(due, (std::vector<std::string>{"short.example"}));
  ASSERT_EQ(seen.size(), 2u);
  for (const auto& slot : seen) {
    EXPECT_EQ(slot.fetched_at, 1700000000);
    EXPECT_EQ(slot.max_age, slot.domain == "short.example" ? 600 : 86400);
    EXPECT_EQ(slot.expires_at, slot.fetched_at + slot.max_age);
  }
}

// The refresher's purge: by expiry only, so a policy saved with a fresh
// expiry (a discovery running beside the pass) stays.
TEST_F(SqliteStoreTest, ForgetExpiredRemovesOnlyExpiredPolicies) {
  SqliteStore store(db_path());
  ASSERT_TRUE(store.save(make_policy("short.example", Mode::Enforce, 600, {"mx.short.example"})));
  ASSERT_TRUE(store.save(make_policy("long.example", Mode::Enforce, 86400, {"mx.long.example"})));
  const std::int64_t fetched = 1700000000;
  struct Case {
    std::int64_t now;
    bool expected_changed;
  };
  for (const Case& c :
       std::vector<Case>{{fetched + 599, false}, {fetched + 600, true}, {fetched + 600, false}}) {
    const auto purged = store.forget_expired(c.now);
    ASSERT_TRUE(purged) << purged.error().code;
    EXPECT_EQ(*purged, c.expected_changed) << c.now;
  }
  EXPECT_FALSE(store.load("short.example").has_value());
  EXPECT_TRUE(store.load("long.example").has_value());
}

TEST_F(SqliteStoreTest, OperatorColumnsAreNeverReadBackAsTruth) {
  SqliteStore store(db_path());
  const auto original = make_policy("a.example", Mode::Enforce, 86400, {"mx.a.example"});
  ASSERT_TRUE(store.save(original));
  RawDb(db_path()).exec("UPDATE policies SET mode = 'none', max_age = 1, mx = 'evil.example'");
  EXPECT_EQ(describe(store.load("a.example")), describe(original));
}

TEST_F(SqliteStoreTest, RawThatNoLongerParsesLoadsAsNullopt) {
  using namespace std::string_literals;
  const std::vector<std::string> bad_raws = {
      "",
      "garbage",
      "version: STSv2\r\nmode: enforce\r\nmx: mx.a.example\r\nmax_age: 86400\r\n",
      "version: STSv1\r\nmode: enforce\r\nmax_age: 86400\r\n",  // enforce without mx
      "version: STSv1\r\nmode: none\r\nmax_age: 1\0\r\n"s,      // NUL inside
  };
  SqliteStore store(db_path());
  RawDb raw(db_path());
  for (const auto& bad : bad_raws) {
    SCOPED_TRACE(bad);
    ASSERT_TRUE(store.save(make_policy("a.example", Mode::Enforce, 86400, {"mx.a.example"})));
    ASSERT_TRUE(store.load("a.example").has_value());
    raw.rows("UPDATE policies SET raw = ?1 WHERE domain = 'a.example'", {bad});
    EXPECT_FALSE(store.load("a.example").has_value());
    EXPECT_TRUE(store.list().empty());
  }
}

// ---------------------------------------------------------------- failures

TEST_F(SqliteStoreTest, FetchFailuresSaveLoadReplaceAndClear) {
  struct Case {
    FetchFailure failure;
    std::string stored_type;  // the RFC 8460 string in the column
  };
  const std::vector<Case> cases = {
      {{"a.example", "id1", 1700000000, 1700000300, ResultType::StsPolicyFetchError, "http-404"},
       "sts-policy-fetch-error"},
      {{"a.example", "id2", 1700000400, 1700000700, ResultType::StsWebpkiInvalid, "cert-expired"},
       "sts-webpki-invalid"},
      {{"b.example", "", 0, 300, ResultType::StsPolicyFetchError, "timeout", true}, "sts-policy-fetch-error"},
      {{"c.example", "id", 0, 300, ResultType::StsPolicyFetchError, "tls-handshake", true},
       "sts-policy-fetch-error"},
  };
  SqliteStore store(db_path());
  RawDb raw(db_path());
  for (const Case& c : cases) {
    SCOPED_TRACE(describe(c.failure));
    const auto saved = store.save_failure(c.failure);
    ASSERT_TRUE(saved) << saved.error().code;
    const auto loaded = store.load_failure(c.failure.domain);
    ASSERT_TRUE(loaded.has_value());
    EXPECT_EQ(describe(*loaded), describe(c.failure));
    EXPECT_EQ(raw.one("SELECT result_type FROM fetch_failures WHERE domain = ?1", {c.failure.domain}),
              c.stored_type);
  }
  EXPECT_EQ(raw.one("SELECT count(*) FROM fetch_failures"), "3");
  const auto cleared = store.clear_failure("a.example");
  ASSERT_TRUE(cleared);
  EXPECT_TRUE(*cleared);
  EXPECT_FALSE(store.load_failure("a.example").has_value());
  EXPECT_TRUE(store.load_failure("b.example").has_value());
  const auto again = store.clear_failure("a.example");
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again);
}

TEST_F(SqliteStoreTest, FailureWithUnknownResultTypeLoadsAsNullopt) {
  SqliteStore store(db_path());
  ASSERT_TRUE(store.save_failure({"a.example", "id", 1, 2, ResultType::StsPolicyFetchError, "http-404"}));
  RawDb(db_path()).exec("UPDATE fetch_failures SET result_type = 'STS-POLICY-FETCH-ERROR'");
  EXPECT_FALSE(store.load_failure("a.example").has_value());
}

// ---------------------------------------------------------------- schema

TEST_F(SqliteStoreTest, NewFileGetsCurrentSchemaVersionAndWal) {
  { SqliteStore store(db_path()); }
  RawDb raw(db_path());
  EXPECT_EQ(raw.one("PRAGMA user_version"), std::to_string(kSchemaVersion));
  EXPECT_EQ(raw.one("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(raw.one("SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_schema "
                    "WHERE name NOT LIKE 'sqlite_%' ORDER BY name)"),
            "fetch_failures,overrides,policies,policies_expires_at,policies_readable,tlsrpt_deliveries,"
            "tlsrpt_deliveries_state,tlsrpt_failures,tlsrpt_failures_domain_day,tlsrpt_reports,"
            "tlsrpt_reports_day,tlsrpt_successes,tlsrpt_successes_domain_day");
  // Reopening a current file migrates nothing and keeps the data.
  {
    SqliteStore store(db_path());
    ASSERT_TRUE(store.save(make_policy("a.example", Mode::Testing, 60, {"mx.a.example"})));
  }
  SqliteStore reopened(db_path());
  EXPECT_TRUE(reopened.load("a.example").has_value());
  EXPECT_EQ(raw.one("PRAGMA user_version"), std::to_string(kSchemaVersion));
}

// (A file that is not a database at all is moved aside instead:
// DamagedFileIsMovedAsideAndRebuilt.)
TEST_F(SqliteStoreTest, ConstructorThrowsOnNewerVersionOrUnusableFile) {
  struct Case {
    std::string name;
    std::string path;
    std::function<void(const std::string&)> prepare;
    std::string message_part;
  };
  const std::vector<Case> cases = {
      {"newer version", db_path(),
       [](const std::string& path) {
         { SqliteStore store(path); }
         RawDb(path).exec("PRAGMA user_version = " + std::to_string(kSchemaVersion + 1));
       },
       "schema version " + std::to_string(kSchemaVersion + 1) + ", newer than version " +
           std::to_string(kSchemaVersion)},
      {"newer version on a file we never saw", dir_.file("other.db"),
       [](const std::string& path) {
         sqlite3* db = nullptr;
         sqlite3_open(path.c_str(), &db);
         sqlite3_exec(db, "PRAGMA user_version = 40", nullptr, nullptr, nullptr);
         sqlite3_close(db);
       },
       "schema version 40"},
      {"missing directory", dir_.file("no/such/dir/cache.db"), [](const std::string&) {},
       "Cannot open the policy cache database"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    c.prepare(c.path);
    try {
      SqliteStore store(c.path);
      ADD_FAILURE() << "constructor did not throw";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(c.message_part), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(c.path), std::string::npos) << e.what();
    }
  }
  // The refused file is left as it was.
  EXPECT_EQ(RawDb(db_path()).one("PRAGMA user_version"), std::to_string(kSchemaVersion + 1));
}

// ---------------------------------------------------------------- damaged or vanished files (issue #10)

// Overwrites `size` bytes of `path` at `offset` with a pattern no SQLite
// page or header has.
void scribble(const std::string& path, off_t offset, std::size_t size) {
  const int fd = open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0) << path;
  const std::vector<char> garbage(size, static_cast<char>(0xA5));
  ASSERT_EQ(pwrite(fd, garbage.data(), garbage.size(), offset), static_cast<ssize_t>(size));
  close(fd);
}

// A valid database of a few policies, checkpointed into the main file (the
// last connection to close removes the WAL).
void valid_database(const std::string& path) {
  SqliteStore store(path);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(store.save(numbered_policy(i, i)));
}

std::vector<std::string> moved_aside(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with("cache.db.corrupt-")) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

// A damaged file used to keep the daemon from starting (a restart loop over
// a cache) or leave it degraded for ever. Now it is moved aside, logged
// once, and a new database takes its place.
TEST_F(SqliteStoreTest, DamagedFileIsMovedAsideAndRebuilt) {
  struct Case {
    std::string name;
    std::function<void(const std::string&)> damage;
  };
  const std::vector<Case> cases = {
      {"garbage pages, not a database",
       [](const std::string& path) {
         std::FILE* file = std::fopen(path.c_str(), "w");
         for (int i = 0; i < 64 * 1024; ++i) std::fputc(static_cast<char>((i * 131) % 251), file);
         std::fclose(file);
       }},
      {"corrupt header page",
       [](const std::string& path) {
         valid_database(path);
         scribble(path, 0, 100);
       }},
      {"corrupt page 2",
       [](const std::string& path) {
         valid_database(path);
         const auto page_size = std::stoi(RawDb(path).one("PRAGMA page_size"));
         scribble(path, page_size, static_cast<std::size_t>(page_size));
       }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    TempDir dir;
    const std::string path = dir.file("cache.db");
    c.damage(path);
    LogCapture log;
    try {
      SqliteStore store(path);
      ASSERT_TRUE(store.save(make_policy("a.example", Mode::Enforce, 3600, {"mx.a.example"})));
      EXPECT_TRUE(store.load("a.example").has_value());
    } catch (const std::exception& e) {
      ADD_FAILURE() << "refused to open: " << e.what();
      continue;
    }
    EXPECT_EQ(RawDb(path).one("PRAGMA quick_check"), "ok");
    EXPECT_EQ(RawDb(path).one("SELECT count(*) FROM policies"), "1") << "a new database, not the old rows";
    const auto moved = moved_aside(dir.path());
    ASSERT_EQ(moved.size(), 1U) << "the damaged file is kept for a post-mortem";
    EXPECT_EQ(log.lines_with("store event=corrupt path="), 1) << log.text();
    EXPECT_EQ(log.lines_with("moved_to=" + dir.file(moved.front())), 1) << log.text();
  }
}

// A file that cannot be a damaged cache (no SQLite header, a size no page
// size divides) is the operator's own file under a mistyped store.path: it
// is refused and left where it is, never renamed.
TEST_F(SqliteStoreTest, AFileThatIsNoDatabaseIsLeftAlone) {
  const std::string path = db_path();
  {
    std::FILE* file = std::fopen(path.c_str(), "w");
    for (int i = 0; i < 200; ++i) std::fputs("root:x:0:0:root:/root:/bin/bash\n", file);
    std::fclose(file);
  }
  const auto size = std::filesystem::file_size(path);
  EXPECT_THROW(SqliteStore{path}, std::runtime_error);
  EXPECT_TRUE(moved_aside(dir_.path()).empty());
  EXPECT_EQ(std::filesystem::file_size(path), size) << "the file is untouched";
}

// A store the daemon cannot open for writing (a read-only folder or file
// system, a permission) made it refuse to start: a restart loop over a file
// that is only a cache. With memory_when_unwritable (the daemon's choice) it
// runs on an in-memory copy of the file's rows; without (the CLI) it refuses.
TEST_F(SqliteStoreTest, AnUnwritableStoreRunsInMemoryOnTheFilesRows) {
  const std::string path = db_path();
  {
    SqliteStore seeded(path);
    ASSERT_TRUE(seeded.save(make_policy("kept.example", Mode::Enforce, 3600, {"mx.kept.example"})));
  }
  // A directory where SQLite wants its -wal file: the file reads, but WAL
  // mode cannot start (root ignores file modes, so a mode would not do).
  std::filesystem::create_directory(path + "-wal");
  EXPECT_THROW(Database::open(path), std::runtime_error) << "the CLI's open still refuses";

  LogCapture log;
  SqliteStore store(Database::open(path, DatabaseOptions{.memory_when_unwritable = true}));
  EXPECT_EQ(log.lines_with("store event=unavailable path=" + path), 1) << log.text();
  EXPECT_EQ(log.lines_with("action=memory"), 1) << log.text();
  const auto kept = store.load("kept.example");
  ASSERT_TRUE(kept.has_value()) << "the file's rows are copied: " << log.text();
  EXPECT_EQ(kept->policy.mode, Mode::Enforce);
  ASSERT_TRUE(store.save(make_policy("new.example", Mode::Testing, 3600, {"mx.new.example"})));
  EXPECT_TRUE(store.load("new.example").has_value()) << "writes land in memory";
  EXPECT_EQ(store.list().size(), 2U);
  std::filesystem::remove(path + "-wal");
  EXPECT_EQ(RawDb(path).one("SELECT count(*) FROM policies"), "1") << "the file is untouched";
}

TEST_F(SqliteStoreTest, AStoreThatCannotBeCreatedRunsInMemoryEmpty) {
  const std::string not_a_folder = dir_.file("plain-file");
  std::fclose(std::fopen(not_a_folder.c_str(), "w"));
  const std::string path = not_a_folder + "/cache.db";
  EXPECT_THROW(Database::open(path), std::runtime_error);
  LogCapture log;
  SqliteStore store(Database::open(path, DatabaseOptions{.memory_when_unwritable = true}));
  EXPECT_EQ(log.lines_with("store event=unavailable"), 1) << log.text();
  EXPECT_TRUE(store.list().empty());
  ASSERT_TRUE(store.save(make_policy("a.example", Mode::Enforce, 3600, {"mx.a.example"})));
  EXPECT_TRUE(store.load("a.example").has_value());
}

// An operator's rm (or a restore that replaced the file) at run time: the
// writer used to go on writing into the unlinked file, and every later
// write vanished. Now the next write notices, logs, and reopens the path
// (a deleted file's rows copied into the new one: nothing that can be kept
// is lost).
TEST_F(SqliteStoreTest, DeletedOrReplacedFileIsReopenedAndLaterWritesLand) {
  struct Case {
    std::string name;
    std::function<void(const TempDir&)> change;
    std::string event;
    std::string rows;  // in the file at the path afterwards
  };
  const std::vector<Case> cases = {
      {"deleted",
       [](const TempDir& dir) {
         for (const char* suffix : {"", "-wal", "-shm"})
           std::filesystem::remove(dir.file("cache.db") + suffix);
       },
       "store event=file-deleted path=", "after.example;before.example"},
      {"deleted, its -wal and -shm left behind",
       [](const TempDir& dir) { std::filesystem::remove(dir.file("cache.db")); },
       "store event=file-deleted path=", "after.example;before.example"},
      {"replaced",
       [](const TempDir& dir) {
         { SqliteStore other(dir.file("other.db")); }
         for (const char* suffix : {"-wal", "-shm"}) std::filesystem::remove(dir.file("cache.db") + suffix);
         std::filesystem::rename(dir.file("other.db"), dir.file("cache.db"));
       },
       "store event=file-replaced path=", "after.example"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    TempDir dir;
    LogCapture log;
    SqliteStore store(Database::open(dir.file("cache.db"),
                                     DatabaseOptions{.file_check_interval = std::chrono::milliseconds(0)}));
    ASSERT_TRUE(store.save(make_policy("before.example", Mode::Enforce, 3600, {"mx.before.example"})));
    ASSERT_TRUE(store.load("before.example").has_value());  // a reader of the old file goes idle
    c.change(dir);
    const auto saved = store.save(make_policy("after.example", Mode::Enforce, 3600, {"mx.after.example"}));
    ASSERT_TRUE(saved) << code_of(saved);
    try {
      EXPECT_EQ(RawDb(dir.file("cache.db")).all("SELECT domain FROM policies ORDER BY domain"), c.rows);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "the write is not in the file at the path: " << e.what();
    }
    EXPECT_TRUE(store.load("after.example").has_value()) << "readers moved to the new file";
    EXPECT_EQ(log.lines_with(c.event), 1) << log.text();
  }
}

// A store that fails every write (read-only, full, locked) used to log
// every failure; now one line per (op, code) per interval, then one with
// how many were held back.
TEST_F(SqliteStoreTest, FailedWriteWarningsAreRateLimited) {
  LogCapture log;
  SqliteStore store(
      Database::open(db_path(), DatabaseOptions{.write_busy_timeout = std::chrono::milliseconds(1),
                                                .warning_interval = std::chrono::milliseconds(400)}));
  RawDb other(db_path());
  other.exec("BEGIN IMMEDIATE");  // another process holds the write lock: every write fails store-busy
  for (int i = 0; i < 100; ++i) {
    const auto saved = store.save(numbered_policy(i, i));
    ASSERT_FALSE(saved);
    ASSERT_EQ(saved.error().code, "store-busy");
  }
  ASSERT_FALSE(store.touch("d1.example", 1, 1, ""));
  EXPECT_EQ(log.lines_with("store event=write-failed op=save "), 1) << log.text();
  EXPECT_EQ(log.lines_with("store event=write-failed op=touch "), 1) << "another op has its own line";
  std::this_thread::sleep_for(std::chrono::milliseconds(450));
  ASSERT_FALSE(store.save(numbered_policy(1, 1)));
  EXPECT_EQ(log.lines_with("store event=write-failed op=save "), 2) << log.text();
  EXPECT_EQ(log.lines_with("code=store-busy detail="), 3) << log.text();
  EXPECT_EQ(log.lines_with("held_back=99"), 1) << log.text();
  other.exec("ROLLBACK");
}

TEST_F(SqliteStoreTest, ReadableViewShowsIsoUtcTimes) {
  SqliteStore store(db_path());
  auto stored = make_policy("a.example", Mode::Enforce, 86400, {"mx.a.example"});
  stored.fetched_at = 1700000000;
  stored.expires_at = 1700086400;
  stored.last_checked = 0;
  stored.last_used = 951782400;  // leap day 2000-02-29
  ASSERT_TRUE(store.save(stored));
  EXPECT_EQ(RawDb(db_path()).one("SELECT domain, mode, mx, fetched_at, expires_at, last_checked, "
                                 "last_used FROM policies_readable"),
            "a.example|enforce|mx.a.example|2023-11-14T22:13:20Z|2023-11-15T22:13:20Z|"
            "1970-01-01T00:00:00Z|2000-02-29T00:00:00Z");
}

// ---------------------------------------------------------------- errors as values

// Drops to `nobody` in a child and returns the child's exit code: 0 when the
// store opened the root-owned 0444 file read-only, loaded, and refused the
// write with store-readonly.
int readonly_child(const std::string& path) {
  if (setgid(65534) != 0 || setuid(65534) != 0) {
    return 10;
  }
  try {
    SqliteStore store(path);
    if (!store.load("a.example")) {
      return 11;
    }
    const auto saved = store.save(make_policy("b.example", Mode::Testing, 60, {"mx.b.example"}));
    if (saved || saved.error().code != "store-readonly" || saved.error().detail.empty()) {
      return 12;
    }
    const auto touched = store.touch("a.example", 1, 1, "");
    return !touched && touched.error().code == "store-readonly" ? 0 : 13;
  } catch (const std::exception&) {
    return 14;
  }
}

TEST_F(SqliteStoreTest, ReadOnlyFileGivesStoreReadonlyErrors) {
  {
    SqliteStore store(db_path());
    ASSERT_TRUE(store.save(make_policy("a.example", Mode::Testing, 60, {"mx.a.example"})));
  }
  // Root ignores permission bits, so the store runs as nobody in a child: the
  // directory is writable (SQLite needs the -shm file), the database is not.
  ASSERT_EQ(chmod(dir_.path().c_str(), 0777), 0);
  ASSERT_EQ(chmod(db_path().c_str(), 0444), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    _exit(readonly_child(db_path()));
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "10 setuid, 11 load, 12 save not store-readonly, 13 touch, 14 threw";
  EXPECT_EQ(RawDb(db_path()).one("SELECT count(*) FROM policies"), "1");
}

// A tmpfs of a few pages, unmounted (lazily, in case something is still open)
// on destruction.
class TinyTmpfs {
 public:
  explicit TinyTmpfs(const std::string& path) : path_(path) {
    std::filesystem::create_directory(path_);
    mounted_ = mount("tmpfs", path_.c_str(), "tmpfs", 0, "size=256k") == 0;
  }
  ~TinyTmpfs() {
    if (mounted_) {
      umount2(path_.c_str(), MNT_DETACH);
    }
  }
  TinyTmpfs(const TinyTmpfs&) = delete;
  TinyTmpfs& operator=(const TinyTmpfs&) = delete;
  bool mounted() const { return mounted_; }

 private:
  std::string path_;
  bool mounted_ = false;
};

// Writes zeros to `path` until the file system says ENOSPC; returns bytes written.
std::size_t fill_up(const std::string& path) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) {
    return 0;
  }
  const std::vector<char> zeros(4096, 0);
  std::size_t total = 0;
  ssize_t written = 0;
  while ((written = write(fd, zeros.data(), zeros.size())) > 0) {
    total += static_cast<std::size_t>(written);
  }
  close(fd);
  return total;
}

// A policy whose raw body is about `bytes` long (an extension field pads it),
// so saving it needs fresh pages.
StoredPolicy big_policy(const std::string& domain, std::size_t bytes) {
  auto stored = make_policy(domain, Mode::Testing, 3600, {"mx." + domain});
  stored.raw += "padding: " + std::string(bytes, 'x') + "\r\n";
  return stored;
}

TEST_F(SqliteStoreTest, FullDiskGivesStoreFullAndRecoversWhenSpaceReturns) {
  const std::string mount_point = dir_.file("tiny");
  TinyTmpfs tmpfs(mount_point);
  ASSERT_TRUE(tmpfs.mounted()) << "mount -t tmpfs failed (the unit tests run as root)";
  {
    SqliteStore store(mount_point + "/cache.db");
    ASSERT_TRUE(store.save(make_policy("a.example", Mode::Enforce, 3600, {"mx.a.example"})));
    ASSERT_GT(fill_up(mount_point + "/filler"), 0U);
    const auto saved = store.save(big_policy("b.example", 40000));
    ASSERT_FALSE(saved);
    EXPECT_EQ(saved.error().code, "store-full") << saved.error().detail;
    EXPECT_FALSE(saved.error().detail.empty());
    // The process goes on: reads work, and writes work again once there is room.
    EXPECT_TRUE(store.load("a.example").has_value());
    std::filesystem::remove(mount_point + "/filler");
    const auto retried = store.save(big_policy("b.example", 40000));
    EXPECT_TRUE(retried) << code_of(retried);
    EXPECT_TRUE(store.load("b.example").has_value());
  }
}

TEST_F(SqliteStoreTest, BusyWriterGivesStoreBusyAfterTheTimeoutOnly) {
  using std::chrono::milliseconds;
  // Injected instead of the 5 s default, so the test takes well under a second.
  constexpr milliseconds kBusyTimeout{300};
  struct Case {
    std::string name;
    milliseconds hold;  // another connection holds the write lock this long, or until save returns
    std::string expected_code;
  };
  const std::vector<Case> cases = {
      {"released within the busy timeout", milliseconds(100), "ok"},
      {"held past the busy timeout", milliseconds(10000), "store-busy"},
  };
  SqliteStore store(db_path(), kBusyTimeout);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    RawDb other(db_path());
    other.exec("BEGIN IMMEDIATE");
    std::promise<void> save_returned;
    std::thread holder([&other, &c, returned = save_returned.get_future()] {
      returned.wait_for(c.hold);
      other.exec("COMMIT");
    });
    const auto start = std::chrono::steady_clock::now();
    const auto saved = store.save(make_policy("a.example", Mode::Enforce, 60, {"mx.a.example"}));
    const auto waited = std::chrono::steady_clock::now() - start;
    save_returned.set_value();
    holder.join();
    EXPECT_EQ(code_of(saved), c.expected_code);
    // Waited for the lock, but no longer than the injected timeout (far below the default).
    EXPECT_GE(waited, std::min(c.hold, kBusyTimeout - milliseconds(50)));
    EXPECT_LT(waited, kBusyTimeout + milliseconds(1000));
  }
}

// Issue #9: a write that waits for another process's lock (an operator's
// sqlite3, `cache import`) must not hold up reads. Reads go through their
// own connection, which in WAL mode never waits for a writer; before, one
// connection and its mutex made load() wait behind the busy-waiting save().
TEST_F(SqliteStoreTest, ReadsNeverWaitBehindAWriteThatWaitsForALock) {
  using std::chrono::milliseconds;
  constexpr milliseconds kHold{1500};
  SqliteStore store(db_path());  // the default 5 s busy timeout for writes
  ASSERT_TRUE(store.save(make_policy("a.example", Mode::Enforce, 60, {"mx.a.example"})));
  ASSERT_TRUE(store.save_failure(
      FetchFailure{"f.example", "id1", 1, 2, ResultType::StsPolicyFetchError, "http-404", false}));
  RawDb other(db_path());
  other.exec("BEGIN IMMEDIATE");
  other.exec("UPDATE policies SET last_error = 'held' WHERE domain = 'a.example'");
  std::thread holder([&other, kHold] {
    std::this_thread::sleep_for(kHold);
    other.exec("COMMIT");
  });
  auto saving = std::async(std::launch::async, [&store] {
    return store.save(make_policy("b.example", Mode::Testing, 60, {"mx.b.example"}));
  });
  std::this_thread::sleep_for(milliseconds(200));  // the save is now waiting for the lock

  const auto start = std::chrono::steady_clock::now();
  const auto loaded = store.load("a.example");
  const auto failure = store.load_failure("f.example");
  const auto due = store.domains_due([](const policy::RefreshSlot&) { return true; });
  const auto listed = store.list();
  const auto waited = std::chrono::steady_clock::now() - start;
  holder.join();

  EXPECT_LT(waited, milliseconds(300)) << "reads waited behind the writer";
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->last_error, "") << "a reader sees only committed rows";
  EXPECT_TRUE(failure.has_value());
  EXPECT_EQ(due, std::vector<std::string>{"a.example"});
  EXPECT_EQ(listed.size(), 1U);
  EXPECT_EQ(code_of(saving.get()), "ok") << "the write went through once the lock was free";
  EXPECT_EQ(store.load("a.example")->last_error, "held");
  EXPECT_TRUE(store.load("b.example").has_value());
}

// ---------------------------------------------------------------- durability

TEST_F(SqliteStoreTest, ThousandPoliciesSurviveARestart) {
  constexpr int kCount = 1000;
  {
    SqliteStore store(db_path());
    for (int i = 0; i < kCount; ++i) {
      const auto saved = store.save(numbered_policy(i, i));
      ASSERT_TRUE(saved) << i << " " << saved.error().code;
    }
  }
  SqliteStore reopened(db_path());
  for (int i = 0; i < kCount; ++i) {
    ASSERT_EQ(describe(reopened.load("d" + std::to_string(i) + ".example")), describe(numbered_policy(i, i)));
  }
  EXPECT_EQ(reopened.list().size(), static_cast<std::size_t>(kCount));
}

TEST_F(SqliteStoreTest, ConcurrentWritersAndReadersSeeWholeRows) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 150;
  SqliteStore store(db_path());
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&store, &failures, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const int n = t * kPerThread + i;
        if (!store.save(numbered_policy(n, n)) ||
            describe(store.load("d" + std::to_string(n) + ".example")) != describe(numbered_policy(n, n))) {
          ++failures;
        }
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(store.list().size(), static_cast<std::size_t>(kThreads * kPerThread));
}

// Saves forever: domain n % 300 gets the n-th policy, so every row's content
// is a function of its fetched_at and a torn row would show.
[[noreturn]] void write_until_killed(const std::string& path) {
  try {
    SqliteStore store(path);
    for (std::int64_t n = 0;; ++n) {
      store.save(numbered_policy(static_cast<int>(n % 300), n));
    }
  } catch (...) {
  }
  _exit(3);
}

TEST_F(SqliteStoreTest, KillNineDuringWritesLeavesAConsistentDatabase) {
  { SqliteStore create(db_path()); }  // the schema exists before the first kill
  for (int round = 0; round < 5; ++round) {
    SCOPED_TRACE(round);
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      write_until_killed(db_path());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    ASSERT_EQ(kill(child, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited early with " << WEXITSTATUS(status);

    RawDb raw(db_path());
    EXPECT_EQ(raw.one("PRAGMA integrity_check"), "ok");
    const std::string rows = raw.one("SELECT count(*) FROM policies");
    EXPECT_NE(rows, "0");
    SqliteStore store(db_path());
    const auto listed = store.list();
    EXPECT_EQ(std::to_string(listed.size()), rows);  // every stored row parses
    for (const auto& stored : listed) {
      const std::int64_t n = stored.fetched_at - 1600000000;
      ASSERT_EQ(describe(stored), describe(numbered_policy(static_cast<int>(n % 300), n)));
    }
  }
}

}  // namespace
}  // namespace mtasts::store
