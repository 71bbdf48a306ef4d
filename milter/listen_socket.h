// Listening sockets the daemon opens before it drops privileges: who owns a
// unix socket and its folder (the milter socket through libmilter, the
// socketmap socket here), and the socketmap's own listener.
// Unix sockets follow one rule for both: the mode from milter.socket_mode
// given by the umask at bind() (never a moment with more), owner and group
// from milter.socket_owner / socket_group (else the user the daemon runs
// as), a missing folder created 0750 for them (Postfix's chroot:
// /var/spool/postfix/NAME/), an existing folder left as the operator made it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <utility>

#include "milter/config.h"
#include "policy/result.h"

namespace mtasts::milter {

// Who the daemon runs as after start-up: milter.user, or the starting user.
struct Identity {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string name;  // "" when milter.user is empty
};

// Throws StartupError (services.h) for an unknown user.
Identity run_as(const Config& config);

// Owner and group for unix sockets and their folder. Throws StartupError.
std::pair<uid_t, gid_t> socket_ownership(const Config& config, const Identity& runs_as);

// "unix:/path" or "local:/path" -> "/path"; "" for anything else.
std::string unix_socket_path(const std::string& socket);

// Creates a unix socket's missing folder (see above). `what` names the
// socket in errors ("milter socket"). Throws StartupError.
void make_socket_folder(const std::string& socket_path, std::pair<uid_t, gid_t> owner,
                        const std::string& what);

// Gives the socket inode at `path` to `owner` without following a link
// swapped in meanwhile. Throws StartupError.
void secure_socket(const std::string& path, std::pair<uid_t, gid_t> owner, const std::string& what);

mode_t socket_mode(const Config& config);

// A stream listening address: inet:PORT@HOST, inet6:PORT@HOST (HOST an IP
// address; "inet:PORT" listens on every IPv4 address), unix:/path, local:/path.
struct ListenAddress {
  enum class Family { Inet, Inet6, Unix } family = Family::Inet;
  std::string host;  // an IP address (Inet, Inet6); "" for any
  std::uint16_t port = 0;
  std::string path;  // Unix
};
// Error code "listen-address", detail one sentence.
policy::Result<ListenAddress> parse_listen_address(const std::string& spec);

// Opens a non-blocking, close-on-exec listening socket (a stale unix socket
// at the path is replaced; anything else there is an error), with the unix
// rules above. Throws StartupError naming `what`.
int open_listener(const std::string& spec, const Config& config, const Identity& runs_as,
                  const std::string& what);

// A bound, non-blocking unix datagram socket at the absolute `path`
// (libtlsrpt datagrams; README "TLSRPT datagrams"), with the unix rules
// above. Throws StartupError naming `what`.
int open_datagram_socket(const std::string& path, const Config& config, const Identity& runs_as,
                         const std::string& what);

}  // namespace mtasts::milter
