// STARTTLS probe of one MX host: RFC 8461 §4.2-4.3, RFC 3207, RFC 7672 §2-3,
// result types of RFC 8460 §4.3 (the table is in tls_prober.h).
//
// Every step runs on a non-blocking socket under poll() with its own
// deadline, so a silent or trickling peer costs at most one step_timeout per
// step. OpenSSL is driven through its WANT_READ / WANT_WRITE loop on the same
// socket; its error queue is per thread and cleared before each call we
// inspect. Failures travel as std::optional<ProbeResult>: nullopt means "go on".
#include "policy/net/tls_prober.h"
#include "policy/net/trust_anchors.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "policy/cert_name.h"
#include "policy/logfmt.h"
#include "policy/net/smtp_reply.h"

namespace mtasts::policy::net {

// policy/cert_name.h promises that OpenSSL checks names exactly as
// cert_name_matches does; these are the flags that make that true.
static_assert(kOpenSslHostCheckFlags ==
                  (X509_CHECK_FLAG_NEVER_CHECK_SUBJECT | X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS),
              "policy::kOpenSslHostCheckFlags must equal the OpenSSL §4.2 flags");

namespace {

using SteadyClock = std::chrono::steady_clock;
using StepDeadline = SteadyClock::time_point;
using std::chrono::milliseconds;

constexpr milliseconds kQuitTimeout{1000};
constexpr std::size_t kMaxDetailBytes = 200;
constexpr std::size_t kReadChunk = 4096;

struct SslCtxDeleter {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
struct SslDeleter {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
struct AddrinfoDeleter {
  void operator()(addrinfo* list) const { freeaddrinfo(list); }
};
using SslPtr = std::unique_ptr<SSL, SslDeleter>;

// Owns one socket descriptor.
class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// OpenSSL writes to the socket with write(), which raises SIGPIPE when the
// peer has gone. Block it on this thread for the probe and discard a SIGPIPE
// the probe raised, whatever the process does with the signal.
class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    was_pending_ = is_pending();
    blocked_ = pthread_sigmask(SIG_BLOCK, &pipe_, &previous_) == 0;
  }
  ~SigpipeGuard() {
    if (!blocked_) return;
    if (!was_pending_ && is_pending()) {
      const timespec zero{};
      sigtimedwait(&pipe_, nullptr, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

 private:
  static bool is_pending() {
    sigset_t pending;
    sigemptyset(&pending);
    return sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
  }
  sigset_t pipe_{};
  sigset_t previous_{};
  bool was_pending_ = false;
  bool blocked_ = false;
};

// Server text goes into details and logs: printable ASCII only, bounded.
std::string printable(std::string_view text) { return printable_ascii(text, kMaxDetailBytes); }

ProbeResult unreachable(std::string reason, std::string detail) {
  ProbeResult result;
  result.outcome = ProbeOutcome::Unreachable;
  result.reason = std::move(reason);
  result.detail = std::move(detail);
  return result;
}

ProbeResult tls_failure(ResultType type, std::string reason, std::string detail) {
  ProbeResult result;
  result.outcome = ProbeOutcome::TlsFailure;
  result.result_type = type;
  result.reason = std::move(reason);
  result.detail = std::move(detail);
  return result;
}

std::string errno_text(int error) { return std::error_code(error, std::generic_category()).message(); }

// RFC 1123 host names (A-labels) only: they go into SNI, logs and checks.
bool valid_host(std::string_view host) {
  return !host.empty() && host.size() <= 253 && host.front() != '.' && host.front() != '-' &&
         std::all_of(host.begin(), host.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                  c == '.';
         });
}

// RFC 5321 §4.1.1.1: EHLO Domain or address literal; nothing that could end
// the command line early.
bool valid_ehlo_name(std::string_view name) {
  if (name.size() > 2 && name.front() == '[' && name.back() == ']') {
    const std::string_view inner = name.substr(1, name.size() - 2);
    return std::all_of(inner.begin(), inner.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
             c == ':';
    });
  }
  return valid_host(name);
}

enum class Io { Ok, Timeout, Closed, Error };

// Waits until `fd` is ready for `events` or the deadline passes.
Io wait_for(int fd, short events, StepDeadline deadline) {
  for (;;) {
    const auto left = std::chrono::ceil<milliseconds>(deadline - SteadyClock::now()).count();
    if (left <= 0) return Io::Timeout;
    pollfd entry{fd, events, 0};
    const int rc = ::poll(&entry, 1, static_cast<int>(std::min<long long>(left, 60000)));
    if (rc > 0) return Io::Ok;  // errors and hang-ups surface in the next call
    if (rc < 0 && errno != EINTR) return Io::Closed;
  }
}

ProbeResult connect_failure(int error) {
  if (error == ECONNREFUSED) return unreachable("connect-refused", errno_text(error));
  if (error == ETIMEDOUT) return unreachable("timeout", "connect: " + errno_text(error));
  return unreachable("connect-error", errno_text(error));
}

// Non-blocking connect to a literal IPv4 or IPv6 address.
std::optional<ProbeResult> open_connection(const ProbeRequest& request, std::unique_ptr<Socket>& out) {
  addrinfo hints{};
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(request.port);
  if (getaddrinfo(request.address.c_str(), port.c_str(), &hints, &found) != 0 || found == nullptr) {
    return unreachable("invalid-request", "not an IP address: " + printable(request.address));
  }
  const std::unique_ptr<addrinfo, AddrinfoDeleter> list(found);
  auto socket =
      std::make_unique<Socket>(::socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (socket->get() < 0) return unreachable("connect-error", errno_text(errno));
  if (::connect(socket->get(), found->ai_addr, found->ai_addrlen) != 0 && errno != EINPROGRESS) {
    return connect_failure(errno);
  }
  const Io waited = wait_for(socket->get(), POLLOUT, SteadyClock::now() + request.step_timeout);
  if (waited == Io::Timeout) return unreachable("timeout", "connect");
  if (waited != Io::Ok) return unreachable("connect-error", "poll: " + errno_text(errno));
  int error = 0;
  socklen_t size = sizeof error;
  if (getsockopt(socket->get(), SOL_SOCKET, SO_ERROR, &error, &size) != 0) error = errno;
  if (error != 0) return connect_failure(error);
  out = std::move(socket);
  return std::nullopt;
}

// The plaintext SMTP dialogue before STARTTLS (RFC 5321, RFC 3207 §4).
class PlainChannel {
 public:
  PlainChannel(int fd, milliseconds step) : fd_(fd), step_(step) {}

  Io send(std::string_view data) const {
    const StepDeadline deadline = SteadyClock::now() + step_;
    while (!data.empty()) {
      const ssize_t sent = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (sent > 0) {
        data.remove_prefix(static_cast<std::size_t>(sent));
      } else if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        if (const Io waited = wait_for(fd_, POLLOUT, deadline); waited != Io::Ok) return waited;
      } else {
        return Io::Closed;
      }
    }
    return Io::Ok;
  }

  // One whole reply; Io::Error with `error` set when it is not SMTP.
  Io read_reply(SmtpReply& reply, std::string& error) {
    SmtpReplyReader reader;
    pending_.erase(0, reader.feed(pending_));
    const StepDeadline deadline = SteadyClock::now() + step_;
    char buffer[kReadChunk];
    while (reader.state() == ReplyState::Incomplete) {
      if (const Io waited = wait_for(fd_, POLLIN, deadline); waited != Io::Ok) return waited;
      const ssize_t got = ::recv(fd_, buffer, sizeof buffer, 0);
      if (got == 0) return Io::Closed;
      if (got < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
        return Io::Closed;
      }
      const std::string_view chunk(buffer, static_cast<std::size_t>(got));
      pending_.append(chunk.substr(reader.feed(chunk)));
    }
    if (reader.state() == ReplyState::Invalid) {
      error = reader.error();
      return Io::Error;
    }
    reply = reader.reply();
    return Io::Ok;
  }

  // RFC 3207 §4.2 / §6: nothing read before the handshake may be used after it.
  void discard_pending() { pending_.clear(); }

 private:
  int fd_;
  milliseconds step_;
  std::string pending_;  // bytes after the last complete reply
};

ProbeResult io_failure(Io io, std::string_view step, std::string_view error) {
  if (io == Io::Timeout) return unreachable("timeout", std::string(step));
  if (io == Io::Closed) return unreachable("closed", std::string(step));
  return unreachable("protocol", std::string(step) + ": " + std::string(error));
}

std::string reply_text(const SmtpReply& reply) {
  return std::to_string(reply.code) + " " +
         printable(reply.lines.empty() ? std::string_view{} : std::string_view{reply.lines[0]});
}

// Sends `command` and reads its reply; a failure is the probe's result.
std::optional<ProbeResult> exchange(PlainChannel& channel, std::string_view command, std::string_view step,
                                    SmtpReply& reply) {
  std::string error;
  Io io = command.empty() ? Io::Ok : channel.send(command);
  if (io == Io::Ok) io = channel.read_reply(reply, error);
  if (io != Io::Ok) return io_failure(io, step, error);
  return std::nullopt;
}

void plain_quit(int fd, milliseconds step) {
  PlainChannel channel(fd, std::min(step, kQuitTimeout));
  SmtpReply ignored;
  std::string error;
  if (channel.send("QUIT\r\n") == Io::Ok) channel.read_reply(ignored, error);
}

// Greeting, EHLO, STARTTLS up to the server's 220 (RFC 3207 §4-5).
std::optional<ProbeResult> start_tls(int fd, milliseconds step, const std::string& ehlo_name) {
  PlainChannel channel(fd, step);
  SmtpReply reply;
  if (auto failed = exchange(channel, {}, "greeting", reply)) return failed;
  if (reply.code / 100 != 2) {
    return unreachable("greeting-" + std::to_string(reply.code), reply_text(reply));
  }
  if (auto failed = exchange(channel, "EHLO " + ehlo_name + "\r\n", "ehlo", reply)) return failed;
  std::optional<ProbeResult> refused;
  const std::string code = std::to_string(reply.code);
  if (reply.code / 100 == 4) {
    refused = unreachable("ehlo-" + code, reply_text(reply));
  } else if (reply.code / 100 != 2) {
    refused = tls_failure(ResultType::StartTlsNotSupported, "ehlo-" + code, reply_text(reply));
  } else if (!has_ehlo_keyword(reply, "STARTTLS")) {
    refused =
        tls_failure(ResultType::StartTlsNotSupported, "starttls-not-offered", "EHLO reply has no STARTTLS");
  } else if (auto failed = exchange(channel, "STARTTLS\r\n", "starttls", reply)) {
    return failed;
  } else if (reply.code == 454) {  // RFC 3207 §4: TLS not available for a temporary reason
    refused = tls_failure(ResultType::StartTlsNotSupported, "starttls-454", reply_text(reply));
    refused->temporary = true;
  } else if (reply.code / 100 == 4) {  // 421 and the like: the server is going away, not refusing TLS
    refused = unreachable("starttls-" + std::to_string(reply.code), reply_text(reply));
  } else if (reply.code != 220) {
    refused = tls_failure(ResultType::StartTlsNotSupported, "starttls-" + std::to_string(reply.code),
                          reply_text(reply));
  }
  if (refused) {
    plain_quit(fd, step);
    return refused;
  }
  channel.discard_pending();
  return std::nullopt;
}

// Runs one SSL call to completion under the deadline. Closed covers a reset
// or an EOF from the peer; Error leaves OpenSSL's error queue to the caller.
template <typename Operation>
Io drive_ssl(SSL* ssl, int fd, StepDeadline deadline, Operation operation) {
  for (;;) {
    ERR_clear_error();
    const int rc = operation();
    if (rc > 0) return Io::Ok;
    const int error = SSL_get_error(ssl, rc);
    short events = 0;
    if (error == SSL_ERROR_WANT_READ) events = POLLIN;
    if (error == SSL_ERROR_WANT_WRITE) events = POLLOUT;
    if (events == 0) {
      const unsigned long first = ERR_peek_error();
      const bool eof =
          error == SSL_ERROR_ZERO_RETURN || (error == SSL_ERROR_SYSCALL && first == 0) ||
          (ERR_GET_LIB(first) == ERR_LIB_SSL && ERR_GET_REASON(first) == SSL_R_UNEXPECTED_EOF_WHILE_READING);
      return eof ? Io::Closed : Io::Error;
    }
    if (const Io waited = wait_for(fd, events, deadline); waited != Io::Ok) return waited;
  }
}

// Drains OpenSSL's error queue: its text, and whether the peer refused or
// offered a protocol version below our TLS 1.2 minimum.
struct SslErrors {
  std::string text;
  bool version = false;
};

SslErrors take_ssl_errors() {
  SslErrors errors;
  while (const unsigned long code = ERR_get_error()) {
    if (ERR_GET_LIB(code) == ERR_LIB_SSL) {
      switch (ERR_GET_REASON(code)) {
        case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
        case SSL_R_UNSUPPORTED_PROTOCOL:
        case SSL_R_WRONG_SSL_VERSION:
        case SSL_R_VERSION_TOO_LOW:
        case SSL_R_NO_PROTOCOLS_AVAILABLE:
          errors.version = true;
          break;
        default:
          break;
      }
    }
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof buffer);
    if (!errors.text.empty()) errors.text += "; ";
    errors.text += buffer;
  }
  return errors;
}

// RFC 8460 §4.3.1 for a WebPKI verification error (RFC 8461 §4.2).
ProbeResult certificate_failure(long verify) {
  const std::string why = X509_verify_cert_error_string(verify);
  switch (verify) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return tls_failure(ResultType::CertificateExpired, "cert-expired", why);
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_UNTRUSTED:
      return tls_failure(ResultType::CertificateNotTrusted, "cert-untrusted", why);
    case X509_V_ERR_HOSTNAME_MISMATCH:
      return tls_failure(ResultType::CertificateHostMismatch, "cert-host-mismatch", why);
    default:
      return tls_failure(ResultType::ValidationFailure, "cert-invalid", why);
  }
}

ProbeResult failed_handshake(SSL* ssl, Io io, bool dane) {
  const SslErrors errors = take_ssl_errors();
  if (io == Io::Timeout) return unreachable("timeout", "tls handshake");
  const long verify = SSL_get_verify_result(ssl);
  if (verify != X509_V_OK) {
    if (dane) {
      return tls_failure(ResultType::TlsaInvalid, "tlsa-mismatch", X509_verify_cert_error_string(verify));
    }
    return certificate_failure(verify);
  }
  if (errors.version) return tls_failure(ResultType::ValidationFailure, "tls-version", errors.text);
  // The server said go ahead (220 to STARTTLS, or accepted the connection on
  // 465) and then dropped the handshake: what a STARTTLS-stripping middlebox
  // or a broken TLS stack does. A TLSRPT failure, not an unreachable host.
  if (io == Io::Closed) return tls_failure(ResultType::ValidationFailure, "handshake-closed", errors.text);
  return tls_failure(ResultType::ValidationFailure, "handshake", errors.text);
}

ProbeResult completed_handshake(SSL* ssl, bool dane) {
  ProbeResult result;
  if (SSL_version(ssl) < TLS1_2_VERSION) {  // the context's minimum makes this unreachable
    result = tls_failure(ResultType::ValidationFailure, "tls-version", SSL_get_version(ssl));
  } else if (dane) {
    if (SSL_get0_dane_authority(ssl, nullptr, nullptr) >= 0) {
      result.outcome = ProbeOutcome::DaneVerified;
    } else {
      result = tls_failure(ResultType::TlsaInvalid, "tlsa-mismatch", "no TLSA match");
    }
  } else if (SSL_get0_peer_certificate(ssl) != nullptr && SSL_get_verify_result(ssl) == X509_V_OK) {
    result.outcome = ProbeOutcome::Verified;
  } else {
    result = certificate_failure(SSL_get_verify_result(ssl));
  }
  result.tls_version = SSL_get_version(ssl);
  return result;
}

// Reads (and ignores) one reply over TLS; false on timeout, EOF or garbage.
bool read_tls_reply(SSL* ssl, int fd, StepDeadline deadline) {
  SmtpReplyReader reader;
  char buffer[kReadChunk];
  while (reader.state() == ReplyState::Incomplete) {
    int got = 0;
    const Io io = drive_ssl(ssl, fd, deadline, [&] {
      got = SSL_read(ssl, buffer, static_cast<int>(sizeof buffer));
      return got;
    });
    if (io != Io::Ok) return false;
    reader.feed(std::string_view(buffer, static_cast<std::size_t>(got)));
  }
  return reader.state() == ReplyState::Complete;
}

// RFC 5321 §4.1.1.10 over the TLS session, best effort; for implicit TLS the
// greeting comes first (RFC 8314 §3.3).
void tls_quit(SSL* ssl, int fd, bool implicit_tls, milliseconds step) {
  const StepDeadline deadline = SteadyClock::now() + std::min(step, kQuitTimeout);
  if (implicit_tls && !read_tls_reply(ssl, fd, deadline)) return;
  constexpr std::string_view quit = "QUIT\r\n";
  const Io sent = drive_ssl(ssl, fd, deadline,
                            [&] { return SSL_write(ssl, quit.data(), static_cast<int>(quit.size())); });
  if (sent == Io::Ok && read_tls_reply(ssl, fd, deadline)) SSL_shutdown(ssl);
  ERR_clear_error();
}

// RFC 7672 §3.1.3: PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP; OpenSSL
// also refuses unknown selectors and matching types and malformed data.
int add_usable_tlsa(SSL* ssl, const std::vector<TlsaRecord>& records) {
  int added = 0;
  for (const auto& record : records) {
    if (record.usage != 2 && record.usage != 3) continue;
    if (SSL_dane_tlsa_add(ssl, record.usage, record.selector, record.matching_type, record.data.data(),
                          record.data.size()) > 0) {
      ++added;
    }
  }
  ERR_clear_error();
  return added;
}

}  // namespace

