// Load generator for socketmap servers (Postfix socketmap_table(5)), the
// driver of run_socketmap_bench.sh: it asks a server for keys the way Postfix's
// socketmap client does (one netstring request `NAME KEY`, then wait for the
// one netstring reply; one outstanding request per connection) and prints one
// line of key=value figures.
//
//   socketmap_load --connect inet:HOST:PORT|unix:PATH --keys FILE
//                  [--map postfix] [--connections 1] [--threads 1]
//                  [--mode warm|cold] [--seconds 5 | --requests R]
//                  [--server-pid PID] [--timeout-ms 30000] [--print-replies]
//   socketmap_load --null-server inet:HOST:PORT|unix:PATH
//
// warm: every connection cycles through the keys (connection c starts at key
// c * keys / connections) until --seconds have passed or --requests replies
// were asked for in all. cold: every key exactly once, handed to whichever
// connection is free next, then stop.
//
// The line: requests seconds qps p50_us p99_us max_us ok notfound temp timeout
// perm error server_cpu_s server_cpu_us_per_req loadgen_cpu_s loadgen_cpu_pct
// mode connections threads. Latency runs from just before the request's send()
// to the reply's last byte. server_cpu_* come from utime+stime of
// /proc/PID/stat before and after the run ("-" without --server-pid);
// loadgen_cpu_* are this process's own (getrusage), in CPU seconds and in
// percent of one CPU over the wall time: near 100 % per thread means the
// generator, not the server, sets the pace. `error` counts requests without a
// reply (the connection failed or --timeout-ms passed).
//
// --null-server answers every request `NOTFOUND ` at once (one thread, epoll)
// until SIGTERM or SIGINT: the ceiling of this generator and the kernel path,
// the do-nothing baseline as null_milter is for the milter benchmarks.
//
// Exit status: 0; 1 on a connection error (connect, reset, EOF, timeout) or a
// protocol error (bad netstring, a reply word outside the five, a reply with
// no request), after printing the figures of what was answered; 2 on bad usage.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <csignal>

#include "policy/socketmap.h"

namespace {

using Clock = std::chrono::steady_clock;
using mtasts::policy::encode_netstring;
using mtasts::policy::NetstringReader;

// Replies may carry TLSRPT attributes: read what Postfix reads.
constexpr std::size_t kMaxReply = mtasts::policy::kPostfixMaxReplyBytes;
constexpr int kEpollWaitMs = 50;

enum class Mode { Warm, Cold };
// The five reply words, then Error: a request that got no reply.
enum class Word { Ok, NotFound, Temp, Timeout, Perm, Error };
constexpr std::size_t kWords = 6;
constexpr std::array<std::string_view, kWords> kWordNames = {"ok",      "notfound", "temp",
                                                             "timeout", "perm",     "error"};

struct Options {
  std::string connect;
  std::string map = "postfix";
  std::string keys_file;
  int connections = 1;
  int threads = 1;
  Mode mode = Mode::Warm;
  double seconds = 5;
  std::uint64_t requests = 0;  // warm: a request budget instead of --seconds
  int server_pid = 0;
  int timeout_ms = 30'000;
  bool print_replies = false;
  std::string null_server;
};

// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    reset();
    fd_ = std::exchange(other.fd_, -1);
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

[[noreturn]] void fail_errno(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

struct Endpoint {
  sockaddr_storage addr{};
  socklen_t len = 0;
};

// inet:HOST:PORT (HOST numeric or a name, IPv6 in brackets) or unix:PATH.
Endpoint parse_endpoint(const std::string& text) {
  Endpoint e;
  if (text.starts_with("unix:")) {
    const std::string path = text.substr(5);
    sockaddr_un un{};
    if (path.empty() || path.size() >= sizeof un.sun_path) throw std::runtime_error("bad unix path: " + text);
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path, path.data(), path.size());
    std::memcpy(&e.addr, &un, sizeof un);
    e.len = sizeof un;
    return e;
  }
  if (!text.starts_with("inet:")) throw std::runtime_error("want inet:HOST:PORT or unix:PATH, got " + text);
  const std::string rest = text.substr(5);
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0) throw std::runtime_error("want inet:HOST:PORT, got " + text);
  std::string host = rest.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), rest.substr(colon + 1).c_str(), &hints, &found);
  if (rc != 0) throw std::runtime_error(text + ": " + ::gai_strerror(rc));
  const std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owner(found, ::freeaddrinfo);
  std::memcpy(&e.addr, found->ai_addr, found->ai_addrlen);
  e.len = found->ai_addrlen;
  return e;
}

