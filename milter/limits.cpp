#include "milter/limits.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <ctime>

#include "policy/engine/refusal_log.h"
#include "policy/reason.h"

namespace mtasts::milter {

DescriptorLimit raise_descriptor_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return {};
  DescriptorLimit out{limit.rlim_cur, limit.rlim_max, false};
  if (limit.rlim_cur >= limit.rlim_max) return out;
  limit.rlim_cur = limit.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &limit) == 0) {
    out.soft = limit.rlim_max;
    out.raised = true;
  }
  return out;
}

std::size_t connections_that_fit(std::size_t configured, std::uint64_t descriptors) {
  const std::uint64_t reserve = std::min<std::uint64_t>(256, descriptors / 2);
  const std::uint64_t room = descriptors > reserve ? descriptors - reserve : 1;
  return static_cast<std::size_t>(std::max<std::uint64_t>(1, std::min<std::uint64_t>(configured, room)));
}

namespace {

// A deadline that ran out while over the bound is the bound's doing. True
// when the result said "deadline".
bool call_it_overloaded(policy::CheckResult& result) {
  bool renamed = false;
  if (result.verdict.reason == policy::reason::kDeadline) {
    result.verdict.reason = std::string(policy::reason::kOverloaded);
    renamed = true;
  }
  if (result.verdict.dane && result.verdict.dane->reason == policy::reason::kDeadline) {
    result.verdict.dane->reason = std::string(policy::reason::kOverloaded);
    renamed = true;
  }
  return renamed;
}

}  // namespace

struct WaitingRcpts::Impl {
  explicit Impl(std::size_t max) : limit(max) {}

  // Takes a slot when one is free.
  bool enter() {
    std::size_t now = waiting.load();
    while (now < limit)
      if (waiting.compare_exchange_weak(now, now + 1)) return true;
    return false;
  }
  void leave() { --waiting; }

  void note_refusal() {
    if (const int refused = refusals.note(std::time(nullptr)); refused > 0)
      spdlog::warn(
          "milter event=overloaded what=waiting-rcpts waiting={} limit={} refused={} note=\"answered from "
          "the caches or deferred\"",
          waiting.load(), limit, refused);
  }

  const std::size_t limit;
  std::atomic<std::size_t> waiting{0};
  policy::RefusalLog refusals;
};

WaitingRcpts::WaitingRcpts(std::size_t limit) : impl_(std::make_unique<Impl>(limit)) {}
WaitingRcpts::~WaitingRcpts() = default;

std::size_t WaitingRcpts::waiting() const { return impl_->waiting.load(); }

CheckFunction WaitingRcpts::bounded(CheckFunction check) {
  return
      [impl = impl_.get(), check = std::move(check)](const policy::NextHop& hop, policy::Deadline deadline) {
        if (impl->enter()) {
          struct Leave {
            Impl* impl;
            ~Leave() { impl->leave(); }
          } leave{impl};
          return check(hop, deadline);
        }
        policy::CheckResult result =
            check(hop, std::min(deadline, std::chrono::steady_clock::now() + kOverflowWait));
        if (call_it_overloaded(result)) impl->note_refusal();
        return result;
      };
}

}  // namespace mtasts::milter
