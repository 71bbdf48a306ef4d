// Wall-clock time for the engine. MTASTS_FAKE_NOW=<unix seconds> in the
// environment pins it (integration tests use it to step over back-off and
// expiry windows without waiting); it is read once, at construction.
#pragma once

#include <cstdint>
#include <optional>

#include "policy/sources.h"

namespace mtasts::milter {

class SystemClock final : public policy::Clock {
 public:
  SystemClock();
  std::int64_t now() const override;

 private:
  std::optional<std::int64_t> pinned_;
};

}  // namespace mtasts::milter