struct SmtpTlsProber::Context {
  std::unique_ptr<SSL_CTX, SslCtxDeleter> ctx;
};

SmtpTlsProber::SmtpTlsProber(const SmtpTlsProberConfig& config)
    : context_(std::make_unique<Context>()), ehlo_name_(config.ehlo_name) {
  if (!ehlo_name_.empty() && !valid_ehlo_name(ehlo_name_)) {
    throw std::runtime_error("SMTP EHLO name \"" + printable(ehlo_name_) + "\" is not a host name.");
  }
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) throw std::runtime_error("TLS client context could not be created.");
  context_->ctx.reset(ctx);
  // RFC 8461 §4.3 / RFC 8996: TLS 1.2 at least. Sessions are never resumed:
  // a resumed session would skip the certificate check a probe exists for.
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  if (!load_trust_anchors(SSL_CTX_get_cert_store(ctx), config.ca_file)) {
    throw std::runtime_error("TLS trust anchors " +
                             (config.ca_file.empty() ? "(system store)" : config.ca_file) +
                             " cannot be loaded.");
  }
  if (SSL_CTX_dane_enable(ctx) <= 0) {
    ERR_clear_error();
    throw std::runtime_error("DANE could not be enabled in the TLS client context.");
  }
}

SmtpTlsProber::~SmtpTlsProber() = default;

