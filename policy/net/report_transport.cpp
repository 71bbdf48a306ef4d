// Report delivery, RFC 8460 §5.3 (mail) and §5.4 (HTTPS).
//
// The HTTPS side follows CurlFetcher: one easy handle per post, the anchors
// read once into an X509_STORE that every TLS context shares, C callbacks
// that never throw. The mail side is a plain posix_spawn with one poll loop
// that feeds stdin, drains the output and watches the child's exit, all
// under one deadline.
#include "policy/net/report_transport.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <utility>
#include <variant>
#include <vector>

#include "policy/ascii.h"
#include "policy/logfmt.h"
#include "policy/net/curl_handles.h"
#include "policy/net/trust_anchors.h"

namespace mtasts::policy::net {
namespace {

using Clock = std::chrono::steady_clock;

// ---- HTTPS, §5.4 -----------------------------------------------------------

constexpr std::size_t kMaxDetailBytes = 200;

struct Transfer {
  X509_STORE* trust = nullptr;
  bool allow_private = false;
  std::string refused_address;  // a non-public address the host resolved to
  std::size_t received = 0;
  bool capped = false;
};

bool in_v4_range(std::uint32_t address, std::uint32_t network, int prefix) {
  const std::uint32_t mask = prefix == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix);
  return (address & mask) == (network & mask);
}

bool is_public_v4(std::uint32_t a) {  // host byte order
  static constexpr std::pair<std::uint32_t, int> kNotPublic[] = {
      {0x00000000, 8},  {0x0A000000, 8},  {0x64400000, 10}, {0x7F000000, 8},  {0xA9FE0000, 16},
      {0xAC100000, 12}, {0xC0000000, 24}, {0xC0000200, 24}, {0xC0A80000, 16}, {0xC6120000, 15},
      {0xC6336400, 24}, {0xCB007100, 24}, {0xE0000000, 4},  {0xF0000000, 4},
  };
  return std::none_of(std::begin(kNotPublic), std::end(kNotPublic),
                      [a](const auto& range) { return in_v4_range(a, range.first, range.second); });
}

bool is_public_v6(const unsigned char (&b)[16]) {
  static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::equal(kMapped, kMapped + 12, b))
    return is_public_v4(std::uint32_t{b[12]} << 24 | std::uint32_t{b[13]} << 16 | std::uint32_t{b[14]} << 8 |
                        b[15]);
  if (std::all_of(b, b + 15, [](unsigned char c) { return c == 0; })) return false;  // :: and ::1
  if ((b[0] & 0xfe) == 0xfc) return false;                                           // fc00::/7 ULA
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return false;                           // fe80::/10
  if (b[0] == 0xff) return false;                                                    // multicast
  if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) return false;    // 2001:db8::/32
  return true;
}

bool is_public_sockaddr(const sockaddr* address) {
  if (address->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(address);
    return is_public_v4(ntohl(in->sin_addr.s_addr));
  }
  if (address->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(address);
    unsigned char bytes[16];
    std::memcpy(bytes, &in6->sin6_addr, sizeof bytes);
    return is_public_v6(bytes);
  }
  return false;
}

std::string address_text(const sockaddr* address) {
  char text[INET6_ADDRSTRLEN] = "?";
  if (address->sa_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(address)->sin_addr, text, sizeof text);
  else if (address->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr, text, sizeof text);
  return text;
}

