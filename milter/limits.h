// What bounds the daemon's use of the machine under a flood (issue #10):
// descriptors, and the milter connections and waiting recipients that
// consume threads and descriptors.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "milter/session.h"

namespace mtasts::milter {

// RLIMIT_NOFILE after raise_descriptor_limit().
struct DescriptorLimit {
  std::uint64_t soft = 0;
  std::uint64_t hard = 0;
  bool raised = false;  // the soft limit was below the hard one and now equals it
};

// Raises the soft descriptor limit to the hard one. Debian's default soft
// limit of 1,024 is filled by about a thousand idle milter connections, and
// then libmilter spins on accept() and DNS sockets cannot open.
DescriptorLimit raise_descriptor_limit();

// The milter connections that fit in `descriptors` beside the daemon's own
// (store, DNS sockets, probes, policy fetches): `configured`, lowered to
// leave min(256, descriptors / 2) free. At least 1.
std::size_t connections_that_fit(std::size_t configured, std::uint64_t descriptors);

// Bounds the recipients that wait for the engine (a discovery, a DNS
// lookup, a probe) at once: each waiting RCPT holds a libmilter thread.
// Beyond `limit`, a recipient is checked with a deadline of kOverflowWait:
// what the caches know still decides it at once, and what would have
// waited is answered as "overloaded" (the engine's jobs go on and fill the
// caches for the MTA's retry). Refusals are logged at most once per 10 s.
class WaitingRcpts {
 public:
  static constexpr std::chrono::milliseconds kOverflowWait{100};

  explicit WaitingRcpts(std::size_t limit);
  ~WaitingRcpts();
  WaitingRcpts(const WaitingRcpts&) = delete;
  WaitingRcpts& operator=(const WaitingRcpts&) = delete;

  // `check` behind the bound. This object must outlive the function.
  CheckFunction bounded(CheckFunction check);
  std::size_t waiting() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mtasts::milter
