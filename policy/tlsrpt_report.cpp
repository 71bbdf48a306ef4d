// RFC 8460 §4.4 report building; the readings are listed in the header.
// Why ordered maps all the way down: the report must be byte-for-byte the
// same for the same rows whatever order the store returns them in (a resent
// report then carries the same body as the first), and sorted keys give that
// without a separate sort step. Why ordered_json: receivers and people
// compare our output with the RFC's example, whose key order we keep.
#include "policy/tlsrpt_report.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string_view>
#include <tuple>

#include "policy/ascii.h"

namespace mtasts::policy {
namespace {

using Json = nlohmann::ordered_json;

constexpr std::int64_t kLastSecondOfDay = 86399;
// I-JSON (RFC 7493 §2.2): integers beyond 2^53 - 1 lose precision in readers.
constexpr std::int64_t kMaxCount = (std::int64_t{1} << 53) - 1;

// result-type, sending-mta-ip, receiving-mx-hostname, receiving-ip,
// additional-information, failure-reason-code.
using FailureKey = std::tuple<std::string, std::string, std::string, std::string, std::string, std::string>;
// policy_type, policy_string, mx_patterns.
using PolicyKey = std::tuple<std::string, std::string, std::string>;

struct PolicyCounts {
  std::int64_t successes = 0;
  std::int64_t failures = 0;
  std::map<FailureKey, std::int64_t> details;
};

using DomainPolicies = std::map<PolicyKey, PolicyCounts>;

void add_capped(std::int64_t& total, std::int64_t more) {
  total = more > kMaxCount - total ? kMaxCount : total + more;
}

bool is_report_policy_type(std::string_view type) {
  return type == "sts" || type == "tlsa" || type == "no-policy-found";
}

// The policy's lines joined by LF: the same policy read with CRLF (ours) or
// LF (a libtlsrpt datagram's policy-string list) is one report entry.
std::string policy_key_text(std::string_view text) {
  std::string out;
  for (const std::string& line : policy_string_lines(text)) out += line + '\n';
  return out;
}

// The day's usable rows, by domain then policy.
std::map<std::string, DomainPolicies> group(std::span<const TlsrptAggregate> aggregates,
                                            const std::string& day) {
  std::map<std::string, DomainPolicies> domains;
  for (const auto& a : aggregates) {
    if (a.day != day || a.sessions <= 0 || a.policy_domain.empty() || !is_report_policy_type(a.policy_type))
      continue;
    PolicyCounts& counts =
        domains[a.policy_domain][PolicyKey{a.policy_type, policy_key_text(a.policy_string), a.mx_patterns}];
    if (a.success) {
      add_capped(counts.successes, a.sessions);
      continue;
    }
    add_capped(counts.failures, a.sessions);
    const FailureKey key{std::string(to_string(a.result_type.value_or(ResultType::ValidationFailure))),
                         a.sending_mta_ip,
                         a.receiving_mx_hostname,
                         a.receiving_ip,
                         a.additional_information,
                         a.failure_reason_code};
    add_capped(counts.details[key], a.sessions);
  }
  return domains;
}

void put_if_set(Json& object, const char* name, const std::string& value) {
  if (!value.empty()) object[name] = value;
}

Json failure_json(const FailureKey& key, std::int64_t sessions) {
  const auto& [result_type, sending_ip, mx_hostname, receiving_ip, additional, reason] = key;
  Json detail;
  detail["result-type"] = result_type;
  put_if_set(detail, "sending-mta-ip", sending_ip);
  put_if_set(detail, "receiving-mx-hostname", mx_hostname);
  put_if_set(detail, "receiving-ip", receiving_ip);
  detail["failed-session-count"] = sessions;
  put_if_set(detail, "additional-information", additional);
  put_if_set(detail, "failure-reason-code", reason);
  return detail;
}

Json policy_json(const std::string& domain, const PolicyKey& key, const PolicyCounts& counts) {
  const auto& [type, text, patterns] = key;
  Json policy;
  policy["policy-type"] = type;
  const bool applied = type != "no-policy-found";
  if (auto lines = policy_string_lines(text); applied && !lines.empty())
    policy["policy-string"] = std::move(lines);
  policy["policy-domain"] = domain;
  if (auto hosts = mx_pattern_words(patterns); applied && !hosts.empty())
    policy["mx-host"] = std::move(hosts);

  Json entry;
  entry["policy"] = std::move(policy);
  entry["summary"]["total-successful-session-count"] = counts.successes;
  entry["summary"]["total-failure-session-count"] = counts.failures;
  if (!counts.details.empty()) {
    Json details = Json::array();
    for (const auto& [failure, sessions] : counts.details) details.push_back(failure_json(failure, sessions));
    entry["failure-details"] = std::move(details);
  }
  return entry;
}

std::string report_json(const std::string& domain, const DomainPolicies& policies, const std::string& day,
                        const std::string& report_id, const ReportSubmitter& submitter) {
  Json doc;
  doc["organization-name"] = submitter.organization_name;
  doc["date-range"]["start-datetime"] = day + "T00:00:00Z";
  doc["date-range"]["end-datetime"] = day + "T23:59:59Z";
  doc["contact-info"] = submitter.contact_info;
  doc["report-id"] = report_id;
  Json entries = Json::array();
  for (const auto& [key, counts] : policies) entries.push_back(policy_json(domain, key, counts));
  doc["policies"] = std::move(entries);
  return doc.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace

std::string make_report_id(const std::string& day, const std::string& policy_domain,
                           const ReportSubmitter& submitter) {
  return day + "." + policy_domain + "@" + submitter.submitter;
}

std::vector<DailyReport> build_daily_reports(std::span<const TlsrptAggregate> aggregates,
                                             const std::string& day, const ReportSubmitter& submitter) {
  std::vector<DailyReport> reports;
  const std::optional<std::int64_t> begin = utc_day_start(day);
  if (!begin) return reports;
  const std::string range = "!" + std::to_string(*begin) + "!" + std::to_string(*begin + kLastSecondOfDay);
  for (const auto& [domain, policies] : group(aggregates, day)) {
    DailyReport report;
    report.policy_domain = domain;
    report.day = day;
    report.report_id = make_report_id(day, domain, submitter);
    report.json = report_json(domain, policies, day, report.report_id, submitter);
    report.file_name = submitter.submitter;
    report.file_name.append("!").append(domain).append(range).append(".json.gz");
    reports.push_back(std::move(report));
  }
  return reports;
}

}  // namespace mtasts::policy