void set_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) fail_errno("fcntl");
}

Fd connect_to(const Endpoint& e) {
  Fd fd(::socket(e.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) fail_errno("socket");
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&e.addr), e.len) != 0) fail_errno("connect");
  set_nonblocking(fd.get());
  return fd;
}

std::vector<std::string> read_keys(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::vector<std::string> keys;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) keys.push_back(line);
  }
  if (keys.empty()) throw std::runtime_error(path + " holds no key");
  return keys;
}

// utime + stime of a process in seconds (every thread), from /proc/PID/stat.
std::optional<double> process_cpu_seconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!in || !std::getline(in, stat)) return std::nullopt;
  const auto paren = stat.rfind(')');  // the command name may hold spaces
  if (paren == std::string::npos) return std::nullopt;
  std::istringstream fields(stat.substr(paren + 1));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {  // field 3 is the state
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double own_cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  const auto secs = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return secs(ru.ru_utime) + secs(ru.ru_stime);
}

std::optional<Word> reply_word(std::string_view payload) {
  const std::string_view word = payload.substr(0, payload.find(' '));
  if (word == "OK") return Word::Ok;
  if (word == "NOTFOUND") return Word::NotFound;
  if (word == "TEMP") return Word::Temp;
  if (word == "TIMEOUT") return Word::Timeout;
  if (word == "PERM") return Word::Perm;
  return std::nullopt;
}

// What every worker reads, and the few counters they share.
struct Plan {
  const Options& options;
  const std::vector<std::string>& keys;
  std::vector<std::string> requests;  // the framed request of each key
  Clock::time_point deadline;         // warm with --seconds
  std::atomic<std::uint64_t> claimed{0};
  std::atomic<bool> failed{false};
  std::mutex print_mutex;  // --print-replies and the first error message
  std::string first_error;

  void fail(const std::string& message) {
    const std::lock_guard lock(print_mutex);
    if (first_error.empty()) first_error = message;
    failed = true;
  }
};

struct Tally {
  std::vector<std::uint64_t> latency_ns;
  std::array<std::uint64_t, kWords> words{};
};

struct Connection {
  Fd fd;
  NetstringReader reader{kMaxReply};
  std::string unsent;
  std::size_t next_key = 0;  // warm: where this connection's cycle stands
  std::size_t key = 0;       // the key of the outstanding request
  Clock::time_point sent_at;
  bool outstanding = false;
  bool watching_out = false;  // EPOLLOUT registered
};

// One epoll loop over a share of the connections.
class Worker {
 public:
  Worker(Plan& plan, std::vector<Connection> connections) : plan_(plan), conns_(std::move(connections)) {}

  Tally run();

 private:
  std::optional<std::size_t> claim(Connection& c);
  void issue(std::size_t index);
  void send_unsent(std::size_t index);
  void on_readable(std::size_t index);
  void on_reply(std::size_t index, std::string_view payload);
  void drop(std::size_t index, const std::string& why);
  void check_timeouts(Clock::time_point now);

  Plan& plan_;
  std::vector<Connection> conns_;
  Fd epoll_;
  Tally tally_;
  int outstanding_ = 0;
  std::vector<char> read_buffer_ = std::vector<char>(65536);  // not on the stack: no 64 KiB clear per read
};

std::optional<std::size_t> Worker::claim(Connection& c) {
  if (plan_.failed) return std::nullopt;
  const auto& o = plan_.options;
  if (o.mode == Mode::Cold) {
    const auto i = plan_.claimed.fetch_add(1);
    return i < plan_.keys.size() ? std::optional(i) : std::nullopt;
  }
  if (o.requests > 0 ? plan_.claimed.fetch_add(1) >= o.requests : Clock::now() >= plan_.deadline) {
    return std::nullopt;
  }
  const auto i = c.next_key;
  c.next_key = (c.next_key + 1) % plan_.keys.size();
  return i;
}

void Worker::issue(std::size_t index) {
  auto& c = conns_[index];
  const auto key = claim(c);
  if (!key) return;
  c.key = *key;
  c.unsent = plan_.requests[*key];
  c.outstanding = true;
  ++outstanding_;
  c.sent_at = Clock::now();
  send_unsent(index);
}

