#include "milter/system_clock.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <charconv>
#include <cstdlib>
#include <string_view>

namespace mtasts::milter {

SystemClock::SystemClock() {
  const char* fake = std::getenv("MTASTS_FAKE_NOW");
  if (!fake) return;
  const std::string_view text(fake);
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) {
    spdlog::warn("clock event=bad-fake-now value=\"{}\" using=system", text);
    return;
  }
  pinned_ = value;
}

std::int64_t SystemClock::now() const {
  if (pinned_) return *pinned_;
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace mtasts::milter
