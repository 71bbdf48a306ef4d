// Failed-read and -write warnings, at most one per (operation, error code) per
// interval, with how many were held back: a read-only or full store fails
// every write, and must not flood the log with them (the same idea as
// policy/engine/refusal_log.h, which store/ may not include).
// Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace mtasts::store {

class WarningLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  explicit WarningLimiter(std::chrono::milliseconds interval) : interval_(interval) {}

  // Counts one failure of `op` with `code` at `now`. When a warning is due,
  // returns how many of the same were held back since the last one (0 for
  // the first); nullopt while the last warning is recent.
  std::optional<std::int64_t> note(std::string_view op, std::string_view code, Clock::time_point now) {
    const std::lock_guard lock(mutex_);
    auto [it, first] = last_.try_emplace({std::string(op), std::string(code)}, Slot{now, 0});
    if (first) return 0;
    Slot& slot = it->second;
    if (now - slot.warned_at < interval_) {
      ++slot.held_back;
      return std::nullopt;
    }
    slot.warned_at = now;
    return std::exchange(slot.held_back, 0);
  }

 private:
  struct Slot {
    Clock::time_point warned_at;
    std::int64_t held_back = 0;  // since warned_at
  };
  std::chrono::milliseconds interval_;
  std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, Slot> last_;
};

}  // namespace mtasts::store
