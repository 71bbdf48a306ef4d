// Reason codes that one module produces and another acts on. They land in
// logs, JSON and TLSRPT failure-reason-code as written here; a code that is
// only ever produced (never compared) may stay a literal where it is made.
// Whether a failure is temporary is carried beside its reason from where it
// is found (FetchError::temporary, FetchFailure::temporary,
// Resolution::temporary), never derived from the reason's spelling.
#pragma once

#include <string_view>

namespace mtasts::policy::reason {

// The caller's decision deadline passed before the facts were complete.
inline constexpr std::string_view kDeadline = "deadline";
// A discovery or probe was not started: the configured maximum was running.
inline constexpr std::string_view kOverloaded = "overloaded";
// The engine is stopping: a queued job answered without doing its work.
inline constexpr std::string_view kStopping = "stopping";
// An exception inside a background job (a bug or resource exhaustion).
inline constexpr std::string_view kInternalError = "internal-error";
// A TLSA lookup of a host in a signed zone failed (RFC 7672 §2.2).
inline constexpr std::string_view kTlsaLookupFailed = "tlsa-lookup-failed";

// DNS outcomes of the `_mta-sts` TXT and policy-host address lookups.
inline constexpr std::string_view kDnssecBogus = "dnssec-bogus";
inline constexpr std::string_view kDnsServfail = "dns-servfail";
inline constexpr std::string_view kDnsTimeout = "dns-timeout";
inline constexpr std::string_view kDnsNoAddress = "dns-no-address";
inline constexpr std::string_view kTxtMissing = "txt-missing";

// HTTPS fetch outcomes that are not an HTTP status (http-<code>).
inline constexpr std::string_view kTlsHandshake = "tls-handshake";     // reset, not TLS, no common protocol
inline constexpr std::string_view kLocalTlsSetup = "local-tls-setup";  // our CA file or TLS library
inline constexpr std::string_view kPolicySyntax = "policy-syntax";

}  // namespace mtasts::policy::reason
