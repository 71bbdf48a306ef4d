// The shipped clock is the system clock: a stray variable in the daemon's
// environment (the MTASTS_FAKE_NOW test seam it once honoured) must not
// freeze expiry and back-off.
#include "milter/system_clock.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>

namespace mtasts::milter {
namespace {

TEST(SystemClock, IgnoresAnyFakeTimeVariable) {
  ::setenv("MTASTS_FAKE_NOW", "1000", 1);
  const SystemClock clock;
  const auto real =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  ::unsetenv("MTASTS_FAKE_NOW");
  EXPECT_LE(std::abs(clock.now() - real), 2);
}

}  // namespace
}  // namespace mtasts::milter