void Worker::send_unsent(std::size_t index) {
  auto& c = conns_[index];
  while (!c.unsent.empty()) {
    const auto n = ::send(c.fd.get(), c.unsent.data(), c.unsent.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n < 0) return drop(index, std::string("send: ") + std::strerror(errno));
    c.unsent.erase(0, static_cast<std::size_t>(n));
  }
  // epoll_ctl only when the interest changes: one syscall less per request.
  const bool want_out = !c.unsent.empty();
  if (want_out == c.watching_out) return;
  c.watching_out = want_out;
  epoll_event ev{};
  ev.events = EPOLLIN | (want_out ? static_cast<unsigned>(EPOLLOUT) : 0U);
  ev.data.u64 = index;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c.fd.get(), &ev);
}

void Worker::on_readable(std::size_t index) {
  auto& c = conns_[index];
  auto& buffer = read_buffer_;
  for (;;) {
    const auto n = ::recv(c.fd.get(), buffer.data(), buffer.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n < 0) return drop(index, std::string("recv: ") + std::strerror(errno));
    if (n == 0) return drop(index, "the server closed the connection");
    c.reader.feed(std::string_view(buffer.data(), static_cast<std::size_t>(n)));
    if (static_cast<std::size_t>(n) < buffer.size()) break;
  }
  for (;;) {
    auto frame = c.reader.next();
    if (!frame) {
      return drop(index, "bad netstring from the server: " + std::string(to_string(frame.error())));
    }
    if (!frame.value()) return;
    on_reply(index, *frame.value());
    if (c.fd.get() < 0 || plan_.failed) return;
  }
}

void Worker::on_reply(std::size_t index, std::string_view payload) {
  auto& c = conns_[index];
  const auto now = Clock::now();
  if (!c.outstanding) return drop(index, "a reply without a request");
  const auto word = reply_word(payload);
  if (!word) return drop(index, "unknown reply word: " + std::string(payload.substr(0, 40)));
  c.outstanding = false;
  --outstanding_;
  tally_.latency_ns.push_back(static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(now - c.sent_at).count()));
  ++tally_.words.at(static_cast<std::size_t>(*word));
  if (plan_.options.print_replies) {
    const std::lock_guard lock(plan_.print_mutex);
    std::cerr << plan_.keys[c.key] << '\t' << payload << '\n';
  }
  issue(index);
}

// A connection error: the run fails; its outstanding request counts as error.
void Worker::drop(std::size_t index, const std::string& why) {
  auto& c = conns_[index];
  if (c.outstanding) {
    c.outstanding = false;
    --outstanding_;
    ++tally_.words.at(static_cast<std::size_t>(Word::Error));
  }
  plan_.fail(why + " (key " + plan_.keys[c.key] + ")");
  c.fd.reset();
}

void Worker::check_timeouts(Clock::time_point now) {
  const auto limit = std::chrono::milliseconds(plan_.options.timeout_ms);
  for (std::size_t i = 0; i < conns_.size(); ++i) {
    if (conns_[i].outstanding && now - conns_[i].sent_at > limit) drop(i, "no reply within --timeout-ms");
  }
}

Tally Worker::run() {
  epoll_ = Fd(::epoll_create1(EPOLL_CLOEXEC));
  if (epoll_.get() < 0) fail_errno("epoll_create1");
  for (std::size_t i = 0; i < conns_.size(); ++i) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, conns_[i].fd.get(), &ev) != 0) fail_errno("epoll_ctl");
  }
  for (std::size_t i = 0; i < conns_.size(); ++i) issue(i);
  std::array<epoll_event, 128> events{};
  auto last_check = Clock::now();
  while (outstanding_ > 0 && !plan_.failed) {
    const int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), kEpollWaitMs);
    if (n < 0 && errno != EINTR) fail_errno("epoll_wait");
    for (int i = 0; i < n; ++i) {
      const auto index = static_cast<std::size_t>(events.at(static_cast<std::size_t>(i)).data.u64);
      if (conns_[index].fd.get() < 0) continue;
      const auto what = events.at(static_cast<std::size_t>(i)).events;
      if ((what & EPOLLOUT) != 0) send_unsent(index);
      if (conns_[index].fd.get() >= 0 && (what & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0) on_readable(index);
    }
    const auto now = Clock::now();
    if (now - last_check > std::chrono::milliseconds(kEpollWaitMs)) {
      check_timeouts(now);
      last_check = now;
    }
  }
  return std::move(tally_);
}

double quantile_us(const std::vector<std::uint64_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<std::size_t>(q * static_cast<double>(sorted.size() - 1) + 0.5);
  return static_cast<double>(sorted.at(rank)) / 1000.0;
}

