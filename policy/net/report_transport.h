// Delivery of one RFC 8460 report to one destination of the domain's rua
// list: §5.4 HTTPS POST and §5.3 mail submission through the local MTA's
// sendmail command. Each call makes one attempt and classifies its outcome
// for the caller's retry state machine (§5.5: retry for up to 24 hours,
// with back-off); nothing here retries, queues or logs at info.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mtasts::policy::net {

class SharedTrustStore;  // policy/net/trust_anchors.h

enum class DeliveryOutcome {
  Delivered,  // the destination took the report
  Temporary,  // try again later (network, 5xx, timeout, EX_TEMPFAIL, ...)
  Permanent,  // this report will never be taken here (4xx, bad address, ...)
};

struct DeliveryResult {
  DeliveryOutcome outcome;
  // One printable-ASCII line for logs ("https 503", "sendmail exit 75:
  // ..."); never the report, never a header of the server beyond the status.
  std::string detail;
};

// Maximum response body read from a report receiver; the rest is not read.
inline constexpr std::size_t kMaxReportResponseBytes = std::size_t{64} * 1024;

struct HttpsPosterConfig {
  std::string ca_file;  // empty: the system trust store
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds total_timeout{60000};  // the whole exchange
  std::string user_agent = "mta-sts-milter";
  // A receiver's https: URI names a host the receiver chose; its address may
  // be one of ours (loopback, RFC 1918, link-local: a server-side request
  // forgery into the reporter's network). Off: such addresses are refused
  // before connecting (Permanent). Tests and private deployments set it.
  bool allow_private_addresses = false;
};

// False for addresses that are not on the public Internet: unspecified,
// loopback, RFC 1918, CGNAT (100.64/10), link-local, multicast, reserved and
// documentation ranges, IPv6 ULA and link-local, and IPv4-mapped forms of
// those. `text` is an IPv4 or IPv6 address; anything else is false.
bool is_public_address(std::string_view text);

// RFC 8460 §5.4: POSTs the gzipped report with "Content-Type:
// application/tlsrpt+gzip" to an https: URI. HTTPS only (libcurl may speak
// nothing else), certificate and host name verified against the anchors
// read once at construction (one shared X509_STORE, as CurlFetcher), no
// proxy (the *_proxy variables are ignored), no "Expect: 100-continue".
// Outcomes:
//   2xx                                   Delivered
//   408, 425, 429, 5xx                    Temporary
//   3xx                                   Permanent: never followed. §5.4
//       asks for a "successful" answer; the same POST to the same URI would
//       be redirected again for the whole retry window, so the report is
//       given up and the next day's report tries afresh.
//   other 4xx                             Permanent
//   other status (1xx final, >= 600)      Temporary
//   DNS, connect, TLS handshake or certificate failure, timeout, reset:
//                                         Temporary ("certificate" is in the
//                                         detail when verification failed)
//   not an https: URI, malformed URI      Permanent
//   a non-public address (see HttpsPosterConfig), unless allowed: Permanent
// The response body is read up to kMaxReportResponseBytes, then the
// transfer is cut; the status decides. Thread-safe: the configuration and
// the trust store are read-only after construction; each post uses its own
// curl handle. post() never throws.
class HttpsReportPoster {
 public:
  // Throws std::runtime_error when the CA file (or the system store) cannot
  // be read: a bad anchor file would otherwise fail every post as if the
  // receivers' certificates were wrong.
  explicit HttpsReportPoster(HttpsPosterConfig config);
  ~HttpsReportPoster();
  HttpsReportPoster(const HttpsReportPoster&) = delete;
  HttpsReportPoster& operator=(const HttpsReportPoster&) = delete;

  DeliveryResult post(const std::string& https_uri, std::string_view gz_body) const;

 private:
  HttpsPosterConfig config_;
  std::unique_ptr<SharedTrustStore> trust_;
};

struct MailSubmitConfig {
  std::vector<std::string> argv_prefix{"/usr/sbin/sendmail", "-oi"};  // [0]: absolute path, no PATH search
  std::chrono::milliseconds timeout{60000};                           // the whole submission
};

// RFC 8460 §5.3: hands one complete message (headers, body, CRLF or LF as
// the MTA expects) to the local MTA:
//   argv = argv_prefix + {"-f", envelope_from, "--", recipient}
// The recipient is given explicitly, never "-t", so no header of the message
// can add one. No shell: posix_spawn of argv_prefix[0] with
//   - environment PATH=/usr/sbin:/usr/bin:/sbin:/bin and nothing else,
//   - an empty signal mask and default signal dispositions (the daemon
//     blocks SIGTERM & co. in every thread; a child must not inherit that),
//   - its own process group, which a timeout kills whole (SIGKILL),
//   - no descriptor of ours beyond stdin, stdout and stderr,
//   - stdin one end of a socketpair that we write with MSG_NOSIGNAL: a child
//     that exits without reading gives EPIPE, never SIGPIPE, and no signal
//     mask or disposition of the calling thread is touched,
//   - stdout and stderr one pipe, the first 512 bytes kept for the detail.
// Outcomes (sysexits.h):
//   exit 0, whole message read         Delivered
//   exit 0, message not read to its end  Temporary (it was cut: a real
//                                      sendmail reads to EOF before it queues)
//   exit 64, 65, 67, 68 (EX_USAGE, EX_DATAERR, EX_NOUSER, EX_NOHOST):
//                                      Permanent (this message or address)
//   any other exit (EX_TEMPFAIL, and the local faults EX_OSERR, EX_IOERR,
//   EX_CANTCREAT, EX_NOPERM, EX_CONFIG, ...), death by a signal: Temporary
//   timeout (config.timeout)           Temporary, the group killed and reaped
//   cannot start the program           Temporary (a local fault to fix)
//   envelope_from or recipient empty, starting with "-", or holding a space
//   or a control character             Permanent, nothing started
// An envelope_from of "<>" is passed as is (the MTA's null sender syntax).
// Thread-safe: the configuration is read-only; each call owns its
// descriptors (all close-on-exec) and its child, and waits only for that
// pid. submit() never throws.
class MailSubmitter {
 public:
  // Throws std::invalid_argument when argv_prefix is empty.
  explicit MailSubmitter(MailSubmitConfig config);

  DeliveryResult submit(const std::string& envelope_from, const std::string& recipient,
                        std::string_view message) const;

 private:
  MailSubmitConfig config_;
};

}  // namespace mtasts::policy::net
