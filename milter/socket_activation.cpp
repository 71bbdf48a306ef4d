#include "milter/socket_activation.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sysexits.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "milter/services.h"

namespace mtasts::milter {
namespace {

constexpr const char* kMilterName = "milter";
constexpr const char* kSocketmapName = "socketmap";
// Under /dev/null, which is no folder: nothing can ever exist at this path.
constexpr const char* kNeverExistingPath = "/dev/null/mta-sts-milter-socket-activated";

policy::Error activation_error(const std::string& detail) { return {"socket-activation", detail}; }

struct Endpoint {
  int family = AF_UNSPEC;
  std::string host;  // numeric address (inet, inet6)
  unsigned port = 0;
  std::string path;  // unix
};

Endpoint endpoint_of(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  Endpoint e;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) return e;
  e.family = address.ss_family;
  char text[INET6_ADDRSTRLEN] = {};
  if (e.family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&address);
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    e.host = text;
    e.port = ntohs(in->sin_port);
  } else if (e.family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&address);
    inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    e.host = text;
    e.port = ntohs(in6->sin6_port);
  } else if (e.family == AF_UNIX) {
    const auto* un = reinterpret_cast<const sockaddr_un*>(&address);
    const std::size_t max =
        length > offsetof(sockaddr_un, sun_path) ? length - offsetof(sockaddr_un, sun_path) : 0;
    e.path.assign(un->sun_path, strnlen(un->sun_path, max));
  }
  return e;
}

int socket_option(int fd, int option) {
  int value = 0;
  socklen_t length = sizeof value;
  return getsockopt(fd, SOL_SOCKET, option, &value, &length) == 0 ? value : -1;
}

// A listening stream socket of a family the daemon serves, close-on-exec.
void check_usable(int fd, const std::string& name) {
  const std::string what = "the socket systemd passed as '" + name + "' (fd " + std::to_string(fd) + ")";
  if (socket_option(fd, SO_TYPE) != SOCK_STREAM || socket_option(fd, SO_ACCEPTCONN) != 1)
    throw StartupError(what + " is not a listening stream socket (ListenStream= in the socket unit)",
                       EX_CONFIG);
  const int family = endpoint_of(fd).family;
  if (family != AF_INET && family != AF_INET6 && family != AF_UNIX)
    throw StartupError(what + " is not an IPv4, IPv6 or unix socket", EX_CONFIG);
  const int flags = fcntl(fd, F_GETFD);
  if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) != 0)
    throw StartupError("cannot set close-on-exec on " + what + ": " + std::strerror(errno), EX_OSERR);
}

}  // namespace

policy::Result<ActivatedSockets> assign_activated_sockets(
    const std::vector<std::pair<std::string, int>>& named) {
  ActivatedSockets sockets;
  for (const auto& [name, fd] : named) {
    int* role = name == kMilterName ? &sockets.milter : name == kSocketmapName ? &sockets.socketmap : nullptr;
    if (role == nullptr)
      return activation_error("systemd passed a socket named '" + name +
                              "'; name each with FileDescriptorName=milter or FileDescriptorName=socketmap");
    if (*role >= 0) return activation_error("systemd passed two sockets named '" + name + "'");
    *role = fd;
  }
  return sockets;
}

ActivatedSockets take_activated_sockets() {
  char** names = nullptr;
  const int count = sd_listen_fds_with_names(1, &names);
  if (count < 0) throw StartupError(std::string("sd_listen_fds: ") + std::strerror(-count), EX_OSERR);
  std::vector<std::pair<std::string, int>> named;
  for (int i = 0; i < count; ++i) {
    named.emplace_back(names != nullptr && names[i] != nullptr ? names[i] : "unknown",
                       SD_LISTEN_FDS_START + i);
    if (names != nullptr) std::free(names[i]);
  }
  std::free(names);
  auto sockets = assign_activated_sockets(named);
  if (!sockets) throw StartupError(sockets.error().detail, EX_CONFIG);
  for (const auto& [name, fd] : named) check_usable(fd, name);
  return *sockets;
}

std::string libmilter_spec_for(int fd) {
  const Endpoint e = endpoint_of(fd);
  switch (e.family) {
    case AF_INET:
      return "inet:" + std::to_string(e.port) + "@[" + e.host + "]";
    case AF_INET6:
      return "inet6:" + std::to_string(e.port) + "@[" + e.host + "]";
    case AF_UNIX:
      return std::string("unix:") + kNeverExistingPath;
    default:
      return "";
  }
}

std::string listening_address(int fd) {
  const Endpoint e = endpoint_of(fd);
  switch (e.family) {
    case AF_INET:
      return "inet:" + std::to_string(e.port) + "@" + e.host;
    case AF_INET6:
      return "inet6:" + std::to_string(e.port) + "@" + e.host;
    case AF_UNIX:
      return "unix:" + e.path;
    default:
      return "?";
  }
}

}  // namespace mtasts::milter
