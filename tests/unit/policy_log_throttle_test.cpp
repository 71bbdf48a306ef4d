// policy/log_throttle.h: one line per interval, counting what it stands for.
#include "policy/log_throttle.h"

#include <gtest/gtest.h>

#include <optional>
#include <vector>

namespace mtasts::policy {
namespace {

TEST(LogThrottle, OneLinePerIntervalWithTheEventsItStandsFor) {
  struct Step {
    std::int64_t now;
    std::optional<std::int64_t> line;  // what note() returns
  };
  const std::vector<Step> steps{
      {100, 1},             // the first event is logged at once
      {101, std::nullopt},  // within the interval: counted
      {105, std::nullopt},
      {110, 3},  // due: these two and this one
      {119, std::nullopt},
      {200, 2},  // long after: due at once
      {210, 1},
  };
  LogThrottle throttle(10);
  for (const auto& step : steps) {
    SCOPED_TRACE(step.now);
    EXPECT_EQ(throttle.note(step.now), step.line);
  }
}

}  // namespace
}  // namespace mtasts::policy
