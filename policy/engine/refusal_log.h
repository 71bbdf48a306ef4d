// Refusals under overload, logged at most once per 10 s with how many there
// were: a flood of new domains or hosts must not flood the log too.
#pragma once

#include <cstdint>
#include <utility>

#include "policy/engine/lock_guarded.h"

namespace mtasts::policy {

class RefusalLog {
 public:
  // Counts one refusal at `now` (unix seconds); returns how many to report
  // now (those since the last report), or 0 while the last is recent.
  int note(std::int64_t now) {
    return state_.with([&](State& s) {
      ++s.refusals;
      if (now - s.logged_at < kEverySeconds) return 0;
      s.logged_at = now;
      return std::exchange(s.refusals, 0);
    });
  }

 private:
  static constexpr std::int64_t kEverySeconds = 10;
  struct State {
    int refusals = 0;  // since the last report
    std::int64_t logged_at = -3600;
  };
  LockGuarded<State> state_;
};

}  // namespace mtasts::policy
