// The engine's one pool of worker threads, shared by policy discovery,
// STARTTLS probes and background refresh: joinable threads started up
// front, a bounded queue (a flood is refused at once instead of piling up
// threads), a stop token every job can consult, and a stop bounded by a
// deadline.
//
// Every accepted job runs exactly once, also during a stop (with its token
// stopped: it should finish at once), so whoever waits on a job's result is
// always answered. Jobs are blocking I/O with their own timeouts (DNS,
// HTTPS, SMTP); the token is checked between such steps, not inside them.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <stop_token>
#include <thread>
#include <vector>

namespace mtasts::policy {

struct WorkerPoolConfig {
  std::size_t threads = 128;      // jobs running at once
  std::size_t max_queued = 4096;  // jobs waiting for a thread; beyond: refused
};

// The pool of a component given none to share (tests, the CLI): as many
// threads as it may run jobs at once, up to 64, and a queue for the rest.
WorkerPoolConfig private_pool_config(std::size_t max_jobs);

class WorkerPool {
 public:
  using Job = std::function<void(std::stop_token)>;

  explicit WorkerPool(WorkerPoolConfig config);
  // stop_until() without a bound.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `job`; false (the job is dropped, not run) when the queue is full
  // or the pool is stopping. Never blocks, never starts a thread.
  bool try_submit(Job job);

  // Stops: no new job is accepted, queued ones run with their token stopped,
  // running ones see their token stopped. Waits until `give_up` for every
  // thread to end; true when they have (they are then joined). False: some
  // job is still running; the caller must not destroy what jobs use (the
  // daemon exits without destructors then).
  bool stop_until(std::chrono::steady_clock::time_point give_up);

  std::size_t threads() const { return threads_.size(); }
  std::size_t busy() const;    // threads running a job now
  std::size_t queued() const;  // jobs waiting
  // Jobs that have finished since the start: the watchdog's sign of life
  // (a pool with work but no job finished for a long time is wedged).
  std::uint64_t completed() const;

 private:
  void work(std::stop_token stop);

  const WorkerPoolConfig config_;
  mutable std::mutex mu_;
  std::condition_variable wake_;     // a job queued, or stopping
  std::condition_variable ended_;    // a thread has finished
  std::deque<Job> queue_;            // guarded by mu_
  std::size_t busy_ = 0;             // guarded by mu_
  std::uint64_t completed_ = 0;      // guarded by mu_
  std::size_t running_threads_ = 0;  // guarded by mu_
  bool stopping_ = false;            // guarded by mu_
  std::stop_source stop_;
  std::vector<std::jthread> threads_;  // last: started once the rest exists
};

}  // namespace mtasts::policy
