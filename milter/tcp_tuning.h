#pragma once
// Socket options for the MTA's milter connections over TCP, applied inside
// libmilter's own I/O: libmilter exposes no socket, so it is linked statically
// with `-Wl,--wrap=accept,--wrap=writev` (milter/CMakeLists.txt) and its
// accept() and writev() calls come through here first.
//
// Why. Over TCP both sides write small packets that get no answer of their
// own: Sendmail writes a stage's macros ('D') and the stage's command with two
// write() calls; Postfix sends a declined stage's macros alone, then later
// writes again; libmilter writes a modification ('h', 'q') and then the final
// reply. Nagle's algorithm holds a second small write until the first is
// acknowledged, and a Linux receiver in interactive ("pingpong") mode, which
// every request/reply connection enters, delays that ACK by 40 ms or more:
// one stall per such pair, per message. Measured before this (one SMTP
// session, messages back to back): Postfix 44 ms per message, Sendmail with
// any libmilter milter 3 x 42 ms (tests/bench/capture_milter_session.sh).
//   - accept: TCP_NODELAY, so our second packet is never held;
//   - after every reply written: TCP_QUICKACK, which takes the connection out
//     of pingpong mode (sending the reply put it there), so the MTA's next
//     small packet is acknowledged as soon as libmilter reads it.
// On a unix socket neither applies: the first accept finds no TCP and the
// reply path then makes no extra system call.
//
// Thread-safety: the functions are safe from any thread; they touch only the
// descriptor given and two atomic counters.
#include <cstddef>
#include <cstdint>

namespace mtasts::milter {

// TCP_NODELAY on a freshly accepted connection. False when fd is not TCP.
bool tune_accepted_connection(int fd) noexcept;

// TCP_QUICKACK on a connection a reply was just written to: leaves pingpong
// mode, so the peer's next small packet is acknowledged on read. False when
// fd is not TCP.
bool leave_delayed_ack_mode(int fd) noexcept;

struct TcpTuningCounts {
  std::uint64_t tcp_connections = 0;  // accepted connections set to TCP_NODELAY
  std::uint64_t quickack_resets = 0;  // replies followed by TCP_QUICKACK
};

// What the wrapped accept() and writev() did so far (for the log and tests).
TcpTuningCounts tcp_tuning_counts() noexcept;

// Back-pressure at accept under a task limit (TasksMax, a pids cgroup).
// libmilter starts one thread per accepted connection, and when
// pthread_create fails it leaves that MTA connection without an answer. So,
// with a budget set, the wrapped accept() first waits (polling every 2 ms)
// while this process has `budget` threads or more: the connection waits in
// the kernel's backlog, where the MTA's own timeouts apply, instead of being
// accepted into a thread that cannot start. A wait ends after 10 s (then
// the connection is accepted anyway) or when release_accept_waits() is
// called (stopping: accept() returns -1/EINTR, libmilter's loop goes on to
// its stop check). 0: no budget (no task limit), no wait, no extra call.
void set_accept_thread_budget(std::size_t budget) noexcept;
void release_accept_waits() noexcept;
// Threads of this process now (/proc/self/stat); 0 when unreadable.
std::size_t threads_of_this_process() noexcept;
// accept() calls that had to wait for the budget (log and tests).
std::uint64_t accept_waits() noexcept;

}  // namespace mtasts::milter
