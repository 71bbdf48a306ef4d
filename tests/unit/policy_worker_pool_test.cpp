// The engine's job machinery: one bounded worker pool (joinable threads, a
// bounded queue, stop tokens, a deadline-bounded stop) and single flight on
// top of it, shared by discovery, probes and refresh.
#include "policy/engine/worker_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <latch>
#include <stdexcept>
#include <thread>
#include <vector>

#include "policy/engine/lock_guarded.h"
#include "policy/engine/single_flight.h"

namespace mtasts::policy {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// Holds a worker until released.
struct Gate {
  std::promise<void> open;
  std::shared_future<void> opened = open.get_future().share();
  void release() { open.set_value(); }
};

TEST(WorkerPool, RunsJobsOnItsThreads) {
  std::atomic<int> ran{0};
  std::latch done(20);
  WorkerPool pool({4, 100});  // last: its jobs are done before the rest goes
  for (int i = 0; i < 20; ++i)
    ASSERT_TRUE(pool.try_submit([&](std::stop_token) {
      ++ran;
      done.count_down();
    }));
  done.wait();
  EXPECT_EQ(ran, 20);
  EXPECT_EQ(pool.threads(), 4u);
}

TEST(WorkerPool, FullQueueRefusesAtOnce) {
  Gate gate;  // first: outlives the pool, whose jobs wait on it
  std::latch started(1);
  WorkerPool pool({1, 2});
  ASSERT_TRUE(pool.try_submit([&](std::stop_token) {
    started.count_down();
    gate.opened.wait();
  }));
  started.wait();
  EXPECT_TRUE(pool.try_submit([](std::stop_token) {}));
  EXPECT_TRUE(pool.try_submit([](std::stop_token) {}));
  const auto before = Clock::now();
  EXPECT_FALSE(pool.try_submit([](std::stop_token) {})) << "queue of 2 is full";
  EXPECT_LT(Clock::now() - before, milliseconds(50));
  EXPECT_EQ(pool.queued(), 2u);
  gate.release();
}

// Every accepted job runs once, also when the pool stops before it started:
// then with its token stopped, so whoever waits on it is answered.
TEST(WorkerPool, StopRunsQueuedJobsWithTheirTokenStopped) {
  Gate gate;  // first: outlives the pool, whose jobs wait on it
  std::atomic<int> saw_stop{0}, ran{0};
  WorkerPool pool({1, 10});
  ASSERT_TRUE(pool.try_submit([&](std::stop_token) { gate.opened.wait(); }));
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(pool.try_submit([&](std::stop_token stop) {
      ++ran;
      if (stop.stop_requested()) ++saw_stop;
    }));
  std::thread releaser([&] {
    std::this_thread::sleep_for(milliseconds(100));
    gate.release();
  });
  EXPECT_TRUE(pool.stop_until(Clock::now() + std::chrono::seconds(5)));
  releaser.join();
  EXPECT_EQ(ran, 3);
  EXPECT_EQ(saw_stop, 3);
  EXPECT_FALSE(pool.try_submit([](std::stop_token) {})) << "stopped: nothing new";
}

TEST(WorkerPool, StopGivesUpAtItsDeadline) {
  Gate gate;  // first: outlives the pool, whose jobs wait on it
  std::latch started(1);
  auto pool = std::make_unique<WorkerPool>(WorkerPoolConfig{2, 10});
  ASSERT_TRUE(pool->try_submit([&](std::stop_token) {
    started.count_down();
    gate.opened.wait();
  }));
  started.wait();
  const auto before = Clock::now();
  EXPECT_FALSE(pool->stop_until(Clock::now() + milliseconds(100)));
  EXPECT_LT(Clock::now() - before, milliseconds(1000));
  gate.release();
  EXPECT_TRUE(pool->stop_until(Clock::now() + std::chrono::seconds(5)));
}

TEST(WorkerPool, AThrowingJobDoesNotEndItsThread) {
  std::promise<void> after;
  WorkerPool pool({1, 10});  // last: its jobs are done before the rest goes
  ASSERT_TRUE(pool.try_submit([](std::stop_token) { throw std::runtime_error("boom"); }));
  ASSERT_TRUE(pool.try_submit([&](std::stop_token) { after.set_value(); }));
  EXPECT_EQ(after.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
}

using Flight = SingleFlight<std::string, int>;

TEST(SingleFlight, ConcurrentCallersShareOneJob) {
  Gate gate;  // first: outlives the pool, whose jobs wait on it
  std::atomic<int> runs{0};
  WorkerPool pool({4, 100});
  Flight flight(pool, 10);
  const auto work = [&](std::stop_token) {
    ++runs;
    gate.opened.wait();
    return 42;
  };
  std::vector<Flight::Future> futures;
  for (int i = 0; i < 10; ++i) {
    auto f = flight.join_or_start("k", work, -1);
    ASSERT_TRUE(f.has_value());
    futures.push_back(*f);
  }
  EXPECT_EQ(flight.in_flight(), 1u);
  gate.release();
  for (auto& f : futures) EXPECT_EQ(f.get(), 42);
  EXPECT_EQ(runs, 1);
  EXPECT_TRUE(flight.wait_idle_until(Clock::now() + std::chrono::seconds(5)));
  EXPECT_EQ(flight.in_flight(), 0u);
}

TEST(SingleFlight, RefusesBeyondMaxFlightsWithoutStartingAnything) {
  Gate gate;  // first: outlives the pool, whose jobs wait on it
  WorkerPool pool({4, 100});
  Flight flight(pool, 2);
  const auto slow = [&](std::stop_token) {
    gate.opened.wait();
    return 1;
  };
  ASSERT_TRUE(flight.join_or_start("a", slow, -1));
  ASSERT_TRUE(flight.join_or_start("b", slow, -1));
  EXPECT_FALSE(flight.join_or_start("c", slow, -1).has_value());
  EXPECT_TRUE(flight.join_or_start("a", slow, -1).has_value()) << "joining is not starting";
  gate.release();
}

// The pool's queue is full after the key was listed: the flight is refused
// (whoever joined in the meantime gets the refused value) and the key is free.
TEST(SingleFlight, QueueFullAnswersWithTheRefusedValue) {
  WorkerPool pool({1, 0});
  Flight flight(pool, 10);
  EXPECT_FALSE(flight
                   .join_or_start(
                       "k", [](std::stop_token) { return 1; }, -7)
                   .has_value());
  EXPECT_EQ(flight.in_flight(), 0u);
}

TEST(SingleFlight, ExceptionReachesEveryCallerAndFreesTheKey) {
  WorkerPool pool({2, 10});
  Flight flight(pool, 10);
  auto f = flight.join_or_start(
      "k", [](std::stop_token) -> int { throw std::runtime_error("boom"); }, -1);
  ASSERT_TRUE(f.has_value());
  EXPECT_THROW(f->get(), std::runtime_error);
  EXPECT_TRUE(flight.wait_idle_until(Clock::now() + std::chrono::seconds(5)));
  auto again = flight.join_or_start(
      "k", [](std::stop_token) { return 5; }, -1);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->get(), 5);
}

// on_done (a cache store) runs before the value is published and after the
// key has left the table: a caller that saw the value finds it cached.
TEST(SingleFlight, OnDoneRunsBeforePublishing) {
  LockGuarded<std::vector<int>> cache;
  WorkerPool pool({2, 10});
  Flight flight(pool, 10);
  auto f = flight.join_or_start(
      "k", [](std::stop_token) { return 9; }, -1,
      [&](const int& v) { cache.with([&](std::vector<int>& c) { c.push_back(v); }); });
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->get(), 9);
  EXPECT_EQ(cache.with([](std::vector<int>& c) { return c.size(); }), 1u);
}

TEST(LockGuarded, WaitUntilSeesChangesMadeThroughWith) {
  LockGuarded<int> value(0);
  std::thread writer([&] {
    std::this_thread::sleep_for(milliseconds(50));
    value.with([](int& v) { v = 3; });
  });
  EXPECT_TRUE(value.wait_until(Clock::now() + std::chrono::seconds(5), [](const int& v) { return v == 3; }));
  writer.join();
  EXPECT_FALSE(value.wait_until(Clock::now() + milliseconds(20), [](const int& v) { return v == 4; }));
}

}  // namespace
}  // namespace mtasts::policy
