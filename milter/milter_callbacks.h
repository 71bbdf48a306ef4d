// The libmilter callbacks: thin translations between libmilter and Session.
// Each catches every exception (none may cross into libmilter) and falls back
// to the configured error action.
#pragma once

#include <atomic>
#include <chrono>
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
  MilterContext(CheckFunction check, Settings settings)
      : check_(std::move(check)), settings_(std::move(settings)) {}
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

 private:
  CheckFunction check_;
  mutable std::mutex mu_;
  Settings settings_;
};

// The filter description to pass to smfi_register. It can be registered
// (and the socket opened) before the context exists; no callback runs before
// smfi_main.
smfiDesc* milter_description();

// Lets the callbacks use `context` until close(); it must outlive this.
// libmilter may call in after smfi_main returns (connections the MTA keeps
// open), so stopping is: close() (new callbacks answer without the context:
// a recipient is deferred), which waits for those running, then destroy.
class ContextInstalled {
 public:
  explicit ContextInstalled(MilterContext& context);
  // Shuts callbacks out, then waits until `give_up` for the running ones.
  // True when none is left.
  bool close(std::chrono::steady_clock::time_point give_up);
  ~ContextInstalled();  // close() without a bound
  ContextInstalled(const ContextInstalled&) = delete;
  ContextInstalled& operator=(const ContextInstalled&) = delete;
};

int callbacks_in_flight();      // callbacks holding the context now
int open_milter_connections();  // connections libmilter has open with us
// Connections served at once; a connection beyond it is refused at
// negotiation (logged at most once per 10 s). Unlimited until set.
void set_connection_limit(int limit);

}  // namespace mtasts::milter
