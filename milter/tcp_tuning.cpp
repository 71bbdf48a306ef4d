#include "milter/tcp_tuning.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

// The real functions, as the linker's --wrap names them.
extern "C" int __real_accept(int fd, sockaddr* address, socklen_t* length);
extern "C" ssize_t __real_writev(int fd, const iovec* vectors, int count);

namespace mtasts::milter {
namespace {

std::atomic<std::uint64_t> g_tcp_connections{0};
std::atomic<std::uint64_t> g_quickack_resets{0};
// The daemon listens on one socket, so every connection is of one kind: known
// from the first accept, it spares the reply path a failing call on unix sockets.
std::atomic<bool> g_connections_are_tcp{false};
std::atomic<std::size_t> g_thread_budget{0};
std::atomic<bool> g_release_waits{false};
std::atomic<std::uint64_t> g_accept_waits{0};

constexpr long kWaitStepNs = 2'000'000;  // 2 ms
constexpr int kMaxWaitSteps = 5000;      // 10 s

// Waits while the process is at its thread budget. False: released (stopping).
bool wait_for_thread_room() noexcept {
  const std::size_t budget = g_thread_budget.load(std::memory_order_relaxed);
  if (budget == 0) return true;
  bool waited = false;
  for (int step = 0; step < kMaxWaitSteps; ++step) {
    if (g_release_waits.load(std::memory_order_relaxed)) return false;
    const std::size_t threads = mtasts::milter::threads_of_this_process();
    if (threads == 0 || threads < budget) break;
    if (!waited) g_accept_waits.fetch_add(1, std::memory_order_relaxed);
    waited = true;
    const timespec pause{0, kWaitStepNs};
    nanosleep(&pause, nullptr);
  }
  return true;
}

bool set_tcp_option(int fd, int option) noexcept {
  const int on = 1;
  return setsockopt(fd, IPPROTO_TCP, option, &on, sizeof on) == 0;
}

}  // namespace

bool tune_accepted_connection(int fd) noexcept {
  if (!set_tcp_option(fd, TCP_NODELAY)) return false;
  g_connections_are_tcp.store(true, std::memory_order_relaxed);
  g_tcp_connections.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool leave_delayed_ack_mode(int fd) noexcept {
  if (!set_tcp_option(fd, TCP_QUICKACK)) return false;
  g_quickack_resets.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void set_accept_thread_budget(std::size_t budget) noexcept { g_thread_budget.store(budget); }

void release_accept_waits() noexcept { g_release_waits.store(true); }

std::uint64_t accept_waits() noexcept { return g_accept_waits.load(std::memory_order_relaxed); }

// Field 20 of /proc/self/stat, after the command name in parentheses (which
// may hold spaces): no allocation, async-signal-safe calls only.
std::size_t threads_of_this_process() noexcept {
  const int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char text[1024];
  const ssize_t n = read(fd, text, sizeof text - 1);
  close(fd);
  if (n <= 0) return 0;
  text[n] = '\0';
  const char* p = std::strrchr(text, ')');
  if (p == nullptr) return 0;
  // ") S ppid pgrp ..." : field 3 is the state; num_threads is field 20.
  for (int field = 2; field < 20 && p != nullptr; ++field) p = std::strchr(p + 1, ' ');
  return p == nullptr ? 0 : static_cast<std::size_t>(std::strtoul(p + 1, nullptr, 10));
}

TcpTuningCounts tcp_tuning_counts() noexcept {
  return {g_tcp_connections.load(std::memory_order_relaxed),
          g_quickack_resets.load(std::memory_order_relaxed)};
}

}  // namespace mtasts::milter

// Reserved names, as GNU ld's --wrap requires them. libmilter's listener
// thread calls accept() once per MTA connection; each reply is one writev().
extern "C" int __wrap_accept(int fd, sockaddr* address, socklen_t* length) {
  if (!mtasts::milter::wait_for_thread_room()) {
    errno = EINTR;
    return -1;
  }
  const int connection = __real_accept(fd, address, length);
  if (connection >= 0) mtasts::milter::tune_accepted_connection(connection);
  return connection;
}

extern "C" ssize_t __wrap_writev(int fd, const iovec* vectors, int count) {
  const ssize_t written = __real_writev(fd, vectors, count);
  if (written > 0 && mtasts::milter::g_connections_are_tcp.load(std::memory_order_relaxed))
    mtasts::milter::leave_delayed_ack_mode(fd);
  return written;
}
