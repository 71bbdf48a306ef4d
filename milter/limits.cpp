#include "milter/limits.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <ctime>
#include <fstream>
#include <iterator>
#include <string>

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

bool lists_pids(std::string_view controllers) {
  while (true) {
    const std::size_t comma = controllers.find(',');
    if (controllers.substr(0, comma) == "pids") return true;
    if (comma == std::string_view::npos) return false;
    controllers.remove_prefix(comma + 1);
  }
}

// One line of /proc/<pid>/cgroup: "ID:CONTROLLERS:/PATH" (the path may hold ':').
struct CgroupLine {
  std::string_view id, controllers, path;
};

std::optional<CgroupLine> parse_cgroup_line(std::string_view line) {
  const std::size_t first = line.find(':');
  if (first == std::string_view::npos) return std::nullopt;
  const std::size_t second = line.find(':', first + 1);
  if (second == std::string_view::npos || line.substr(second + 1).rfind('/', 0) != 0) return std::nullopt;
  return CgroupLine{line.substr(0, first), line.substr(first + 1, second - first - 1),
                    line.substr(second + 1)};
}

// The hierarchy roots under `root` that may hold the pids files of `cgroup`.
std::vector<std::filesystem::path> pids_hierarchies(const CgroupLine& cgroup,
                                                    const std::filesystem::path& root) {
  if (cgroup.id == "0" && cgroup.controllers.empty()) return {root, root / "unified"};  // v2, alone or hybrid
  if (lists_pids(cgroup.controllers)) return {root / "pids"};
  return {};
}

// `base`/`path`, then each parent up to `base` itself.
void add_folders_up(const std::filesystem::path& base, std::string_view path,
                    std::vector<std::filesystem::path>& folders) {
  std::filesystem::path relative = std::filesystem::path(path).relative_path().lexically_normal();
  while (!relative.empty() && relative != ".") {
    folders.push_back((base / relative).lexically_normal());
    relative = relative.parent_path();
  }
  folders.push_back(base);
}

}  // namespace

std::vector<std::filesystem::path> pids_cgroup_folders(std::string_view proc_cgroup,
                                                       const std::filesystem::path& root) {
  std::vector<std::filesystem::path> folders;
  while (!proc_cgroup.empty()) {
    const std::size_t end = proc_cgroup.find('\n');
    const std::string_view line = proc_cgroup.substr(0, end);
    proc_cgroup.remove_prefix(end == std::string_view::npos ? proc_cgroup.size() : end + 1);
    const auto cgroup = parse_cgroup_line(line);
    if (!cgroup) continue;
    for (const auto& base : pids_hierarchies(*cgroup, root)) add_folders_up(base, cgroup->path, folders);
  }
  return folders;
}

namespace {

// The number in a one-line cgroup file; nullopt for "max", unreadable or junk.
std::optional<std::uint64_t> read_count(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::string text;
  if (!(in >> text) || text.empty() || text.size() > 19) return std::nullopt;
  std::uint64_t value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return value;
}

}  // namespace

std::optional<std::uint64_t> headroom_of(const std::vector<std::filesystem::path>& folders) {
  std::optional<std::uint64_t> tightest;
  for (const auto& folder : folders) {
    const auto max = read_count(folder / "pids.max");
    if (!max) continue;
    const std::uint64_t current = read_count(folder / "pids.current").value_or(0);
    const std::uint64_t room = *max > current ? *max - current : 0;
    if (!tightest || room < *tightest) tightest = room;
  }
  return tightest;
}

std::optional<std::uint64_t> task_headroom() {
  std::ifstream in("/proc/self/cgroup");
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  return headroom_of(pids_cgroup_folders(text, "/sys/fs/cgroup"));
}

std::size_t waiting_rcpts_that_fit_tasks(std::size_t configured, std::uint64_t headroom) {
  const std::uint64_t reserve = std::max<std::uint64_t>(headroom / 2, 8);
  const std::uint64_t room = headroom > reserve ? headroom - reserve : 0;
  // limit + limit / 8 <= room
  return static_cast<std::size_t>(
      std::max<std::uint64_t>(1, std::min<std::uint64_t>(configured, room * 8 / 9)));
}

std::size_t engine_threads_that_fit_tasks(std::size_t configured, std::uint64_t headroom) {
  const std::uint64_t share = std::max<std::uint64_t>(8, headroom / 8);
  return static_cast<std::size_t>(std::min<std::uint64_t>(configured, share));
}

std::size_t socketmap_threads_that_fit_tasks(std::size_t configured, std::uint64_t headroom) {
  const std::uint64_t share = std::max<std::uint64_t>(4, headroom / 16);
  return static_cast<std::size_t>(std::min<std::uint64_t>(configured, share));
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

// Takes one of `limit` slots counted in `taken` when one is free.
bool take_slot(std::atomic<std::size_t>& taken, std::size_t limit) {
  std::size_t now = taken.load();
  while (now < limit)
    if (taken.compare_exchange_weak(now, now + 1)) return true;
  return false;
}

// Gives a slot of take_slot() back when it goes out of scope.
struct SlotHeld {
  std::atomic<std::size_t>& taken;
  ~SlotHeld() { --taken; }
};

struct WaitingRcpts::Impl {
  explicit Impl(std::size_t max) : limit(max), overflow_limit(std::max<std::size_t>(1, max / 8)) {}

  void note_refusal() {
    if (const int refused = refusals.note(std::time(nullptr)); refused > 0)
      spdlog::warn(
          "milter event=overloaded what=waiting-rcpts waiting={} limit={} refused={} note=\"answered from "
          "the caches or deferred\"",
          waiting.load(), limit, refused);
  }

  const std::size_t limit;
  const std::size_t overflow_limit;
  std::atomic<std::size_t> waiting{0};
  std::atomic<std::size_t> overflowing{0};  // checked with kOverflowWait
  policy::RefusalLog refusals;
};

WaitingRcpts::WaitingRcpts(std::size_t limit) : impl_(std::make_unique<Impl>(limit)) {}
WaitingRcpts::~WaitingRcpts() = default;

std::size_t WaitingRcpts::waiting() const { return impl_->waiting.load(); }
std::size_t WaitingRcpts::overflow_limit() const { return impl_->overflow_limit; }

CheckFunction WaitingRcpts::bounded(CheckFunction check) {
  return
      [impl = impl_.get(), check = std::move(check)](const policy::NextHop& hop, policy::Deadline deadline) {
        if (take_slot(impl->waiting, impl->limit)) {
          const SlotHeld held{impl->waiting};
          return check(hop, deadline);
        }
        const auto now = std::chrono::steady_clock::now();
        policy::CheckResult result;
        if (take_slot(impl->overflowing, impl->overflow_limit)) {
          const SlotHeld held{impl->overflowing};
          result = check(hop, std::min(deadline, now + kOverflowWait));
        } else {
          result = check(hop, std::min(deadline, now));  // the caches, or overloaded at once
        }
        if (call_it_overloaded(result)) impl->note_refusal();
        return result;
      };
}

}  // namespace mtasts::milter
