// RFC 8460 §4.4 reports as received; the readings are listed in the header.
// Why a Reader that keeps the first error rather than returning at each
// field: the schema is then read top to bottom, one line per field, and a
// field read after an error is harmless (the report is dropped with it).
#include "policy/tlsrpt_report_reader.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <limits>
#include <optional>

#include "policy/ascii.h"
#include "policy/bounded_json.h"
#include "policy/logfmt.h"

namespace mtasts::policy {
namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

constexpr std::size_t kQuoteBytes = 64;  // document text quoted in an error message
constexpr std::int64_t kMaxCount = std::numeric_limits<std::int64_t>::max();
constexpr std::size_t kLabelWidth = 14;  // "Organization: "

std::string member_path(const std::string& parent, std::string_view key) {
  return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

std::string item_path(const std::string& parent, std::size_t index) {
  return parent + "[" + std::to_string(index) + "]";
}

std::string in_quotes(std::string_view text) { return "\"" + printable_ascii(text, kQuoteBytes) + "\""; }

// What a value is, for "expected X, got Y": numbers as written (they are
// ASCII), the other types by name.
std::string describe(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::boolean:
      return value.get<bool>() ? "true" : "false";
    case Json::value_t::string:
      return "a string";
    case Json::value_t::array:
      return "an array";
    case Json::value_t::object:
      return "an object";
    default:
      return value.dump();
  }
}

std::variant<Json, ReportReadError> parse_document(std::string_view text) {
  auto parsed = parse_bounded_json(text, kMaxReceivedReportBytes, kMaxReceivedReportDepth);
  if (!parsed) return ReportReadError{"", parsed.error().message};
  return std::move(parsed).value();
}

// `n` ASCII digits at `pos` as a number; nullopt when they are not there.
std::optional<int> digits(std::string_view s, std::size_t pos, std::size_t n) {
  if (pos + n > s.size()) return std::nullopt;
  int value = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (!is_ascii_digit(s[i])) return std::nullopt;
    value = value * 10 + (s[i] - '0');
  }
  return value;
}

// RFC 3339 time-offset: "Z" / ("+" / "-") hh:mm, in seconds east of UTC.
std::optional<int> utc_offset(std::string_view s) {
  if (s == "Z" || s == "z") return 0;
  if (s.size() != 6 || (s[0] != '+' && s[0] != '-') || s[3] != ':') return std::nullopt;
  const auto hours = digits(s, 1, 2);
  const auto minutes = digits(s, 4, 2);
  if (!hours || !minutes || *hours > 23 || *minutes > 59) return std::nullopt;
  const int seconds = *hours * 3600 + *minutes * 60;
  return s[0] == '+' ? seconds : -seconds;
}

// UNIX seconds of an RFC 3339 §5.6 date-time (fraction dropped); nullopt
// when it is not one.
std::optional<std::int64_t> rfc3339_seconds(std::string_view s) {
  const auto year = digits(s, 0, 4), month = digits(s, 5, 2), day = digits(s, 8, 2);
  const auto hour = digits(s, 11, 2), minute = digits(s, 14, 2), second = digits(s, 17, 2);
  if (!year || !month || !day || !hour || !minute || !second) return std::nullopt;
  if (s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':') {
    return std::nullopt;
  }
  if (*hour > 23 || *minute > 59 || *second > 60) return std::nullopt;
  const std::chrono::year_month_day date{std::chrono::year{*year},
                                         std::chrono::month{static_cast<unsigned>(*month)},
                                         std::chrono::day{static_cast<unsigned>(*day)}};
  if (!date.ok()) return std::nullopt;
  std::size_t pos = 19;
  if (pos < s.size() && s[pos] == '.') {
    const std::size_t first = ++pos;
    while (pos < s.size() && is_ascii_digit(s[pos])) ++pos;
    if (pos == first) return std::nullopt;
  }
  const auto offset = utc_offset(s.substr(pos));
  if (!offset) return std::nullopt;
  const std::chrono::sys_seconds instant = std::chrono::sys_days{date} + std::chrono::hours{*hour} +
                                           std::chrono::minutes{*minute} +
                                           std::chrono::seconds{*second - *offset};
  return instant.time_since_epoch().count();
}

bool is_policy_type(std::string_view type) {
  return type == "sts" || type == "tlsa" || type == "no-policy-found";
}

enum class Need { Optional, Required, NonEmpty };

// Typed reads of members of an object that may be missing (nullptr: its
// parent was already refused; the read then yields an empty value).
class Reader {
 public:
  const std::optional<ReportReadError>& error() const { return error_; }

  void fail(std::string path, std::string message) {
    if (!error_) error_ = ReportReadError{std::move(path), std::move(message)};
  }

