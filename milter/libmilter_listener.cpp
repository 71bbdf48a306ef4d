#include "milter/libmilter_listener.h"

#include <sys/socket.h>

// The real functions, as the linker's --wrap names them.
extern "C" int __real_socket(int domain, int type, int protocol);
extern "C" int __real_bind(int fd, const sockaddr* address, socklen_t length);

namespace mtasts::milter {
namespace {

// -1: no handover on this thread. socket() hands the descriptor out once;
// bind() of it is skipped until the handover ends.
thread_local int t_handed_fd = -1;
thread_local bool t_handed_out = false;

}  // namespace

void begin_listener_handover(int fd) noexcept {
  t_handed_fd = fd;
  t_handed_out = false;
}

void end_listener_handover() noexcept {
  t_handed_fd = -1;
  t_handed_out = false;
}

}  // namespace mtasts::milter

extern "C" int __wrap_socket(int domain, int type, int protocol) {
  using namespace mtasts::milter;
  if (t_handed_fd >= 0 && !t_handed_out) {
    t_handed_out = true;
    return t_handed_fd;
  }
  return __real_socket(domain, type, protocol);
}

extern "C" int __wrap_bind(int fd, const sockaddr* address, socklen_t length) {
  using namespace mtasts::milter;
  if (t_handed_out && fd == t_handed_fd) return 0;
  return __real_bind(fd, address, length);
}