void print_figures(const Options& o, Tally& all, double seconds, std::optional<double> server_cpu,
                   double own_cpu) {
  std::sort(all.latency_ns.begin(), all.latency_ns.end());
  const auto answered = all.latency_ns.size();
  std::uint64_t requests = 0;
  for (const auto n : all.words) requests += n;
  char line[1024];
  std::snprintf(line, sizeof line, "requests=%llu seconds=%.3f qps=%.0f p50_us=%.1f p99_us=%.1f max_us=%.1f",
                static_cast<unsigned long long>(requests), seconds,
                seconds > 0 ? static_cast<double>(answered) / seconds : 0.0,
                quantile_us(all.latency_ns, 0.50), quantile_us(all.latency_ns, 0.99),
                all.latency_ns.empty() ? 0.0 : static_cast<double>(all.latency_ns.back()) / 1000.0);
  std::cout << line;
  for (std::size_t w = 0; w < kWords; ++w) std::cout << ' ' << kWordNames.at(w) << '=' << all.words.at(w);
  if (server_cpu) {
    std::snprintf(line, sizeof line, " server_cpu_s=%.2f server_cpu_us_per_req=%.1f", *server_cpu,
                  answered > 0 ? *server_cpu * 1e6 / static_cast<double>(answered) : 0.0);
    std::cout << line;
  } else {
    std::cout << " server_cpu_s=- server_cpu_us_per_req=-";
  }
  std::snprintf(line, sizeof line, " loadgen_cpu_s=%.2f loadgen_cpu_pct=%.0f", own_cpu,
                seconds > 0 ? own_cpu * 100 / seconds : 0.0);
  std::cout << line << " mode=" << (o.mode == Mode::Warm ? "warm" : "cold")
            << " connections=" << o.connections << " threads=" << o.threads << '\n';
}

int run_load(const Options& o) {
  const auto endpoint = parse_endpoint(o.connect);
  const auto keys = read_keys(o.keys_file);
  Plan plan{o, keys, {}, {}, {}, {}, {}, {}};
  plan.requests.reserve(keys.size());
  for (const auto& key : keys) plan.requests.push_back(encode_netstring(o.map + " " + key));

  // Connections are dealt round-robin to the threads, all connected first.
  std::vector<std::vector<Connection>> shares(static_cast<std::size_t>(o.threads));
  for (int c = 0; c < o.connections; ++c) {
    Connection conn;
    conn.fd = connect_to(endpoint);
    conn.next_key = static_cast<std::size_t>(c) * keys.size() / static_cast<std::size_t>(o.connections);
    shares.at(static_cast<std::size_t>(c % o.threads)).push_back(std::move(conn));
  }

  const auto server_before = o.server_pid > 0 ? process_cpu_seconds(o.server_pid) : std::nullopt;
  if (o.server_pid > 0 && !server_before)
    throw std::runtime_error("no /proc/" + std::to_string(o.server_pid));
  const double own_before = own_cpu_seconds();
  const auto start = Clock::now();
  plan.deadline =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));

  std::vector<Tally> tallies(shares.size());
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < shares.size(); ++t) {
    threads.emplace_back([&, t] {
      try {
        tallies[t] = Worker(plan, std::move(shares[t])).run();
      } catch (const std::exception& e) {
        plan.fail(e.what());
      }
    });
  }
  for (auto& thread : threads) thread.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double own_cpu = own_cpu_seconds() - own_before;
  std::optional<double> server_cpu;
  if (server_before) {
    const auto after = process_cpu_seconds(o.server_pid);
    if (after) server_cpu = *after - *server_before;
  }

  Tally all;
  for (auto& t : tallies) {
    all.latency_ns.insert(all.latency_ns.end(), t.latency_ns.begin(), t.latency_ns.end());
    for (std::size_t w = 0; w < kWords; ++w) all.words.at(w) += t.words.at(w);
  }
  print_figures(o, all, seconds, server_cpu, own_cpu);
  if (plan.failed) {
    std::cerr << "socketmap_load: error: " << plan.first_error << '\n';
    return 1;
  }
  return 0;
}

// ---- --null-server -------------------------------------------------------

Fd listen_on(const Endpoint& e) {
  Fd fd(::socket(e.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd.get() < 0) fail_errno("socket");
  const int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (e.addr.ss_family == AF_UNIX) ::unlink(reinterpret_cast<const sockaddr_un*>(&e.addr)->sun_path);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&e.addr), e.len) != 0) fail_errno("bind");
  if (::listen(fd.get(), 512) != 0) fail_errno("listen");
  return fd;
}

