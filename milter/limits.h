// What bounds the daemon's use of the machine under a flood (issue #10):
// descriptors, and the milter connections and waiting recipients that
// consume threads and descriptors.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "milter/session.h"

namespace mtasts::milter {

// RLIMIT_NOFILE after raise_descriptor_limit().
struct DescriptorLimit {
  std::uint64_t soft = 0;
  std::uint64_t hard = 0;
  bool raised = false;  // the soft limit was below the hard one and now equals it
};

// Raises the soft descriptor limit to the hard one. Debian's default soft
// limit of 1,024 is filled by about a thousand idle milter connections, and
// then libmilter spins on accept() and DNS sockets cannot open.
DescriptorLimit raise_descriptor_limit();

// The milter connections that fit in `descriptors` beside the daemon's own
// (store, DNS sockets, probes, policy fetches): `configured`, lowered to
// leave min(256, descriptors / 2) free. At least 1.
std::size_t connections_that_fit(std::size_t configured, std::uint64_t descriptors);

// The tasks (threads) this process may still start under the cgroup pids
// controller (systemd's TasksMax, a container's pids limit): the tightest
// pids.max - pids.current of its cgroup and the cgroups above it. nullopt
// when no cgroup sets a limit (or none can be read). libmilter starts one
// thread per connection and, when it cannot, leaves the connection waiting
// unanswered (issue #10 item 3): the connection cap must fit the threads too.
std::optional<std::uint64_t> task_headroom();

// The folders of the pids controller to read for the process whose
// /proc/<pid>/cgroup says `proc_cgroup`, under the cgroup mount `root`: its
// own cgroup first, then each parent up to the hierarchy's root. cgroup v1
// ("N:...pids...:/path", under root/pids) and v2 ("0::/path", under root or
// root/unified); the caller skips folders without pids.max.
std::vector<std::filesystem::path> pids_cgroup_folders(std::string_view proc_cgroup,
                                                       const std::filesystem::path& root);

// The tightest headroom of `folders` (pids.max "max" is no limit).
std::optional<std::uint64_t> headroom_of(const std::vector<std::filesystem::path>& folders);

// The recipients that may wait for the engine at once (`configured`),
// lowered to fit `headroom` tasks. Each waiting recipient, and each of the
// at most a ninth more waiting kOverflowWait beyond it, holds a libmilter
// worker thread; libmilter starts one whenever none is idle, and a session
// whose worker could not start is never served (issue #10 item 3: under a
// task limit of 400, 710 of 1,000 connections were left unanswered). A
// reserve of half of `headroom` (at least 8) stays free for libmilter's
// quick callbacks and the threads a fetch or a reload start (a quarter, at
// most 64, left 21 of 1,000 unanswered under ASan; with at most 128 kept,
// CI under ASan once left 88). At least 1.
std::size_t waiting_rcpts_that_fit_tasks(std::size_t configured, std::uint64_t headroom);

// The engine's worker threads (discoveries, probes, refreshes; they wait on
// the network, not the CPU) under a task limit: an eighth of `headroom` (at
// least 8), never more than configured. Read before the engine starts: its
// 128 default threads, started at once, took a third of TasksMax=400 and
// left libmilter's burst of worker threads too little room.
std::size_t engine_threads_that_fit_tasks(std::size_t configured, std::uint64_t headroom);

// The socketmap's lookup threads under a task limit: a sixteenth of the
// headroom (at least 4), never more than configured. Under TasksMax=400 the
// 64 default ones took the threads libmilter needed for a flood of 1,000
// connections (176 left unanswered under ASan).
std::size_t socketmap_threads_that_fit_tasks(std::size_t configured, std::uint64_t headroom);

// Bounds the recipients that wait for the engine (a discovery, a DNS
// lookup, a probe) at once: each waiting RCPT holds a libmilter thread.
// Beyond `limit`, a recipient is checked with a deadline of kOverflowWait
// (at most overflow_limit() of them at once; beyond that, with no wait):
// what the caches know still decides it at once, and what would have
// waited is answered as "overloaded" (the engine's jobs go on and fill the
// caches for the MTA's retry). Refusals are logged at most once per 10 s.
class WaitingRcpts {
 public:
  static constexpr std::chrono::milliseconds kOverflowWait{100};

  explicit WaitingRcpts(std::size_t limit);
  ~WaitingRcpts();
  WaitingRcpts(const WaitingRcpts&) = delete;
  WaitingRcpts& operator=(const WaitingRcpts&) = delete;

  // `check` behind the bound. This object must outlive the function.
  CheckFunction bounded(CheckFunction check);
  std::size_t waiting() const;
  std::size_t overflow_limit() const;  // limit / 8, at least 1

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mtasts::milter