namespace {

// One SSL object for one probe: SNI, the §4.2 name rule, or DANE.
std::optional<ProbeResult> prepare_ssl(SSL_CTX* ctx, const ProbeRequest& request, SslPtr& out) {
  SslPtr ssl(SSL_new(ctx));
  if (!ssl || SSL_set_tlsext_host_name(ssl.get(), request.host.c_str()) != 1) {
    ERR_clear_error();
    return unreachable("internal-error", "SSL object could not be created");
  }
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl.get());
  if (request.tlsa) {
    // RFC 7672 §3.1.1: a DANE-EE(3) match authenticates the key alone.
    if (SSL_dane_enable(ssl.get(), request.host.c_str()) <= 0) {
      ERR_clear_error();
      return unreachable("internal-error", "DANE could not be enabled");
    }
    SSL_dane_set_flags(ssl.get(), DANE_FLAG_NO_DANE_EE_NAMECHECKS);
    if (add_usable_tlsa(ssl.get(), *request.tlsa) == 0) {
      return tls_failure(ResultType::TlsaInvalid, "tlsa-unusable", "no usable TLSA record (RFC 7672 §3.1.3)");
    }
  } else if (X509_VERIFY_PARAM_set1_host(param, request.host.data(), request.host.size()) != 1) {
    ERR_clear_error();
    return unreachable("internal-error", "host name check could not be set");
  }
  X509_VERIFY_PARAM_set_hostflags(param, kOpenSslHostCheckFlags);
  out = std::move(ssl);
  return std::nullopt;
}

