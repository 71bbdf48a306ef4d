// The TLSRPT datagram paths (policy/net/tlsrpt_datagram_socket.h; README
// "TLSRPT datagrams") over real unix datagram sockets, each beside a floor
// measured in the same run:
//   forward  record() on the caller's thread (what a probe pays: a queue
//            push) and the sender thread's encoding and sendto() to a
//            collector this program drains; floor: the same bytes sent by
//            one plain sendto() loop to the same kind of collector.
//   receive  datagrams (as Postfix's libtlsrpt client sends them) sent to a
//            DatagramReceiver, decoded and handed to a counting sink;
//            floor: a plain recv() loop reading the same datagrams.
// Each prints wall time, datagrams per second and CPU per datagram of the
// whole process (sender, collector and receiver threads included, as in
// the floor), medians of the runs, and the ratio to the floor. Sanity: every
// datagram is accounted for (sent, or counted as dropped by the forwarder;
// received and decoded by the receiver), else exit 1.
//
// Usage: datagram_bench [--datagrams N] [--runs R]   (defaults 20000, 5)
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "policy/net/tlsrpt_datagram_socket.h"
#include "policy/tlsrpt_datagram.h"

namespace {

using mtasts::policy::ResultType;
using mtasts::policy::TlsrptSession;
using mtasts::policy::TlsrptSink;
namespace net = mtasts::policy::net;
using Clock = std::chrono::steady_clock;

constexpr const char* kRecord = "v=TLSRPTv1; rua=mailto:tlsrpt@example.net";
constexpr int kDomains = 100;

double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : values[values.size() / 2];
}

sockaddr_un address_of(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  return address;
}

int bound_socket(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const sockaddr_un address = address_of(path);
  if (fd < 0 || bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    std::perror(("datagram_bench: bind " + path).c_str());
    std::exit(1);
  }
  return fd;
}

TlsrptSession session_for(int i) {
  const std::string domain = "d" + std::to_string(i % kDomains) + ".example";
  TlsrptSession s;
  s.at = 1'780'000'000;
  s.policy_type = "sts";
  s.policy_domain = domain;
  s.policy_string = "version: STSv1\r\nmode: enforce\r\nmx: mx." + domain + "\r\nmax_age: 86400\r\n";
  s.mx_patterns = "mx." + domain;
  s.result_type = ResultType::StartTlsNotSupported;
  s.failure_reason_code = "starttls-not-supported";
  s.receiving_mx_hostname = "mx." + domain;
  s.receiving_ip = "192.0.2.25";
  return s;
}

// Reads datagrams from `fd` on its own thread until finish(N) was called and
// N arrived (or nothing came for 10 s).
class Collector {
 public:
  explicit Collector(int fd) : fd_(fd), thread_([this] { drain(); }) {}
  ~Collector() {
    finish(0);
    close(fd_);
  }
  Collector(const Collector&) = delete;
  Collector& operator=(const Collector&) = delete;
  // Waits until `expected` datagrams in all have arrived; returns how many did.
  long finish(long expected) {
    expected_.store(expected);
    if (thread_.joinable()) thread_.join();
    return received_.load();
  }

 private:
  void drain() {
    std::vector<char> buffer(65536);
    auto last = Clock::now();
    while (received_.load() < expected_.load() && Clock::now() - last < std::chrono::seconds(10)) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 20) != 1) continue;
      if (recv(fd_, buffer.data(), buffer.size(), 0) > 0) {
        received_.fetch_add(1);
        last = Clock::now();
      }
    }
  }
  int fd_;
  std::atomic<long> expected_{std::numeric_limits<long>::max()};
  std::atomic<long> received_{0};
  std::thread thread_;
};

class CountingSink final : public TlsrptSink {
 public:
  void record(const TlsrptSession&) override { sessions.fetch_add(1); }
  std::atomic<long> sessions{0};
};

struct RunFigures {
  double wall = 0;        // seconds
  double cpu = 0;         // process CPU seconds
  double record_p50 = 0;  // ns (forward only)
  double record_p99 = 0;
  long delivered = 0;  // datagrams that reached the other end
  long accounted = 0;  // delivered plus counted drops
};

