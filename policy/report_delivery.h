// Delivering one RFC 8460 report to each destination its Policy Domain
// publishes (§3 "rua"; §5.3 mailto, §5.4 https), as a state machine the store
// keeps, so a re-run never sends a delivered report again and a crash loses
// none. Pure: the caller passes `now` and does the I/O.
//
// A delivery (one report, one destination URI) moves:
//   Pending --claim--> Sending --Delivered--> Delivered
//                              --Permanent--> Failed
//                              --Temporary--> Pending (next try after a back-off)
//                                             or Expired once give_up_after has
//                                             passed since the first attempt
// The claim is written (committed) before the transport runs, and the outcome
// after it returns. Readings where the RFC leaves room:
// - §5.5 asks for retries with exponential back-off for up to 24 hours:
//   first retry 5 min after the first failure, doubling, at most 4 h apart,
//   none started 24 h after the first attempt.
// - A Sending left behind (the process died between the claim and the
//   outcome) is due again once `stale_claim` (15 min, longer than any
//   transport timeout) has passed: the report is sent again, with the same
//   report-id and Message-ID, so a receiver can tell the copy. That window is
//   the time between the destination accepting the report and our commit:
//   losing a report there would be worse than a duplicate a receiver can
//   recognise (§4.4 report-id is unique per report).
// - Sends are spread over a window after the day ends (§5: reports go out
//   once a day; every sender starting at 00:00 UTC would hit receivers at
//   once): each (report, destination) gets a fixed offset in the window from
//   a hash of the two, so re-runs agree on it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mtasts::policy {

enum class DeliveryState { Pending, Sending, Delivered, Failed, Expired };
// "pending" | "sending" | "delivered" | "failed" | "expired" (the store's text).
std::string_view to_string(DeliveryState state);
std::optional<DeliveryState> delivery_state_from_string(std::string_view text);

// What one attempt did: the transport's classification.
enum class AttemptOutcome { Delivered, Temporary, Permanent };

struct Delivery {
  std::string report_id;    // §4.4 report-id
  std::string destination;  // the rua URI as published, e.g. "mailto:tlsrpt@example.com"
  DeliveryState state = DeliveryState::Pending;
  int attempts = 0;
  std::int64_t not_before = 0;        // unix s: no attempt starts earlier
  std::int64_t first_attempt_at = 0;  // unix s; 0: none yet
  std::int64_t claimed_at = 0;        // unix s the running attempt started (Sending)
  std::int64_t finished_at = 0;       // unix s it was delivered, failed or expired
  std::string last_error;             // the last failed attempt's detail (one line)

  bool operator==(const Delivery&) const = default;
};

struct RetryPolicy {
  std::int64_t first_retry = 300;       // s after the first temporary failure
  std::int64_t max_interval = 14'400;   // longest wait between attempts
  std::int64_t give_up_after = 86'400;  // s after the first attempt: Expired
  std::int64_t stale_claim = 900;       // a Sending older than this was cut short
};

// True when an attempt should start now: Pending and not_before has come, or
// Sending with a claim older than stale_claim.
bool is_due(const Delivery& delivery, std::int64_t now, const RetryPolicy& retry);

// A Sending left behind (see is_due) whose first attempt is give_up_after
// or more ago: it ends Expired instead of being claimed again, so a
// delivery whose attempts keep dying (a crash in a library on a hostile
// server, an OOM kill) is not resent forever.
bool stale_claim_expired(const Delivery& delivery, std::int64_t now, const RetryPolicy& retry);
// That delivery, Expired now.
Delivery expired(Delivery delivery, std::int64_t now);

// The delivery as written before its transport runs: Sending, one more
// attempt, claimed now (first_attempt_at set on the first).
Delivery claimed(Delivery delivery, std::int64_t now);

// The delivery after an attempt that ended with `outcome` (`detail`: one
// line, kept as last_error for failures).
Delivery after_attempt(Delivery delivery, AttemptOutcome outcome, std::string detail, std::int64_t now,
                       const RetryPolicy& retry);

// The wait before attempt number `attempts` + 1 after `attempts` failed
// ones: first_retry * 2^(attempts - 1), at most max_interval.
std::int64_t retry_delay(int attempts, const RetryPolicy& retry);

// A number stable across builds, machines and runs (FNV-1a, 64 bits;
// std::hash is not) for one (report, destination): its place in the send
// window, and the Message-ID of its mail (a retry or a copy after a crash
// has the first attempt's).
std::uint64_t delivery_hash(std::string_view report_id, std::string_view destination);

// When the first attempt of (report_id, destination) may start: day_end (the
// unix second the report's day ends) plus a fixed offset in [0, window),
// the same on every call. window <= 0: day_end.
std::int64_t spread_send_time(std::string_view report_id, std::string_view destination, std::int64_t day_end,
                              std::int64_t window);

}  // namespace mtasts::policy
