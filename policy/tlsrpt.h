// RFC 8460 result types (§4.3) with their report strings. Failure reason
// codes are free-form strings (§4.4 "failure-reason-code"); ours are stable
// kebab-case codes such as "http-404" or "dnssec-bogus".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mtasts::policy {

enum class ResultType {
  // §4.3.1 negotiation failures
  StartTlsNotSupported,
  CertificateHostMismatch,
  CertificateExpired,
  CertificateNotTrusted,
  ValidationFailure,
  // §4.3.2 policy failures: DANE
  TlsaInvalid,
  DnssecInvalid,
  DaneRequired,
  // §4.3.2 policy failures: MTA-STS
  StsPolicyFetchError,
  StsPolicyInvalid,
  StsWebpkiInvalid,
};

// "starttls-not-supported", ..., "sts-webpki-invalid": the exact RFC strings.
std::string_view to_string(ResultType type);

// The inverse of to_string; nullopt for anything else (strict, case-sensitive).
std::optional<ResultType> result_type_from_string(std::string_view text);

// One TLS session attempt worth reporting (RFC 8460 §4.1: "a session" is one
// attempt to establish TLS with a receiving MTA; for us one STARTTLS probe
// that actually ran, or one policy fetch that actually failed). Fields map to
// the report schema of §4.4: policy-type, policy-string, policy-domain,
// mx-host, and for failures the failure-details entry.
struct TlsrptSession {
  std::int64_t at = 0;        // unix seconds (the report day is its UTC date)
  std::string policy_type;    // "sts" | "tlsa" | "no-policy-found"
  std::string policy_domain;  // the Policy Domain (recipient or smart host domain)
  std::string policy_string;  // sts: the raw policy text; tlsa: "3 1 1 HEX" per record, one per line
  std::string mx_patterns;    // sts: the policy's mx patterns space-joined; tlsa: the MX host
  bool success = false;       // counts toward total-successful-session-count
  std::optional<ResultType> result_type;  // failures only (§4.3)
  std::string failure_reason_code;        // failures only: our stable reason code
  std::string sending_mta_ip;             // source address of the probe ("" when unknown)
  std::string receiving_mx_hostname;      // "" for policy fetch failures
  std::string receiving_ip;
  std::string additional_information;  // §4.4: a URI, when there is one
};

// Where sessions go. Implementations must be thread-safe and must never block
// on I/O: record() is called from probe and discovery threads.
class TlsrptSink {
 public:
  virtual ~TlsrptSink() = default;
  virtual void record(const TlsrptSession& session) = 0;
};

// A session's policy_string as the report's "policy-string" lines: LF- or
// CRLF-separated, trailing whitespace cut, empty lines dropped (RFC 8460
// §4.4: the policy's lines; RFC 8461 §3.2 allows either line ending).
std::vector<std::string> policy_string_lines(std::string_view text);
// A session's mx_patterns (space-joined) as the report's "mx-host" list.
std::vector<std::string> mx_pattern_words(std::string_view text);

// "YYYY-MM-DD" of `unix_seconds` in UTC (the report day).
std::string utc_day(std::int64_t unix_seconds);

// The inverse: UNIX seconds of DAY 00:00:00Z for a strict "YYYY-MM-DD" (a
// real calendar date); nullopt otherwise.
std::optional<std::int64_t> utc_day_start(std::string_view day);

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

}  // namespace mtasts::policy
