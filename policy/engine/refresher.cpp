#include "policy/engine/refresher.h"

#include <spdlog/spdlog.h>

namespace mtasts::policy {

BackgroundRefresher::BackgroundRefresher(Resolver& resolver, std::chrono::milliseconds period)
    : resolver_(resolver), period_(period), thread_([this] { run(); }) {}

void BackgroundRefresher::request_stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  stop_asked_ = true;
  wake_.notify_all();
}

bool BackgroundRefresher::wait_stopped_until(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mu_);
  return wake_.wait_until(lock, deadline, [this] { return stopped_; });
}

BackgroundRefresher::~BackgroundRefresher() {
  request_stop();
  thread_.join();
}

int BackgroundRefresher::passes() const {
  std::lock_guard lock(mu_);
  return passes_;
}

void BackgroundRefresher::run() {
  std::unique_lock lock(mu_);
  while (!wake_.wait_for(lock, period_, [this] { return stopping_; })) {
    lock.unlock();
    try {
      // last_used reaches the store every pass, so a crash loses one period
      // of it and a stop has little left to write. First, because a long
      // refresh pass (many due policies, slow servers) must not delay it.
      resolver_.flush();
      const int refreshed = resolver_.refresh_due(false, [this] { return stop_asked_.load(); });
      if (refreshed > 0) spdlog::info("refresh event=pass refreshed={}", refreshed);
    } catch (const std::exception& e) {
      // A failed pass must not end refreshing for the life of the daemon.
      spdlog::error("refresh event=pass-failed error=\"{}\"", e.what());
    }
    lock.lock();
    ++passes_;
  }
  stopped_ = true;
  wake_.notify_all();  // wait_stopped_until
}

}  // namespace mtasts::policy
