// Why the destinations lookup is a delivery row of its own: it needs the
// same things a delivery does (a time it is due, retries on a temporary
// failure, giving up after a day, a record of why it ended), and a crash
// between storing a report and looking up its destinations must not leave
// it unsent: a report with no row at all gets its lookup row on the next run.
#include "milter/report_sender.h"

#include <spdlog/spdlog.h>

#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "policy/ascii.h"
#include "policy/logfmt.h"

namespace mtasts::milter {
namespace {

using policy::AttemptOutcome;
using policy::Delivery;
using policy::DeliveryState;

constexpr std::string_view kLookupPrefix = "dns:_smtp._tls.";
// Passes over the deliveries per run: lookups, then the deliveries they add.
constexpr int kPasses = 2;
// Destinations per report: a 4 KiB record can list ~250 URIs, each a signed
// mail or a POST from us every day; a real record has one or two.
constexpr std::size_t kMaxDestinations = 10;

bool is_lookup(const Delivery& delivery) { return delivery.destination.starts_with(kLookupPrefix); }

std::string_view to_string(AttemptOutcome outcome) {
  switch (outcome) {
    case AttemptOutcome::Delivered:
      return "delivered";
    case AttemptOutcome::Permanent:
      return "permanent";
    case AttemptOutcome::Temporary:
      break;
  }
  return "temporary";
}

// The URI's scheme, compared case-insensitively (RFC 3986 §3.1).
std::optional<policy::ReportScheme> scheme_of(std::string_view uri) {
  const auto has_scheme = [uri](std::string_view scheme) {
    return uri.size() > scheme.size() && policy::ascii_iequals(uri.substr(0, scheme.size()), scheme);
  };
  if (has_scheme("mailto:")) return policy::ReportScheme::Mailto;
  if (has_scheme("https:")) return policy::ReportScheme::Https;
  return std::nullopt;
}

void log_attempt(const Delivery& after, AttemptOutcome outcome, const std::string& detail) {
  spdlog::info("report event=attempt report_id={} destination={} attempt={} outcome={} state={} detail={}",
               policy::logfmt_value(after.report_id), policy::logfmt_value(after.destination), after.attempts,
               to_string(outcome), policy::to_string(after.state), policy::logfmt_value(detail));
}

void count(SendSummary& summary, const Delivery& after) {
  ++summary.attempted;
  const bool lookup = after.destination.starts_with(kLookupPrefix);
  switch (after.state) {
    case DeliveryState::Delivered:
      if (!lookup) ++summary.delivered;
      break;
    case DeliveryState::Failed:
      ++(lookup ? summary.no_destination : summary.failed);
      break;
    case DeliveryState::Expired:
      ++summary.expired;
      break;
    default:
      break;
  }
}

}  // namespace

std::string lookup_destination(const std::string& policy_domain) {
  return std::string(kLookupPrefix) + policy_domain;
}

ReportSender::ReportSender(store::ReportStore& store, DestinationLookup& lookup, ReportTransport& transport,
                           const policy::Clock& clock, ReportSenderSettings settings)
    : store_(store), lookup_(lookup), transport_(transport), clock_(clock), settings_(settings) {}

// Every stored report without a row gets its lookup row, due at its place in
// the send window after its day ends.
bool ReportSender::ensure_lookups(const std::string& day) {
  const auto unstarted = store_.reports_without_deliveries();
  if (!unstarted) return false;
  std::vector<Delivery> lookups;
  for (const store::StoredReport& report : *unstarted) {
    if (!day.empty() && report.day != day) continue;
    Delivery lookup;
    lookup.report_id = report.report_id;
    lookup.destination = lookup_destination(report.policy_domain);
    const std::int64_t day_end = policy::utc_day_start(report.day).value_or(0) + 86'400;
    lookup.not_before =
        settings_.ignore_window
            ? 0
            : policy::spread_send_time(report.report_id, lookup.destination, day_end, settings_.send_window);
    lookups.push_back(std::move(lookup));
  }
  return lookups.empty() || store_.add_deliveries(lookups).has_value();
}

// --now also brings forward first attempts an earlier run placed in the
// window; a retry still waits for its back-off.
bool ReportSender::due_now(const Delivery& delivery, std::int64_t now) const {
  if (settings_.ignore_window && delivery.state == DeliveryState::Pending && delivery.attempts == 0)
    return true;
  return policy::is_due(delivery, now, settings_.retry);
}

SendSummary ReportSender::send(const std::string& day) {
  SendSummary summary;
  if (!ensure_lookups(day)) {
    summary.store_error = true;
    return summary;
  }
  for (int pass = 0; pass < kPasses && !summary.store_error; ++pass) {
    const auto rows = store_.open_deliveries(day);
    if (!rows) {
      summary.store_error = true;
      break;
    }
    const std::int64_t now = clock_.now();
    for (const Delivery& delivery : *rows)
      if (due_now(delivery, now)) attempt(delivery, summary);
  }
  if (const auto rows = store_.deliveries(day)) {
    for (const Delivery& delivery : *rows)
      summary.waiting += delivery.state == DeliveryState::Pending ? 1 : 0;
  }
  return summary;
}

void ReportSender::attempt(const Delivery& due, SendSummary& summary) {
  if (policy::stale_claim_expired(due, clock_.now(), settings_.retry)) {
    const Delivery ended = policy::expired(due, clock_.now());
    const auto written = store_.replace_delivery(due, ended);
    if (!written) summary.store_error = true;
    if (written && *written) {
      log_attempt(ended, AttemptOutcome::Temporary, "no attempt finished within a day");
      ++summary.expired;
    }
    return;
  }
  const Delivery claimed = policy::claimed(due, clock_.now());
  const auto won = store_.replace_delivery(due, claimed);
  if (!won) {
    summary.store_error = true;
    return;
  }
  if (!*won) return;  // another sender claimed it first
  const TransportResult result = run_claimed(due);
  const Delivery after =
      policy::after_attempt(claimed, result.outcome, result.detail, clock_.now(), settings_.retry);
  log_attempt(after, result.outcome, result.detail);
  const auto written = store_.replace_delivery(claimed, after);
  if (!written || !*written) summary.store_error = true;
  count(summary, after);
}

// A transport that throws (bad_alloc, a library's exception) costs this
// attempt only: the run goes on with the next delivery.
TransportResult ReportSender::run_claimed(const Delivery& due) {
  try {
    const std::optional<store::StoredReport> report = store_.load_report(due.report_id);
    if (!report) return {AttemptOutcome::Temporary, "report not readable from the store"};
    return is_lookup(due) ? run_lookup(*report) : run_delivery(*report, due.destination);
  } catch (const std::exception& e) {
    return {AttemptOutcome::Temporary, std::string("internal error: ") + e.what()};
  }
}

TransportResult ReportSender::run_lookup(const store::StoredReport& report) {
  DestinationAnswer answer = lookup_.lookup(report.policy_domain);
  switch (answer.kind) {
    case DestinationAnswer::Kind::None:
      spdlog::info("report event=no-destination report_id={} policy_domain={} why={}",
                   policy::logfmt_value(report.report_id), report.policy_domain,
                   policy::logfmt_value(answer.detail));
      return {AttemptOutcome::Permanent, "no usable _smtp._tls record: " + answer.detail};
    case DestinationAnswer::Kind::Temporary:
      return {AttemptOutcome::Temporary, answer.detail};
    case DestinationAnswer::Kind::Found:
      break;
  }
  std::vector<Delivery> deliveries;
  if (answer.record.rua.size() > kMaxDestinations) {
    spdlog::warn("report event=too-many-destinations report_id={} policy_domain={} published={} used={}",
                 policy::logfmt_value(report.report_id), report.policy_domain, answer.record.rua.size(),
                 kMaxDestinations);
    answer.record.rua.resize(kMaxDestinations);
  }
  for (const policy::ReportUri& uri : answer.record.rua) {
    Delivery delivery;
    delivery.report_id = report.report_id;
    delivery.destination = uri.uri;
    delivery.not_before = clock_.now();
    deliveries.push_back(std::move(delivery));
  }
  if (const auto added = store_.add_deliveries(deliveries); !added)
    return {AttemptOutcome::Temporary, "store: " + added.error().code};
  return {AttemptOutcome::Delivered, "destinations=" + std::to_string(deliveries.size())};
}

TransportResult ReportSender::run_delivery(const store::StoredReport& report,
                                           const std::string& destination) {
  const std::optional<policy::ReportScheme> scheme = scheme_of(destination);
  if (!scheme) return {AttemptOutcome::Permanent, "not a mailto: or https: URI"};
  return transport_.deliver(report, policy::ReportUri{*scheme, destination});
}

}  // namespace mtasts::milter
