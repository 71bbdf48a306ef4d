// The background refresher, RFC 8461 §8.1 ("senders SHOULD ... proactively
// refresh cached policies before they expire"): a thread that runs
// Resolver::refresh_due() every `period` until destroyed. What is due, and
// what a refresh does, is the Resolver's business; this only paces it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "policy/engine/resolver.h"

namespace mtasts::policy {

class BackgroundRefresher {
 public:
  // Starts the thread; the first pass runs after one period.
  BackgroundRefresher(Resolver& resolver, std::chrono::milliseconds period);
  // Asks the thread to stop without waiting: a pass under way ends after the
  // domain it is refreshing (at most one fetch's timeout).
  void request_stop();
  // True once the thread has stopped, false at `deadline`.
  bool wait_stopped_until(std::chrono::steady_clock::time_point deadline);
  // Stops the thread and waits for it.
  ~BackgroundRefresher();
  BackgroundRefresher(const BackgroundRefresher&) = delete;
  BackgroundRefresher& operator=(const BackgroundRefresher&) = delete;

  int passes() const;  // completed passes (for tests and metrics)

 private:
  void run();

  Resolver& resolver_;
  const std::chrono::milliseconds period_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;  // guarded by mu_; stop_asked_ mirrors it for the pass
  bool stopped_ = false;   // guarded by mu_: run() has returned
  std::atomic<bool> stop_asked_{false};
  int passes_ = 0;
  std::thread thread_;  // last: starts after the members it uses exist
};

}  // namespace mtasts::policy
