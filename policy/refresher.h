// The background refresher, RFC 8461 §8.1 ("senders SHOULD ... proactively
// refresh cached policies before they expire"): a thread that runs
// Resolver::refresh_due() every `period` until destroyed. What is due, and
// what a refresh does, is the Resolver's business; this only paces it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "policy/resolver.h"

namespace mtasts::policy {

class BackgroundRefresher {
 public:
  // Starts the thread; the first pass runs after one period.
  BackgroundRefresher(Resolver& resolver, std::chrono::milliseconds period);
  // Stops the thread, waiting for a pass under way to finish.
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
  bool stopping_ = false;
  int passes_ = 0;
  std::thread thread_;  // last: starts after the members it uses exist
};

}  // namespace mtasts::policy