// The handshake on the connected socket and its classification.
ProbeResult run_tls(SSL* ssl, int fd, const ProbeRequest& request) {
  if (SSL_set_fd(ssl, fd) != 1) {
    ERR_clear_error();
    return unreachable("internal-error", "SSL_set_fd failed");
  }
  const bool dane = request.tlsa.has_value();
  const StepDeadline deadline = SteadyClock::now() + request.step_timeout;
  const Io io = drive_ssl(ssl, fd, deadline, [&] { return SSL_connect(ssl); });
  if (io != Io::Ok) return failed_handshake(ssl, io, dane);
  ProbeResult result = completed_handshake(ssl, dane);
  tls_quit(ssl, fd, request.implicit_tls, request.step_timeout);
  return result;
}

void log_probe(const ProbeRequest& request, const ProbeResult& result, SteadyClock::time_point started) {
  const auto elapsed = std::chrono::duration_cast<milliseconds>(SteadyClock::now() - started).count();
  spdlog::debug("probe host={} address={} outcome={} reason={} tls={} elapsed_ms={}",
                logfmt_value(request.host), logfmt_value(request.address), to_string(result.outcome),
                result.reason.empty() ? "ok" : result.reason, logfmt_value(result.tls_version), elapsed);
}

}  // namespace

ProbeResult SmtpTlsProber::probe(const ProbeRequest& request) {
  const auto started = SteadyClock::now();
  ProbeResult result;
  try {
    const SigpipeGuard sigpipe;
    result = run(request);
  } catch (const std::exception& error) {
    result = unreachable("internal-error", error.what());
  } catch (...) {
    result = unreachable("internal-error", "unknown exception");
  }
  result.address = request.address;
  try {
    log_probe(request, result, started);
  } catch (...) {  // a failing log sink must not fail the probe
  }
  return result;
}

