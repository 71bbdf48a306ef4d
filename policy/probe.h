// One STARTTLS probe of one MX host at one address, and its classified
// result: RFC 8461 §4.2 (certificate checks), §4.3 (STARTTLS required),
// RFC 7672 §2-3 (DANE for hosts with DNSSEC-secure TLSA records), RFC 8460
// §4.3 (the result types recorded). The prober itself lives in policy/net
// (tls_prober.h); the engine and decide() see only these value types.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/tlsrpt.h"

namespace mtasts::policy {

// One TLSA record (RFC 6698 §2.1), from a DNSSEC-secure answer.
struct TlsaRecord {
  std::uint8_t usage = 0;
  std::uint8_t selector = 0;
  std::uint8_t matching_type = 0;
  std::vector<std::uint8_t> data;
};

struct ProbeRequest {
  std::string host;     // MX host name (A-label, no trailing dot): SNI and name checks
  std::string address;  // IPv4 or IPv6 text to connect to
  std::uint16_t port = 25;
  bool implicit_tls = false;  // port 465: TLS from the first byte, no STARTTLS
  std::string ehlo_name = "localhost";
  // DANE: when set (the host's TLSA RRset validated as secure), the host is
  // verified by these records instead of WebPKI (RFC 7672 §2.2).
  std::optional<std::vector<TlsaRecord>> tlsa;
  std::chrono::milliseconds step_timeout{10000};  // per connect / read / handshake step
};

enum class ProbeOutcome {
  Verified,      // STARTTLS, TLS >= 1.2, chain and §4.2 name checks passed (WebPKI)
  DaneVerified,  // STARTTLS, TLS >= 1.2, a TLSA record matched
  TlsFailure,    // a TLSRPT failure: see result_type / reason
  Unreachable,   // refused, timed out, closed, no greeting: not a TLSRPT failure
};

// "verified" | "dane-verified" | "tls-failure" | "unreachable" (logs, metrics).
std::string_view to_string(ProbeOutcome outcome);

struct ProbeResult {
  ProbeOutcome outcome = ProbeOutcome::Unreachable;
  // For TlsFailure: StartTlsNotSupported, CertificateExpired,
  // CertificateNotTrusted, CertificateHostMismatch, ValidationFailure,
  // TlsaInvalid; never set otherwise.
  std::optional<ResultType> result_type;
  std::string reason;  // stable code: "starttls-not-offered", "starttls-454", "tls-version",
                       // "cert-expired", "cert-untrusted", "cert-host-mismatch",
                       // "tlsa-mismatch", "handshake", "connect-refused", "timeout", ...
  std::string detail;  // human text (server reply, OpenSSL error)
  // A TlsFailure the server itself calls temporary (STARTTLS answered 454,
  // RFC 3207 §4): recorded as usual, but never grounds for a permanent reject.
  bool temporary = false;
  std::string tls_version;     // "TLSv1.3" when a handshake completed
  std::string address;         // the address probed
  std::string source_address;  // our local address of the connection (getsockname); "" when
                               // no connection was made (RFC 8460 §4.4 "sending-mta-ip")
};

}  // namespace mtasts::policy
