// PoolProgress: when the engine counts as wedged for systemd's watchdog
// (milter/service_manager.h), and ServiceManager without systemd.
#include "milter/service_manager.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace mtasts::milter {
namespace {

using std::chrono::seconds;
using Time = std::chrono::steady_clock::time_point;

TEST(PoolProgress, IdleOrProgressingPoolIsHealthyAndAStallIsNot) {
  PoolProgress progress(seconds(120));
  const Time t0{};
  EXPECT_EQ(progress.check(0, 0, t0), "");                 // idle
  EXPECT_EQ(progress.check(0, 5, t0 + seconds(10)), "");   // work begins: the clock starts
  EXPECT_EQ(progress.check(3, 5, t0 + seconds(100)), "");  // jobs finished
  EXPECT_EQ(progress.check(3, 5, t0 + seconds(219)), "");  // 119 s without a finished job
  const std::string stalled = progress.check(3, 5, t0 + seconds(221));
  EXPECT_EQ(stalled, "engine-stalled: 5 jobs running, none finished for 121 s");
  EXPECT_EQ(progress.check(4, 5, t0 + seconds(222)), "");  // one finished: well again
  EXPECT_EQ(progress.check(4, 0, t0 + seconds(900)), "");  // idle for long is fine
}

TEST(ServiceManager, WithoutNotifySocketNothingIsSentAndThereIsNoWatchdog) {
  unsetenv("NOTIFY_SOCKET");
  setenv("WATCHDOG_USEC", "1000000", 1);
  const ServiceManager manager;
  EXPECT_FALSE(manager.present());
  EXPECT_FALSE(manager.watchdog_interval().has_value());
  manager.ready("x");  // no effect, no crash
  unsetenv("WATCHDOG_USEC");
}

}  // namespace
}  // namespace mtasts::milter
