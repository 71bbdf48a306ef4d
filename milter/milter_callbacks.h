// The libmilter callbacks: thin translations between libmilter and Session.
// Each catches every exception (none may cross into libmilter) and falls back
// to the configured error action.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>

#include "milter/config.h"
#include "milter/session.h"

struct smfiDesc;

namespace mtasts::milter {

// What the callbacks share: how to check, and the current configuration
// (replaced on reload; sessions keep the one they started with).
class MilterContext {
 public:
  explicit MilterContext(CheckFunction check, std::shared_ptr<const Config> config)
      : check_(std::move(check)), config_(std::move(config)) {}
  std::shared_ptr<const Config> config() const {
    std::lock_guard lock(mu_);
    return config_;
  }
  void replace_config(std::shared_ptr<const Config> config) {
    std::lock_guard lock(mu_);
    config_ = std::move(config);
  }
  const CheckFunction& check() const { return check_; }
  std::atomic<int> open_sessions{0};
  // Callbacks running now: what a stop must wait for. Idle connections are
  // not waited for (libmilter stops serving them once it is told to stop).
  std::atomic<int> callbacks_in_flight{0};

 private:
  CheckFunction check_;
  mutable std::mutex mu_;
  std::shared_ptr<const Config> config_;
};

// Installs `context` for the callbacks (it must outlive smfi_main) and
// returns the filter description to pass to smfi_register.
smfiDesc* milter_description(MilterContext& context);

}  // namespace mtasts::milter
