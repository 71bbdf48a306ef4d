#pragma once
// systemd socket activation (sd_listen_fds(3), systemd.socket(5)) for the
// milter and the socketmap listeners. With it the sockets exist before the
// daemon does (the MTA may start first) and stay open while it restarts:
// the MTA's connections wait in the backlog instead of being refused.
//
// Each socket unit names its socket with FileDescriptorName=: "milter" or
// "socketmap" (contrib/systemd/mta-sts-milter*.socket). A passed socket
// takes the place of milter.socket / socketmap.socket (the log line
// `startup event=socket-activated` says so); its owner, group and mode are
// the socket unit's (SocketUser=, SocketGroup=, SocketMode=). Without
// passed sockets nothing changes: the daemon opens its own.
#include <string>
#include <utility>
#include <vector>

#include "policy/result.h"

namespace mtasts::milter {

struct ActivatedSockets {
  int milter = -1;  // -1: not passed
  int socketmap = -1;
};

// The roles of named descriptors. Error code "socket-activation": a name
// other than "milter" or "socketmap", or one name twice.
policy::Result<ActivatedSockets> assign_activated_sockets(
    const std::vector<std::pair<std::string, int>>& named);

// Takes the sockets systemd passed to this process (and unsets LISTEN_PID,
// LISTEN_FDS and LISTEN_FDNAMES), each checked to be a listening stream
// socket, close-on-exec from here on. Throws StartupError (EX_CONFIG) for a
// socket the daemon cannot use.
ActivatedSockets take_activated_sockets();

// The smfi_setconn() spec that gives libmilter the family of a passed milter
// socket (milter/libmilter_listener.h hands it the socket itself):
// "inet:PORT@[ADDR]", "inet6:PORT@[ADDR]", or for a unix socket a path that
// cannot exist, because libmilter removes its unix socket's path at exit
// and the path is systemd's. "" for any other socket.
std::string libmilter_spec_for(int fd);

// The address a socket listens on, for the log: "inet:PORT@ADDR",
// "inet6:PORT@ADDR", "unix:/path"; "?" when unknown.
std::string listening_address(int fd);

}  // namespace mtasts::milter
