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

// What the callbacks share: how to check, and the current settings (the
// configuration and the per-domain overrides, replaced together on reload;
// each message uses the settings current when it began). Thread-safe.
class MilterContext {
 public:
  MilterContext(CheckFunction check, Settings settings) : check_(std::move(check)), settings_(std::move(settings)) {}
  Settings settings() const {
    std::lock_guard lock(mu_);
    return settings_;
  }
  std::shared_ptr<const Config> config() const {
    std::lock_guard lock(mu_);
    return settings_.config;
  }
  // Swaps config and overrides in one step: no message sees one without the other.
  void replace_settings(Settings settings) {
    std::lock_guard lock(mu_);
    settings_ = std::move(settings);
  }
  const CheckFunction& check() const { return check_; }
  std::atomic<int> open_sessions{0};
  // Callbacks running now: what a stop must wait for. Idle connections are
  // not waited for (libmilter stops serving them once it is told to stop).
  std::atomic<int> callbacks_in_flight{0};

 private:
  CheckFunction check_;
  mutable std::mutex mu_;
  Settings settings_;
};

// The filter description to pass to smfi_register. It can be registered
// (and the socket opened) before the context exists; no callback runs before
// smfi_main.
smfiDesc* milter_description();

// Installs `context` for the callbacks for as long as it lives; it must
// outlive smfi_main.
class ContextInstalled {
 public:
  explicit ContextInstalled(MilterContext& context);
  ~ContextInstalled();
  ContextInstalled(const ContextInstalled&) = delete;
  ContextInstalled& operator=(const ContextInstalled&) = delete;
};

}  // namespace mtasts::milter
