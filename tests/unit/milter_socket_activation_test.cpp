// milter/socket_activation and milter/libmilter_listener: sockets systemd
// passes (sd_listen_fds(3)) taken by name, and a passed socket handed to
// libmilter through the wrapped socket()/bind(). The daemon under a real
// systemd: tests/integration/socket_activation.sh.
#include "milter/socket_activation.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

#include "milter/libmilter_listener.h"
#include "milter/services.h"
#include "owned_fd.h"

namespace mtasts::milter {
namespace {

using Fd = test_support::OwnedFd;

Fd listening_inet(int family, const char* address) {
  Fd fd(socket(family, SOCK_STREAM, 0));
  sockaddr_storage storage{};
  socklen_t length = 0;
  if (family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&storage);
    in->sin_family = AF_INET;
    inet_pton(AF_INET, address, &in->sin_addr);
    length = sizeof *in;
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
    in6->sin6_family = AF_INET6;
    inet_pton(AF_INET6, address, &in6->sin6_addr);
    length = sizeof *in6;
  }
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&storage), length) != 0 || listen(fd.get(), 4) != 0)
    return Fd();
  return fd;
}

unsigned port_of(int fd) {
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length);
  return storage.ss_family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&storage)->sin_port)
                                      : ntohs(reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port);
}

TEST(MilterSocketActivation, AssignsSocketsByName) {
  const auto sockets = assign_activated_sockets({{"socketmap", 4}, {"milter", 3}});
  ASSERT_TRUE(sockets);
  EXPECT_EQ(sockets->milter, 3);
  EXPECT_EQ(sockets->socketmap, 4);
  const auto none = assign_activated_sockets({});
  ASSERT_TRUE(none);
  EXPECT_EQ(none->milter, -1);
  EXPECT_EQ(none->socketmap, -1);
}

TEST(MilterSocketActivation, RefusesUnknownAndRepeatedNames) {
  const auto unknown = assign_activated_sockets({{"milter", 3}, {"unknown", 4}});
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, "socket-activation");
  EXPECT_NE(unknown.error().detail.find("'unknown'"), std::string::npos) << unknown.error().detail;
  EXPECT_NE(unknown.error().detail.find("FileDescriptorName=milter"), std::string::npos);
  const auto twice = assign_activated_sockets({{"milter", 3}, {"milter", 4}});
  ASSERT_FALSE(twice);
  EXPECT_NE(twice.error().detail.find("two sockets named 'milter'"), std::string::npos)
      << twice.error().detail;
}

TEST(MilterSocketActivation, LibmilterSpecCarriesTheFamilyAndAddress) {
  const Fd v4 = listening_inet(AF_INET, "127.0.0.1");
  ASSERT_GE(v4.get(), 0);
  const std::string port = std::to_string(port_of(v4.get()));
  EXPECT_EQ(libmilter_spec_for(v4.get()), "inet:" + port + "@[127.0.0.1]");
  EXPECT_EQ(listening_address(v4.get()), "inet:" + port + "@127.0.0.1");

  const Fd v6 = listening_inet(AF_INET6, "::1");
  if (v6.get() >= 0) {  // a machine without IPv6 loopback has no such socket to pass either
    const std::string port6 = std::to_string(port_of(v6.get()));
    EXPECT_EQ(libmilter_spec_for(v6.get()), "inet6:" + port6 + "@[::1]");
    EXPECT_EQ(listening_address(v6.get()), "inet6:" + port6 + "@::1");
  }
}