RunFigures forward_run(const std::string& dir, long n) {
  const std::string path = dir + "/collector-fwd";
  std::filesystem::remove(path);
  Collector collector(bound_socket(path));
  CountingSink inner;
  net::DatagramForwarderConfig config;
  config.socket_path = path;
  config.max_queued = static_cast<std::size_t>(n);
  RunFigures f;
  std::vector<double> calls;
  calls.reserve(static_cast<std::size_t>(n));
  std::vector<TlsrptSession> sessions;
  for (long i = 0; i < n; ++i) sessions.push_back(session_for(static_cast<int>(i)));
  const double cpu_before = cpu_seconds();
  const auto start = Clock::now();
  {
    net::DatagramForwarder forwarder(&inner, config, [](const std::string&) { return std::string(kRecord); });
    for (const auto& s : sessions) {
      const auto t0 = Clock::now();
      forwarder.record(s);
      calls.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count());
    }
    forwarder.wait_idle();
    const auto counts = forwarder.counts();
    f.delivered = collector.finish(counts.sent);
    f.accounted = counts.sent + counts.queue_full + counts.send_failed;
    if (f.delivered != counts.sent) f.accounted = -1;
  }
  f.wall = std::chrono::duration<double>(Clock::now() - start).count();
  f.cpu = cpu_seconds() - cpu_before;
  std::sort(calls.begin(), calls.end());
  f.record_p50 = calls[calls.size() / 2];
  f.record_p99 = calls[calls.size() * 99 / 100];
  return f;
}

// The floor of forward: the same datagrams, encoded beforehand, sent by one
// blocking sendto() loop to a collector drained the same way.
RunFigures forward_floor(const std::string& dir, long n) {
  const std::string path = dir + "/collector-floor";
  std::filesystem::remove(path);
  std::vector<std::string> bytes;
  for (long i = 0; i < n; ++i)
    bytes.push_back(mtasts::policy::encode_datagram(
        mtasts::policy::datagram_from_session(session_for(static_cast<int>(i)), kRecord)));
  Collector collector(bound_socket(path));
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const sockaddr_un address = address_of(path);
  RunFigures f;
  const double cpu_before = cpu_seconds();
  const auto start = Clock::now();
  for (const auto& b : bytes)
    if (sendto(fd, b.data(), b.size(), 0, reinterpret_cast<const sockaddr*>(&address), sizeof address) > 0)
      ++f.accounted;
  f.delivered = collector.finish(n);
  f.wall = std::chrono::duration<double>(Clock::now() - start).count();
  f.cpu = cpu_seconds() - cpu_before;
  close(fd);
  return f;
}

// Datagrams as Postfix's libtlsrpt client writes them ("key": "value").
std::vector<std::string> postfix_datagrams(long n) {
  std::vector<std::string> out;
  for (long i = 0; i < n; ++i) {
    const std::string d = "d" + std::to_string(i % kDomains) + ".example";
    out.push_back(R"({"dpv": "1", "d": ")" + d + R"(", "pr": ")" + kRecord +
                  R"(", "policies": [{"policy-type": 2, "policy-domain": ")" + d +
                  R"(", "policy-string": ["version: STSv1", "mode: enforce", "mx: mx.)" + d +
                  R"(", "max_age: 86400"], "mx-host": ["mx.)" + d +
                  R"("], "failure-details": [{"c": 201, "r": "192.0.2.25", "h": "mx.)" + d +
                  R"("}], "t": 1, "f": 1}]})");
  }
  return out;
}

// Sends `datagrams` to `path`, blocking when the receiver's buffer is full.
long send_all(const std::string& path, const std::vector<std::string>& datagrams) {
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const sockaddr_un address = address_of(path);
  long sent = 0;
  for (const auto& d : datagrams)
    if (sendto(fd, d.data(), d.size(), 0, reinterpret_cast<const sockaddr*>(&address), sizeof address) > 0)
      ++sent;
  close(fd);
  return sent;
}

