// STARTTLS probe of one MX host at one address, implementing
// policy::TlsProber:
//   RFC 8461 §4.2  the certificate must chain to a trusted root, be current,
//                  and name the MX host in a subjectAltName dNSName (no CN,
//                  wildcard only as the whole leftmost label);
//   RFC 8461 §4.3  STARTTLS is required, TLS 1.2 at least;
//   RFC 3207       EHLO, "STARTTLS" keyword, 220 then the TLS handshake; the
//                  plaintext read before the handshake is discarded (§6);
//   RFC 7672 §2-3  DANE for hosts with DNSSEC-secure TLSA records: only
//                  DANE-TA(2) and DANE-EE(3) records are usable (§3.1.3),
//                  DANE-EE matches skip name and expiry checks (§3.1.1);
//   RFC 8460 §4.3  the result types a failure is recorded as.
//
// Classification (ProbeResult.outcome / result_type / reason):
//   connect refused, reset, EOF, step timeout  -> Unreachable "connect-refused",
//       "connect-error", "closed", "timeout" (at any step, handshake included)
//   greeting not 2xx                           -> Unreachable "greeting-<code>"
//   reply that is not SMTP (see smtp_reply.h)  -> Unreachable "protocol"
//   EHLO answered 4xx                          -> Unreachable "ehlo-<code>"
//   EHLO answered 5xx (no ESMTP, so no TLS)    -> StartTlsNotSupported "ehlo-<code>"
//   no STARTTLS keyword                        -> StartTlsNotSupported "starttls-not-offered"
//   STARTTLS answered anything but 220         -> StartTlsNotSupported "starttls-<code>"
//   peer offers only TLS < 1.2                 -> ValidationFailure "tls-version"
//   other handshake failure                    -> ValidationFailure "handshake"
//   without TLSA: expired / not yet valid      -> CertificateExpired "cert-expired"
//       no trusted chain, self-signed          -> CertificateNotTrusted "cert-untrusted"
//       no SAN dNSName matches the host        -> CertificateHostMismatch "cert-host-mismatch"
//       any other certificate error            -> ValidationFailure "cert-invalid"
//       all passed                             -> Verified
//   with TLSA: no usable record                -> TlsaInvalid "tlsa-unusable" (no connection)
//       verification failed                    -> TlsaInvalid "tlsa-mismatch"
//       a record matched                       -> DaneVerified
//   malformed request (host, address, EHLO)    -> Unreachable "invalid-request"
// On Verified / DaneVerified tls_version holds the protocol ("TLSv1.3").
//
// Every connect, read, write and handshake step is non-blocking and bounded
// by the request's step_timeout; QUIT is sent when the dialogue allows it,
// waiting at most one second for its reply. One debug log line per probe:
//   probe host=H address=A outcome=O reason=R tls=V elapsed_ms=N
//
// Thread-safe: one SSL_CTX built by the constructor and shared read-only;
// one SSL object per probe. probe() never throws. SIGPIPE is blocked on the
// probing thread while it writes, and a SIGPIPE raised by the probe is
// discarded.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "policy/sources.h"

namespace mtasts::policy::net {

struct SmtpTlsProberConfig {
  std::string ca_file;  // PEM trust anchors; empty: the system trust store
  // When non-empty, the EHLO name for every probe, overriding
  // ProbeRequest::ehlo_name (the daemon configures its host name once).
  std::string ehlo_name;
};

class SmtpTlsProber final : public TlsProber {
 public:
  // Throws std::runtime_error with one clear sentence when the TLS context
  // cannot be built (unreadable CA file, invalid EHLO name): start-up only.
  explicit SmtpTlsProber(const SmtpTlsProberConfig& config);
  ~SmtpTlsProber() override;
  SmtpTlsProber(const SmtpTlsProber&) = delete;
  SmtpTlsProber& operator=(const SmtpTlsProber&) = delete;

  ProbeResult probe(const ProbeRequest& request) override;

 private:
  ProbeResult run(const ProbeRequest& request) const;

  struct Context;  // the SSL_CTX, kept out of this header
  std::unique_ptr<Context> context_;
  std::string ehlo_name_;
};

}  // namespace mtasts::policy::net
