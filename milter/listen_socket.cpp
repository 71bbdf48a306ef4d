#include "milter/listen_socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sysexits.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>

#include "milter/services.h"

namespace mtasts::milter {
namespace {

[[noreturn]] void fail(const std::string& what, int exit_code) {
  throw StartupError(what + ": " + std::strerror(errno), exit_code);
}

// Closes the descriptor unless released (every error path of open_listener).
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard() {
    if (fd_ >= 0) close(fd_);
  }
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  int release() { return std::exchange(fd_, -1); }
  int get() const { return fd_; }

 private:
  int fd_;
};

policy::Error bad_address(const std::string& spec, const std::string& why) {
  return policy::Error{"listen-address", "'" + spec + "': " + why};
}

int bind_inet(const ListenAddress& address, const std::string& what) {
  const int family = address.family == ListenAddress::Family::Inet ? AF_INET : AF_INET6;
  FdGuard fd(socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) fail("cannot create the " + what, EX_OSERR);
  const int on = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_storage storage{};
  socklen_t length = 0;
  if (family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&storage);
    in->sin_family = AF_INET;
    in->sin_port = htons(address.port);
    in->sin_addr.s_addr = htonl(INADDR_ANY);
    if (!address.host.empty()) inet_pton(AF_INET, address.host.c_str(), &in->sin_addr);
    length = sizeof *in;
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(address.port);
    in6->sin6_addr = in6addr_any;
    if (!address.host.empty()) inet_pton(AF_INET6, address.host.c_str(), &in6->sin6_addr);
    length = sizeof *in6;
  }
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&storage), length) != 0)
    fail("cannot bind the " + what + " to " + address.host + " port " + std::to_string(address.port),
         EX_UNAVAILABLE);
  return fd.release();
}

// A stale socket from a previous run is removed; anything else at the path
// (a file, a folder, a link) is the operator's and refused.
void remove_stale_socket(const std::string& path, const std::string& what) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) return;
  if (!S_ISSOCK(st.st_mode))
    throw StartupError("the " + what + " path " + path + " exists and is not a socket", EX_CANTCREAT);
  if (unlink(path.c_str()) != 0) fail("cannot remove the stale " + what + " " + path, EX_CANTCREAT);
}

int bind_unix(const ListenAddress& address, const Config& config, const Identity& runs_as,
              const std::string& what, int type = SOCK_STREAM) {
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  std::memcpy(un.sun_path, address.path.c_str(), address.path.size() + 1);
  const auto owner = socket_ownership(config, runs_as);
  make_socket_folder(address.path, owner, what);
  remove_stale_socket(address.path, what);
  FdGuard fd(socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) fail("cannot create the " + what, EX_OSERR);
  const mode_t old_umask = umask(static_cast<mode_t>(~socket_mode(config) & 0777));
  const int bound = bind(fd.get(), reinterpret_cast<sockaddr*>(&un), sizeof un);
  umask(old_umask);
  if (bound != 0) fail("cannot bind the " + what + " " + address.path, EX_CANTCREAT);
  secure_socket(address.path, owner, what);
  return fd.release();
}

}  // namespace

Identity run_as(const Config& config) {
  if (config.user.empty()) return {getuid(), getgid(), ""};
  const passwd* pw = getpwnam(config.user.c_str());
  if (!pw) throw StartupError("unknown milter.user '" + config.user + "'", EX_NOUSER);
  return {pw->pw_uid, pw->pw_gid, pw->pw_name};
}

std::pair<uid_t, gid_t> socket_ownership(const Config& config, const Identity& runs_as) {
  uid_t uid = runs_as.uid;
  gid_t gid = runs_as.gid;
  if (!config.socket_owner.empty()) {
    const passwd* pw = getpwnam(config.socket_owner.c_str());
    if (!pw) throw StartupError("unknown milter.socket_owner '" + config.socket_owner + "'", EX_NOUSER);
    uid = pw->pw_uid;
    gid = pw->pw_gid;
  }
  if (!config.socket_group.empty()) {
    const group* gr = getgrnam(config.socket_group.c_str());
    if (!gr) throw StartupError("unknown milter.socket_group '" + config.socket_group + "'", EX_NOUSER);
    gid = gr->gr_gid;
  }
  return {uid, gid};
}

std::string unix_socket_path(const std::string& socket) {
  if (!socket.starts_with("unix:") && !socket.starts_with("local:")) return "";
  return socket.substr(socket.find(':') + 1);
}

