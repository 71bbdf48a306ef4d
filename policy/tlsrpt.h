// RFC 8460 result types (§4.3) with their report strings. Failure reason
// codes are free-form strings (§4.4 "failure-reason-code"); ours are stable
// kebab-case codes such as "http-404" or "dnssec-bogus".
#pragma once

#include <optional>
#include <string_view>

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

}  // namespace mtasts::policy
