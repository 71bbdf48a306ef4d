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
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "policy/reason.h"

namespace mtasts::milter {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

TEST(WaitingRcptsThatFitTasks, WaitersAndTheirOverflowLeaveAReserveOfThreadsFree) {
  struct Case {
    std::size_t configured;
    std::uint64_t headroom;
    std::size_t expected;
  };
  const std::vector<Case> cases{
      {256, 318, 141},   // pids.max 400, 48 engine and 22 socketmap threads: 159 kept, 141 + 17 wait
      {256, 267, 119},   // half kept, however many that is (133 here)
      {256, 3900, 256},  // the unit's TasksMax: as configured
      {256, 100, 44},    // else half kept (50 free: 44 + 5 overflow)
      {256, 20, 8},      // and at least 8 kept
      {256, 8, 1},      {256, 0, 1}, {5, 267, 5},
  };
  for (const auto& c : cases) {
    const std::size_t fitted = waiting_rcpts_that_fit_tasks(c.configured, c.headroom);
    EXPECT_EQ(fitted, c.expected) << c.configured << " configured, " << c.headroom << " tasks free";
    if (c.headroom >= 16) {
      EXPECT_LE(fitted + std::max<std::size_t>(1, fitted / 8),
                c.headroom - std::max<std::uint64_t>(8, c.headroom / 2))
          << "waiters and overflow fit beside the reserve";
    }
  }
}

TEST(PidsCgroupFolders, OwnCgroupThenEachParentForV1V2AndHybrid) {
  const std::filesystem::path root = "/sys/fs/cgroup";
  using Paths = std::vector<std::filesystem::path>;
  // cgroup v1: the pids hierarchy (possibly shared with other controllers).
  EXPECT_EQ(pids_cgroup_folders("4:memory:/m\n8:pids:/system.slice/x.service\n", root),
            (Paths{"/sys/fs/cgroup/pids/system.slice/x.service", "/sys/fs/cgroup/pids/system.slice",
                   "/sys/fs/cgroup/pids"}));
  EXPECT_EQ(pids_cgroup_folders("3:cpu,pids:/a", root),
            (Paths{"/sys/fs/cgroup/pids/a", "/sys/fs/cgroup/pids"}));
  // cgroup v2 alone (at the root) or hybrid (under unified/): both are tried.
  EXPECT_EQ(pids_cgroup_folders("0::/a:b\n", root),
            (Paths{"/sys/fs/cgroup/a:b", "/sys/fs/cgroup", "/sys/fs/cgroup/unified/a:b",
                   "/sys/fs/cgroup/unified"}));
  EXPECT_EQ(pids_cgroup_folders("0::/", root), (Paths{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}));
  // No pids controller, junk, a relative path: nothing to read.
  EXPECT_TRUE(pids_cgroup_folders("4:memory:/m\n1:name=systemd:/x\n", root).empty());
  EXPECT_TRUE(pids_cgroup_folders("garbage\n8:pids\n8:pids:relative\n", root).empty());
  EXPECT_TRUE(pids_cgroup_folders("", root).empty());
}

// A cgroup tree in a temporary folder: FOLDER -> (pids.max, pids.current).
class TaskHeadroom : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() / ("mtasts-pids-" + std::to_string(getpid()));
    std::filesystem::remove_all(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  std::filesystem::path cgroup(const std::string& name, const std::string& max, const std::string& current) {
    const auto folder = root_ / name;
    std::filesystem::create_directories(folder);
    if (!max.empty()) std::ofstream(folder / "pids.max") << max << "\n";
    if (!current.empty()) std::ofstream(folder / "pids.current") << current << "\n";
    return folder;
  }
  std::filesystem::path root_;
};

TEST_F(TaskHeadroom, TheTightestOfTheCgroupAndItsParents) {
  const auto own = cgroup("a/b", "400", "135");
  const auto parent = cgroup("a", "max", "2000");
  const auto top = cgroup("", "", "");  // the hierarchy's root has no pids.max
  EXPECT_EQ(headroom_of({own, parent, top}), 265u);
  cgroup("a", "1000", "900");  // a parent nearer its limit than the cgroup itself
  EXPECT_EQ(headroom_of({own, parent, top}), 100u);
  cgroup("a/b", "100", "135");  // over its limit already (lowered at run time)
  EXPECT_EQ(headroom_of({own, parent, top}), 0u);
}

TEST_F(TaskHeadroom, NoLimitWhenEveryMaxIsMaxOrUnreadable) {
  const auto own = cgroup("a", "max", "10");
  const auto junk = cgroup("b", "12x", "1");
  EXPECT_EQ(headroom_of({own, junk, root_ / "missing"}), std::nullopt);
  EXPECT_EQ(headroom_of({}), std::nullopt);
}

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

// Beyond the bound each recipient holds its thread up to kOverflowWait: a
// flood beyond it would hold as many threads as recipients for that long.
// So at most overflow_limit() wait it; the rest are answered with no wait.
TEST(WaitingRcpts, AtMostAnEighthMoreWaitTheOverflowDeadline) {
  SlowCheck slow;
  WaitingRcpts waiting(8);
  ASSERT_EQ(waiting.overflow_limit(), 1U);
  const CheckFunction check =
      waiting.bounded([&slow](const policy::NextHop& hop, policy::Deadline d) { return slow(hop, d); });
  std::vector<std::future<Timed>> waiters;
  for (int i = 0; i < 8; ++i)
    waiters.push_back(std::async(std::launch::async, [&, i] {
      return timed(check, "cold" + std::to_string(i) + ".example", milliseconds(10000));
    }));
  for (int i = 0; i < 400 && waiting.waiting() < 8; ++i) std::this_thread::sleep_for(milliseconds(5));
  ASSERT_EQ(waiting.waiting(), 8U);

  auto overflowing =
      std::async(std::launch::async, [&] { return timed(check, "over1.example", milliseconds(10000)); });
  std::this_thread::sleep_for(milliseconds(20));  // it now holds the one overflow slot
  const Timed beyond = timed(check, "over2.example", milliseconds(10000));
  EXPECT_EQ(beyond.result.verdict.reason, policy::reason::kOverloaded);
  EXPECT_LT(beyond.took, milliseconds(50)) << "a recipient beyond the overflow bound waited";
  const Timed over = overflowing.get();
  EXPECT_EQ(over.result.verdict.reason, policy::reason::kOverloaded);
  EXPECT_GE(over.took, WaitingRcpts::kOverflowWait - milliseconds(5));

  const Timed warm = timed(check, "warm.example", milliseconds(10000));
  EXPECT_EQ(warm.result.verdict.outcome, policy::Outcome::Pass) << "the caches still decide";
  slow.release();
  for (auto& w : waiters) EXPECT_EQ(w.get().result.verdict.outcome, policy::Outcome::Pass);
  EXPECT_EQ(waiting.waiting(), 0U);
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

TEST(EngineThreadsThatFitTasks, AnEighthOfTheHeadroomAtLeastEight) {
  EXPECT_EQ(engine_threads_that_fit_tasks(128, 390), 48u);    // TasksMax=400 at start
  EXPECT_EQ(engine_threads_that_fit_tasks(128, 20), 8u);      // at least 8
  EXPECT_EQ(engine_threads_that_fit_tasks(128, 4000), 128u);  // never more than configured
  EXPECT_EQ(engine_threads_that_fit_tasks(4, 390), 4u);
}

TEST(SocketmapThreadsThatFitTasks, ASixteenthOfTheHeadroomAtLeastFour) {
  EXPECT_EQ(socketmap_threads_that_fit_tasks(64, 250), 15u);     // TasksMax=400 after the engine's threads
  EXPECT_EQ(socketmap_threads_that_fit_tasks(64, 10), 4u);       // at least 4
  EXPECT_EQ(socketmap_threads_that_fit_tasks(64, 100000), 64u);  // never more than configured
  EXPECT_EQ(socketmap_threads_that_fit_tasks(2, 10), 2u);
}

}  // namespace
}  // namespace mtasts::milter
