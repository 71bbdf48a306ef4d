// systemd's service protocol (sd_notify(3), libsystemd) for Type=notify
// units (contrib/systemd/mta-sts-milter.service):
//   READY=1      once the sockets are open and every service started
//   STATUS=...   what an operator sees in `systemctl status`: policies in
//                memory, milter sessions, recipients waiting, refreshed
//   RELOADING=1  from SIGUSR1/SIGHUP until the new settings are in force,
//                then READY=1 again
//   STOPPING=1   once a stop was asked
//   WATCHDOG=1   every WatchdogSec/2, and only while the daemon is healthy
//                (ServiceWatchdog: a stalled milter loop or a wedged engine
//                stops the pings, and systemd restarts the daemon)
// Without $NOTIFY_SOCKET (not started by systemd) every call does nothing.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace mtasts::milter {

class ServiceManager {
 public:
  ServiceManager();  // reads $NOTIFY_SOCKET and $WATCHDOG_USEC

  bool present() const { return present_; }
  // WatchdogSec of the unit, when the watchdog is on for this process.
  std::optional<std::chrono::microseconds> watchdog_interval() const { return watchdog_; }

  void ready(const std::string& status) const;
  void reloading() const;
  void status(const std::string& status) const;
  void stopping() const;
  void watchdog_ping() const;

 private:
  void send(const std::string& state) const;
  bool present_ = false;
  std::optional<std::chrono::microseconds> watchdog_;
};

// A thread that pings the watchdog every interval/2 while `health` says the
// daemon is well, and refreshes STATUS= every `status_every`. `health`
// returns "" when healthy, else the reason (logged once per change:
// "watchdog event=unhealthy reason=..."). Does nothing without a manager.
class ServiceWatchdog {
 public:
  using Health = std::function<std::string()>;
  using Status = std::function<std::string()>;

  ServiceWatchdog(const ServiceManager& manager, Health health, Status status,
                  std::chrono::milliseconds status_every);
  ~ServiceWatchdog();  // stops the thread
  ServiceWatchdog(const ServiceWatchdog&) = delete;
  ServiceWatchdog& operator=(const ServiceWatchdog&) = delete;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The engine's part of "healthy": a pool with work that has finished no job
// for `stall_limit` is wedged (every job is bounded by timeouts of seconds).
// Call it from one thread (the watchdog's); "" when well.
class PoolProgress {
 public:
  explicit PoolProgress(std::chrono::steady_clock::duration stall_limit) : stall_limit_(stall_limit) {}
  std::string check(std::uint64_t completed, std::size_t busy, std::chrono::steady_clock::time_point now);

 private:
  std::chrono::steady_clock::duration stall_limit_;
  std::uint64_t last_completed_ = 0;
  std::optional<std::chrono::steady_clock::time_point> last_progress_;
};

}  // namespace mtasts::milter