namespace {

// Our end of the connection (RFC 8460 §4.4 "sending-mta-ip"); "" when the
// kernel will not say.
std::string local_address(int fd) {
  sockaddr_storage local{};
  socklen_t size = sizeof local;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &size) != 0) return "";
  char text[INET6_ADDRSTRLEN] = {};
  const void* where = nullptr;
  if (local.ss_family == AF_INET) where = &reinterpret_cast<const sockaddr_in*>(&local)->sin_addr;
  if (local.ss_family == AF_INET6) where = &reinterpret_cast<const sockaddr_in6*>(&local)->sin6_addr;
  if (where == nullptr || inet_ntop(local.ss_family, where, text, sizeof text) == nullptr) return "";
  return text;
}

}  // namespace

ProbeResult SmtpTlsProber::run(const ProbeRequest& request) const {
  const std::string& ehlo_name = ehlo_name_.empty() ? request.ehlo_name : ehlo_name_;
  if (!valid_host(request.host) || !valid_ehlo_name(ehlo_name)) {
    return unreachable("invalid-request", "bad host or EHLO name");
  }
  SslPtr ssl;
  if (auto failed = prepare_ssl(context_->ctx.get(), request, ssl)) return *failed;
  std::unique_ptr<Socket> socket;
  if (auto failed = open_connection(request, socket)) return *failed;
  const std::string source = local_address(socket->get());
  std::optional<ProbeResult> result;
  if (!request.implicit_tls) result = start_tls(socket->get(), request.step_timeout, ehlo_name);
  if (!result) result = run_tls(ssl.get(), socket->get(), request);
  result->source_address = source;
  return *result;
}

}  // namespace mtasts::policy::net
