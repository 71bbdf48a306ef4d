// CallbackGate: the door between libmilter's threads and the daemon's
// objects. Shutting it must come before waiting, and a callback that comes
// after the door shut must never see the object (the shutdown race of
// issue #9: a callback checked the context, the daemon cleared and destroyed
// it, the callback then used it).
#include "milter/callback_gate.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace mtasts::milter {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

struct Thing {
  std::atomic<int> uses{0};
};

TEST(CallbackGate, ClosedUntilOpenedAndAfterClosing) {
  CallbackGate<Thing> gate;
  Thing thing;
  EXPECT_FALSE(gate.enter().has_value());
  gate.open(thing);
  {
    auto pass = gate.enter();
    ASSERT_TRUE(pass.has_value());
    EXPECT_EQ(&**pass, &thing);
    EXPECT_EQ(gate.inside(), 1);
  }
  EXPECT_EQ(gate.inside(), 0);
  EXPECT_TRUE(gate.close(Clock::now()));
  EXPECT_FALSE(gate.enter().has_value());
}

// close() shuts the door at once -- a callback arriving while it waits is
// turned away -- and returns only when the pass still out comes back.
TEST(CallbackGate, CloseShutsFirstThenWaitsForPassesOut) {
  CallbackGate<Thing> gate;
  Thing thing;
  gate.open(thing);
  std::atomic<bool> entered{false};
  std::thread running([&] {
    auto pass = gate.enter();
    entered = true;
    std::this_thread::sleep_for(milliseconds(300));
    ++(*pass)->uses;  // still valid: close() waits for this pass
  });
  while (!entered) std::this_thread::yield();
  std::atomic<bool> late_got_in{true};
  std::thread late([&] {
    while (gate.inside() != 1 || gate.enter().has_value()) std::this_thread::sleep_for(milliseconds(5));
    late_got_in = false;
  });
  const auto started = Clock::now();
  const bool drained = gate.close(Clock::now() + std::chrono::seconds(5));
  const auto waited = Clock::now() - started;
  running.join();
  late.join();
  EXPECT_TRUE(drained);
  EXPECT_GE(waited, milliseconds(250)) << "close() returned while a pass was out";
  EXPECT_EQ(thing.uses, 1);
  EXPECT_FALSE(late_got_in);
  EXPECT_FALSE(gate.enter().has_value());
}

TEST(CallbackGate, CloseGivesUpAtItsDeadline) {
  CallbackGate<Thing> gate;
  Thing thing;
  gate.open(thing);
  auto pass = gate.enter();
  ASSERT_TRUE(pass.has_value());
  const auto started = Clock::now();
  EXPECT_FALSE(gate.close(Clock::now() + milliseconds(100)));
  EXPECT_LT(Clock::now() - started, milliseconds(1000));
  EXPECT_EQ(gate.inside(), 1);
}

// Many callbacks against one close: every one that got in finished before
// close() returned, none got in after.
TEST(CallbackGate, NoPassIsOutWhenCloseReturns) {
  for (int round = 0; round < 20; ++round) {
    CallbackGate<Thing> gate;
    auto thing = std::make_unique<Thing>();
    gate.open(*thing);
    std::atomic<bool> stop{false};
    std::atomic<int> after_close{0};
    std::atomic<bool> closed{false};
    std::vector<std::thread> callers;
    for (int i = 0; i < 8; ++i) {
      callers.emplace_back([&] {
        while (!stop) {
          if (auto pass = gate.enter()) {
            if (closed) ++after_close;
            ++(*pass)->uses;
          }
        }
      });
    }
    std::this_thread::sleep_for(milliseconds(2));
    ASSERT_TRUE(gate.close(Clock::now() + std::chrono::seconds(5)));
    closed = true;
    thing.reset();  // would be a use-after-free for any pass still out
    std::this_thread::sleep_for(milliseconds(2));
    stop = true;
    for (auto& t : callers) t.join();
    EXPECT_EQ(after_close, 0);
  }
}

}  // namespace
}  // namespace mtasts::milter