  void wrong_type(std::string path, std::string_view expected, const Json& value) {
    fail(std::move(path), "expected " + std::string(expected) + ", got " + describe(value));
  }

  const Json* object(const Json* parent, const std::string& parent_path, const char* key) {
    const std::string path = member_path(parent_path, key);
    const Json* value = member(parent, path, key, true);
    if (value != nullptr && !value->is_object()) {
      wrong_type(path, "an object", *value);
      return nullptr;
    }
    return value;
  }

  const Json* array(const Json* parent, const std::string& parent_path, const char* key, bool required) {
    const std::string path = member_path(parent_path, key);
    const Json* value = member(parent, path, key, required);
    if (value != nullptr && !value->is_array()) {
      wrong_type(path, "an array", *value);
      return nullptr;
    }
    return value;
  }

  std::string text(const Json* parent, const std::string& parent_path, const char* key, Need need) {
    const std::string path = member_path(parent_path, key);
    const Json* value = member(parent, path, key, need != Need::Optional);
    if (value == nullptr) return {};
    if (!value->is_string()) {
      wrong_type(path, "a string", *value);
      return {};
    }
    if (need == Need::NonEmpty && value->get_ref<const std::string&>().empty()) fail(path, "empty");
    return value->get<std::string>();
  }

  // A list of strings; with `single_ok`, one string is a list of one.
  std::vector<std::string> texts(const Json* parent, const std::string& parent_path, const char* key,
                                 bool single_ok) {
    const std::string path = member_path(parent_path, key);
    const Json* value = member(parent, path, key, false);
    if (value == nullptr) return {};
    if (single_ok && value->is_string()) return {value->get<std::string>()};
    if (!value->is_array()) {
      wrong_type(path, single_ok ? "an array of strings or a string" : "an array of strings", *value);
      return {};
    }
    std::vector<std::string> out;
    for (std::size_t i = 0; i < value->size(); ++i) {
      const Json& item = (*value)[i];
      if (!item.is_string()) {
        wrong_type(item_path(path, i), "a string", item);
        return {};
      }
      out.push_back(item.get<std::string>());
    }
    return out;
  }

  // A required non-negative integer that fits std::int64_t ("-0" is 0).
  std::int64_t count(const Json* parent, const std::string& parent_path, const char* key) {
    const std::string path = member_path(parent_path, key);
    const Json* value = member(parent, path, key, true);
    if (value == nullptr) return 0;
    if (value->is_number_unsigned() && value->get<std::uint64_t>() <= static_cast<std::uint64_t>(kMaxCount)) {
      return static_cast<std::int64_t>(value->get<std::uint64_t>());
    }
    if (value->is_number_integer() && value->get<std::int64_t>() == 0) return 0;
    wrong_type(path, "a non-negative integer", *value);
    return 0;
  }

 private:
  // `key` of `parent`: nullptr when absent, or null and optional.
  const Json* member(const Json* parent, const std::string& path, const char* key, bool required) {
    if (parent == nullptr) return nullptr;
    const auto it = parent->find(key);
    if (it == parent->end()) {
      if (required) fail(path, "missing");
      return nullptr;
    }
    return it->is_null() && !required ? nullptr : &*it;
  }

  std::optional<ReportReadError> error_;
};

std::optional<std::int64_t> read_date_time(Reader& r, const Json* range, const char* key, std::string& out) {
  out = r.text(range, "date-range", key, Need::Required);
  if (range == nullptr || r.error()) return std::nullopt;
  const auto seconds = rfc3339_seconds(out);
  if (!seconds) r.fail(member_path("date-range", key), "not an RFC 3339 date-time: " + in_quotes(out));
  return seconds;
}

void read_date_range(Reader& r, const Json& doc, ReceivedReport& report) {
  const Json* range = r.object(&doc, "", "date-range");
  const auto start = read_date_time(r, range, "start-datetime", report.start_datetime);
  const auto end = read_date_time(r, range, "end-datetime", report.end_datetime);
  if (start && end && *end < *start) r.fail("date-range.end-datetime", "before start-datetime");
}

ReceivedFailureDetail read_failure(Reader& r, const Json& entry, const std::string& path) {
  ReceivedFailureDetail d;
  if (!entry.is_object()) {
    r.wrong_type(path, "an object", entry);
    return d;
  }
  d.result_type = r.text(&entry, path, "result-type", Need::Required);
  d.sending_mta_ip = r.text(&entry, path, "sending-mta-ip", Need::Optional);
  d.receiving_mx_hostname = r.text(&entry, path, "receiving-mx-hostname", Need::Optional);
  d.receiving_mx_helo = r.text(&entry, path, "receiving-mx-helo", Need::Optional);
  d.receiving_ip = r.text(&entry, path, "receiving-ip", Need::Optional);
  d.failed_session_count = r.count(&entry, path, "failed-session-count");
  d.additional_information = r.text(&entry, path, "additional-information", Need::Optional);
  d.failure_reason_code = r.text(&entry, path, "failure-reason-code", Need::Optional);
  return d;
}

