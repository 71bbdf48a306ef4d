// systemd's service protocol; see the header.
#include "milter/service_manager.h"

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "policy/logfmt.h"

namespace mtasts::milter {

ServiceManager::ServiceManager() {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  present_ = socket != nullptr && *socket != '\0';
  std::uint64_t usec = 0;
  // 0 = unset_environment: the variables stay for nothing else to see; the
  // CLI commands never call this.
  if (present_ && sd_watchdog_enabled(0, &usec) > 0 && usec > 0) watchdog_ = std::chrono::microseconds(usec);
}

void ServiceManager::send(const std::string& state) const {
  if (!present_) return;
  if (const int rc = sd_notify(0, state.c_str()); rc < 0)
    spdlog::warn("systemd event=notify-failed error={}", policy::logfmt_value(std::strerror(-rc)));
}

void ServiceManager::ready(const std::string& status) const { send("READY=1\nSTATUS=" + status); }
void ServiceManager::reloading() const { send("RELOADING=1\nSTATUS=reloading the configuration"); }
void ServiceManager::status(const std::string& status) const { send("STATUS=" + status); }
void ServiceManager::stopping() const {
  send("STOPPING=1\nSTATUS=stopping: finishing the decisions in flight");
}
void ServiceManager::watchdog_ping() const { send("WATCHDOG=1"); }

struct ServiceWatchdog::Impl {
  Impl(const ServiceManager& m, Health h, Status s, std::chrono::milliseconds every)
      : manager(m), health(std::move(h)), status(std::move(s)), status_every(every) {}

  const ServiceManager& manager;
  Health health;
  Status status;
  std::chrono::milliseconds status_every;
  std::mutex mu;
  std::condition_variable wake;
  bool stopping = false;
  std::string last_problem;  // the watchdog thread's own
  std::thread thread;

  std::chrono::milliseconds period() const {
    const auto interval = manager.watchdog_interval();
    if (!interval) return status_every;
    return std::min(status_every, std::chrono::duration_cast<std::chrono::milliseconds>(*interval / 2));
  }

  void tick(std::chrono::steady_clock::time_point& next_status) {
    if (manager.watchdog_interval()) {
      const std::string problem = health();
      if (problem.empty()) manager.watchdog_ping();
      if (problem != last_problem) {
        if (problem.empty())
          spdlog::info("watchdog event=healthy");
        else
          spdlog::error(
              "watchdog event=unhealthy reason={} note=\"no watchdog ping: systemd restarts the "
              "daemon when this lasts WatchdogSec\"",
              policy::logfmt_value(problem));
        last_problem = problem;
      }
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_status) {
      manager.status(status());
      next_status = now + status_every;
    }
  }

  void run() {
    auto next_status = std::chrono::steady_clock::now() + status_every;
    std::unique_lock lock(mu);
    while (!stopping) {
      lock.unlock();
      tick(next_status);
      lock.lock();
      wake.wait_for(lock, period(), [this] { return stopping; });
    }
  }
};

ServiceWatchdog::ServiceWatchdog(const ServiceManager& manager, Health health, Status status,
                                 std::chrono::milliseconds status_every)
    : impl_(std::make_unique<Impl>(manager, std::move(health), std::move(status), status_every)) {
  if (!manager.present()) return;
  impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
}

ServiceWatchdog::~ServiceWatchdog() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::string PoolProgress::check(std::uint64_t completed, std::size_t busy,
                                std::chrono::steady_clock::time_point now) {
  if (busy == 0 || completed != last_completed_ || !last_progress_) {
    last_completed_ = completed;
    last_progress_ = now;
    return "";
  }
  if (now - *last_progress_ < stall_limit_) return "";
  return "engine-stalled: " + std::to_string(busy) + " jobs running, none finished for " +
         std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - *last_progress_).count()) +
         " s";
}

}  // namespace mtasts::milter
