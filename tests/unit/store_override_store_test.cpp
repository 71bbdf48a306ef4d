// OverrideStore: the operator-written `overrides` table (schema v3) read into
// validated values; NULL means "use the config", bad rows are skipped with a
// warning naming them, a later read sees the operator's edits, and a table
// that cannot be read is an error value, never an exception.
#include "store/override_store.h"

#include <gtest/gtest.h>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <unistd.h>
#include "store/schema.h"
#include "store_test_support.h"

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

namespace mtasts::store {
namespace {

using mtasts::testing::RawDb;
using mtasts::testing::TempDir;

// Captures the default logger's lines for the duration of a test.
class LogCapture {
 public:
  LogCapture() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    sink->set_pattern("%l %v");
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink));
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  std::string text() const { return out_.str(); }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> previous_;
};

struct RowCase {
  std::string name;
  std::string values;              // SQL: (domain, enforce_action, testing_action, strict_testing, note)
  std::optional<std::string> key;  // nullopt: the row is skipped
  DomainOverride want;             // when loaded
  std::string warning;             // when skipped: part of the warning line
};

std::vector<RowCase> row_cases() {
  const auto none = std::optional<std::string>();
  return {
      {"all NULL: an empty override", "('nulls.example', NULL, NULL, NULL, NULL)", "nulls.example", {}, ""},
      {"enforce tag",
       "('tag.example', 'tag', NULL, NULL, 'MX broken, ticket 42')",
       "tag.example",
       {"tag", none, std::nullopt},
       ""},
      {"enforce off",
       "('off.example', 'off', NULL, NULL, NULL)",
       "off.example",
       {"off", none, std::nullopt},
       ""},
      {"enforce reject",
       "('reject.example', 'reject', NULL, NULL, NULL)",
       "reject.example",
       {"reject", none, std::nullopt},
       ""},
      {"enforce quarantine",
       "('q.example', 'quarantine', NULL, NULL, NULL)",
       "q.example",
       {"quarantine", none, std::nullopt},
       ""},
      {"testing tag, strict 1",
       "('strict.example', NULL, 'tag', 1, NULL)",
       "strict.example",
       {none, "tag", true},
       ""},
      {"strict 0 turns strict testing off",
       "('lax.example', NULL, NULL, 0, NULL)",
       "lax.example",
       {none, none, false},
       ""},
      {"strict as text '1' gets INTEGER affinity",
       "('textone.example', NULL, NULL, '1', NULL)",
       "textone.example",
       {none, none, true},
       ""},
      {"every column",
       "('all.example', 'tempfail', 'off', 0, '')",
       "all.example",
       {"tempfail", "off", false},
       ""},
      {"domain normalised",
       "('Upper.EXAMPLE.', 'tag', NULL, NULL, NULL)",
       "upper.example",
       {"tag", none, std::nullopt},
       ""},
      {"U-label domain",
       "('bücher.example', 'off', NULL, NULL, NULL)",
       "xn--bcher-kva.example",
       {"off", none, std::nullopt},
       ""},
      {"unknown enforce action",
       "('typo.example', 'tagg', NULL, NULL, NULL)",
       std::nullopt,
       {},
       "domain=typo.example column=enforce_action value=tagg"},
      {"enforce action in upper case",
       "('upper-action.example', 'TAG', NULL, NULL, NULL)",
       std::nullopt,
       {},
       "column=enforce_action value=TAG"},
      {"empty enforce action",
       "('empty.example', '', NULL, NULL, NULL)",
       std::nullopt,
       {},
       "domain=empty.example column=enforce_action value=-"},
      {"enforce action as a number",
       "('number.example', 3, NULL, NULL, NULL)",
       std::nullopt,
       {},
       "column=enforce_action value=3"},
      {"tempfail is not a testing action",
       "('testing.example', NULL, 'tempfail', NULL, NULL)",
       std::nullopt,
       {},
       "domain=testing.example column=testing_action value=tempfail"},
      {"strict 2", "('two.example', NULL, NULL, 2, NULL)", std::nullopt, {}, "column=strict_testing value=2"},
      {"strict yes",
       "('yes.example', NULL, NULL, 'yes', NULL)",
       std::nullopt,
       {},
       "column=strict_testing value=yes"},
      {"empty domain", "('', 'tag', NULL, NULL, NULL)", std::nullopt, {}, "domain=- column=domain"},
      {"address literal", "('[192.0.2.1]', 'tag', NULL, NULL, NULL)", std::nullopt, {}, "column=domain"},
      {"empty label", "('a..example', 'tag', NULL, NULL, NULL)", std::nullopt, {}, "domain=a..example"},
      {"repeats an earlier row after normalisation",
       "('TAG.example', 'off', NULL, NULL, NULL)",
       std::nullopt,
       {},
       "domain=TAG.example column=domain value=\"tag.example (repeats an earlier row)\""},
  };
}

