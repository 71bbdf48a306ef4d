// Single flight: concurrent requests for one key share one job. The first
// caller starts it on the worker pool; later callers join its future until
// it completes. At most `max_flights` keys are in flight (queued or
// running); beyond that a new key is refused at once, so a flood of new
// domains or hosts costs neither threads nor memory. Nothing is started,
// logged or waited for under the table's lock.
#pragma once

#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <stop_token>
#include <unordered_map>
#include <utility>

#include "policy/engine/lock_guarded.h"
#include "policy/engine/worker_pool.h"

namespace mtasts::policy {

template <class Key, class Value, class Hash = std::hash<Key>>
class SingleFlight {
 public:
  using Future = std::shared_future<Value>;
  // Computes the key's value; its stop token says the pool is stopping.
  using Work = std::function<Value(std::stop_token)>;
  // Runs on the worker with the value before it is published (to cache it).
  using OnDone = std::function<void(const Value&)>;

  SingleFlight(WorkerPool& pool, std::size_t max_flights) : pool_(pool), max_flights_(max_flights) {}
  ~SingleFlight() { wait_idle_until(std::chrono::steady_clock::time_point::max()); }
  SingleFlight(const SingleFlight&) = delete;
  SingleFlight& operator=(const SingleFlight&) = delete;

  // The key's flight: joined, or started with `work` on the pool. nullopt
  // when refused: `max_flights` keys in flight, or the pool's queue full or
  // stopping (a caller that joined meanwhile gets `refused`). The key leaves
  // the table before its value is published, so a caller that has seen the
  // value never joins the finished flight again.
  std::optional<Future> join_or_start(const Key& key, Work work, Value refused, OnDone on_done = {}) {
    std::shared_ptr<std::promise<Value>> promise;
    const auto flight = flights_.with([&](Table& table) -> std::optional<Future> {
      if (const auto it = table.find(key); it != table.end()) return it->second;
      if (table.size() >= max_flights_) return std::nullopt;
      promise = std::make_shared<std::promise<Value>>();
      return table.emplace(key, promise->get_future().share()).first->second;
    });
    if (!flight || !promise) return flight;  // refused, or joined
    const bool queued =
        pool_.try_submit([this, key, promise, work = std::move(work), on_done = std::move(on_done)](
                             std::stop_token stop) { run(key, *promise, work, on_done, stop); });
    if (queued) return flight;
    finish(key, *promise, [&] { promise->set_value(std::move(refused)); });
    return std::nullopt;
  }

  std::size_t in_flight() const {
    return flights_.with([](const Table& table) { return table.size(); });
  }

  // Waits until nothing is in flight, or `deadline`: true when idle.
  bool wait_idle_until(std::chrono::steady_clock::time_point deadline) const {
    return flights_.wait_until(deadline, [](const Table& table) { return table.empty(); });
  }

 private:
  using Table = std::unordered_map<Key, Future, Hash>;

  void run(const Key& key, std::promise<Value>& promise, const Work& work, const OnDone& on_done,
           std::stop_token stop) {
    try {
      Value value = work(stop);
      if (on_done) on_done(value);
      finish(key, promise, [&] { promise.set_value(std::move(value)); });
    } catch (...) {  // joiners are answered (get() rethrows), the key is freed
      finish(key, promise, [&] { promise.set_exception(std::current_exception()); });
    }
  }

  // Leaves the table, then publishes (outside the lock). Touches nothing of
  // this object after the erase: wait_idle_until() may return then and the
  // owner destroy it; the promise is the job's own.
  template <class Publish>
  void finish(const Key& key, std::promise<Value>&, Publish publish) {
    flights_.with([&](Table& table) { table.erase(key); });
    publish();
  }

  WorkerPool& pool_;
  const std::size_t max_flights_;
  LockGuarded<Table> flights_;
};

}  // namespace mtasts::policy