// libcurl asks us for each socket it connects: the address check happens
// here, after libcurl's own resolution, so a name cannot resolve to a public
// address for a check and to a private one for the connection.
curl_socket_t open_checked_socket(void* user, curlsocktype purpose, curl_sockaddr* address) noexcept {
  auto* transfer = static_cast<Transfer*>(user);
  if (purpose == CURLSOCKTYPE_IPCXN && !transfer->allow_private && !is_public_sockaddr(&address->addr)) {
    transfer->refused_address = address_text(&address->addr);
    return CURL_SOCKET_BAD;
  }
  return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

// The receiver's answer is not needed beyond its status: up to
// kMaxReportResponseBytes are read and dropped, then the transfer is cut.
size_t discard_body(char* /*data*/, size_t size, size_t count, void* user) noexcept {
  auto* transfer = static_cast<Transfer*>(user);
  const size_t bytes = size * count;
  if (transfer->received + bytes > kMaxReportResponseBytes) {
    transfer->capped = true;
    return 0;
  }
  transfer->received += bytes;
  return bytes;
}

// libcurl was told to load no anchors: the context gets the poster's store.
CURLcode install_trust(CURL* /*handle*/, void* ssl_ctx, void* user) noexcept {
  const auto* transfer = static_cast<const Transfer*>(user);
  SSL_CTX_set1_cert_store(static_cast<SSL_CTX*>(ssl_ctx), transfer->trust);
  return CURLE_OK;
}

DeliveryResult result(DeliveryOutcome outcome, std::string detail) {
  return DeliveryResult{outcome, std::move(detail)};
}

// The server answered: its status decides, whatever happened to the body
// afterwards (a 2xx means it took the report).
DeliveryResult classify_status(long status) {
  const std::string detail = "https " + std::to_string(status);
  if (status >= 200 && status < 300) return result(DeliveryOutcome::Delivered, detail);
  if (status >= 300 && status < 400)
    return result(DeliveryOutcome::Permanent, detail + " redirect not followed");
  if (status == 408 || status == 425 || status == 429 || (status >= 500 && status < 600))
    return result(DeliveryOutcome::Temporary, detail);
  if (status >= 400 && status < 500) return result(DeliveryOutcome::Permanent, detail);
  return result(DeliveryOutcome::Temporary, detail);
}

DeliveryResult certificate_failure(CURL* handle, const char* message) {
  long verify_result = X509_V_OK;
  curl_easy_getinfo(handle, CURLINFO_SSL_VERIFYRESULT, &verify_result);
  // X509_V_OK here: the chain was fine and libcurl's host name check failed.
  const std::string why = verify_result != X509_V_OK && verify_result != X509_V_ERR_UNSPECIFIED
                              ? X509_verify_cert_error_string(verify_result)
                              : message;
  return result(DeliveryOutcome::Temporary,
                "https certificate not accepted: " + printable_ascii(why, kMaxDetailBytes));
}

// No status: the exchange failed before the server answered.
DeliveryResult classify_failure(CURLcode rc, CURL* handle, const char* message) {
  const auto fail = [message](DeliveryOutcome outcome, std::string_view what) {
    return result(outcome, "https " + std::string(what) + ": " + printable_ascii(message, kMaxDetailBytes));
  };
  switch (rc) {
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return fail(DeliveryOutcome::Permanent, "bad uri");
    case CURLE_PEER_FAILED_VERIFICATION:
      return certificate_failure(handle, message);
    case CURLE_COULDNT_RESOLVE_HOST:
      return fail(DeliveryOutcome::Temporary, "resolve");
    case CURLE_COULDNT_CONNECT:
      return fail(DeliveryOutcome::Temporary, "connect");
    case CURLE_OPERATION_TIMEDOUT:
      return fail(DeliveryOutcome::Temporary, "timeout");
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CIPHER:
      return fail(DeliveryOutcome::Temporary, "tls handshake");
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_OUT_OF_MEMORY:
      return fail(DeliveryOutcome::Temporary, "local");
    default:
      return fail(DeliveryOutcome::Temporary, "transfer");
  }
}

std::optional<CURLoption> configure(CURL* handle, const HttpsPosterConfig& config, Transfer& transfer,
                                    const std::string& uri, std::string_view body, curl_slist* headers,
                                    char* error_buffer) {
  CurlOptions o(handle);
  o.set(CURLOPT_URL, uri.c_str());
  o.set(CURLOPT_PROTOCOLS_STR, "https");
  o.set(CURLOPT_REDIR_PROTOCOLS_STR, "https");
  o.set(CURLOPT_FOLLOWLOCATION, 0L);
  o.set(CURLOPT_MAXREDIRS, 0L);
  o.set(CURLOPT_NOSIGNAL, 1L);
  o.set(CURLOPT_USERAGENT, config.user_agent.c_str());
  o.set(CURLOPT_HTTPHEADER, headers);
  o.set(CURLOPT_PROXY, "");  // also makes libcurl ignore the *_proxy variables
  o.set(CURLOPT_SSL_VERIFYPEER, 1L);
  o.set(CURLOPT_SSL_VERIFYHOST, 2L);
  o.set(CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
  o.set(CURLOPT_CAINFO, static_cast<const char*>(nullptr));
  o.set(CURLOPT_CAPATH, static_cast<const char*>(nullptr));
  o.set(CURLOPT_SSL_CTX_FUNCTION, &install_trust);
  o.set(CURLOPT_SSL_CTX_DATA, static_cast<void*>(&transfer));
  o.set(CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(config.connect_timeout.count()));
  o.set(CURLOPT_TIMEOUT_MS, static_cast<long>(config.total_timeout.count()));
  o.set(CURLOPT_POST, 1L);
  // Never a null pointer: libcurl would then read the body from stdin.
  o.set(CURLOPT_POSTFIELDS, body.empty() ? "" : body.data());
  o.set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  o.set(CURLOPT_WRITEFUNCTION, &discard_body);
  o.set(CURLOPT_WRITEDATA, static_cast<void*>(&transfer));
  o.set(CURLOPT_ERRORBUFFER, error_buffer);
  o.set(CURLOPT_OPENSOCKETFUNCTION, &open_checked_socket);
  o.set(CURLOPT_OPENSOCKETDATA, static_cast<void*>(&transfer));
  return o.failed();
}

DeliveryResult perform_post(const HttpsPosterConfig& config, X509_STORE* trust, const std::string& uri,
                            std::string_view body) {
  if (curl_global_once() != CURLE_OK)
    return result(DeliveryOutcome::Temporary, "https local: curl_global_init failed");
  CurlHandle handle(curl_easy_init());
  Slist headers(curl_slist_append(nullptr, "Content-Type: application/tlsrpt+gzip"));
  // "Expect:" off: a receiver that ignores it would stall every post by a second.
  if (headers && !curl_slist_append(headers.get(), "Expect:")) headers.reset();
  if (!handle || !headers) return result(DeliveryOutcome::Temporary, "https local: out of memory");
  Transfer transfer;
  transfer.trust = trust;
  transfer.allow_private = config.allow_private_addresses;
  char error_buffer[CURL_ERROR_SIZE] = {};
  if (const auto option = configure(handle.get(), config, transfer, uri, body, headers.get(), error_buffer))
    return result(DeliveryOutcome::Temporary,
                  "https local: libcurl refused option " + std::to_string(*option));
  const CURLcode rc = curl_easy_perform(handle.get());
  long status = 0;
  curl_easy_getinfo(handle.get(), CURLINFO_RESPONSE_CODE, &status);
  if (status != 0) return classify_status(status);
  if (!transfer.refused_address.empty())
    return result(DeliveryOutcome::Permanent,
                  "https refused: the host resolves to " + transfer.refused_address +
                      ", not a public address (report.allow_private_destinations)");
  return classify_failure(rc, handle.get(), error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(rc));
}

const char* outcome_name(DeliveryOutcome outcome) {
  switch (outcome) {
    case DeliveryOutcome::Delivered:
      return "delivered";
    case DeliveryOutcome::Temporary:
      return "temporary";
    case DeliveryOutcome::Permanent:
      return "permanent";
  }
  return "unknown";
}

long elapsed_ms(Clock::time_point started) {
  return static_cast<long>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count());
}

// ---- Mail submission, §5.3 -------------------------------------------------

constexpr std::size_t kMaxOutputBytes = 512;
constexpr std::size_t kChunkBytes = std::size_t{64} * 1024;
// Without a pidfd (kernel < 5.3) the loop looks at the child this often.
constexpr int kExitPollMs = 20;

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

// An argument the MTA could read as an option, or that could split or
// smuggle a header line, is refused before anything runs.
bool is_safe_argument(std::string_view text) {
  if (text.empty() || text.front() == '-') return false;
  return std::none_of(text.begin(), text.end(), [](char c) { return c == ' ' || is_ascii_control(c); });
}

std::string errno_text(int error) { return std::strerror(error); }

class SpawnSetup {
 public:
  SpawnSetup() {
    posix_spawn_file_actions_init(&actions_);
    posix_spawnattr_init(&attr_);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions_);
    posix_spawnattr_destroy(&attr_);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;

  // 0 or an errno.
  int prepare(int stdin_fd, int output_fd) {
    sigset_t none;
    sigset_t all;
    sigemptyset(&none);
    sigfillset(&all);
    const auto flags =
        static_cast<short>(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
    for (const int rc :
         {posix_spawn_file_actions_adddup2(&actions_, stdin_fd, STDIN_FILENO),
          posix_spawn_file_actions_adddup2(&actions_, output_fd, STDOUT_FILENO),
          posix_spawn_file_actions_adddup2(&actions_, output_fd, STDERR_FILENO),
          posix_spawn_file_actions_addclosefrom_np(&actions_, STDERR_FILENO + 1),
          posix_spawnattr_setsigmask(&attr_, &none), posix_spawnattr_setsigdefault(&attr_, &all),
          posix_spawnattr_setpgroup(&attr_, 0), posix_spawnattr_setflags(&attr_, flags)})
      if (rc != 0) return rc;
    return 0;
  }
  const posix_spawn_file_actions_t* actions() const { return &actions_; }
  const posix_spawnattr_t* attr() const { return &attr_; }

 private:
  posix_spawn_file_actions_t actions_{};
  posix_spawnattr_t attr_{};
};

struct Child {
  pid_t pid = -1;
  Fd input;   // our end of the child's stdin
  Fd output;  // the read end of its stdout + stderr
};

// The child, or an errno.
std::variant<Child, int> start_child(std::vector<std::string> args) {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return errno;
  Fd input(pair[0]);
  const Fd child_stdin(pair[1]);
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return errno;
  Fd output(pipe_fds[0]);
  const Fd child_output(pipe_fds[1]);
  // Half-closed socket: the child sees EOF when we close our end, and can
  // never write back into its stdin.
  shutdown(input.get(), SHUT_RD);
  if (fcntl(input.get(), F_SETFL, O_NONBLOCK) != 0 || fcntl(output.get(), F_SETFL, O_NONBLOCK) != 0)
    return errno;
  SpawnSetup setup;
  if (const int rc = setup.prepare(child_stdin.get(), child_output.get()); rc != 0) return rc;
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::string path_variable = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
  std::array<char*, 2> envp = {path_variable.data(), nullptr};
  pid_t pid = -1;
  if (const int rc = posix_spawn(&pid, argv.front(), setup.actions(), setup.attr(), argv.data(), envp.data());
      rc != 0)
    return rc;
  return Child{pid, std::move(input), std::move(output)};
}

struct Exchange {
  std::string_view message;
  std::size_t written = 0;
  std::string output;  // at most kMaxOutputBytes + 1: one more says "cut"
};

// Writes what the socket takes now; closes our end at the end of the
// message (EOF for the child) or when the child stopped reading.
void feed(Fd& input, Exchange& exchange) {
  while (exchange.written < exchange.message.size()) {
    const std::size_t size = std::min(kChunkBytes, exchange.message.size() - exchange.written);
    const ssize_t sent =
        send(input.get(), exchange.message.data() + exchange.written, size, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (sent <= 0) break;  // EPIPE, ECONNRESET: the child is not reading
    exchange.written += static_cast<std::size_t>(sent);
  }
  input.reset();
}

// Reads what the pipe holds now; closes it at EOF or on error.
void drain(Fd& output, Exchange& exchange) {
  std::array<char, 4096> buffer{};
  for (;;) {
    const ssize_t got = read(output.get(), buffer.data(), buffer.size());
    if (got < 0 && errno == EINTR) continue;
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (got <= 0) break;
    const std::size_t room = kMaxOutputBytes + 1 - std::min(exchange.output.size(), kMaxOutputBytes + 1);
    exchange.output.append(buffer.data(), std::min(room, static_cast<std::size_t>(got)));
  }
  output.reset();
}

// glibc 2.36's <sys/pidfd.h> declares pidfd_open without extern "C"; the
// system call itself is as simple. -1 without one (kernel < 5.3).
int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  return -1;
#endif
}

void kill_and_reap(pid_t pid) {
  kill(-pid, SIGKILL);  // the whole group: sendmail's own helpers too
  while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

struct Ended {
  enum class How { Exited, TimedOut, Lost } how = How::Lost;
  int status = 0;  // waitpid status when Exited
};

int poll_timeout_ms(Clock::time_point deadline, bool have_pidfd) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  const auto bounded = std::clamp<decltype(left)>(left, 0, have_pidfd ? 60000 : kExitPollMs);
  return static_cast<int>(bounded);
}

// Feeds stdin and drains the output until the child exits or the deadline
// passes. A pidfd wakes the poll when the child exits even if it left a
// helper holding the output pipe open.
Ended run_child(Child& child, Exchange& exchange, Clock::time_point deadline) {
  const Fd pidfd(open_pidfd(child.pid));
  for (;;) {
    int status = 0;
    const pid_t done = waitpid(child.pid, &status, WNOHANG);
    if (done == child.pid) {
      if (child.output.valid()) drain(child.output, exchange);
      return {Ended::How::Exited, status};
    }
    if (done < 0 && errno != EINTR) return {Ended::How::Lost, 0};  // ECHILD: SIGCHLD ignored
    if (Clock::now() >= deadline) {
      kill_and_reap(child.pid);
      return {Ended::How::TimedOut, 0};
    }
    std::array<pollfd, 3> fds{};
    nfds_t count = 0;
    const auto watch = [&](const Fd& fd, short events) {
      if (fd.valid()) fds.at(count++) = pollfd{fd.get(), events, 0};
    };
    watch(child.input, POLLOUT);
    watch(child.output, POLLIN);
    watch(pidfd, POLLIN);
    if (poll(fds.data(), count, poll_timeout_ms(deadline, pidfd.valid())) <= 0) continue;
    for (nfds_t i = 0; i < count; ++i) {
      if (fds.at(i).revents == 0) continue;
      if (fds.at(i).fd == child.input.get()) feed(child.input, exchange);
      if (fds.at(i).fd == child.output.get()) drain(child.output, exchange);
    }
  }
}

// The child's own words, as one bounded printable line.
std::string said(const std::string& output) {
  std::string line = output;
  std::replace_if(
      line.begin(), line.end(), [](char c) { return c == '\n' || c == '\r' || c == '\t'; }, ' ');
  const auto end = line.find_last_not_of(' ');
  line.erase(end == std::string::npos ? 0 : end + 1);
  if (line.empty()) return "";
  return ": " + printable_ascii(line, kMaxOutputBytes);
}

// sysexits.h: EX_USAGE (64) .. EX_CONFIG (78); only EX_TEMPFAIL (75) says "later".
DeliveryResult classify_exit(int status, const Exchange& exchange) {
  const std::string words = said(exchange.output);
  if (WIFSIGNALED(status))
    return result(DeliveryOutcome::Temporary,
                  "sendmail killed by signal " + std::to_string(WTERMSIG(status)) + words);
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  const std::string detail = "sendmail exit " + std::to_string(code);
  if (code == 0 && exchange.written < exchange.message.size())
    return result(DeliveryOutcome::Temporary, detail + " before reading the whole message" + words);
  if (code == 0) return result(DeliveryOutcome::Delivered, detail + words);
  // Only what is wrong with this message or address is final: EX_USAGE,
  // EX_DATAERR, EX_NOUSER, EX_NOHOST. The other sysexits (EX_OSERR,
  // EX_IOERR, EX_CANTCREAT, EX_NOPERM, EX_CONFIG, ...) are this host's faults
  // (a full disk, a spool permission, a config being fixed): retried.
  if (code == 64 || code == 65 || code == 67 || code == 68)
    return result(DeliveryOutcome::Permanent, detail + words);
  return result(DeliveryOutcome::Temporary, detail + words);
}

DeliveryResult run_submission(const MailSubmitConfig& config, std::vector<std::string> args,
                              std::string_view message) {
  const auto deadline = Clock::now() + config.timeout;
  auto started = start_child(std::move(args));
  if (const int* error = std::get_if<int>(&started))
    return result(DeliveryOutcome::Temporary,
                  "sendmail cannot run " + printable_ascii(config.argv_prefix.front(), kMaxDetailBytes) +
                      ": " + errno_text(*error));
  Child& child = std::get<Child>(started);
  Exchange exchange{message, 0, {}};
  if (message.empty()) child.input.reset();
  exchange.output.reserve(kMaxOutputBytes + 1);
  Ended ended;
  try {
    ended = run_child(child, exchange, deadline);
  } catch (...) {
    kill_and_reap(child.pid);  // never leave a child behind
    throw;
  }
  switch (ended.how) {
    case Ended::How::TimedOut:
      return result(DeliveryOutcome::Temporary, "sendmail timed out after " +
                                                    std::to_string(config.timeout.count()) + " ms, killed" +
                                                    said(exchange.output));
    case Ended::How::Lost:
      return result(DeliveryOutcome::Temporary, "sendmail exit status lost: " + errno_text(ECHILD));
    case Ended::How::Exited:
      break;
  }
  return classify_exit(ended.status, exchange);
}

}  // namespace

HttpsReportPoster::HttpsReportPoster(HttpsPosterConfig config) : config_(std::move(config)) {
  trust_ = std::make_unique<SharedTrustStore>(config_.ca_file, "report CA file");
  if (curl_global_once() != CURLE_OK) spdlog::error("curl_global_init failed");
}

HttpsReportPoster::~HttpsReportPoster() = default;

DeliveryResult HttpsReportPoster::post(const std::string& https_uri, std::string_view gz_body) const {
  const auto started = Clock::now();
  DeliveryResult outcome = result(DeliveryOutcome::Permanent, "not an https uri");
  try {
    if (ascii_iequals(std::string_view(https_uri).substr(0, 8), "https://"))
      outcome = perform_post(config_, trust_->get(), https_uri, gz_body);
  } catch (const std::exception& error) {  // std::bad_alloc, in practice
    outcome = result(DeliveryOutcome::Temporary, std::string("https local: ") + error.what());
  }
  spdlog::debug("report transport=https uri={} outcome={} detail={} bytes={} elapsed_ms={}",
                logfmt_value(https_uri), outcome_name(outcome.outcome), logfmt_value(outcome.detail),
                gz_body.size(), elapsed_ms(started));
  return outcome;
}

MailSubmitter::MailSubmitter(MailSubmitConfig config) : config_(std::move(config)) {
  if (config_.argv_prefix.empty()) throw std::invalid_argument("the sendmail command is empty");
}

DeliveryResult MailSubmitter::submit(const std::string& envelope_from, const std::string& recipient,
                                     std::string_view message) const {
  const auto started = Clock::now();
  DeliveryResult outcome = result(DeliveryOutcome::Permanent, "sendmail not run: unsafe envelope sender");
  try {
    if (!is_safe_argument(recipient)) {
      outcome.detail = "sendmail not run: unsafe recipient";
    } else if (is_safe_argument(envelope_from)) {
      std::vector<std::string> args = config_.argv_prefix;
      args.insert(args.end(), {"-f", envelope_from, "--", recipient});
      outcome = run_submission(config_, std::move(args), message);
    }
  } catch (const std::exception& error) {  // std::bad_alloc, in practice
    outcome = result(DeliveryOutcome::Temporary, std::string("sendmail local: ") + error.what());
  }
  spdlog::debug("report transport=mail rcpt={} outcome={} detail={} bytes={} elapsed_ms={}",
                logfmt_value(recipient), outcome_name(outcome.outcome), logfmt_value(outcome.detail),
                message.size(), elapsed_ms(started));
  return outcome;
}

bool is_public_address(std::string_view text) {
  const std::string address(text);
  in_addr v4{};
  if (inet_pton(AF_INET, address.c_str(), &v4) == 1) return is_public_v4(ntohl(v4.s_addr));
  in6_addr v6{};
  if (inet_pton(AF_INET6, address.c_str(), &v6) != 1) return false;
  unsigned char bytes[16];
  std::memcpy(bytes, &v6, sizeof bytes);
  return is_public_v6(bytes);
}

}  // namespace mtasts::policy::net
