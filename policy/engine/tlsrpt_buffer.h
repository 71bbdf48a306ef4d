// In-memory aggregation of TLSRPT sessions into the counts of an RFC 8460
// aggregate report (§4.4: "summary" total-successful-session-count /
// total-failure-session-count per policy, and "failure-details" entries with
// failed-session-count), per UTC day (§4.1: reports cover a UTC day by
// default), and a flusher that hands the counts to a TlsrptStore (a port,
// policy/sources.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "policy/result.h"
#include "policy/sources.h"
#include "policy/tlsrpt.h"

namespace mtasts::policy {

struct TlsrptBufferConfig {
  // Overrides every session's sending_mta_ip when set (the MTA's public
  // address, when probes leave from another one or through NAT).
  std::string sending_mta_ip;
  // The flusher thread writes this often; zero: no thread (flush() by hand).
  std::chrono::milliseconds flush_interval{30000};
  // More distinct aggregates than this wake the flusher at once, not at its
  // next interval: 100,000 recipient domains in a burst never wait in
  // memory for a whole flush_interval. Not while the store refuses writes
  // (the interval paces the retries then). No effect without a flusher.
  std::size_t flush_at_aggregates = 10000;
  // Distinct aggregates held in memory at most: room for what arrives
  // during an early flush, and the bound while the store refuses writes.
  // New keys beyond are dropped and counted in a warning at the next flush;
  // counts of known keys still go up.
  std::size_t max_pending = 20000;
  // Aggregates written per store transaction. Bounded so that after a full
  // disk the writes fit again a batch at a time, instead of one
  // transaction of everything that may never fit.
  std::size_t batch_aggregates = 500;
};

// Thread-safe. record() only takes a mutex (no I/O); past
// flush_at_aggregates it wakes the flusher. The flusher writes outside the
// lock, batch_aggregates per transaction; when a batch fails, it and the
// batches not yet tried go back (merged with what arrived meanwhile, within
// max_pending) for the next try, at the next interval. The destructor stops
// the flusher and makes a last attempt, so nothing recorded is lost on a
// clean shutdown unless that last write fails too. Whatever is dropped
// (beyond max_pending, or unwritten at the end) is counted in one log line:
// "tlsrpt event=dropped sessions=N reason=buffer-full" at the next flush,
// "tlsrpt event=lost sessions=N" at the end.
class TlsrptBuffer final : public TlsrptSink {
 public:
  // `store` may be nullptr (aggregate in memory only; take() reads them).
  // It must outlive the buffer.
  TlsrptBuffer(TlsrptStore* store, TlsrptBufferConfig config);
  ~TlsrptBuffer() override;
  TlsrptBuffer(const TlsrptBuffer&) = delete;
  TlsrptBuffer& operator=(const TlsrptBuffer&) = delete;

  void record(const TlsrptSession& session) override;

  // The aggregates recorded since the last take() or successful flush,
  // sorted by day then key; the buffer is empty afterwards.
  std::vector<TlsrptAggregate> take();

  // Writes the pending aggregates now, batch_aggregates at a time, stopping
  // at the first batch the store refuses. True when there was nothing to
  // write or the store accepted every batch; false (logged, the unwritten
  // batches kept) otherwise.
  bool flush();

  // Sessions held in memory (not yet written).
  std::int64_t pending_sessions() const;
  // Distinct aggregates held in memory (not yet written).
  std::size_t pending_aggregates() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mtasts::policy
