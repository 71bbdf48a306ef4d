// Wall-clock time for the engine: the system clock, nothing else. Tests
// inject their own policy::Clock; the integration scenarios that step over
// back-off and expiry windows run the binary under faketime(1), so the
// shipped daemon reads no variable that could freeze its expiry checks.
#pragma once

#include <cstdint>

#include "policy/sources.h"

namespace mtasts::milter {

class SystemClock final : public policy::Clock {
 public:
  std::int64_t now() const override;
};

}  // namespace mtasts::milter
