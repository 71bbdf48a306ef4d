// libtlsrpt datagrams over unix datagram sockets, both ways (the format is
// policy/tlsrpt_datagram.h; README "TLSRPT datagrams"):
// - DatagramForwarder: each of our TLSRPT sessions also goes, as the
//   datagram a libtlsrpt client would send, to a site's collector
//   (tlsrpt-collectd), for the domains that publish an _smtp._tls record
//   (the datagram carries the record, as Postfix's do; RFC 8460 §3: no
//   record, no report).
// - DatagramReceiver: datagrams from Postfix >= 3.10 built with libtlsrpt
//   (smtp_tlsrpt_socket_name) land in our own daily counts.
// Neither ever blocks the mail path: the forwarder's record() only queues
// (bounded; a full queue drops), and a bad datagram is logged and dropped.
// The forwarder's own thread waits up to kCollectorWait per datagram for
// room at a busy collector (libtlsrpt's client, on the MTA's path, drops
// at once instead): a unix datagram socket queues as few as
// net.unix.max_dgram_qlen datagrams (10 on some hosts), and a burst of
// sessions would otherwise be lost (tests/bench/datagram_bench). Stopping,
// it waits for nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "policy/tlsrpt.h"

namespace mtasts::policy::net {

inline constexpr std::chrono::milliseconds kCollectorWait{250};

struct DatagramForwarderConfig {
  std::string socket_path;                // the collector's socket
  std::size_t max_queued = 10000;         // sessions waiting for the sender thread
  std::chrono::seconds record_ttl{3600};  // how long a domain's record (or its absence) is kept
  std::size_t max_cached_records = 100000;
};

struct DatagramForwarderCounts {
  std::int64_t sent = 0;
  std::int64_t no_record = 0;    // the domain publishes no usable _smtp._tls record
  std::int64_t queue_full = 0;   // dropped before the sender thread saw them
  std::int64_t send_failed = 0;  // the collector was absent or busy
};

class DatagramForwarder final : public TlsrptSink {
 public:
  // The raw text of DOMAIN's one valid _smtp._tls record; nullopt when it
  // has none (or the lookup failed). Called on the sender thread only.
  using RecordFinder = std::function<std::optional<std::string>(const std::string& domain)>;

  // Every session also goes to `next` (may be nullptr), first.
  DatagramForwarder(TlsrptSink* next, DatagramForwarderConfig config, RecordFinder find_record);
  ~DatagramForwarder() override;  // stop()
  DatagramForwarder(const DatagramForwarder&) = delete;
  DatagramForwarder& operator=(const DatagramForwarder&) = delete;

  void record(const TlsrptSession& session) override;

  // Blocks until every session queued so far was handled (tests): with a
  // busy collector up to kCollectorWait per datagram.
  void wait_idle();
  // Sends what is queued without waiting for a busy collector or a DNS
  // lookup (what does not fit, or has no record known yet, is counted
  // send_failed), then ends the sender thread; sessions
  // recorded afterwards only queue. For shutdown: bounded by the queue, not
  // by the collector. Idempotent.
  void stop();
  DatagramForwarderCounts counts() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct DatagramReceiverCounts {
  std::int64_t datagrams = 0;  // accepted
  std::int64_t rejected = 0;   // malformed, logged
  std::int64_t sessions = 0;   // handed to the sink
};

class DatagramReceiver {
 public:
  using Clock = std::function<std::int64_t()>;  // unix seconds

  // Takes `fd`, a bound unix datagram socket (milter/listen_socket.h).
  DatagramReceiver(int fd, TlsrptSink& sink, Clock now);
  ~DatagramReceiver();  // stops the thread, closes the socket
  DatagramReceiver(const DatagramReceiver&) = delete;
  DatagramReceiver& operator=(const DatagramReceiver&) = delete;

  DatagramReceiverCounts counts() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mtasts::policy::net