void make_socket_folder(const std::string& socket_path, std::pair<uid_t, gid_t> owner,
                        const std::string& what) {
  const auto folder = std::filesystem::path(socket_path).parent_path();
  std::error_code ec;
  if (folder.empty() || std::filesystem::exists(folder, ec)) return;
  if (mkdir(folder.c_str(), 0750) != 0) {
    if (errno == EEXIST) return;  // made meanwhile by someone else: theirs, as above
    fail("cannot create the " + what + " folder " + folder.string(), EX_CANTCREAT);
  }
  // By path: the folder is ours, and only root may rename in Postfix's root-owned spool.
  if (chown(folder.c_str(), owner.first, owner.second) != 0)
    fail("cannot chown the " + what + " folder " + folder.string(), EX_OSERR);
  spdlog::info("milter event=socket-folder-created path={} mode=0750", folder.string());
}

mode_t socket_mode(const Config& config) {
  return static_cast<mode_t>(std::stoul(config.socket_mode, nullptr, 8));
}

// The folder may belong to the unprivileged user, who could swap the socket
// for a symlink or a link between bind() and here; root must not chown what
// it did not make. So: open the name itself (O_PATH|O_NOFOLLOW: never a
// symlink's target), check it is a socket, and chown that very inode. The
// mode needs no step: the umask gave it at bind().
void secure_socket(const std::string& path, std::pair<uid_t, gid_t> owner, const std::string& what) {
  const int fd = open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) fail("cannot open the " + what + " " + path, EX_OSERR);
  struct stat st {};
  const bool is_socket = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
  const int chowned = is_socket ? fchownat(fd, "", owner.first, owner.second, AT_EMPTY_PATH) : -1;
  const int saved_errno = errno;
  close(fd);
  if (!is_socket)
    throw StartupError("the " + what + " " + path + " was replaced by something else", EX_OSERR);
  if (chowned != 0)
    throw StartupError("cannot chown the " + what + " " + path + ": " + std::strerror(saved_errno), EX_OSERR);
}

policy::Result<ListenAddress> parse_listen_address(const std::string& spec) {
  ListenAddress address;
  if (const std::string path = unix_socket_path(spec);
      !path.empty() || spec.starts_with("unix:") || spec.starts_with("local:")) {
    if (path.empty() || path.front() != '/') return bad_address(spec, "a unix socket needs an absolute path");
    if (path.size() >= sizeof(sockaddr_un{}.sun_path))
      return bad_address(spec, "the socket path is too long");
    address.family = ListenAddress::Family::Unix;
    address.path = path;
    return address;
  }
  const bool inet6 = spec.starts_with("inet6:");
  if (!inet6 && !spec.starts_with("inet:"))
    return bad_address(spec, "must be inet:PORT@ADDRESS, inet6:PORT@ADDRESS or unix:/path");
  address.family = inet6 ? ListenAddress::Family::Inet6 : ListenAddress::Family::Inet;
  const std::string rest = spec.substr(spec.find(':') + 1);
  const auto at = rest.find('@');
  const std::string port = rest.substr(0, at);
  address.host = at == std::string::npos ? "" : rest.substr(at + 1);
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc{} || end != port.data() + port.size() || value == 0 || value > 65535)
    return bad_address(spec, "the port must be 1-65535");
  address.port = static_cast<std::uint16_t>(value);
  unsigned char parsed[sizeof(in6_addr)];
  if (!address.host.empty() && inet_pton(inet6 ? AF_INET6 : AF_INET, address.host.c_str(), parsed) != 1)
    return bad_address(spec, std::string("the address must be an IPv") + (inet6 ? "6" : "4") + " address");
  return address;
}

int open_listener(const std::string& spec, const Config& config, const Identity& runs_as,
                  const std::string& what) {
  const auto address = parse_listen_address(spec);
  if (!address) throw StartupError("invalid " + what + " " + address.error().detail, EX_CONFIG);
  FdGuard fd(address->family == ListenAddress::Family::Unix ? bind_unix(*address, config, runs_as, what)
                                                            : bind_inet(*address, what));
  if (listen(fd.get(), SOMAXCONN) != 0) fail("cannot listen on the " + what, EX_UNAVAILABLE);
  return fd.release();
}

int open_datagram_socket(const std::string& path, const Config& config, const Identity& runs_as,
                         const std::string& what) {
  // The same path rules as a unix stream listener (absolute, fits sun_path).
  const auto address = parse_listen_address("unix:" + path);
  if (!address) throw StartupError("invalid " + what + " " + address.error().detail, EX_CONFIG);
  return bind_unix(*address, config, runs_as, what, SOCK_DGRAM);
}

}  // namespace mtasts::milter
