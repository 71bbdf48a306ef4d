// milter/limits: the descriptor limit raised at start, the connection cap
// fitted into it, and the bound on recipients waiting for the engine
// (issue #10 items 2 and 3). The daemon-level proof is
// tests/integration/milter_limits.sh.
#include "milter/limits.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "policy/reason.h"

namespace mtasts::milter {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

TEST(ConnectionsThatFit, LeaveRoomForTheDaemonsOwnDescriptors) {
  struct Case {
    std::size_t configured;
    std::uint64_t descriptors;
    std::size_t expected;
  };
  const std::vector<Case> cases{
      {1000, 1024, 768},    // Debian's default soft limit: 256 kept free
      {1000, 65536, 1000},  // the unit's LimitNOFILE: as configured
      {1000, 160, 80},      // a tiny limit: half kept free
      {5, 10, 5},          {1000, 1, 1}, {1000, 0, 1},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::to_string(c.configured) + " in " + std::to_string(c.descriptors));
    EXPECT_EQ(connections_that_fit(c.configured, c.descriptors), c.expected);
  }
}

// In a child, so the test runner's own limit is left alone.
TEST(RaiseDescriptorLimit, SoftLimitBecomesTheHardLimit) {
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const rlimit low{64, 256};
    if (setrlimit(RLIMIT_NOFILE, &low) != 0) _exit(10);
    const DescriptorLimit raised = raise_descriptor_limit();
    rlimit now{};
    getrlimit(RLIMIT_NOFILE, &now);
    if (!raised.raised || raised.soft != 256 || raised.hard != 256) _exit(11);
    if (now.rlim_cur != 256) _exit(12);
    const DescriptorLimit again = raise_descriptor_limit();
    _exit(again.raised || again.soft != 256 ? 13 : 0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "10 setrlimit, 11 not raised, 12 limit unchanged, 13 raised twice";
}

// A check that waits, like a discovery, for domains starting with "cold"
// until released or its deadline passes; "warm" domains come from a cache.
class SlowCheck {
 public:
  policy::CheckResult operator()(const policy::NextHop& hop, policy::Deadline deadline) {
    policy::CheckResult result;
    result.policy_domain = hop.recipient_domain;
    if (hop.recipient_domain.starts_with("warm")) return result;  // Pass at once
    std::unique_lock lock(mutex_);
    if (released_.wait_until(lock, deadline, [this] { return released_flag_; })) return result;
    result.verdict.outcome = policy::Outcome::Unknown;
    result.verdict.reason = std::string(policy::reason::kDeadline);
    return result;
  }
  void release() {
    {
      const std::lock_guard lock(mutex_);
      released_flag_ = true;
    }
    released_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable released_;
  bool released_flag_ = false;
};

policy::NextHop hop_to(std::string domain) {
  policy::NextHop hop;
  hop.recipient_domain = std::move(domain);
  return hop;
}

struct Timed {
  policy::CheckResult result;
  milliseconds took{};
};

Timed timed(const CheckFunction& check, const std::string& domain, milliseconds deadline) {
  const auto start = steady_clock::now();
  Timed out{check(hop_to(domain), start + deadline), {}};
  out.took = std::chrono::duration_cast<milliseconds>(steady_clock::now() - start);
  return out;
}

TEST(WaitingRcpts, BeyondTheBoundAnswersAtOnceFromTheCachesOrOverloaded) {
  SlowCheck slow;
  WaitingRcpts waiting(2);
  const CheckFunction check =
      waiting.bounded([&slow](const policy::NextHop& hop, policy::Deadline d) { return slow(hop, d); });

  // Two recipients wait for their discoveries: the bound is reached.
  auto first =
      std::async(std::launch::async, [&] { return timed(check, "cold1.example", milliseconds(10000)); });
  auto second =
      std::async(std::launch::async, [&] { return timed(check, "cold2.example", milliseconds(10000)); });
  for (int i = 0; i < 200 && waiting.waiting() < 2; ++i) std::this_thread::sleep_for(milliseconds(5));
  ASSERT_EQ(waiting.waiting(), 2U);

  // A third would wait: answered at once, as overloaded.
  const Timed third = timed(check, "cold3.example", milliseconds(10000));
  EXPECT_EQ(third.result.verdict.outcome, policy::Outcome::Unknown);
  EXPECT_EQ(third.result.verdict.reason, policy::reason::kOverloaded);
  EXPECT_LT(third.took, milliseconds(1000)) << "a recipient beyond the bound waited";
  EXPECT_GE(third.took, WaitingRcpts::kOverflowWait - milliseconds(5));

  // What the caches know still decides at once.
  const Timed warm = timed(check, "warm.example", milliseconds(10000));
  EXPECT_EQ(warm.result.verdict.outcome, policy::Outcome::Pass);
  EXPECT_EQ(warm.result.verdict.reason, "");
  EXPECT_LT(warm.took, milliseconds(100));

  slow.release();
  EXPECT_EQ(first.get().result.verdict.outcome, policy::Outcome::Pass);
  EXPECT_EQ(second.get().result.verdict.outcome, policy::Outcome::Pass);
  EXPECT_EQ(waiting.waiting(), 0U) << "slots are given back";
}

TEST(WaitingRcpts, WithinTheBoundTheDeadlineIsTheCallersOwn) {
  SlowCheck slow;
  WaitingRcpts waiting(1);
  const CheckFunction check =
      waiting.bounded([&slow](const policy::NextHop& hop, policy::Deadline d) { return slow(hop, d); });
  const Timed alone = timed(check, "cold.example", milliseconds(400));
  EXPECT_EQ(alone.result.verdict.reason, policy::reason::kDeadline) << "not called overloaded";
  EXPECT_GE(alone.took, milliseconds(390)) << "waited its full deadline";
  EXPECT_EQ(waiting.waiting(), 0U);
}

}  // namespace
}  // namespace mtasts::milter
