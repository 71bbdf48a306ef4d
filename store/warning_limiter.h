// Failed-read and -write warnings, at most one per (operation, error code) per
// interval, with how many were held back: a read-only or full store fails
// every write, and must not flood the log with them. One policy::LogThrottle
// per (operation, code), in milliseconds.
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

#include "policy/log_throttle.h"

namespace mtasts::store {

class WarningLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  explicit WarningLimiter(std::chrono::milliseconds interval) : interval_(interval) {}

  // Counts one failure of `op` with `code` at `now`. When a warning is due,
  // returns how many of the same were held back since the last one (0 for
  // the first); nullopt while the last warning is recent.
  std::optional<std::int64_t> note(std::string_view op, std::string_view code, Clock::time_point now) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
    const std::lock_guard lock(mutex_);
    auto it = throttles_.try_emplace({std::string(op), std::string(code)}, interval_.count()).first;
    const auto events = it->second.note(ms);
    if (!events) return std::nullopt;
    return *events - 1;  // this one is the line; the others were held back
  }

 private:
  std::chrono::milliseconds interval_;
  std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, policy::LogThrottle> throttles_;
};

}  // namespace mtasts::store