TEST(OverrideStore, ValidRowsLoadAndInvalidRowsAreSkippedWithAWarning) {
  TempDir dir;
  const std::string path = dir.file("cache.db");
  OverrideStore store(path);
  const auto cases = row_cases();
  for (const auto& c : cases)
    RawDb(path).exec(
        "INSERT INTO overrides (domain, enforce_action, testing_action, strict_testing, note) VALUES " +
        c.values);
  const LogCapture log;
  const auto loaded = store.load();
  ASSERT_TRUE(loaded.has_value()) << loaded.error().detail;
  std::size_t valid = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    if (c.key) {
      ++valid;
      const auto it = loaded->find(*c.key);
      ASSERT_NE(it, loaded->end());
      EXPECT_EQ(it->second.enforce_action, c.want.enforce_action);
      EXPECT_EQ(it->second.testing_action, c.want.testing_action);
      EXPECT_EQ(it->second.strict_testing, c.want.strict_testing);
    } else {
      EXPECT_NE(log.text().find(c.warning), std::string::npos) << log.text();
    }
  }
  EXPECT_EQ(loaded->size(), valid) << "only the valid rows";
  std::istringstream lines(log.text());
  std::size_t warnings = 0;
  for (std::string line; std::getline(lines, line);) {
    EXPECT_TRUE(line.starts_with("warning overrides event=invalid-row rowid=")) << line;
    EXPECT_NE(line.find(" action=skipped"), std::string::npos) << line;
    ++warnings;
  }
  EXPECT_EQ(warnings, cases.size() - valid) << "one warning per skipped row";
  EXPECT_EQ(loaded->at("tag.example").enforce_action, "tag") << "the first of two equal domains wins";
}

TEST(OverrideStore, NewFileHasAnEmptyTableAndALaterLoadSeesEdits) {
  TempDir dir;
  const std::string path = dir.file("cache.db");
  OverrideStore store(path);
  EXPECT_EQ(RawDb(path).one("PRAGMA user_version"), std::to_string(store::kSchemaVersion));
  const auto empty = store.load();
  ASSERT_TRUE(empty.has_value());
  EXPECT_TRUE(empty->empty());

  struct Step {
    std::string sql;
    DomainOverrides want;
  };
  const std::vector<Step> steps{
      {"INSERT INTO overrides(domain, enforce_action) VALUES('a.example','tag')",
       {{"a.example", {"tag", {}, {}}}}},
      {"UPDATE overrides SET enforce_action = NULL, strict_testing = 1 WHERE domain = 'a.example'",
       {{"a.example", {{}, {}, true}}}},
      {"INSERT INTO overrides(domain, testing_action) VALUES('b.example','tag')",
       {{"a.example", {{}, {}, true}}, {"b.example", {{}, "tag", {}}}}},
      {"DELETE FROM overrides WHERE domain = 'a.example'", {{"b.example", {{}, "tag", {}}}}},
  };
  for (const auto& step : steps) {
    SCOPED_TRACE(step.sql);
    RawDb(path).exec(step.sql);
    const auto loaded = store.load();
    ASSERT_TRUE(loaded.has_value());
    EXPECT_EQ(*loaded, step.want);
  }
}

TEST(OverrideStore, UnreadableTableIsAnErrorValueNotAThrow) {
  struct Case {
    std::string name;
    std::string sql;  // what the operator did to the table
  };
  const std::vector<Case> cases{
      {"table dropped", "DROP TABLE overrides"},
      {"table replaced without the columns", "DROP TABLE overrides; CREATE TABLE overrides (domain TEXT)"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    TempDir dir;
    const std::string path = dir.file("cache.db");
    OverrideStore store(path);
    RawDb(path).exec(c.sql);
    const LogCapture log;
    policy::Result<DomainOverrides> loaded = DomainOverrides{};
    EXPECT_NO_THROW(loaded = store.load());
    ASSERT_FALSE(loaded.has_value());
    EXPECT_EQ(loaded.error().code, "store-error");
    EXPECT_NE(log.text().find("error overrides event=read-failed store=" + path), std::string::npos)
        << log.text();
  }
}

TEST(OverrideStore, ConstructorThrowsNamingAnUnusableFile) {
  TempDir dir;
  const std::string path = dir.file("no/such/dir/cache.db");
  try {
    OverrideStore store(path);
    ADD_FAILURE() << "constructor did not throw";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(OverrideStore, ActionWordsMatchTheConfig) {
  const std::vector<std::pair<std::string, std::pair<bool, bool>>> cases{
      {"tempfail", {true, false}}, {"reject", {true, false}}, {"quarantine", {true, false}},
      {"tag", {true, true}},       {"off", {true, true}},     {"continue", {false, false}},
      {"", {false, false}},        {"Tag", {false, false}},   {"tag ", {false, false}},
  };
  for (const auto& [word, want] : cases) {
    SCOPED_TRACE(word);
    EXPECT_EQ(valid_enforce_action(word), want.first);
    EXPECT_EQ(valid_testing_action(word), want.second);
  }
}

}  // namespace
}  // namespace mtasts::store