// libmilter removes its unix socket's path at exit: the spec must name a
// path that cannot exist, never the path systemd made.
TEST(MilterSocketActivation, UnixSpecNamesAPathThatCannotExist) {
  const auto path =
      std::filesystem::temp_directory_path() / ("mtasts-activation-" + std::to_string(getpid()));
  Fd fd(socket(AF_UNIX, SOCK_STREAM, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  ASSERT_EQ(bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(listen(fd.get(), 4), 0);
  const std::string spec = libmilter_spec_for(fd.get());
  ASSERT_EQ(spec.rfind("unix:", 0), 0u) << spec;
  std::error_code ec;
  EXPECT_FALSE(std::filesystem::exists(spec.substr(5), ec));
  EXPECT_NE(spec, "unix:" + path.string());
  EXPECT_EQ(listening_address(fd.get()), "unix:" + path.string());
  std::filesystem::remove(path, ec);
}

// The wrapped socket() and bind() (libmilter is linked with them): during a
// handover this thread's next socket() is the passed one and binding it does
// nothing; other threads and later calls get real sockets.
TEST(MilterLibmilterListener, HandsThePassedSocketToTheNextSocketCallOfThisThread) {
  const Fd passed = listening_inet(AF_INET, "127.0.0.1");
  ASSERT_GE(passed.get(), 0);
  const unsigned port = port_of(passed.get());
  begin_listener_handover(passed.get());
  int other_thread_fd = -1;
  std::thread([&] { other_thread_fd = socket(AF_INET, SOCK_STREAM, 0); }).join();
  const int handed = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in elsewhere{};
  elsewhere.sin_family = AF_INET;
  elsewhere.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int bound = bind(handed, reinterpret_cast<sockaddr*>(&elsewhere), sizeof elsewhere);
  const Fd later(socket(AF_INET, SOCK_STREAM, 0));
  end_listener_handover();
  const Fd other(other_thread_fd);

  EXPECT_EQ(handed, passed.get());
  EXPECT_EQ(bound, 0);
  EXPECT_EQ(port_of(passed.get()), port) << "bind() of the passed socket must not rebind it";
  EXPECT_GE(other.get(), 0);
  EXPECT_NE(other.get(), passed.get());
  EXPECT_GE(later.get(), 0);
  EXPECT_NE(later.get(), passed.get());
  // After the handover bind() is the real one again: binding a listening
  // socket fails.
  EXPECT_NE(bind(passed.get(), reinterpret_cast<sockaddr*>(&elsewhere), sizeof elsewhere), 0);
}

// take_activated_sockets() reads LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES as
// systemd sets them: in a child process, whose descriptors 3 and 4 may be
// replaced. Exit status 0: all expectations held; otherwise which failed.
int child_status(void (*body)()) {
  const pid_t pid = fork();
  if (pid == 0) {
    body();
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

void pass_as_systemd(int fd3, int fd4, const char* names) {
  dup2(fd3, 3);
  dup2(fd4, 4);
  setenv("LISTEN_PID", std::to_string(getpid()).c_str(), 1);
  setenv("LISTEN_FDS", "2", 1);
  setenv("LISTEN_FDNAMES", names, 1);
}

TEST(MilterSocketActivation, TakesNamedListenersFromTheEnvironment) {
  EXPECT_EQ(child_status([] {
              const Fd a = listening_inet(AF_INET, "127.0.0.1");
              const Fd b = listening_inet(AF_INET, "127.0.0.1");
              pass_as_systemd(a.get(), b.get(), "socketmap:milter");
              const ActivatedSockets sockets = take_activated_sockets();
              if (sockets.milter != 4 || sockets.socketmap != 3) _exit(1);
              if (getenv("LISTEN_FDS") != nullptr) _exit(2);  // unset: no child inherits them
              if ((fcntl(3, F_GETFD) & FD_CLOEXEC) == 0) _exit(3);
            }),
            0);
}

TEST(MilterSocketActivation, RefusesASocketThatDoesNotListen) {
  EXPECT_EQ(child_status([] {
              const Fd a = listening_inet(AF_INET, "127.0.0.1");
              const Fd idle(socket(AF_INET, SOCK_STREAM, 0));
              pass_as_systemd(a.get(), idle.get(), "milter:socketmap");
              try {
                take_activated_sockets();
              } catch (const StartupError& e) {
                if (std::string(e.what()).find("'socketmap' (fd 4) is not a listening stream socket") ==
                    std::string::npos)
                  _exit(2);
                _exit(0);
              }
              _exit(1);
            }),
            0);
}

TEST(MilterSocketActivation, NothingPassedIsNothingTaken) {
  EXPECT_EQ(child_status([] {
              unsetenv("LISTEN_PID");
              unsetenv("LISTEN_FDS");
              const ActivatedSockets sockets = take_activated_sockets();
              if (sockets.milter != -1 || sockets.socketmap != -1) _exit(1);
            }),
            0);
}

}  // namespace
}  // namespace mtasts::milter