// Reads what a client sent and answers each complete request; false: close it.
bool serve_client(int fd, NetstringReader& reader) {
  static const std::string kReply = encode_netstring("NOTFOUND ");
  static std::vector<char> buffer(65536);  // one thread
  for (;;) {
    const auto n = ::recv(fd, buffer.data(), buffer.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n <= 0) return false;
    reader.feed(std::string_view(buffer.data(), static_cast<std::size_t>(n)));
    if (static_cast<std::size_t>(n) < buffer.size()) break;  // drained: no second recv for EAGAIN
  }
  std::string out;
  for (auto frame = reader.next(); frame && frame.value(); frame = reader.next()) out += kReply;
  if (reader.failed()) return false;
  // One outstanding request per client: a reply this small fits the socket buffer.
  return out.empty() || ::send(fd, out.data(), out.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(out.size());
}

int run_null_server(const std::string& where) {
  const auto listener = listen_on(parse_endpoint(where));
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  ::sigprocmask(SIG_BLOCK, &stop_signals, nullptr);
  const Fd signals(::signalfd(-1, &stop_signals, SFD_CLOEXEC));
  const Fd epoll(::epoll_create1(EPOLL_CLOEXEC));
  if (signals.get() < 0 || epoll.get() < 0) fail_errno("signalfd/epoll");
  std::vector<std::optional<std::pair<Fd, NetstringReader>>> clients;  // by fd number
  const auto watch = [&](int fd) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, fd, &ev) != 0) fail_errno("epoll_ctl");
  };
  watch(listener.get());
  watch(signals.get());
  std::cout << "null-server: listening on " << where << std::endl;
  std::array<epoll_event, 128> events{};
  for (;;) {
    const int n = ::epoll_wait(epoll.get(), events.data(), static_cast<int>(events.size()), -1);
    if (n < 0 && errno != EINTR) fail_errno("epoll_wait");
    for (int i = 0; i < n; ++i) {
      const int fd = events.at(static_cast<std::size_t>(i)).data.fd;
      if (fd == signals.get()) return 0;
      if (fd == listener.get()) {
        for (int client;
             (client = ::accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) {
          if (clients.size() <= static_cast<std::size_t>(client))
            clients.resize(static_cast<std::size_t>(client) + 1);
          clients[static_cast<std::size_t>(client)].emplace(Fd(client), NetstringReader(kMaxReply));
          watch(client);
        }
        continue;
      }
      auto& client = clients.at(static_cast<std::size_t>(fd));
      if (client && !serve_client(fd, client->second)) client.reset();  // closing removes it from epoll
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"socketmap load generator (Postfix socketmap_table(5))"};
  Options o;
  app.add_option("--connect", o.connect, "inet:HOST:PORT or unix:PATH");
  app.add_option("--map", o.map, "map name sent before each key")->capture_default_str();
  app.add_option("--keys", o.keys_file, "file of keys, one a line");
  app.add_option("--connections", o.connections, "parallel connections")->check(CLI::Range(1, 10000));
  app.add_option("--threads", o.threads, "epoll threads the connections are dealt to")
      ->check(CLI::Range(1, 64));
  app.add_option("--mode", o.mode, "warm: cycle through the keys; cold: every key once")
      ->transform(
          CLI::CheckedTransformer(std::map<std::string, Mode>{{"warm", Mode::Warm}, {"cold", Mode::Cold}}));
  app.add_option("--seconds", o.seconds, "warm: run time")->capture_default_str();
  app.add_option("--requests", o.requests, "warm: total requests instead of --seconds");
  app.add_option("--server-pid", o.server_pid, "read this process's CPU time before and after");
  app.add_option("--timeout-ms", o.timeout_ms, "a request without a reply after this is an error")
      ->capture_default_str();
  app.add_flag("--print-replies", o.print_replies, "print KEY<TAB>REPLY for every reply to stderr");
  app.add_option("--null-server", o.null_server, "answer NOTFOUND to everything on this socket (baseline)");
  CLI11_PARSE(app, argc, argv);
  try {
    if (!o.null_server.empty()) return run_null_server(o.null_server);
    if (o.connect.empty() || o.keys_file.empty()) {
      std::cerr << "socketmap_load: --connect and --keys are required\n";
      return 2;
    }
    o.threads = std::min(o.threads, o.connections);
    return run_load(o);
  } catch (const std::exception& e) {
    std::cerr << "socketmap_load: error: " << e.what() << '\n';
    return 1;
  }
}
