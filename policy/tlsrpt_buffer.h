// In-memory aggregation of TLSRPT sessions into the counts of an RFC 8460
// aggregate report (§4.4: "summary" total-successful-session-count /
// total-failure-session-count per policy, and "failure-details" entries with
// failed-session-count), per UTC day (§4.1: reports cover a UTC day by
// default), and a flusher that hands the counts to a TlsrptStore.
// The store interface is declared here so policy/ never includes store/.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "policy/result.h"
#include "policy/tlsrpt.h"

namespace mtasts::policy {

// "YYYY-MM-DD" of `unix_seconds` in UTC (the report day).
std::string utc_day(std::int64_t unix_seconds);

// The count of equal sessions on one day. For successes the failure fields
// are empty and result_type is nullopt; failures always have a result_type.
struct TlsrptAggregate {
  std::string day;
  std::string policy_type;
  std::string policy_domain;
  std::string policy_string;
  std::string mx_patterns;
  bool success = false;
  std::optional<ResultType> result_type;
  std::string failure_reason_code;
  std::string sending_mta_ip;
  std::string receiving_mx_hostname;
  std::string receiving_ip;
  std::string additional_information;
  std::int64_t sessions = 0;

  bool operator==(const TlsrptAggregate&) const = default;
};

// Durable storage of aggregates (store/tlsrpt_store.h). add() adds the
// sessions to the stored counts, all or nothing: an error means nothing of
// the batch was written. Thread-safe.
class TlsrptStore {
 public:
  virtual ~TlsrptStore() = default;
  virtual Result<bool> add(const std::vector<TlsrptAggregate>& batch) = 0;
};

struct TlsrptBufferConfig {
  // Overrides every session's sending_mta_ip when set (the MTA's public
  // address, when probes leave from another one or through NAT).
  std::string sending_mta_ip;
  // The flusher thread writes this often; zero: no thread (flush() by hand).
  std::chrono::milliseconds flush_interval{30000};
  // Distinct aggregates held in memory at most (new keys beyond are dropped
  // and counted in a warning; counts of known keys still go up).
  std::size_t max_pending = 100000;
};

// Thread-safe. record() only takes a mutex (no I/O). The flusher writes
// outside the lock; a failed write puts the batch back (merged with what
// arrived meanwhile) for the next try. The destructor stops the flusher and
// makes a last attempt, so nothing recorded is lost on a clean shutdown
// unless that last write fails too (logged with the number of sessions).
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

  // Writes the pending aggregates now. True when there was nothing to write
  // or the store accepted them; false (logged, batch kept) otherwise.
  bool flush();

  // Sessions held in memory (not yet written).
  std::int64_t pending_sessions() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mtasts::policy
