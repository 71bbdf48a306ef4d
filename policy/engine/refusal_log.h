// Refusals under overload, logged at most once per 10 s with how many there
// were: a flood of new domains or hosts must not flood the log too.
#pragma once

#include <cstdint>

#include "policy/engine/lock_guarded.h"
#include "policy/log_throttle.h"

namespace mtasts::policy {

class RefusalLog {
 public:
  // Counts one refusal at `now` (unix seconds); returns how many to report
  // now (those since the last report), or 0 while the last is recent.
  int note(std::int64_t now) {
    return throttle_.with([&](LogThrottle& t) { return static_cast<int>(t.note(now).value_or(0)); });
  }

 private:
  static constexpr std::int64_t kEverySeconds = 10;
  LockGuarded<LogThrottle> throttle_{LogThrottle(kEverySeconds)};
};

}  // namespace mtasts::policy