ReceivedPolicy read_policy(Reader& r, const Json& entry, const std::string& path) {
  ReceivedPolicy p;
  if (!entry.is_object()) {
    r.wrong_type(path, "an object", entry);
    return p;
  }
  const std::string policy_path = member_path(path, "policy");
  const Json* policy = r.object(&entry, path, "policy");
  p.policy_type = r.text(policy, policy_path, "policy-type", Need::Required);
  if (policy != nullptr && !is_policy_type(p.policy_type)) {
    r.fail(member_path(policy_path, "policy-type"),
           "not sts, tlsa or no-policy-found: " + in_quotes(p.policy_type));
  }
  p.policy_string = r.texts(policy, policy_path, "policy-string", false);
  p.policy_domain = r.text(policy, policy_path, "policy-domain", Need::NonEmpty);
  p.mx_host = r.texts(policy, policy_path, "mx-host", true);

  const std::string summary_path = member_path(path, "summary");
  const Json* summary = r.object(&entry, path, "summary");
  p.successful = r.count(summary, summary_path, "total-successful-session-count");
  p.failed = r.count(summary, summary_path, "total-failure-session-count");

  const std::string details_path = member_path(path, "failure-details");
  if (const Json* details = r.array(&entry, path, "failure-details", false)) {
    for (std::size_t i = 0; i < details->size() && !r.error(); ++i) {
      p.failure_details.push_back(read_failure(r, (*details)[i], item_path(details_path, i)));
    }
  }
  return p;
}

std::int64_t add_capped(std::int64_t total, std::int64_t more) {
  return more > kMaxCount - total ? kMaxCount : total + more;
}

// failed / (successful + failed) in %, two decimals, without the C locale.
std::string failure_rate(std::int64_t successful, std::int64_t failed) {
  const long double all = static_cast<long double>(successful) + static_cast<long double>(failed);
  if (all == 0) return "-";
  const long long hundredths = std::llround(static_cast<long double>(failed) * 10000 / all);
  if (hundredths == 0 && failed > 0) return "<0.01%";
  if (hundredths == 10000 && successful > 0) return ">99.99%";
  const long long cents = hundredths % 100;
  return std::to_string(hundredths / 100) + (cents < 10 ? ".0" : ".") + std::to_string(cents) + "%";
}

std::string shown(std::string_view text) { return text.empty() ? "-" : printable_ascii(text); }

void end_line(std::string& out, std::string line) {
  while (!line.empty() && line.back() == ' ') line.pop_back();
  out += line;
  out += '\n';
}

void put_field(std::string& out, std::string_view indent, std::string_view label, const std::string& value) {
  std::string line(indent);
  line += label;
  line.append(kLabelWidth - std::min(kLabelWidth, label.size()), ' ');
  end_line(out, line + value);
}

// The failure details as a table: every column as wide as its widest cell,
// COUNT right-aligned.
void put_failure_table(std::string& out, const std::vector<ReceivedFailureDetail>& details) {
  constexpr std::size_t kColumns = 6;
  constexpr std::size_t kCountColumn = 4;
  using Row = std::array<std::string, kColumns>;
  std::vector<Row> rows{{"RESULT-TYPE", "RECEIVING-MX-HOSTNAME", "RECEIVING-IP", "SENDING-MTA-IP", "COUNT",
                         "FAILURE-REASON-CODE"}};
  for (const auto& d : details) {
    rows.push_back({shown(d.result_type), shown(d.receiving_mx_hostname), shown(d.receiving_ip),
                    shown(d.sending_mta_ip), std::to_string(d.failed_session_count),
                    shown(d.failure_reason_code)});
  }
  std::array<std::size_t, kColumns> width{};
  for (const Row& row : rows) {
    for (std::size_t i = 0; i < kColumns; ++i) width[i] = std::max(width[i], row[i].size());
  }
  for (const Row& row : rows) {
    std::string line = "    ";
    for (std::size_t i = 0; i < kColumns; ++i) {
      const std::size_t pad = width[i] - row[i].size();
      if (i == kCountColumn) line.append(pad, ' ');
      line += row[i];
      if (i != kCountColumn) line.append(pad, ' ');
      line += "  ";
    }
    end_line(out, line);
  }
}

