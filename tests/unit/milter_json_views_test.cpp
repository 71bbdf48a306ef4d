// `cache import` lines (milter/json_views.h): bad times and ids are refused
// with a clear code, never wrapped, overflowed or stored (fuzz finding: a
// fetched_at of INT64_MAX overflowed the expiry).
#include "milter/json_views.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mtasts::milter {
namespace {

constexpr std::int64_t kNow = 1'800'000'000;

nlohmann::json line(const std::string& extra = "") {
  return nlohmann::json::parse(
      R"({"domain":"a.example","txt_id":"id1","raw":"version: STSv1\nmode: enforce\nmx: mx.a.example\nmax_age: 86400\n")" +
      extra + "}");
}

struct Case {
  std::string name;
  std::string extra;
  std::string error;  // "" when accepted
};

TEST(CacheImportLine, TimesAndIdsAreChecked) {
  const std::vector<Case> cases{
      {"defaults", "", ""},
      {"explicit times", R"(,"fetched_at":1799990000,"expires_at":1800000000,"last_used":1799999999)", ""},
      {"fetched_at INT64_MAX", R"(,"fetched_at":9223372036854775807)", "import-time"},
      {"fetched_at above INT64_MAX", R"(,"fetched_at":18446744073709551615)", "import-time"},
      {"fetched_at negative", R"(,"fetched_at":-5)", "import-time"},
      {"fetched_at a week ahead", R"(,"fetched_at":1800604800)", "import-time"},
      {"fetched_at fractional", R"(,"fetched_at":1799990000.5)", "import-time"},
      {"fetched_at a string", R"(,"fetched_at":"1799990000")", "import-time"},
      {"expiry beyond max_age", R"(,"fetched_at":1799990000,"expires_at":1900000000)", "import-time"},
      {"last_used negative", R"(,"last_used":-1)", "import-time"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const auto stored = stored_from_json(line(c.extra), kNow);
    if (c.error.empty()) {
      ASSERT_TRUE(stored.has_value()) << stored.error().detail;
      EXPECT_LE(stored->expires_at, stored->fetched_at + 86400);
    } else {
      ASSERT_FALSE(stored.has_value());
      EXPECT_EQ(stored.error().code, c.error);
    }
  }
}

TEST(CacheImportLine, PolicyIdMustBeAnRfcId) {
  for (const std::string& id :
       std::vector<std::string>{"", "has space", "id=1", std::string(33, 'a'), "line\nbreak"}) {
    auto j = line();
    j["txt_id"] = id;
    const auto stored = stored_from_json(j, kNow);
    ASSERT_FALSE(stored.has_value()) << id;
    EXPECT_EQ(stored.error().code, "import-txt-id");
  }
}

}  // namespace
}  // namespace mtasts::milter