RunFigures receive_run(const std::string& dir, const std::vector<std::string>& datagrams) {
  const std::string path = dir + "/receiver";
  std::filesystem::remove(path);
  CountingSink sink;
  const long n = static_cast<long>(datagrams.size());
  RunFigures f;
  const double cpu_before = cpu_seconds();
  const auto start = Clock::now();
  {
    net::DatagramReceiver receiver(bound_socket(path), sink, [] { return std::int64_t{1'780'000'000}; });
    send_all(path, datagrams);
    const auto give_up = Clock::now() + std::chrono::seconds(10);
    while (sink.sessions.load() < n && Clock::now() < give_up)
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    f.wall = std::chrono::duration<double>(Clock::now() - start).count();
    f.delivered = receiver.counts().datagrams;
    f.accounted = sink.sessions.load();
  }
  f.cpu = cpu_seconds() - cpu_before;
  return f;
}

RunFigures receive_floor(const std::string& dir, const std::vector<std::string>& datagrams) {
  const std::string path = dir + "/receiver-floor";
  std::filesystem::remove(path);
  const long n = static_cast<long>(datagrams.size());
  RunFigures f;
  const double cpu_before = cpu_seconds();
  const auto start = Clock::now();
  {
    Collector collector(bound_socket(path));
    send_all(path, datagrams);
    f.delivered = f.accounted = collector.finish(n);
  }
  f.wall = std::chrono::duration<double>(Clock::now() - start).count();
  f.cpu = cpu_seconds() - cpu_before;
  return f;
}

void print(const char* name, const std::vector<RunFigures>& runs, const std::vector<RunFigures>& floor,
           long n) {
  std::vector<double> wall, cpu, fwall, fcpu;
  for (const auto& r : runs) wall.push_back(r.wall), cpu.push_back(r.cpu);
  for (const auto& r : floor) fwall.push_back(r.wall), fcpu.push_back(r.cpu);
  const double per = 1e6 / static_cast<double>(n);
  std::printf(
      "%s: %ld datagrams, wall %.3f s (%.0f/s), cpu %.2f us/datagram; floor wall %.3f s, cpu %.2f "
      "us/datagram; ratio wall %.1fx, cpu %.1fx\n",
      name, n, median(wall), static_cast<double>(n) / median(wall), median(cpu) * per, median(fwall),
      median(fcpu) * per, median(wall) / median(fwall), median(cpu) / median(fcpu));
}

}  // namespace

int main(int argc, char** argv) {
  long n = 20000;
  int runs = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--datagrams")
      n = std::atol(argv[i + 1]);
    else if (flag == "--runs")
      runs = std::atoi(argv[i + 1]);
  }
  if (n <= 0 || runs <= 0) {
    std::fprintf(stderr, "usage: datagram_bench [--datagrams N] [--runs R]\n");
    return 64;
  }
  char pattern[] = "/tmp/datagram-bench-XXXXXX";
  const std::string dir = mkdtemp(pattern);
  bool sane = true;
  std::vector<RunFigures> fwd, fwd_floor, rcv, rcv_floor;
  const auto datagrams = postfix_datagrams(n);
  for (int r = 0; r < runs; ++r) {  // alternating, so that noise hits both
    fwd.push_back(forward_run(dir, n));
    fwd_floor.push_back(forward_floor(dir, n));
    rcv.push_back(receive_run(dir, datagrams));
    rcv_floor.push_back(receive_floor(dir, datagrams));
    sane = sane && fwd.back().accounted == n && rcv.back().accounted == n && rcv.back().delivered == n &&
           fwd_floor.back().delivered == n && rcv_floor.back().delivered == n;
  }
  std::vector<double> p50, p99;
  long dropped = 0;
  for (const auto& f : fwd)
    p50.push_back(f.record_p50), p99.push_back(f.record_p99), dropped += n - f.delivered;
  print("forward", fwd, fwd_floor, n);
  std::printf(
      "forward: record() on the caller's thread p50 %.0f ns, p99 %.0f ns; datagrams not delivered "
      "(counted as dropped): %ld of %ld\n",
      median(p50), median(p99), dropped, n * runs);
  print("receive", rcv, rcv_floor, n);
  std::filesystem::remove_all(dir);
  if (!sane) {
    std::fprintf(stderr, "datagram_bench: error: datagrams not accounted for (figures meaningless)\n");
    return 1;
  }
  return 0;
}
