// The socketmap server (Postfix socketmap_table(5); Sendmail's socket map
// class): many connections and pipelined requests on one event-loop thread
// (epoll), lookups that must wait (a first discovery, MX and TLSA look-ups)
// on a small pool of lookup threads, never a thread per connection.
//
// Per request: the framing and request rules of policy/socketmap.h. A warm
// answer comes from the loop's own answer table: no lock, no SQLite, no
// network. A miss starts (or joins) one lookup per key; the request waits up
// to `deadline` and is then answered TEMP (the lookup goes on and fills the
// table for the retry). Replies leave in request order.
//
// Limits, each with a safe answer and a counted, rate-limited log line:
// - a request over Postfix's 10,000 bytes or a malformed netstring: PERM,
//   then the connection is closed (the stream cannot be resynchronised);
//   a well-framed bad request (unknown map name, bad key): PERM, and the
//   connection stays;
// - at most `max_connections`: a new connection closes the one idle the
//   longest (without requests in progress), or is itself closed;
// - `idle_timeout` without a request, or without the client reading our
//   replies: closed;
// - a client that does not read: after 256 KiB of unread replies (or 64
//   requests in progress) its requests are no longer read until it catches up;
// - more keys waiting for a lookup than `max_waiting_keys`: TEMP at once.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "milter/socketmap_lookup.h"

namespace mtasts::milter {

struct SocketmapServerConfig {
  std::vector<std::string> map_names{"postfix", "sts"};
  // Of map_names, those Sendmail's FEATURE(`sts') asks: never answered with
  // TLSRPT attributes (its rulesets take the data up to its end).
  std::vector<std::string> sendmail_map_names{"sts"};
  std::chrono::milliseconds deadline{4000};
  std::size_t max_connections = 2000;
  std::chrono::seconds idle_timeout{300};
  std::size_t lookup_threads = 64;
  std::size_t max_waiting_keys = 4096;
  // The answer table; when full, each new key pushes out the answer used
  // the longest ago (0: no answer is remembered).
  std::size_t max_answers = 200000;
};

// Blocking; runs on a lookup thread. `key` is lower-cased ASCII.
using SocketmapLookupFunction =
    std::function<SocketmapLookupResult(const std::string& key, policy::Deadline)>;
// Unix seconds (the clock the answers' reuse_until is in).
using UnixClock = std::function<std::int64_t()>;

struct SocketmapCounts {
  std::uint64_t connections = 0;  // accepted
  std::uint64_t requests = 0;
  std::uint64_t warm_answers = 0;  // from the answer table
  std::uint64_t lookups = 0;       // started
  std::uint64_t temp_deadline = 0;
  std::uint64_t refused = 0;  // connections closed at the cap (new or evicted idle)
  std::uint64_t malformed = 0;
  std::uint64_t idle_closed = 0;
};

class SocketmapServer {
 public:
  // Takes ownership of `listen_fd` (non-blocking, listening).
  SocketmapServer(int listen_fd, SocketmapServerConfig config, SocketmapLookupFunction lookup,
                  UnixClock clock);
  ~SocketmapServer();  // stop()
  SocketmapServer(const SocketmapServer&) = delete;
  SocketmapServer& operator=(const SocketmapServer&) = delete;

  // Starts the loop and the lookup threads. Throws std::system_error.
  void start();
  // Answers requests still waiting with TEMP, closes every connection, and
  // joins the threads (a lookup in progress ends within its deadline). Not
  // to be called from two threads at once; the destructor calls it again.
  void stop();
  // Drops every remembered answer (after a reload changed the settings).
  // Thread-safe, also after stop().
  void forget_answers();

  SocketmapCounts counts() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The daemon's server config from its Config.
SocketmapServerConfig socketmap_server_config(const Config& config);

}  // namespace mtasts::milter
