#include "milter/tcp_tuning.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <atomic>

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

TcpTuningCounts tcp_tuning_counts() noexcept {
  return {g_tcp_connections.load(std::memory_order_relaxed),
          g_quickack_resets.load(std::memory_order_relaxed)};
}

}  // namespace mtasts::milter

// Reserved names, as GNU ld's --wrap requires them. libmilter's listener
// thread calls accept() once per MTA connection; each reply is one writev().
extern "C" int __wrap_accept(int fd, sockaddr* address, socklen_t* length) {
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
