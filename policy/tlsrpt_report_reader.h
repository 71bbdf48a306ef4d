// Reading a TLS report someone sent us: the RFC 8460 §4.4 JSON document a
// Sending MTA's operator (Google, Microsoft, ...) mails or posts to the rua
// of our _smtp._tls record, for a domain owner who wants to know what went
// wrong. The caller un-gzips it first (policy/gzip.h, §5.2). Pure: no I/O.
// The writing side is policy/tlsrpt_report.h.
//
// Readings (strict where the schema is clear, lenient where real senders
// differ from the RFC and the meaning is still plain):
// - The document is RFC 8259 JSON, UTF-8 (invalid UTF-8 is an error), at
//   most kMaxReceivedReportBytes long and at most kMaxReceivedReportDepth
//   arrays/objects deep (parsing stops at the first deeper one). A UTF-8 BOM
//   is skipped. Duplicate keys: the last one counts (I-JSON forbids them; we
//   do not refuse a report for it). Unknown keys are ignored everywhere
//   (forward compatibility, and senders add their own).
// - Required at the top (§4.4): "organization-name", "contact-info",
//   "report-id" (strings; report-id not empty), "date-range" (an object with
//   "start-datetime" and "end-datetime"), "policies".
// - Dates: RFC 3339 §5.6 date-time: YYYY-MM-DD "T" hh:mm:ss [.fraction]
//   ("Z" / ("+" / "-") hh:mm); "t" and "z" accepted (§5.6 NOTE), a space for
//   "T" is not; the calendar day must exist, hour <= 23, minute <= 59,
//   second <= 60 (leap second). end-datetime before start-datetime (compared
//   as instants, to the second) is an error. The length of the range is not
//   checked: §4.2's one UTC day is a SHOULD. Both are kept as written.
// - "policies": an array; empty is accepted (the schema allows it; the
//   summary then says so). Each entry is an object with "policy" and
//   "summary" objects and an optional "failure-details".
// - "policy-type": exactly "sts", "tlsa" or "no-policy-found" (§4.4).
//   "policy-domain": a non-empty string, kept as written (not normalised).
//   "policy-string": optional array of strings.
//   "mx-host": optional array of strings, or a single string, read as a
//   one-element list: the RFC's own Appendix B example used a string before
//   erratum 6241 made it an array, and reports were sent that way.
// - Counts ("total-successful-session-count", "total-failure-session-count",
//   "failed-session-count"): required, non-negative JSON integers up to
//   2^63 - 1. A fraction (even 1.0), a string, a boolean or a negative
//   number is an error. The failure details need not add up to the summary
//   (§4.4 does not say they must; senders may sample).
// - "failure-details": optional array of objects: "result-type" is a required
//   string kept as written, unknown ones included (the IANA registry of §6.6
//   grows, and an unknown type is still worth showing); "failed-session-count" is
//   required; "sending-mta-ip", "receiving-mx-hostname", "receiving-mx-helo",
//   "receiving-ip", "additional-information" and "failure-reason-code" are
//   optional strings, not validated further (they are only shown).
// - null for an optional key means absent; for a required key it is a wrong type.
// - Errors: the first one in reading order (the schema's order above, array
//   entries in order), with its path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace mtasts::policy {

inline constexpr std::size_t kMaxReceivedReportBytes = std::size_t{64} * 1024 * 1024;
inline constexpr int kMaxReceivedReportDepth = 64;

// One "failure-details" entry (§4.4); absent optional strings are "".
struct ReceivedFailureDetail {
  std::string result_type, sending_mta_ip, receiving_mx_hostname, receiving_mx_helo, receiving_ip,
      additional_information, failure_reason_code;
  std::int64_t failed_session_count = 0;

  bool operator==(const ReceivedFailureDetail&) const = default;
};

// One "policies" entry: "policy", "summary" and "failure-details" flattened.
struct ReceivedPolicy {
  std::string policy_type;  // "sts", "tlsa" or "no-policy-found"
  std::vector<std::string> policy_string;
  std::string policy_domain;
  std::vector<std::string> mx_host;
  std::int64_t successful = 0, failed = 0;  // the summary's two counts
  std::vector<ReceivedFailureDetail> failure_details;

  bool operator==(const ReceivedPolicy&) const = default;
};

struct ReceivedReport {
  std::string organization_name, contact_info, report_id, start_datetime, end_datetime;
  std::vector<ReceivedPolicy> policies;

  bool operator==(const ReceivedReport&) const = default;
};

// Where and why a document was refused. `path` names the value in dotted
// form with indices, e.g. "policies[1].summary.total-failure-session-count"
// or "date-range.start-datetime"; "" means the whole document (too large,
// too deep, not JSON, not an object). `message` is printable ASCII; any
// text quoted from the document is cut and its other bytes shown as '?'.
struct ReportReadError {
  std::string path;
  std::string message;

  bool operator==(const ReportReadError&) const = default;
};

// The report in `json_text` (already decompressed), read by the Readings
// above. Never throws on any input (only std::bad_alloc when memory runs
// out). Pure, thread-safe.
std::variant<ReceivedReport, ReportReadError> read_received_report(std::string_view json_text);

// The human summary, for a terminal: the header (organization, report-id,
// date range, contact, number of policies, all sessions), then per policy
// its domain and type, MX hosts, successful and failed sessions, the failure
// rate (failed / all, in % with two decimals; "-" with no sessions) and a
// table of the failure details (result-type, receiving-mx-hostname,
// receiving-ip, sending-mta-ip, count, failure-reason-code; "-" for empty).
// Text from the report is shown through printable_ascii() (policy/logfmt.h),
// so a report cannot move the cursor or recolour the terminal. Columns are
// aligned, no line ends in a space, every line ends in "\n". Deterministic.
// Pure, thread-safe.
std::string received_report_text(const ReceivedReport& report);

// The same for `--json`, compact UTF-8, keys in this order:
//   {"organization-name","report-id","date-range":{"start-datetime","end-datetime"},
//    "policies":[{"policy-domain","policy-type","mx-host":[...],"successful","failed",
//                 "failure-details":[{"result-type","sending-mta-ip","receiving-mx-hostname",
//                                     "receiving-mx-helo","receiving-ip","failed-session-count",
//                                     "additional-information","failure-reason-code"}]}],
//    "total-successful","total-failed"}
// Every key is always present ("" for an absent string, [] for no list) so
// scripts need no existence checks. Totals stop at 2^63 - 1. Invalid UTF-8
// (only possible in a report not built by read_received_report) becomes
// U+FFFD. Pure, thread-safe.
std::string received_report_json(const ReceivedReport& report);

}  // namespace mtasts::policy
