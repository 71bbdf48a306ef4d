// `report send`: delivers the stored TLSRPT reports (RFC 8460 §5) to the
// destinations each Policy Domain publishes in `_smtp._tls` (§3), once each,
// with retries (policy/report_delivery.h), the state in the store
// (store/report_store.h). The outside (DNS, the transports, the clock) comes
// through the small interfaces below, so the tests drive it with fakes.
//
// Per report, in order:
// 1. its destinations are looked up (a delivery row "dns:_smtp._tls.DOMAIN",
//    due at a fixed point of the send window after the day ends): a usable
//    record adds one delivery per rua URI, due at once; no record, or none
//    usable, ends the report (logged, nothing sent: §3 "does not implement
//    TLSRPT"); a temporary DNS failure or a DNSSEC-bogus answer is retried
//    like a failed delivery (a bogus answer is never trusted with reports);
// 2. each due delivery is claimed in the store, handed to the transport,
//    and its outcome written.
// One logfmt line per attempt: `report event=attempt report_id= destination=
// attempt= outcome= detail=`. Not thread-safe: one sender per process (two
// processes are kept apart by the store's compare-and-set claims).
#pragma once

#include <cstdint>
#include <string>

#include "policy/report_delivery.h"
#include "policy/sources.h"
#include "policy/tlsrpt_record.h"
#include "store/report_store.h"

namespace mtasts::milter {

// What `_smtp._tls.DOMAIN` said.
struct DestinationAnswer {
  enum class Kind { Found, None, Temporary };
  Kind kind = Kind::Temporary;
  policy::TlsrptRecord record;  // Found: the usable URIs
  std::string detail;           // None / Temporary: why, one line
};

class DestinationLookup {
 public:
  virtual ~DestinationLookup() = default;
  virtual DestinationAnswer lookup(const std::string& policy_domain) = 0;
};

struct TransportResult {
  policy::AttemptOutcome outcome = policy::AttemptOutcome::Temporary;
  std::string detail;  // one line for the log and the store; never the report
};

class ReportTransport {
 public:
  virtual ~ReportTransport() = default;
  // Delivers `report` to `destination` (a mailto: or https: URI as published).
  virtual TransportResult deliver(const store::StoredReport& report,
                                  const policy::ReportUri& destination) = 0;
};

struct ReportSenderSettings {
  policy::RetryPolicy retry;
  std::int64_t send_window = 3600;  // s after the day ends over which first attempts are spread
  bool ignore_window = false;       // --now: first attempts are due at once
};

struct SendSummary {
  int attempted = 0;         // attempts made by this run
  int delivered = 0;         // deliveries that ended delivered in this run
  int failed = 0;            // ended failed (permanent) in this run
  int no_destination = 0;    // reports whose domain publishes no usable _smtp._tls record
  int expired = 0;           // gave up in this run
  int waiting = 0;           // still pending after this run (not yet due, or to retry)
  bool store_error = false;  // a store read or write failed: the run stopped early
};

// The delivery row of the destinations lookup of `policy_domain`.
std::string lookup_destination(const std::string& policy_domain);

class ReportSender {
 public:
  ReportSender(store::ReportStore& store, DestinationLookup& lookup, ReportTransport& transport,
               const policy::Clock& clock, ReportSenderSettings settings);

  // Sends what is due among the reports of `day` ("YYYY-MM-DD"; "" for every
  // stored day).
  SendSummary send(const std::string& day);

 private:
  bool ensure_lookups(const std::string& day);
  bool due_now(const policy::Delivery& delivery, std::int64_t now) const;
  void attempt(const policy::Delivery& due, SendSummary& summary);
  TransportResult run_claimed(const policy::Delivery& due);
  TransportResult run_lookup(const store::StoredReport& report);
  TransportResult run_delivery(const store::StoredReport& report, const std::string& destination);

  store::ReportStore& store_;
  DestinationLookup& lookup_;
  ReportTransport& transport_;
  const policy::Clock& clock_;
  ReportSenderSettings settings_;
};

}  // namespace mtasts::milter
