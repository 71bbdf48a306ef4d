#include "policy/engine/worker_pool.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>
#include <utility>

namespace mtasts::policy {

WorkerPoolConfig private_pool_config(std::size_t max_jobs) {
  WorkerPoolConfig config;
  config.threads = std::clamp<std::size_t>(max_jobs, 1, 64);
  config.max_queued = std::max<std::size_t>(max_jobs, 1);
  return config;
}

WorkerPool::WorkerPool(WorkerPoolConfig config) : config_(config) {
  const std::size_t count = std::max<std::size_t>(config_.threads, 1);
  running_threads_ = count;
  threads_.reserve(count);
  for (std::size_t i = 0; i < count; ++i)
    threads_.emplace_back([this](std::stop_token) { work(stop_.get_token()); });
}

WorkerPool::~WorkerPool() { stop_until(std::chrono::steady_clock::time_point::max()); }

bool WorkerPool::try_submit(Job job) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || queue_.size() >= config_.max_queued) return false;
    queue_.push_back(std::move(job));
  }
  wake_.notify_one();
  return true;
}

void WorkerPool::work(std::stop_token stop) {
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) break;  // stopping, nothing left to run
      job = std::move(queue_.front());
      queue_.pop_front();
      ++busy_;
    }
    try {
      job(stop);
    } catch (const std::exception& e) {  // a job must not end its thread
      spdlog::error("pool event=job-failed error=\"{}\"", e.what());
    } catch (...) {
      spdlog::error("pool event=job-failed");
    }
    std::lock_guard lock(mu_);
    --busy_;
    ++completed_;
  }
  std::lock_guard lock(mu_);
  --running_threads_;
  ended_.notify_all();
}

bool WorkerPool::stop_until(std::chrono::steady_clock::time_point give_up) {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  stop_.request_stop();
  wake_.notify_all();
  std::unique_lock lock(mu_);
  if (!ended_.wait_until(lock, give_up, [this] { return running_threads_ == 0; })) return false;
  lock.unlock();
  for (auto& thread : threads_)
    if (thread.joinable()) thread.join();
  return true;
}

std::uint64_t WorkerPool::completed() const {
  std::lock_guard lock(mu_);
  return completed_;
}

std::size_t WorkerPool::busy() const {
  std::lock_guard lock(mu_);
  return busy_;
}

std::size_t WorkerPool::queued() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

}  // namespace mtasts::policy
