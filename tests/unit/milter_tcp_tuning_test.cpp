// milter/tcp_tuning: TCP_NODELAY on accepted milter connections, TCP_QUICKACK
// after each reply (the delayed-ACK stall, milter/tcp_tuning.h). The effect
// on a real MTA is proven by the "pace" rows of tests/integration; here the
// socket options themselves, read back from the kernel.
#include "milter/tcp_tuning.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstring>
#include <thread>
#include <utility>

#include "owned_fd.h"

namespace mtasts::milter {
namespace {

using Fd = test_support::OwnedFd;

int tcp_option(int fd, int option) {
  int value = -1;
  socklen_t length = sizeof value;
  EXPECT_EQ(getsockopt(fd, IPPROTO_TCP, option, &value, &length), 0) << std::strerror(errno);
  return value;
}

// A loopback TCP listener (IPv4 or IPv6) and a client connected to it; the
// server side is accepted with accept(), which this test's link wraps like
// the daemon's.
struct TcpPair {
  Fd listener;
  Fd client;
  Fd server;

  explicit TcpPair(int family = AF_INET)
      : listener(socket(family, SOCK_STREAM, 0)), client(socket(family, SOCK_STREAM, 0)) {
    sockaddr_storage storage{};
    socklen_t length = 0;
    if (family == AF_INET6) {
      auto& address = reinterpret_cast<sockaddr_in6&>(storage);
      address.sin6_family = AF_INET6;
      address.sin6_addr = in6addr_loopback;
      length = sizeof address;
    } else {
      auto& address = reinterpret_cast<sockaddr_in&>(storage);
      address.sin_family = AF_INET;
      address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      length = sizeof address;
    }
    auto* generic = reinterpret_cast<sockaddr*>(&storage);
    EXPECT_EQ(bind(listener.get(), generic, length), 0) << std::strerror(errno);
    EXPECT_EQ(listen(listener.get(), 1), 0);
    EXPECT_EQ(getsockname(listener.get(), generic, &length), 0);
    EXPECT_EQ(connect(client.get(), generic, length), 0);
    server = Fd(accept(listener.get(), nullptr, nullptr));
    EXPECT_GE(server.get(), 0);
  }
};

void send_all(int fd, const char* text) {
  ASSERT_EQ(write(fd, text, std::strlen(text)), ssize_t(std::strlen(text)));
}

void receive(int fd, std::size_t count) {
  std::array<char, 64> buffer{};
  ASSERT_EQ(read(fd, buffer.data(), count), ssize_t(count));
}

TEST(TcpTuning, AcceptedTcpConnectionHasNoDelay) {
  const TcpTuningCounts before = tcp_tuning_counts();
  const TcpPair pair;
  EXPECT_EQ(tcp_option(pair.server.get(), TCP_NODELAY), 1);  // through the wrapped accept()
  EXPECT_EQ(tcp_option(pair.client.get(), TCP_NODELAY), 0);  // the peer is left alone
  EXPECT_EQ(tcp_tuning_counts().tcp_connections, before.tcp_connections + 1);
}

TEST(TcpTuning, AcceptedIpv6ConnectionHasNoDelay) {
  const TcpPair pair(AF_INET6);
  EXPECT_EQ(tcp_option(pair.server.get(), TCP_NODELAY), 1);
}

TEST(TcpTuning, UnixSocketIsLeftAlone) {
  std::array<int, 2> fds{};
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds.data()), 0);
  const Fd a(fds[0]), b(fds[1]);
  EXPECT_FALSE(tune_accepted_connection(a.get()));
  EXPECT_FALSE(leave_delayed_ack_mode(a.get()));
}

// A request answered at once puts the answering side in the kernel's
// interactive mode, where it delays ACKs (getsockopt TCP_QUICKACK reads 0);
// a reply written through the wrapped writev() leaves that mode again.
TEST(TcpTuning, ReplyThroughWritevLeavesDelayedAckMode) {
  const TcpPair pair;
  // The mode needs the answer within the ACK timeout (40 ms); a few tries
  // ride out a preempted test on a loaded machine.
  for (int attempt = 0; attempt < 20 && tcp_option(pair.server.get(), TCP_QUICKACK) != 0; ++attempt) {
    send_all(pair.client.get(), "req1");
    receive(pair.server.get(), 4);
    send_all(pair.server.get(), "rep1");  // plain write(): not wrapped
    receive(pair.client.get(), 4);
  }
  ASSERT_EQ(tcp_option(pair.server.get(), TCP_QUICKACK), 0) << "the kernel did not enter interactive mode";

  send_all(pair.client.get(), "req2");
  receive(pair.server.get(), 4);
  const TcpTuningCounts before = tcp_tuning_counts();
  const iovec reply{const_cast<char*>("rep2"), 4};
  ASSERT_EQ(writev(pair.server.get(), &reply, 1), 4);  // as libmilter writes its replies
  EXPECT_EQ(tcp_option(pair.server.get(), TCP_QUICKACK), 1);
  EXPECT_EQ(tcp_tuning_counts().quickack_resets, before.quickack_resets + 1);
}

}  // namespace
}  // namespace mtasts::milter

namespace mtasts::milter {
namespace {

// The accept back-pressure counts this process's threads: one more while a
// thread runs.
TEST(TcpTuning, ThreadsOfThisProcessCountsThreads) {
  // A sanitizer's runtime starts a thread of its own with the first thread
  // (TSan did in CI): counted before the baseline.
  std::thread([] {}).join();
  const std::size_t before = threads_of_this_process();
  ASSERT_GE(before, 1U);
  std::atomic<bool> go{false};
  std::thread extra([&go] {
    while (!go) std::this_thread::yield();
  });
  EXPECT_EQ(threads_of_this_process(), before + 1);
  go = true;
  extra.join();
}

}  // namespace
}  // namespace mtasts::milter
