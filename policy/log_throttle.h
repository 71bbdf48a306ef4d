// At most one log line per interval, saying how many events it stands for:
// a flood (refusals under overload, writes to a full store) must not flood
// the log too. The arithmetic only, shared by the engine's refusal lines
// (policy/engine/refusal_log.h) and the store's failure warnings
// (store/warning_limiter.h); each owner holds its own lock.
// Not thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>

namespace mtasts::policy {

class LogThrottle {
 public:
  // `interval` in the unit the caller's times are in.
  explicit LogThrottle(std::int64_t interval) : interval_(interval) {}

  // Counts one event at `now`. When a line is due: the events since the
  // last line, this one included. nullopt while the last line is recent.
  std::optional<std::int64_t> note(std::int64_t now) {
    ++events_;
    if (logged_ && now - logged_at_ < interval_) return std::nullopt;
    logged_ = true;
    logged_at_ = now;
    return std::exchange(events_, 0);
  }

 private:
  std::int64_t interval_;
  std::int64_t events_ = 0;  // since the last line
  bool logged_ = false;      // a line was logged, at logged_at_
  std::int64_t logged_at_ = 0;
};

}  // namespace mtasts::policy