void put_policy(std::string& out, std::size_t number, const ReceivedPolicy& p) {
  end_line(out, "");
  end_line(out, "Policy " + std::to_string(number) + ": " + shown(p.policy_domain) + " (" +
                    shown(p.policy_type) + ")");
  std::string hosts;
  for (const auto& host : p.mx_host) hosts += (hosts.empty() ? "" : ", ") + shown(host);
  put_field(out, "  ", "MX hosts:", hosts.empty() ? "-" : hosts);
  put_field(out, "  ", "Successful:", std::to_string(p.successful));
  put_field(out, "  ", "Failed:", std::to_string(p.failed));
  put_field(out, "  ", "Failure rate:", failure_rate(p.successful, p.failed));
  if (p.failure_details.empty()) {
    end_line(out, "  Failure details: none");
    return;
  }
  end_line(out, "  Failure details:");
  put_failure_table(out, p.failure_details);
}

struct Totals {
  std::int64_t successful = 0, failed = 0;
};

Totals totals_of(const ReceivedReport& report) {
  Totals t;
  for (const auto& p : report.policies) {
    t.successful = add_capped(t.successful, p.successful);
    t.failed = add_capped(t.failed, p.failed);
  }
  return t;
}

OrderedJson failure_json(const ReceivedFailureDetail& d) {
  OrderedJson j;
  j["result-type"] = d.result_type;
  j["sending-mta-ip"] = d.sending_mta_ip;
  j["receiving-mx-hostname"] = d.receiving_mx_hostname;
  j["receiving-mx-helo"] = d.receiving_mx_helo;
  j["receiving-ip"] = d.receiving_ip;
  j["failed-session-count"] = d.failed_session_count;
  j["additional-information"] = d.additional_information;
  j["failure-reason-code"] = d.failure_reason_code;
  return j;
}

OrderedJson policy_json(const ReceivedPolicy& p) {
  OrderedJson j;
  j["policy-domain"] = p.policy_domain;
  j["policy-type"] = p.policy_type;
  j["mx-host"] = OrderedJson::array();
  for (const auto& host : p.mx_host) j["mx-host"].push_back(host);
  j["successful"] = p.successful;
  j["failed"] = p.failed;
  j["failure-details"] = OrderedJson::array();
  for (const auto& d : p.failure_details) j["failure-details"].push_back(failure_json(d));
  return j;
}

}  // namespace

std::variant<ReceivedReport, ReportReadError> read_received_report(std::string_view json_text) {
  auto parsed = parse_document(json_text);
  if (const auto* error = std::get_if<ReportReadError>(&parsed)) return *error;
  const Json& doc = std::get<Json>(parsed);
  if (!doc.is_object()) return ReportReadError{"", "expected an object, got " + describe(doc)};

  Reader r;
  ReceivedReport report;
  report.organization_name = r.text(&doc, "", "organization-name", Need::Required);
  read_date_range(r, doc, report);
  report.contact_info = r.text(&doc, "", "contact-info", Need::Required);
  report.report_id = r.text(&doc, "", "report-id", Need::NonEmpty);
  if (const Json* policies = r.array(&doc, "", "policies", true)) {
    for (std::size_t i = 0; i < policies->size() && !r.error(); ++i) {
      report.policies.push_back(read_policy(r, (*policies)[i], item_path("policies", i)));
    }
  }
  if (r.error()) return *r.error();
  return report;
}

std::string received_report_text(const ReceivedReport& report) {
  const Totals totals = totals_of(report);
  std::string out;
  put_field(out, "", "Organization:", shown(report.organization_name));
  put_field(out, "", "Report-ID:", shown(report.report_id));
  put_field(out, "", "Date range:", shown(report.start_datetime) + " .. " + shown(report.end_datetime));
  put_field(out, "", "Contact:", shown(report.contact_info));
  put_field(out, "", "Policies:", std::to_string(report.policies.size()));
  put_field(out, "", "Sessions:",
            std::to_string(totals.successful) + " successful, " + std::to_string(totals.failed) +
                " failed (" + failure_rate(totals.successful, totals.failed) + ")");
  for (std::size_t i = 0; i < report.policies.size(); ++i) put_policy(out, i + 1, report.policies[i]);
  return out;
}

std::string received_report_json(const ReceivedReport& report) {
  const Totals totals = totals_of(report);
  OrderedJson j;
  j["organization-name"] = report.organization_name;
  j["report-id"] = report.report_id;
  j["date-range"]["start-datetime"] = report.start_datetime;
  j["date-range"]["end-datetime"] = report.end_datetime;
  j["policies"] = OrderedJson::array();
  for (const auto& p : report.policies) j["policies"].push_back(policy_json(p));
  j["total-successful"] = totals.successful;
  j["total-failed"] = totals.failed;
  return j.dump(-1, ' ', false, OrderedJson::error_handler_t::replace);
}

}  // namespace mtasts::policy
