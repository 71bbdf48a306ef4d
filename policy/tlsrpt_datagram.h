// libtlsrpt's datagrams, protocol version 1: how Postfix >= 3.10 (built
// with sys4's libtlsrpt) hands each delivery's TLS result to a collector
// (tlsrpt-collectd) over a unix datagram socket, one JSON object per
// datagram (../shared/REFERENCE.md "libtlsrpt datagrams"):
//   {"dpv":"1","d":RCPT-DOMAIN,"pr":TLSRPT-RECORD,"policies":[
//     {"policy-type":N,"policy-domain":D,"policy-string":[..],"mx-host":[..],
//      "failure-details":[{"c":CODE,"s":..,"n":..,"h":..,"r":..,"a":..,"f":..}],
//      "t":DETAILS,"f":0|1}]}
// We speak it both ways (README "TLSRPT datagrams"): each of our TLSRPT
// sessions (policy/tlsrpt.h) can go out as one datagram to a site's
// collector, and datagrams from Postfix land in our own daily counts, so
// that one RFC 8460 report per domain covers both.
//
// Writing: plain compact JSON, keys in the order above, optional fields
// left out when empty (libtlsrpt leaves out null fields and empty arrays).
// Reading (strict on what steers counts, lenient on layout):
// - any JSON whitespace ("libtlsrpt writes `": "` after some keys);
//   unknown keys are ignored (later minor versions may add some);
// - "dpv" absent (libtlsrpt before it had one) or the string "1"; any other
//   version is refused (its fields may mean something else);
// - "d" a domain name; "pr" a string (the record as Postfix found it);
//   "policies" a non-empty array of at most kMaxDatagramPolicies;
// - "policy-type" 1, 2 or 9; "policy-domain" a domain name, absent (or null)
//   meaning "d"; "policy-string" and "mx-host" arrays of strings;
// - "failure-details" at most kMaxDatagramFailures objects; "c" one of the
//   RFC 8460 §4.3 codes 201-205, 301-306 (numeric, as libtlsrpt's
//   tlsrpt_failure_t); the other keys strings; "t" must equal the number
//   of failure details (the reference collector checks the same); "f" 0 or 1.
// - Errors name the path of the first bad field ("policies[0].failure-details[1].c").
// Pure: no I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/result.h"
#include "policy/tlsrpt.h"

namespace mtasts::policy {

inline constexpr std::size_t kMaxDatagramBytes = std::size_t{16} * 1024 * 1024;  // libtlsrpt's collectors
inline constexpr std::size_t kMaxDatagramPolicies = 16;
inline constexpr std::size_t kMaxDatagramFailures = 1000;

// libtlsrpt's tlsrpt_policy_type_t.
enum class DatagramPolicyType { Tlsa = 1, Sts = 2, NoPolicyFound = 9 };

struct DatagramFailure {
  ResultType code = ResultType::ValidationFailure;  // "c", as its §4.3 number
  std::string sending_mta_ip;                       // "s"
  std::string receiving_mx_hostname;                // "n"
  std::string receiving_mx_helo;                    // "h"
  std::string receiving_ip;                         // "r"
  std::string additional_information;               // "a"
  std::string failure_reason_code;                  // "f"

  bool operator==(const DatagramFailure&) const = default;
};

struct DatagramPolicy {
  DatagramPolicyType type = DatagramPolicyType::Sts;
  std::string domain;                 // "policy-domain"
  std::vector<std::string> strings;   // "policy-string"
  std::vector<std::string> mx_hosts;  // "mx-host"
  std::vector<DatagramFailure> failures;
  bool delivery_failed = false;  // "f"

  bool operator==(const DatagramPolicy&) const = default;
};

struct TlsrptDatagram {
  std::string domain;  // "d": the recipient domain
  std::string record;  // "pr": its _smtp._tls record
  std::vector<DatagramPolicy> policies;

  bool operator==(const TlsrptDatagram&) const = default;
};

struct DatagramError {
  std::string path;    // "" for the whole datagram
  std::string detail;  // printable ASCII
};

// libtlsrpt's numbers for the §4.3 result types (201 starttls-not-supported ... 306 dane-required).
int failure_code(ResultType type);
std::optional<ResultType> result_type_from_failure_code(std::int64_t code);

// The datagram's bytes: compact JSON, no trailing newline.
std::string encode_datagram(const TlsrptDatagram& datagram);

Result<TlsrptDatagram, DatagramError> decode_datagram(std::string_view bytes);

// One of our sessions as the datagram a libtlsrpt client would send for it:
// "d" its policy domain, "pr" `record`, one policy; a failure carries one
// failure detail (t 1, f 1), a success none (t 0, f 0).
TlsrptDatagram datagram_from_session(const TlsrptSession& session, std::string_view record);

// The sessions a datagram stands for, at `at` (README "TLSRPT datagrams"):
// per policy, each failure detail is one failed session (one MX that could
// not be reached securely, RFC 8460 §4.1), a delivery that did not fail
// adds one successful session, and a failed delivery without any detail
// adds one failed session of result type validation-failure with reason
// "no-failure-detail". The policy domain is "policy-domain", else "d",
// lower-cased; policy strings are joined by "\n", MX hosts by " " (the form
// of our own sessions).
std::vector<TlsrptSession> sessions_from_datagram(const TlsrptDatagram& datagram, std::int64_t at);

}  // namespace mtasts::policy
