// The in-memory fetch back-off (RFC 8461 §3.3): bounded, expiring, per id.
#include "policy/engine/fetch_backoff.h"

#include <gtest/gtest.h>

namespace mtasts::policy {
namespace {

TEST(FetchBackoff, BoundedAndExpiring) {
  FetchBackoff backoff(2);
  const auto failure = [](const std::string& domain, std::int64_t retry_at) {
    return FetchFailure{domain, "id", 0, retry_at, ResultType::StsPolicyFetchError, "http-500", true};
  };
  backoff.remember(failure("a", 100), 0);
  backoff.remember(failure("b", 200), 0);
  EXPECT_TRUE(backoff.active("a", "id", 99));
  EXPECT_FALSE(backoff.active("a", "id", 100)) << "retry_at reached";
  EXPECT_FALSE(backoff.active("a", "other-id", 50)) << "another id is not backed off";
  backoff.remember(failure("c", 300), 50);  // full: the soonest to expire (a) goes
  EXPECT_EQ(backoff.size(), 2U);
  EXPECT_FALSE(backoff.active("a", "id", 50));
  EXPECT_TRUE(backoff.active("b", "id", 50));
  EXPECT_TRUE(backoff.active("c", "id", 50));
  backoff.remember(failure("d", 400), 250);  // full: the expired (b) goes first
  EXPECT_TRUE(backoff.active("c", "id", 250));
  EXPECT_TRUE(backoff.active("d", "id", 250));
  backoff.forget("c");
  EXPECT_FALSE(backoff.active("c", "id", 250));
}

}  // namespace
}  // namespace mtasts::policy
